//! Hand-worked calendar changes at Mon 22/02/2027 10:00, built-in hours
//! (07:30–11:30, 13:30–17:30), the shipped official days (Tết 2027 off Thu 4 – Wed
//! 10/02). Procedures `P3`, `P5`, `P10`, `P14`, `P15` take that many workdays.

use super::*;
use crate::calendar::data::{parse_rows, DayRow};
use crate::calendar::{Calendar, CalendarSpec};
use crate::sla::model::StatusChange;
use crate::testkit::{builtin, t};
use chrono::Datelike;

fn cal(edit: impl FnOnce(&mut Vec<DayRow>)) -> Calendar {
    let mut spec = CalendarSpec::builtin();
    edit(&mut spec.official);
    Calendar::build(&spec)
}

fn catalogue() -> Catalogue {
    let mut text = String::new();
    for n in [3, 5, 10, 14, 15] {
        text += &format!(
            "[[procedure]]\ncode = \"P{n}\"\nname = \"{n} ngày\"\nduration = \"{n} workdays\"\n\n"
        );
    }
    Catalogue::parse(&text, "test.toml").unwrap()
}

/// An open case in processing (status 4), received at `at`.
fn open(id: &str, unit: &str, procedure: &str, at: &str) -> Case {
    Case {
        source: "portal".into(),
        case_id: id.into(),
        unit_code: Some(unit.into()),
        procedure_code: Some(procedure.into()),
        status: 4,
        received_at: Some(t(at)),
        status_history: vec![StatusChange {
            at: t(at),
            status: 4,
            approximate: false,
        }],
        ..Case::default()
    }
}

/// A case finished (status 10) at `done`.
fn finished(id: &str, unit: &str, procedure: &str, at: &str, done: &str) -> Case {
    let mut c = open(id, unit, procedure, at);
    c.status = 10;
    c.finished_at = Some(t(done));
    c.status_history.push(StatusChange {
        at: t(done),
        status: 10,
        approximate: false,
    });
    c
}

/// The held cases:
/// - H1 STP, 10 wd from Mon 15/02 08:00: 16–19 = 4, 22–26 = 9, Mon 01/03 = 10.
/// - H2 STP, 14 wd from Mon 01/02 08:00: 2–3 = 2, Tết, 11–12 = 4, 15–19 = 9, 22–26 =
///   14 → Fri 26/02 08:00.
/// - H3 STP, 15 wd from Fri 19/02 08:00: 22–26 = 5, 1–5/3 = 10, 8–12/3 = 15 → 12/03.
/// - H4 SXD, 3 wd from Mon 22/02 08:00 → Thu 25/02 08:00.
/// - F1 STP, 10 wd from Mon 25/01 08:00: 26–29 = 4, 1–3/2 = 7, Tết, 11–12 = 9, 15 =
///   10 → Mon 15/02 08:00; finished Fri 12/02 10:00 → early.
/// - F2 SXD, 5 wd from Mon 04/01 08:00 → Mon 11/01; finished Fri 08/01 → early.
/// - F3 STP, 3 wd from Mon 15/02 08:00 → Thu 18/02; finished Wed 17/02 → early.
/// - OLD STP ended in 2026: in no running period, never counted.
fn held() -> Vec<Case> {
    vec![
        open("H1", "STP", "P10", "2027-02-15 08:00"),
        open("H2", "STP", "P14", "2027-02-01 08:00"),
        open("H3", "STP", "P15", "2027-02-19 08:00"),
        open("H4", "SXD", "P3", "2027-02-22 08:00"),
        finished("F1", "STP", "P10", "2027-01-25 08:00", "2027-02-12 10:00"),
        finished("F2", "SXD", "P5", "2027-01-04 08:00", "2027-01-08 10:00"),
        finished("F3", "STP", "P3", "2027-02-15 08:00", "2027-02-17 10:00"),
        finished("OLD", "STP", "P3", "2026-12-01 08:00", "2026-12-02 10:00"),
    ]
}

fn run(after: &Calendar) -> Diff {
    let before = builtin();
    let catalogue = catalogue();
    let policy = Policy::default();
    compare(
        &held(),
        &Sides {
            before,
            after,
            policy: &policy,
            catalogue: &catalogue,
            now: t("2027-02-22 10:00"),
        },
    )
}

fn local(x: Option<DateTime<Utc>>) -> String {
    x.map(|x| builtin().local(x).format("%d/%m/%Y %H:%M").to_string())
        .unwrap_or_default()
}

#[test]
fn the_same_calendar_changes_nothing() {
    let d = run(builtin());
    assert!(!d.changed());
    assert!(d.cases.is_empty());
    // Read: 4 open, 3 ended in 2027 (OLD is outside every running period).
    assert_eq!((d.total.open, d.total.ended), (4, 3));
    assert_eq!(
        d.units["STP"].ratios["month"].before,
        d.units["STP"].ratios["month"].after
    );
}

#[test]
fn a_make_up_saturday_moves_exactly_the_dues_whose_span_holds_it() {
    // Sat 27/02/2027 worked: H1 ends its 10th workday on it (27/02 08:00, one workday
    // earlier), H3's 15 become 22–26, 27, 1–5/3, 8–11/3 → Thu 11/03. H2 (due 26/02),
    // H4 (25/02) and the ended cases do not reach it.
    let after = cal(|rows| {
        rows.extend(
            parse_rows(
                "date,kind,name,status\n2027-02-27,workday,Làm bù,confirmed\n",
                "new.csv",
            )
            .unwrap(),
        )
    });
    let d = run(&after);
    assert!(d.changed());
    let moved: Vec<(&str, String, String)> = d
        .cases
        .iter()
        .map(|c| (c.case_id.as_str(), local(c.before.due), local(c.after.due)))
        .collect();
    assert_eq!(
        moved,
        [
            ("H1", "01/03/2027 08:00".into(), "27/02/2027 08:00".into()),
            ("H3", "12/03/2027 08:00".into(), "11/03/2027 08:00".into()),
        ]
    );
    let stp = &d.units["STP"];
    assert_eq!((stp.dues_moved, stp.earlier, stp.later), (2, 2, 0));
    assert_eq!((stp.states_changed, stp.outcomes_changed), (0, 0));
    assert!(!d.units["SXD"].changed());
    assert_eq!(d.total.dues_moved, 2);
}

#[test]
fn a_removed_holiday_turns_an_on_track_case_overdue_and_a_finish_late() {
    // Tết 2027 taken out (Thu 4, Fri 5, Mon 8 – Wed 10/02 worked; 2027 stays official):
    // H2's 14 workdays are 2–5 = 4, 8–12 = 9, 15–19 = 14 → Fri 19/02 08:00, so at Mon
    // 22/02 10:00 it is overdue by one workday (was on track: 26/02 is past 24/02
    // 10:00, two workdays on). F1's 10 are 26–29/1 = 4, 1–5/2 = 9, Mon 8 = 10 → due
    // 08/02, finished 12/02: late (was early). H1, H3, H4, F2, F3 lie after Tết.
    let after = cal(|rows| {
        rows.retain(|r| !(r.date.year() == 2027 && r.date.month() == 2));
    });
    let d = run(&after);
    let ids: Vec<&str> = d.cases.iter().map(|c| c.case_id.as_str()).collect();
    assert_eq!(ids, ["H2", "F1"], "open cases before ended ones");
    let h2 = &d.cases[0];
    assert_eq!(
        (local(h2.before.due), local(h2.after.due)),
        ("26/02/2027 08:00".into(), "19/02/2027 08:00".into())
    );
    assert_eq!(
        (h2.before.state, h2.after.state),
        (Some("on_track"), Some("overdue"))
    );
    let f1 = &d.cases[1];
    assert_eq!(
        (f1.before.outcome, f1.after.outcome),
        (Some("early"), Some("late"))
    );

    let stp = &d.units["STP"];
    assert_eq!((stp.dues_moved, stp.earlier), (1, 1));
    assert_eq!(stp.states_changed, 1);
    assert_eq!(stp.state_changes["on_track → overdue"], 1);
    assert_eq!(stp.outcome_changes["early → late"], 1);
    // 766 for February to date, STP: H1, H2, H3 open and F1, F3 ended in February,
    // all on time before (5/5); after, H2 (19/02 < now) and F1 are late: 3/5.
    let month = &stp.ratios["month"];
    assert_eq!((month.before.on_time, month.before.population), (5, 5));
    assert_eq!((month.after.on_time, month.after.population), (3, 5));
    // The quarter and year hold no other STP case (OLD ended in 2026).
    assert_eq!(stp.ratios["year"], *month);
    // SXD: H4 open and F2 ended in January: 1/1 for the month, 2/2 for the quarter.
    let sxd = &d.units["SXD"];
    assert!(!sxd.changed());
    assert_eq!(sxd.ratios["month"].after.population, 1);
    assert_eq!(
        (
            sxd.ratios["quarter"].after.on_time,
            sxd.ratios["quarter"].after.population
        ),
        (2, 2)
    );
    // All units, the month: 6/6 → 4/6.
    let all = &d.total.ratios["month"];
    assert_eq!((all.before.on_time, all.before.population), (6, 6));
    assert_eq!((all.after.on_time, all.after.population), (4, 6));
}

#[test]
fn the_reload_summary_reads_what_the_stored_evaluations_said() {
    // The daemon stored H2 under the shipped calendar at 22/02 10:00: due 26/02, on
    // track. With Tết taken out the reload moves that due one week earlier and the
    // state to overdue; H4's stored evaluation, made with the new calendar already, is
    // left alone.
    let after = cal(|rows| {
        rows.retain(|r| !(r.date.year() == 2027 && r.date.month() == 2));
    });
    let catalogue = catalogue();
    let policy = Policy::default();
    let mut s = ReloadSummary::default();
    let old = builtin().version().to_string();
    let new = after.version().to_string();
    let h2 = open("H2", "STP", "P14", "2027-02-01 08:00");
    s.add(
        &h2,
        &Stored {
            due: Some(t("2027-02-26 08:00")),
            state: Some("on_track"),
            evaluated_at: t("2027-02-22 10:00"),
            calendar_version: &old,
        },
        &after,
        &policy,
        &catalogue,
    );
    let h4 = open("H4", "SXD", "P3", "2027-02-22 08:00");
    s.add(
        &h4,
        &Stored {
            due: Some(t("2027-02-25 08:00")),
            state: Some("on_track"),
            evaluated_at: t("2027-02-22 10:00"),
            calendar_version: &new,
        },
        &after,
        &policy,
        &catalogue,
    );
    assert_eq!(s.compared, 1);
    assert_eq!(
        (s.dues_moved, s.earlier, s.later, s.states_changed),
        (1, 1, 0, 1)
    );
    assert_eq!(s.units.len(), 1);
    assert_eq!(s.stored_versions.len(), 2);
}

#[test]
fn confirming_a_year_clears_the_estimated_mark_and_moves_what_the_guess_got_wrong() {
    // 15 workdays from Mon 20/12/2027 08:00 cross into 2028, an estimated year: 21–24 =
    // 4, 27–31 = 9; 1/1/2028 is a Saturday, generated as taken on Mon 03/01; 4–7 = 13,
    // 10–11 = 15 → Tue 11/01/2028 08:00, estimated. The 2028 announcement (here: only
    // 1/1, no day taken for it) makes 03/01 a workday: 3–7 = 14, Mon 10/01 = 15.
    let after = cal(|rows| {
        rows.extend(
            parse_rows(
                "date,kind,name,status\n2028-01-01,holiday,Tết Dương lịch,confirmed\n",
                "new.csv",
            )
            .unwrap(),
        )
    });
    let catalogue = catalogue();
    let policy = Policy::default();
    let d = compare(
        &[open("Y1", "STP", "P15", "2027-12-20 08:00")],
        &Sides {
            before: builtin(),
            after: &after,
            policy: &policy,
            catalogue: &catalogue,
            now: t("2027-12-22 10:00"),
        },
    );
    let c = &d.cases[0];
    assert_eq!(
        (local(c.before.due), local(c.after.due)),
        ("11/01/2028 08:00".into(), "10/01/2028 08:00".into())
    );
    assert!(c.before.estimated && !c.after.estimated);
    let stp = &d.units["STP"];
    assert_eq!((stp.estimated_before, stp.estimated_after), (1, 0));
    assert_eq!(stp.earlier, 1);
}
