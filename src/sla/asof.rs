//! A case as it stood at an instant: what a report for a past period must judge. The
//! store keeps a case's whole history (status changes, supplements, steps, due moves,
//! its end), so the case at `t` is the case with every event at or after `t` removed.
//! Pure.

use super::model::{status, Case};

/// The case as it stood just before `t` (events at `t` belong to the next period).
///
/// - its end (finish, return, refusal) is forgotten when it came at or after `t`;
/// - supplements requested at or after `t` are dropped, a resumption at or after `t`
///   is still awaited (and the due it brought is not known yet);
/// - steps started at or after `t` are dropped, an action at or after `t` not taken;
/// - the due is the one in force at `t`: a later move is undone;
/// - the status is the last one the history shows before `t`; with no history, the
///   current one when it was reached before `t`, else "supplement requested" inside a
///   supplement and "processing" otherwise.
pub fn as_of(case: &Case, t: chrono::DateTime<chrono::Utc>) -> Case {
    let mut c = case.clone();
    let before = |x: &Option<chrono::DateTime<chrono::Utc>>| x.filter(|x| *x < t);
    let ended_later = [case.finished_at, case.returned_at, case.refused_at]
        .iter()
        .any(|x| x.is_some_and(|x| x >= t));
    c.finished_at = before(&case.finished_at);
    c.returned_at = before(&case.returned_at);
    c.refused_at = before(&case.refused_at);
    c.supplements.retain(|s| s.requested_at < t);
    for s in &mut c.supplements {
        if s.resumed_at.is_some_and(|r| r >= t) {
            s.resumed_at = None;
            s.due_after = None;
        }
    }
    c.steps
        .retain(|s| s.order_key().is_none_or(|k| k < t) || s.started_at.is_some_and(|k| k < t));
    for s in &mut c.steps {
        s.acted_at = before(&s.acted_at);
    }
    if let Some(first_later) = c.due_history.iter().position(|m| m.at >= t) {
        c.due_at = c.due_history[first_later].from;
        c.due_history.truncate(first_later);
    }
    let reached = current_status_reached(case);
    let had_history = !c.status_history.is_empty();
    c.status_history.retain(|s| s.at < t);
    let waiting = c.supplements.last().is_some_and(|s| s.resumed_at.is_none());
    let running = if waiting {
        status::SUPPLEMENT
    } else {
        status::PROCESSING
    };
    if had_history {
        c.status = c.status_history.last().map_or(running, |s| s.status);
    } else if is_terminal(case.status) && (ended_later || reached.is_none_or(|r| r >= t)) {
        c.status = running;
    }
    if c.status == status::SUPPLEMENT && !waiting && !c.supplements.is_empty() {
        c.status = status::PROCESSING;
    }
    c.updated_at = c.updated_at.map(|u| u.min(t));
    c
}

fn is_terminal(s: u8) -> bool {
    matches!(
        s,
        status::REFUSED | status::WITHDRAWN | status::FINISHED | status::RETURNED
    )
}

/// When a case without status history reached its current status: its finish,
/// return or refusal time, else its last update.
fn current_status_reached(c: &Case) -> Option<chrono::DateTime<chrono::Utc>> {
    match c.status {
        status::FINISHED | status::RETURNED => c.finished_at.or(c.returned_at).or(c.updated_at),
        status::REFUSED => c.refused_at.or(c.updated_at),
        _ => c.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendar;
    use crate::sla::model::{DueChange, DueChangeCause, StatusChange, Step, Supplement};
    use crate::timefmt::parse_instant;
    use chrono::{DateTime, Utc};
    use std::sync::OnceLock;

    fn cal() -> &'static Calendar {
        static CAL: OnceLock<Calendar> = OnceLock::new();
        CAL.get_or_init(Calendar::builtin)
    }

    fn t(s: &str) -> DateTime<Utc> {
        parse_instant(s, cal()).unwrap().unwrap()
    }

    fn sc(at: &str, status: u8) -> StatusChange {
        StatusChange {
            at: t(at),
            status,
            approximate: false,
        }
    }

    /// Received 20/10, supplement 27/10 → 03/11, due moved 20/11 → 25/11 on 03/11,
    /// re-appointed to 28/11 on 24/11, finished 27/11.
    fn case() -> Case {
        Case {
            case_id: "A".into(),
            status: 10,
            received_at: Some(t("2026-10-20 08:00")),
            due_at: Some(t("2026-11-28 10:00")),
            due_at_original: Some(t("2026-11-20 10:00")),
            finished_at: Some(t("2026-11-27 09:00")),
            supplements: vec![Supplement {
                requested_at: t("2026-10-27 09:00"),
                resumed_at: Some(t("2026-11-03 09:00")),
                due_before: Some(t("2026-11-20 10:00")),
                due_after: Some(t("2026-11-25 10:00")),
            }],
            steps: vec![
                Step {
                    title: Some("Thụ lý".into()),
                    started_at: Some(t("2026-10-20 08:00")),
                    acted_at: Some(t("2026-10-27 09:00")),
                    ..Step::default()
                },
                Step {
                    title: Some("Phê duyệt".into()),
                    started_at: Some(t("2026-11-03 09:00")),
                    acted_at: Some(t("2026-11-27 09:00")),
                    ..Step::default()
                },
            ],
            status_history: vec![
                sc("2026-10-20 08:00", 2),
                sc("2026-10-27 09:00", 5),
                sc("2026-11-03 09:00", 4),
                sc("2026-11-27 09:00", 10),
            ],
            due_history: vec![
                DueChange {
                    at: t("2026-11-03 09:00"),
                    from: Some(t("2026-11-20 10:00")),
                    to: Some(t("2026-11-25 10:00")),
                    cause: DueChangeCause::Supplement,
                },
                DueChange {
                    at: t("2026-11-24 14:00"),
                    from: Some(t("2026-11-25 10:00")),
                    to: Some(t("2026-11-28 10:00")),
                    cause: DueChangeCause::Reappointment,
                },
            ],
            ..Case::default()
        }
    }

    #[test]
    fn at_the_end_of_october_it_waits_on_its_supplement_with_its_first_due() {
        let c = as_of(&case(), t("2026-11-01 00:00"));
        assert_eq!(c.status, 5);
        assert_eq!(c.finished_at, None);
        assert_eq!(c.supplements.len(), 1);
        assert_eq!(c.supplements[0].resumed_at, None);
        assert_eq!(c.supplements[0].due_after, None);
        assert_eq!(c.due_at, Some(t("2026-11-20 10:00")));
        assert!(c.due_history.is_empty());
        assert_eq!(c.steps.len(), 1);
        assert_eq!(c.steps[0].acted_at, Some(t("2026-10-27 09:00")));
    }

    #[test]
    fn on_24_november_after_the_reappointment_it_is_processing_with_the_new_due() {
        let c = as_of(&case(), t("2026-11-24 15:00"));
        assert_eq!(c.status, 4);
        assert_eq!(c.due_at, Some(t("2026-11-28 10:00")));
        assert_eq!(c.due_history.len(), 2);
        assert_eq!(c.steps[1].acted_at, None);
        // Just before it: the due the supplement brought.
        let c = as_of(&case(), t("2026-11-24 14:00"));
        assert_eq!(c.due_at, Some(t("2026-11-25 10:00")));
    }

    #[test]
    fn after_its_end_it_is_the_case_itself() {
        assert_eq!(as_of(&case(), t("2026-12-01 00:00")), case());
    }

    #[test]
    fn without_history_a_case_finished_later_was_processing() {
        let mut c = case();
        c.status_history.clear();
        c.due_history.clear();
        let at = as_of(&c, t("2026-11-10 00:00"));
        assert_eq!((at.status, at.finished_at), (4, None));
        let at = as_of(&c, t("2026-10-30 00:00"));
        assert_eq!(at.status, 5);
        // A withdrawal known only by its status, with no time: open before it.
        c.status = 7;
        c.finished_at = None;
        c.updated_at = Some(t("2026-11-27 09:00"));
        assert_eq!(as_of(&c, t("2026-11-10 00:00")).status, 4);
    }
}
