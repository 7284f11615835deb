//! Biểu 06 and indicator 2.1 for November 2026, worked out by hand.
//!
//! P = [01/11/2026 00:00, 01/12/2026 00:00) local, reported on 10/12/2026 (closed).
//! Built-in hours 07:30–11:30, 13:30–17:30; 24/11/2026 (Ngày Văn hóa Việt Nam) is a
//! day off. Directory: UBND-T (the province) with STP (and its department STP-HT),
//! SXD, PTS (UBND phường Thành Sen), XTH (UBND xã Thạch Hà). R = received, D = due
//! (the source's, also the original unless said), F = finished.
//!
//! | case | unit | what happened | Biểu 06 | 766 |
//! |---|---|---|---|---|
//! | A1 | STP | online R 03/11, D 10/11 08:00, F 09/11 | 4, 8 (09 < 10) | on |
//! | A2 | STP | in person R 03/11, D 10/11 10:00, F 10/11 09:00 | 5, 9 | on |
//! | A3 | STP | in person R 02/11, D 05/11 10:00, F 06/11 09:00 | 5, 10; 0 wd late | late |
//! | A4 | STP | online R 20/10, D 03/11 08:00, F 04/11 15:00 | 6, 10; 1 wd (04/11 08:00 ≤ F) | late |
//! | A5 | STP | R 25/10, D 20/11, F 12/11 | 6, 8 | on |
//! | A6 | STP | R 28/10, D 30/11 10:00, open | 6, 13; 0 wd at 01/12 00:00 | late |
//! | A7 | STP | R 15/10, F 29/10 | – ended before P | – |
//! | A8 | STP | R 05/11, D 25/12, open | 5, 12 | on |
//! | A9 | STP | online R 10/11, D 20/11 10:00, F 03/12 (after P) | 4, 13; 23, 25, 26, 27, 30/11 → 5 wd | late |
//! | A10 | STP | R 12/11, withdrawn 20/11, D 30/11 | note: withdrawn | on |
//! | A11 | STP | refused at intake 13/11 | note: refused | – |
//! | A27 | STP | a task | – another kind | – |
//! | A28 | STP-HT | online R 06/11, D 09/11 10:00, F 09/11 08:00 | 4, 9 (in STP's row) | on |
//! | A29 | STP | in person R 30/11 20:00, D 15/12, open | 5, 12 | on |
//! | A32 | STP | R 10/10, D 30/10 10:00, F 01/12 09:00 | 6, 13; Nov has 20 workdays → 20 wd | late |
//! | A33 | STP | no receipt time | note: no receipt | – |
//! | A34 | STP | in person R 30/09 16:00 (Q3), D 02/10, F 01/10 09:00 (Q4) | – ended before P (in Q4: 6, 8) | – (Q4: on) |
//! | A12 | SXD | in person R 02/11, D 20/11, two supplements, F 19/11 | 5, 8 | late (two requests) |
//! | A13 | SXD | R 02/11, D 12/11 10:00; supplement 05/11 09:00 → 09/11 09:00 moved it to 16/11, re-appointed to 18/11; F 17/11 10:00 | 5, 8 (17 < 18) | late: 17/11 − 4 d = 13/11 10:00 > 12/11 10:00 |
//! | A14 | SXD | online R 16/11, D 18/11 10:00, a step due 17/11 acted 20/11, F 26/11 10:00 | 4, 10; 19, 20, 23, 25, 26 → 5 wd | late |
//! | A15 | SXD | R 27/11, D 04/12, open | 5, 12 | on |
//! | A16 | SXD | by post R 30/11 16:00, D 02/12, F 30/11 17:00 | 5, 8 | on |
//! | A17 | SXD | R 01/12 | – after P | – |
//! | A18 | SXD | R 20/11, D 27/11, waiting on a supplement asked 25/11 | 5, 12 (paused) | on (end = request) |
//! | A19 | SXD | R 10/11, D 12/11 10:00, waiting on a supplement asked 16/11 09:00 | 5, 13 (asked after the due); 1 wd | late |
//! | A30 | SXD | online R 25/11, not accepted yet (status 1) | 4, 12 | – |
//! | A20 | PTS | online R 05/11, D 06/11 10:00, F 06/11 16:00 | 4, 10; 0 wd | late |
//! | A21 | PTS | R 05/11, no due at all, F 10/11 | 5, 9 (note: no due) | – |
//! | A22 | PTS | R 25/10, D 02/11 10:00, open | 6, 13; 19 wd | late |
//! | A23 | XTH | R 04/11 at PTS, moved to XTH, D 13/11, F 12/11 | 5, 8 (in XTH's row) | on |
//! | A24 | XTH | online R 10/11, refused after appraisal 16/11, D 20/11 | 4, 8 | on |
//! | A25 | XTH | R 26/10, D = F = 10/11 10:00 | 6, 9 | on |
//! | A31 | XTH | R 28/10, withdrawn 05/11, D 10/11 | note: withdrawn | on |
//! | A26 | unknown | no channel, R 10/11, D 20/12, open | 5, 12 (note: no channel) | on |
//!
//! Rows (cols 3 4 5 6 | 7 8 9 10 | 11 12 13; 766 on/population):
//! - STP: 11 3 4 4 | 6 2 2 2 | 5 2 3; 7/12 (A1 A2 A5 A8 A10 A28 A29 of 12)
//! - SXD: 8 2 6 0 | 4 3 0 1 | 4 3 1; 3/7 (A15 A16 A18)
//! - Sở, ban, ngành: 19 5 10 4 | 10 5 2 3 | 9 5 4; 10/19
//! - PTS: 3 1 1 1 | 2 0 1 1 | 1 0 1; 0/2
//! - XTH: 3 1 1 1 | 3 2 1 0 | 0 0 0; 4/4
//! - Xã, phường, đặc khu: 6 2 2 2 | 5 2 2 1 | 1 0 1; 4/6
//! - unknown: 1 0 1 0 | 0 0 0 0 | 1 1 0; 1/1
//! - total: 26 7 13 6 | 15 7 4 4 | 11 6 5; 15/26
//!
//! Notes: withdrawn 2, refused at intake 1, no receipt 1, finished without a due 1,
//! no channel 1. Late list: 9 = col 10 (4) + col 13 (5).

use super::*;
use crate::calendar::Calendar;
use crate::catalogue::Catalogue;
use crate::report::ReportPeriod;
use crate::sla::model::{DueChange, StatusChange, Step, Supplement};
use crate::sla::policy::Policy;
use crate::timefmt::parse_instant;
use std::sync::Arc;

const UNITS: &str = include_str!("../../../tests/fixtures/report/units.toml");

fn cal() -> Arc<Calendar> {
    static CAL: std::sync::OnceLock<Arc<Calendar>> = std::sync::OnceLock::new();
    CAL.get_or_init(|| Arc::new(Calendar::builtin())).clone()
}

pub(crate) fn context() -> Context {
    Context {
        calendar: cal(),
        policy: Policy::default(),
        catalogue: Catalogue::default(),
        directory: Directory::parse(UNITS, "units.toml").unwrap(),
    }
}

fn t(s: &str) -> DateTime<Utc> {
    parse_instant(s, &cal()).unwrap().unwrap()
}

fn sc(at: &str, status: u8) -> StatusChange {
    StatusChange {
        at: t(at),
        status,
        approximate: false,
    }
}

/// A dossier: id, unit, channel (1 in person, 2 online, 3 post, 0 none), received,
/// due; processing.
fn c(id: &str, unit: &str, channel: u8, received: &str, due: &str) -> Case {
    Case {
        source: "test".into(),
        case_id: id.into(),
        unit_code: (unit != "?").then(|| unit.into()),
        unit_name: Some(
            if unit == "?" {
                "Phòng Tiếp dân cũ"
            } else {
                unit
            }
            .into(),
        ),
        channel: Channel::from_code(&channel.to_string()),
        status: 4,
        received_at: (!received.is_empty()).then(|| t(received)),
        due_at: (!due.is_empty()).then(|| t(due)),
        due_at_original: (!due.is_empty()).then(|| t(due)),
        ..Case::default()
    }
}

fn fin(mut x: Case, at: &str) -> Case {
    x.status = 10;
    x.finished_at = Some(t(at));
    x
}

fn supp(mut x: Case, req: &str, back: Option<&str>) -> Case {
    x.supplements.push(Supplement {
        requested_at: t(req),
        resumed_at: back.map(t),
        due_before: None,
        due_after: None,
    });
    x
}

pub(crate) fn november() -> Vec<Case> {
    let mut v = vec![
        fin(
            c("A1", "STP", 2, "2026-11-03 08:00", "2026-11-10 08:00"),
            "2026-11-09 10:00",
        ),
        fin(
            c("A2", "STP", 1, "2026-11-03 08:00", "2026-11-10 10:00"),
            "2026-11-10 09:00",
        ),
        fin(
            c("A3", "STP", 1, "2026-11-02 08:00", "2026-11-05 10:00"),
            "2026-11-06 09:00",
        ),
        fin(
            c("A4", "STP", 2, "2026-10-20 08:00", "2026-11-03 08:00"),
            "2026-11-04 15:00",
        ),
        fin(
            c("A5", "STP", 1, "2026-10-25 08:00", "2026-11-20 10:00"),
            "2026-11-12 10:00",
        ),
        c("A6", "STP", 1, "2026-10-28 08:00", "2026-11-30 10:00"),
        fin(
            c("A7", "STP", 1, "2026-10-15 08:00", "2026-10-31 10:00"),
            "2026-10-29 10:00",
        ),
        c("A8", "STP", 1, "2026-11-05 08:00", "2026-12-25 10:00"),
        {
            let mut x = fin(
                c("A9", "STP", 2, "2026-11-10 08:00", "2026-11-20 10:00"),
                "2026-12-03 10:00",
            );
            x.status_history = vec![sc("2026-11-10 08:00", 2), sc("2026-12-03 10:00", 10)];
            x
        },
        {
            let mut x = c("A10", "STP", 1, "2026-11-12 08:00", "2026-11-30 10:00");
            x.status = 7;
            x.status_history = vec![sc("2026-11-12 08:00", 2), sc("2026-11-20 09:00", 7)];
            x
        },
        {
            let mut x = c("A11", "STP", 1, "2026-11-13 08:00", "");
            x.status = 3;
            x.refused_at = Some(t("2026-11-13 08:00"));
            x
        },
        {
            let mut x = c("A27", "STP", 1, "2026-11-05 08:00", "2026-11-06 10:00");
            x.kind = Kind::Task;
            x
        },
        fin(
            c("A28", "STP-HT", 2, "2026-11-06 08:00", "2026-11-09 10:00"),
            "2026-11-09 08:00",
        ),
        c("A29", "STP", 1, "2026-11-30 20:00", "2026-12-15 10:00"),
        {
            let mut x = fin(
                c("A32", "STP", 1, "2026-10-10 08:00", "2026-10-30 10:00"),
                "2026-12-01 09:00",
            );
            x.status_history = vec![sc("2026-10-10 08:00", 2), sc("2026-12-01 09:00", 10)];
            x
        },
        c("A33", "STP", 1, "", "2026-11-20 10:00"),
        fin(
            c("A34", "STP", 1, "2026-09-30 16:00", "2026-10-02 16:00"),
            "2026-10-01 09:00",
        ),
        fin(
            supp(
                supp(
                    c("A12", "SXD", 1, "2026-11-02 08:00", "2026-11-20 10:00"),
                    "2026-11-04 09:00",
                    Some("2026-11-06 09:00"),
                ),
                "2026-11-09 09:00",
                Some("2026-11-11 09:00"),
            ),
            "2026-11-19 10:00",
        ),
        {
            let mut x = fin(
                supp(
                    c("A13", "SXD", 1, "2026-11-02 08:00", "2026-11-18 10:00"),
                    "2026-11-05 09:00",
                    Some("2026-11-09 09:00"),
                ),
                "2026-11-17 10:00",
            );
            x.due_at_original = Some(t("2026-11-12 10:00"));
            x.due_history = vec![
                DueChange {
                    at: t("2026-11-09 09:00"),
                    from: Some(t("2026-11-12 10:00")),
                    to: Some(t("2026-11-16 10:00")),
                    cause: DueChangeCause::Supplement,
                },
                DueChange {
                    at: t("2026-11-16 08:00"),
                    from: Some(t("2026-11-16 10:00")),
                    to: Some(t("2026-11-18 10:00")),
                    cause: DueChangeCause::Reappointment,
                },
            ];
            x
        },
        {
            let mut x = fin(
                c("A14", "SXD", 2, "2026-11-16 08:00", "2026-11-18 10:00"),
                "2026-11-26 10:00",
            );
            x.steps = vec![Step {
                title: Some("Thẩm định".into()),
                unit_code: Some("SXD".into()),
                started_at: Some(t("2026-11-16 08:00")),
                acted_at: Some(t("2026-11-20 09:00")),
                step_due_at: Some(t("2026-11-17 10:00")),
                ..Step::default()
            }];
            x
        },
        c("A15", "SXD", 1, "2026-11-27 15:00", "2026-12-04 10:00"),
        fin(
            c("A16", "SXD", 3, "2026-11-30 16:00", "2026-12-02 10:00"),
            "2026-11-30 17:00",
        ),
        c("A17", "SXD", 1, "2026-12-01 08:00", "2026-12-10 10:00"),
        {
            let mut x = supp(
                c("A18", "SXD", 1, "2026-11-20 08:00", "2026-11-27 10:00"),
                "2026-11-25 09:00",
                None,
            );
            x.status = 5;
            x.status_history = vec![sc("2026-11-20 08:00", 2), sc("2026-11-25 09:00", 5)];
            x
        },
        {
            let mut x = supp(
                c("A19", "SXD", 1, "2026-11-10 08:00", "2026-11-12 10:00"),
                "2026-11-16 09:00",
                None,
            );
            x.status = 5;
            x
        },
        {
            let mut x = c("A30", "SXD", 2, "2026-11-25 08:00", "");
            x.status = 1;
            x
        },
        fin(
            c("A20", "PTS", 2, "2026-11-05 08:00", "2026-11-06 10:00"),
            "2026-11-06 16:00",
        ),
        fin(
            c("A21", "PTS", 1, "2026-11-05 08:00", ""),
            "2026-11-10 10:00",
        ),
        c("A22", "PTS", 1, "2026-10-25 08:00", "2026-11-02 10:00"),
        fin(
            c("A23", "XTH", 1, "2026-11-04 08:00", "2026-11-13 10:00"),
            "2026-11-12 10:00",
        ),
        {
            let mut x = c("A24", "XTH", 2, "2026-11-10 08:00", "2026-11-20 10:00");
            x.status = 3;
            x.refused_at = Some(t("2026-11-16 09:00"));
            x
        },
        fin(
            c("A25", "XTH", 1, "2026-10-26 08:00", "2026-11-10 10:00"),
            "2026-11-10 10:00",
        ),
        {
            let mut x = c("A31", "XTH", 1, "2026-10-28 08:00", "2026-11-10 10:00");
            x.status = 7;
            x.status_history = vec![sc("2026-10-28 08:00", 2), sc("2026-11-05 09:00", 7)];
            x
        },
        c("A26", "?", 0, "2026-11-10 08:00", "2026-12-20 10:00"),
    ];
    for x in &mut v {
        if x.status_history.is_empty() && x.status != 1 {
            if let Some(r) = x.received_at {
                x.status_history.push(StatusChange {
                    at: r,
                    status: 2,
                    approximate: false,
                });
                if x.status != 2 && x.status != 4 {
                    if let Some(end) = x
                        .finished_at
                        .or(x.refused_at)
                        .or_else(|| x.supplements.last().map(|s| s.requested_at))
                    {
                        x.status_history.push(StatusChange {
                            at: end,
                            status: x.status,
                            approximate: false,
                        });
                    }
                }
            }
        }
    }
    // A11 was refused at its receipt: no acceptance in its history.
    v.iter_mut()
        .find(|x| x.case_id == "A11")
        .unwrap()
        .status_history
        .clear();
    v
}

pub(crate) fn spec(options: Options) -> Spec {
    let period = ReportPeriod::parse("2026-11").unwrap();
    Spec {
        bounds: period.bounds(&cal(), t("2026-12-10 09:00")),
        period,
        by: By::Unit,
        unit: None,
        kind: Kind::Dossier,
        options,
    }
}

fn weeks() -> Vec<(String, NaiveDate)> {
    let w = |u: &str, d: &str| (u.to_string(), d.parse().unwrap());
    vec![
        w("STP", "2026-11-02"),
        w("STP", "2026-11-09"),
        w("STP", "2026-11-23"),
        w("SXD", "2026-11-16"),
        w("SXD", "2026-11-23"),
        w("PTS", "2026-10-26"),
        w("PTS", "2026-11-02"),
        w("PTS", "2026-11-09"),
    ]
}

fn build(options: Options) -> Report {
    let ctx = context();
    let mut b = Builder::new(&ctx, spec(options)).unwrap();
    for x in november() {
        b.add(&x);
    }
    b.finish(&weeks()).unwrap()
}

/// Cols 3–13 as written in the module comment.
fn cols(s: &str) -> [u64; 11] {
    let v: Vec<u64> = s
        .split_whitespace()
        .filter(|x| *x != "|")
        .map(|x| x.parse().unwrap())
        .collect();
    v.try_into().unwrap()
}

fn row<'r>(r: &'r Report, key: &str) -> &'r Row {
    r.groups
        .iter()
        .flat_map(|g| &g.rows)
        .find(|x| x.key == key)
        .unwrap_or_else(|| panic!("no row {key}"))
}

fn ratio(on_time: u64, population: u64) -> Ratio {
    Ratio {
        on_time,
        population,
    }
}

#[test]
fn november_2026_worked_by_hand() {
    let r = build(Options::default());
    let names: Vec<(&str, Vec<&str>)> = r
        .groups
        .iter()
        .map(|g| {
            (
                g.name.as_str(),
                g.rows.iter().map(|x| x.key.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("Sở, ban, ngành", vec!["STP", "SXD"]),
            ("Xã, phường, đặc khu", vec!["PTS", "XTH"]),
            ("Khác", vec!["unknown"]),
        ]
    );
    assert_eq!(
        row(&r, "STP").cells.columns(),
        cols("11 3 4 4 | 6 2 2 2 | 5 2 3")
    );
    assert_eq!(
        row(&r, "SXD").cells.columns(),
        cols("8 2 6 0 | 4 3 0 1 | 4 3 1")
    );
    assert_eq!(
        r.groups[0].subtotal.columns(),
        cols("19 5 10 4 | 10 5 2 3 | 9 5 4")
    );
    assert_eq!(
        row(&r, "PTS").cells.columns(),
        cols("3 1 1 1 | 2 0 1 1 | 1 0 1")
    );
    assert_eq!(
        row(&r, "XTH").cells.columns(),
        cols("3 1 1 1 | 3 2 1 0 | 0 0 0")
    );
    assert_eq!(
        r.groups[1].subtotal.columns(),
        cols("6 2 2 2 | 5 2 2 1 | 1 0 1")
    );
    assert_eq!(
        row(&r, "unknown").cells.columns(),
        cols("1 0 1 0 | 0 0 0 0 | 1 1 0")
    );
    assert_eq!(r.total.columns(), cols("26 7 13 6 | 15 7 4 4 | 11 6 5"));

    assert_eq!(row(&r, "STP").on_time, ratio(7, 12));
    assert_eq!(row(&r, "SXD").on_time, ratio(3, 7));
    assert_eq!(r.groups[0].subtotal_on_time, ratio(10, 19));
    assert_eq!(row(&r, "PTS").on_time, ratio(0, 2));
    assert_eq!(row(&r, "XTH").on_time, ratio(4, 4));
    assert_eq!(row(&r, "unknown").on_time, ratio(1, 1));
    assert_eq!(r.total_on_time, ratio(15, 26));

    assert_eq!(
        r.notes,
        Notes {
            withdrawn: 2,
            refused_at_intake: 1,
            no_receipt: 1,
            finished_without_due: 1,
            unknown_channel: 1,
        }
    );
    assert_eq!(r.reporter, "UBND tỉnh");
    assert!(!r.running);
}

#[test]
fn the_late_cases_with_how_late_and_why() {
    let r = build(Options::default());
    let late: Vec<(&str, &str, bool, u32)> = r
        .late_cases
        .iter()
        .map(|l| {
            (
                l.case_id.as_str(),
                l.unit.as_str(),
                l.ended.is_some(),
                l.workdays_late,
            )
        })
        .collect();
    // Per row in table order; open ones first, then by workdays late.
    assert_eq!(
        late,
        [
            ("A32", "STP", false, 20),
            ("A9", "STP", false, 5),
            ("A6", "STP", false, 0),
            ("A4", "STP", true, 1),
            ("A3", "STP", true, 0),
            ("A19", "SXD", false, 1),
            ("A14", "SXD", true, 5),
            ("A22", "PTS", false, 19),
            ("A20", "PTS", true, 0),
        ]
    );
    let why = |id: &str| {
        r.late_cases
            .iter()
            .find(|l| l.case_id == id)
            .unwrap()
            .reasons
            .clone()
    };
    assert_eq!(
        why("A14"),
        [Reason::LateStep {
            step: Some("Thẩm định".into()),
            unit: Some("SXD".into()),
            unit_name: Some("Sở Xây dựng".into()),
        }]
    );
    // Asked 16/11 09:00: after the due 12/11 10:00, and after 10/11 08:00 + 3 workdays
    // = 13/11 08:00.
    assert_eq!(
        why("A19"),
        [Reason::SupplementAfterDue, Reason::LateSupplementRequest]
    );
    assert_eq!(why("A3"), []);
    let a9 = r.late_cases.iter().find(|l| l.case_id == "A9").unwrap();
    assert_eq!(a9.due, Some(t("2026-11-20 10:00")));
}

#[test]
fn ranking_and_the_units_regularly_late() {
    let r = build(Options::default());
    let on: Vec<(usize, &str)> = r
        .ranking_on_time
        .iter()
        .map(|x| (x.rank, x.unit.as_str()))
        .collect();
    // XTH 4/4, STP 7/12, SXD 3/7, PTS 0/2.
    assert_eq!(on, [(1, "XTH"), (2, "STP"), (3, "SXD"), (4, "PTS")]);
    let od: Vec<(&str, u64)> = r
        .ranking_overdue
        .iter()
        .map(|x| (x.unit.as_str(), x.overdue_open))
        .collect();
    assert_eq!(od, [("STP", 3), ("PTS", 1), ("SXD", 1)]);
    // The 4 weeks before the week of 30/11: 02, 09, 16, 23/11. STP in 3 of them; SXD
    // in 2; PTS in 2 (26/10 is outside).
    let late: Vec<(&str, Option<&str>)> = r
        .regularly_late
        .iter()
        .map(|x| (x.unit.as_str(), x.head.as_deref()))
        .collect();
    assert_eq!(late, [("STP", Some("Giám đốc Sở Tư pháp"))]);
}

#[test]
fn vendor_ways_of_counting_are_options() {
    // Dates only: A20 (F 06/11 16:00, D 06/11 10:00) is on time; A6 (D 30/11 10:00) is
    // not overdue on 30/11, the period's last day.
    let r = build(Options {
        dates_only: true,
        ..Options::default()
    });
    assert_eq!(
        row(&r, "PTS").cells.columns(),
        cols("3 1 1 1 | 2 0 2 0 | 1 0 1")
    );
    assert_eq!(
        row(&r, "STP").cells.columns(),
        cols("11 3 4 4 | 6 2 2 2 | 5 3 2")
    );
    assert_eq!(r.late_cases.len(), 7);
    // Withdrawn and returned after appraisal as on time: A10 joins STP (5, 9), A31 XTH
    // (6, 9), A24 moves from 8 to 9.
    let r = build(Options {
        withdrawn_on_time: true,
        ..Options::default()
    });
    assert_eq!(
        row(&r, "STP").cells.columns(),
        cols("12 3 5 4 | 7 2 3 2 | 5 2 3")
    );
    assert_eq!(
        row(&r, "XTH").cells.columns(),
        cols("4 1 1 2 | 4 1 3 0 | 0 0 0")
    );
    assert_eq!(r.notes.withdrawn, 0);
    // Waiting on a supplement counts in time whenever it was asked for: A19 to col 12.
    let r = build(Options {
        paused_in_time: true,
        ..Options::default()
    });
    assert_eq!(
        row(&r, "SXD").cells.columns(),
        cols("8 2 6 0 | 4 3 0 1 | 4 4 0")
    );
}

#[test]
fn one_unit_and_its_subtree() {
    let ctx = context();
    let mut s = spec(Options::default());
    s.unit = Some("STP".into());
    let mut b = Builder::new(&ctx, s).unwrap();
    for x in november() {
        b.add(&x);
    }
    let r = b.finish(&weeks()).unwrap();
    let keys: Vec<&str> = r.groups[0].rows.iter().map(|x| x.key.as_str()).collect();
    // STP's own cases, and its department's (A28).
    assert_eq!(keys, ["STP", "STP-HT"]);
    assert_eq!(
        row(&r, "STP-HT").cells.columns(),
        cols("1 1 0 0 | 1 0 1 0 | 0 0 0")
    );
    assert_eq!(r.total.columns(), cols("11 3 4 4 | 6 2 2 2 | 5 2 3"));
    assert_eq!(r.reporter, "Sở Tư pháp");
    let mut s = spec(Options::default());
    s.unit = Some("NOPE".into());
    assert!(Builder::new(&ctx, s).is_err());
}

#[test]
fn by_field_and_by_procedure() {
    let ctx = context();
    let mut s = spec(Options::default());
    s.by = By::Procedure;
    let mut b = Builder::new(&ctx, s).unwrap();
    for mut x in november() {
        if x.case_id == "A1" || x.case_id == "A2" {
            x.procedure_code = Some("1.001".into());
            x.procedure_name = Some("Đăng ký khai sinh".into());
        }
        b.add(&x);
    }
    let r = b.finish(&[]).unwrap();
    let keys: Vec<(&str, &str)> = r.groups[0]
        .rows
        .iter()
        .map(|x| (x.key.as_str(), x.name.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("1.001", "Đăng ký khai sinh"),
            ("unknown", "Chưa rõ thủ tục")
        ]
    );
    assert_eq!(
        r.groups[0].rows[0].cells.columns(),
        cols("2 1 1 0 | 2 1 1 0 | 0 0 0")
    );
    assert_eq!(r.total.columns(), cols("26 7 13 6 | 15 7 4 4 | 11 6 5"));
}

#[test]
fn a_table_that_does_not_add_up_is_an_error() {
    let mut c = Cells {
        received: 3,
        online: 1,
        in_person: 1,
        carried_over: 1,
        finished: 2,
        early: 1,
        on_time: 1,
        late: 0,
        in_progress: 1,
        in_time: 1,
        overdue: 0,
    };
    assert_eq!(c.check(), Ok(()));
    c.late = 1;
    assert_eq!(c.check(), Err("col 7 (2) ≠ 8 + 9 + 10 (1 + 1 + 1)".into()));
    c.received = 4;
    assert!(c.check().unwrap_err().contains("col 3 (4) ≠ 4 + 5 + 6"));
}

#[test]
fn options_by_name() {
    assert_eq!(
        Options::parse("dates-only,paused-in-time").unwrap(),
        Options {
            dates_only: true,
            withdrawn_on_time: false,
            paused_in_time: true
        }
    );
    assert!(Options::parse("count-everything").is_err());
    assert!(Options::parse("").is_err());
    assert!(Options::parse("dates-only,").is_err());
}

/// The integration tests read the same population from a file: it must be this one.
/// `SLAWATCH_UPDATE_SNAPSHOTS=1` rewrites it.
#[test]
fn the_fixture_file_is_this_population() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/report/november-2026.json"
    );
    let want = serde_json::to_string_pretty(&november()).unwrap() + "\n";
    if std::env::var_os("SLAWATCH_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let got = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        got == want,
        "{path} differs from november(): rerun with SLAWATCH_UPDATE_SNAPSHOTS=1"
    );
}
