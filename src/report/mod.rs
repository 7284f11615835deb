//! The reports a province files (SPEC §9 `slawatch report`): Biểu số 06/VPCP/KSTT of
//! Thông tư 01/2020/TT-VPCP with its 13 numbered columns, Decision 766 indicator 2.1
//! per unit with its numerator and denominator, the late cases with their reasons and
//! the units ranked. [`tthc`] computes (pure: cases, the context and the instants are
//! arguments); [`render`] writes CSV, JSON, HTML and XLSX.

pub mod mail;
pub mod render;
pub mod tthc;

use crate::calendar::Calendar;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;

/// A reporting period in local dates, both ends included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportPeriod {
    /// `2026-11`, `2026-Q4`, `2026-H2`, `2026-9M`, `2026`, or `2026-11-03..2026-11-20`.
    pub label: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

impl ReportPeriod {
    /// Parses `YYYY-MM`, `YYYY-Qn`, `YYYY-Hn`, `YYYY-9M` (also `6M`, `3M`: the first
    /// months of the year), `YYYY`.
    pub fn parse(s: &str) -> Result<ReportPeriod, String> {
        let s = s.trim();
        let bad = || {
            format!(
                "period {s:?}: expected a month (2026-11), a quarter (2026-Q4), a half \
                 (2026-H2), the first months of a year (2026-9M) or a year (2026)"
            )
        };
        let (year, rest) = match s.split_once('-') {
            Some((y, r)) => (y, Some(r)),
            None => (s, None),
        };
        let year: i32 = year.parse().map_err(|_| bad())?;
        if !(2000..=2100).contains(&year) {
            return Err(bad());
        }
        let month_span = |first: u32, months: u32| -> Result<(NaiveDate, NaiveDate), String> {
            let a = NaiveDate::from_ymd_opt(year, first, 1).ok_or_else(bad)?;
            let b = a + chrono::Months::new(months) - chrono::Duration::days(1);
            Ok((a, b))
        };
        let (first_day, last_day) = match rest {
            None => month_span(1, 12)?,
            Some(r) => {
                let up = r.to_ascii_uppercase();
                if let Some(q) = up.strip_prefix('Q') {
                    let q: u32 = q.parse().map_err(|_| bad())?;
                    if !(1..=4).contains(&q) {
                        return Err(bad());
                    }
                    month_span((q - 1) * 3 + 1, 3)?
                } else if let Some(h) = up.strip_prefix('H') {
                    let h: u32 = h.parse().map_err(|_| bad())?;
                    if !(1..=2).contains(&h) {
                        return Err(bad());
                    }
                    month_span((h - 1) * 6 + 1, 6)?
                } else if let Some(m) = up.strip_suffix('M') {
                    let m: u32 = m.parse().map_err(|_| bad())?;
                    if !(1..=12).contains(&m) {
                        return Err(bad());
                    }
                    month_span(1, m)?
                } else {
                    let m: u32 = r.parse().map_err(|_| bad())?;
                    if !(1..=12).contains(&m) {
                        return Err(bad());
                    }
                    month_span(m, 1)?
                }
            }
        };
        Ok(ReportPeriod {
            label: s.to_string(),
            first_day,
            last_day,
        })
    }

    /// From one date to another, both included.
    pub fn between(from: NaiveDate, to: NaiveDate) -> Result<ReportPeriod, String> {
        if to < from {
            return Err(format!(
                "--to {} is before --from {}",
                to.format("%d/%m/%Y"),
                from.format("%d/%m/%Y")
            ));
        }
        Ok(ReportPeriod {
            label: format!("{from}..{to}"),
            first_day: from,
            last_day: to,
        })
    }

    /// The month before the one of `today`.
    pub fn previous_month(today: NaiveDate) -> ReportPeriod {
        let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).expect("valid")
            - chrono::Months::new(1);
        ReportPeriod {
            label: format!("{:04}-{:02}", first.year(), first.month()),
            first_day: first,
            last_day: first + chrono::Months::new(1) - chrono::Duration::days(1),
        }
    }

    /// The month of `today`.
    pub fn month_of(today: NaiveDate) -> ReportPeriod {
        let next = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).expect("valid")
            + chrono::Months::new(1);
        ReportPeriod::previous_month(next)
    }

    /// `[start, end)` in instants: local midnight of the first day to local midnight
    /// after the last; a period still running ends at `now` (period to date).
    pub fn bounds(&self, cal: &Calendar, now: DateTime<Utc>) -> Bounds {
        let midnight = |d: NaiveDate| cal.instant(d.and_hms_opt(0, 0, 0).expect("valid"));
        let start = midnight(self.first_day);
        let end = midnight(self.last_day + chrono::Duration::days(1));
        let running = now < end;
        Bounds {
            start,
            end: if running { now.max(start) } else { end },
            running,
        }
    }
}

/// A period's instants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub start: DateTime<Utc>,
    /// The period's end, or `now` while it runs.
    pub end: DateTime<Utc>,
    pub running: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn periods_as_provinces_name_them() {
        let p = |s: &str| {
            let r = ReportPeriod::parse(s).unwrap();
            (r.first_day, r.last_day)
        };
        assert_eq!(p("2026-11"), (d("2026-11-01"), d("2026-11-30")));
        assert_eq!(p("2024-02"), (d("2024-02-01"), d("2024-02-29")));
        assert_eq!(p("2026-Q4"), (d("2026-10-01"), d("2026-12-31")));
        assert_eq!(p("2026-q1"), (d("2026-01-01"), d("2026-03-31")));
        assert_eq!(p("2026-H2"), (d("2026-07-01"), d("2026-12-31")));
        assert_eq!(p("2026-9M"), (d("2026-01-01"), d("2026-09-30")));
        assert_eq!(p("2026"), (d("2026-01-01"), d("2026-12-31")));
        for bad in [
            "2026-13",
            "2026-Q5",
            "2026-H3",
            "2026-0M",
            "26",
            "2026-11-01",
            "x",
        ] {
            assert!(ReportPeriod::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ReportPeriod::previous_month(d("2026-01-05")).label,
            "2025-12"
        );
        assert_eq!(
            ReportPeriod::month_of(d("2026-02-10")).last_day,
            d("2026-02-28")
        );
    }

    #[test]
    fn a_running_period_ends_now() {
        let cal = Calendar::builtin();
        let p = ReportPeriod::parse("2026-12").unwrap();
        let now = crate::timefmt::parse_instant("2026-12-01 09:00", &cal)
            .unwrap()
            .unwrap();
        let b = p.bounds(&cal, now);
        assert!(b.running);
        assert_eq!(b.end, now);
        let b = ReportPeriod::parse("2026-11").unwrap().bounds(&cal, now);
        assert!(!b.running);
        // Local midnight of 01/12 is 17:00 UTC on 30/11.
        assert_eq!(b.end.to_rfc3339(), "2026-11-30T17:00:00+00:00");
    }
}
