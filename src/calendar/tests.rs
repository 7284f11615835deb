//! Hand-checked calendar arithmetic. Each expected value is worked out in the comment
//! beside it from the official days off (config/calendar/vn-official-days.csv) and the
//! office hours in force, never from this code.

use super::*;
use crate::sla::duration::Duration;
use crate::testkit::{builtin, ha_tinh};
use crate::timefmt::parse_instant;

fn at(cal: &Calendar, s: &str) -> DateTime<Utc> {
    parse_instant(s, cal).unwrap().unwrap()
}

fn show(cal: &Calendar, t: DateTime<Utc>) -> String {
    cal.local(t).format("%a %Y-%m-%d %H:%M:%S").to_string()
}

fn due(cal: &Calendar, received: &str, duration: &str) -> String {
    let start = cal.snap(at(cal, received), None).unwrap();
    let d: Duration = duration.parse().unwrap();
    show(cal, cal.add(start, &d).unwrap().unwrap())
}

fn snap(cal: &Calendar, s: &str, cutoff: Option<&str>) -> String {
    let c = cutoff.map(|c| hours::parse_time_of_day(c).unwrap());
    show(cal, cal.snap(at(cal, s), c).unwrap())
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

// ----- snapping (SPEC §4.1), built-in hours 07:30–11:30, 13:30–17:30 ------------------

#[test]
fn snap_inside_a_session_is_unchanged() {
    assert_eq!(
        snap(builtin(), "2023-09-15 14:30", None),
        "Fri 2023-09-15 14:30:00"
    );
    assert_eq!(
        snap(builtin(), "2023-09-18 07:30", None),
        "Mon 2023-09-18 07:30:00"
    );
}

#[test]
fn snap_before_opening_goes_to_the_first_session() {
    assert_eq!(
        snap(builtin(), "2023-09-18 06:10", None),
        "Mon 2023-09-18 07:30:00"
    );
}

#[test]
fn snap_at_lunch_goes_to_the_afternoon_session() {
    assert_eq!(
        snap(builtin(), "2023-09-18 12:05", None),
        "Mon 2023-09-18 13:30:00"
    );
    // Sessions are half-open: 11:30 itself is lunch.
    assert_eq!(
        snap(builtin(), "2023-09-18 11:30", None),
        "Mon 2023-09-18 13:30:00"
    );
}

#[test]
fn snap_after_closing_goes_to_the_next_workday() {
    // 17:30 is closed; Tue 30/01/2024 17:40 → Wed 31/01 07:30.
    assert_eq!(
        snap(builtin(), "2023-09-18 17:30", None),
        "Tue 2023-09-19 07:30:00"
    );
    assert_eq!(
        snap(builtin(), "2024-01-30 17:40", None),
        "Wed 2024-01-31 07:30:00"
    );
    // Friday evening → Monday.
    assert_eq!(
        snap(builtin(), "2023-09-15 18:00", None),
        "Mon 2023-09-18 07:30:00"
    );
}

#[test]
fn snap_on_a_holiday_goes_past_the_break() {
    // Mon 12/02/2024 is Tết (8–14/02 off) → Thu 15/02 07:30.
    assert_eq!(
        snap(builtin(), "2024-02-12 09:00", None),
        "Thu 2024-02-15 07:30:00"
    );
    // Sun 01/09/2024 → 2/9 and 3/9 off → Wed 04/09.
    assert_eq!(
        snap(builtin(), "2024-09-01 10:00", None),
        "Wed 2024-09-04 07:30:00"
    );
}

#[test]
fn snap_on_a_make_up_saturday_stays() {
    // Sat 04/05/2024 is a make-up workday with ordinary sessions.
    assert_eq!(
        snap(builtin(), "2024-05-04 09:00", None),
        "Sat 2024-05-04 09:00:00"
    );
    assert_eq!(
        snap(builtin(), "2024-05-04 06:00", None),
        "Sat 2024-05-04 07:30:00"
    );
    // An ordinary Saturday moves to Monday.
    assert_eq!(
        snap(builtin(), "2024-05-11 09:00", None),
        "Mon 2024-05-13 07:30:00"
    );
}

#[test]
fn cutoff_15h_moves_to_the_next_workday() {
    assert_eq!(
        snap(builtin(), "2023-09-18 14:59", Some("15:00")),
        "Mon 2023-09-18 14:59:00"
    );
    assert_eq!(
        snap(builtin(), "2023-09-18 15:00", Some("15:00")),
        "Tue 2023-09-19 07:30:00"
    );
    // Friday 15:30 → Monday.
    assert_eq!(
        snap(builtin(), "2023-09-15 15:30", Some("15:00")),
        "Mon 2023-09-18 07:30:00"
    );
    // Before the cut-off, lunch still snaps to the afternoon.
    assert_eq!(
        snap(builtin(), "2023-09-18 12:00", Some("15:00")),
        "Mon 2023-09-18 13:30:00"
    );
}

// ----- workdays -------------------------------------------------------------------------

#[test]
fn fifteen_workdays_across_two_weekends() {
    // SPEC example: Fri 15/09/2023 14:30 + 15 workdays → Fri 06/10/2023 14:30
    // (18–22, 25–29 Sep, 2–6 Oct).
    assert_eq!(
        due(builtin(), "2023-09-15 14:30", "15 workdays"),
        "Fri 2023-10-06 14:30:00"
    );
}

#[test]
fn fifteen_workdays_across_tet_2024() {
    // Received Tue 30/01/2024 17:40 → start Wed 31/01 07:30. Workdays: 1, 2, 5, 6, 7 Feb
    // (5), Tết 8–14 Feb, then 15, 16, 19–23, 26, 27, 28 Feb (15) → 28/02 07:30.
    assert_eq!(
        due(builtin(), "2024-01-30 17:40", "15 workdays"),
        "Wed 2024-02-28 07:30:00"
    );
}

#[test]
fn five_workdays_across_tet_2025() {
    // Fri 24/01/2025 10:00; Tết 27–31/01 and the weekends 25–26/01, 1–2/02 →
    // 3, 4, 5, 6, 7 Feb → Fri 07/02 10:00.
    assert_eq!(
        due(builtin(), "2025-01-24 10:00", "5 workdays"),
        "Fri 2025-02-07 10:00:00"
    );
}

#[test]
fn make_up_saturday_2024_counts_as_a_workday() {
    // Fri 26/04/2024 09:00: 29/04 (swap), 30/04, 01/05 off; Thu 2/5 (1), Fri 3/5 (2),
    // Sat 4/5 make-up (3).
    assert_eq!(
        due(builtin(), "2024-04-26 09:00", "3 workdays"),
        "Sat 2024-05-04 09:00:00"
    );
    assert_eq!(
        due(builtin(), "2024-04-26 09:00", "4 workdays"),
        "Mon 2024-05-06 09:00:00"
    );
}

#[test]
fn make_up_saturday_2025_counts_as_a_workday() {
    // Thu 24/04/2025 09:00: Fri 25 (1), Sat 26 make-up (2), Mon 28 (3), Tue 29 (4);
    // 30/4, 1/5, 2/5 (swap) off; Mon 5/5 (5).
    assert_eq!(
        due(builtin(), "2025-04-24 09:00", "2 workdays"),
        "Sat 2025-04-26 09:00:00"
    );
    assert_eq!(
        due(builtin(), "2025-04-24 09:00", "5 workdays"),
        "Mon 2025-05-05 09:00:00"
    );
}

#[test]
fn zero_workdays_is_the_close_of_the_day() {
    assert_eq!(
        due(builtin(), "2023-09-18 10:00", "0 workdays"),
        "Mon 2023-09-18 17:30:00"
    );
    // Received after closing: the next workday's close.
    assert_eq!(
        due(builtin(), "2023-09-18 17:45", "0 workdays"),
        "Tue 2023-09-19 17:30:00"
    );
}

#[test]
fn half_workdays_add_half_the_day_reached() {
    // Mon 18/09/2023 09:00 + 1 workday = Tue 09:00, + 4 h: 09:00–11:30 (2.5 h),
    // 13:30 + 1.5 h = 15:00.
    assert_eq!(
        due(builtin(), "2023-09-18 09:00", "1.5 workdays"),
        "Tue 2023-09-19 15:00:00"
    );
    // 0.5 workdays: half of the start's own day.
    assert_eq!(
        due(builtin(), "2023-09-18 09:00", "0.5 workdays"),
        "Mon 2023-09-18 15:00:00"
    );
    // Hà Tĩnh summer (07:00–11:30, 14:00–17:30): Mon 03/06/2024 08:00 + 2 workdays =
    // Wed 08:00, + 4 h: 08:00–11:30 (3.5 h), 14:00 + 0.5 h = 14:30.
    assert_eq!(
        due(ha_tinh(), "2024-06-03 08:00", "2.5 workdays"),
        "Wed 2024-06-05 14:30:00"
    );
}

#[test]
fn workdays_keep_the_time_of_day_across_a_season_change() {
    // Hà Tĩnh: Fri 11/10/2024 07:10 is inside the summer morning (07:00–11:30).
    // + 3 workdays → Wed 16/10 07:10, although winter opens at 07:30.
    assert_eq!(
        due(ha_tinh(), "2024-10-11 07:10", "3 workdays"),
        "Wed 2024-10-16 07:10:00"
    );
    // Summer lunch runs to 14:00: 13:45 snaps to 14:00.
    assert_eq!(
        snap(ha_tinh(), "2024-06-03 13:45", None),
        "Mon 2024-06-03 14:00:00"
    );
    // Winter lunch ends 13:30.
    assert_eq!(
        snap(ha_tinh(), "2024-12-02 13:45", None),
        "Mon 2024-12-02 13:45:00"
    );
}

// ----- workhours ------------------------------------------------------------------------

#[test]
fn workhours_skip_the_lunch_break() {
    // Mon 10:00 + 4 h: 10:00–11:30 (1.5 h), 13:30 + 2.5 h = 16:00.
    assert_eq!(
        due(builtin(), "2023-09-18 10:00", "4 workhours"),
        "Mon 2023-09-18 16:00:00"
    );
}

#[test]
fn workhours_landing_on_a_close_stay_there() {
    // 09:30 + 2 h = 11:30 exactly: the close, not 13:30.
    assert_eq!(
        due(builtin(), "2023-09-18 09:30", "2 workhours"),
        "Mon 2023-09-18 11:30:00"
    );
    // 13:30 + 4 h = 17:30, not the next morning.
    assert_eq!(
        due(builtin(), "2023-09-18 13:30", "4 workhours"),
        "Mon 2023-09-18 17:30:00"
    );
}

#[test]
fn workhours_run_overnight_and_over_weekends() {
    // Fri 16:30 + 2 h: 1 h to 17:30, Mon 07:30 + 1 h = 08:30.
    assert_eq!(
        due(builtin(), "2023-09-15 16:30", "2 workhours"),
        "Mon 2023-09-18 08:30:00"
    );
}

#[test]
fn workhours_across_the_hatinh_season_change() {
    // Tue 15/10/2024 16:30 (summer, closes 17:30): 1 h; Wed 16/10 winter 07:30 + 3 h = 10:30.
    assert_eq!(
        due(ha_tinh(), "2024-10-15 16:30", "4 workhours"),
        "Wed 2024-10-16 10:30:00"
    );
}

// ----- calendar days and months ----------------------------------------------------------

#[test]
fn days_count_from_the_day_after_and_end_at_midnight() {
    // Mon 18/09/2023: day 10 after it is Thu 28/09 → 23:59:59.
    assert_eq!(
        due(builtin(), "2023-09-18 10:00", "10 days"),
        "Thu 2023-09-28 23:59:59"
    );
    // Day 12 is Sat 30/09 → end of the next workday, Mon 02/10.
    assert_eq!(
        due(builtin(), "2023-09-18 10:00", "12 days"),
        "Mon 2023-10-02 23:59:59"
    );
}

#[test]
fn days_ending_in_tet_roll_past_the_break() {
    // Thu 01/02/2024 + 10 days = Sun 11/02 (Tết) → 12–14 off → Thu 15/02.
    assert_eq!(
        due(builtin(), "2024-02-01 09:00", "10 days"),
        "Thu 2024-02-15 23:59:59"
    );
}

#[test]
fn months_clamp_to_the_month_end_and_roll() {
    // 31/01/2024 + 1 month → 29/02/2024 (leap year), a Thursday.
    assert_eq!(
        due(builtin(), "2024-01-31 08:00", "1 months"),
        "Thu 2024-02-29 23:59:59"
    );
    // 31/01/2023 + 1 month → Tue 28/02/2023.
    assert_eq!(
        due(builtin(), "2023-01-31 08:00", "1 months"),
        "Tue 2023-02-28 23:59:59"
    );
    // 30/01/2024 + 3 months → 30/04 (holiday), 01/05 (holiday) → Thu 02/05.
    assert_eq!(
        due(builtin(), "2024-01-30 08:00", "3 months"),
        "Thu 2024-05-02 23:59:59"
    );
}

#[test]
fn none_has_no_due() {
    let cal = builtin();
    let start = at(cal, "2023-09-18 10:00");
    assert_eq!(cal.add(start, &Duration::None).unwrap(), None);
}

// ----- measuring ------------------------------------------------------------------------

#[test]
fn work_between_counts_session_time_only() {
    let cal = builtin();
    // Mon 10:00 → Tue 10:00: 8 h.
    assert_eq!(
        cal.work_between(at(cal, "2023-09-18 10:00"), at(cal, "2023-09-19 10:00"))
            .unwrap(),
        8 * 3600
    );
    // Fri 17:00 → Mon 08:00: 0.5 h + 0.5 h.
    assert_eq!(
        cal.work_between(at(cal, "2023-09-15 17:00"), at(cal, "2023-09-18 08:00"))
            .unwrap(),
        3600
    );
    // Over lunch: 11:00 → 14:00 is 0.5 + 0.5 h.
    assert_eq!(
        cal.work_between(at(cal, "2023-09-18 11:00"), at(cal, "2023-09-18 14:00"))
            .unwrap(),
        3600
    );
    // Backwards is negative.
    assert_eq!(
        cal.work_between(at(cal, "2023-09-18 14:00"), at(cal, "2023-09-18 11:00"))
            .unwrap(),
        -3600
    );
    // The DOMAIN example: 18/09 09:00 → 22/09 10:00 is 33 working hours with Hà Tĩnh
    // summer hours: Mon 09:00–11:30 and 14:00–17:30 (6 h), Tue–Thu 3 × 8 h,
    // Fri 07:00–10:00 (3 h).
    let h = ha_tinh();
    assert_eq!(
        h.work_between(at(h, "2023-09-18 09:00"), at(h, "2023-09-22 10:00"))
            .unwrap(),
        33 * 3600
    );
}

#[test]
fn overdue_age_counts_whole_workdays_after_the_due() {
    let cal = builtin();
    let due = at(cal, "2023-09-15 14:30"); // Fri
    let age = |now: &str| cal.overdue_workdays(due, at(cal, now)).unwrap();
    // Due Fri 14:30 is 3 workdays overdue from the following Wed 14:30.
    assert_eq!(age("2023-09-20 14:30"), 3);
    assert_eq!(age("2023-09-20 14:29"), 2);
    assert_eq!(age("2023-09-18 14:30"), 1);
    assert_eq!(age("2023-09-18 14:29"), 0);
    assert_eq!(age("2023-09-16 10:00"), 0);
    assert_eq!(age("2023-09-15 14:00"), 0);
    // Over Tết 2024: due Wed 07/02 10:00; Thu 15/02 10:00 is the first workday after.
    let due = at(cal, "2024-02-07 10:00");
    assert_eq!(
        cal.overdue_workdays(due, at(cal, "2024-02-14 16:00"))
            .unwrap(),
        0
    );
    assert_eq!(
        cal.overdue_workdays(due, at(cal, "2024-02-15 10:00"))
            .unwrap(),
        1
    );
}

#[test]
fn plus_snaps_then_adds() {
    let cal = builtin();
    // Sat 16/09/2023 10:00 + 2 workdays: snap to Mon 07:30, then Wed 07:30.
    let d = Duration::workdays(2);
    assert_eq!(
        show(
            cal,
            cal.plus(at(cal, "2023-09-16 10:00"), &d).unwrap().unwrap()
        ),
        "Wed 2023-09-20 07:30:00"
    );
    assert_eq!(
        show(
            cal,
            cal.add_workdays(at(cal, "2023-09-16 10:00"), 2).unwrap()
        ),
        "Wed 2023-09-20 07:30:00"
    );
}

// ----- data, layers, years --------------------------------------------------------------

#[test]
fn official_workday_counts_per_year() {
    // DOMAIN.md §5.2 and shared/data/README.md. 2027 by hand: it starts on a Friday,
    // so 261 weekdays; off 1/1, Tết 4, 5, 8, 9, 10/2, 16/4, 30/4, 3/5, 2 and 3/9, 24/11
    // (12 weekdays), no make-up Saturday: 249.
    let cal = builtin();
    let counts: Vec<u32> = (2020..=2027)
        .map(|y| cal.workdays_in_year(y).unwrap())
        .collect();
    assert_eq!(counts, [252, 250, 249, 249, 251, 250, 249, 249]);
}

#[test]
fn generated_years_reproduce_the_official_weekday_days_off_except_swaps() {
    let official = builtin();
    let mut spec = CalendarSpec::builtin();
    spec.official.clear();
    let generated = Calendar::build(&spec);
    let swaps = ["2024-04-29", "2025-05-02", "2026-01-02", "2026-08-31"].map(date);
    for year in 2021..=2026 {
        let mut d = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
        while d.year() == year {
            if d.weekday().num_days_from_monday() < 5 && !swaps.contains(&d) {
                assert_eq!(official.is_workday(d), generated.is_workday(d), "{d}");
            }
            d = d.succ_opt().unwrap();
        }
        assert!(!official.year_is_official(year) || !generated.year_is_official(year));
    }
    // And the swaps differ, as they should.
    for s in swaps {
        assert!(!official.is_workday(s) && generated.is_workday(s), "{s}");
    }
}

#[test]
fn official_and_estimated_years() {
    let cal = builtin();
    assert!(cal.year_is_official(2020) && cal.year_is_official(2027));
    assert!(!cal.year_is_official(2028) && !cal.year_is_official(2019));
    assert_eq!(cal.official_until(), Some(date("2027-12-31")));
    // 2027 is official: Tết Đinh Mùi 4–10/02 (Công văn 10065/VPCP-KGVX), and 3/5 for
    // 1/5 on a Saturday (unconfirmed, still official data).
    for d in [
        "2027-02-04",
        "2027-02-05",
        "2027-02-08",
        "2027-02-09",
        "2027-02-10",
        "2027-05-03",
    ] {
        assert_eq!(cal.day_kind(date(d)), DayKind::Holiday, "{d}");
        assert_ne!(cal.entry(date(d)).unwrap().origin, Origin::Generated, "{d}");
    }
    assert!(cal.is_workday(date("2027-02-11")));
    // 2028 is generated: lunar 1/1 is Wed 26/01/2028, so the eve Tue 25 and 26–29;
    // Sat 29 is taken on the previous workday not already off, Mon 24: Mon 24 to Fri 28.
    for d in [
        "2028-01-24",
        "2028-01-25",
        "2028-01-26",
        "2028-01-27",
        "2028-01-28",
    ] {
        assert_eq!(cal.day_kind(date(d)), DayKind::Holiday, "{d}");
        assert_eq!(cal.entry(date(d)).unwrap().origin, Origin::Generated);
    }
    assert!(cal.is_workday(date("2028-01-21")));
    assert!(cal.is_workday(date("2028-01-31")));
}

#[test]
fn unconfirmed_rows_are_listed() {
    let cal = builtin();
    let dates: Vec<String> = cal
        .unconfirmed_rows()
        .iter()
        .map(|r| r.date.to_string())
        .collect();
    assert_eq!(dates, ["2027-05-03"]);
}

fn with_operator(rows: &str, complete: &[i32]) -> Calendar {
    let mut spec = CalendarSpec::builtin();
    spec.operator = data::parse_rows(rows, "operator.csv").unwrap();
    spec.complete_years = complete.to_vec();
    Calendar::build(&spec)
}

#[test]
fn operator_rows_replace_whatever_the_date_was() {
    let cal = with_operator(
        "date,kind,name\n\
         2024-04-29,workday,no swap here\n\
         2024-05-04,holiday,make-up cancelled\n\
         2023-09-16,workday,extra Saturday\n\
         2028-01-24,workday,no estimated Tết day\n\
         2028-03-08,holiday,provincial day\n",
        &[],
    );
    assert_eq!(cal.day_kind(date("2024-04-29")), DayKind::Workday);
    assert_eq!(cal.day_kind(date("2024-05-04")), DayKind::Holiday);
    assert_eq!(cal.day_kind(date("2023-09-16")), DayKind::MakeUp);
    // Estimated 2028: generated days stay, operator rows apply on top.
    assert!(!cal.year_is_official(2028));
    assert_eq!(cal.day_kind(date("2028-01-24")), DayKind::Workday);
    assert_eq!(cal.day_kind(date("2028-01-25")), DayKind::Holiday);
    assert_eq!(cal.day_kind(date("2028-03-08")), DayKind::Holiday);
    assert!(cal.entry(date("2028-03-08")).unwrap().operator);
    // The version changes with the content.
    assert_ne!(cal.version(), builtin().version());
}

#[test]
fn a_complete_year_uses_only_dated_rows() {
    // The operator declares 2028 complete with its own Tết: generated days disappear.
    let cal = with_operator(
        "date,kind,name\n\
         2028-01-03,holiday,Tết Dương lịch (nghỉ bù)\n\
         2028-01-25,holiday,Tết\n\
         2028-01-26,holiday,Tết\n\
         2028-01-27,holiday,Tết\n\
         2028-01-28,holiday,Tết\n\
         2028-01-31,holiday,Tết\n",
        &[2028],
    );
    assert!(cal.year_is_official(2028));
    assert_eq!(cal.official_until(), Some(date("2028-12-31")));
    // Mon 24/01, a generated day, is gone; the operator's Mon 31/01 is off.
    assert!(cal.is_workday(date("2028-01-24")));
    assert!(!cal.is_workday(date("2028-01-31")));
    // No generated Giỗ Tổ in a complete year (lunar 10/3 is Tue 04/04/2028).
    assert!(cal.is_workday(date("2028-04-04")));
}

#[test]
fn a_holiday_beats_a_make_up_day_within_one_layer() {
    let cal = with_operator("date,kind\n2025-06-07,workday\n2025-06-07,holiday\n", &[]);
    assert_eq!(cal.day_kind(date("2025-06-07")), DayKind::Holiday);
}

#[test]
fn version_is_stable_and_named() {
    let a = Calendar::builtin();
    let b = Calendar::builtin();
    assert_eq!(a.version(), b.version());
    assert!(a.version().to_string().starts_with("vn-official@"));
    assert_eq!(a.version().hash.len(), 6);
    // Office hours are part of the content.
    assert_ne!(ha_tinh().version().hash, a.version().hash);
}

#[test]
fn breaks_name_the_tet_period() {
    let cal = builtin();
    let b = cal.breaks_between(date("2024-01-31"), date("2024-02-28"));
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].from, b[0].to),
        (date("2024-02-08"), date("2024-02-14"))
    );
    assert_eq!(b[0].names, ["Tết Nguyên đán"]);
    assert_eq!(
        cal.make_up_days_between(date("2024-04-01"), date("2024-05-31")),
        [date("2024-05-04")]
    );
}

#[test]
fn instants_convert_through_the_zone_history() {
    let cal = builtin();
    // Today: UTC+7.
    assert_eq!(
        at(cal, "2023-09-15 14:30").to_rfc3339(),
        "2023-09-15T07:30:00+00:00"
    );
    // Saigon kept UTC+8 from 1960 to 13/06/1975 (tz database).
    assert_eq!(
        at(cal, "1970-06-01 12:00").to_rfc3339(),
        "1970-06-01T04:00:00+00:00"
    );
    assert_eq!(
        cal.local(at(cal, "1970-06-01 12:00")).to_string(),
        "1970-06-01 12:00:00"
    );
}

#[test]
fn out_of_range_is_an_error_not_a_panic() {
    let cal = builtin();
    let t = at(cal, "2100-12-30 10:00");
    assert!(matches!(
        cal.add_workdays(t, 10),
        Err(CalendarError::OutOfRange(_))
    ));
    let t = at(cal, "1850-01-01 10:00");
    assert!(cal.snap(t, None).is_err());
}
