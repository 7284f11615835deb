//! Office hours: the sessions of a working day, optionally by season and by weekday.
//!
//! Sessions are half-open `[open, close)` intervals of local time of day. A season is a
//! recurring range of month-days (it may wrap over the new year); the season declared
//! last wins where two overlap, so a season can be laid "on top" of the whole year.
//! A make-up Saturday gets the ordinary sessions of its season, never a weekday
//! override.

use chrono::{Datelike, NaiveDate, Weekday};
use std::fmt;

/// One session, in seconds after local midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Session {
    pub open: u32,
    pub close: u32,
}

/// The sessions of one day, sorted and disjoint, never empty.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DaySessions(Vec<Session>);

/// A recurring date range (month-day to month-day, both inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeasonRange {
    pub from: (u32, u32),
    pub to: (u32, u32),
}

/// Sessions that apply within a season.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Season {
    pub name: String,
    pub range: SeasonRange,
    pub sessions: DaySessions,
    /// Per-weekday sessions within this season (e.g. a shorter Friday).
    pub weekdays: Vec<(Weekday, DaySessions)>,
}

/// The office hours of the whole calendar.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OfficeHours {
    pub default: DaySessions,
    pub weekdays: Vec<(Weekday, DaySessions)>,
    pub seasons: Vec<Season>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HoursError {
    #[error("`{0}` is not a time of day (expected HH:MM)")]
    BadTime(String),
    #[error("`{0}` is not a session (expected HH:MM-HH:MM)")]
    BadSession(String),
    #[error("session `{0}` closes before it opens")]
    Empty(String),
    #[error("sessions `{0}` overlap or are out of order")]
    Overlap(String),
    #[error("no session given")]
    NoSession,
    #[error("`{0}` is not a season range (expected MM-DD..MM-DD)")]
    BadRange(String),
}

/// Parses `HH:MM` (or `HH:MM:SS`, or `24:00`) into seconds after midnight.
pub fn parse_time_of_day(s: &str) -> Result<u32, HoursError> {
    let bad = || HoursError::BadTime(s.to_string());
    let mut parts = s.trim().split(':');
    let h: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let m: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let sec: u32 = match parts.next() {
        Some(p) => p.parse().map_err(|_| bad())?,
        None => 0,
    };
    if parts.next().is_some() || m > 59 || sec > 59 || h > 24 || (h == 24 && (m, sec) != (0, 0)) {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60 + sec)
}

fn format_tod(secs: u32) -> String {
    if secs % 60 == 0 {
        format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
    } else {
        format!(
            "{:02}:{:02}:{:02}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    }
}

impl DaySessions {
    pub fn new(mut sessions: Vec<Session>, text: &str) -> Result<Self, HoursError> {
        if sessions.is_empty() {
            return Err(HoursError::NoSession);
        }
        sessions.sort_by_key(|s| s.open);
        if sessions.windows(2).any(|w| w[1].open < w[0].close) {
            return Err(HoursError::Overlap(text.to_string()));
        }
        Ok(DaySessions(sessions))
    }

    /// Parses `07:30-11:30,13:30-17:30` (an en dash is accepted too).
    pub fn parse(text: &str) -> Result<Self, HoursError> {
        let mut sessions = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let norm = part.replace('–', "-");
            let (a, b) = norm
                .split_once('-')
                .ok_or_else(|| HoursError::BadSession(part.to_string()))?;
            let open = parse_time_of_day(a)?;
            let close = parse_time_of_day(b)?;
            if close <= open {
                return Err(HoursError::Empty(part.to_string()));
            }
            sessions.push(Session { open, close });
        }
        Self::new(sessions, text)
    }

    pub fn sessions(&self) -> &[Session] {
        &self.0
    }

    /// Total session time of the day, in seconds.
    pub fn total(&self) -> u32 {
        self.0.iter().map(|s| s.close - s.open).sum()
    }

    pub fn first_open(&self) -> u32 {
        self.0[0].open
    }

    pub fn last_close(&self) -> u32 {
        self.0[self.0.len() - 1].close
    }
}

impl fmt::Display for DaySessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}-{}", format_tod(s.open), format_tod(s.close))?;
        }
        Ok(())
    }
}

impl SeasonRange {
    /// Parses `04-16..10-15`.
    pub fn parse(text: &str) -> Result<Self, HoursError> {
        let bad = || HoursError::BadRange(text.to_string());
        let (a, b) = text.trim().split_once("..").ok_or_else(bad)?;
        let md = |s: &str| -> Result<(u32, u32), HoursError> {
            let (m, d) = s.trim().split_once('-').ok_or_else(bad)?;
            let m: u32 = m.parse().map_err(|_| bad())?;
            let d: u32 = d.parse().map_err(|_| bad())?;
            // 2000 is a leap year, so 02-29 is accepted.
            NaiveDate::from_ymd_opt(2000, m, d).ok_or_else(bad)?;
            Ok((m, d))
        };
        Ok(SeasonRange {
            from: md(a)?,
            to: md(b)?,
        })
    }

    pub fn contains(&self, date: NaiveDate) -> bool {
        let md = (date.month(), date.day());
        if self.from <= self.to {
            self.from <= md && md <= self.to
        } else {
            md >= self.from || md <= self.to
        }
    }
}

impl fmt::Display for SeasonRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}-{:02}..{:02}-{:02}",
            self.from.0, self.from.1, self.to.0, self.to.1
        )
    }
}

impl Default for OfficeHours {
    /// The built-in default: `07:30–11:30, 13:30–17:30` all year (8 h).
    fn default() -> Self {
        OfficeHours {
            default: DaySessions::parse("07:30-11:30,13:30-17:30").expect("valid built-in hours"),
            weekdays: Vec::new(),
            seasons: Vec::new(),
        }
    }
}

impl OfficeHours {
    /// The Hà Tĩnh profile: summer (16/4–15/10) 07:00–11:30, 14:00–17:30; winter
    /// 07:30–11:30, 13:30–17:30.
    pub fn ha_tinh() -> Self {
        let mut hours = OfficeHours::default();
        hours.seasons.push(Season {
            name: "summer".into(),
            range: SeasonRange::parse("04-16..10-15").expect("valid range"),
            sessions: DaySessions::parse("07:00-11:30,14:00-17:30").expect("valid hours"),
            weekdays: Vec::new(),
        });
        hours
    }

    /// Applies one `--hours` argument: `SESSIONS` replaces the whole-year sessions,
    /// `MM-DD..MM-DD=SESSIONS` adds a season on top.
    pub fn apply_override(&mut self, spec: &str) -> Result<(), HoursError> {
        match spec.split_once('=') {
            Some((range, sessions)) => {
                let range = SeasonRange::parse(range)?;
                self.seasons.push(Season {
                    name: range.to_string(),
                    range,
                    sessions: DaySessions::parse(sessions)?,
                    weekdays: Vec::new(),
                });
            }
            None => {
                self.default = DaySessions::parse(spec)?;
                self.weekdays.clear();
                self.seasons.clear();
            }
        }
        Ok(())
    }

    /// The sessions of a working day. `make_up` days get their season's ordinary
    /// sessions, whatever their weekday.
    pub fn for_day(&self, date: NaiveDate, make_up: bool) -> &DaySessions {
        fn pick<'a>(
            base: &'a DaySessions,
            by_day: &'a [(Weekday, DaySessions)],
            weekday: Weekday,
            make_up: bool,
        ) -> &'a DaySessions {
            if make_up {
                return base;
            }
            by_day
                .iter()
                .find(|(w, _)| *w == weekday)
                .map(|(_, s)| s)
                .unwrap_or(base)
        }
        let weekday = date.weekday();
        match self.seasons.iter().rev().find(|s| s.range.contains(date)) {
            Some(season) => pick(&season.sessions, &season.weekdays, weekday, make_up),
            None => pick(&self.default, &self.weekdays, weekday, make_up),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn parses_sessions_and_totals_them() {
        let s = DaySessions::parse("07:30-11:30, 13:30–17:30").unwrap();
        assert_eq!(s.total(), 8 * 3600);
        assert_eq!(s.first_open(), 7 * 3600 + 1800);
        assert_eq!(s.last_close(), 17 * 3600 + 1800);
        assert_eq!(s.to_string(), "07:30-11:30,13:30-17:30");
    }

    #[test]
    fn rejects_bad_sessions() {
        assert!(matches!(
            DaySessions::parse("07:30"),
            Err(HoursError::BadSession(_))
        ));
        assert!(matches!(
            DaySessions::parse("11:30-07:30"),
            Err(HoursError::Empty(_))
        ));
        assert!(matches!(
            DaySessions::parse("07:30-12:00,11:30-17:00"),
            Err(HoursError::Overlap(_))
        ));
        assert!(matches!(
            DaySessions::parse("25:00-26:00"),
            Err(HoursError::BadTime(_))
        ));
        assert_eq!(DaySessions::parse(""), Err(HoursError::NoSession));
    }

    #[test]
    fn ha_tinh_seasons_switch_on_16_april_and_16_october() {
        let h = OfficeHours::ha_tinh();
        assert_eq!(
            h.for_day(d(2024, 4, 15), false).to_string(),
            "07:30-11:30,13:30-17:30"
        );
        assert_eq!(
            h.for_day(d(2024, 4, 16), false).to_string(),
            "07:00-11:30,14:00-17:30"
        );
        assert_eq!(
            h.for_day(d(2024, 10, 15), false).to_string(),
            "07:00-11:30,14:00-17:30"
        );
        assert_eq!(
            h.for_day(d(2024, 10, 16), false).to_string(),
            "07:30-11:30,13:30-17:30"
        );
        // Both seasons are 8 hours.
        assert_eq!(h.for_day(d(2024, 7, 1), false).total(), 8 * 3600);
    }

    #[test]
    fn wrapping_season_covers_the_new_year() {
        let r = SeasonRange::parse("10-16..04-15").unwrap();
        assert!(r.contains(d(2024, 12, 31)));
        assert!(r.contains(d(2025, 1, 1)));
        assert!(r.contains(d(2025, 4, 15)));
        assert!(!r.contains(d(2025, 4, 16)));
        assert!(!r.contains(d(2025, 10, 15)));
    }

    #[test]
    fn override_replaces_year_then_adds_season_on_top() {
        let mut h = OfficeHours::ha_tinh();
        h.apply_override("07:30-11:30,13:30-17:00").unwrap();
        assert!(h.seasons.is_empty());
        h.apply_override("04-16..10-15=07:00-11:30,14:00-17:30")
            .unwrap();
        assert_eq!(h.for_day(d(2025, 1, 6), false).total(), 7 * 3600 + 1800);
        assert_eq!(h.for_day(d(2025, 6, 2), false).total(), 8 * 3600);
    }

    #[test]
    fn make_up_saturday_gets_ordinary_sessions() {
        let mut h = OfficeHours::default();
        h.weekdays
            .push((Weekday::Sat, DaySessions::parse("07:30-11:30").unwrap()));
        // 2024-05-04 is a Saturday.
        assert_eq!(h.for_day(d(2024, 5, 4), true).total(), 8 * 3600);
        assert_eq!(h.for_day(d(2024, 5, 4), false).total(), 4 * 3600);
    }
}
