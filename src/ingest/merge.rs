//! Merging what a source says now into what slawatch already knows of a case (SPEC §2):
//! identity, idempotence, out-of-order updates, history of statuses and dues, the
//! original due kept forever, steps joined whatever order they arrive in. Pure.

use crate::directory::Directory;
use crate::sla::model::{status, Case, DueChange, DueChangeCause, StatusChange, Step};
use chrono::{DateTime, Utc};

/// What a merge did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    /// A case slawatch had not seen.
    Inserted,
    /// Something changed.
    Updated,
    /// The same as what is stored (a re-poll, a re-push).
    Unchanged,
    /// Older than what is stored (by the source's own change time): ignored.
    Stale,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Inserted => "inserted",
            Change::Updated => "updated",
            Change::Unchanged | Change::Stale => "unchanged",
        }
    }
}

/// The directory code of a unit name, if the directory knows it.
fn unit_of(name: Option<&str>, directory: &Directory) -> Option<crate::sla::model::Text> {
    name.and_then(|n| directory.resolve(n))
        .map(|u| u.code.as_str().into())
}

/// Resolves the case's unit and its steps' departments through the directory.
pub fn resolve_units(case: &mut Case, directory: &Directory) {
    case.unit_code = unit_of(case.unit_name.as_deref(), directory);
    for s in &mut case.steps {
        s.unit_code = unit_of(s.department.as_deref(), directory);
    }
}

fn step_key(s: &Step) -> impl Eq + '_ {
    (
        s.started_at,
        s.acted_at,
        s.title.as_deref(),
        s.department.as_deref(),
        s.officer.as_deref(),
        s.status,
    )
}

/// Adds steps not already present; keeps them in time order. Returns whether any
/// was added.
pub fn add_steps(into: &mut Vec<Step>, new: impl IntoIterator<Item = Step>) -> bool {
    let mut added = false;
    for s in new {
        if !into.iter().any(|x| step_key(x) == step_key(&s)) {
            into.push(s);
            added = true;
        }
    }
    if added {
        into.sort_by_key(|s| s.order_key());
    }
    added
}

/// The most plausible time of a case's current status when the source does not say:
/// the event that status implies, else its latest known event.
fn first_seen_time(case: &Case, observed_at: DateTime<Utc>) -> DateTime<Utc> {
    let implied = match case.status {
        status::FINISHED | status::RETURNED => case.finished_at.or(case.returned_at),
        status::REFUSED => case.refused_at,
        status::SUPPLEMENT => case
            .supplements
            .iter()
            .rev()
            .find(|s| s.resumed_at.is_none())
            .map(|s| s.requested_at),
        _ => None,
    };
    let latest = case.activity_instants().chain(case.received_at).max();
    implied.or(latest).unwrap_or(observed_at).min(observed_at)
}

/// Merges `incoming` (a case as the source sees it now, units not yet resolved) into
/// `existing`. `pending` are steps that arrived before the case.
pub fn merge(
    existing: Option<&Case>,
    mut incoming: Case,
    source_time: Option<DateTime<Utc>>,
    observed_at: DateTime<Utc>,
    pending: Vec<Step>,
    directory: &Directory,
) -> (Case, Change) {
    resolve_units(&mut incoming, directory);
    incoming.updated_at = Some(source_time.unwrap_or(observed_at));
    incoming.status_history.clear();
    incoming.due_history.clear();
    incoming.steps.sort_by_key(|s| s.order_key());
    let mut pending = pending;
    for s in &mut pending {
        if s.unit_code.is_none() {
            s.unit_code = unit_of(s.department.as_deref(), directory);
        }
    }
    let original_of = |c: &Case| {
        c.supplements
            .first()
            .and_then(|s| s.due_before)
            .or(c.due_at)
    };

    let Some(old) = existing else {
        let mut case = incoming;
        let steps = std::mem::take(&mut case.steps);
        add_steps(&mut case.steps, steps.into_iter().chain(pending));
        case.status_history.push(StatusChange {
            at: source_time.unwrap_or_else(|| first_seen_time(&case, observed_at)),
            status: case.status,
            approximate: source_time.is_none(),
        });
        case.due_at_original = original_of(&case);
        return (case, Change::Inserted);
    };

    if let (Some(new), Some(prev)) = (source_time, old.updated_at) {
        if new < prev {
            return (old.clone(), Change::Stale);
        }
    }
    let mut case = incoming;
    // Partial records keep what was known.
    macro_rules! keep {
        ($($f:ident),*) => { $( if case.$f.is_none() { case.$f = old.$f.clone(); } )* };
    }
    keep!(
        procedure_code,
        procedure_name,
        field_code,
        channel,
        received_at,
        applicant_hash
    );
    if case.unit_name.is_none() {
        case.unit_name = old.unit_name.clone();
        case.unit_code = old.unit_code.clone();
    }
    if case.supplements.is_empty() {
        case.supplements = old.supplements.clone();
    }
    let mut steps = old.steps.clone();
    add_steps(
        &mut steps,
        std::mem::take(&mut case.steps).into_iter().chain(pending),
    );
    case.steps = steps;

    let at = source_time.unwrap_or(observed_at);
    case.status_history = old.status_history.clone();
    if old.status != case.status {
        case.status_history.push(StatusChange {
            at,
            status: case.status,
            approximate: source_time.is_none(),
        });
    }
    case.due_at_original = old.due_at_original.or_else(|| original_of(&case));
    case.due_history = old.due_history.clone();
    if let (Some(from), Some(to)) = (old.due_at, case.due_at) {
        if from != to {
            let left_supplement =
                old.status == status::SUPPLEMENT && case.status != status::SUPPLEMENT;
            let supplement_says = case.supplements.iter().any(|s| {
                s.due_after == Some(to)
                    || (s.resumed_at.is_some()
                        && !old
                            .supplements
                            .iter()
                            .any(|o| o.requested_at == s.requested_at && o.resumed_at.is_some()))
            });
            case.due_history.push(DueChange {
                at,
                from: Some(from),
                to: Some(to),
                cause: if left_supplement || supplement_says {
                    DueChangeCause::Supplement
                } else {
                    DueChangeCause::Reappointment
                },
            });
        }
    }
    let same = {
        let mut a = case.clone();
        a.updated_at = old.updated_at;
        &a == old
    };
    if same {
        return (old.clone(), Change::Unchanged);
    }
    (case, Change::Updated)
}

/// Adds separately sent steps to a known case; `None` when none of them is new.
pub fn merge_steps(
    existing: &Case,
    steps: Vec<Step>,
    observed_at: DateTime<Utc>,
    directory: &Directory,
) -> Option<Case> {
    let mut case = existing.clone();
    let mut steps = steps;
    for s in &mut steps {
        s.unit_code = unit_of(s.department.as_deref(), directory);
    }
    if !add_steps(&mut case.steps, steps) {
        return None;
    }
    if case.updated_at.is_none_or(|u| u < observed_at) {
        case.updated_at = Some(observed_at);
    }
    Some(case)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendar;
    use crate::sla::model::Supplement;
    use crate::sla::policy::Policy;
    use crate::sla::{evaluate, Lifecycle};
    use crate::timefmt::parse_instant;
    use std::sync::OnceLock;

    fn cal() -> &'static Calendar {
        static CAL: OnceLock<Calendar> = OnceLock::new();
        CAL.get_or_init(Calendar::builtin)
    }

    fn t(s: &str) -> DateTime<Utc> {
        parse_instant(s, cal()).unwrap().unwrap()
    }

    fn dir() -> Directory {
        Directory::parse(
            "[[unit]]\ncode = \"PX\"\nname = \"UBND phường X\"\n[[unit]]\ncode = \"PKT\"\nname = \"Phòng Kinh tế - Hạ tầng\"\nparent = \"PX\"\n",
            "units.toml",
        )
        .unwrap()
    }

    fn seen(status: u8, due: &str) -> Case {
        Case {
            source: "portal".into(),
            case_id: "A".into(),
            unit_name: Some("UBND phường X".into()),
            status,
            received_at: Some(t("2023-09-15 14:30")),
            due_at: Some(t(due)),
            ..Case::default()
        }
    }

    #[test]
    fn first_sight_resolves_units_and_keeps_the_original_due() {
        let (c, ch) = merge(
            None,
            seen(4, "2023-10-06 14:30"),
            None,
            t("2023-09-20 10:00"),
            vec![],
            &dir(),
        );
        assert_eq!(ch, Change::Inserted);
        assert_eq!(c.unit_code.as_deref(), Some("PX"));
        assert_eq!(c.due_at_original, Some(t("2023-10-06 14:30")));
        // No source history: the status is dated by the receipt, marked approximate.
        assert_eq!(
            c.status_history,
            vec![StatusChange {
                at: t("2023-09-15 14:30"),
                status: 4,
                approximate: true
            }]
        );
        assert_eq!(c.updated_at, Some(t("2023-09-20 10:00")));
    }

    #[test]
    fn the_same_record_twice_changes_nothing() {
        let d = dir();
        let (a, _) = merge(
            None,
            seen(4, "2023-10-06 14:30"),
            None,
            t("2023-09-20 10:00"),
            vec![],
            &d,
        );
        let (b, ch) = merge(
            Some(&a),
            seen(4, "2023-10-06 14:30"),
            None,
            t("2023-09-20 10:05"),
            vec![],
            &d,
        );
        assert_eq!(ch, Change::Unchanged);
        assert_eq!(a, b);
    }

    #[test]
    fn status_changes_are_dated_when_observed() {
        let d = dir();
        let (a, _) = merge(
            None,
            seen(4, "2023-10-06 14:30"),
            None,
            t("2023-09-18 08:00"),
            vec![],
            &d,
        );
        let (b, ch) = merge(
            Some(&a),
            seen(5, "2023-10-06 14:30"),
            None,
            t("2023-09-18 09:05"),
            vec![],
            &d,
        );
        assert_eq!(ch, Change::Updated);
        assert_eq!(
            b.status_history.last().unwrap(),
            &StatusChange {
                at: t("2023-09-18 09:05"),
                status: 5,
                approximate: true
            }
        );
    }

    #[test]
    fn a_due_moved_on_leaving_the_supplement_is_a_supplement_move() {
        let d = dir();
        let (a, _) = merge(
            None,
            seen(5, "2023-10-06 14:30"),
            None,
            t("2023-09-18 10:00"),
            vec![],
            &d,
        );
        let (b, _) = merge(
            Some(&a),
            seen(4, "2023-10-13 10:00"),
            None,
            t("2023-09-22 10:05"),
            vec![],
            &d,
        );
        assert_eq!(b.due_history.len(), 1);
        assert_eq!(b.due_history[0].cause, DueChangeCause::Supplement);
        assert_eq!(b.due_at_original, Some(t("2023-10-06 14:30")));
        // A later move while processing is a re-appointment; the original stays.
        let (c, _) = merge(
            Some(&b),
            seen(4, "2023-10-20 10:00"),
            None,
            t("2023-10-12 10:00"),
            vec![],
            &d,
        );
        assert_eq!(c.due_history[1].cause, DueChangeCause::Reappointment);
        assert_eq!(c.due_at_original, Some(t("2023-10-06 14:30")));
    }

    #[test]
    fn a_due_moved_with_a_resumed_supplement_in_the_same_record_is_a_supplement_move() {
        let d = dir();
        let (a, _) = merge(
            None,
            seen(4, "2023-10-06 14:30"),
            None,
            t("2023-09-18 08:00"),
            vec![],
            &d,
        );
        let mut next = seen(4, "2023-10-13 10:00");
        next.supplements.push(Supplement {
            requested_at: t("2023-09-18 09:00"),
            resumed_at: Some(t("2023-09-22 10:00")),
            due_before: Some(t("2023-10-06 14:30")),
            due_after: Some(t("2023-10-13 10:00")),
        });
        let (b, _) = merge(Some(&a), next, None, t("2023-09-25 08:00"), vec![], &d);
        assert_eq!(b.due_history[0].cause, DueChangeCause::Supplement);
    }

    #[test]
    fn older_updates_never_overwrite_newer_ones() {
        let d = dir();
        let (a, _) = merge(
            None,
            seen(9, "2023-10-06 14:30"),
            Some(t("2023-10-02 10:00")),
            t("2023-10-02 10:01"),
            vec![],
            &d,
        );
        let (b, ch) = merge(
            Some(&a),
            seen(4, "2023-10-06 14:30"),
            Some(t("2023-09-30 10:00")),
            t("2023-10-02 10:02"),
            vec![],
            &d,
        );
        assert_eq!(ch, Change::Stale);
        assert_eq!(b.status, 9);
        assert_eq!(
            a.status_history[0],
            StatusChange {
                at: t("2023-10-02 10:00"),
                status: 9,
                approximate: false
            }
        );
    }

    #[test]
    fn steps_before_their_dossier_are_joined() {
        let d = dir();
        let step = Step {
            department: Some("Phòng Kinh tế - Hạ tầng".into()),
            started_at: Some(t("2023-09-22 10:00")),
            acted_at: Some(t("2023-09-26 10:15")),
            ..Step::default()
        };
        let (c, _) = merge(
            None,
            seen(4, "2023-10-06 14:30"),
            None,
            t("2023-09-27 08:00"),
            vec![step.clone()],
            &d,
        );
        assert_eq!(c.steps.len(), 1);
        assert_eq!(c.steps[0].unit_code.as_deref(), Some("PKT"));
        // The same step again adds nothing; a new one is added.
        assert!(merge_steps(&c, vec![step.clone()], t("2023-09-27 09:00"), &d).is_none());
        let mut later = step;
        later.started_at = Some(t("2023-09-26 10:15"));
        later.acted_at = None;
        let c2 = merge_steps(&c, vec![later], t("2023-09-27 09:00"), &d).unwrap();
        assert_eq!(c2.steps.len(), 2);
    }

    #[test]
    fn reopening_a_finished_case_makes_it_open_again() {
        let d = dir();
        let mut done = seen(10, "2023-10-06 14:30");
        done.finished_at = Some(t("2023-10-05 10:00"));
        let (a, _) = merge(None, done, None, t("2023-10-05 11:00"), vec![], &d);
        let (b, _) = merge(
            Some(&a),
            seen(4, "2023-10-06 14:30"),
            None,
            t("2023-10-06 08:00"),
            vec![],
            &d,
        );
        let e = evaluate(&b, None, cal(), &Policy::default(), t("2023-10-06 09:00")).unwrap();
        assert_eq!(e.lifecycle, Lifecycle::Open);
        assert_eq!(e.outcome, None);
        assert_eq!(b.status_history.len(), 2);
    }

    #[test]
    fn unknown_units_keep_their_raw_name() {
        let mut c = seen(4, "2023-10-06 14:30");
        c.unit_name = Some("UBND xã Không Có".into());
        let (m, _) = merge(None, c, None, t("2023-09-20 10:00"), vec![], &dir());
        assert_eq!(m.unit_code, None);
        assert_eq!(m.unit_name.as_deref(), Some("UBND xã Không Có"));
    }
}
