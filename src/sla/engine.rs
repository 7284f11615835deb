//! The SLA engine: one case, one calendar, one policy, one `now` → an [`Evaluation`]
//! (SPEC §4.3–§4.8). Pure and cheap: no I/O, no clock, no trace text (traces are built
//! on demand by `explain`).

use super::duration::Duration;
use super::model::{status, Case, DueChangeCause};
use super::policy::{DuePolicy, Policy, Rules, SupplementView};
use crate::calendar::{Calendar, CalendarError, CalendarVersion};
use crate::catalogue::Procedure;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// State of an open case (contract names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum State {
    NotStarted,
    OnTrack,
    DueSoon,
    Overdue,
    Paused,
    NoDeadline,
}

impl State {
    pub const ALL: [State; 6] = [
        State::NotStarted,
        State::OnTrack,
        State::DueSoon,
        State::Overdue,
        State::Paused,
        State::NoDeadline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::NotStarted => "not_started",
            State::OnTrack => "on_track",
            State::DueSoon => "due_soon",
            State::Overdue => "overdue",
            State::Paused => "paused",
            State::NoDeadline => "no_deadline",
        }
    }

    /// The state of a contract name.
    pub fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Outcome of an ended case (contract names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Early,
    OnTime,
    Late,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Early, Outcome::OnTime, Outcome::Late];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Early => "early",
            Outcome::OnTime => "on_time",
            Outcome::Late => "late",
        }
    }

    /// The outcome of a contract name.
    pub fn parse(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

/// Where a case is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Open,
    /// Status 9 or 10.
    Finished,
    /// Status 7.
    Withdrawn,
    /// Status 3 before acceptance: never entered.
    RefusedAtIntake,
    /// Status 3 after acceptance: ends the case like a finish.
    RefusedAfterAppraisal,
    /// Status 8 configured terminal: ends the case like a finish.
    Stopped,
}

impl Lifecycle {
    /// Ended with an outcome (a finish, a refusal after appraisal, a terminal stop).
    pub fn has_outcome(self) -> bool {
        matches!(
            self,
            Lifecycle::Finished | Lifecycle::RefusedAfterAppraisal | Lifecycle::Stopped
        )
    }
}

/// Compliance flags (SPEC §4.8), as a small bit set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    pub const LATE_SUPPLEMENT_REQUEST: Flags = Flags(1);
    pub const MULTIPLE_SUPPLEMENTS: Flags = Flags(1 << 1);
    pub const APOLOGY_DUE: Flags = Flags(1 << 2);
    pub const REAPPOINTED_TWICE: Flags = Flags(1 << 3);
    pub const DUE_BEYOND_LEGAL: Flags = Flags(1 << 4);
    pub const STEP_OVERDUE: Flags = Flags(1 << 5);
    pub const RETURNED_LATE: Flags = Flags(1 << 6);
    pub const SUPPLEMENT_AFTER_DUE: Flags = Flags(1 << 7);

    /// Every flag with its contract name.
    pub const ALL: [(Flags, &'static str); 8] = [
        (Flags::LATE_SUPPLEMENT_REQUEST, "late_supplement_request"),
        (Flags::MULTIPLE_SUPPLEMENTS, "multiple_supplements"),
        (Flags::APOLOGY_DUE, "apology_due"),
        (Flags::REAPPOINTED_TWICE, "reappointed_twice"),
        (Flags::DUE_BEYOND_LEGAL, "due_beyond_legal"),
        (Flags::STEP_OVERDUE, "step_overdue"),
        (Flags::RETURNED_LATE, "returned_late"),
        (Flags::SUPPLEMENT_AFTER_DUE, "supplement_after_due"),
    ];

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn set(&mut self, other: Flags, on: bool) {
        if on {
            self.0 |= other.0;
        }
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::ALL
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }

    /// The flags of a comma-separated list of contract names (unknown names ignored):
    /// how the store keeps them.
    pub fn parse(list: &str) -> Flags {
        let mut out = Flags::default();
        for name in list.split(',') {
            if let Some((f, _)) = Flags::ALL.iter().find(|(_, n)| *n == name) {
                out.set(*f, true);
            }
        }
        out
    }

    /// The contract names, comma-separated (the store's form).
    pub fn joined(self) -> String {
        self.names().collect::<Vec<_>>().join(",")
    }

    /// Whether the flag of this contract name is set.
    pub fn has(self, name: &str) -> bool {
        self.names().any(|n| n == name)
    }
}

impl Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// Where the effective due came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DueBasis {
    /// The source's `due_at` (NgayHenTra).
    Source,
    /// Computed from the catalogue's duration.
    Computed,
}

/// One step with its own deadline (the source's, else the catalogue template's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepResult {
    /// Index into `case.steps`.
    pub index: usize,
    pub due: DateTime<Utc>,
    /// When the step was done (its action, else the next step's start, else the case's
    /// end); `None` while open.
    pub done_at: Option<DateTime<Utc>>,
    /// The latest step of an open case.
    pub open: bool,
    pub overdue: bool,
}

impl StepResult {
    /// The unit lateness is attributed to: the step's directory unit, else the case's.
    pub fn unit<'a>(&self, case: &'a Case) -> Option<&'a str> {
        case.steps[self.index]
            .unit_code
            .as_deref()
            .or(case.unit_code.as_deref())
    }
}

/// Everything the engine says about one case at one instant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub lifecycle: Lifecycle,
    /// State of an open case.
    pub state: Option<State>,
    /// Outcome of a case that ended with one and has a due.
    pub outcome: Option<Outcome>,
    pub stuck: bool,
    pub flags: Flags,
    /// Effective start: the receipt, snapped.
    pub start: Option<DateTime<Utc>>,
    /// Where the counting of the computed due starts: the start, or the snapped
    /// resumption after the last supplement (restart view).
    pub counted_from: Option<DateTime<Utc>>,
    /// The effective due (SPEC §4.3).
    pub due: Option<DateTime<Utc>>,
    pub due_basis: Option<DueBasis>,
    /// The due computed from the catalogue, with the live supplement view and pauses.
    pub legal_due: Option<DateTime<Utc>>,
    /// The due computed from the receipt alone.
    pub legal_due_at_receipt: Option<DateTime<Utc>>,
    /// When the case ended.
    pub end: Option<DateTime<Utc>>,
    /// Whole workdays past the due (open: at `now`; ended late: at the end).
    pub overdue_workdays: u32,
    /// Working time counted against the due (since the start or the last restart,
    /// pauses excluded), in seconds.
    pub used_work_seconds: i64,
    /// Working time left until the due (negative once past), in seconds.
    pub remaining_work_seconds: Option<i64>,
    /// Working time paused since the start or the last restart, in seconds.
    pub paused_work_seconds: i64,
    /// The last status, step or supplement change.
    pub last_change: Option<DateTime<Utc>>,
    pub steps: Vec<StepResult>,
    pub calendar: Arc<CalendarVersion>,
    /// The due was computed across days of an estimated year or an unconfirmed row
    /// (see [`Evaluation::estimate`]); a source's due never is.
    pub calendar_estimated: bool,
}

impl Evaluation {
    /// Why the computed due rests on estimated days, if it does: the span from the
    /// start (or the restart after a supplement) to the due.
    pub fn estimate(&self, cal: &Calendar) -> Option<crate::calendar::Estimate> {
        if self.due_basis != Some(DueBasis::Computed) {
            return None;
        }
        let (from, due) = (self.counted_from.or(self.start)?, self.due?);
        cal.estimate_in(cal.local(from).date(), cal.local(due).date())
    }
}

type Interval = (DateTime<Utc>, Option<DateTime<Utc>>);

/// Stays in the statuses that `pred` picks, from the status history: the closed ones,
/// and the start of one still open at the end of the history.
fn stays(case: &Case, pred: impl Fn(u8) -> bool) -> (Vec<Interval>, Option<DateTime<Utc>>) {
    let mut closed = Vec::new();
    let mut open: Option<DateTime<Utc>> = None;
    for c in &case.status_history {
        match (pred(c.status), open) {
            (true, None) => open = Some(c.at),
            (false, Some(from)) => {
                closed.push((from, Some(c.at)));
                open = None;
            }
            _ => {}
        }
    }
    (closed, open)
}

/// Supplement intervals `(requested, resumed)`: the source's list, else the status
/// history's stays in status 5 (approximate), plus an open one when the case waits in
/// status 5 with no open request listed (since it entered 5, else its last update).
pub(crate) fn supplement_intervals(case: &Case) -> Vec<Interval> {
    let mut v: Vec<Interval> = case
        .supplements
        .iter()
        .map(|s| (s.requested_at, s.resumed_at))
        .collect();
    if v.is_empty() {
        let (closed, open) = stays(case, |s| s == status::SUPPLEMENT);
        v = closed;
        v.extend(open.map(|from| (from, None)));
    }
    if case.status == status::SUPPLEMENT && v.last().is_none_or(|l| l.1.is_some()) {
        if let Some(since) = case.since(&[status::SUPPLEMENT]).or(case.updated_at) {
            if v.last().is_none_or(|l| l.1.is_some_and(|r| r <= since)) {
                v.push((since, None));
            }
        }
    }
    v
}

/// When the first supplement was requested, and how many were (from the source's
/// list, else the status history).
pub fn supplement_requests(case: &Case) -> (Option<DateTime<Utc>>, usize) {
    let v = supplement_intervals(case);
    (v.first().map(|s| s.0), v.len())
}

/// Pauses other than supplements (statuses 6 and 8 when the rules pause them), from
/// the status history: `(from, to)`, `to` open while the case is still in it.
pub(crate) fn other_pauses(case: &Case, rules: &Rules) -> Vec<Interval> {
    let paused = |s: u8| s != status::SUPPLEMENT && rules.pauses(s);
    let (mut v, open) = stays(case, paused);
    if let Some(from) = open {
        if paused(case.status) {
            v.push((from, None));
        } else {
            v.push((from, case.updated_at));
        }
    } else if paused(case.status) {
        if let Some(since) = case.updated_at {
            v.push((since, None));
        }
    }
    v
}

/// The lifecycle of a case and when it ended.
pub(crate) fn lifecycle_of(case: &Case, rules: &Rules) -> (Lifecycle, Option<DateTime<Utc>>) {
    match case.status {
        status::FINISHED | status::RETURNED => (
            Lifecycle::Finished,
            case.finished_at
                .or(case.returned_at)
                .or_else(|| case.since(&[status::FINISHED, status::RETURNED]))
                .or(case.updated_at),
        ),
        status::WITHDRAWN => (
            Lifecycle::Withdrawn,
            case.since(&[status::WITHDRAWN]).or(case.updated_at),
        ),
        status::REFUSED => {
            let accepted = case.received_at.is_some_and(|r| {
                case.refused_at.is_some_and(|f| f > r)
                    || !case.steps.is_empty()
                    || case
                        .status_history
                        .iter()
                        .any(|c| !matches!(c.status, status::SUBMITTED | status::REFUSED))
            });
            let end = case
                .refused_at
                .or_else(|| case.since(&[status::REFUSED]))
                .or(case.updated_at);
            if accepted {
                (Lifecycle::RefusedAfterAppraisal, end)
            } else {
                (Lifecycle::RefusedAtIntake, end)
            }
        }
        status::STOPPED if rules.stop_is_terminal => (
            Lifecycle::Stopped,
            case.since(&[status::STOPPED]).or(case.updated_at),
        ),
        _ => (Lifecycle::Open, None),
    }
}

/// The source's due in force at `t`: the first supplement's "due before" when `t` is
/// its request, else the due the last move before `t` set, else the due before any
/// move.
fn due_in_force_at(case: &Case, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Some(s) = case.supplements.first().filter(|s| s.requested_at == t) {
        if s.due_before.is_some() {
            return s.due_before;
        }
    }
    match case.due_history.iter().rev().find(|m| m.at <= t) {
        Some(m) => m.to,
        None => case.original_due(),
    }
}

/// The legal duration of a case: from its procedure, by channel.
pub(crate) fn legal_duration(case: &Case, procedure: Option<&Procedure>) -> Option<Duration> {
    procedure.map(|p| p.duration_for(case.channel))
}

/// Judges one case at `now`.
pub fn evaluate(
    case: &Case,
    procedure: Option<&Procedure>,
    cal: &Calendar,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Evaluation, CalendarError> {
    let rules = policy.rules_for_receipt(case.received_at, cal);
    let (lifecycle, end) = lifecycle_of(case, rules);
    let open = lifecycle == Lifecycle::Open;
    let horizon = end.unwrap_or(now);
    let duration = legal_duration(case, procedure);
    let start = case
        .received_at
        .map(|r| cal.snap(r, rules.receipt_cutoff))
        .transpose()?;
    let supplements = supplement_intervals(case);

    // The computed (legal) due, live view.
    let mut legal_due = None;
    let mut legal_due_at_receipt = None;
    let mut count_from = start;
    let mut paused = 0i64;
    if let (Some(s), Some(d)) = (start, duration) {
        if d != Duration::None {
            let at_receipt = cal.add(s, &d)?;
            legal_due_at_receipt = at_receipt;
            let mut base = at_receipt;
            match rules.supplement_view {
                SupplementView::Restart => {
                    let last_resume = supplements
                        .iter()
                        .filter_map(|x| x.1)
                        .filter(|r| *r <= horizon)
                        .max();
                    if let Some(r) = last_resume {
                        let from = cal.snap(r, rules.receipt_cutoff)?;
                        count_from = Some(from);
                        base = cal.add(from, &d)?;
                    }
                }
                SupplementView::Pause => {
                    for (a, b) in &supplements {
                        let b = b.unwrap_or(horizon).min(horizon);
                        if b > *a {
                            paused += cal.work_between(*a, b)?;
                        }
                    }
                }
            }
            legal_due = base;
        }
    }
    let from = count_from.unwrap_or(horizon);
    for (a, b) in other_pauses(case, rules) {
        let a = a.max(from);
        let b = b.unwrap_or(horizon).min(horizon);
        if b > a {
            paused += cal.work_between(a, b)?;
        }
    }
    if paused > 0 {
        if let Some(d) = legal_due {
            legal_due = Some(cal.add_work_seconds(d, paused)?);
        }
    }

    // The effective due.
    let no_deadline_procedure = duration == Some(Duration::None);
    let (due, due_basis) = if no_deadline_procedure {
        (None, None)
    } else {
        let source = case.due_at.map(|d| (d, DueBasis::Source));
        let computed = legal_due.map(|d| (d, DueBasis::Computed));
        let pick = match rules.due_policy {
            DuePolicy::SourceElseComputed => source.or(computed),
            DuePolicy::Source => source,
            DuePolicy::Computed => computed.or(source),
        };
        (pick.map(|p| p.0), pick.map(|p| p.1))
    };

    let paused_now = open && rules.pauses(case.status);
    let mut flags = Flags::default();

    // Supplements: late first request, more than one.
    if let (Some(s), Some(first)) = (start, supplements.first()) {
        if let Some(limit) = cal.plus(s, &rules.supplement_request_within)? {
            flags.set(Flags::LATE_SUPPLEMENT_REQUEST, first.0 > limit);
        }
    }
    flags.set(Flags::MULTIPLE_SUPPLEMENTS, supplements.len() > 1);
    if let Some(first) = supplements.first() {
        let in_force = due_in_force_at(case, first.0).or(legal_due_at_receipt);
        flags.set(
            Flags::SUPPLEMENT_AFTER_DUE,
            in_force.is_some_and(|d| first.0 > d),
        );
    }
    let reappointments = case
        .due_history
        .iter()
        .filter(|c| c.cause == DueChangeCause::Reappointment)
        .count();
    flags.set(Flags::REAPPOINTED_TWICE, reappointments > 1);
    if let (Some(orig), Some(legal)) = (case.original_due(), legal_due_at_receipt) {
        let tolerance = chrono::Duration::seconds(rules.due_beyond_legal_tolerance_seconds);
        flags.set(Flags::DUE_BEYOND_LEGAL, orig > legal + tolerance);
    }

    // Steps with their own deadlines.
    let mut order: Vec<usize> = (0..case.steps.len()).collect();
    order.sort_by_key(|&i| case.steps[i].order_key());
    let mut steps = Vec::new();
    let mut current_step_late = false;
    for (pos, &i) in order.iter().enumerate() {
        let step = &case.steps[i];
        let step_due = match (
            step.step_due_at,
            procedure,
            step.title.as_deref(),
            step.started_at,
        ) {
            (Some(d), ..) => d,
            (None, Some(p), Some(title), Some(started)) => match p.step_template(title) {
                Some(t) => match cal.plus(started, &t.duration)? {
                    Some(d) => d,
                    None => continue,
                },
                None => continue,
            },
            _ => continue,
        };
        let latest = pos + 1 == order.len();
        let (done_at, is_open) = if latest && open {
            (None, true)
        } else {
            let next_start = order.get(pos + 1).and_then(|&j| case.steps[j].started_at);
            let fallback = if latest { end } else { None };
            (step.acted_at.or(next_start).or(fallback), false)
        };
        let overdue = match done_at {
            Some(done) => done > step_due,
            None => now > step_due || step.acted_at.is_some_and(|a| a > step_due),
        };
        if is_open && now > step_due {
            current_step_late = true;
        }
        flags.set(Flags::STEP_OVERDUE, overdue);
        steps.push(StepResult {
            index: i,
            due: step_due,
            done_at,
            open: is_open,
            overdue,
        });
    }

    // Last change, for `stuck`.
    let last_change = case
        .status_history
        .iter()
        .map(|c| c.at)
        .chain(
            case.steps
                .iter()
                .flat_map(|s| [s.started_at, s.acted_at])
                .flatten(),
        )
        .chain(supplements.iter().flat_map(|s| [Some(s.0), s.1]).flatten())
        .chain(case.received_at)
        .max();

    // State of an open case.
    let mut state = None;
    let mut overdue_workdays = 0;
    if open {
        state = Some(if case.status == status::SUBMITTED {
            State::NotStarted
        } else if paused_now {
            State::Paused
        } else {
            match due {
                None => State::NoDeadline,
                Some(d) if now > d => State::Overdue,
                Some(d) => match cal.plus(now, &rules.due_soon_within)? {
                    Some(limit) if d <= limit => State::DueSoon,
                    _ => State::OnTrack,
                },
            }
        });
        if let (Some(State::OnTrack | State::DueSoon), Some(d)) = (state, due) {
            if let Some(limit) = cal.plus(now, &rules.apology_within)? {
                flags.set(Flags::APOLOGY_DUE, d <= limit);
            }
        }
        if state == Some(State::Overdue) {
            overdue_workdays = cal.overdue_workdays(due.expect("overdue has a due"), now)?;
        }
    }
    let stuck = open
        && !paused_now
        && (current_step_late
            || match last_change {
                Some(at) => cal.plus(at, &rules.stuck_after)?.is_some_and(|t| t <= now),
                None => false,
            });

    // Outcome of an ended case.
    let mut outcome = None;
    if let (true, Some(e), Some(d)) = (lifecycle.has_outcome(), end, due) {
        outcome = Some(if e > d {
            overdue_workdays = cal.overdue_workdays(d, e)?;
            Outcome::Late
        } else if cal.local(e).date() < cal.local(d).date() {
            Outcome::Early
        } else {
            Outcome::OnTime
        });
    }
    if lifecycle == Lifecycle::Finished {
        if let (Some(d), Some(r), Some(f)) = (due, case.returned_at, case.finished_at) {
            flags.set(Flags::RETURNED_LATE, r > d && f <= d);
        }
    }

    let used_work_seconds = match count_from {
        Some(f) if horizon > f => cal.work_between(f, horizon)? - paused,
        _ => 0,
    };
    let remaining_work_seconds = match due {
        Some(_) if !lifecycle.has_outcome() && lifecycle != Lifecycle::Open => None,
        Some(d) => Some(cal.work_between(horizon, d)?),
        None => None,
    };

    let mut e = Evaluation {
        lifecycle,
        state,
        outcome,
        stuck,
        flags,
        start,
        counted_from: count_from,
        due,
        due_basis,
        legal_due,
        legal_due_at_receipt,
        end,
        overdue_workdays,
        used_work_seconds,
        remaining_work_seconds,
        paused_work_seconds: paused,
        last_change,
        steps,
        calendar: cal.version().clone(),
        calendar_estimated: false,
    };
    e.calendar_estimated = e.estimate(cal).is_some();
    Ok(e)
}

#[cfg(test)]
mod tests;
