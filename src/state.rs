//! The daemon's shared runtime state: what evaluation needs ([`Context`], swapped whole
//! on a reload), the open cases in memory with their latest evaluation ([`Entry`]), the
//! sources' health, and the handles every job and HTTP handler share ([`Shared`]).
//!
//! It owns no schedule and runs no job: jobs, ingest and the HTTP layer act on it. It
//! never reads the system time itself — "now" is [`Shared::now`], from the one clock.

use crate::calendar::{Calendar, CalendarError};
use crate::catalogue::{Catalogue, Procedure};
use crate::clock::Clock;
use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::sla::horizon::holds_until;
use crate::sla::model::Case;
use crate::sla::policy::Policy;
use crate::sla::ratio::on_time_until;
use crate::sla::{evaluate, Evaluation, Lifecycle};
use crate::store::{EvalSummary, FinishedGroup, PeriodStarts, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// What evaluation needs, swapped whole on a reload.
#[derive(Clone)]
pub struct Context {
    pub calendar: Arc<Calendar>,
    pub policy: Policy,
    pub catalogue: Catalogue,
    pub directory: Directory,
}

impl Context {
    /// The context a loaded configuration describes, with its calendar.
    pub fn from_loaded(loaded: &crate::config::Loaded, calendar: Arc<Calendar>) -> Context {
        Context {
            calendar,
            policy: loaded.policy.clone(),
            catalogue: loaded.catalogue.clone(),
            directory: loaded.directory.clone(),
        }
    }

    /// The case's procedure in the catalogue, by its code.
    pub fn procedure(&self, case: &Case) -> Option<&Procedure> {
        self.catalogue.for_case(case)
    }

    /// The one place that looks up a case's procedure and evaluates it at `now`.
    pub fn evaluate(&self, case: &Case, now: DateTime<Utc>) -> Result<Evaluation, CalendarError> {
        evaluate(
            case,
            self.procedure(case),
            &self.calendar,
            &self.policy,
            now,
        )
    }

    /// The evaluation at `now`, its stored summary, and the instant until which that
    /// summary holds (see [`crate::sla::horizon`]).
    pub fn judge_holding(
        &self,
        case: &Case,
        now: DateTime<Utc>,
    ) -> Result<(Evaluation, EvalSummary, DateTime<Utc>), CalendarError> {
        let (e, s) = self.judge(case, now)?;
        let until = holds_until(case, &self.calendar, &self.policy, &e, now);
        Ok((e, s, until))
    }

    /// The evaluation at `now` with the summary that is stored of it.
    pub fn judge(
        &self,
        case: &Case,
        now: DateTime<Utc>,
    ) -> Result<(Evaluation, EvalSummary), CalendarError> {
        let e = self.evaluate(case, now)?;
        let s = summarize(case, self, &e, now);
        Ok((e, s))
    }
}

/// An open case in memory.
#[derive(Clone, Debug)]
pub struct Entry {
    pub case: Case,
    pub eval: Option<EvalSummary>,
    /// How long `eval` holds, when known: a re-evaluation judges the case again only
    /// from then on (or under another configuration).
    pub(crate) holds: Option<Holds>,
}

impl Entry {
    /// A case with its evaluation, to be judged again at the next re-evaluation.
    pub fn new(case: Case, eval: Option<EvalSummary>) -> Entry {
        Entry {
            case,
            eval,
            holds: None,
        }
    }
}

/// The span over which an entry's evaluation is known to stay the same, under the
/// configuration of one generation ([`Shared::context_generation`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Holds {
    pub(crate) generation: u64,
    pub(crate) from: DateTime<Utc>,
    pub(crate) until: DateTime<Utc>,
}

impl Holds {
    /// Whether the evaluation holds at `now` under the configuration `generation`.
    pub(crate) fn at(&self, generation: u64, now: DateTime<Utc>) -> bool {
        self.generation == generation && self.from <= now && now < self.until
    }
}

/// A source's health, for `/readyz` and the metrics; shared through the store with the
/// replicas that do not poll it.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SourceHealth {
    pub name: String,
    pub kind: String,
    pub up: bool,
    pub last_poll: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    #[serde(skip)]
    pub next_attempt: Option<DateTime<Utc>>,
    pub last_records: usize,
    /// The cursor the next poll reads from (the newest change time stored).
    pub cursor: Option<String>,
    /// Newest change time of the last poll that changed records, minus its start.
    pub clock_skew_seconds: Option<i64>,
    /// The source's clock, as its change times show it, runs ahead or behind ours
    /// (kept until a poll with changes shows no skew).
    pub clock_warning: Option<String>,
    /// What the first poll could not have read (see `initial_cursor`).
    pub first_poll_warning: Option<String>,
}

/// Counts of one ingest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub quarantined: usize,
}

impl IngestStats {
    pub fn add(&mut self, o: IngestStats) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.quarantined += o.quarantined;
    }
}

/// State shared by the jobs and the HTTP handlers.
pub struct Shared {
    pub store: Arc<dyn Store>,
    /// The context with its generation (raised by a swap that changes what evaluation
    /// reads, and by `judge_all_again`).
    pub(crate) context: RwLock<(Arc<Context>, u64)>,
    pub(crate) open: Mutex<HashMap<(String, String), Entry>>,
    pub(crate) health: Mutex<Vec<SourceHealth>>,
    pub(crate) salt: String,
    /// Shared copies of the texts the open cases repeat.
    pub(crate) interner: Mutex<crate::sla::model::Interner>,
    pub metrics: Metrics,
    /// Period counts of ended cases, read from the store when cases end or a period
    /// turns, and every few minutes.
    pub(crate) finished: Mutex<FinishedCache>,
    /// Wakes the metrics task.
    pub(crate) metrics_wanted: tokio::sync::Notify,
    /// Unit summaries as of the last metrics refresh.
    pub(crate) units: RwLock<Arc<Vec<crate::metrics::UnitSummary>>>,
    /// The alerts fired and not resolved, once read from the store.
    pub(crate) alerts: Mutex<Option<crate::jobs::alerts::AlertMemory>>,
    /// This process, as the holder of leases.
    pub holder: String,
    /// Overdue counts recorded per (unit, week), to write only increases.
    pub(crate) weeks: Mutex<HashMap<(String, String), i64>>,
    /// Acknowledgements read so far, by case (read on from the last id each time).
    pub(crate) acks: Mutex<AckCache>,
    /// Batches hold it shared from their commit until memory follows; a timer
    /// re-evaluation holds it alone from reading memory until its evaluations are
    /// stored, so it never writes back an evaluation older than a poll's.
    pub(crate) write_gate: Arc<tokio::sync::RwLock<()>>,
    /// Where "now" comes from for every job and handler.
    pub clock: Clock,
    /// The leases this replica holds, with the end it last gave them.
    pub(crate) leases: Mutex<HashMap<String, DateTime<Utc>>>,
    /// How long a lease lasts unless renewed (`daemon.lease_seconds`).
    pub lease_span: chrono::Duration,
    /// The polled sources, each with the waker of its poll job (run when this replica
    /// takes its lease over).
    pub(crate) polled: Mutex<Vec<(String, Arc<tokio::sync::Notify>)>>,
    /// Where this replica stands in the change feed.
    pub(crate) feed: tokio::sync::Mutex<crate::jobs::replica::FeedCursor>,
}

/// The acknowledgements a daemon has read: an acknowledged (case, rule, due) sends no
/// more alerts, and digests mark the case.
#[derive(Default)]
pub(crate) struct AckCache {
    pub(crate) last_id: i64,
    pub(crate) by_case: HashMap<(String, String), Vec<crate::store::Ack>>,
}

#[derive(Default)]
pub(crate) struct FinishedCache {
    pub(crate) starts: Option<PeriodStarts>,
    pub(crate) read_at: Option<std::time::Instant>,
    pub(crate) stale: bool,
    pub(crate) groups: Vec<FinishedGroup>,
}

impl Shared {
    /// Reads the acknowledgements recorded since the last read (by any replica).
    pub(crate) async fn refresh_acks(&self) -> Result<(), StoreError> {
        let after = self.acks.lock().expect("acks lock").last_id;
        let new = self.store.acks_after(after).await?;
        let mut cache = self.acks.lock().expect("acks lock");
        for (id, a) in new {
            if id <= cache.last_id {
                continue;
            }
            cache.last_id = id;
            cache
                .by_case
                .entry((a.source.clone(), a.case_id.clone()))
                .or_default()
                .push(a);
        }
        Ok(())
    }
}

impl AckCache {
    /// The latest acknowledgement of `rule` for the case's due `due_key`, if any.
    pub(crate) fn find(
        &self,
        source: &str,
        case_id: &str,
        rule: &str,
        due_key: &str,
    ) -> Option<&crate::store::Ack> {
        if self.by_case.is_empty() {
            return None;
        }
        self.by_case
            .get(&(source.to_string(), case_id.to_string()))?
            .iter()
            .rev()
            .find(|a| a.rule == rule && crate::store::due_key(a.due_at) == due_key)
    }
}

/// How long period counts of ended cases are reused when no case ended meanwhile.
pub(crate) const FINISHED_REREAD: std::time::Duration = std::time::Duration::from_secs(600);

impl Shared {
    pub fn new(store: Arc<dyn Store>, context: Context, salt: String) -> Shared {
        Shared {
            store,
            context: RwLock::new((Arc::new(context), 0)),
            open: Mutex::new(HashMap::new()),
            health: Mutex::new(Vec::new()),
            salt,
            interner: Mutex::new(Default::default()),
            metrics: Metrics::new(false),
            finished: Mutex::new(FinishedCache::default()),
            metrics_wanted: tokio::sync::Notify::new(),
            units: RwLock::new(Arc::new(Vec::new())),
            alerts: Mutex::new(None),
            weeks: Mutex::new(HashMap::new()),
            acks: Mutex::new(AckCache::default()),
            write_gate: Arc::new(tokio::sync::RwLock::new(())),
            clock: Clock::system(),
            leases: Mutex::new(HashMap::new()),
            lease_span: chrono::Duration::seconds(30),
            feed: tokio::sync::Mutex::new(Default::default()),
            polled: Mutex::new(Vec::new()),
            holder: format!(
                "{}:{}:{}",
                std::env::var("SLAWATCH_REPLICA")
                    .ok()
                    .filter(|r| !r.is_empty())
                    .or_else(|| {
                        std::fs::read_to_string("/proc/sys/kernel/hostname")
                            .ok()
                            .map(|h| h.trim().to_string())
                    })
                    .unwrap_or_else(|| "host".into())
                    .replace(':', "-"),
                std::process::id(),
                {
                    use std::hash::{BuildHasher, Hasher};
                    std::collections::hash_map::RandomState::new()
                        .build_hasher()
                        .finish()
                }
            ),
        }
    }

    /// Turns on the per-procedure metric family.
    pub fn with_procedure_metrics(mut self, on: bool) -> Shared {
        self.metrics = Metrics::new(on);
        self
    }

    /// Names this process as a lease holder (`host:pid:nonce`; tests run replicas
    /// side by side in one process).
    pub fn with_holder(mut self, holder: &str) -> Shared {
        self.holder = holder.to_string();
        self
    }

    /// How long leases last unless renewed: the bound on a takeover after a replica dies.
    pub fn with_lease_span(mut self, span: chrono::Duration) -> Shared {
        self.lease_span = span.max(chrono::Duration::seconds(1));
        self
    }

    /// The clock every job and handler reads (the system clock unless set).
    pub fn with_clock(mut self, clock: Clock) -> Shared {
        self.clock = clock;
        self
    }

    /// The current instant, from the daemon's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Unit summaries as of the last metrics refresh.
    pub fn unit_summaries(&self) -> Arc<Vec<crate::metrics::UnitSummary>> {
        self.units.read().expect("units lock").clone()
    }

    /// The open cases that `keep` selects, with their evaluations (cloned).
    pub fn select_open(&self, mut keep: impl FnMut(&Entry) -> bool) -> Vec<Entry> {
        self.open
            .lock()
            .expect("open lock")
            .values()
            .filter(|e| keep(e))
            .cloned()
            .collect()
    }

    /// Runs `f` over the open cases under their lock: keep it short (no I/O).
    pub fn with_open<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &Entry>) -> R) -> R {
        let open = self.open.lock().expect("open lock");
        let mut it = open.values();
        f(&mut it)
    }

    /// An open case by source and id.
    pub fn open_case(&self, source: &str, case_id: &str) -> Option<Entry> {
        self.open
            .lock()
            .expect("open lock")
            .get(&(source.to_string(), case_id.to_string()))
            .cloned()
    }

    /// Asks the metrics task for a refresh (coalesced).
    pub fn metrics_changed(&self) {
        self.metrics_wanted.notify_one();
    }

    pub fn context(&self) -> Arc<Context> {
        self.context.read().expect("context lock").0.clone()
    }

    /// The context with its generation: evaluations made under another generation
    /// are judged again.
    pub(crate) fn context_generation(&self) -> (Arc<Context>, u64) {
        self.context.read().expect("context lock").clone()
    }

    /// Swaps the context. Evaluations made under the old one are judged afresh at the
    /// next pass when what evaluation reads changed (the calendar, the rules, the
    /// catalogue); a reload of the directory alone keeps them.
    pub fn set_context(&self, c: Context) {
        let mut w = self.context.write().expect("context lock");
        let same = w.0.calendar.version() == c.calendar.version()
            && w.0.policy == c.policy
            && w.0.catalogue == c.catalogue;
        *w = (Arc::new(c), w.1 + u64::from(!same));
    }

    /// Has every open case judged afresh at the next re-evaluation, whatever its
    /// evaluation's horizon.
    pub fn judge_all_again(&self) {
        self.context.write().expect("context lock").1 += 1;
    }

    pub fn health(&self) -> Vec<SourceHealth> {
        self.health.lock().expect("health lock").clone()
    }

    pub fn open_count(&self) -> usize {
        self.open.lock().expect("open lock").len()
    }

    /// Registers a source, so its health is tracked.
    pub fn register_source(&self, name: &str, kind: &str) {
        let mut h = self.health.lock().expect("health lock");
        if !h.iter().any(|s| s.name == name) {
            h.push(SourceHealth {
                name: name.to_string(),
                kind: kind.to_string(),
                up: kind == "push",
                ..SourceHealth::default()
            });
        }
    }

    /// Open cases of a source whose last change (by the source's time) is before `t`.
    pub fn open_changed_before(&self, source: &str, t: DateTime<Utc>) -> usize {
        self.open
            .lock()
            .expect("open lock")
            .iter()
            .filter(|((s, _), e)| s == source && e.case.updated_at.is_some_and(|u| u < t))
            .count()
    }

    /// Marks a delivery from a push source.
    pub fn touch_source(&self, name: &str, at: DateTime<Utc>, records: usize) {
        self.update_health(name, |h| {
            h.up = true;
            h.last_poll = Some(at);
            h.last_success = Some(at);
            h.last_records = records;
        });
    }

    pub(crate) fn update_health(&self, name: &str, f: impl FnOnce(&mut SourceHealth)) {
        let mut h = self.health.lock().expect("health lock");
        if let Some(s) = h.iter_mut().find(|s| s.name == name) {
            f(s);
        }
    }

    /// Loads the open cases from the store and evaluates them.
    pub async fn load(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        // The feed's position first: what commits during the load is followed again.
        let seq = self.store.changes_latest().await?;
        let (ctx, generation) = self.context_generation();
        let mut loaded: HashMap<(String, String), Entry> = HashMap::new();
        let mut interner = std::mem::take(&mut *self.interner.lock().expect("interner lock"));
        self.store
            .load_open_each(&mut |mut case| {
                interner.case(&mut case);
                let (eval, holds) = match ctx.judge_holding(&case, now) {
                    Ok((_, s, until)) => (
                        Some(s),
                        Some(Holds {
                            generation,
                            from: now,
                            until,
                        }),
                    ),
                    Err(_) => (None, None),
                };
                loaded.insert(
                    (case.source.to_string(), case.case_id.clone()),
                    Entry { case, eval, holds },
                );
            })
            .await?;
        let n = loaded.len();
        *self.interner.lock().expect("interner lock") = interner;
        *self.open.lock().expect("open lock") = loaded;
        let mut feed = self.feed.lock().await;
        feed.last_seq = feed.last_seq.max(seq);
        feed.followed_at = Some(now);
        Ok(n)
    }
}

/// The stored summary of an evaluation; an ended case carries its indicator 2.1.
pub(crate) fn summarize(
    case: &Case,
    ctx: &Context,
    e: &crate::sla::Evaluation,
    now: DateTime<Utc>,
) -> EvalSummary {
    let summary = EvalSummary::of(e, now);
    if e.lifecycle == Lifecycle::Open {
        return summary;
    }
    let proc = ctx.procedure(case);
    summary.judged(on_time_until(
        case,
        proc,
        &ctx.calendar,
        &ctx.policy,
        DateTime::<Utc>::MAX_UTC,
    ))
}
