//! The Vietnamese lunar calendar, computed astronomically for the UTC+7 meridian.
//!
//! This follows Hồ Ngọc Đức's published method: new moons and the sun's longitude
//! from truncated series (Meeus), month 11 as the month holding the winter solstice,
//! and a leap month where a lunar month holds no major solar term. The meridian is
//! what makes it Vietnamese: a Chinese-calendar library (UTC+8) is wrong in some
//! years (Tết 1985 is 21 Jan here, 20 Feb there). Valid 1901–2100;
//! the series lose accuracy far outside that range.
//!
//! Pure functions, no tables: every year costs a handful of trigonometric sums.

use chrono::{Days, NaiveDate};
use std::f64::consts::PI;

/// Vietnam's meridian, in hours east of Greenwich.
const TIME_ZONE: f64 = 7.0;
/// Mean length of a synodic month, in days.
const SYNODIC_MONTH: f64 = 29.530588853;
/// Julian day number of 1970-01-01.
const JDN_UNIX_EPOCH: i64 = 2_440_588;

/// Julian day number of a Gregorian date.
pub fn julian_day_number(date: NaiveDate) -> i64 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    JDN_UNIX_EPOCH + (date - epoch).num_days()
}

fn date_from_jdn(jdn: i64) -> NaiveDate {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let offset = jdn - JDN_UNIX_EPOCH;
    if offset >= 0 {
        epoch + Days::new(offset as u64)
    } else {
        epoch - Days::new((-offset) as u64)
    }
}

/// Julian date (with fraction, UT) of the k-th new moon after 1900-01-01.
fn new_moon(k: i64) -> f64 {
    let k = k as f64;
    let t = k / 1236.85;
    let t2 = t * t;
    let t3 = t2 * t;
    let dr = PI / 180.0;
    let mut jd1 = 2_415_020.759_33 + 29.530_588_68 * k + 0.000_117_8 * t2 - 0.000_000_155 * t3;
    jd1 += 0.000_33 * ((166.56 + 132.87 * t - 0.009_173 * t2) * dr).sin();
    let m = 359.2242 + 29.105_356_08 * k - 0.000_033_3 * t2 - 0.000_003_47 * t3;
    let mpr = 306.0253 + 385.816_918_06 * k + 0.010_730_6 * t2 + 0.000_012_36 * t3;
    let f = 21.2964 + 390.670_506_46 * k - 0.001_652_8 * t2 - 0.000_002_39 * t3;
    let c1 = (0.1734 - 0.000_393 * t) * (m * dr).sin() + 0.0021 * (2.0 * dr * m).sin()
        - 0.4068 * (mpr * dr).sin()
        + 0.0161 * (dr * 2.0 * mpr).sin()
        - 0.0004 * (dr * 3.0 * mpr).sin()
        + 0.0104 * (dr * 2.0 * f).sin()
        - 0.0051 * (dr * (m + mpr)).sin()
        - 0.0074 * (dr * (m - mpr)).sin()
        + 0.0004 * (dr * (2.0 * f + m)).sin()
        - 0.0004 * (dr * (2.0 * f - m)).sin()
        - 0.0006 * (dr * (2.0 * f + mpr)).sin()
        + 0.0010 * (dr * (2.0 * f - mpr)).sin()
        + 0.0005 * (dr * (2.0 * mpr + m)).sin();
    let delta_t = if t < -11.0 {
        0.001 + 0.000_839 * t + 0.000_226_1 * t2 - 0.000_008_45 * t3 - 0.000_000_081 * t * t3
    } else {
        -0.000_278 + 0.000_265 * t + 0.000_262 * t2
    };
    jd1 + c1 - delta_t
}

/// Julian day number (local civil day) on which the k-th new moon falls.
fn new_moon_day(k: i64) -> i64 {
    (new_moon(k) + 0.5 + TIME_ZONE / 24.0).floor() as i64
}

/// The sun's apparent longitude, in radians in [0, 2π), at a Julian date (UT).
fn sun_longitude(jd: f64) -> f64 {
    let t = (jd - 2_451_545.0) / 36_525.0;
    let t2 = t * t;
    let dr = PI / 180.0;
    let m = 357.529_10 + 35_999.050_30 * t - 0.000_155_9 * t2 - 0.000_000_48 * t * t2;
    let l0 = 280.466_45 + 36_000.769_83 * t + 0.000_303_2 * t2;
    let mut dl = (1.914_600 - 0.004_817 * t - 0.000_014 * t2) * (dr * m).sin();
    dl += (0.019_993 - 0.000_101 * t) * (dr * 2.0 * m).sin() + 0.000_290 * (dr * 3.0 * m).sin();
    let l = (l0 + dl) * dr;
    l - 2.0 * PI * (l / (2.0 * PI)).floor()
}

/// Which of the 12 major solar terms (0..12, 30° each) the sun is in at the
/// start of a local civil day.
fn solar_term_at_day_start(jdn: i64) -> i64 {
    (sun_longitude(jdn as f64 - 0.5 - TIME_ZONE / 24.0) / PI * 6.0).floor() as i64
}

/// Julian day number of the first day of lunar month 11 (the month holding the
/// winter solstice) that begins in Gregorian year `year`.
fn lunar_month_11(year: i32) -> i64 {
    let dec31 = NaiveDate::from_ymd_opt(year, 12, 31).expect("valid date");
    let off = julian_day_number(dec31) - 2_415_021;
    let k = (off as f64 / SYNODIC_MONTH).floor() as i64;
    let nm = new_moon_day(k);
    if solar_term_at_day_start(nm) >= 9 {
        new_moon_day(k - 1)
    } else {
        nm
    }
}

/// Index (1-based, counted from month 11) of the leap month in the lunar year
/// that starts with month 11 at `a11`.
fn leap_month_offset(a11: i64) -> i64 {
    let k = ((a11 as f64 - 2_415_021.076_998_695) / SYNODIC_MONTH + 0.5).floor() as i64;
    let mut i = 1;
    let mut arc = solar_term_at_day_start(new_moon_day(k + i));
    loop {
        let last = arc;
        i += 1;
        arc = solar_term_at_day_start(new_moon_day(k + i));
        if arc == last || i >= 14 {
            break;
        }
    }
    i - 1
}

/// The Gregorian date of a (non-leap) lunar day `day`/`month` in lunar year `year`.
///
/// `year` is the lunar year that begins (with Tết) in Gregorian year `year`.
pub fn lunar_to_solar(day: u32, month: u32, year: i32) -> NaiveDate {
    debug_assert!((1..=30).contains(&day) && (1..=12).contains(&month));
    let (a11, b11) = if month < 11 {
        (lunar_month_11(year - 1), lunar_month_11(year))
    } else {
        (lunar_month_11(year), lunar_month_11(year + 1))
    };
    let k = (0.5 + (a11 as f64 - 2_415_021.076_998_695) / SYNODIC_MONTH).floor() as i64;
    let mut off = month as i64 - 11;
    if off < 0 {
        off += 12;
    }
    if b11 - a11 > 365 {
        let leap_off = leap_month_offset(a11);
        if off >= leap_off {
            off += 1;
        }
    }
    date_from_jdn(new_moon_day(k + off) + day as i64 - 1)
}

/// Tết Nguyên đán: lunar 1/1 of the lunar year starting in `year`.
pub fn tet(year: i32) -> NaiveDate {
    lunar_to_solar(1, 1, year)
}

/// Giỗ Tổ Hùng Vương: lunar 10/3.
pub fn hung_kings(year: i32) -> NaiveDate {
    lunar_to_solar(10, 3, year)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// The independent table (python-holidays' Vietnamese lunar data), every year.
    #[test]
    fn matches_the_independent_table_1901_2100() {
        let table = include_str!("../../tests/fixtures/vn-lunar-tet-hungkings.csv");
        let mut checked = 0;
        for line in table.lines().skip(1) {
            let cols: Vec<&str> = line.split(',').collect();
            let year: i32 = cols[0].parse().unwrap();
            assert_eq!(tet(year), d(cols[1]), "Tết {year}");
            assert_eq!(hung_kings(year), d(cols[2]), "Hùng Kings {year}");
            checked += 1;
        }
        assert_eq!(checked, 200);
    }

    // Years where the UTC+7 meridian gives another day than the Chinese (UTC+8) calendar.
    #[test]
    fn tet_1985_is_21_january_in_vietnam() {
        assert_eq!(tet(1985), d("1985-01-21"));
    }

    #[test]
    fn tet_2007_is_17_february_in_vietnam() {
        assert_eq!(tet(2007), d("2007-02-17"));
    }

    #[test]
    fn tet_2030_is_2_february_in_vietnam() {
        assert_eq!(tet(2030), d("2030-02-02"));
    }

    #[test]
    fn hung_kings_1917_is_1_april() {
        assert_eq!(hung_kings(1917), d("1917-04-01"));
    }

    #[test]
    fn hung_kings_2037_is_24_april() {
        assert_eq!(hung_kings(2037), d("2037-04-24"));
    }

    #[test]
    fn hung_kings_2038_is_13_april() {
        assert_eq!(hung_kings(2038), d("2038-04-13"));
    }

    #[test]
    fn recent_years_match_the_announcements() {
        // Tết dates named in the official notices (DOMAIN.md §5.2).
        assert_eq!(tet(2024), d("2024-02-10"));
        assert_eq!(tet(2025), d("2025-01-29"));
        assert_eq!(tet(2026), d("2026-02-17"));
        assert_eq!(hung_kings(2026), d("2026-04-26"));
        assert_eq!(hung_kings(2023), d("2023-04-29"));
    }
}
