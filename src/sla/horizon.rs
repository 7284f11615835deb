//! How long an evaluation holds (SPEC §4.4–§4.8 read as functions of `now`): the
//! first instant at which judging the case again could give another stored summary —
//! another state, flag, stuck mark, due or overdue age. Until then the engine's answer
//! is the same, so a re-evaluation judges again only the cases whose instant has come
//! (or that changed, or whose configuration did): it costs what moves, not what exists.
//!
//! The instant is never later than the first change (a change it misses would leave a
//! state stale); it may be earlier (the case is then judged again and found the same).
//! Pure: no clock, `now` is the instant the evaluation was made at.

use super::duration::Duration;
use super::engine::{other_pauses, supplement_intervals, Evaluation, Flags, Lifecycle, State};
use super::model::Case;
use super::policy::{Policy, Rules, SupplementView};
use crate::calendar::Calendar;
use chrono::{DateTime, Days, NaiveTime, TimeDelta, Utc};

/// The first instant at or after which `evaluate(case, …, t)` may summarise otherwise
/// than `e`, the evaluation at `now`; `now` itself when it cannot say (a pause that
/// grows with the working time under way, a calendar out of range), and
/// [`DateTime::<Utc>::MAX_UTC`] when nothing time can bring changes it.
pub fn holds_until(
    case: &Case,
    cal: &Calendar,
    policy: &Policy,
    e: &Evaluation,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let rules = policy.rules_for_receipt(case.received_at, cal);
    let mut h = Horizon {
        now,
        until: DateTime::<Utc>::MAX_UTC,
    };
    // Anything the case records after `now` (a resumption or a status change stamped
    // ahead) changes which pauses and intervals count when `now` passes it.
    for t in recorded_instants(case) {
        h.at(t);
    }
    // A step still open (or never closed) is late once `now` passes its due.
    for s in &e.steps {
        if s.done_at.is_none() {
            h.after(s.due);
        }
    }
    if e.lifecycle != Lifecycle::Open {
        return h.until;
    }
    if e.due_basis == Some(super::DueBasis::Computed) && pause_grows(case, rules, e, now) {
        // The computed due moves with every working second of the pause: it holds
        // only outside the sessions, until the next one opens.
        match cal.snap(now, None) {
            Ok(open) if open > now => h.at(open),
            _ => return now,
        }
    }
    // Stuck from the last change plus `stuck_after` (a paused case is never stuck).
    if !e.stuck && !rules.pauses(case.status) {
        if let Some(at) = e.last_change {
            match cal.plus(at, &rules.stuck_after) {
                Ok(Some(t)) => h.at(t),
                Ok(None) => {}
                Err(_) => return now,
            }
        }
    }
    match (e.state, e.due) {
        (Some(State::OnTrack | State::DueSoon), Some(due)) => {
            h.after(due);
            if e.state == Some(State::OnTrack) && !h.crossing(cal, &rules.due_soon_within, due) {
                return now;
            }
            if !e.flags.contains(Flags::APOLOGY_DUE) && !h.crossing(cal, &rules.apology_within, due)
            {
                return now;
            }
        }
        (Some(State::Overdue), Some(due)) => {
            // The overdue age counts whole workdays from the snapped due's time of day:
            // it can move only at that time of a day or at a midnight.
            let Ok(snapped) = cal.snap(due, None) else {
                return now;
            };
            let local = cal.local(now);
            let at_time =
                |date: chrono::NaiveDate, time: NaiveTime| cal.instant(date.and_time(time));
            h.at(at_time(local.date(), cal.local(snapped).time()));
            if let Some(next) = local.date().checked_add_days(Days::new(1)) {
                h.at(at_time(next, NaiveTime::MIN));
            }
        }
        _ => {}
    }
    h.until
}

/// The earliest of the candidate instants after `now`.
struct Horizon {
    now: DateTime<Utc>,
    until: DateTime<Utc>,
}

impl Horizon {
    /// Something may change from `t` on.
    fn at(&mut self, t: DateTime<Utc>) {
        if t > self.now && t < self.until {
            self.until = t;
        }
    }

    /// Something may change once `now` is past `t` (`now > t`).
    fn after(&mut self, t: DateTime<Utc>) {
        self.at(t + TimeDelta::nanoseconds(1));
    }

    /// Adds the first whole second `t` at which `due ≤ now + d` (the test of `due_soon`
    /// and `apology_due`) becomes true, when it comes before the earliest candidate so
    /// far. `now + d` grows with `now` for every duration but a whole number of
    /// workdays plus a half (whose half is half of that day's hours, which differ
    /// between seasons): for those it answers false (cannot say). The engine reads
    /// `now` to the second, so the test is the same for every instant of a second.
    fn crossing(&mut self, cal: &Calendar, d: &Duration, due: DateTime<Utc>) -> bool {
        if matches!(d, Duration::Workdays { halves } if halves % 2 == 1) {
            return false;
        }
        let reached = |secs: i64| -> Option<bool> {
            let t = DateTime::from_timestamp(secs, 0)?;
            match cal.plus(t, d) {
                Ok(Some(limit)) => Some(due <= limit),
                Ok(None) => Some(false),
                Err(_) => None,
            }
        };
        // Past the earliest candidate nothing needs knowing.
        let mut hi = self.until.min(due).timestamp();
        match reached(hi) {
            Some(false) => return true,
            Some(true) => {}
            None => return false,
        }
        let mut lo = self.now.timestamp();
        match reached(lo) {
            Some(false) => {}
            // True at `now` already, yet the evaluation did not say so: cannot say.
            Some(true) | None => return false,
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match reached(mid) {
                Some(true) => hi = mid,
                Some(false) => lo = mid,
                None => return false,
            }
        }
        match DateTime::from_timestamp(hi, 0) {
            Some(t) => {
                self.at(t);
                true
            }
            None => false,
        }
    }
}

/// Whether a pause counted against the due runs on at `now` (its time grows with the
/// working time after `now`).
fn pause_grows(case: &Case, rules: &Rules, e: &Evaluation, now: DateTime<Utc>) -> bool {
    let running =
        |(a, b): &(DateTime<Utc>, Option<DateTime<Utc>>)| *a < now && b.is_none_or(|b| b > now);
    let supplements = rules.supplement_view == SupplementView::Pause
        && supplement_intervals(case).iter().any(running);
    let from = e.counted_from.unwrap_or(now);
    supplements
        || other_pauses(case, rules)
            .iter()
            .any(|(a, b)| running(&((*a).max(from), *b)))
}

/// Every instant the case records as having happened (not its dues).
fn recorded_instants(case: &Case) -> impl Iterator<Item = DateTime<Utc>> + '_ {
    [
        case.received_at,
        case.finished_at,
        case.returned_at,
        case.refused_at,
        case.updated_at,
    ]
    .into_iter()
    .flatten()
    .chain(case.activity_instants())
    .chain(case.status_history.iter().map(|c| c.at))
    .chain(case.due_history.iter().map(|c| c.at))
}

#[cfg(test)]
mod tests;
