//! The outbox worker: claims due messages (on PostgreSQL with `FOR UPDATE SKIP
//! LOCKED`, so several daemons share the work), renders them, sends them through the
//! configured transport ([`crate::notify`]) and marks them sent, or retries with
//! back-off and dead-letters after `max_attempts`. The outbox is written in the same
//! transaction as the alert state ([`crate::jobs::alerts`]).

use crate::alert::Recipient;
use crate::config::AlertsConfig;
use crate::notify::templates::Templates;
use crate::notify::{Email, NotifyError, Transport};
use crate::state::Shared;
use crate::store::{NotificationRow, OutboxRow, Store};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Sends due messages every few seconds (and when an alert pass queued some) until
/// cancelled; a failing transport is retried per message with back-off.
pub async fn dispatch_loop(
    shared: Arc<Shared>,
    transport: Arc<dyn crate::notify::Transport>,
    templates: crate::notify::templates::Templates,
    cfg: Arc<crate::config::AlertsConfig>,
    wanted: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
) {
    let pace = Pace::default();
    // Every rule's series, sent and failed, present from the start at zero.
    for rule in crate::alert::RULES
        .iter()
        .chain(&["digest", "weekly", "monthly_report"])
    {
        for result in ["sent", "failed"] {
            let _ =
                shared
                    .metrics
                    .notifications
                    .with_label_values(&[transport.name(), rule, result]);
        }
    }
    loop {
        let now = shared.now();
        let offset = *shared.context().calendar.with_zone(now).offset();
        match dispatch_paced(
            shared.store.as_ref(),
            transport.as_ref(),
            &templates,
            &cfg,
            &pace,
            now,
            offset,
        )
        .await
        {
            Ok(d) => {
                for (rule, result) in &d.events {
                    shared
                        .metrics
                        .notifications
                        .with_label_values(&[transport.name(), rule.as_str(), result])
                        .inc();
                }
                if d.sent + d.failed + d.dead > 0 {
                    tracing::info!(sent = d.sent, failed = d.failed, dead = d.dead, "outbox");
                }
            }
            Err(e) => tracing::warn!(error = %e, "outbox dispatch failed"),
        }
        if let Ok(n) = shared.store.outbox_pending().await {
            shared
                .metrics
                .outbox_pending
                .with_label_values(&[transport.name()])
                .set(n);
        }
        if let Ok(n) = shared.store.outbox_dead().await {
            shared
                .metrics
                .outbox_dead
                .with_label_values(&[transport.name()])
                .set(n);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wanted.notified() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
    }
}

/// Back-off after `attempts` failed attempts: `base` seconds doubling, at most an hour.
pub fn backoff(base: u32, attempts: i32) -> Duration {
    Duration::seconds(((base.max(1) as i64) << (attempts - 1).clamp(0, 12)).min(3600))
}

/// What one dispatch round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    pub sent: usize,
    pub failed: usize,
    pub dead: usize,
    /// Held back by the bundling window or the hourly cap.
    pub postponed: usize,
    /// (rule, `sent` | `failed`) per attempt, for the metrics.
    pub events: Vec<(String, &'static str)>,
}

/// What each recipient was sent lately, for the bundling window and the hourly cap.
#[derive(Default)]
pub struct Pace {
    sent: std::sync::Mutex<
        std::collections::HashMap<String, std::collections::VecDeque<DateTime<Utc>>>,
    >,
}

impl Pace {
    /// When a new alert e-mail to `to` may go out (`now` when it may).
    fn allowed(&self, to: &str, now: DateTime<Utc>, cfg: &AlertsConfig) -> DateTime<Utc> {
        let mut sent = self.sent.lock().expect("pace lock");
        let hist = sent.entry(to.to_ascii_lowercase()).or_default();
        while hist.front().is_some_and(|t| *t <= now - Duration::hours(1)) {
            hist.pop_front();
        }
        let window = Duration::minutes(cfg.bundle_window_minutes as i64);
        if let Some(last) = hist.back() {
            if now < *last + window {
                return *last + window;
            }
        }
        if cfg.hourly_cap > 0 && hist.len() >= cfg.hourly_cap as usize {
            if let Some(first) = hist.front() {
                return *first + Duration::hours(1);
            }
        }
        now
    }

    fn record(&self, to: &str, at: DateTime<Utc>) {
        self.sent
            .lock()
            .expect("pace lock")
            .entry(to.to_ascii_lowercase())
            .or_default()
            .push_back(at);
    }
}

/// Recipients claimed per round, each with every message due for them.
const CLAIM_RECIPIENTS: i64 = 200;

/// Claims the due messages of the next recipients, each recipient's whole group, and
/// sends them: one e-mail per recipient and language bundling everything due for them
/// (a backlog released after Tết or an outage is one e-mail, however large); marks them
/// sent, with the cases' notification log, or failed (retried with back-off,
/// dead-lettered after `max_attempts`). `offset` is the local zone's offset at `now`
/// (the `Date:` header, the time in the text, the greeting).
///
/// It remembers what each recipient was sent in `pace`: an alert
/// e-mail within `bundle_window_minutes` of the last one to the same recipient, or
/// past `hourly_cap` in the last hour, waits and goes out with the others.
pub async fn dispatch_paced(
    store: &dyn Store,
    transport: &dyn Transport,
    templates: &Templates,
    cfg: &AlertsConfig,
    pace: &Pace,
    now: DateTime<Utc>,
    offset: chrono::FixedOffset,
) -> Result<Dispatched, crate::store::StoreError> {
    let local = now.with_timezone(&offset);
    let lease = Duration::seconds(cfg.claim_seconds.max(1) as i64);
    // Our claim runs out at `now + lease`; past nine tenths of it, leave the rest to
    // whoever claims it next rather than risk sending it twice.
    let claimed = std::time::Instant::now();
    let stop_at = claimed + std::time::Duration::from_millis(cfg.claim_seconds.max(1) as u64 * 900);
    // The instants logged are `now` moved on by the time spent sending: the caller's
    // clock, not the system's.
    let at = || now + Duration::from_std(claimed.elapsed()).unwrap_or_default();
    let rows = store.outbox_claim(now, lease, CLAIM_RECIPIENTS).await?;
    let mut groups: Vec<Vec<OutboxRow>> = Vec::new();
    for row in rows {
        // A digest or a report is a message of its own; alerts to one recipient are
        // bundled.
        if is_report(&row.rule) {
            groups.push(vec![row]);
            continue;
        }
        let key = (row.to_addr.to_ascii_lowercase(), row.lang.clone());
        match groups.iter_mut().find(|g| {
            !is_report(&g[0].rule) && (g[0].to_addr.to_ascii_lowercase(), g[0].lang.clone()) == key
        }) {
            Some(g) => g.push(row),
            None => groups.push(vec![row]),
        }
    }
    let mut done = Dispatched::default();
    for group in groups {
        if std::time::Instant::now() > stop_at {
            tracing::warn!(
                claim_seconds = cfg.claim_seconds,
                "outbox claim ran out before the batch was sent; the rest goes next round"
            );
            break;
        }
        let ids: Vec<i64> = group.iter().map(|r| r.id).collect();
        let paced = !is_report(&group[0].rule);
        if paced {
            let allowed = pace.allowed(&group[0].to_addr, now, cfg);
            if allowed > now {
                store.outbox_postpone(&ids, allowed).await?;
                done.postponed += group.len();
                continue;
            }
        }
        match send_group(transport, templates, cfg, &group, local).await {
            Ok((message_id, recipients)) => {
                let mut log = Vec::new();
                for row in group.iter().filter(|r| r.rule == "digest") {
                    // Every case a digest lists logs it.
                    let item: Value = serde_json::from_str(&row.item).unwrap_or(Value::Null);
                    for sec in ["sections", "tasks"] {
                        for s in item[sec].as_array().into_iter().flatten() {
                            for c in s["cases"].as_array().into_iter().flatten() {
                                let (Some(src), Some(id)) =
                                    (c["source"].as_str(), c["case_id"].as_str())
                                else {
                                    continue;
                                };
                                log.push((
                                    src.to_string(),
                                    id.to_string(),
                                    NotificationRow {
                                        at: at(),
                                        rule: "digest".into(),
                                        level: 0,
                                        recipient: recipients[0].clone(),
                                        channel: transport.name().to_string(),
                                        status: "sent".into(),
                                        message_id: Some(message_id.clone()),
                                    },
                                ));
                            }
                        }
                    }
                    done.events.push(("digest".into(), "sent"));
                }
                for r in group
                    .iter()
                    .filter(|r| matches!(r.rule.as_str(), "weekly" | "monthly_report"))
                {
                    done.events.push((r.rule.clone(), "sent"));
                }
                for row in group.iter().filter(|r| !is_report(&r.rule)) {
                    let level = serde_json::from_str::<Value>(&row.item)
                        .ok()
                        .and_then(|v| v["level"].as_i64())
                        .unwrap_or(0) as i32;
                    let cc: Vec<String> = recipients_of(row, cfg);
                    for r in std::iter::once(recipients[0].clone()).chain(cc) {
                        log.push((
                            row.source.clone(),
                            row.case_id.clone(),
                            NotificationRow {
                                at: at(),
                                rule: row.rule.clone(),
                                level,
                                recipient: r,
                                channel: transport.name().to_string(),
                                status: "sent".into(),
                                message_id: Some(message_id.clone()),
                            },
                        ));
                    }
                    done.events.push((row.rule.clone(), "sent"));
                }
                store.outbox_sent(&ids, at(), &log).await?;
                if paced {
                    pace.record(&group[0].to_addr, now);
                }
                done.sent += group.len();
            }
            Err(e) => {
                for row in &group {
                    let dead = row.attempts as u32 >= cfg.max_attempts;
                    if dead {
                        tracing::error!(
                            message_id = %row.message_id,
                            rule = %row.rule,
                            to = %row.to_addr,
                            attempts = row.attempts,
                            error = %e,
                            "message dead-lettered after its last attempt; \
                             `slawatch notify requeue` sends it again once the cause is fixed"
                        );
                    } else {
                        tracing::warn!(
                            message_id = %row.message_id,
                            attempts = row.attempts,
                            error = %e,
                            "message not sent; will retry"
                        );
                    }
                    store
                        .outbox_failed(
                            &[row.id],
                            &e.to_string(),
                            now + backoff(cfg.retry_base_seconds, row.attempts),
                            dead,
                        )
                        .await?;
                    done.events.push((row.rule.clone(), "failed"));
                    if dead {
                        done.dead += 1;
                    } else {
                        done.failed += 1;
                    }
                }
            }
        }
    }
    Ok(done)
}

/// Digests and the weekly and monthly reports: whole messages, never bundled with
/// alerts.
fn is_report(rule: &str) -> bool {
    matches!(rule, "digest" | "weekly" | "monthly_report")
}

/// The copies a row names (only rows queued before messages were per person).
fn cc_of(row: &OutboxRow) -> Vec<Recipient> {
    serde_json::from_str::<Vec<Value>>(&row.cc)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| {
            Some(Recipient {
                name: v["name"].as_str().unwrap_or("").to_string(),
                email: v["email"].as_str()?.to_string(),
            })
        })
        .collect()
}

/// The copies a row's message went to (none when an override recipient is set).
fn recipients_of(row: &OutboxRow, cfg: &AlertsConfig) -> Vec<String> {
    if cfg
        .override_recipient
        .as_ref()
        .is_some_and(|o| !o.is_empty())
    {
        return Vec::new();
    }
    cc_of(row).into_iter().map(|c| c.email).collect()
}

/// Adds the desk's links for the recipient: their unit's page (`desk.url`) and each
/// listed case's or summarised unit's page (`desk_url`), signed for what they answer
/// for; `null` everywhere when the desk is not set up or they answer for no unit.
fn link_desk(
    ctx: &mut Value,
    templates: &Templates,
    to: &Recipient,
    local: DateTime<chrono::FixedOffset>,
) {
    let person = templates
        .desk_links()
        .and_then(|d| d.for_person(&to.email, &to.name, local.with_timezone(&Utc)));
    let Some(p) = person else {
        ctx["desk"] = Value::Null;
        return;
    };
    let own = ctx["unit"]
        .as_str()
        .and_then(|u| p.unit_url(u))
        .or_else(|| p.units.first().and_then(|u| p.unit_url(u)));
    ctx["desk"] = serde_json::json!({ "url": own });
    let case_url = |c: &Value| {
        p.case_url(
            c["unit"].as_str(),
            c["source"].as_str().unwrap_or(""),
            c["case_id"].as_str().unwrap_or(""),
        )
    };
    if let Some(cases) = ctx["cases"].as_array_mut() {
        for c in cases {
            c["desk_url"] = case_url(c).into();
        }
    }
    if let Some(units) = ctx["units"].as_array_mut() {
        for u in units {
            u["desk_url"] = u["unit"].as_str().and_then(|code| p.unit_url(code)).into();
        }
    }
    for key in ["sections", "tasks"] {
        if let Some(secs) = ctx[key].as_array_mut() {
            for sec in secs {
                if let Some(cases) = sec["cases"].as_array_mut() {
                    for c in cases {
                        c["desk_url"] = case_url(c).into();
                    }
                }
            }
        }
    }
}

/// The greeting's part of the day at the local time of sending.
pub fn part_of_day(hour: u32, lang: &str) -> &'static str {
    match (lang == "en", hour) {
        (false, 0..=10) => "sáng",
        (false, 11..=12) => "trưa",
        (false, 13..=17) => "chiều",
        (false, _) => "tối",
        (true, 0..=11) => "morning",
        (true, 12..=17) => "afternoon",
        (true, _) => "evening",
    }
}

/// Renders and sends one e-mail for a recipient's messages; its Message-ID (the
/// message's own for one, derived from all of them for a bundle) and the address it
/// went to.
async fn send_group(
    transport: &dyn Transport,
    templates: &Templates,
    cfg: &AlertsConfig,
    group: &[OutboxRow],
    local: DateTime<chrono::FixedOffset>,
) -> Result<(String, Vec<String>), NotifyError> {
    let email = compose_email(templates, cfg, group, local)?;
    transport.send(&email).await?;
    Ok((email.message_id.clone(), vec![email.to.email.clone()]))
}

/// The one e-mail a recipient's group of messages makes, sent at `local` (also what
/// `notify preview` shows): a digest or a report alone, alerts folded together.
pub fn compose_email(
    templates: &Templates,
    cfg: &AlertsConfig,
    group: &[OutboxRow],
    local: DateTime<chrono::FixedOffset>,
) -> Result<Email, NotifyError> {
    use chrono::Timelike;
    let first = &group[0];
    let mut to = Recipient {
        name: first.to_name.clone(),
        email: first.to_addr.clone(),
    };
    let recipient = serde_json::json!({"name": to.name, "email": to.email});
    let generated_at = local.format("%d/%m/%Y %H:%M").to_string();
    let mut attachments = Vec::new();
    let mut ctx = if is_report(&first.rule) {
        let mut v: Value = serde_json::from_str(&first.item)
            .map_err(|e| NotifyError::Build(format!("item of {}: {e}", first.message_id)))?;
        // A report's file travels in its item, base64, and is not template context.
        if let Some(files) = v.as_object_mut().and_then(|o| o.remove("attachments")) {
            for f in files.as_array().into_iter().flatten() {
                let bytes = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    f["base64"].as_str().unwrap_or(""),
                )
                .map_err(|e| {
                    NotifyError::Build(format!("attachment of {}: {e}", first.message_id))
                })?;
                attachments.push(crate::notify::Attachment {
                    name: f["name"].as_str().unwrap_or("report").to_string(),
                    content_type: f["content_type"]
                        .as_str()
                        .unwrap_or("application/octet-stream")
                        .to_string(),
                    bytes,
                });
            }
        }
        v
    } else {
        let items = group
            .iter()
            .map(|row| {
                serde_json::from_str::<crate::alert::mail::Item>(&row.item)
                    .map_err(|e| NotifyError::Build(format!("item of {}: {e}", row.message_id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::alert::mail::compose(&items, &first.lang, cfg.list_limit as usize)
    };
    ctx["recipient"] = recipient;
    link_desk(&mut ctx, templates, &to, local);
    ctx["generated_at"] = Value::String(generated_at);
    ctx["sent_time"] = Value::String(local.format("%H:%M").to_string());
    ctx["sent_date"] = Value::String(local.format("%d/%m/%Y").to_string());
    ctx["date"] = match ctx.get("date") {
        Some(d) if d.is_string() => d.clone(),
        _ => Value::String(local.format("%d/%m/%Y").to_string()),
    };
    ctx["part_of_day"] = Value::String(part_of_day(local.hour(), &first.lang).to_string());
    let name = if is_report(&first.rule) {
        first.rule.as_str()
    } else {
        "alert"
    };
    let rendered = templates
        .render(name, &first.lang, &ctx)
        .map_err(|e| NotifyError::Build(e.to_string()))?;
    // Rows queued before per-person messages may still name copies.
    let mut cc: Vec<Recipient> = Vec::new();
    for c in group.iter().flat_map(cc_of) {
        if !cc.iter().any(|x| x.email.eq_ignore_ascii_case(&c.email))
            && !c.email.eq_ignore_ascii_case(&first.to_addr)
        {
            cc.push(c);
        }
    }
    if let Some(o) = cfg.override_recipient.as_ref().filter(|o| !o.is_empty()) {
        to.email = o.clone();
        cc.clear();
    }
    let message_id = if group.len() == 1 {
        first.message_id.clone()
    } else {
        let mut ids: Vec<&str> = group.iter().map(|r| r.message_id.as_str()).collect();
        ids.sort_unstable();
        crate::alert::message::message_id(
            "bundle",
            &[&ids.join(" ")],
            &crate::alert::message::domain_of(&cfg.from),
        )
    };
    Ok(Email {
        message_id,
        from: cfg.from.clone(),
        to,
        cc,
        date: local,
        items: group.len(),
        rendered,
        attachments,
    })
}
