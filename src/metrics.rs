//! Prometheus metrics (SPEC §7, contract names and labels).
//!
//! One [`Metrics`] owns its registry and registers every family at start-up. Gauges
//! that describe cases are derived from state — the open cases in memory and the
//! period counts of ended cases from the store — by [`Metrics::refresh`], which runs
//! after each evaluation and renders the exposition once into a cache; `/metrics`
//! only hands out that cache, so a scrape costs the same whatever the case count.
//!
//! Labels are bounded: kind, unit code (`unknown` for a unit the directory does not
//! know), state, flag, outcome, period, source. Never a case, a person or an
//! applicant. Series exist with zeros for every (kind, unit) that has cases, so alert
//! rules see a zero rather than nothing. A per-procedure family is opt-in.

use crate::directory::Directory;
use crate::sla::model::Kind;
use crate::sla::State;
use crate::store::FinishedGroup;
use axum::body::Bytes;
use prometheus::{
    CounterVec, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

/// The unit label of cases whose unit the directory does not know.
pub const UNKNOWN_UNIT: &str = "unknown";

/// Buckets of `slawatch_overdue_age_workdays`.
const AGE_BUCKETS: [f64; 8] = [0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 40.0];

/// The flags an open case can carry (SPEC §4.8); `returned_late` is for ended cases.
const OPEN_FLAGS: [&str; 7] = [
    "late_supplement_request",
    "multiple_supplements",
    "apology_due",
    "reappointed_twice",
    "due_beyond_legal",
    "step_overdue",
    "supplement_after_due",
];

const OUTCOMES: [&str; 3] = ["early", "on_time", "late"];
const PERIODS: [&str; 3] = ["month", "quarter", "year"];

/// What one open case adds to the gauges.
#[derive(Clone, Debug)]
pub struct OpenFact {
    pub kind: Kind,
    pub unit: Option<Arc<str>>,
    pub procedure: Option<Arc<str>>,
    pub state: Option<&'static str>,
    pub stuck: bool,
    /// The due rests on estimated calendar days.
    pub estimated: bool,
    /// Contract flag names.
    pub flags: Vec<&'static str>,
    pub overdue_workdays: Option<u32>,
    /// Indicator 2.1 to now (`None` outside the population).
    pub on_time: Option<bool>,
}

/// Counts of the open cases, built while the daemon walks them.
#[derive(Clone, Debug, Default)]
pub struct OpenTally {
    open: HashMap<(Kind, Arc<str>, &'static str), i64>,
    stuck: HashMap<(Kind, Arc<str>), i64>,
    estimated: HashMap<(Kind, Arc<str>), i64>,
    flagged: HashMap<(Kind, Arc<str>, &'static str), i64>,
    ages: HashMap<(Kind, Arc<str>), Vec<u32>>,
    ratio: HashMap<(Kind, Arc<str>), (u64, u64)>,
    procedures: HashMap<(Kind, Arc<str>, &'static str), i64>,
    units: BTreeSet<(Kind, Arc<str>)>,
    unknown: Option<Arc<str>>,
}

impl OpenTally {
    pub fn add(&mut self, f: &OpenFact) {
        let unit = match &f.unit {
            Some(u) => u.clone(),
            None => self
                .unknown
                .get_or_insert_with(|| Arc::from(UNKNOWN_UNIT))
                .clone(),
        };
        if !self.units.contains(&(f.kind, unit.clone())) {
            self.units.insert((f.kind, unit.clone()));
        }
        if let Some(state) = f.state {
            *self.open.entry((f.kind, unit.clone(), state)).or_default() += 1;
            if let Some(p) = &f.procedure {
                *self
                    .procedures
                    .entry((f.kind, p.clone(), state))
                    .or_default() += 1;
            }
        }
        if f.stuck {
            *self.stuck.entry((f.kind, unit.clone())).or_default() += 1;
        }
        if f.estimated && f.state.is_some() {
            *self.estimated.entry((f.kind, unit.clone())).or_default() += 1;
        }
        for flag in &f.flags {
            *self
                .flagged
                .entry((f.kind, unit.clone(), flag))
                .or_default() += 1;
        }
        if let Some(age) = f.overdue_workdays {
            self.ages
                .entry((f.kind, unit.clone()))
                .or_default()
                .push(age);
        }
        if let Some(ok) = f.on_time {
            let r = self.ratio.entry((f.kind, unit)).or_default();
            r.0 += ok as u64;
            r.1 += 1;
        }
    }

    /// Open cases counted (those with a state).
    pub fn len(&self) -> i64 {
        self.open.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// A source's health as the metrics show it.
#[derive(Clone, Debug)]
pub struct SourceFact {
    pub name: String,
    pub up: bool,
    pub last_success: Option<f64>,
    pub quarantined: i64,
    /// Newest change time of the last poll that brought changes, minus the poll's start.
    pub clock_skew: Option<f64>,
}

/// Everything [`Metrics::refresh`] needs, gathered by the daemon.
pub struct Snapshot<'a> {
    pub open: &'a OpenTally,
    /// The calendar says the offices are open now (a workday, inside a session).
    pub office_open: bool,
    pub finished: &'a [FinishedGroup],
    pub directory: &'a Directory,
    pub sources: &'a [SourceFact],
    /// `slawatch_calendar_official_until_timestamp_seconds`: the end of the last
    /// official day.
    pub official_until: Option<f64>,
}

/// The metric families, their registry and the rendered cache.
pub struct Metrics {
    registry: Registry,
    procedure_labels: bool,
    cases_open: IntGaugeVec,
    cases_stuck: IntGaugeVec,
    cases_estimated: IntGaugeVec,
    cases_flagged: IntGaugeVec,
    cases_finished: IntGaugeVec,
    on_time_ratio: GaugeVec,
    on_time_cases: IntGaugeVec,
    on_time_population: IntGaugeVec,
    finished_total: IntCounterVec,
    office_open: IntGauge,
    pub last_evaluation: Gauge,
    pub config_reload_ok: IntGauge,
    pub config_reload_at: Gauge,
    overdue_age: HistogramVec,
    returned_late: IntGaugeVec,
    procedure_open: Option<IntGaugeVec>,
    source_up: IntGaugeVec,
    source_last_success: GaugeVec,
    source_clock_skew: GaugeVec,
    quarantined: IntGaugeVec,
    unit_info: IntGaugeVec,
    official_until: Gauge,
    /// Fed by the daemon as polls and evaluations happen.
    pub poll_duration: HistogramVec,
    pub ingest_records: CounterVec,
    pub notifications: CounterVec,
    pub outbox_pending: IntGaugeVec,
    pub outbox_dead: IntGaugeVec,
    pub evaluation_duration: HistogramVec,
    rendered: RwLock<Bytes>,
    /// This replica holds the metrics lease: it exports the case metrics.
    leader: std::sync::atomic::AtomicBool,
    replica_leader: IntGauge,
}

/// The families every replica exports about its own process; the others describe
/// the province (cases, periods, sources, quarantine, outbox, calendar) and come only
/// from the replica holding the metrics lease, so sums over replicas never double.
pub const PER_PROCESS: &[&str] = &[
    "slawatch_source_poll_duration_seconds",
    "slawatch_ingest_records_total",
    "slawatch_notifications_total",
    "slawatch_evaluation_duration_seconds",
    "slawatch_last_evaluation_timestamp_seconds",
    "slawatch_config_last_reload_successful",
    "slawatch_config_last_reload_success_timestamp_seconds",
    "slawatch_build_info",
    "slawatch_replica_leader",
];

/// Whether a family is exported by every replica (else by the metrics leader only).
pub fn per_process(family: &str) -> bool {
    family.starts_with("process_") || PER_PROCESS.contains(&family)
}

fn int_gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

fn int_counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn one_gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::with_opts(Opts::new(name, help)).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn one_int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(Opts::new(name, help)).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    let c = CounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

impl Metrics {
    pub fn new(procedure_labels: bool) -> Metrics {
        let r = Registry::new();
        let cases_open = int_gauge(
            &r,
            "slawatch_cases_open",
            "Open cases by kind, unit and state (not_started, on_track, due_soon, overdue, paused, no_deadline).",
            &["kind", "unit", "state"],
        );
        let cases_stuck = int_gauge(
            &r,
            "slawatch_cases_stuck",
            "Open cases with no activity for the configured workdays or whose current step is past its due.",
            &["kind", "unit"],
        );
        let cases_estimated = int_gauge(
            &r,
            "slawatch_cases_due_on_estimated_calendar",
            "Open cases whose computed due rests on estimated calendar days (a year without official data, or an unconfirmed row).",
            &["kind", "unit"],
        );
        let cases_flagged = int_gauge(
            &r,
            "slawatch_cases_flagged",
            "Open cases carrying a compliance flag (SPEC 4.8).",
            &["kind", "unit", "flag"],
        );
        let cases_finished = int_gauge(
            &r,
            "slawatch_cases_finished",
            "Cases finished in the running period, by outcome (early, on_time, late).",
            &["kind", "unit", "outcome", "period"],
        );
        let on_time_ratio = gauge(
            &r,
            "slawatch_on_time_ratio",
            "Decision 766 indicator 2.1 for the running period to date: on time / population (absent for an empty population).",
            &["kind", "unit", "period"],
        );
        let on_time_cases = int_gauge(
            &r,
            "slawatch_on_time_cases",
            "Decision 766 indicator 2.1 numerator: cases on time in the running period to date (sum with slawatch_on_time_population over any set of units).",
            &["kind", "unit", "period"],
        );
        let on_time_population = int_gauge(
            &r,
            "slawatch_on_time_population",
            "Decision 766 indicator 2.1 denominator: cases accepted before now that ended in the running period or are still open (open cases count).",
            &["kind", "unit", "period"],
        );
        let finished_total = int_counter(
            &r,
            "slawatch_cases_finished_total",
            "Ended cases with an outcome (early, on_time, late), ever stored: use increase() over any range.",
            &["kind", "unit", "outcome"],
        );
        let office_open = one_int_gauge(
            &r,
            "slawatch_office_open",
            "1 while the working calendar says the offices are open (a workday or make-up Saturday, inside a session), else 0.",
        );
        let last_evaluation = one_gauge(
            &r,
            "slawatch_last_evaluation_timestamp_seconds",
            "Unix time of the last evaluation pass over the open cases.",
        );
        let config_reload_ok = one_int_gauge(
            &r,
            "slawatch_config_last_reload_successful",
            "1 when the last load or reload of the configuration (directory, catalogue, calendar) succeeded, else 0.",
        );
        let config_reload_at = one_gauge(
            &r,
            "slawatch_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load or reload of the configuration.",
        );
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("registered once");
        let overdue_age = histogram(
            &r,
            "slawatch_overdue_age_workdays",
            "Whole workdays past the due of open overdue cases.",
            &["kind", "unit"],
            AGE_BUCKETS.to_vec(),
        );
        let returned_late = int_gauge(
            &r,
            "slawatch_cases_returned_late",
            "Cases finished in the running period on time but whose result was handed over after the due.",
            &["kind", "unit", "period"],
        );
        let procedure_open = procedure_labels.then(|| {
            int_gauge(
                &r,
                "slawatch_procedure_cases_open",
                "Open cases by kind, procedure code and state (opt-in: metrics.procedure_labels).",
                &["kind", "procedure", "state"],
            )
        });
        let source_up = int_gauge(
            &r,
            "slawatch_source_up",
            "1 when the source's last poll succeeded (push sources: 1).",
            &["source"],
        );
        let source_last_success = gauge(
            &r,
            "slawatch_source_last_success_timestamp_seconds",
            "Unix time of the source's last successful poll or delivery.",
            &["source"],
        );
        let source_clock_skew = gauge(
            &r,
            "slawatch_source_clock_skew_seconds",
            "Newest change time among the records the last poll changed, minus the poll's start by the daemon's clock: near zero, or negative by at most the time between polls; far below, the source's clock runs behind (or it stamps changes long before committing them); above zero, its clock runs ahead.",
            &["source"],
        );
        let poll_duration = histogram(
            &r,
            "slawatch_source_poll_duration_seconds",
            "Duration of a poll, from the first request to the stored cursor.",
            &["source"],
            vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
        );
        let ingest_records = counter(
            &r,
            "slawatch_ingest_records_total",
            "Records ingested, by result (inserted, updated, unchanged, quarantined).",
            &["source", "result"],
        );
        let quarantined = int_gauge(
            &r,
            "slawatch_quarantined_records",
            "Quarantined records not yet resolved.",
            &["source"],
        );
        let notifications = counter(
            &r,
            "slawatch_notifications_total",
            "Notifications by channel, rule and result (sent, failed).",
            &["channel", "rule", "result"],
        );
        let outbox_pending = int_gauge(
            &r,
            "slawatch_outbox_pending",
            "Messages waiting in the outbox.",
            &["channel"],
        );
        let outbox_dead = int_gauge(
            &r,
            "slawatch_outbox_dead_letters",
            "Messages dead-lettered after their last attempt and not requeued (slawatch notify requeue).",
            &["channel"],
        );
        let official_until = Gauge::with_opts(Opts::new(
            "slawatch_calendar_official_until_timestamp_seconds",
            "Unix time at which the officially announced days off end (the end of the last official day).",
        ))
        .expect("valid metric");
        r.register(Box::new(official_until.clone()))
            .expect("registered once");
        let evaluation_duration = histogram(
            &r,
            "slawatch_evaluation_duration_seconds",
            "Duration of one evaluation pass over the open cases.",
            &[],
            vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        );
        let unit_info = int_gauge(
            &r,
            "slawatch_unit_info",
            "Always 1: a unit's name, parent and level, to join on the unit label.",
            &["unit", "name", "parent", "level"],
        );
        let build = int_gauge(
            &r,
            "slawatch_build_info",
            "Always 1: the running version.",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let replica_leader = one_int_gauge(
            &r,
            "slawatch_replica_leader",
            "1 on the replica that holds the metrics lease and exports the case metrics, 0 on the others.",
        );
        replica_leader.set(1);
        // Present from the start, at zero.
        let _ = evaluation_duration.with_label_values::<&str>(&[]);
        Metrics {
            registry: r,
            procedure_labels,
            cases_open,
            cases_stuck,
            cases_estimated,
            cases_flagged,
            cases_finished,
            on_time_ratio,
            on_time_cases,
            on_time_population,
            finished_total,
            office_open,
            last_evaluation,
            config_reload_ok,
            config_reload_at,
            overdue_age,
            returned_late,
            procedure_open,
            source_up,
            source_last_success,
            source_clock_skew,
            quarantined,
            unit_info,
            official_until,
            poll_duration,
            ingest_records,
            notifications,
            outbox_pending,
            outbox_dead,
            evaluation_duration,
            rendered: RwLock::new(Bytes::new()),
            leader: std::sync::atomic::AtomicBool::new(true),
            replica_leader,
        }
    }

    /// Whether this replica exports the case metrics.
    pub fn is_leader(&self) -> bool {
        self.leader.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets whether this replica exports the case metrics (the metrics lease).
    pub fn set_leader(&self, on: bool) {
        self.leader.store(on, std::sync::atomic::Ordering::Relaxed);
        self.replica_leader.set(on as i64);
    }

    /// Whether the per-procedure family is on.
    pub fn procedure_labels(&self) -> bool {
        self.procedure_labels
    }

    /// Sets every derived gauge from a snapshot and renders the exposition.
    pub fn refresh(&self, s: &Snapshot<'_>) {
        // (kind, unit) pairs with cases, open or ended this year: they get zeros.
        let mut pairs: BTreeSet<(Kind, Arc<str>)> = s.open.units.clone();
        for g in s.finished {
            if let Some(kind) = Kind::ALL.into_iter().find(|k| k.as_str() == g.kind) {
                let unit = g.unit.as_deref().unwrap_or(UNKNOWN_UNIT);
                pairs.insert((kind, Arc::from(unit)));
            }
        }
        self.cases_open.reset();
        self.cases_stuck.reset();
        self.cases_estimated.reset();
        self.cases_flagged.reset();
        self.cases_finished.reset();
        self.on_time_ratio.reset();
        self.on_time_cases.reset();
        self.on_time_population.reset();
        self.overdue_age.reset();
        self.returned_late.reset();
        for (kind, unit) in &pairs {
            let k = kind.as_str();
            for state in State::ALL {
                let n = s
                    .open
                    .open
                    .get(&(*kind, unit.clone(), state.as_str()))
                    .copied()
                    .unwrap_or(0);
                self.cases_open
                    .with_label_values(&[k, unit, state.as_str()])
                    .set(n);
            }
            let stuck = s
                .open
                .stuck
                .get(&(*kind, unit.clone()))
                .copied()
                .unwrap_or(0);
            self.cases_stuck.with_label_values(&[k, unit]).set(stuck);
            let estimated = s
                .open
                .estimated
                .get(&(*kind, unit.clone()))
                .copied()
                .unwrap_or(0);
            self.cases_estimated
                .with_label_values(&[k, unit])
                .set(estimated);
            for flag in OPEN_FLAGS {
                let n = s
                    .open
                    .flagged
                    .get(&(*kind, unit.clone(), flag))
                    .copied()
                    .unwrap_or(0);
                self.cases_flagged
                    .with_label_values(&[k, unit, flag])
                    .set(n);
            }
            let h = self.overdue_age.with_label_values(&[k, unit]);
            if let Some(ages) = s.open.ages.get(&(*kind, unit.clone())) {
                for a in ages {
                    h.observe(*a as f64);
                }
            }
            for period in PERIODS {
                for outcome in OUTCOMES {
                    self.cases_finished
                        .with_label_values(&[k, unit, outcome, period])
                        .set(0);
                }
                self.returned_late
                    .with_label_values(&[k, unit, period])
                    .set(0);
                self.on_time_cases
                    .with_label_values(&[k, unit, period])
                    .set(0);
                self.on_time_population
                    .with_label_values(&[k, unit, period])
                    .set(0);
            }
        }
        // Ended cases ever, by outcome: a counter, moved up to the stored count (a
        // case reopened or purged lowers it: then the series restarts, as after a
        // restart, which increase() handles).
        let mut ever: BTreeMap<(Kind, Arc<str>, &str), u64> = BTreeMap::new();
        for (kind, unit) in &pairs {
            for o in OUTCOMES {
                ever.insert((*kind, unit.clone(), o), 0);
            }
        }
        for g in s.finished {
            let Some(kind) = Kind::ALL.into_iter().find(|k| k.as_str() == g.kind) else {
                continue;
            };
            if let Some(o) = OUTCOMES.iter().find(|o| Some(**o) == g.outcome.as_deref()) {
                let unit: Arc<str> = Arc::from(g.unit.as_deref().unwrap_or(UNKNOWN_UNIT));
                *ever.entry((kind, unit, o)).or_default() += g.all_time.max(0) as u64;
            }
        }
        for ((kind, unit, o), n) in ever {
            let labels = [kind.as_str(), &unit, o];
            let c = self.finished_total.with_label_values(&labels);
            let have = c.get();
            if n > have {
                c.inc_by(n - have);
            } else if n < have {
                let _ = self.finished_total.remove_label_values(&labels);
                self.finished_total.with_label_values(&labels).inc_by(n);
            }
        }
        self.office_open.set(s.office_open as i64);
        // Period counts: the ended cases of each period plus the open ones to now.
        let mut ratio: BTreeMap<(Kind, Arc<str>, &str), (u64, u64)> = BTreeMap::new();
        for ((kind, unit), (ok, all)) in &s.open.ratio {
            for period in PERIODS {
                let r = ratio.entry((*kind, unit.clone(), period)).or_default();
                r.0 += ok;
                r.1 += all;
            }
        }
        for g in s.finished {
            let Some(kind) = Kind::ALL.into_iter().find(|k| k.as_str() == g.kind) else {
                continue;
            };
            let unit: Arc<str> = Arc::from(g.unit.as_deref().unwrap_or(UNKNOWN_UNIT));
            for (period, n) in [
                ("month", g.in_month),
                ("quarter", g.in_quarter),
                ("year", g.in_year),
            ] {
                if n == 0 {
                    continue;
                }
                if let Some(o) = g.outcome.as_deref().filter(|o| OUTCOMES.contains(o)) {
                    self.cases_finished
                        .with_label_values(&[kind.as_str(), &unit, o, period])
                        .add(n);
                }
                if g.returned_late {
                    self.returned_late
                        .with_label_values(&[kind.as_str(), &unit, period])
                        .add(n);
                }
                if let Some(ok) = g.on_time {
                    let r = ratio.entry((kind, unit.clone(), period)).or_default();
                    r.0 += if ok { n as u64 } else { 0 };
                    r.1 += n as u64;
                }
            }
        }
        for ((kind, unit, period), (ok, all)) in ratio {
            self.on_time_cases
                .with_label_values(&[kind.as_str(), &unit, period])
                .set(ok as i64);
            self.on_time_population
                .with_label_values(&[kind.as_str(), &unit, period])
                .set(all as i64);
            if all > 0 {
                self.on_time_ratio
                    .with_label_values(&[kind.as_str(), &unit, period])
                    .set(ok as f64 / all as f64);
            }
        }
        if let Some(p) = &self.procedure_open {
            p.reset();
            for ((kind, procedure, state), n) in &s.open.procedures {
                p.with_label_values(&[kind.as_str(), procedure, state])
                    .set(*n);
            }
        }
        self.unit_info.reset();
        for u in s.directory.units() {
            self.unit_info
                .with_label_values(&[
                    &u.code,
                    &u.name,
                    u.parent.as_deref().unwrap_or(""),
                    &u.level.to_string(),
                ])
                .set(1);
        }
        self.unit_info
            .with_label_values(&[UNKNOWN_UNIT, "Không xác định", "", "0"])
            .set(1);
        self.set_sources(s.sources);
        match s.official_until {
            Some(t) => self.official_until.set(t),
            None => self.official_until.set(0.0),
        }
        self.render();
    }

    /// Updates the per-source gauges (after each poll) without touching the rest.
    pub fn set_sources(&self, sources: &[SourceFact]) {
        self.source_up.reset();
        self.source_last_success.reset();
        self.source_clock_skew.reset();
        self.quarantined.reset();
        for src in sources {
            self.source_up
                .with_label_values(&[&src.name])
                .set(src.up as i64);
            if let Some(t) = src.last_success {
                self.source_last_success
                    .with_label_values(&[&src.name])
                    .set(t);
            }
            self.quarantined
                .with_label_values(&[&src.name])
                .set(src.quarantined);
            if let Some(s) = src.clock_skew {
                self.source_clock_skew
                    .with_label_values(&[&src.name])
                    .set(s);
            }
            for result in ["inserted", "updated", "unchanged", "quarantined"] {
                // Present from the start, so rate() sees the first increase.
                let _ = self.ingest_records.with_label_values(&[&src.name, result]);
            }
        }
    }

    /// Renders the registry into the cache that scrapes read.
    pub fn render(&self) {
        let mut families = self.registry.gather();
        if !self.is_leader() {
            families.retain(|f| per_process(f.name()));
        }
        let mut out = String::with_capacity(64 * 1024);
        if let Err(e) = TextEncoder::new().encode_utf8(&families, &mut out) {
            tracing::error!(error = %e, "cannot render metrics");
            return;
        }
        *self.rendered.write().expect("metrics cache lock") = Bytes::from(out);
    }

    /// The exposition as last rendered.
    pub fn exposition(&self) -> Bytes {
        self.rendered.read().expect("metrics cache lock").clone()
    }
}

/// One unit's open cases and running periods for one kind (the API's unit summary;
/// the same numbers as the metrics).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct KindSummary {
    pub open: BTreeMap<&'static str, i64>,
    pub stuck: i64,
    pub flagged: BTreeMap<&'static str, i64>,
    /// Per period: `{on_time, population, ratio}`; `ratio` is null for an empty one.
    pub on_time: BTreeMap<&'static str, PeriodRatio>,
    pub finished: BTreeMap<&'static str, BTreeMap<&'static str, i64>>,
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct PeriodRatio {
    pub on_time: u64,
    pub population: u64,
    pub ratio: Option<f64>,
}

/// A unit with its summaries per kind.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UnitSummary {
    pub unit: String,
    pub name: String,
    pub parent: Option<String>,
    pub level: u8,
    pub kinds: BTreeMap<&'static str, KindSummary>,
}

/// Summaries of every unit of the directory (and `unknown` when it has cases).
pub fn unit_summaries(s: &Snapshot<'_>) -> Vec<UnitSummary> {
    let mut kinds: BTreeMap<(String, &'static str), KindSummary> = BTreeMap::new();
    fn slot<'m>(
        kinds: &'m mut BTreeMap<(String, &'static str), KindSummary>,
        unit: &str,
        kind: Kind,
    ) -> &'m mut KindSummary {
        kinds
            .entry((unit.to_string(), kind.as_str()))
            .or_insert_with(|| KindSummary {
                open: State::ALL.iter().map(|st| (st.as_str(), 0)).collect(),
                on_time: PERIODS
                    .iter()
                    .map(|p| (*p, PeriodRatio::default()))
                    .collect(),
                finished: PERIODS
                    .iter()
                    .map(|p| (*p, OUTCOMES.iter().map(|o| (*o, 0)).collect()))
                    .collect(),
                ..KindSummary::default()
            })
    }
    for (kind, unit) in &s.open.units {
        slot(&mut kinds, unit, *kind);
    }
    for ((kind, unit, state), n) in &s.open.open {
        *slot(&mut kinds, unit, *kind).open.entry(state).or_default() += n;
    }
    for ((kind, unit), n) in &s.open.stuck {
        slot(&mut kinds, unit, *kind).stuck += n;
    }
    for ((kind, unit, flag), n) in &s.open.flagged {
        *slot(&mut kinds, unit, *kind)
            .flagged
            .entry(flag)
            .or_default() += n;
    }
    for ((kind, unit), (ok, all)) in &s.open.ratio {
        for r in slot(&mut kinds, unit, *kind).on_time.values_mut() {
            r.on_time += ok;
            r.population += all;
        }
    }
    for g in s.finished {
        let Some(kind) = Kind::ALL.into_iter().find(|k| k.as_str() == g.kind) else {
            continue;
        };
        let k = slot(&mut kinds, g.unit.as_deref().unwrap_or(UNKNOWN_UNIT), kind);
        for (period, n) in [
            ("month", g.in_month),
            ("quarter", g.in_quarter),
            ("year", g.in_year),
        ] {
            if let Some(o) = g.outcome.as_deref() {
                if let Some(c) = k
                    .finished
                    .get_mut(period)
                    .and_then(|m| m.iter_mut().find(|(name, _)| **name == o))
                {
                    *c.1 += n;
                }
            }
            if let (Some(ok), Some(r)) = (g.on_time, k.on_time.get_mut(period)) {
                r.on_time += if ok { n as u64 } else { 0 };
                r.population += n as u64;
            }
        }
    }
    for k in kinds.values_mut() {
        for r in k.on_time.values_mut() {
            r.ratio = (r.population > 0).then(|| r.on_time as f64 / r.population as f64);
        }
    }
    let mut out: Vec<UnitSummary> = s
        .directory
        .units()
        .iter()
        .map(|u| UnitSummary {
            unit: u.code.clone(),
            name: u.name.clone(),
            parent: u.parent.clone(),
            level: u.level,
            kinds: BTreeMap::new(),
        })
        .collect();
    for ((unit, kind), summary) in kinds {
        let i = match out.iter().position(|u| u.unit == unit) {
            Some(i) => i,
            None => {
                out.push(UnitSummary {
                    name: if unit == UNKNOWN_UNIT {
                        "Không xác định".into()
                    } else {
                        unit.clone()
                    },
                    unit,
                    parent: None,
                    level: 0,
                    kinds: BTreeMap::new(),
                });
                out.len() - 1
            }
        };
        out[i].kinds.insert(kind, summary);
    }
    out
}

/// The open-case flags among `flags`, by contract name.
pub fn open_flags(flags: crate::sla::Flags) -> Vec<&'static str> {
    flags.names().filter(|n| OPEN_FLAGS.contains(n)).collect()
}

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(unit: Option<&str>, state: &'static str, on_time: Option<bool>) -> OpenFact {
        OpenFact {
            kind: Kind::Dossier,
            unit: unit.map(Arc::from),
            procedure: Some(Arc::from("1.004227")),
            state: Some(state),
            stuck: state == "overdue",
            estimated: state == "on_track",
            flags: if state == "overdue" {
                vec!["apology_due"]
            } else {
                vec![]
            },
            overdue_workdays: (state == "overdue").then_some(4),
            on_time,
        }
    }

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .map(|l| &l[series.len() + 1..])
    }

    fn directory() -> Directory {
        Directory::parse(
            "[[unit]]\ncode = \"UBND\"\nname = \"UBND tỉnh\"\n\n[[unit]]\ncode = \"SXD\"\nname = \"Sở Xây dựng\"\nparent = \"UBND\"\nlevel = 1\n",
            "units.toml",
        )
        .expect("directory")
    }

    #[test]
    fn gauges_zeros_ratio_and_unknown_units() {
        let m = Metrics::new(true);
        let mut tally = OpenTally::default();
        tally.add(&fact(Some("SXD"), "on_track", Some(true)));
        tally.add(&fact(Some("SXD"), "overdue", Some(false)));
        tally.add(&fact(None, "due_soon", Some(true)));
        // Ended this month: 3 on time (2 early, 1 on the day), 1 late returned late;
        // and 2 earlier in the quarter, on time.
        let finished = vec![
            FinishedGroup {
                kind: "dossier".into(),
                unit: Some("SXD".into()),
                outcome: Some("early".into()),
                on_time: Some(true),
                returned_late: false,
                in_year: 4,
                in_quarter: 4,
                in_month: 2,
                all_time: 9,
            },
            FinishedGroup {
                kind: "dossier".into(),
                unit: Some("SXD".into()),
                outcome: Some("on_time".into()),
                on_time: Some(true),
                returned_late: false,
                in_year: 1,
                in_quarter: 1,
                in_month: 1,
                all_time: 1,
            },
            FinishedGroup {
                kind: "dossier".into(),
                unit: Some("SXD".into()),
                outcome: Some("late".into()),
                on_time: Some(false),
                returned_late: true,
                in_year: 1,
                in_quarter: 1,
                in_month: 1,
                all_time: 1,
            },
        ];
        m.refresh(&Snapshot {
            open: &tally,
            office_open: true,
            finished: &finished,
            directory: &directory(),
            sources: &[SourceFact {
                name: "portal".into(),
                up: false,
                last_success: Some(1_700_000_000.5),
                quarantined: 3,
                clock_skew: Some(-420.0),
            }],
            official_until: Some(1_798_736_400.0),
        });
        let text = String::from_utf8(m.exposition().to_vec()).unwrap();
        let at = |s: &str| line(&text, s).unwrap_or_else(|| panic!("no series {s}"));
        let k = "kind=\"dossier\"";
        assert_eq!(
            at(&format!(
                "slawatch_cases_open{{{k},state=\"overdue\",unit=\"SXD\"}}"
            )),
            "1"
        );
        // Zeros for every state of a (kind, unit) with cases.
        assert_eq!(
            at(&format!(
                "slawatch_cases_open{{{k},state=\"paused\",unit=\"SXD\"}}"
            )),
            "0"
        );
        assert_eq!(
            at(&format!(
                "slawatch_cases_open{{{k},state=\"due_soon\",unit=\"unknown\"}}"
            )),
            "1"
        );
        assert_eq!(
            at(&format!("slawatch_cases_stuck{{{k},unit=\"SXD\"}}")),
            "1"
        );
        // One SXD case (on track) rests on estimated days; the unknown unit's none.
        assert_eq!(
            at(&format!(
                "slawatch_cases_due_on_estimated_calendar{{{k},unit=\"SXD\"}}"
            )),
            "1"
        );
        assert_eq!(
            at(&format!(
                "slawatch_cases_due_on_estimated_calendar{{{k},unit=\"unknown\"}}"
            )),
            "0"
        );
        assert_eq!(
            at(&format!(
                "slawatch_cases_flagged{{flag=\"apology_due\",{k},unit=\"SXD\"}}"
            )),
            "1"
        );
        // Month: 2 open judged (1 on time) + 4 ended (3 on time) = 4/6.
        assert_eq!(
            at(&format!(
                "slawatch_on_time_ratio{{{k},period=\"month\",unit=\"SXD\"}}"
            )),
            (4.0f64 / 6.0).to_string()
        );
        // Year: 2 open (1) + 6 ended (5) = 6/8.
        assert_eq!(
            at(&format!(
                "slawatch_on_time_ratio{{{k},period=\"year\",unit=\"SXD\"}}"
            )),
            "0.75"
        );
        // Its numerator and denominator, to sum over units.
        assert_eq!(
            at(&format!(
                "slawatch_on_time_cases{{{k},period=\"year\",unit=\"SXD\"}}"
            )),
            "6"
        );
        assert_eq!(
            at(&format!(
                "slawatch_on_time_population{{{k},period=\"year\",unit=\"SXD\"}}"
            )),
            "8"
        );
        // Zeros where nothing is judged (the unknown unit's one case is due soon,
        // on time to date: 1/1).
        assert_eq!(
            at(&format!(
                "slawatch_on_time_population{{{k},period=\"month\",unit=\"unknown\"}}"
            )),
            "1"
        );
        // Ended ever, by outcome: early 9 (5 of them before this year), on time 1,
        // late 1; a counter.
        assert_eq!(
            at(&format!(
                "slawatch_cases_finished_total{{{k},outcome=\"early\",unit=\"SXD\"}}"
            )),
            "9"
        );
        assert!(text.contains("# TYPE slawatch_cases_finished_total counter"));
        assert_eq!(
            at(&format!(
                "slawatch_cases_finished_total{{{k},outcome=\"late\",unit=\"unknown\"}}"
            )),
            "0"
        );
        assert_eq!(at("slawatch_office_open"), "1");
        assert_eq!(at("slawatch_evaluation_duration_seconds_count"), "0");
        assert!(text.contains("process_resident_memory_bytes"));
        assert_eq!(
            at(&format!(
                "slawatch_cases_finished{{{k},outcome=\"early\",period=\"quarter\",unit=\"SXD\"}}"
            )),
            "4"
        );
        assert_eq!(
            at(&format!(
                "slawatch_cases_returned_late{{{k},period=\"month\",unit=\"SXD\"}}"
            )),
            "1"
        );
        // Overdue age 4 workdays: in the le=5 bucket, not in le=3.
        assert_eq!(
            at(&format!(
                "slawatch_overdue_age_workdays_bucket{{{k},unit=\"SXD\",le=\"3\"}}"
            )),
            "0"
        );
        assert_eq!(
            at(&format!(
                "slawatch_overdue_age_workdays_bucket{{{k},unit=\"SXD\",le=\"5\"}}"
            )),
            "1"
        );
        assert_eq!(
            at("slawatch_unit_info{level=\"1\",name=\"Sở Xây dựng\",parent=\"UBND\",unit=\"SXD\"}"),
            "1"
        );
        assert_eq!(at("slawatch_source_up{source=\"portal\"}"), "0");
        assert_eq!(at("slawatch_quarantined_records{source=\"portal\"}"), "3");
        assert_eq!(
            at("slawatch_calendar_official_until_timestamp_seconds"),
            "1798736400"
        );
        assert_eq!(
            at(&format!(
                "slawatch_procedure_cases_open{{{k},procedure=\"1.004227\",state=\"overdue\"}}"
            )),
            "1"
        );
        // No label ever carries a case id: the only values are the bounded sets.
        assert!(!text.contains("case_id"));
    }

    #[test]
    fn the_finished_counter_only_rises_and_restarts_when_the_store_holds_fewer() {
        let m = Metrics::new(false);
        let tally = OpenTally::default();
        let group = |n: i64| FinishedGroup {
            kind: "dossier".into(),
            unit: Some("SXD".into()),
            outcome: Some("late".into()),
            on_time: Some(false),
            returned_late: false,
            in_year: 0,
            in_quarter: 0,
            in_month: 0,
            all_time: n,
        };
        let series =
            "slawatch_cases_finished_total{kind=\"dossier\",outcome=\"late\",unit=\"SXD\"}";
        let mut seen = Vec::new();
        for n in [3, 5, 2, 4] {
            m.refresh(&Snapshot {
                open: &tally,
                office_open: false,
                finished: &[group(n)],
                directory: &directory(),
                sources: &[],
                official_until: None,
            });
            let text = String::from_utf8(m.exposition().to_vec()).unwrap();
            seen.push(line(&text, series).unwrap().to_string());
        }
        // 3 → 5 rises; a case reopened (2) restarts the series, as a restart would.
        assert_eq!(seen, ["3", "5", "2", "4"]);
    }

    #[test]
    fn an_empty_population_reports_no_ratio() {
        let m = Metrics::new(false);
        let mut tally = OpenTally::default();
        tally.add(&fact(Some("SXD"), "no_deadline", None));
        m.refresh(&Snapshot {
            open: &tally,
            office_open: false,
            finished: &[],
            directory: &directory(),
            sources: &[],
            official_until: None,
        });
        let text = String::from_utf8(m.exposition().to_vec()).unwrap();
        assert!(!text.contains("slawatch_on_time_ratio{"));
        assert!(!text.contains("slawatch_procedure_cases_open"));
        assert!(text.contains(
            "slawatch_cases_open{kind=\"dossier\",state=\"no_deadline\",unit=\"SXD\"} 1"
        ));
    }

    #[test]
    fn stored_flags_map_to_contract_names() {
        let flags = crate::sla::Flags::parse("apology_due,step_overdue,nonsense,returned_late");
        assert_eq!(open_flags(flags), ["apology_due", "step_overdue"]);
        assert!(open_flags(crate::sla::Flags::parse("")).is_empty());
    }
}
