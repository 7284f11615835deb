//! Re-evaluation: every open case judged again at `now` (time moves states), only the
//! evaluations that changed stored; and the one-off backfill of ended cases' period
//! facts. Holds the write gate alone, so it never writes back an older evaluation.

use crate::calendar::Calendar;
use crate::sla::model::Case;
use crate::sla::Lifecycle;
use crate::state::{summarize, Holds, Shared};
use crate::store::{EvalUpdate, StoreError};
use anyhow::Result;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Gives ended cases stored before schema version 2 their end and indicator 2.1, once
/// (recorded in `meta`), so the period counts include them.
pub async fn backfill_period_facts(
    shared: &Shared,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    const DONE: &str = "period_facts_backfilled";
    if shared.store.meta_get(DONE).await?.is_some() {
        return Ok(0);
    }
    let ctx = shared.context();
    let mut updates = Vec::new();
    shared
        .store
        .load_unjudged_each(&mut |case| {
            if let Ok(e) = ctx.evaluate(&case, now) {
                updates.push(EvalUpdate {
                    source: case.source.to_string(),
                    case_id: case.case_id.clone(),
                    open: e.lifecycle == Lifecycle::Open,
                    eval: summarize(&case, &ctx, &e, now),
                });
            }
        })
        .await?;
    for chunk in updates.chunks(10_000) {
        shared.store.save_evaluations(chunk).await?;
    }
    shared.store.meta_put(DONE, &now.to_rfc3339()).await?;
    Ok(updates.len())
}

/// How many threads judge `n` open cases: one per core, none extra for a few.
fn evaluation_threads(n: usize) -> usize {
    if n < 20_000 {
        return 1;
    }
    std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1)
        .clamp(1, 16)
}

/// Re-evaluates every open case at `now` and stores the evaluations that changed: how
/// many changed.
pub async fn reevaluate(shared: &Shared, now: DateTime<Utc>) -> Result<usize, StoreError> {
    reevaluate_counted(shared, now).await.map(|r| r.changed)
}

/// What a re-evaluation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reevaluated {
    /// Open cases judged by the engine (their evaluation could have moved).
    pub judged: usize,
    /// Open cases whose evaluation was known to hold at `now` (not judged again).
    pub held: usize,
    /// Evaluations that changed, stored.
    pub changed: usize,
}

/// [`reevaluate`], saying how many cases were judged, held and changed.
pub async fn reevaluate_counted(
    shared: &Shared,
    now: DateTime<Utc>,
) -> Result<Reevaluated, StoreError> {
    let timer = shared
        .metrics
        .evaluation_duration
        .with_label_values::<&str>(&[])
        .start_timer();
    let n = reevaluate_inner(shared, now).await;
    timer.observe_duration();
    if let Ok(r) = &n {
        shared
            .metrics
            .last_evaluation
            .set(now.timestamp_millis() as f64 / 1000.0);
        tracing::debug!(
            judged = r.judged,
            held = r.held,
            changed = r.changed,
            "re-evaluated"
        );
    }
    shared.metrics_changed();
    n
}

pub(crate) async fn reevaluate_inner(
    shared: &Shared,
    now: DateTime<Utc>,
) -> Result<Reevaluated, StoreError> {
    // Alone from reading memory until memory and store hold the new evaluations: a
    // batch committed in between would otherwise be overwritten with an evaluation of
    // the case as it was (a returned case written back as open).
    let _gate = shared.write_gate.write().await;
    let (ctx, generation) = shared.context_generation();
    let mut counts = Reevaluated::default();
    let changed: Vec<(EvalUpdate, Holds)> = {
        let mut open = shared.open.lock().expect("open lock");
        let total = open.len();
        // Only the cases whose evaluation may have moved since it was made: the
        // others' would come out the same (`sla::horizon`).
        let mut entries: Vec<&mut crate::state::Entry> = open
            .values_mut()
            .filter(|e| !e.holds.is_some_and(|h| h.at(generation, now)))
            .collect();
        counts.judged = entries.len();
        counts.held = total - entries.len();
        // A case found the same holds from now on at once; one that changed only once
        // its evaluation is stored (below), so a failed write is judged again.
        let judge = |part: &mut [&mut crate::state::Entry]| -> Vec<(EvalUpdate, Holds)> {
            part.iter_mut()
                .filter_map(|entry| {
                    let c = &entry.case;
                    let (e, summary, until) = ctx.judge_holding(c, now).ok()?;
                    let holds = Holds {
                        generation,
                        from: now,
                        until,
                    };
                    if entry.eval.as_ref().is_some_and(|old| old.same_as(&summary)) {
                        entry.holds = Some(holds);
                        return None;
                    }
                    Some((
                        EvalUpdate {
                            source: c.source.to_string(),
                            case_id: c.case_id.clone(),
                            open: e.lifecycle == Lifecycle::Open,
                            eval: summary,
                        },
                        holds,
                    ))
                })
                .collect()
        };
        // The engine is pure: the cases are judged on every core at once.
        let threads = evaluation_threads(entries.len());
        if threads <= 1 {
            judge(&mut entries)
        } else {
            let size = entries.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = entries
                    .chunks_mut(size)
                    .map(|part| scope.spawn(move || judge(part)))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("an evaluation thread panicked"))
                    .collect()
            })
        }
    };
    if changed.is_empty() {
        return Ok(counts);
    }
    let (updates, holds): (Vec<EvalUpdate>, Vec<Holds>) = changed.into_iter().unzip();
    shared.store.save_evaluations(&updates).await?;
    counts.changed = updates.len();
    let mut open = shared.open.lock().expect("open lock");
    for (u, holds) in updates.into_iter().zip(holds) {
        if let Some(e) = open.get_mut(&(u.source, u.case_id)) {
            e.eval = Some(u.eval);
            e.holds = Some(holds);
        }
    }
    Ok(counts)
}

/// Every `evaluate_schedule` tick: re-evaluates the open cases, catches up on the
/// reports the daemon missed today (down at the time, or a replica died halfway), then
/// runs the alert pass.
pub struct EvaluateJob {
    pub schedule: String,
}

#[async_trait::async_trait]
impl super::Job for EvaluateJob {
    fn name(&self) -> String {
        "evaluate".into()
    }
    fn schedule(&self) -> String {
        self.schedule.clone()
    }
    async fn run(&self, env: &super::JobEnv) {
        let (shared, alerts) = (&env.shared, &env.alerts);
        let t = shared.now();
        match reevaluate(shared, t).await {
            Ok(n) => tracing::debug!(
                changed = n,
                ms = (shared.now() - t).num_milliseconds(),
                "re-evaluated"
            ),
            Err(e) => tracing::warn!(error = %e, "re-evaluation failed"),
        }
        match super::digest_catch_up(shared, alerts, shared.now()).await {
            Ok(p) if p.ran => {
                tracing::info!(
                    units = p.units,
                    queued = p.queued,
                    "morning digest caught up"
                );
                env.dispatch_wanted.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "digest catch-up failed"),
        }
        match super::weekly_catch_up(shared, alerts, shared.now()).await {
            Ok(true) => {
                tracing::info!("weekly report caught up");
                env.dispatch_wanted.notify_one();
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "weekly catch-up failed"),
        }
        match super::monthly_pass(shared, alerts, &alerts.weekly_schedule, shared.now()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(messages = n, "monthly report caught up");
                env.dispatch_wanted.notify_one();
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "monthly report catch-up failed"),
        }
        match super::alert_pass(shared, alerts, shared.now()).await {
            Ok(p) if p.fired + p.resolved > 0 => {
                tracing::info!(
                    fired = p.fired,
                    resolved = p.resolved,
                    queued = p.queued,
                    "alerts"
                );
                env.dispatch_wanted.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "alert pass failed"),
        }
    }
}

/// Nightly: quarantined records older than the retention are removed.
pub struct PurgeJob {
    pub retention_days: i64,
}

#[async_trait::async_trait]
impl super::Job for PurgeJob {
    fn name(&self) -> String {
        "purge-quarantine".into()
    }
    fn schedule(&self) -> String {
        "0 15 3 * * *".into()
    }
    async fn run(&self, env: &super::JobEnv) {
        let shared = &env.shared;
        match shared
            .store
            .quarantine_purge(shared.now() - chrono::Duration::days(self.retention_days))
            .await
        {
            Ok(n) if n > 0 => tracing::info!(purged = n, "quarantine purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "quarantine purge failed"),
        }
        // The change feed is read within seconds; a day of it is kept for replicas
        // that were cut off a while (one cut off longer reloads its memory whole).
        match shared
            .store
            .changes_purge(shared.now() - super::replica::CHANGES_KEPT)
            .await
        {
            Ok(n) if n > 0 => tracing::info!(purged = n, "change feed purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "change feed purge failed"),
        }
    }
}

/// After a calendar reload: says what it moved among the open cases, then evaluates
/// them all under the new calendar at once (not at the next scheduled pass).
pub async fn apply_calendar(shared: Arc<Shared>, before: Arc<Calendar>) {
    let now = shared.now();
    let ctx = shared.context();
    let cases: Vec<Case> = shared
        .select_open(|_| true)
        .into_iter()
        .map(|e| e.case)
        .collect();
    let c = ctx.clone();
    let b = before.clone();
    let diff = tokio::task::spawn_blocking(move || {
        crate::sla::compare::compare(
            &cases,
            &crate::sla::compare::Sides {
                before: &b,
                after: &c.calendar,
                policy: &c.policy,
                catalogue: &c.catalogue,
                now,
            },
        )
    })
    .await;
    if let Ok(d) = diff {
        tracing::info!(
            from = %before.version(),
            to = %ctx.calendar.version(),
            official_until = ?ctx.calendar.official_until(),
            open = d.total.open,
            dues_moved = d.total.dues_moved,
            earlier = d.total.earlier,
            later = d.total.later,
            states_changed = d.total.states_changed,
            "calendar reloaded"
        );
    }
    match reevaluate(&shared, now).await {
        Ok(n) => tracing::info!(changed = n, "re-evaluated under the new calendar"),
        Err(e) => tracing::warn!(error = %e, "re-evaluation after the calendar reload failed"),
    }
}
