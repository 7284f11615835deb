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
    if let Some(fast) = parse_fast(s.as_bytes()) {
        return match fast {
            Parsed::Local(l) => cal.instant_of_local_seconds(l),
            Parsed::Utc(u) => DateTime::from_timestamp(u, 0),
        };
    }
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

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

enum Parsed {
    /// Local civil seconds.
    Local(i64),
    /// UTC seconds.
    Utc(i64),
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut n = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (c - b'0') as u32;
    }
    Some(n)
}

fn civil(y: u32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    if !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y as i64, mo)
        || h > 23
        || mi > 59
        || s > 59
    {
        return None;
    }
    Some(days_from_civil(y as i64, mo, d) * 86_400 + (h * 3600 + mi * 60 + s) as i64)
}

/// The common shapes without allocation: `yyyyMMddHHmmss`, `YYYY-MM-DD[ T]HH:MM[:SS]`
/// with an optional `Z` or `±HH:MM`, and `dd/MM/yyyy HH:mm[:ss]`. Anything else goes
/// to the general parser.
fn parse_fast(b: &[u8]) -> Option<Parsed> {
    if b.len() == 14 {
        let n = |r: std::ops::Range<usize>| digits(&b[r]);
        return civil(
            n(0..4)?,
            n(4..6)?,
            n(6..8)?,
            n(8..10)?,
            n(10..12)?,
            n(12..14)?,
        )
        .map(Parsed::Local);
    }
    if b.len() >= 16
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b' ' || b[10] == b'T')
        && b[13] == b':'
    {
        let (sec, rest) = if b.len() >= 19 && b[16] == b':' {
            (digits(&b[17..19])?, &b[19..])
        } else {
            (0, &b[16..])
        };
        let local = civil(
            digits(&b[0..4])?,
            digits(&b[5..7])?,
            digits(&b[8..10])?,
            digits(&b[11..13])?,
            digits(&b[14..16])?,
            sec,
        )?;
        return match rest {
            [] => Some(Parsed::Local(local)),
            [b'Z'] | [b'z'] => Some(Parsed::Utc(local)),
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let off = (digits(&[*h1, *h2])? * 3600 + digits(&[*m1, *m2])? * 60) as i64;
                Some(Parsed::Utc(if *sign == b'+' {
                    local - off
                } else {
                    local + off
                }))
            }
            _ => None,
        };
    }
    if b.len() >= 16 && b[2] == b'/' && b[5] == b'/' && b[10] == b' ' && b[13] == b':' {
        let sec = match b.len() {
            16 => 0,
            19 if b[16] == b':' => digits(&b[17..19])?,
            _ => return None,
        };
        return civil(
            digits(&b[6..10])?,
            digits(&b[3..5])?,
            digits(&b[0..2])?,
            digits(&b[11..13])?,
            digits(&b[14..16])?,
            sec,
        )
        .map(Parsed::Local);
    }
    None
}

/// Appends RFC 3339 (seconds, the zone's offset) without going through chrono's
/// formatter: the batch `deadline` writes two per row.
pub fn push_rfc3339(out: &mut String, t: DateTime<Utc>, cal: &Calendar) {
    let utc = t.timestamp();
    let local = cal.local_seconds(t);
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    let off = local - utc;
    let two = |out: &mut String, v: i64| {
        out.push((b'0' + (v / 10) as u8) as char);
        out.push((b'0' + (v % 10) as u8) as char);
    };
    two(out, y / 100);
    two(out, y % 100);
    out.push('-');
    two(out, m as i64);
    out.push('-');
    two(out, d as i64);
    out.push('T');
    two(out, sod / 3600);
    out.push(':');
    two(out, sod % 3600 / 60);
    out.push(':');
    two(out, sod % 60);
    out.push(if off < 0 { '-' } else { '+' });
    two(out, off.abs() / 3600);
    out.push(':');
    two(out, off.abs() % 3600 / 60);
}

/// RFC 3339 in the calendar's zone, seconds precision: `2023-10-06T14:30:00+07:00`.
pub fn rfc3339(t: DateTime<Utc>, cal: &Calendar) -> String {
    cal.with_zone(t).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// `dd/MM/yyyy HH:mm` in local time, for traces and e-mails.
/// `dd/MM/yyyy HH:mm` in the calendar's zone, seconds dropped: what a reader is shown
/// in e-mails and pages.
pub fn minutes(t: DateTime<Utc>, cal: &Calendar) -> String {
    cal.local(t).format("%d/%m/%Y %H:%M").to_string()
}

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
    fn fast_formatter_agrees_with_chrono() {
        for s in [
            "2023-10-06T07:30:00Z",
            "1970-06-01T04:00:00Z",
            "2100-12-31T16:59:59Z",
            "1965-03-01T00:00:00Z",
        ] {
            let t = utc(s);
            let mut out = String::new();
            push_rfc3339(&mut out, t, cal());
            assert_eq!(out, rfc3339(t, cal()), "{s}");
        }
    }

    #[test]
    fn civil_day_arithmetic_round_trips() {
        for z in (-80_000..80_000).step_by(37) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn writes_rfc3339_with_the_zone_offset() {
        let t = utc("2023-10-06T07:30:00Z");
        assert_eq!(rfc3339(t, cal()), "2023-10-06T14:30:00+07:00");
        assert_eq!(human(t, cal()), "06/10/2023 14:30");
    }
}
