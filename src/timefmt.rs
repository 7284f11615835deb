//! Reading and writing instants the way sources and people write them.
//!
//! Accepted (SPEC §2): DVCQG `yyyyMMddHHmmss`, RFC 3339 / ISO 8601 with or without an
//! offset (a `T` or a space between date and time, optional fractions), and
//! `dd/MM/yyyy HH:mm[:ss]`; a bare date means its midnight. A time without an offset is
//! local time of the calendar's zone. An empty string is "no value".

use crate::calendar::Calendar;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a date-time (expected yyyyMMddHHmmss, RFC 3339, `YYYY-MM-DD HH:MM[:SS]` or `dd/MM/yyyy HH:mm[:ss]`)")]
pub struct TimeError(pub String);

const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
];

/// Parses an instant; `Ok(None)` for an empty string.
pub fn parse_instant(text: &str, cal: &Calendar) -> Result<Option<DateTime<Utc>>, TimeError> {
    let s = text.trim();
    if s.is_empty() {
        return Ok(None);
    }
    parse_local(s, cal)
        .map(Some)
        .ok_or_else(|| TimeError(text.to_string()))
}

fn parse_local(s: &str, cal: &Calendar) -> Option<DateTime<Utc>> {
    if s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit()) {
        let naive = NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?;
        return Some(cal.instant(naive));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // ISO 8601 with an offset but a space instead of `T`, or no seconds.
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for f in NAIVE_FORMATS {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Some(cal.instant(n));
        }
    }
    for f in ["%Y-%m-%d", "%d/%m/%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return Some(cal.instant(d.and_hms_opt(0, 0, 0)?));
        }
    }
    None
}

/// RFC 3339 in the calendar's zone, seconds precision: `2023-10-06T14:30:00+07:00`.
pub fn rfc3339(t: DateTime<Utc>, cal: &Calendar) -> String {
    cal.with_zone(t).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// `dd/MM/yyyy HH:mm` in local time, for traces and e-mails.
pub fn human(t: DateTime<Utc>, cal: &Calendar) -> String {
    let l = cal.local(t);
    if l.format("%S").to_string() == "00" {
        l.format("%d/%m/%Y %H:%M").to_string()
    } else {
        l.format("%d/%m/%Y %H:%M:%S").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn cal() -> &'static Calendar {
        static CAL: OnceLock<Calendar> = OnceLock::new();
        CAL.get_or_init(Calendar::builtin)
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_accepted_form_reads_the_same_instant() {
        let want = Some(utc("2023-09-15T07:30:00Z"));
        for s in [
            "20230915143000",
            "2023-09-15T14:30:00+07:00",
            "2023-09-15T07:30:00Z",
            "2023-09-15T14:30:00",
            "2023-09-15 14:30:00",
            "2023-09-15 14:30",
            "2023-09-15T14:30:00.000",
            "2023-09-15 14:30:00+07:00",
            "15/09/2023 14:30",
            "15/09/2023 14:30:00",
            " 20230915143000 ",
        ] {
            assert_eq!(parse_instant(s, cal()), Ok(want), "{s}");
        }
    }

    #[test]
    fn empty_is_no_value_and_garbage_is_an_error() {
        assert_eq!(parse_instant("", cal()), Ok(None));
        assert_eq!(parse_instant("   ", cal()), Ok(None));
        for s in [
            "2023-13-01 10:00",
            "20231315143000",
            "tomorrow",
            "31/02/2023 10:00",
            "2023091514300",
        ] {
            assert!(parse_instant(s, cal()).is_err(), "{s}");
        }
    }

    #[test]
    fn writes_rfc3339_with_the_zone_offset() {
        let t = utc("2023-10-06T07:30:00Z");
        assert_eq!(rfc3339(t, cal()), "2023-10-06T14:30:00+07:00");
        assert_eq!(human(t, cal()), "06/10/2023 14:30");
    }
}
