//! Fixtures the unit tests share: the built-in and Hà Tĩnh calendars, instants read as
//! local time, a procedure of a given duration and the hand-worked open case.

use crate::calendar::hours::OfficeHours;
use crate::calendar::{Calendar, CalendarSpec};
use crate::catalogue::Procedure;
use crate::sla::model::{Case, StatusChange};
use crate::timefmt::parse_instant;
use chrono::{DateTime, Utc};
use std::sync::OnceLock;

/// The built-in calendar: official days off, 07:30–11:30 and 13:30–17:30.
pub(crate) fn builtin() -> &'static Calendar {
    static CAL: OnceLock<Calendar> = OnceLock::new();
    CAL.get_or_init(Calendar::builtin)
}

/// The same days with Hà Tĩnh's summer hours (16/4–15/10: 07:00–11:30, 14:00–17:30).
pub(crate) fn ha_tinh() -> &'static Calendar {
    static CAL: OnceLock<Calendar> = OnceLock::new();
    CAL.get_or_init(|| {
        let mut spec = CalendarSpec::builtin();
        spec.hours = OfficeHours::ha_tinh();
        Calendar::build(&spec)
    })
}

/// A local instant (`2023-09-18 09:00`) on the built-in calendar.
pub(crate) fn t(s: &str) -> DateTime<Utc> {
    parse_instant(s, builtin()).unwrap().unwrap()
}

/// Procedure 1.004227 with the given duration.
pub(crate) fn proc(duration: &str) -> Procedure {
    Procedure {
        code: "1.004227".into(),
        name: "Cấp giấy phép xây dựng".into(),
        field: None,
        kind: None,
        duration: duration.parse().unwrap(),
        online_duration: None,
        steps: Vec::new(),
    }
}

/// A case received Mon 18/09/2023 09:00, processing, no source due: with 15 workdays
/// the computed due is Mon 09/10/2023 09:00 (19–22 Sep = 4, 25–29 = 9, 2–6 Oct = 14,
/// 9 Oct = 15).
pub(crate) fn open_case() -> Case {
    Case {
        source: "test".into(),
        case_id: "000.00.12.H22-230918-0001".into(),
        unit_code: Some("UBND-X".into()),
        status: 4,
        received_at: Some(t("2023-09-18 09:00")),
        status_history: vec![StatusChange {
            at: t("2023-09-18 09:00"),
            status: 4,
            approximate: false,
        }],
        ..Case::default()
    }
}
