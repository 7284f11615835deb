//! The alert pass: which rules fire for which case (the pure ladder is
//! [`crate::alert`]), recorded once, resolved when they stop holding, and their
//! messages queued in the outbox; and what a message says of a case.

use crate::state::Shared;
use crate::store::{AlertKey, NewAlert, OutboxNew, StoreError};
use anyhow::Result;
use chrono::{DateTime, Duration as Span, Utc};
use std::collections::{HashMap, HashSet};

/// What one alert pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertPass {
    pub fired: usize,
    pub resolved: usize,
    pub queued: usize,
    /// Fired without a message: the unit acknowledged that rule for that due.
    pub acknowledged: usize,
}

pub(crate) fn message_id(key: &AlertKey, to: &str, domain: &str) -> String {
    crate::alert::message::message_id(
        "alert",
        &[
            &key.source,
            &key.case_id,
            &key.rule,
            &key.level.to_string(),
            &key.due_key,
            &to.to_ascii_lowercase(),
        ],
        domain,
    )
}

/// Compares the alerts the open cases want with those fired: fires the new ones
/// (queueing immediate e-mail for the next sending window), resolves the ones no case
/// wants any more. Cases of a failing source neither fire nor resolve: stale data
/// never alarms, and its alerts do not fire twice when it recovers.
pub async fn alert_pass(
    shared: &Shared,
    cfg: &crate::config::AlertsConfig,
    now: DateTime<Utc>,
) -> Result<AlertPass, StoreError> {
    // One daemon at a time fires and resolves alerts (several may share a database).
    if !shared.hold("alerts", now).await?.ours() {
        // Another holder decides; re-read the fired set when this one takes over.
        *shared.alerts.lock().expect("alerts lock") = None;
        return Ok(AlertPass::default());
    }
    let ctx = shared.context();
    let open: HashSet<AlertKey> = {
        let cached = shared.alerts.lock().expect("alerts lock").clone();
        match cached {
            Some(s) => s,
            None => shared.store.alerts_open().await?.into_iter().collect(),
        }
    };
    let stale: HashSet<String> = shared
        .health()
        .into_iter()
        .filter(|h| !h.up)
        .map(|h| h.name)
        .collect();
    let start_after = cfg
        .start_after
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc));
    let ladder = crate::alert::Ladder {
        directory: &ctx.directory,
        modes: &cfg.rules,
        escalate_every: cfg.escalate_every,
        copies: &cfg.copies,
    };
    let lang = cfg.language.as_str();
    let domain = crate::alert::message::domain_of(&cfg.from);
    let window = if cfg.send_window == "always" {
        now
    } else {
        crate::alert::next_window(&ctx.calendar, now)
    };
    let mut wanted_keys: HashSet<AlertKey> = HashSet::new();
    let mut fire = Vec::new();
    let mut outbox = Vec::new();
    let mut overdue_units: HashMap<String, i64> = HashMap::new();
    shared.refresh_acks().await?;
    let mut acked = 0usize;
    {
        let acks = shared.acks.lock().expect("acks lock");
        shared.with_open(|entries| {
            for e in entries {
                if stale.contains(&*e.case.source) {
                    continue;
                }
                let Some(ev) = e.eval.as_ref() else { continue };
                if ev.state == Some(crate::sla::State::Overdue) {
                    let unit = e
                        .case
                        .unit_code
                        .as_deref()
                        .unwrap_or(crate::metrics::UNKNOWN_UNIT);
                    *overdue_units.entry(unit.to_string()).or_default() += 1;
                }
                for w in crate::alert::wanted(&e.case, ev, &ladder, now) {
                    let key = AlertKey {
                        source: e.case.source.to_string(),
                        case_id: e.case.case_id.clone(),
                        rule: w.rule.to_string(),
                        level: w.level as i32,
                        due_key: w.due_key.clone(),
                    };
                    wanted_keys.insert(key.clone());
                    if open.contains(&key) {
                        continue;
                    }
                    // An acknowledged (rule, due) fires without a message: the unit has
                    // answered it (SPEC §10).
                    let quiet = acks
                        .find(&key.source, &key.case_id, &key.rule, &key.due_key)
                        .is_some();
                    acked += quiet as usize;
                    let immediate = !quiet
                        && w.mode == crate::alert::Mode::Immediate
                        && start_after.is_none_or(|s| now > s);
                    if immediate {
                        // One message per person (never a Cc): each e-mail lists only
                        // the cases its reader answers for.
                        for (to, role) in w.recipients() {
                            let item =
                                crate::alert::message::alert_item(&e.case, ev, &w, role, &ctx, cfg);
                            outbox.push(OutboxNew {
                                message_id: message_id(&key, &to.email, &domain),
                                channel: "email".into(),
                                rule: w.rule.to_string(),
                                source: key.source.clone(),
                                case_id: key.case_id.clone(),
                                to_addr: to.email.clone(),
                                to_name: to.name.clone(),
                                cc: "[]".into(),
                                lang: lang.to_string(),
                                item: serde_json::to_string(&item).unwrap_or_default(),
                                not_before: window,
                                level: key.level,
                                due_key: key.due_key.clone(),
                            });
                        }
                    }
                    fire.push(NewAlert {
                        key,
                        unit: w.unit.clone(),
                    });
                }
            }
        });
    }
    // Operational faults: a source without fresh data goes to IT staff at any hour.
    if !cfg.it_recipients.is_empty() {
        let limit = Span::minutes(cfg.stale_after_minutes as i64);
        for h in shared.health() {
            let is_stale = match h.last_success {
                Some(t) => now - t > limit,
                None => h.consecutive_failures >= 3,
            };
            if !is_stale {
                continue;
            }
            let key = AlertKey {
                source: "ops".into(),
                case_id: h.name.clone(),
                rule: "source_stale".into(),
                level: 0,
                due_key: h
                    .last_success
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_else(|| "never".into()),
            };
            wanted_keys.insert(key.clone());
            if open.contains(&key) {
                continue;
            }
            let item = crate::alert::mail::Item {
                rule: "source_stale".into(),
                source: "ops".into(),
                case_id: h.name.clone(),
                unit_name: "—".into(),
                due: h
                    .last_success
                    .map(|t| crate::timefmt::minutes(t, &ctx.calendar))
                    .unwrap_or_else(|| "—".into()),
                note: h.last_error.clone(),
                ..Default::default()
            };
            let item = serde_json::to_string(&item).unwrap_or_default();
            for to in &cfg.it_recipients {
                outbox.push(OutboxNew {
                    message_id: message_id(&key, to, &domain),
                    channel: "email".into(),
                    rule: "source_stale".into(),
                    source: "ops".into(),
                    case_id: h.name.clone(),
                    to_addr: to.clone(),
                    to_name: String::new(),
                    cc: "[]".into(),
                    lang: lang.to_string(),
                    item: item.clone(),
                    not_before: now,
                    level: 0,
                    due_key: key.due_key.clone(),
                });
            }
            fire.push(NewAlert { key, unit: None });
        }
    }
    let resolve: Vec<AlertKey> = open
        .iter()
        .filter(|k| !wanted_keys.contains(*k) && !stale.contains(&k.source))
        .cloned()
        .collect();
    let pass = AlertPass {
        fired: fire.len(),
        resolved: resolve.len(),
        queued: outbox.len(),
        acknowledged: acked,
    };
    if !fire.is_empty() || !resolve.is_empty() {
        shared
            .store
            .alerts_apply(&fire, &resolve, &outbox, now)
            .await?;
    }
    // The week's record of overdue units (for the weekly report), written on increase.
    let week = crate::alert::weekly::week_of(ctx.calendar.local(now).date()).to_string();
    let marks: Vec<(String, String, i64)> = {
        let seen = shared.weeks.lock().expect("weeks lock");
        overdue_units
            .into_iter()
            .filter(|(u, n)| seen.get(&(u.clone(), week.clone())).is_none_or(|m| n > m))
            .map(|(u, n)| (u, week.clone(), n))
            .collect()
    };
    if !marks.is_empty() {
        shared.store.unit_weeks_mark(&marks).await?;
        let mut seen = shared.weeks.lock().expect("weeks lock");
        for (u, w, n) in marks {
            seen.insert((u, w), n);
        }
    }
    let mut next = open;
    for k in &resolve {
        next.remove(k);
    }
    next.extend(fire.into_iter().map(|a| a.key));
    *shared.alerts.lock().expect("alerts lock") = Some(next);
    Ok(pass)
}

/// The alert e-mails' contents a case wants at `now`, per person, for every rule the
/// ladder sends at once (what `notify preview alert` shows): whether they already went
/// out or were acknowledged is not considered, and nothing is recorded.
pub fn case_alerts(
    case: &crate::sla::model::Case,
    ev: &crate::store::EvalSummary,
    ctx: &crate::state::Context,
    cfg: &crate::config::AlertsConfig,
    now: DateTime<Utc>,
) -> Vec<(crate::alert::Recipient, crate::alert::mail::Item)> {
    let ladder = crate::alert::Ladder {
        directory: &ctx.directory,
        modes: &cfg.rules,
        escalate_every: cfg.escalate_every,
        copies: &cfg.copies,
    };
    let mut out = Vec::new();
    for w in crate::alert::wanted(case, ev, &ladder, now) {
        if w.mode != crate::alert::Mode::Immediate {
            continue;
        }
        for (to, role) in w.recipients() {
            let item = crate::alert::message::alert_item(case, ev, &w, role, ctx, cfg);
            out.push((to.clone(), item));
        }
    }
    out
}
