//! Generated days off for years without official data (SPEC §3): the Labor Code 2019
//! Art. 112 holidays, with Art. 111.3 compensation as the yearly announcements apply it.
//!
//! - Tết: giao thừa and lunar 1/1–1/4; a Saturday one is taken on the previous free
//!   weekday, a Sunday (or other rest-day) one on the next.
//! - 1/1, Giỗ Tổ (lunar 10/3), 30/4, 1/5, National Day (2/9 and one adjacent day by
//!   2/9's weekday): a rest-day one is taken on the next free weekday.
//! - 24/11, Ngày Văn hóa Việt Nam (Nghị quyết 28/2026/QH16, from 2026, switchable): on
//!   a rest day it is *not* taken on another day unless `culture_day_weekend_substitute`
//!   says so — the law does not settle it (first such year: 2029, a Saturday).
//! - Holidays on weekdays are placed first, then the taken days in date order.
//!
//! Swaps (hoán đổi) are never generated: they exist only as dated data.

use super::lunar;
use chrono::{Datelike, Days, NaiveDate, Weekday};
use std::collections::BTreeMap;

/// What the generator needs to know.
#[derive(Clone, Copy, Debug)]
pub struct GenerateOptions {
    /// Weekly rest days, indexed by `Weekday::num_days_from_monday`.
    pub rest_days: [bool; 7],
    /// Generate 24/11 (Ngày Văn hóa Việt Nam) for years from 2026.
    pub culture_day: bool,
    /// Take a 24/11 that falls on a rest day on the next free weekday.
    pub culture_day_weekend_substitute: bool,
}

/// First year in which 24/11 is generated.
pub const CULTURE_DAY_FROM: i32 = 2026;

/// One generated day off. Weekend days that are holidays themselves are listed too,
/// so the calendar can name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedDay {
    pub date: NaiveDate,
    pub name: String,
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// The adjacent National Day holiday: Mon→3/9, Tue→1/9, Wed→1/9, Thu→3/9, Fri→1/9,
/// Sat→1/9, Sun→3/9.
fn national_day_companion(year: i32) -> NaiveDate {
    match ymd(year, 9, 2).weekday() {
        Weekday::Mon | Weekday::Thu | Weekday::Sun => ymd(year, 9, 3),
        _ => ymd(year, 9, 1),
    }
}

/// All days off of `year` under the generation rule, in date order.
pub fn generate_year(year: i32, opts: GenerateOptions) -> Vec<GeneratedDay> {
    let is_rest = |d: NaiveDate| opts.rest_days[d.weekday().num_days_from_monday() as usize];
    // (date, name, is Tết, taken on another day when on a rest day)
    let mut holidays: Vec<(NaiveDate, &str, bool, bool)> = Vec::new();
    let tet = lunar::tet(year);
    let eve = tet.pred_opt().expect("valid date");
    holidays.push((eve, "Tết Nguyên đán", true, true));
    for i in 0..4 {
        holidays.push((tet + Days::new(i), "Tết Nguyên đán", true, true));
    }
    holidays.push((ymd(year, 1, 1), "Tết Dương lịch", false, true));
    holidays.push((lunar::hung_kings(year), "Giỗ Tổ Hùng Vương", false, true));
    holidays.push((ymd(year, 4, 30), "Ngày Chiến thắng 30/4", false, true));
    holidays.push((ymd(year, 5, 1), "Ngày Quốc tế Lao động", false, true));
    holidays.push((ymd(year, 9, 2), "Quốc khánh", false, true));
    holidays.push((national_day_companion(year), "Quốc khánh", false, true));
    if opts.culture_day && year >= CULTURE_DAY_FROM {
        holidays.push((
            ymd(year, 11, 24),
            "Ngày Văn hóa Việt Nam",
            false,
            opts.culture_day_weekend_substitute,
        ));
    }
    holidays.sort_by_key(|h| h.0);
    holidays.dedup_by_key(|h| h.0);

    let mut off: BTreeMap<NaiveDate, String> = BTreeMap::new();
    for (date, name, ..) in &holidays {
        off.insert(*date, name.to_string());
    }
    // Weekday holidays are already placed; now the taken (compensation) days.
    for (date, name, is_tet, _) in holidays.iter().filter(|h| is_rest(h.0) && h.3) {
        let backwards = *is_tet && date.weekday() == Weekday::Sat;
        let mut d = *date;
        loop {
            d = if backwards {
                d.pred_opt().expect("valid date")
            } else {
                d.succ_opt().expect("valid date")
            };
            if !is_rest(d) && !off.contains_key(&d) {
                break;
            }
        }
        off.insert(d, format!("{name} (nghỉ bù)"));
    }
    off.into_iter()
        .map(|(date, name)| GeneratedDay { date, name })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: GenerateOptions = GenerateOptions {
        rest_days: [false, false, false, false, false, true, true],
        culture_day: true,
        culture_day_weekend_substitute: false,
    };

    /// Weekday days off only (what the announcements list completely).
    fn weekday_days_off(year: i32) -> Vec<String> {
        generate_year(year, OPTS)
            .into_iter()
            .filter(|g| g.date.weekday().num_days_from_monday() < 5)
            .map(|g| g.date.format("%m-%d").to_string())
            .collect()
    }

    #[test]
    fn tet_2024_saturday_goes_back_sunday_goes_forward() {
        // Tết Sat 10/2/2024: eve Fri 9, Sat 10 → Thu 8, Sun 11 → (12, 13 taken) Wed 14.
        let days = weekday_days_off(2024);
        assert!(days.starts_with(
            &["01-01", "02-08", "02-09", "02-12", "02-13", "02-14"].map(String::from)
        ));
    }

    #[test]
    fn tet_2025_saturday_goes_back_to_monday() {
        // Tết Wed 29/1/2025: eve Tue 28, 29, 30, 31, Sat 1/2 → back past 28 to Mon 27.
        let days = weekday_days_off(2025);
        assert_eq!(
            &days[..6],
            ["01-01", "01-27", "01-28", "01-29", "01-30", "01-31"]
        );
    }

    #[test]
    fn year_2023_places_weekday_holidays_first() {
        // Giỗ Tổ Sat 29/4 and 30/4 Sun with 1/5 Mon → Mon 1/5, Tue 2/5, Wed 3/5.
        // 2/9 Sat → companion Fri 1/9, and 2/9 taken on Mon 4/9. 1/1 Sun → Mon 2/1.
        // Tết Sun 22/1: eve Sat 21 → Fri 20; Sun 22 → Thu 26 (23–25 are Tết).
        assert_eq!(
            weekday_days_off(2023),
            [
                "01-02", "01-20", "01-23", "01-24", "01-25", "01-26", "05-01", "05-02", "05-03",
                "09-01", "09-04"
            ]
        );
    }

    #[test]
    fn national_day_companion_follows_the_weekday_table() {
        // 2/9: 2024 Mon, 2025 Tue, 2026 Wed, 2021 Thu, 2022 Fri, 2023 Sat, 2029 Sun.
        let c = |y| national_day_companion(y).format("%d/%m").to_string();
        assert_eq!(c(2024), "03/09");
        assert_eq!(c(2025), "01/09");
        assert_eq!(c(2026), "01/09");
        assert_eq!(c(2021), "03/09");
        assert_eq!(c(2022), "01/09");
        assert_eq!(c(2023), "01/09");
        assert_eq!(c(2029), "03/09");
    }

    #[test]
    fn sunday_national_day_takes_monday_and_tuesday() {
        // 2029: 2/9 is a Sunday → companion Mon 3/9, and 2/9 taken on Tue 4/9.
        let days = weekday_days_off(2029);
        assert!(days.contains(&"09-03".to_string()));
        assert!(days.contains(&"09-04".to_string()));
    }

    #[test]
    fn culture_day_is_switchable_and_starts_in_2026() {
        assert!(weekday_days_off(2026).contains(&"11-24".to_string()));
        assert!(!weekday_days_off(2025).contains(&"11-24".to_string()));
        let off = GenerateOptions {
            culture_day: false,
            ..OPTS
        };
        assert!(!generate_year(2027, off)
            .iter()
            .any(|g| g.date == ymd(2027, 11, 24)));
    }

    #[test]
    fn culture_day_on_a_weekend_is_taken_only_when_configured() {
        // 24/11: 2026 Tue, 2027 Wed, 2028 Fri (leap year), 2029 Sat, the first on a
        // weekend. Not substituted by default: the Saturday is listed, Monday 26/11 works.
        assert_eq!(ymd(2029, 11, 24).weekday(), Weekday::Sat);
        let days = generate_year(2029, OPTS);
        assert!(days.iter().any(|g| g.date == ymd(2029, 11, 24)));
        assert!(!days.iter().any(|g| g.date == ymd(2029, 11, 26)));
        // With the setting: taken on Monday 26/11.
        let sub = GenerateOptions {
            culture_day_weekend_substitute: true,
            ..OPTS
        };
        let days = generate_year(2029, sub);
        assert!(days
            .iter()
            .any(|g| g.date == ymd(2029, 11, 26) && g.name.contains("nghỉ bù")));
        // A weekday 24/11 (2027: Wednesday) is the same either way.
        assert_eq!(generate_year(2027, OPTS), generate_year(2027, sub));
    }

    #[test]
    fn weekend_holidays_are_named_too() {
        let days = generate_year(2024, OPTS);
        assert!(days
            .iter()
            .any(|g| g.date == ymd(2024, 2, 10) && g.name == "Tết Nguyên đán"));
    }
}
