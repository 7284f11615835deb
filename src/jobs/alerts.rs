//! The alert pass: which rules fire for which case (the pure ladder is
//! [`crate::alert`]), recorded once, resolved when they stop holding, and their
//! messages queued in the outbox; and what a message says of a case.

use crate::state::Shared;
use crate::store::{AlertKey, NewAlert, OutboxNew, StoreError};
use anyhow::Result;
use chrono::{DateTime, Duration as Span, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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

/// One fired alert of a case, as the pass remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FiredPart {
    rule: Box<str>,
    level: i32,
    due_key: Box<str>,
}

/// What the pass knows of one case: the alerts fired for it and a fingerprint of the
/// inputs they were decided from (`None`: decide again).
#[derive(Debug, Default)]
struct CaseAlerts {
    fingerprint: Option<u64>,
    fired: Vec<FiredPart>,
    /// The pass that last saw the case among the open ones.
    seen: u64,
}

/// The fired alerts not resolved, by case, as the alert pass last left them (read
/// from the store when a replica takes the alert lease), so a pass decides again only
/// for the cases whose evaluation changed: it costs what changed, not what exists.
#[derive(Debug, Default)]
pub(crate) struct AlertMemory {
    cases: HashMap<crate::sla::model::Text, HashMap<String, CaseAlerts>>,
    /// Alerts about the system itself (`source_stale`), not about cases.
    ops: HashSet<AlertKey>,
    /// The context the fingerprints were taken under: a reload decides again.
    context: Option<std::sync::Weak<crate::state::Context>>,
    pass: u64,
}

impl AlertMemory {
    fn from_keys(keys: Vec<AlertKey>) -> AlertMemory {
        let mut m = AlertMemory::default();
        for k in keys {
            if k.source == "ops" {
                m.ops.insert(k);
                continue;
            }
            m.cases
                .entry(crate::sla::model::Text::from(k.source.as_str()))
                .or_default()
                .entry(k.case_id)
                .or_default()
                .fired
                .push(FiredPart {
                    rule: k.rule.into(),
                    level: k.level,
                    due_key: k.due_key.into(),
                });
        }
        m
    }
}

/// What the alerts of an open case are decided from: its evaluation's state, flags,
/// stuck mark, due and days overdue, and its unit and field (the recipients).
fn fingerprint(case: &crate::sla::model::Case, ev: Option<&crate::store::EvalSummary>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    case.unit_code.hash(&mut h);
    case.field_code.hash(&mut h);
    if let Some(ev) = ev {
        ev.state.hash(&mut h);
        ev.flags.hash(&mut h);
        ev.stuck.hash(&mut h);
        ev.due.hash(&mut h);
        ev.overdue_workdays.hash(&mut h);
    } else {
        u8::MAX.hash(&mut h);
    }
    h.finish()
}

fn key_of(source: &str, case_id: &str, p: &FiredPart) -> AlertKey {
    AlertKey {
        source: source.to_string(),
        case_id: case_id.to_string(),
        rule: p.rule.to_string(),
        level: p.level,
        due_key: p.due_key.to_string(),
    }
}

/// Compares the alerts the open cases want with those fired: fires the new ones
/// (queueing immediate e-mail for the next sending window), resolves the ones no case
/// wants any more. Cases of a failing source neither fire nor resolve: stale data
/// never alarms, and its alerts do not fire twice when it recovers.
///
/// Only cases whose evaluation (or unit) changed since the last pass are decided
/// again; the first pass after taking the lease, and the first after a reload of the
/// directory, decide for every case.
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
    // Taken out while the pass runs; a pass that fails leaves none, and the next
    // reads the fired set from the store again.
    let taken = shared.alerts.lock().expect("alerts lock").take();
    let mut memory = match taken {
        Some(m) => m,
        None => AlertMemory::from_keys(shared.store.alerts_open().await?),
    };
    let reloaded = memory
        .context
        .as_ref()
        .and_then(|w| w.upgrade())
        .is_none_or(|c| !Arc::ptr_eq(&c, &ctx));
    if reloaded {
        for c in memory.cases.values_mut().flat_map(|m| m.values_mut()) {
            c.fingerprint = None;
        }
        memory.context = Some(Arc::downgrade(&ctx));
    }
    memory.pass += 1;
    let pass_no = memory.pass;
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
    let mut fire = Vec::new();
    let mut resolve: Vec<AlertKey> = Vec::new();
    let mut outbox = Vec::new();
    let mut overdue_units: HashMap<String, i64> = HashMap::new();
    shared.refresh_acks().await?;
    let mut acked = 0usize;
    {
        let acks = shared.acks.lock().expect("acks lock");
        shared.with_open(|entries| {
            for e in entries {
                let source = &e.case.source;
                let known = memory
                    .cases
                    .get_mut(&**source)
                    .and_then(|m| m.get_mut(e.case.case_id.as_str()));
                if stale.contains(&**source) {
                    // Neither fired nor resolved; kept as it is.
                    if let Some(c) = known {
                        c.seen = pass_no;
                    }
                    continue;
                }
                let ev = e.eval.as_ref();
                if ev.and_then(|ev| ev.state) == Some(crate::sla::State::Overdue) {
                    let unit = e
                        .case
                        .unit_code
                        .as_deref()
                        .unwrap_or(crate::metrics::UNKNOWN_UNIT);
                    *overdue_units.entry(unit.to_string()).or_default() += 1;
                }
                let fp = fingerprint(&e.case, ev);
                if let Some(c) = known {
                    c.seen = pass_no;
                    if c.fingerprint == Some(fp) {
                        continue;
                    }
                }
                // Decide again for this case.
                let wanted = match ev {
                    Some(ev) => crate::alert::wanted(&e.case, ev, &ladder, now),
                    None => Vec::new(),
                };
                let entry = memory
                    .cases
                    .entry(source.clone())
                    .or_default()
                    .entry(e.case.case_id.clone())
                    .or_default();
                entry.seen = pass_no;
                entry.fingerprint = Some(fp);
                let parts: Vec<FiredPart> = wanted
                    .iter()
                    .map(|w| FiredPart {
                        rule: w.rule.into(),
                        level: w.level as i32,
                        due_key: w.due_key.as_str().into(),
                    })
                    .collect();
                for old in &entry.fired {
                    if !parts.contains(old) {
                        resolve.push(key_of(source, &e.case.case_id, old));
                    }
                }
                for (w, part) in wanted.iter().zip(&parts) {
                    if entry.fired.contains(part) {
                        continue;
                    }
                    let key = key_of(source, &e.case.case_id, part);
                    // An acknowledged (rule, due) fires without a message: the unit has
                    // answered it (SPEC §10).
                    let quiet = acks
                        .find(&key.source, &key.case_id, &key.rule, &key.due_key)
                        .is_some();
                    acked += quiet as usize;
                    let ev = ev.expect("wanted only with an evaluation");
                    let immediate = !quiet
                        && w.mode == crate::alert::Mode::Immediate
                        && start_after.is_none_or(|s| now > s);
                    if immediate {
                        // One message per person (never a Cc): each e-mail lists only
                        // the cases its reader answers for.
                        for (to, role) in w.recipients() {
                            let item =
                                crate::alert::message::alert_item(&e.case, ev, w, role, &ctx, cfg);
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
                entry.fired = parts;
            }
        });
    }
    // Cases no longer open (ended, or gone): their alerts resolve.
    for (source, cases) in memory.cases.iter_mut() {
        if stale.contains(&**source) {
            continue;
        }
        cases.retain(|case_id, c| {
            if c.seen == pass_no {
                return true;
            }
            resolve.extend(c.fired.iter().map(|p| key_of(source, case_id, p)));
            false
        });
    }
    memory.cases.retain(|_, m| !m.is_empty());
    // Operational faults: a source without fresh data goes to IT staff at any hour.
    let mut ops_wanted: HashSet<AlertKey> = HashSet::new();
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
            ops_wanted.insert(key.clone());
            if memory.ops.contains(&key) {
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
    for k in memory.ops.iter() {
        if !ops_wanted.contains(k) {
            resolve.push(k.clone());
        }
    }
    memory.ops = ops_wanted;
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
    *shared.alerts.lock().expect("alerts lock") = Some(memory);
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
