//! The daemon (`slawatch run`): polls each source on its schedule, merges and stores
//! what it brings, keeps every open case evaluated as data and time move, and serves
//! health on the HTTP listener.
//!
//! Open cases live in memory with their latest evaluation; finished ones only in the
//! store. A poll is stored page by page: each page is one transaction, and memory and
//! the ingest counters follow a page only once it is committed. A poll that fails or
//! is killed halfway keeps the pages committed before it (never half a page); the
//! cursor — for `http` and `sql` sources the newest change time committed, by the
//! source's clock — moves only as far as what was committed, so the next poll reads
//! on from there, and records read twice change nothing. Each source is polled by its
//! own job, never twice at once; a slow or failing source delays nothing else and is
//! retried with back-off.

use crate::calendar::Calendar;
use crate::clock::Clock;
use crate::config::{self, Loaded};
pub use crate::ingest::{
    apply, commit_pipelined, ingest, prepare, ChangeTimes, Committed, Delivery, Overlay, Prepared,
    PreparedPage,
};
use crate::metrics::{OpenFact, OpenTally, Snapshot, SourceFact};
use crate::scheduler::Scheduler;
use crate::sla::model::Case;
use crate::sla::ratio::{on_time_until, PeriodKind};
use crate::sla::Lifecycle;
use crate::source::normalize::Mapping;
use crate::source::{self, PollContext, Source, SourceConfig};
use crate::state::{summarize, FINISHED_REREAD};
pub use crate::state::{Context, Entry, IngestStats, Shared, SourceHealth};
use crate::store::{
    self, AlertKey, EvalSummary, EvalUpdate, JobRun, NewAlert, OutboxNew, PeriodStarts, Store,
    StoreError,
};
use anyhow::{Context as _, Result};
use chrono::{DateTime, Duration as Span, Utc};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
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
                let state = e.and_then(|e| e.state);
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
                        .map(|e| crate::metrics::flag_names(&e.flags))
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

/// What one alert pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertPass {
    pub fired: usize,
    pub resolved: usize,
    pub queued: usize,
    /// Fired without a message: the unit acknowledged that rule for that due.
    pub acknowledged: usize,
}

fn message_id(key: &AlertKey, to: &str) -> String {
    let digest = Sha256::digest(
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            key.source,
            key.case_id,
            key.rule,
            key.level,
            key.due_key,
            to.to_ascii_lowercase()
        )
        .as_bytes(),
    );
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("<alert-{hex}@slawatch>")
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
    if !shared
        .store
        .lease("alerts", &shared.holder, now + Span::minutes(2), now)
        .await?
    {
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
                if ev.state == Some("overdue") {
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
                        let item = alert_item(&e.case, ev, &w, &ctx, cfg, now);
                        for to in &w.to {
                            outbox.push(OutboxNew {
                                message_id: message_id(&key, &to.email),
                                channel: "email".into(),
                                rule: w.rule.to_string(),
                                source: key.source.clone(),
                                case_id: key.case_id.clone(),
                                to_addr: to.email.clone(),
                                to_name: to.name.clone(),
                                cc: serde_json::to_string(&w.cc).unwrap_or_else(|_| "[]".into()),
                                lang: lang.to_string(),
                                item: item.to_string(),
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
            let item = serde_json::json!({
                "source": "ops",
                "case_id": h.name,
                "rule": "source_stale",
                "rule_label": crate::notify::templates::rule_label("source_stale", &cfg.language),
                "level": 0,
                "procedure": null,
                "unit": null,
                "unit_name": "—",
                "due": h.last_success.map(|t| crate::timefmt::human(t, &ctx.calendar)).unwrap_or_else(|| "—".into()),
                "state": null,
                "overdue_workdays": 0,
                "trace": h.last_error.iter().collect::<Vec<_>>(),
                "link": null,
            });
            for to in &cfg.it_recipients {
                outbox.push(OutboxNew {
                    message_id: message_id(&key, to),
                    channel: "email".into(),
                    rule: "source_stale".into(),
                    source: "ops".into(),
                    case_id: h.name.clone(),
                    to_addr: to.clone(),
                    to_name: String::new(),
                    cc: "[]".into(),
                    lang: lang.to_string(),
                    item: item.to_string(),
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

/// What one morning digest run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DigestPass {
    /// False on a day off (and while another daemon holds the digest lease).
    pub ran: bool,
    pub units: usize,
    pub cases: usize,
    pub queued: usize,
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
    if !shared
        .store
        .lease("digest", &shared.holder, now + Span::minutes(10), now)
        .await?
    {
        return Ok(DigestPass::default());
    }
    let stale: Vec<(String, String)> = shared
        .health()
        .into_iter()
        .filter(|h| !h.up)
        .map(|h| {
            let since = h
                .last_success
                .map(|t| crate::timefmt::human(t, &ctx.calendar))
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
                                "at": crate::timefmt::human(a.at, &ctx.calendar),
                            })
                        });
                    crate::alert::digest::listed(&e.case, ev, ack.is_some(), || {
                        let mut item = case_item(&e.case, ev, &ctx, cfg, now);
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
        &stale,
        cfg.digest_trace_limit as usize,
    );
    let mut outbox = Vec::new();
    let mut pass = DigestPass {
        ran: true,
        ..DigestPass::default()
    };
    for d in &digests {
        pass.units += 1;
        pass.cases += d.cases;
        for to in &d.to {
            let digest = Sha256::digest(
                format!(
                    "{}\u{1f}{}\u{1f}{}",
                    d.unit,
                    today,
                    to.email.to_ascii_lowercase()
                )
                .as_bytes(),
            );
            let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            outbox.push(OutboxNew {
                message_id: format!("<digest-{hex}@slawatch>"),
                channel: "email".into(),
                rule: "digest".into(),
                source: "digest".into(),
                case_id: d.unit.clone(),
                to_addr: to.email.clone(),
                to_name: to.name.clone(),
                cc: serde_json::to_string(&d.cc).unwrap_or_else(|_| "[]".into()),
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
const DIGEST_DONE: &str = "digest_done";
/// The store key holding the Monday of the last week a weekly report was queued.
const WEEKLY_DONE: &str = "weekly_done";

/// Whether every polled source has been tried since start-up, so a report caught up
/// right after a restart states the data as it is (fresh, or stale since when).
fn first_polls_done(shared: &Shared) -> bool {
    shared
        .health()
        .iter()
        .all(|h| h.kind == "push" || h.last_poll.is_some())
}

/// Whether a job on `schedule` fired earlier today and today's sending window is not
/// over yet: the time to catch up on a run that was missed.
fn missed_today(ctx: &Context, schedule: &str, now: DateTime<Utc>) -> bool {
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
    if !shared
        .store
        .lease("weekly", &shared.holder, now + Span::minutes(10), now)
        .await?
    {
        return Ok(false);
    }
    let weeks = weekly::last_four_weeks(today);
    let records: Vec<(String, chrono::NaiveDate)> = shared
        .store
        .unit_weeks_since(&weeks[0].to_string())
        .await?
        .into_iter()
        .filter_map(|(u, w)| w.parse().ok().map(|w| (u, w)))
        .collect();
    let context = weekly::build(
        &shared.unit_summaries(),
        &records,
        today,
        &ctx.directory,
        &cfg.language,
    );
    let digest =
        Sha256::digest(format!("{monday}\u{1f}{}", to.email.to_ascii_lowercase()).as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let row = OutboxNew {
        message_id: format!("<weekly-{hex}@slawatch>"),
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
    let pace = crate::notify::Pace::default();
    loop {
        let now = shared.now();
        let generated_at = crate::timefmt::human(now, &shared.context().calendar);
        match crate::notify::dispatch_paced(
            shared.store.as_ref(),
            transport.as_ref(),
            &templates,
            &cfg,
            &pace,
            now,
            &generated_at,
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

/// The template context of one alert.
fn alert_item(
    case: &Case,
    ev: &EvalSummary,
    w: &crate::alert::Wanted,
    ctx: &Context,
    cfg: &crate::config::AlertsConfig,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let mut item = case_item(case, ev, ctx, cfg, now);
    item["rule"] = serde_json::json!(w.rule);
    item["rule_label"] =
        serde_json::json!(crate::notify::templates::rule_label(w.rule, &cfg.language));
    item["level"] = serde_json::json!(w.level);
    item
}

/// What every message says of a case: ids, procedure, unit, due, state, trace, link.
fn case_item(
    case: &Case,
    ev: &EvalSummary,
    ctx: &Context,
    cfg: &crate::config::AlertsConfig,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let lang = if cfg.language == "en" {
        crate::sla::explain::Lang::En
    } else {
        crate::sla::explain::Lang::Vi
    };
    let proc = ctx.procedure(case);
    let trace =
        crate::sla::explain::explain_case(case, proc, &ctx.calendar, &ctx.policy, now, lang)
            .map(|(_, t)| t)
            .unwrap_or_default();
    let unit_name = case
        .unit_code
        .as_deref()
        .and_then(|c| ctx.directory.get(c))
        .map(|u| u.name.clone())
        .or_else(|| case.unit_name.as_deref().map(str::to_string))
        .unwrap_or_default();
    let link = cfg.link_template.as_ref().map(|t| {
        t.replace("{case_id}", &case.case_id)
            .replace("{source}", &case.source)
    });
    serde_json::json!({
        "source": &*case.source,
        "case_id": case.case_id,
        "procedure": case.procedure_name.as_deref().or(case.procedure_code.as_deref()),
        "unit": case.unit_code.as_deref(),
        "unit_name": unit_name,
        "due": ev.due.map(|d| crate::timefmt::human(d, &ctx.calendar)).unwrap_or_else(|| "—".into()),
        "due_estimated": ev.calendar_estimated,
        "state": ev.state,
        "overdue_workdays": ev.overdue_workdays,
        "trace": trace,
        "link": link,
    })
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

async fn reevaluate_inner(shared: &Shared, now: DateTime<Utc>) -> Result<usize, StoreError> {
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
fn next_cursor(
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
        store: &shared.store,
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
            store: &shared.store,
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
fn clock_warning(
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
const REFETCH_PER_POLL: usize = 20;
const REFETCH_AGAIN_MINUTES: i64 = 10;

/// How far ahead of the daemon's clock a change time may be before it is a skew.
const FUTURE_TOLERANCE: Span = Span::seconds(60);

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

/// A random salt for applicant hashes, kept in the store so hashes stay comparable.
pub async fn applicant_salt(store: &Arc<dyn Store>) -> Result<String> {
    if let Ok(s) = std::env::var("SLAWATCH_APPLICANT_SALT") {
        if !s.is_empty() {
            return Ok(s);
        }
    }
    if let Some(s) = store.meta_get("applicant_salt").await? {
        return Ok(s);
    }
    let mut bytes = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the applicant salt")?;
    let salt: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    store.meta_put("applicant_salt", &salt).await?;
    Ok(salt)
}

/// Builds the reloadable part of the context from the configuration.
fn reload_context(loaded: &Loaded, calendar: Arc<Calendar>) -> Result<Context> {
    Ok(Context {
        calendar,
        policy: loaded.policy.clone(),
        catalogue: config::load_catalogue(&loaded.config, &loaded.dir)?,
        directory: config::load_directory(&loaded.config, &loaded.dir)?,
    })
}

/// The calendar as the configuration file now describes it (SIGHUP): the file is read
/// again, and a calendar it would refuse at start-up is refused here.
fn reload_calendar(loaded: &Loaded, now: DateTime<Utc>) -> Result<Arc<Calendar>> {
    let fresh = Loaded::load(loaded.path.as_deref())?;
    for w in fresh.warnings_at(fresh.local_date(now)) {
        tracing::warn!("{w}");
    }
    Ok(Arc::new(fresh.calendar()))
}

/// After a calendar reload: says what it moved among the open cases, then evaluates
/// them all under the new calendar at once (not at the next scheduled pass).
async fn apply_calendar(shared: Arc<Shared>, before: Arc<Calendar>) {
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

fn mtimes(files: &[PathBuf]) -> Vec<Option<std::time::SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(loaded: Loaded, clock: Clock) -> Result<()> {
    let cfg = loaded.config.clone();
    for w in loaded.warnings_at(loaded.local_date(clock.now())) {
        tracing::warn!("{w}");
    }
    if let Some(d) = clock.describe() {
        tracing::warn!(now = %clock.now(), "{d}: this process does not run on the system time (tests only)");
    }
    let calendar = Arc::new(loaded.calendar());
    tracing::info!(calendar = %calendar.version(), official_until = ?calendar.official_until(), "calendar");
    let store = store::open(&cfg.store.url)
        .await
        .with_context(|| format!("opening the store {}", redact_url(&cfg.store.url)))?;
    store.migrate().await.context("applying migrations")?;
    let salt = applicant_salt(&store).await?;
    let context = Context {
        calendar: calendar.clone(),
        policy: loaded.policy.clone(),
        catalogue: loaded.catalogue.clone(),
        directory: loaded.directory.clone(),
    };
    let shared = Arc::new(
        Shared::new(store.clone(), context, salt)
            .with_procedure_metrics(cfg.metrics.procedure_labels)
            .with_clock(clock),
    );
    let started = shared.now();
    let n = shared.load(started).await.context("loading open cases")?;
    let counts = store.counts().await?;
    tracing::info!(
        backend = store.backend(),
        open = n,
        cases = counts.cases,
        quarantined = counts.quarantined,
        ms = (shared.now() - started).num_milliseconds(),
        "store ready"
    );

    let mut runtimes = Vec::new();
    for sc in &cfg.source {
        let mapping = sc
            .mapping()
            .map_err(|e| anyhow::anyhow!("source `{}`: {e}", sc.name))?;
        crate::scheduler::validate(&sc.schedule)
            .map_err(|e| anyhow::anyhow!("source `{}`: schedule: {e}", sc.name))?;
        let built = source::build(sc, &calendar)
            .map_err(|e| anyhow::anyhow!("source `{}`: {e}", sc.name))?;
        shared.register_source(&sc.name, &sc.kind);
        if let Some(source) = built {
            runtimes.push(Arc::new(SourceRuntime {
                config: sc.clone(),
                mapping,
                source,
            }));
        }
    }
    let push_sources: Vec<(SourceConfig, Mapping)> = cfg
        .source
        .iter()
        .filter(|s| s.kind == "push")
        .map(|s| (s.clone(), s.mapping().expect("validated")))
        .collect();

    let backfilled = backfill_period_facts(&shared, shared.now())
        .await
        .context("recording the end of earlier finished cases")?;
    if backfilled > 0 {
        tracing::info!(
            cases = backfilled,
            "earlier finished cases given their end and on-time judgement"
        );
    }
    let cancel = CancellationToken::new();
    shared
        .refresh_metrics(shared.now())
        .await
        .context("first metrics")?;
    let metrics_task = tokio::spawn(metrics_loop(shared.clone(), cancel.clone()));
    let listener = tokio::net::TcpListener::bind(&cfg.http.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.http.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "http listener");
    let api_token = std::env::var(&cfg.http.api_token_env)
        .ok()
        .filter(|t| !t.is_empty());
    let app = crate::http::router(
        shared.clone(),
        push_sources,
        cfg.http.max_body_bytes,
        api_token,
    );
    let server_cancel = cancel.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { server_cancel.cancelled().await })
            .await
    });

    let mut scheduler = Scheduler::new(calendar.zone(), clock);
    let poll_timeout = std::time::Duration::from_secs(cfg.daemon.poll_timeout_seconds);
    let max_backoff = cfg.daemon.max_backoff_seconds;
    for rt in &runtimes {
        let (job_shared, job_rt) = (shared.clone(), rt.clone());
        // A first poll right away, so a fresh start has data without waiting a tick;
        // it holds the job's guard, so a slow first poll and the ticks never overlap.
        scheduler.add_at_start(
            &format!("poll:{}", rt.config.name),
            &rt.config.schedule,
            move || {
                let (shared, rt) = (job_shared.clone(), job_rt.clone());
                Box::pin(async move { poll_once(&shared, &rt, poll_timeout, max_backoff).await })
            },
        )?;
    }
    let alerts_cfg = Arc::new(cfg.alerts.clone());
    let dispatch_wanted = Arc::new(tokio::sync::Notify::new());
    {
        let shared = shared.clone();
        let alerts_cfg = alerts_cfg.clone();
        let dispatch_wanted = dispatch_wanted.clone();
        scheduler.add("evaluate", &cfg.daemon.evaluate_schedule, move || {
            let shared = shared.clone();
            let alerts_cfg = alerts_cfg.clone();
            let dispatch_wanted = dispatch_wanted.clone();
            Box::pin(async move {
                let t = shared.now();
                match reevaluate(&shared, t).await {
                    Ok(n) => tracing::debug!(
                        changed = n,
                        ms = (shared.now() - t).num_milliseconds(),
                        "re-evaluated"
                    ),
                    Err(e) => tracing::warn!(error = %e, "re-evaluation failed"),
                }
                // Reports the daemon missed today (down at the time, or a replica
                // died halfway) go out late rather than never.
                match digest_catch_up(&shared, &alerts_cfg, shared.now()).await {
                    Ok(p) if p.ran => {
                        tracing::info!(
                            units = p.units,
                            queued = p.queued,
                            "morning digest caught up"
                        );
                        dispatch_wanted.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "digest catch-up failed"),
                }
                match weekly_catch_up(&shared, &alerts_cfg, shared.now()).await {
                    Ok(true) => {
                        tracing::info!("weekly report caught up");
                        dispatch_wanted.notify_one();
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "weekly catch-up failed"),
                }
                match alert_pass(&shared, &alerts_cfg, shared.now()).await {
                    Ok(p) if p.fired + p.resolved > 0 => {
                        tracing::info!(
                            fired = p.fired,
                            resolved = p.resolved,
                            queued = p.queued,
                            "alerts"
                        );
                        dispatch_wanted.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "alert pass failed"),
                }
            })
        })?;
    }
    {
        crate::scheduler::validate(&cfg.alerts.digest_schedule)
            .map_err(|e| anyhow::anyhow!("alerts.digest_schedule: {e}"))?;
        let shared = shared.clone();
        let alerts_cfg = alerts_cfg.clone();
        let dispatch_wanted = dispatch_wanted.clone();
        scheduler.add("digest", &cfg.alerts.digest_schedule, move || {
            let shared = shared.clone();
            let alerts_cfg = alerts_cfg.clone();
            let dispatch_wanted = dispatch_wanted.clone();
            Box::pin(async move {
                let t = std::time::Instant::now();
                match digest_pass(&shared, &alerts_cfg, shared.now()).await {
                    Ok(p) if p.ran => {
                        tracing::info!(
                            units = p.units,
                            cases = p.cases,
                            queued = p.queued,
                            ms = t.elapsed().as_millis() as u64,
                            "morning digest queued"
                        );
                        dispatch_wanted.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "digest failed"),
                }
            })
        })?;
    }
    {
        crate::scheduler::validate(&cfg.alerts.weekly_schedule)
            .map_err(|e| anyhow::anyhow!("alerts.weekly_schedule: {e}"))?;
        let shared = shared.clone();
        let alerts_cfg = alerts_cfg.clone();
        let dispatch_wanted = dispatch_wanted.clone();
        scheduler.add("weekly", &cfg.alerts.weekly_schedule, move || {
            let shared = shared.clone();
            let alerts_cfg = alerts_cfg.clone();
            let dispatch_wanted = dispatch_wanted.clone();
            Box::pin(async move {
                match weekly_pass(&shared, &alerts_cfg, shared.now()).await {
                    Ok(true) => {
                        tracing::info!("weekly report queued");
                        dispatch_wanted.notify_one();
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "weekly report failed"),
                }
            })
        })?;
    }
    let dispatcher =
        match crate::notify::transport(&cfg.alerts).map_err(|e| anyhow::anyhow!("alerts: {e}"))? {
            Some(transport) => {
                let dir = cfg
                    .alerts
                    .templates_dir
                    .as_ref()
                    .map(|d| loaded.dir.join(d));
                let templates = crate::notify::templates::Templates::load(dir.as_deref())?;
                let errors = templates.check();
                if !errors.is_empty() {
                    anyhow::bail!("templates do not render: {}", errors.join("; "));
                }
                tracing::info!(transport = transport.name(), "alert delivery");
                Some(tokio::spawn(dispatch_loop(
                    shared.clone(),
                    transport,
                    templates,
                    alerts_cfg.clone(),
                    dispatch_wanted.clone(),
                    cancel.clone(),
                )))
            }
            None => {
                tracing::warn!("alerts.transport = none: alerts are recorded, no e-mail is sent");
                None
            }
        };
    {
        let shared = shared.clone();
        let days = cfg.store.quarantine_retention_days as i64;
        scheduler.add("purge-quarantine", "0 15 3 * * *", move || {
            let shared = shared.clone();
            Box::pin(async move {
                match shared
                    .store
                    .quarantine_purge(shared.now() - Span::days(days))
                    .await
                {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "quarantine purged"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "quarantine purge failed"),
                }
            })
        })?;
    }
    scheduler.start();
    tracing::info!(sources = cfg.source.len(), "daemon running");

    // Reload the directory and catalogue on SIGHUP or when their files change, and the
    // calendar on SIGHUP only: its files are edited, checked with `calendar diff`, then
    // applied on purpose (README, "Holidays each year").
    let watched = config::watched_files(&loaded.config, &loaded.dir);
    let mut seen = mtimes(&watched);
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        let (reload, hup) = tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = sighup.recv() => { tracing::info!("SIGHUP: reloading"); (true, true) }
            _ = tick.tick() => {
                let now = mtimes(&watched);
                let changed = now != seen;
                seen = now;
                (changed, false)
            }
        };
        if !reload {
            continue;
        }
        let old_calendar = shared.context().calendar.clone();
        let new_calendar = if hup {
            match reload_calendar(&loaded, shared.now()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "reload failed: keeping the previous calendar, directory and catalogue");
                    continue;
                }
            }
        } else {
            old_calendar.clone()
        };
        match reload_context(&loaded, new_calendar.clone()) {
            Ok(c) => {
                tracing::info!(
                    units = c.directory.len(),
                    procedures = c.catalogue.len(),
                    "directory and catalogue reloaded"
                );
                shared.set_context(c);
                shared.metrics_changed();
                if new_calendar.version() != old_calendar.version() {
                    tokio::spawn(apply_calendar(shared.clone(), old_calendar));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reload failed: keeping the previous calendar, directory and catalogue")
            }
        }
    }
    scheduler.shutdown().await;
    cancel.cancel();
    let _ = server.await;
    let _ = metrics_task.await;
    if let Some(d) = dispatcher {
        let _ = d.await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// A URL with its password hidden, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            redact_url("postgres://sw:secret@db:5432/sw"),
            "postgres://sw:***@db:5432/sw"
        );
        assert_eq!(
            redact_url("sqlite://data/slawatch.db"),
            "sqlite://data/slawatch.db"
        );
    }
}
