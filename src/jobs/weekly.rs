//! The weekly report to the provincial office, and its catch-up.

use super::*;
use crate::state::Shared;
use crate::store::{OutboxNew, StoreError};
use anyhow::Result;
use chrono::{DateTime, Duration as Span, Utc};

/// The store key holding the Monday of the last week a weekly report was queued.
pub(crate) const WEEKLY_DONE: &str = "weekly_done";

/// Queues this week's report when its run was missed (as [`digest_catch_up`]).
pub async fn weekly_catch_up(
    shared: &Shared,
    cfg: &crate::config::AlertsConfig,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let ctx = shared.context();
    let monday = crate::alert::weekly::week_of(ctx.calendar.local(now).date());
    // Without a provincial office there is no report (the scheduled run says so once).
    if crate::alert::provincial_office(&ctx.directory).is_none()
        || !missed_today(&ctx, &cfg.weekly_schedule, now)
        || !first_polls_done(shared)
        || shared.store.meta_get(WEEKLY_DONE).await?.as_deref() == Some(&monday.to_string())
    {
        return Ok(false);
    }
    weekly_pass(shared, cfg, now).await
}

/// Builds and queues the weekly report to the provincial office on the first workday
/// of each week (runs daily; once per week however often it runs).
pub async fn weekly_pass(
    shared: &Shared,
    cfg: &crate::config::AlertsConfig,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    use crate::alert::weekly;
    let ctx = shared.context();
    let today = ctx.calendar.local(now).date();
    let monday = weekly::week_of(today);
    let first_workday = ctx.calendar.is_workday(today)
        && (0..(today - monday).num_days())
            .all(|k| !ctx.calendar.is_workday(monday + Span::days(k)));
    if !first_workday {
        return Ok(false);
    }
    let Some(to) = crate::alert::provincial_office(&ctx.directory) else {
        tracing::warn!("no unit tagged provincial_office with a head e-mail: no weekly report");
        return Ok(false);
    };
    if !shared.hold("weekly", now).await?.ours() {
        return Ok(false);
    }
    let context = weekly_context(shared, cfg, today).await?;
    let message_id = crate::alert::message::message_id(
        "weekly",
        &[&monday.to_string(), &to.email.to_ascii_lowercase()],
        &crate::alert::message::domain_of(&cfg.from),
    );
    let row = OutboxNew {
        message_id,
        channel: "email".into(),
        rule: "weekly".into(),
        source: "weekly".into(),
        case_id: monday.to_string(),
        to_addr: to.email.clone(),
        to_name: to.name.clone(),
        cc: "[]".into(),
        lang: cfg.language.clone(),
        item: context.to_string(),
        not_before: now,
        level: 0,
        due_key: String::new(),
    };
    shared.store.alerts_apply(&[], &[], &[row], now).await?;
    shared
        .store
        .meta_put(WEEKLY_DONE, &monday.to_string())
        .await?;
    Ok(true)
}

/// What the weekly report of the week of `today` says (the template context without
/// the recipient): nothing is queued or written.
pub async fn weekly_context(
    shared: &Shared,
    cfg: &crate::config::AlertsConfig,
    today: chrono::NaiveDate,
) -> Result<serde_json::Value, StoreError> {
    use crate::alert::weekly;
    let ctx = shared.context();
    let weeks = weekly::last_four_weeks(today);
    let records: Vec<(String, chrono::NaiveDate)> = shared
        .store
        .unit_weeks_since(&weeks[0].to_string())
        .await?
        .into_iter()
        .filter_map(|(u, w)| w.parse().ok().map(|w| (u, w)))
        .collect();
    Ok(weekly::build(
        &shared.unit_summaries(),
        &records,
        today,
        &ctx.directory,
        &cfg.language,
    ))
}

/// The weekly report, on `alerts.weekly_schedule`.
pub struct WeeklyJob {
    pub schedule: String,
}

#[async_trait::async_trait]
impl super::Job for WeeklyJob {
    fn name(&self) -> String {
        "weekly".into()
    }
    fn schedule(&self) -> String {
        self.schedule.clone()
    }
    async fn run(&self, env: &super::JobEnv) {
        match weekly_pass(&env.shared, &env.alerts, env.shared.now()).await {
            Ok(true) => {
                tracing::info!("weekly report queued");
                env.dispatch_wanted.notify_one();
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "weekly report failed"),
        }
    }
}
