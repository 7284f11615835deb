//! The morning digest per unit, and its catch-up when the daemon was down at the time.

use crate::state::{Context, Shared};
use crate::store::{OutboxNew, StoreError};
use anyhow::Result;
use chrono::{DateTime, Duration as Span, Utc};

/// What one morning digest run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DigestPass {
    /// False on a day off (and while another daemon holds the digest lease).
    pub ran: bool,
    pub units: usize,
    pub cases: usize,
    pub queued: usize,
}

/// The morning digests at `now`, one per unit with something to report (nothing is
/// queued or written): the listing the digest pass queues, and what `notify preview
/// digest` shows.
pub async fn build_digests(
    shared: &Shared,
    cfg: &crate::config::AlertsConfig,
    now: DateTime<Utc>,
) -> Result<Vec<crate::alert::digest::Digest>, StoreError> {
    let ctx = shared.context();
    let today = ctx.calendar.local(now).date();
    let stale: Vec<(String, String)> = shared
        .health()
        .into_iter()
        .filter(|h| !h.up)
        .map(|h| {
            let since = h
                .last_success
                .map(|t| crate::timefmt::minutes(t, &ctx.calendar))
                .unwrap_or_else(|| "—".into());
            (h.name, since)
        })
        .collect();
    shared.refresh_acks().await?;
    let listed: Vec<crate::alert::digest::Listed> = {
        let acks = shared.acks.lock().expect("acks lock");
        shared.with_open(|entries| {
            entries
                .filter_map(|e| {
                    let ev = e.eval.as_ref()?;
                    let section = crate::alert::digest::section_of(ev)?;
                    let ack = acks
                        .find(
                            &e.case.source,
                            &e.case.case_id,
                            section,
                            &crate::store::due_key(ev.due),
                        )
                        .map(|a| {
                            serde_json::json!({
                                "by": a.by,
                                "note": a.note,
                                "at": crate::timefmt::minutes(a.at, &ctx.calendar),
                            })
                        });
                    crate::alert::digest::listed(&e.case, ev, ack.is_some(), || {
                        let mut item = crate::alert::message::case_item(&e.case, ev, &ctx, cfg);
                        item["ack"] = ack.unwrap_or(serde_json::Value::Null);
                        item
                    })
                })
                .collect()
        })
    };
    let lang = cfg.language.clone();
    let labels = |s: &str| crate::notify::templates::rule_label(s, &lang).to_string();
    let date = today.format("%d/%m/%Y").to_string();
    let digests = crate::alert::digest::build(
        listed,
        &ctx.directory,
        &date,
        &labels,
        &|s| crate::alert::mail::action(s, &lang),
        &stale,
        cfg.list_limit as usize,
    );
    Ok(digests)
}

/// Builds and queues the morning digests (SPEC §10): on workdays only (make-up
/// Saturdays included, holidays skipped), one per unit with something to report,
/// once per unit and day however often it runs.
pub async fn digest_pass(
    shared: &Shared,
    cfg: &crate::config::AlertsConfig,
    now: DateTime<Utc>,
) -> Result<DigestPass, StoreError> {
    let ctx = shared.context();
    let today = ctx.calendar.local(now).date();
    if !ctx.calendar.is_workday(today) {
        tracing::info!(date = %today, "not a workday: no digest");
        return Ok(DigestPass::default());
    }
    if !shared.hold("digest", now).await?.ours() {
        return Ok(DigestPass::default());
    }
    let digests = build_digests(shared, cfg, now).await?;
    let lang = cfg.language.clone();
    let mut outbox = Vec::new();
    let domain = crate::alert::message::domain_of(&cfg.from);
    let mut pass = DigestPass {
        ran: true,
        ..DigestPass::default()
    };
    for d in &digests {
        pass.units += 1;
        pass.cases += d.cases;
        // One e-mail per person who answers for the unit (never a Cc).
        let mut people: Vec<&crate::alert::Recipient> = d.to.iter().chain(&d.cc).collect();
        people.dedup_by(|a, b| a.email.eq_ignore_ascii_case(&b.email));
        for to in people {
            let message_id = crate::alert::message::message_id(
                "digest",
                &[&d.unit, &today.to_string(), &to.email.to_ascii_lowercase()],
                &domain,
            );
            outbox.push(OutboxNew {
                message_id,
                channel: "email".into(),
                rule: "digest".into(),
                source: "digest".into(),
                case_id: d.unit.clone(),
                to_addr: to.email.clone(),
                to_name: to.name.clone(),
                cc: "[]".into(),
                lang: lang.clone(),
                item: d.context.to_string(),
                not_before: now,
                level: 0,
                due_key: String::new(),
            });
        }
    }
    pass.queued = outbox.len();
    shared.store.alerts_apply(&[], &[], &outbox, now).await?;
    shared
        .store
        .meta_put(DIGEST_DONE, &today.to_string())
        .await?;
    Ok(pass)
}

/// The store key holding the last day a morning digest was queued.
pub(crate) const DIGEST_DONE: &str = "digest_done";

/// Whether every polled source has been tried since start-up, so a report caught up
/// right after a restart states the data as it is (fresh, or stale since when).
pub(crate) fn first_polls_done(shared: &Shared) -> bool {
    shared
        .health()
        .iter()
        .all(|h| h.kind == "push" || h.last_poll.is_some())
}

/// Whether a job on `schedule` fired earlier today and today's sending window is not
/// over yet: the time to catch up on a run that was missed.
pub(crate) fn missed_today(ctx: &Context, schedule: &str, now: DateTime<Utc>) -> bool {
    let today = ctx.calendar.local(now).date();
    // Five minutes' grace: the scheduled run itself may still be going.
    let fired_today = crate::scheduler::last_fire(schedule, ctx.calendar.zone(), now)
        .is_some_and(|t| ctx.calendar.local(t).date() == today && t + Span::minutes(5) <= now);
    let window_left = ctx
        .calendar
        .local(crate::alert::next_window(&ctx.calendar, now))
        .date()
        == today;
    fired_today && window_left
}

/// Runs the morning digest when today's was missed: the daemon was down at the
/// scheduled time, the store failed, or the replica holding the lease died halfway.
/// Checked every evaluation round; does nothing once today's digest is queued, on days
/// off, before the scheduled time and after the sending window has closed.
pub async fn digest_catch_up(
    shared: &Shared,
    cfg: &crate::config::AlertsConfig,
    now: DateTime<Utc>,
) -> Result<DigestPass, StoreError> {
    let ctx = shared.context();
    let today = ctx.calendar.local(now).date();
    if !ctx.calendar.is_workday(today)
        || !missed_today(&ctx, &cfg.digest_schedule, now)
        || !first_polls_done(shared)
    {
        return Ok(DigestPass::default());
    }
    if shared.store.meta_get(DIGEST_DONE).await?.as_deref() == Some(&today.to_string()) {
        return Ok(DigestPass::default());
    }
    tracing::info!(date = %today, "the morning digest was missed: catching up");
    digest_pass(shared, cfg, now).await
}

/// The morning digest, on `alerts.digest_schedule`.
pub struct DigestJob {
    pub schedule: String,
}

#[async_trait::async_trait]
impl super::Job for DigestJob {
    fn name(&self) -> String {
        "digest".into()
    }
    fn schedule(&self) -> String {
        self.schedule.clone()
    }
    async fn run(&self, env: &super::JobEnv) {
        let t = std::time::Instant::now();
        match digest_pass(&env.shared, &env.alerts, env.shared.now()).await {
            Ok(p) if p.ran => {
                tracing::info!(
                    units = p.units,
                    cases = p.cases,
                    queued = p.queued,
                    ms = t.elapsed().as_millis() as u64,
                    "morning digest queued"
                );
                env.dispatch_wanted.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "digest failed"),
        }
    }
}
