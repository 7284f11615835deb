//! The monthly report: on the first workday of each month, the previous month's Biểu 06
//! (XLSX attached, the summary in the body) to the heads of the units tagged
//! `provincial_office` and `home_affairs`, once; caught up when that day's run was
//! missed (the daemon was down), on the next run.

use crate::jobs::report::TthcRequest;
use crate::report::tthc::{By, Options};
use crate::report::ReportPeriod;
use crate::sla::model::Kind;
use crate::state::Shared;
use crate::store::OutboxNew;
use anyhow::Result;
use chrono::{DateTime, Datelike, Duration as Span, NaiveDate, Utc};

/// The store key holding the last month whose report was queued (`2026-11`).
pub(crate) const MONTHLY_DONE: &str = "monthly_report_done";

/// The tags whose heads receive it.
pub const MONTHLY_TAGS: [&str; 2] = ["provincial_office", "home_affairs"];

/// The first workday of the month of `d`.
pub fn first_workday(cal: &crate::calendar::Calendar, d: NaiveDate) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(d.year(), d.month(), 1)?;
    (0..31)
        .map(|k| first + Span::days(k))
        .take_while(|x| x.month() == d.month())
        .find(|x| cal.is_workday(*x))
}

/// Queues last month's report when it is due and not yet queued: from the first
/// workday of the month, once `schedule` has fired that day (so not at midnight), on
/// any later day when it was missed. Returns how many messages were queued.
pub async fn monthly_pass(
    shared: &Shared,
    cfg: &crate::config::AlertsConfig,
    schedule: &str,
    now: DateTime<Utc>,
) -> Result<usize> {
    if !cfg.monthly_report {
        return Ok(0);
    }
    let ctx = shared.context();
    let today = ctx.calendar.local(now).date();
    let Some(first) = first_workday(&ctx.calendar, today) else {
        return Ok(0);
    };
    if today < first {
        return Ok(0);
    }
    if today == first {
        let fired = crate::scheduler::last_fire(schedule, ctx.calendar.zone(), now)
            .is_some_and(|t| ctx.calendar.local(t).date() == today);
        if !fired {
            return Ok(0);
        }
    }
    let period = ReportPeriod::previous_month(today);
    if shared.store.meta_get(MONTHLY_DONE).await?.as_deref() == Some(period.label.as_str()) {
        return Ok(0);
    }
    let to = crate::alert::tagged_heads(&ctx.directory, &MONTHLY_TAGS);
    if to.is_empty() {
        return Ok(0);
    }
    if !super::first_polls_done(shared) || !shared.hold("monthly_report", now).await?.ours() {
        return Ok(0);
    }
    let item = monthly_item(shared.store.as_ref(), &ctx, cfg, &period, now).await?;
    let domain = crate::alert::message::domain_of(&cfg.from);
    let rows: Vec<OutboxNew> = to
        .iter()
        .map(|r| OutboxNew {
            message_id: crate::alert::message::message_id(
                "monthly_report",
                &[&period.label, &r.email.to_ascii_lowercase()],
                &domain,
            ),
            channel: "email".into(),
            rule: "monthly_report".into(),
            source: "monthly_report".into(),
            case_id: period.label.clone(),
            to_addr: r.email.clone(),
            to_name: r.name.clone(),
            cc: "[]".into(),
            lang: cfg.language.clone(),
            item: item.clone(),
            not_before: now,
            level: 0,
            due_key: String::new(),
        })
        .collect();
    shared.store.alerts_apply(&[], &[], &rows, now).await?;
    shared.store.meta_put(MONTHLY_DONE, &period.label).await?;
    Ok(rows.len())
}

/// The outbox item of a month's report e-mail: the summary, and the XLSX (base64).
pub async fn monthly_item(
    store: &dyn crate::store::Store,
    ctx: &crate::state::Context,
    cfg: &crate::config::AlertsConfig,
    period: &ReportPeriod,
    now: DateTime<Utc>,
) -> Result<String> {
    let req = TthcRequest {
        period: period.clone(),
        by: By::Unit,
        unit: None,
        kind: Kind::Dossier,
        options: Options::default(),
    };
    let report = crate::jobs::report::tthc(store, ctx, &req, now).await?;
    let xlsx = crate::report::render::xlsx(&report, &ctx.calendar).map_err(anyhow::Error::msg)?;
    let mut item = crate::report::mail::context(&report, &ctx.calendar, &cfg.language);
    item["attachments"] = serde_json::json!([{
        "name": crate::report::render::file_name(&report, crate::report::render::ReportFormat::Xlsx),
        "content_type": crate::report::render::ReportFormat::Xlsx.content_type(),
        "base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &xlsx),
    }]);
    Ok(item.to_string())
}

/// The monthly report, considered on `alerts.weekly_schedule` (daily).
pub struct MonthlyJob {
    pub schedule: String,
}

#[async_trait::async_trait]
impl super::Job for MonthlyJob {
    fn name(&self) -> String {
        "monthly_report".into()
    }
    fn schedule(&self) -> String {
        self.schedule.clone()
    }
    async fn run(&self, env: &super::JobEnv) {
        match monthly_pass(&env.shared, &env.alerts, &self.schedule, env.shared.now()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(messages = n, "monthly report queued");
                env.dispatch_wanted.notify_one();
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "monthly report failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_workday_of_a_month() {
        let cal = crate::calendar::Calendar::builtin();
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        // 01/12/2026 is a Tuesday.
        assert_eq!(first_workday(&cal, d("2026-12-15")), Some(d("2026-12-01")));
        // 01/11/2026 is a Sunday: Monday 02/11.
        assert_eq!(first_workday(&cal, d("2026-11-20")), Some(d("2026-11-02")));
        // 01/01/2026 (Thursday) is New Year's day and Friday 02/01 a swapped day off
        // (made up on Saturday 10/01, data/vn-official-days.csv): Monday 05/01.
        assert_eq!(first_workday(&cal, d("2026-01-20")), Some(d("2026-01-05")));
    }
}
