//! Feeding the metrics: the open cases tallied, the ended ones' period counts read
//! from the store when needed, sources' health; refreshed on request, at most once a
//! second.

use crate::metrics::{OpenFact, OpenTally, Snapshot, SourceFact};
use crate::sla::ratio::{on_time_until, PeriodKind};
use crate::state::{IngestStats, Shared, FINISHED_REREAD};
use crate::store::{PeriodStarts, StoreError};
use anyhow::Result;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

impl Shared {
    /// Adds one ingest's counts to `slawatch_ingest_records_total`.
    pub fn count_ingest(&self, source: &str, s: &IngestStats) {
        for (result, n) in [
            ("inserted", s.inserted),
            ("updated", s.updated),
            ("unchanged", s.unchanged),
            ("quarantined", s.quarantined),
        ] {
            self.metrics
                .ingest_records
                .with_label_values(&[source, result])
                .inc_by(n as f64);
        }
    }

    /// Recomputes the case gauges from the open cases and the stored period counts,
    /// and renders the exposition.
    pub async fn refresh_metrics(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let ctx = self.context();
        let starts = PeriodStarts {
            year: crate::sla::ratio::Period::containing(PeriodKind::Year, now, &ctx.calendar).start,
            quarter: crate::sla::ratio::Period::containing(PeriodKind::Quarter, now, &ctx.calendar)
                .start,
            month: crate::sla::ratio::Period::containing(PeriodKind::Month, now, &ctx.calendar)
                .start,
        };
        let reread = {
            let f = self.finished.lock().expect("finished lock");
            f.stale
                || f.starts != Some(starts)
                || f.read_at.is_none_or(|t| t.elapsed() >= FINISHED_REREAD)
        };
        if reread {
            self.finished.lock().expect("finished lock").stale = false;
            let groups = self.store.finished_groups(&starts).await?;
            let mut f = self.finished.lock().expect("finished lock");
            f.groups = groups;
            f.starts = Some(starts);
            f.read_at = Some(std::time::Instant::now());
        }
        let mut tally = OpenTally::default();
        {
            let open = self.open.lock().expect("open lock");
            for entry in open.values() {
                let c = &entry.case;
                let proc = ctx.procedure(c);
                let e = entry.eval.as_ref();
                let state = e.and_then(|e| e.state).map(|s| s.as_str());
                tally.add(&OpenFact {
                    kind: c.kind,
                    unit: c.unit_code.clone(),
                    procedure: if self.metrics.procedure_labels() {
                        c.procedure_code.clone()
                    } else {
                        None
                    },
                    state,
                    stuck: e.is_some_and(|e| e.stuck),
                    estimated: e.is_some_and(|e| e.calendar_estimated),
                    flags: e
                        .map(|e| crate::metrics::open_flags(e.flags))
                        .unwrap_or_default(),
                    overdue_workdays: (state == Some("overdue"))
                        .then(|| e.map(|e| e.overdue_workdays.max(0) as u32))
                        .flatten(),
                    on_time: on_time_until(c, proc, &ctx.calendar, &ctx.policy, now),
                });
            }
        }
        let quarantined: HashMap<String, i64> =
            self.store.quarantine_counts().await?.into_iter().collect();
        let sources: Vec<SourceFact> = self
            .health()
            .into_iter()
            .map(|h| SourceFact {
                quarantined: quarantined.get(&h.name).copied().unwrap_or(0),
                up: h.up,
                last_success: h.last_success.map(|t| t.timestamp_millis() as f64 / 1000.0),
                clock_skew: h.clock_skew_seconds.map(|s| s as f64),
                name: h.name,
            })
            .collect();
        let official_until = ctx.calendar.official_until().map(|d| {
            let next = d
                .succ_opt()
                .unwrap_or(d)
                .and_hms_opt(0, 0, 0)
                .expect("midnight");
            ctx.calendar.instant(next).timestamp() as f64
        });
        let finished = self.finished.lock().expect("finished lock").groups.clone();
        let snapshot = Snapshot {
            open: &tally,
            office_open: ctx.calendar.is_open(now),
            finished: &finished,
            directory: &ctx.directory,
            sources: &sources,
            official_until,
        };
        self.metrics.refresh(&snapshot);
        *self.units.write().expect("units lock") =
            Arc::new(crate::metrics::unit_summaries(&snapshot));
        Ok(())
    }
}

/// Refreshes the metrics when asked, at most once a second, until cancelled.
pub async fn metrics_loop(shared: Arc<Shared>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = shared.metrics_wanted.notified() => {}
        }
        let t = std::time::Instant::now();
        if let Err(e) = shared.refresh_metrics(shared.now()).await {
            tracing::warn!(error = %e, "metrics refresh failed");
        }
        tracing::debug!(ms = t.elapsed().as_millis() as u64, "metrics refreshed");
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}
