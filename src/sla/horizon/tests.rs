//! How long an evaluation holds. Hand-checked instants on the built-in hours
//! (07:30–11:30, 13:30–17:30) and the official days off; then a property: for cases of
//! every shape, judging again at any instant before the horizon gives the same summary.

use super::*;
use crate::catalogue::{Procedure, StepTemplate};
use crate::sla::evaluate;
use crate::sla::model::{StatusChange, Step, Supplement};
use crate::sla::policy::Rules;
use crate::testkit::{builtin, ha_tinh, open_case, proc, t};
use proptest::prelude::*;

fn local(x: DateTime<Utc>) -> String {
    if x == DateTime::<Utc>::MAX_UTC {
        return "never".into();
    }
    builtin().local(x).format("%d/%m/%Y %H:%M:%S").to_string()
}

/// The evaluation at `now` and how long it holds, as local time.
fn holds(case: &Case, p: &Procedure, rules: Rules, now: &str) -> (Evaluation, String) {
    let policy = Policy::single(rules);
    let now = t(now);
    let e = evaluate(case, Some(p), builtin(), &policy, now).unwrap();
    let until = holds_until(case, builtin(), &policy, &e, now);
    (e, local(until))
}

#[test]
fn on_track_holds_until_it_is_stuck() {
    // Last change 18/09 09:00; stuck after 3 workdays: Tue 19 = 1, Wed 20 = 2, Thu 21
    // = 3, at 09:00. Due soon (2 workdays) only from 05/10.
    let (e, until) = holds(
        &open_case(),
        &proc("15 workdays"),
        Rules::default(),
        "2023-09-20 10:00",
    );
    assert_eq!(e.state, Some(State::OnTrack));
    assert!(!e.stuck);
    assert_eq!(until, "21/09/2023 09:00:00");
}

#[test]
fn once_stuck_it_holds_until_due_soon() {
    // Due soon when 09/10 09:00 ≤ now + 2 workdays: from Thu 05/10 09:00 (Fri 06 = 1,
    // Mon 09 = 2, at 09:00); at 08:59:59 the limit is 09/10 08:59:59.
    let (e, until) = holds(
        &open_case(),
        &proc("15 workdays"),
        Rules::default(),
        "2023-09-22 10:00",
    );
    assert_eq!(e.state, Some(State::OnTrack));
    assert!(e.stuck);
    assert_eq!(until, "05/10/2023 09:00:00");
}

#[test]
fn due_soon_holds_until_the_apology_letter_is_due() {
    // Apology when 09/10 09:00 ≤ now + 1 workday: from Fri 06/10 09:00 (Mon 09 = 1).
    let (e, until) = holds(
        &open_case(),
        &proc("15 workdays"),
        Rules::default(),
        "2023-10-05 10:00",
    );
    assert_eq!(e.state, Some(State::DueSoon));
    assert!(!e.flags.contains(Flags::APOLOGY_DUE));
    assert_eq!(until, "06/10/2023 09:00:00");
    // Then until the due is past: 09:00:00 is still on time, a nanosecond later late.
    let (e, until) = holds(
        &open_case(),
        &proc("15 workdays"),
        Rules::default(),
        "2023-10-06 10:00",
    );
    assert!(e.flags.contains(Flags::APOLOGY_DUE));
    assert_eq!(until, "09/10/2023 09:00:00");
}

#[test]
fn a_due_soon_threshold_across_a_weekend_and_a_lunch_break() {
    // A source due of Mon 09/10/2023 13:45 under `due_soon_within = 4 workhours`:
    // now + 4 h of sessions reaches 13:45 Monday from Mon 07:45 (07:45–11:30 is 3 h 45,
    // 13:30–13:45 is 15 min); from Friday afternoon it reaches only Monday morning.
    // Received Thu 05/10 10:00, so stuck after 3 workdays comes later (Tue 10/10 10:00).
    let mut case = open_case();
    case.received_at = Some(t("2023-10-05 10:00"));
    case.status_history[0].at = t("2023-10-05 10:00");
    case.due_at = Some(t("2023-10-09 13:45"));
    let rules = Rules {
        due_soon_within: "4 workhours".parse().unwrap(),
        apology_within: "2 workhours".parse().unwrap(),
        ..Rules::default()
    };
    let (e, until) = holds(
        &case,
        &proc("15 workdays"),
        rules.clone(),
        "2023-10-06 16:00",
    );
    assert_eq!(e.state, Some(State::OnTrack));
    assert_eq!(until, "09/10/2023 07:45:00");
    // The apology letter (2 h): 09:45–11:30 is 1 h 45, 13:30–13:45 the last 15 min.
    let (e, until) = holds(&case, &proc("15 workdays"), rules, "2023-10-09 08:00");
    assert_eq!(e.state, Some(State::DueSoon));
    assert_eq!(until, "09/10/2023 09:45:00");
}

#[test]
fn overdue_age_moves_at_midnight_at_the_earliest() {
    // Overdue from 09/10 09:00; at 10:00 its age is 0 and becomes 1 at 10/10 09:00:
    // the evaluation holds until the midnight before (judged again then, still 0).
    let (e, until) = holds(
        &open_case(),
        &proc("15 workdays"),
        Rules::default(),
        "2023-10-09 10:00",
    );
    assert_eq!(e.state, Some(State::Overdue));
    assert_eq!(e.overdue_workdays, 0);
    assert_eq!(until, "10/10/2023 00:00:00");
    // After midnight: until 09:00, when the age becomes 1.
    let (e, until) = holds(
        &open_case(),
        &proc("15 workdays"),
        Rules::default(),
        "2023-10-10 06:00",
    );
    assert_eq!(e.overdue_workdays, 0);
    assert_eq!(until, "10/10/2023 09:00:00");
}

#[test]
fn a_supplement_pause_under_way_holds_only_outside_the_sessions() {
    // Pause view: waiting for a supplement since Wed 20/09 10:00, the computed due moves
    // with every working second. During the sessions nothing holds; on Saturday
    // 23/09 it holds until Monday 25/09 07:30.
    let mut case = open_case();
    case.status = 5;
    case.status_history.push(StatusChange {
        at: t("2023-09-20 10:00"),
        status: 5,
        approximate: false,
    });
    case.supplements = vec![Supplement {
        requested_at: t("2023-09-20 10:00"),
        resumed_at: None,
        due_before: None,
        due_after: None,
    }];
    let rules = Rules {
        supplement_view: SupplementView::Pause,
        ..Rules::default()
    };
    let (e, until) = holds(
        &case,
        &proc("15 workdays"),
        rules.clone(),
        "2023-09-21 10:00",
    );
    assert_eq!(e.state, Some(State::Paused));
    assert_eq!(until, "21/09/2023 10:00:00");
    let (_, until) = holds(
        &case,
        &proc("15 workdays"),
        rules.clone(),
        "2023-09-23 10:00",
    );
    assert_eq!(until, "25/09/2023 07:30:00");
    // Under the restart view the due does not move while paused: nothing time brings
    // changes the summary.
    let (_, until) = holds(
        &case,
        &proc("15 workdays"),
        Rules::default(),
        "2023-09-21 10:00",
    );
    assert_eq!(until, "never");
}

#[test]
fn an_open_step_is_late_after_its_own_due() {
    // Step "Thẩm định" started 18/09 09:00 with 1 workday: due 19/09 09:00, sooner than
    // the stuck mark (21/09 09:00).
    let mut case = open_case();
    case.steps = vec![Step {
        title: Some("Thẩm định".into()),
        started_at: Some(t("2023-09-18 09:00")),
        ..Step::default()
    }];
    let mut p = proc("15 workdays");
    p.steps = vec![StepTemplate {
        title: "Thẩm định".into(),
        duration: "1 workdays".parse().unwrap(),
    }];
    let (e, until) = holds(&case, &p, Rules::default(), "2023-09-18 15:00");
    assert!(!e.flags.contains(Flags::STEP_OVERDUE));
    assert_eq!(until, "19/09/2023 09:00:00");
}

#[test]
fn an_ended_case_holds_for_ever_and_a_future_stamp_does_not() {
    let mut case = open_case();
    case.status = 10;
    case.finished_at = Some(t("2023-10-02 10:00"));
    let (e, until) = holds(
        &case,
        &proc("15 workdays"),
        Rules::default(),
        "2023-10-20 10:00",
    );
    assert_eq!(e.lifecycle, Lifecycle::Finished);
    assert_eq!(until, "never");
    // A status change the source stamped ahead of `now` counts from its instant.
    let mut case = open_case();
    case.status_history.push(StatusChange {
        at: t("2023-09-19 08:00"),
        status: 4,
        approximate: false,
    });
    let (_, until) = holds(
        &case,
        &proc("15 workdays"),
        Rules::default(),
        "2023-09-18 15:00",
    );
    assert_eq!(until, "19/09/2023 08:00:00");
}

// ----- property: the summary holds before the horizon ---------------------------------

/// The parts of an evaluation the daemon stores and acts on.
fn summary(e: &Evaluation) -> impl PartialEq + std::fmt::Debug {
    (
        e.state,
        e.outcome,
        e.flags,
        e.stuck,
        e.due,
        e.overdue_workdays,
        e.calendar_estimated,
        e.end,
    )
}

const DURATIONS: [&str; 7] = [
    "2 workdays",
    "1 workdays",
    "4 workhours",
    "3 days",
    "1 months",
    "0 workdays",
    "2.5 workdays",
];

prop_compose! {
    /// A case received in 2024–2026 at any minute, in any status, with or without a
    /// source due, supplements (open or resumed), steps with dues, and pauses.
    fn any_case()(
        received in 0i64..(3 * 365 * 24 * 60),
        status in prop::sample::select(vec![2u8, 4, 4, 4, 5, 6, 8, 10]),
        source_due in prop::option::of(0i64..(40 * 24 * 60)),
        supplement in prop::option::of((0i64..(20 * 24 * 60), prop::option::of(0i64..(10 * 24 * 60)))),
        steps in prop::collection::vec((0i64..(20 * 24 * 60), prop::option::of(0i64..(5 * 24 * 60)), 0i64..(5 * 24 * 60)), 0..3),
        ended in 0i64..(40 * 24 * 60),
        seconds in 0i64..60,
    ) -> Case {
        let base = t("2024-01-01 00:00") + TimeDelta::minutes(received) + TimeDelta::seconds(seconds);
        let at = |m: i64| base + TimeDelta::minutes(m);
        let mut case = Case {
            source: "p".into(),
            case_id: "P-1".into(),
            status,
            received_at: Some(base),
            due_at: source_due.map(at),
            ..Case::default()
        };
        case.status_history.push(StatusChange { at: base, status: 2, approximate: false });
        if let Some((req, resumed)) = supplement {
            case.supplements.push(Supplement {
                requested_at: at(req),
                resumed_at: resumed.map(|r| at(req + r)),
                due_before: None,
                due_after: None,
            });
            case.status_history.push(StatusChange { at: at(req), status: 5, approximate: false });
            if let Some(r) = resumed {
                case.status_history.push(StatusChange { at: at(req + r), status: 4, approximate: false });
            }
        }
        for (start, acted, due) in steps {
            case.steps.push(Step {
                title: Some("Thẩm định".into()),
                started_at: Some(at(start)),
                acted_at: acted.map(|a| at(start + a)),
                step_due_at: Some(at(start + due)),
                ..Step::default()
            });
        }
        case.status_history.sort_by_key(|c| c.at);
        let last = case.status_history.last().map(|c| c.at).unwrap_or(base);
        if status != case.status_history.last().map(|c| c.status).unwrap_or(2) {
            case.status_history.push(StatusChange { at: last + TimeDelta::minutes(ended), status, approximate: false });
        }
        if status == 10 {
            case.finished_at = Some(last + TimeDelta::minutes(ended));
        }
        case.updated_at = case.status_history.last().map(|c| c.at);
        case
    }
}

prop_compose! {
    fn any_rules()(
        soon in prop::sample::select(DURATIONS.to_vec()),
        apology in prop::sample::select(DURATIONS.to_vec()),
        stuck in prop::sample::select(DURATIONS.to_vec()),
        pause in any::<bool>(),
        computed in any::<bool>(),
    ) -> Rules {
        Rules {
            due_soon_within: soon.parse().unwrap(),
            apology_within: apology.parse().unwrap(),
            stuck_after: stuck.parse().unwrap(),
            supplement_view: if pause { SupplementView::Pause } else { SupplementView::Restart },
            due_policy: if computed { crate::sla::policy::DuePolicy::Computed } else { crate::sla::policy::DuePolicy::SourceElseComputed },
            ..Rules::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Judged again at instants before the horizon (spread out, and the last second
    /// and nanosecond before it), the case says the same.
    #[test]
    fn the_summary_holds_before_the_horizon(
        case in any_case(),
        rules in any_rules(),
        duration in prop::sample::select(vec!["15 workdays", "2.5 workdays", "8 workhours", "30 days", "none"]),
        seasons in any::<bool>(),
        after in 0i64..(60 * 24 * 60),
        probes in prop::collection::vec(0.0f64..1.0, 8),
    ) {
        let cal = if seasons { ha_tinh() } else { builtin() };
        let policy = Policy::single(rules);
        let p = proc(duration);
        let now = case.received_at.unwrap() + TimeDelta::minutes(after) + TimeDelta::milliseconds(after % 1000);
        let Ok(e) = evaluate(&case, Some(&p), cal, &policy, now) else { return Ok(()) };
        let until = holds_until(&case, cal, &policy, &e, now);
        prop_assert!(until >= now);
        if until == now {
            return Ok(());
        }
        // Probe up to 90 days ahead when it holds for ever.
        let end = until.min(now + TimeDelta::days(90));
        let span = (end - now).num_milliseconds();
        let mut at: Vec<DateTime<Utc>> = probes.iter().map(|f| now + TimeDelta::milliseconds((span as f64 * f) as i64)).collect();
        if until < DateTime::<Utc>::MAX_UTC {
            at.push(until - TimeDelta::nanoseconds(1));
            at.push(until - TimeDelta::seconds(1));
        }
        for t in at.into_iter().filter(|t| *t >= now && *t < until) {
            let Ok(later) = evaluate(&case, Some(&p), cal, &policy, t) else { continue };
            prop_assert_eq!(
                summary(&later), summary(&e),
                "judged at {} (now {}, holds until {})", local(t), local(now), local(until)
            );
        }
    }
}
