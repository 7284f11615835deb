//! Polling a source: one read from its cursor (pages committed as they come, the cursor
//! following the records' change times), re-fetching quarantined records it can serve
//! one by one, and the health and back-off around each poll. A source is never polled
//! twice at once (its job holds a guard). Records enter through [`crate::ingest`] only.

use crate::ingest::{
    commit_pipelined, ingest, prepare, ChangeTimes, Committed, Delivery, Overlay, PreparedPage,
};
use crate::source::normalize::Mapping;
use crate::source::{self, PollContext, Source, SourceConfig};
use crate::state::Shared;
use crate::store::JobRun;
use anyhow::Result;
use chrono::{DateTime, Duration as Span, Utc};
use std::sync::Arc;

/// A configured source, ready to poll.
pub struct SourceRuntime {
    pub config: SourceConfig,
    pub mapping: Mapping,
    pub source: Arc<dyn Source>,
}

/// What one read of a source did.
pub struct ReadOutcome {
    /// What the committed pages brought (also when the read failed halfway).
    pub committed: Committed,
    /// The cursor stored, if it moved.
    pub cursor: Option<DateTime<Utc>>,
    /// Where a first read (no stored cursor) started: the source's `initial_cursor`.
    pub first_since: Option<DateTime<Utc>>,
    /// Why the read stopped early.
    pub error: Option<String>,
}

/// The cursor to store after a read: for a source asked by change time, the newest
/// change time committed (the poll's start when its records carry none, and only
/// for a complete read); for the others, what the source returned.
///
/// A complete first read that found nothing stores where it read from, so the next
/// poll is not a first poll again.
pub(crate) fn next_cursor(
    rt: &SourceRuntime,
    committed: &Committed,
    complete: bool,
    returned: Option<String>,
    started: DateTime<Utc>,
    first_since: Option<DateTime<Utc>>,
) -> Option<String> {
    if !rt.source.cursor_from_records() {
        return if complete { returned } else { None };
    }
    match committed.times.newest {
        Some(t) => Some(t.to_rfc3339()),
        None if complete && committed.times.untimed => Some(started.to_rfc3339()),
        None if complete => first_since.map(|s| s.to_rfc3339()),
        None => None,
    }
}

/// Reads one source from `since` (or its stored cursor minus the overlap, or its
/// `initial_cursor`) and stores what it brings, page by page; with `move_cursor`, the
/// cursor follows what was committed, also when a later page fails.
pub async fn read_source(
    shared: &Shared,
    rt: &SourceRuntime,
    since: Option<DateTime<Utc>>,
    move_cursor: bool,
    timeout: std::time::Duration,
    started: DateTime<Utc>,
) -> Result<ReadOutcome, String> {
    let name = rt.config.name.as_str();
    let cursor = shared.store.cursor(name).await.map_err(|e| e.to_string())?;
    let ctx = shared.context();
    let overlap = Span::seconds(rt.config.overlap_seconds.max(0));
    let mut first_since = None;
    let since = match since {
        Some(s) => s,
        None => match cursor
            .as_deref()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        {
            Some(c) => c.with_timezone(&Utc) - overlap,
            None => {
                let s = rt.config.initial_since(&ctx.calendar, started)?;
                if rt.source.cursor_from_records() {
                    tracing::info!(
                        source = name,
                        since = %crate::timefmt::rfc3339(s, &ctx.calendar),
                        "first poll: reading every record changed since initial_cursor"
                    );
                }
                first_since = Some(s);
                s
            }
        },
    };
    let pctx = PollContext {
        source: name,
        now: started,
        since,
        calendar: &ctx.calendar,
        directory: &ctx.directory,
        catalogue: &ctx.catalogue,
        ledger: &shared.store,
    };
    // Pages are stored as they arrive; the cursor after them.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<source::Page>(2);
    let produce = async {
        tokio::time::timeout(timeout, rt.source.poll_pages(cursor.as_deref(), &pctx, tx))
            .await
            .map_err(|_| format!("timed out after {} s", timeout.as_secs()))?
            .map_err(|e| e.to_string())
    };
    // Preparing page k+1 overlaps committing pages k and k-1.
    let (btx, brx) = tokio::sync::mpsc::channel::<PreparedPage>(1);
    let consume = async {
        let mut overlay = Overlay::default();
        while let Some(page) = rx.recv().await {
            let records = page.records.len();
            let delivery = Delivery {
                records: page.records,
                files: page.files,
                ..Delivery::default()
            };
            let p = prepare(shared, name, &rt.mapping, delivery, started, &mut overlay)
                .await
                .map_err(|e| e.to_string())?;
            let page = PreparedPage {
                batch: p.batch,
                records,
                stats: p.stats,
                times: p.times,
            };
            if btx.send(page).await.is_err() {
                return Err("storing stopped".to_string());
            }
        }
        drop(btx);
        Ok::<_, String>(())
    };
    let (produced, consumed, (committed, stored)) =
        tokio::join!(produce, consume, commit_pipelined(shared, brx));
    let error = stored
        .err()
        .map(|e| e.to_string())
        .or(consumed.err())
        .or(produced.as_ref().err().cloned());
    let returned = produced.ok().flatten();
    let mut cursor_stored = None;
    if move_cursor {
        if let Some(c) = next_cursor(
            rt,
            &committed,
            error.is_none(),
            returned,
            started,
            first_since,
        ) {
            let delivery = Delivery {
                cursor: Some(c.clone()),
                ..Delivery::default()
            };
            match ingest(shared, name, &rt.mapping, delivery, started).await {
                Ok(_) => {
                    cursor_stored = DateTime::parse_from_rfc3339(&c)
                        .ok()
                        .map(|t| t.with_timezone(&Utc))
                }
                Err(e) => return Err(error.unwrap_or_else(|| format!("storing the cursor: {e}"))),
            }
        }
    }
    Ok(ReadOutcome {
        committed,
        cursor: cursor_stored,
        first_since,
        error,
    })
}

/// What a refetch of quarantined records did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refetched {
    pub fetched: usize,
    pub resolved: usize,
    pub failed: usize,
}

/// Fetches the current version of quarantined records of a source that serves
/// records by id (`record_url`) and stores it: a valid one resolves the quarantined
/// copy (see `Batch::valid`). `ids` limits it to those rows; `younger_than` to rows
/// quarantined since then; rows retried within `again_after` are left for later.
pub async fn refetch_quarantined(
    shared: &Shared,
    rt: &SourceRuntime,
    ids: &[i64],
    younger_than: Option<DateTime<Utc>>,
    again_after: Span,
    limit: usize,
) -> Result<Refetched, String> {
    let mut done = Refetched::default();
    if !rt.source.fetches_by_id() {
        return Ok(done);
    }
    let name = rt.config.name.as_str();
    let now = shared.now();
    let rows = shared
        .store
        .quarantine_list(Some(name), false, 1000)
        .await
        .map_err(|e| e.to_string())?;
    let ctx = shared.context();
    for row in rows
        .into_iter()
        .filter(|r| ids.is_empty() || ids.contains(&r.id))
        .filter(|r| younger_than.is_none_or(|t| r.received_at >= t))
        .filter(|r| r.retried_at.is_none_or(|t| t + again_after <= now))
        .take(limit)
    {
        let Some(case_id) = row.case_id.as_deref() else {
            continue;
        };
        let pctx = PollContext {
            source: name,
            now,
            since: now,
            calendar: &ctx.calendar,
            directory: &ctx.directory,
            catalogue: &ctx.catalogue,
            ledger: &shared.store,
        };
        let fetched = rt.source.fetch_one(case_id, &pctx).await;
        shared
            .store
            .quarantine_mark_retried(&[row.id], now)
            .await
            .map_err(|e| e.to_string())?;
        match fetched {
            Ok(records) => {
                done.fetched += 1;
                let stats = ingest(shared, name, &rt.mapping, Delivery::records(records), now)
                    .await
                    .map_err(|e| e.to_string())?;
                shared.count_ingest(name, &stats);
                let still = shared
                    .store
                    .quarantine_get(row.id)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_some_and(|r| !r.resolved);
                if !still {
                    done.resolved += 1;
                }
            }
            Err(e) => {
                done.failed += 1;
                tracing::warn!(source = name, quarantine_id = row.id, error = %e, "refetch failed");
            }
        }
    }
    if done.fetched > 0 {
        shared.metrics_changed();
    }
    Ok(done)
}

/// Compares a poll's change times with the daemon's clock: a source stamping changes
/// in the future, or stamping them earlier than a cursor on our own clock would have
/// asked for (its clock runs behind, or it commits long after stamping).
pub(crate) fn clock_warning(
    times: &ChangeTimes,
    started: DateTime<Utc>,
    previous_poll: Option<DateTime<Utc>>,
    overlap: Span,
) -> (Option<i64>, Option<String>) {
    let Some(newest) = times.newest_changed else {
        return (None, None);
    };
    let skew = (newest - started).num_seconds();
    let warning = if newest > started + FUTURE_TOLERANCE {
        Some(format!(
            "records are stamped up to {skew} s after this daemon's clock: the source's clock runs ahead"
        ))
    } else if previous_poll.is_some_and(|p| newest < p - overlap) {
        Some(format!(
            "a change stamped {} s before this poll arrived after the previous poll, more than the overlap ({} s) late: \
             the source's clock runs behind, or it commits changes long after stamping them (nothing is lost: the cursor follows the records)",
            -skew,
            overlap.num_seconds()
        ))
    } else {
        None
    };
    (Some(skew), warning)
}

/// Quarantined records a poll fetches again by id, at most, and how long before the
/// same one is tried again.
pub(crate) const REFETCH_PER_POLL: usize = 20;

pub(crate) const REFETCH_AGAIN_MINUTES: i64 = 10;

/// How far ahead of the daemon's clock a change time may be before it is a skew.
pub(crate) const FUTURE_TOLERANCE: Span = Span::seconds(60);

/// Polls one source once: fetch, ingest, record the run and the source's health.
pub async fn poll_once(
    shared: &Shared,
    rt: &SourceRuntime,
    timeout: std::time::Duration,
    max_backoff: u64,
) {
    let name = rt.config.name.as_str();
    let started = shared.now();
    let (skip, previous_poll) = shared
        .health()
        .iter()
        .find(|h| h.name == name)
        .map(|h| {
            (
                h.next_attempt.is_some_and(|next| started < next),
                h.last_poll,
            )
        })
        .unwrap_or((false, None));
    if skip {
        tracing::debug!(source = name, "backing off");
        return;
    }
    let result = read_source(shared, rt, None, true, timeout, started).await;
    // Records that came garbled within the last day: their current version, by id.
    if rt.source.fetches_by_id() && matches!(&result, Ok(o) if o.error.is_none()) {
        match refetch_quarantined(
            shared,
            rt,
            &[],
            Some(started - Span::days(1)),
            Span::minutes(REFETCH_AGAIN_MINUTES),
            REFETCH_PER_POLL,
        )
        .await
        {
            Ok(r) if r.fetched + r.failed > 0 => tracing::info!(
                source = name,
                fetched = r.fetched,
                resolved = r.resolved,
                failed = r.failed,
                "quarantined records fetched again by id"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(source = name, error = %e, "refetching quarantined records failed")
            }
        }
    }
    let finished = shared.now();
    shared
        .metrics
        .poll_duration
        .with_label_values(&[name])
        .observe((finished - started).num_milliseconds() as f64 / 1000.0);
    let (outcome, failure) = match result {
        Ok(o) => {
            let e = o.error.clone();
            (Some(o), e)
        }
        Err(e) => (None, Some(e)),
    };
    let committed = outcome.as_ref().map(|o| o.committed).unwrap_or_default();
    let moved = outcome.as_ref().and_then(|o| o.cursor);
    let first_since = outcome.as_ref().and_then(|o| o.first_since);
    let overlap = Span::seconds(rt.config.overlap_seconds.max(0));
    let (skew, warning) = clock_warning(&committed.times, started, previous_poll, overlap);
    if let Some(w) = &warning {
        tracing::warn!(source = name, skew_seconds = skew, "{w}");
    }
    let mut first_warning = None;
    if let Some(initial) = first_since.filter(|_| failure.is_none()) {
        if rt.source.cursor_from_records() && shared.open_changed_before(name, initial) == 0 {
            let w = format!(
                "the first poll found no open case last changed before {} (initial_cursor): an open dossier unchanged since then \
                 is not read unless the source is also asked for open dossiers whatever their change time (README: Connect a real one-stop system)",
                crate::timefmt::rfc3339(initial, &shared.context().calendar)
            );
            tracing::warn!(source = name, "{w}");
            first_warning = Some(w);
        }
    }
    shared.metrics_changed();
    let s = committed.stats;
    let n = committed.records;
    let (ok, message) = match &failure {
        None => {
            tracing::info!(
                source = name,
                records = n,
                inserted = s.inserted,
                updated = s.updated,
                unchanged = s.unchanged,
                quarantined = s.quarantined,
                ms = (finished - started).num_milliseconds(),
                "poll done"
            );
            (
                true,
                format!(
                    "{n} records: {} inserted, {} updated, {} unchanged, {} quarantined",
                    s.inserted, s.updated, s.unchanged, s.quarantined
                ),
            )
        }
        Some(e) => {
            let kept = match moved {
                Some(c) => format!(
                    "{n} records stored before it; the next poll reads on from {}",
                    c.to_rfc3339()
                ),
                None if n > 0 => format!(
                    "{n} records stored before it; the cursor did not move (they carry no change time)"
                ),
                None => "nothing stored; the cursor did not move".to_string(),
            };
            tracing::error!(source = name, error = %e, stored = n, "poll failed: {kept}");
            (false, format!("{e} ({kept})"))
        }
    };
    shared.update_health(name, |h| {
        h.last_poll = Some(started);
        if let Some(c) = moved {
            h.cursor = Some(c.to_rfc3339());
        }
        if skew.is_some() {
            h.clock_skew_seconds = skew;
            h.clock_warning = warning.clone();
        }
        if first_warning.is_some() {
            h.first_poll_warning = first_warning.clone();
        }
        if ok {
            h.up = true;
            h.last_success = Some(finished);
            h.last_error = None;
            h.consecutive_failures = 0;
            h.next_attempt = None;
            h.last_records = n;
        } else {
            h.up = false;
            h.last_error = Some(message.clone());
            h.consecutive_failures += 1;
            let backoff = (5u64 << h.consecutive_failures.min(10)).min(max_backoff.max(5));
            h.next_attempt = Some(finished + Span::seconds(backoff as i64));
        }
    });
    let run = JobRun {
        job: format!("poll:{name}"),
        started_at: started,
        finished_at: finished,
        ok,
        message,
    };
    if let Err(e) = shared.store.record_job(&run).await {
        tracing::warn!(source = name, error = %e, "cannot record the job run");
    }
}

/// Polls one source on its schedule, and once at start so a fresh daemon has data
/// without waiting a tick (under the same guard: a slow first poll and the ticks
/// never overlap).
pub struct PollJob {
    pub runtime: Arc<SourceRuntime>,
    pub timeout: std::time::Duration,
    pub max_backoff: u64,
    /// Notified when this replica takes the source's polling lease over.
    pub wake: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl super::Job for PollJob {
    fn name(&self) -> String {
        format!("poll:{}", self.runtime.config.name)
    }
    fn schedule(&self) -> String {
        self.runtime.config.schedule.clone()
    }
    fn at_start(&self) -> bool {
        true
    }
    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.wake.clone())
    }
    async fn run(&self, env: &super::JobEnv) {
        let shared = &env.shared;
        let name = self.runtime.config.name.as_str();
        match shared
            .hold(&super::replica::poll_lease(name), shared.now())
            .await
        {
            Ok(super::Held::Kept) => {}
            Ok(super::Held::Taken) => {
                // Memory first catches up with what the last poller committed.
                if let Err(e) = shared.follow(shared.now()).await {
                    tracing::warn!(source = name, error = %e, "cannot follow the change feed before polling");
                    return;
                }
                tracing::info!(source = name, holder = %shared.holder, "polling this source (lease taken)");
            }
            Ok(super::Held::Other) => {
                tracing::debug!(source = name, "another replica polls this source");
                return;
            }
            Err(e) => {
                tracing::warn!(source = name, error = %e, "cannot take the polling lease");
                return;
            }
        }
        poll_once(shared, &self.runtime, self.timeout, self.max_backoff).await;
        if let Err(e) = shared.share_health(name).await {
            tracing::warn!(source = name, error = %e, "cannot store the source's health");
        }
    }
}
