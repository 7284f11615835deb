//! What a calendar change does to the cases held (SPEC §9 `calendar diff`): each case
//! evaluated under the current and the new calendar at the same instant, and the
//! differences counted per unit — dues moved, states and outcomes changed, and
//! Decision 766 indicator 2.1 for the running periods before and after. Pure.

use super::engine::{evaluate, Evaluation, Lifecycle};
use super::model::{Case, Kind};
use super::policy::Policy;
use super::ratio::{judge, Period, PeriodKind, Ratio};
use crate::calendar::Calendar;
use crate::catalogue::Catalogue;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// The unit label of cases without one.
pub const NO_UNIT: &str = "unknown";

/// What one case is under one calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Standing {
    pub due: Option<DateTime<Utc>>,
    pub state: Option<&'static str>,
    pub outcome: Option<&'static str>,
    pub estimated: bool,
    /// Indicator 2.1 to `now` (`None` outside the population).
    pub on_time: Option<bool>,
}

/// A case that the change touches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseChange {
    pub source: String,
    pub case_id: String,
    pub kind: Kind,
    pub unit: String,
    pub open: bool,
    pub before: Standing,
    pub after: Standing,
}

impl CaseChange {
    /// `earlier`, `later`, or `None` when the due stays.
    pub fn due_move(&self) -> Option<&'static str> {
        due_move(self.before.due, self.after.due)
    }
}

/// How a due moves from `a` to `b`: `earlier`, `later`, `changed` (one side none), or
/// `None` when it stays.
fn due_move(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<&'static str> {
    match (a, b) {
        (Some(a), Some(b)) if b < a => Some("earlier"),
        (Some(a), Some(b)) if b > a => Some("later"),
        (a, b) if a != b => Some("changed"),
        _ => None,
    }
}

/// The key of a change of name, `on_track → overdue` (`-` for none).
fn transition(a: Option<&str>, b: Option<&str>) -> String {
    format!("{} → {}", a.unwrap_or("-"), b.unwrap_or("-"))
}

/// The indicator for one running period, before and after.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeriodRatios {
    pub before: Ratio,
    pub after: Ratio,
}

/// Counts of one unit (or of all: unit `*`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UnitDiff {
    pub unit: String,
    /// Open cases read.
    pub open: u64,
    /// Ended cases of the running periods read.
    pub ended: u64,
    /// Open cases whose due moves, earlier or later.
    pub dues_moved: u64,
    pub earlier: u64,
    pub later: u64,
    /// Open cases whose state changes, and how (`overdue → on_track`).
    pub states_changed: u64,
    pub state_changes: BTreeMap<String, u64>,
    /// Ended cases whose outcome changes, and how (`on_time → late`).
    pub outcomes_changed: u64,
    pub outcome_changes: BTreeMap<String, u64>,
    /// Dues that rest on estimated days before and after.
    pub estimated_before: u64,
    pub estimated_after: u64,
    /// Indicator 2.1 per running period (`month`, `quarter`, `year`).
    pub ratios: BTreeMap<&'static str, PeriodRatios>,
}

impl UnitDiff {
    fn merge(&mut self, o: &UnitDiff) {
        self.open += o.open;
        self.ended += o.ended;
        self.dues_moved += o.dues_moved;
        self.earlier += o.earlier;
        self.later += o.later;
        self.states_changed += o.states_changed;
        self.outcomes_changed += o.outcomes_changed;
        self.estimated_before += o.estimated_before;
        self.estimated_after += o.estimated_after;
        for (k, v) in &o.state_changes {
            *self.state_changes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.outcome_changes {
            *self.outcome_changes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.ratios {
            let r = self.ratios.entry(k).or_default();
            r.before.on_time += v.before.on_time;
            r.before.population += v.before.population;
            r.after.on_time += v.after.on_time;
            r.after.population += v.after.population;
        }
    }

    /// Whether anything of this unit changes.
    pub fn changed(&self) -> bool {
        self.dues_moved > 0
            || self.states_changed > 0
            || self.outcomes_changed > 0
            || self.estimated_before != self.estimated_after
            || self.ratios.values().any(|r| r.before != r.after)
    }
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub now: DateTime<Utc>,
    /// The running periods, to `now`.
    pub periods: Vec<Period>,
    pub units: BTreeMap<String, UnitDiff>,
    pub total: UnitDiff,
    /// Changed cases: overdue first, then by due.
    pub cases: Vec<CaseChange>,
    /// Cases that could not be evaluated under one of the calendars.
    pub errors: Vec<String>,
}

impl Diff {
    /// Whether the change touches anything.
    pub fn changed(&self) -> bool {
        !self.cases.is_empty() || self.total.changed()
    }
}

/// Both calendars and what the evaluation needs besides.
pub struct Sides<'a> {
    pub before: &'a Calendar,
    pub after: &'a Calendar,
    pub policy: &'a Policy,
    pub catalogue: &'a Catalogue,
    pub now: DateTime<Utc>,
}

fn standing(
    e: &Evaluation,
    case: &Case,
    s: &Sides<'_>,
    cal: &Calendar,
    year_start: DateTime<Utc>,
) -> Standing {
    let proc = s.catalogue.for_case(case);
    Standing {
        due: e.due,
        state: e.state.map(|x| x.as_str()),
        outcome: e.outcome.map(|x| x.as_str()),
        estimated: e.calendar_estimated,
        on_time: judge(case, proc, cal, s.policy, year_start, s.now)
            .ok()
            .flatten()
            .map(|j| j.on_time),
    }
}

/// Compares the cases under both calendars. Cases are open ones and those ended in the
/// running year (earlier ones belong to no running period and are skipped).
pub fn compare(cases: &[Case], s: &Sides<'_>) -> Diff {
    let periods: Vec<Period> = PeriodKind::ALL
        .into_iter()
        .map(|k| Period::containing(k, s.now, s.before).to_date(s.now))
        .collect();
    // Two halves on two threads: each half is independent.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let chunk = cases.len().div_ceil(workers).max(1);
    let parts: Vec<Part> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .chunks(chunk)
            .map(|part| scope.spawn(|| compare_part(part, s, &periods)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("compare worker"))
            .collect()
    });
    let mut units: BTreeMap<String, UnitDiff> = BTreeMap::new();
    let mut total = UnitDiff {
        unit: "*".into(),
        ..UnitDiff::default()
    };
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    for p in parts {
        for (k, u) in p.units {
            total.merge(&u);
            units
                .entry(k.clone())
                .or_insert_with(|| UnitDiff {
                    unit: k,
                    ..UnitDiff::default()
                })
                .merge(&u);
        }
        changes.extend(p.cases);
        errors.extend(p.errors);
    }
    changes.sort_by(|a, b| {
        let rank = |c: &CaseChange| match c.before.state {
            Some("overdue") => 0,
            _ if c.open => 1,
            _ => 2,
        };
        (rank(a), a.before.due, &a.source, &a.case_id).cmp(&(
            rank(b),
            b.before.due,
            &b.source,
            &b.case_id,
        ))
    });
    Diff {
        now: s.now,
        periods,
        units,
        total,
        cases: changes,
        errors,
    }
}

#[derive(Default)]
struct Part {
    units: BTreeMap<String, UnitDiff>,
    cases: Vec<CaseChange>,
    errors: Vec<String>,
}

fn compare_part(cases: &[Case], s: &Sides<'_>, periods: &[Period]) -> Part {
    let mut out = Part::default();
    let year_start = periods
        .iter()
        .map(|p| p.start)
        .min()
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    for case in cases {
        let proc = s.catalogue.for_case(case);
        let (b, a) = match (
            evaluate(case, proc, s.before, s.policy, s.now),
            evaluate(case, proc, s.after, s.policy, s.now),
        ) {
            (Ok(b), Ok(a)) => (b, a),
            (Err(e), _) | (_, Err(e)) => {
                out.errors
                    .push(format!("{} / {}: {e}", case.source, case.case_id));
                continue;
            }
        };
        let open = b.lifecycle == Lifecycle::Open;
        // Ended before the running year: in no running period.
        if !open && b.end.is_none_or(|e| e < year_start) {
            continue;
        }
        let before = standing(&b, case, s, s.before, year_start);
        let after = standing(&a, case, s, s.after, year_start);
        let unit = case.unit_code.as_deref().unwrap_or(NO_UNIT).to_string();
        let u = out.units.entry(unit.clone()).or_insert_with(|| UnitDiff {
            unit: unit.clone(),
            ..UnitDiff::default()
        });
        if open {
            u.open += 1;
        } else {
            u.ended += 1;
        }
        u.estimated_before += before.estimated as u64;
        u.estimated_after += after.estimated as u64;
        for p in periods {
            // Open at `now`, or ended inside the period.
            let member = open || b.end.is_some_and(|e| e >= p.start);
            if !member {
                continue;
            }
            let r = u.ratios.entry(p.kind.as_str()).or_default();
            if let Some(ok) = before.on_time {
                r.before.population += 1;
                r.before.on_time += ok as u64;
            }
            if let Some(ok) = after.on_time {
                r.after.population += 1;
                r.after.on_time += ok as u64;
            }
        }
        // An ended case changes when its outcome or its indicator does (its due is
        // history); an open one when anything it shows does.
        let differs = if open {
            before != after
        } else {
            before.outcome != after.outcome || before.on_time != after.on_time
        };
        if !differs {
            continue;
        }
        let change = CaseChange {
            source: case.source.to_string(),
            case_id: case.case_id.clone(),
            kind: case.kind,
            unit,
            open,
            before,
            after,
        };
        let moved = change.due_move().filter(|_| open);
        u.dues_moved += moved.is_some() as u64;
        u.earlier += (moved == Some("earlier")) as u64;
        u.later += (moved == Some("later")) as u64;
        if before.state != after.state {
            u.states_changed += 1;
            *u.state_changes
                .entry(transition(before.state, after.state))
                .or_default() += 1;
        }
        if before.outcome != after.outcome {
            u.outcomes_changed += 1;
            *u.outcome_changes
                .entry(transition(before.outcome, after.outcome))
                .or_default() += 1;
        }
        out.cases.push(change);
    }
    out
}

/// What a reload of the calendar moves, from the daemon's stored evaluations: each
/// case evaluated anew at the instant its stored evaluation was made, so only what the
/// configuration changed can differ (`check-config`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReloadSummary {
    /// Cases with a stored evaluation made with another calendar version.
    pub compared: u64,
    pub dues_moved: u64,
    pub earlier: u64,
    pub later: u64,
    pub states_changed: u64,
    /// Units with a moved due or a changed state.
    pub units: std::collections::BTreeSet<String>,
    /// Calendar versions of the stored evaluations, with their counts.
    pub stored_versions: BTreeMap<String, u64>,
}

/// One stored evaluation, as the daemon saved it.
pub struct Stored<'a> {
    pub due: Option<DateTime<Utc>>,
    pub state: Option<&'a str>,
    pub evaluated_at: DateTime<Utc>,
    pub calendar_version: &'a str,
}

impl ReloadSummary {
    /// Adds one open case with its stored evaluation, judged anew under `cal`.
    pub fn add(
        &mut self,
        case: &Case,
        stored: &Stored<'_>,
        cal: &Calendar,
        policy: &Policy,
        catalogue: &Catalogue,
    ) {
        *self
            .stored_versions
            .entry(stored.calendar_version.to_string())
            .or_default() += 1;
        let v = cal.version();
        if stored.calendar_version.split_once('@') == Some((v.name.as_str(), v.hash.as_str())) {
            return;
        }
        let proc = catalogue.for_case(case);
        let Ok(e) = evaluate(case, proc, cal, policy, stored.evaluated_at) else {
            return;
        };
        self.compared += 1;
        let moved = due_move(stored.due, e.due);
        let mut changed = moved.is_some();
        self.dues_moved += changed as u64;
        self.earlier += (moved == Some("earlier")) as u64;
        self.later += (moved == Some("later")) as u64;
        if stored.state != e.state.map(|s| s.as_str()) {
            self.states_changed += 1;
            changed = true;
        }
        if changed {
            self.units
                .insert(case.unit_code.as_deref().unwrap_or(NO_UNIT).to_string());
        }
    }
}

#[cfg(test)]
mod tests;
