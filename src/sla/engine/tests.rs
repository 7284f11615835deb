//! Hand-checked SLA scenarios. Built-in hours are 07:30–11:30, 13:30–17:30; Hà Tĩnh
//! summer hours are 07:00–11:30, 14:00–17:30. Each expected value is worked out in a
//! comment from those hours and the official days off.

use super::*;
use crate::calendar::CalendarSpec;
use crate::sla::model::{Channel, DueChange, StatusChange, Step, Supplement};
use crate::sla::policy::Rules;
use crate::testkit::{builtin, ha_tinh, open_case, proc, t};
use crate::timefmt::parse_instant;
use chrono::{Datelike, NaiveDate};

fn show(x: Option<DateTime<Utc>>) -> String {
    x.map(|x| builtin().local(x).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

fn eval(case: &Case, p: Option<&Procedure>, now: &str) -> Evaluation {
    evaluate(case, p, builtin(), &Policy::default(), t(now)).unwrap()
}

fn eval_rules(case: &Case, p: Option<&Procedure>, rules: Rules, now: &str) -> Evaluation {
    evaluate(case, p, builtin(), &Policy::single(rules), t(now)).unwrap()
}

// ----- states ---------------------------------------------------------------------------

#[test]
fn on_track_with_a_computed_due() {
    let p = proc("15 workdays");
    let e = eval(&open_case(), Some(&p), "2023-09-20 10:00");
    assert_eq!(show(e.due), "2023-10-09 09:00");
    assert_eq!(e.due_basis, Some(DueBasis::Computed));
    assert_eq!(e.state, Some(State::OnTrack));
    assert!(e.flags.is_empty());
    // Used: Mon 09:00–11:30 (2.5 h) + 13:30–17:30 (4 h), Tue 8 h, Wed 07:30–10:00
    // (2.5 h) → 17 h.
    assert_eq!(e.used_work_seconds, 17 * 3600);
    // Remaining: 15 × 8 h − 17 h = 103 h.
    assert_eq!(e.remaining_work_seconds, Some(103 * 3600));
}

#[test]
fn due_soon_from_two_workdays_before() {
    let p = proc("15 workdays");
    // Thu 05/10 09:00 + 2 workdays = Mon 09/10 09:00 = the due → due_soon.
    let e = eval(&open_case(), Some(&p), "2023-10-05 09:00");
    assert_eq!(e.state, Some(State::DueSoon));
    // … but not yet time for the apology: Thu + 1 workday = Fri 09:00 < due.
    assert!(!e.flags.contains(Flags::APOLOGY_DUE));
    // One minute earlier the limit is Mon 08:59 < due → on track.
    let e = eval(&open_case(), Some(&p), "2023-10-05 08:59");
    assert_eq!(e.state, Some(State::OnTrack));
}

#[test]
fn apology_due_one_workday_before() {
    let p = proc("15 workdays");
    // Fri 06/10 09:00 + 1 workday = Mon 09/10 09:00 ≥ due.
    let e = eval(&open_case(), Some(&p), "2023-10-06 09:00");
    assert_eq!(e.state, Some(State::DueSoon));
    assert!(e.flags.contains(Flags::APOLOGY_DUE));
    // Saturday counts from Monday's opening: Mon 07:30 + 1 workday = Tue ≥ due.
    let e = eval(&open_case(), Some(&p), "2023-10-07 10:00");
    assert!(e.flags.contains(Flags::APOLOGY_DUE));
}

#[test]
fn overdue_the_second_after_the_due() {
    let p = proc("15 workdays");
    let e = eval(&open_case(), Some(&p), "2023-10-09 09:00");
    assert_eq!(e.state, Some(State::DueSoon));
    let e = eval(&open_case(), Some(&p), "2023-10-09 09:00:01");
    assert_eq!(e.state, Some(State::Overdue));
    assert_eq!(e.overdue_workdays, 0);
    assert!(!e.flags.contains(Flags::APOLOGY_DUE));
    // Thu 12/10 09:00 is 3 workdays past Mon 09:00.
    let e = eval(&open_case(), Some(&p), "2023-10-12 09:00");
    assert_eq!(e.overdue_workdays, 3);
    assert_eq!(e.remaining_work_seconds, Some(-24 * 3600));
}

#[test]
fn paused_is_never_overdue() {
    let p = proc("15 workdays");
    let mut c = open_case();
    c.status = 5;
    c.supplements.push(Supplement {
        requested_at: t("2023-09-20 09:00"),
        resumed_at: None,
        due_before: None,
        due_after: None,
    });
    let e = eval(&c, Some(&p), "2023-12-01 09:00");
    assert_eq!(e.state, Some(State::Paused));
    assert!(!e.stuck);
    assert!(!e.flags.contains(Flags::APOLOGY_DUE));
}

#[test]
fn financial_and_stop_statuses_pause_by_default() {
    let p = proc("15 workdays");
    for s in [6, 8] {
        let mut c = open_case();
        c.status = s;
        let e = eval(&c, Some(&p), "2023-12-01 09:00");
        assert_eq!(e.state, Some(State::Paused), "status {s}");
    }
    // Configured otherwise: 6 runs, 8 ends the case.
    let rules = Rules {
        pause_financial: false,
        stop_is_terminal: true,
        ..Rules::default()
    };
    let mut c = open_case();
    c.status = 6;
    let e = eval_rules(&c, Some(&p), rules.clone(), "2023-12-01 09:00");
    assert_eq!(e.state, Some(State::Overdue));
    let mut c = open_case();
    c.status = 8;
    c.status_history.push(StatusChange {
        at: t("2023-10-02 10:00"),
        status: 8,
        approximate: false,
    });
    let e = eval_rules(&c, Some(&p), rules, "2023-12-01 09:00");
    assert_eq!(e.lifecycle, Lifecycle::Stopped);
    assert_eq!(show(e.end), "2023-10-02 10:00");
    assert_eq!(e.outcome, Some(Outcome::Early));
}

#[test]
fn not_started_and_no_deadline() {
    let mut c = open_case();
    c.status = 1;
    assert_eq!(
        eval(&c, None, "2023-09-20 10:00").state,
        Some(State::NotStarted)
    );
    // No source due and no catalogue entry.
    let e = eval(&open_case(), None, "2023-09-20 10:00");
    assert_eq!(e.state, Some(State::NoDeadline));
    assert_eq!(e.due, None);
    // A procedure without a deadline, even with a source due.
    let mut c = open_case();
    c.due_at = Some(t("2023-09-19 10:00"));
    let e = eval(&c, Some(&proc("none")), "2023-09-20 10:00");
    assert_eq!(e.state, Some(State::NoDeadline));
}

#[test]
fn pause_in_status_6_moves_the_computed_due() {
    // Paid-fee wait Tue 19/09 09:00 → Wed 20/09 09:00 = 8 working hours, so the due
    // moves from Mon 09/10 09:00 to Tue 10/10 09:00.
    let p = proc("15 workdays");
    let mut c = open_case();
    c.status_history.push(StatusChange {
        at: t("2023-09-19 09:00"),
        status: 6,
        approximate: true,
    });
    c.status_history.push(StatusChange {
        at: t("2023-09-20 09:00"),
        status: 4,
        approximate: true,
    });
    let e = eval(&c, Some(&p), "2023-09-25 10:00");
    assert_eq!(e.paused_work_seconds, 8 * 3600);
    assert_eq!(show(e.due), "2023-10-10 09:00");
}

// ----- due policy -------------------------------------------------------------------------

#[test]
fn source_due_wins_and_legal_due_is_kept_beside_it() {
    let p = proc("15 workdays");
    let mut c = open_case();
    c.due_at = Some(t("2023-10-06 17:00"));
    let e = eval(&c, Some(&p), "2023-09-20 10:00");
    assert_eq!(show(e.due), "2023-10-06 17:00");
    assert_eq!(e.due_basis, Some(DueBasis::Source));
    assert_eq!(show(e.legal_due), "2023-10-09 09:00");
    // The computed policy believes the catalogue.
    let rules = Rules {
        due_policy: DuePolicy::Computed,
        ..Rules::default()
    };
    let e = eval_rules(&c, Some(&p), rules, "2023-09-20 10:00");
    assert_eq!(show(e.due), "2023-10-09 09:00");
}

#[test]
fn a_source_due_on_a_day_off_is_taken_as_it_says() {
    let mut c = open_case();
    c.due_at = Some(t("2023-09-23 10:00")); // a Saturday
    let e = eval(&c, None, "2023-09-23 10:00:01");
    assert_eq!(e.state, Some(State::Overdue));
}

#[test]
fn due_beyond_legal_with_a_tolerance() {
    let p = proc("15 workdays");
    let mut c = open_case();
    // Receipt slip says Tue 10/10 09:00; the law gives Mon 09/10 09:00.
    c.due_at = Some(t("2023-10-10 09:00"));
    c.due_at_original = c.due_at;
    let e = eval(&c, Some(&p), "2023-09-20 10:00");
    assert!(e.flags.contains(Flags::DUE_BEYOND_LEGAL));
    let rules = Rules {
        due_beyond_legal_tolerance_seconds: 86_400,
        ..Rules::default()
    };
    assert!(!eval_rules(&c, Some(&p), rules, "2023-09-20 10:00")
        .flags
        .contains(Flags::DUE_BEYOND_LEGAL));
    // Exactly the legal due is fine.
    c.due_at = Some(t("2023-10-09 09:00"));
    c.due_at_original = c.due_at;
    assert!(!eval(&c, Some(&p), "2023-09-20 10:00")
        .flags
        .contains(Flags::DUE_BEYOND_LEGAL));
}

#[test]
fn online_dossiers_use_the_online_duration() {
    let mut p = proc("15 workdays");
    p.online_duration = Some("10 workdays".parse().unwrap());
    let mut c = open_case();
    c.channel = Some(Channel::Online);
    // 10 workdays from Mon 18/09 09:00 → Mon 02/10 09:00.
    assert_eq!(
        show(eval(&c, Some(&p), "2023-09-20 10:00").due),
        "2023-10-02 09:00"
    );
}

// ----- supplements ------------------------------------------------------------------------

fn with_supplement(req: &str, res: Option<&str>) -> Case {
    let mut c = open_case();
    c.supplements.push(Supplement {
        requested_at: t(req),
        resumed_at: res.map(t),
        due_before: None,
        due_after: None,
    });
    c
}

#[test]
fn supplement_restarts_the_full_duration() {
    // Back Mon 25/09 09:00 → 15 workdays again: 26–29 Sep (4), 2–6 Oct (9), 9–13 (14),
    // Mon 16/10 (15) → 16/10 09:00.
    let p = proc("15 workdays");
    let c = with_supplement("2023-09-20 09:00", Some("2023-09-25 09:00"));
    let e = eval(&c, Some(&p), "2023-09-26 10:00");
    assert_eq!(show(e.legal_due_at_receipt), "2023-10-09 09:00");
    assert_eq!(show(e.due), "2023-10-16 09:00");
    assert_eq!(show(e.start), "2023-09-18 09:00");
    // Used since the restart: Mon 09:00–17:30 (6.5 h) + Tue 07:30–10:00 (2.5 h).
    assert_eq!(e.used_work_seconds, 9 * 3600);
}

#[test]
fn supplement_pause_view_adds_the_paused_working_time() {
    // Wed 20/09 09:00 → Mon 25/09 09:00 is 3 × 8 = 24 working hours; the due moves
    // from Mon 09/10 09:00 by 24 h to Thu 12/10 09:00.
    let p = proc("15 workdays");
    let c = with_supplement("2023-09-20 09:00", Some("2023-09-25 09:00"));
    let rules = Rules {
        supplement_view: SupplementView::Pause,
        ..Rules::default()
    };
    let e = eval_rules(&c, Some(&p), rules, "2023-09-26 10:00");
    assert_eq!(e.paused_work_seconds, 24 * 3600);
    assert_eq!(show(e.due), "2023-10-12 09:00");
}

#[test]
fn a_resumption_outside_hours_snaps_like_a_receipt() {
    // Back Sat 23/09 10:00 → counts from Mon 25/09 07:30 → Mon 16/10 07:30.
    let p = proc("15 workdays");
    let c = with_supplement("2023-09-20 09:00", Some("2023-09-23 10:00"));
    assert_eq!(
        show(eval(&c, Some(&p), "2023-09-26 10:00").due),
        "2023-10-16 07:30"
    );
}

#[test]
fn late_supplement_request_after_three_workdays() {
    // Start Mon 18/09 09:00 + 3 workdays = Thu 21/09 09:00.
    let p = proc("15 workdays");
    let c = with_supplement("2023-09-21 09:00", None);
    assert!(!eval(&c, Some(&p), "2023-09-21 10:00")
        .flags
        .contains(Flags::LATE_SUPPLEMENT_REQUEST));
    let c = with_supplement("2023-09-21 09:01", None);
    assert!(eval(&c, Some(&p), "2023-09-21 10:00")
        .flags
        .contains(Flags::LATE_SUPPLEMENT_REQUEST));
}

#[test]
fn two_supplements_are_flagged_and_restart_from_the_last() {
    let p = proc("15 workdays");
    let mut c = with_supplement("2023-09-19 09:00", Some("2023-09-20 09:00"));
    c.supplements.push(Supplement {
        requested_at: t("2023-09-22 09:00"),
        resumed_at: Some(t("2023-09-25 09:00")),
        due_before: None,
        due_after: None,
    });
    let e = eval(&c, Some(&p), "2023-09-26 10:00");
    assert!(e.flags.contains(Flags::MULTIPLE_SUPPLEMENTS));
    assert_eq!(show(e.due), "2023-10-16 09:00");
}

#[test]
fn supplements_from_the_status_history_when_the_source_has_no_list() {
    let p = proc("15 workdays");
    let mut c = open_case();
    for (at, s) in [("2023-09-20 09:00", 5), ("2023-09-25 09:00", 4)] {
        c.status_history.push(StatusChange {
            at: t(at),
            status: s,
            approximate: true,
        });
    }
    assert_eq!(
        show(eval(&c, Some(&p), "2023-09-26 10:00").due),
        "2023-10-16 09:00"
    );
}

// ----- re-appointment ---------------------------------------------------------------------

fn moved(c: &mut Case, at: &str, to: &str, cause: DueChangeCause) {
    c.due_history.push(DueChange {
        at: t(at),
        from: c.due_at,
        to: Some(t(to)),
        cause,
    });
    c.due_at = Some(t(to));
}

#[test]
fn reappointment_once_is_allowed_twice_is_flagged() {
    let mut c = open_case();
    c.due_at = Some(t("2023-10-09 09:00"));
    c.due_at_original = c.due_at;
    moved(
        &mut c,
        "2023-10-06 09:00",
        "2023-10-13 09:00",
        DueChangeCause::Reappointment,
    );
    let e = eval(&c, None, "2023-10-10 09:00");
    assert!(!e.flags.contains(Flags::REAPPOINTED_TWICE));
    // The re-appointed due counts for the live state.
    assert_eq!(e.state, Some(State::OnTrack));
    // A supplement move does not count as a re-appointment.
    moved(
        &mut c,
        "2023-10-11 09:00",
        "2023-10-20 09:00",
        DueChangeCause::Supplement,
    );
    assert!(!eval(&c, None, "2023-10-12 09:00")
        .flags
        .contains(Flags::REAPPOINTED_TWICE));
    moved(
        &mut c,
        "2023-10-19 09:00",
        "2023-10-27 09:00",
        DueChangeCause::Reappointment,
    );
    assert!(eval(&c, None, "2023-10-20 09:00")
        .flags
        .contains(Flags::REAPPOINTED_TWICE));
}

// ----- steps and stuck ----------------------------------------------------------------------

fn step(unit: Option<&str>, start: &str, acted: Option<&str>, due: &str) -> Step {
    Step {
        department: Some("Phòng Kinh tế".into()),
        unit_code: unit.map(Into::into),
        started_at: Some(t(start)),
        acted_at: acted.map(t),
        step_due_at: Some(t(due)),
        ..Step::default()
    }
}

#[test]
fn steps_overdue_are_attributed_to_their_unit() {
    let mut c = open_case();
    // Acted Wed 20/09 10:00 against a due of Tue 19/09 17:30: late, unit PKT.
    c.steps.push(step(
        Some("PKT"),
        "2023-09-18 09:00",
        Some("2023-09-20 10:00"),
        "2023-09-19 17:30",
    ));
    // Open since Wed 20/09 10:00, due Mon 25/09 17:30.
    c.steps
        .push(step(None, "2023-09-20 10:00", None, "2023-09-25 17:30"));
    let e = eval(&c, None, "2023-09-25 09:59");
    assert!(e.flags.contains(Flags::STEP_OVERDUE));
    assert_eq!(e.steps.len(), 2);
    assert!(e.steps[0].overdue && !e.steps[0].open);
    assert_eq!(e.steps[0].unit(&c), Some("PKT"));
    assert!(!e.steps[1].overdue && e.steps[1].open);
    assert_eq!(e.steps[1].unit(&c), Some("UBND-X"));
    // Last change Wed 20/09 10:00 + 3 workdays = Mon 25/09 10:00: not yet stuck.
    assert!(!e.stuck);
    let e = eval(&c, None, "2023-09-25 17:31");
    assert!(e.steps[1].overdue);
    assert!(e.stuck);
}

#[test]
fn the_current_step_past_its_own_due_is_stuck() {
    let mut c = open_case();
    // Open since Wed 20/09 10:00 with its own due Thu 21/09 17:30. On Fri 22/09 09:00
    // nothing has been quiet for 3 workdays, but the step is past its due.
    c.steps
        .push(step(None, "2023-09-20 10:00", None, "2023-09-21 17:30"));
    let e = eval(&c, None, "2023-09-22 09:00");
    assert!(e.stuck);
    assert!(e.flags.contains(Flags::STEP_OVERDUE));
    let e = eval(&c, None, "2023-09-21 17:30");
    assert!(!e.stuck);
}

#[test]
fn a_step_without_a_deadline_takes_the_catalogue_template() {
    // Template "Thẩm định" 2 workdays: started Mon 18/09 09:00 → due Wed 20/09 09:00.
    let mut p = proc("15 workdays");
    p.steps.push(crate::catalogue::StepTemplate {
        title: "Thẩm định".into(),
        duration: "2 workdays".parse().unwrap(),
    });
    let mut c = open_case();
    c.steps.push(Step {
        title: Some(" thẩm định ".into()),
        started_at: Some(t("2023-09-18 09:00")),
        ..Step::default()
    });
    let e = eval(&c, Some(&p), "2023-09-20 09:00");
    assert_eq!(show(Some(e.steps[0].due)), "2023-09-20 09:00");
    assert!(!e.steps[0].overdue);
    let e = eval(&c, Some(&p), "2023-09-20 09:01");
    assert!(e.steps[0].overdue && e.flags.contains(Flags::STEP_OVERDUE));
    // A title the template does not know has no step deadline.
    c.steps[0].title = Some("Ký duyệt".into());
    assert!(eval(&c, Some(&p), "2023-09-25 09:00").steps.is_empty());
}

#[test]
fn a_step_acted_on_time_is_not_flagged() {
    let mut c = open_case();
    c.steps.push(step(
        None,
        "2023-09-18 09:00",
        Some("2023-09-19 10:00"),
        "2023-09-19 17:30",
    ));
    c.steps
        .push(step(None, "2023-09-19 10:00", None, "2023-09-29 17:30"));
    let e = eval(&c, None, "2023-09-20 09:00");
    assert!(!e.flags.contains(Flags::STEP_OVERDUE));
}

#[test]
fn a_step_without_action_closes_when_the_next_starts() {
    let mut c = open_case();
    // No acted_at: done when the next step started, Tue 19/09 16:00 < due 17:30.
    c.steps
        .push(step(None, "2023-09-18 09:00", None, "2023-09-19 17:30"));
    c.steps
        .push(step(None, "2023-09-19 16:00", None, "2023-09-29 17:30"));
    let e = eval(&c, None, "2023-09-21 09:00");
    assert_eq!(show(e.steps[0].done_at), "2023-09-19 16:00");
    assert!(!e.flags.contains(Flags::STEP_OVERDUE));
}

#[test]
fn stuck_after_three_workdays_without_a_change() {
    // Last change Mon 18/09 09:00 (receipt) + 3 workdays = Thu 21/09 09:00.
    let c = open_case();
    assert!(!eval(&c, None, "2023-09-21 08:59").stuck);
    assert!(eval(&c, None, "2023-09-21 09:00").stuck);
    // A step action on Wed moves the clock: Wed 10:00 + 3 = Mon 25/09 10:00.
    let mut c = open_case();
    c.steps.push(Step {
        acted_at: Some(t("2023-09-20 10:00")),
        ..Step::default()
    });
    assert!(!eval(&c, None, "2023-09-25 09:59").stuck);
    assert!(eval(&c, None, "2023-09-25 10:00").stuck);
}

// ----- outcomes ---------------------------------------------------------------------------

fn finished(end: &str) -> Case {
    let mut c = open_case();
    c.status = 10;
    c.due_at = Some(t("2023-10-09 09:00"));
    c.finished_at = Some(t(end));
    c
}

#[test]
fn outcome_early_on_time_late() {
    let cases = [
        ("2023-10-06 17:00", Outcome::Early),   // an earlier date
        ("2023-10-09 08:00", Outcome::OnTime),  // the due's date, before it
        ("2023-10-09 09:00", Outcome::OnTime),  // exactly the due
        ("2023-10-09 09:00:01", Outcome::Late), // after it
    ];
    for (end, want) in cases {
        let e = eval(&finished(end), None, "2023-11-01 09:00");
        assert_eq!(e.lifecycle, Lifecycle::Finished);
        assert_eq!(e.outcome, Some(want), "{end}");
        assert_eq!(e.state, None);
    }
    // Late by 3 workdays: finished Thu 12/10 09:00.
    assert_eq!(
        eval(&finished("2023-10-12 09:00"), None, "2023-11-01 09:00").overdue_workdays,
        3
    );
}

#[test]
fn returned_late_is_counted_apart() {
    let mut c = finished("2023-10-06 10:00");
    c.returned_at = Some(t("2023-10-10 10:00"));
    let e = eval(&c, None, "2023-11-01 09:00");
    assert_eq!(e.outcome, Some(Outcome::Early));
    assert!(e.flags.contains(Flags::RETURNED_LATE));
}

#[test]
fn end_falls_back_to_return_then_first_seen() {
    let mut c = finished("2023-10-06 10:00");
    c.finished_at = None;
    c.returned_at = Some(t("2023-10-10 10:00"));
    assert_eq!(
        show(eval(&c, None, "2023-11-01 09:00").end),
        "2023-10-10 10:00"
    );
    c.returned_at = None;
    c.status = 9;
    c.status_history.push(StatusChange {
        at: t("2023-10-05 11:00"),
        status: 9,
        approximate: true,
    });
    assert_eq!(
        show(eval(&c, None, "2023-11-01 09:00").end),
        "2023-10-05 11:00"
    );
}

#[test]
fn withdrawals_and_intake_refusals_have_no_outcome() {
    let mut c = open_case();
    c.status = 7;
    c.due_at = Some(t("2023-10-09 09:00"));
    let e = eval(&c, None, "2023-11-01 09:00");
    assert_eq!(
        (e.lifecycle, e.outcome, e.state),
        (Lifecycle::Withdrawn, None, None)
    );

    let c = Case {
        status: 3,
        received_at: None,
        refused_at: Some(t("2023-09-18 09:00")),
        ..Case::default()
    };
    let e = eval(&c, None, "2023-11-01 09:00");
    assert_eq!((e.lifecycle, e.outcome), (Lifecycle::RefusedAtIntake, None));
}

#[test]
fn a_refusal_after_appraisal_is_judged_like_a_finish() {
    let mut c = open_case();
    c.status = 3;
    c.due_at = Some(t("2023-10-09 09:00"));
    c.refused_at = Some(t("2023-10-11 09:00"));
    let e = eval(&c, None, "2023-11-01 09:00");
    assert_eq!(e.lifecycle, Lifecycle::RefusedAfterAppraisal);
    assert_eq!(e.outcome, Some(Outcome::Late));
}

// ----- the worked example of DOMAIN.md §2.7 -----------------------------------------------

#[test]
fn domain_worked_example() {
    let cal = ha_tinh();
    let at = |s: &str| parse_instant(s, cal).unwrap().unwrap();
    let c = Case {
        case_id: "000.00.12.H22-230915-0042".into(),
        status: 10,
        channel: Some(Channel::Online),
        received_at: Some(at("20230915143000")),
        due_at: Some(at("20231013100000")),
        due_at_original: Some(at("20231006143000")),
        finished_at: Some(at("2023-10-12 16:00")),
        supplements: vec![Supplement {
            requested_at: at("20230918090000"),
            resumed_at: Some(at("20230922100000")),
            due_before: Some(at("20231006143000")),
            due_after: Some(at("20231013100000")),
        }],
        due_history: vec![DueChange {
            at: at("20230922100000"),
            from: Some(at("20231006143000")),
            to: Some(at("20231013100000")),
            cause: DueChangeCause::Supplement,
        }],
        ..Case::default()
    };
    let p = proc("15 workdays");
    let e = evaluate(
        &c,
        Some(&p),
        cal,
        &Policy::default(),
        at("2023-11-01 09:00"),
    )
    .unwrap();
    let fmt = |x: Option<DateTime<Utc>>| cal.local(x.unwrap()).format("%d/%m/%Y %H:%M").to_string();
    // 1. Start unchanged (14:30 is inside the summer afternoon 14:00–17:30).
    assert_eq!(fmt(e.start), "15/09/2023 14:30");
    assert_eq!(fmt(e.legal_due_at_receipt), "06/10/2023 14:30");
    // 2. Requested 1 workday after the start: within 3, not flagged.
    assert!(!e.flags.contains(Flags::LATE_SUPPLEMENT_REQUEST));
    // 3. Legal restart from Fri 22/09 10:00 → Fri 13/10/2023 10:00 (= NgayHenTraMoi).
    assert_eq!(fmt(e.legal_due), "13/10/2023 10:00");
    assert_eq!(fmt(e.due), "13/10/2023 10:00");
    // 5. Finished Thu 12/10 16:00: early against the restarted due.
    assert_eq!(e.outcome, Some(Outcome::Early));
    assert!(
        e.flags.is_empty(),
        "{:?}",
        e.flags.names().collect::<Vec<_>>()
    );
}

#[test]
fn rules_by_receipt_date_apply_the_cutoff_only_to_later_receipts() {
    use chrono::NaiveDate;
    let later = Rules {
        receipt_cutoff: Some(15 * 3600),
        ..Rules::default()
    };
    let policy = Policy {
        base: Rules::default(),
        versions: vec![(NaiveDate::from_ymd_opt(2025, 7, 1).unwrap(), later)],
    };
    let p = proc("1 workdays");
    let mut c = open_case();
    // Mon 30/06/2025 16:00, before the change: start unchanged → Tue 01/07 16:00.
    c.received_at = Some(t("2025-06-30 16:00"));
    let e = evaluate(&c, Some(&p), builtin(), &policy, t("2025-06-30 16:30")).unwrap();
    assert_eq!(show(e.due), "2025-07-01 16:00");
    // Tue 01/07/2025 16:00, after: counts from Wed 07:30 → Thu 03/07 07:30.
    c.received_at = Some(t("2025-07-01 16:00"));
    let e = evaluate(&c, Some(&p), builtin(), &policy, t("2025-07-01 16:30")).unwrap();
    assert_eq!(show(e.start), "2025-07-02 07:30");
    assert_eq!(show(e.due), "2025-07-03 07:30");
}

// ----- dues on estimated days ------------------------------------------------------------

/// The shipped calendar with the 2027 rows removed: 2027 is then an estimated year.
fn without_2027() -> Calendar {
    let mut spec = CalendarSpec::builtin();
    spec.official.retain(|r| r.date.year() != 2027);
    Calendar::build(&spec)
}

fn received(at: &str) -> Case {
    Case {
        received_at: Some(t(at)),
        status_history: vec![StatusChange {
            at: t(at),
            status: 4,
            approximate: false,
        }],
        ..open_case()
    }
}

#[test]
fn a_due_across_announced_2027_is_not_estimated() {
    // 40 workdays from Mon 21/12/2026 08:00: 22–25 Dec = 4, 28–31 = 8, 1/1 off,
    // 4–29 Jan = 28, 1–3 Feb = 31, Tết 4–10/02 off, 11–12 = 33, 15–19 = 38, 22 = 39,
    // 23 = 40 → Tue 23/02/2027 08:00, on the announced 2027 data.
    let p = proc("40 workdays");
    let e = eval(&received("2026-12-21 08:00"), Some(&p), "2026-12-22 09:00");
    assert_eq!(show(e.due), "2027-02-23 08:00");
    assert!(!e.calendar_estimated);
    assert_eq!(e.estimate(builtin()), None);
}

#[test]
fn the_same_due_on_a_generated_2027_is_estimated() {
    // Generated 2027: lunar 1/1 Đinh Mùi is Sat 06/02; eve Fri 5, the Saturday taken on
    // Thu 4, Sun 7 taken on Wed 10 after Mon 8, Tue 9 → off Thu 4–Wed 10/02, as
    // announced. 1/1 Friday either way. So the due is the same, 23/02/2027 08:00, but
    // it now rests on an estimate of 2027.
    let cal = without_2027();
    let p = proc("40 workdays");
    let c = received("2026-12-21 08:00");
    let e = evaluate(
        &c,
        Some(&p),
        &cal,
        &Policy::default(),
        t("2026-12-22 09:00"),
    )
    .unwrap();
    assert_eq!(show(e.due), "2027-02-23 08:00");
    assert!(e.calendar_estimated);
    assert_eq!(
        e.estimate(&cal),
        Some(crate::calendar::Estimate::Year(2027))
    );
}

#[test]
fn a_2028_receipt_is_estimated_and_a_source_due_never_is() {
    // 15 workdays from Mon 06/03/2028 08:00 → 2028 has no official data.
    let p = proc("15 workdays");
    let c = received("2028-03-06 08:00");
    let e = eval(&c, Some(&p), "2028-03-07 09:00");
    assert!(e.calendar_estimated);
    assert_eq!(
        e.estimate(builtin()),
        Some(crate::calendar::Estimate::Year(2028))
    );
    // The source's NgayHenTra is not computed by us: no mark.
    let with_source = Case {
        due_at: Some(t("2028-03-27 08:00")),
        ..c
    };
    let e = eval(&with_source, Some(&p), "2028-03-07 09:00");
    assert_eq!(e.due_basis, Some(DueBasis::Source));
    assert!(!e.calendar_estimated);
}

#[test]
fn a_span_over_the_unconfirmed_3_may_2027_is_estimated() {
    // 10 workdays from Mon 26/04/2027 08:00: 27, 28, 29 = 3, 30/4 off, 1–2/5 weekend,
    // 3/5 off (unconfirmed: 1/5 taken), 4–7 = 7, 10, 11, 12 = 10 → Wed 12/05/2027 08:00.
    let p = proc("10 workdays");
    let e = eval(&received("2027-04-26 08:00"), Some(&p), "2027-04-26 09:00");
    assert_eq!(show(e.due), "2027-05-12 08:00");
    assert_eq!(
        e.estimate(builtin()),
        Some(crate::calendar::Estimate::Unconfirmed(
            NaiveDate::from_ymd_opt(2027, 5, 3).unwrap()
        ))
    );
    // 5 workdays from Mon 04/01/2027 08:00 → Mon 11/01/2027 08:00: official days only.
    let p = proc("5 workdays");
    let e = eval(&received("2027-01-04 08:00"), Some(&p), "2027-01-04 09:00");
    assert_eq!(show(e.due), "2027-01-11 08:00");
    assert!(!e.calendar_estimated);
}

/// The demo's case (issue 14, 2b): 0.5 workdays from Fri 18/09/2026 10:55 = 10:55–11:30
/// (35 min) + 13:30–16:55 (3 h 25) = 4 h, half of the 8-hour day → due Fri 18/09 16:55.
/// The supplement is requested Mon 21/09 09:00, after that due: the case is paused,
/// flagged `supplement_after_due`, and keeps the flag once the supplement is back.
#[test]
fn a_supplement_requested_after_the_due_is_flagged_and_stays_flagged() {
    let p = proc("0.5 workdays");
    let mut c = Case {
        source: "test".into(),
        case_id: "HALF".into(),
        status: 5,
        received_at: Some(t("2026-09-18 10:55")),
        supplements: vec![Supplement {
            requested_at: t("2026-09-21 09:00"),
            resumed_at: None,
            due_before: None,
            due_after: None,
        }],
        ..Case::default()
    };
    let e = eval(&c, Some(&p), "2026-09-25 10:00");
    assert_eq!(show(e.due), "2026-09-18 16:55");
    assert_eq!(e.state, Some(State::Paused));
    assert!(e.flags.has("supplement_after_due"), "{:?}", e.flags);
    // With the source's due in force at the request (the same instant), the same.
    c.due_at = Some(t("2026-09-18 16:55"));
    assert!(eval(&c, Some(&p), "2026-09-25 10:00")
        .flags
        .has("supplement_after_due"));
    // Back and processing: the flag stays.
    c.status = 4;
    c.supplements[0].resumed_at = Some(t("2026-09-23 09:00"));
    assert!(eval(&c, Some(&p), "2026-09-25 10:00")
        .flags
        .has("supplement_after_due"));
    // Requested at 15:00 on the 18th, before the due: no flag.
    c.supplements[0].requested_at = t("2026-09-18 15:00");
    assert!(!eval(&c, Some(&p), "2026-09-25 10:00")
        .flags
        .has("supplement_after_due"));
    // A re-appointment to 25/09 before the request on the 21st puts the due in force
    // then on 25/09: no flag.
    c.supplements[0].requested_at = t("2026-09-21 09:00");
    c.due_history = vec![DueChange {
        at: t("2026-09-18 16:00"),
        from: Some(t("2026-09-18 16:55")),
        to: Some(t("2026-09-25 16:55")),
        cause: crate::sla::model::DueChangeCause::Reappointment,
    }];
    c.due_at_original = Some(t("2026-09-18 16:55"));
    assert!(!eval(&c, Some(&p), "2026-09-25 10:00")
        .flags
        .has("supplement_after_due"));
}
