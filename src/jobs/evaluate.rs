//! Re-evaluation: every open case judged again at `now` (time moves states), only the
//! evaluations that changed stored; and the one-off backfill of ended cases' period
//! facts. Holds the write gate alone, so it never writes back an older evaluation.

use crate::sla::Lifecycle;
use crate::state::{summarize, Shared};
use crate::store::{EvalUpdate, StoreError};
use anyhow::Result;
use chrono::{DateTime, Utc};

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

/// Re-evaluates every open case at `now` and stores the evaluations that changed.
pub async fn reevaluate(shared: &Shared, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let timer = shared
        .metrics
        .evaluation_duration
        .with_label_values::<&str>(&[])
        .start_timer();
    let n = reevaluate_inner(shared, now).await;
    timer.observe_duration();
    shared.metrics_changed();
    n
}

pub(crate) async fn reevaluate_inner(
    shared: &Shared,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    // Alone from reading memory until memory and store hold the new evaluations: a
    // batch committed in between would otherwise be overwritten with an evaluation of
    // the case as it was (a returned case written back as open).
    let _gate = shared.write_gate.write().await;
    let ctx = shared.context();
    let updates: Vec<EvalUpdate> = {
        let open = shared.open.lock().expect("open lock");
        open.values()
            .filter_map(|entry| {
                let c = &entry.case;
                let e = ctx.evaluate(c, now).ok()?;
                let summary = summarize(c, &ctx, &e, now);
                if entry.eval.as_ref().is_some_and(|old| old.same_as(&summary)) {
                    return None;
                }
                Some(EvalUpdate {
                    source: c.source.to_string(),
                    case_id: c.case_id.clone(),
                    open: e.lifecycle == Lifecycle::Open,
                    eval: summary,
                })
            })
            .collect()
    };
    if updates.is_empty() {
        return Ok(0);
    }
    shared.store.save_evaluations(&updates).await?;
    let mut open = shared.open.lock().expect("open lock");
    for u in &updates {
        if let Some(e) = open.get_mut(&(u.source.clone(), u.case_id.clone())) {
            e.eval = Some(u.eval.clone());
        }
    }
    Ok(updates.len())
}
