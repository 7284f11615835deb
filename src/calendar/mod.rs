//! The working calendar (SPEC §3, contract): which days are workdays, which hours of
//! them are office sessions, and arithmetic in working time.
//!
//! A [`Calendar`] is built once from a [`CalendarSpec`] (dated rows, generation
//! options, office hours, zone) into flat per-day tables covering 1901–2100:
//! the kind of each day, the session profile of each workday, the number of workdays
//! before each day and the session seconds before each day. With those, "add N
//! workdays" is two array reads and "working time between two instants" is two
//! lookups, whatever the distance; "add N working hours" is one binary search.
//!
//! All arithmetic happens in *local seconds* (seconds since 1970-01-01 00:00 local
//! civil time); instants come in and go out as UTC. Nothing here reads the clock or
//! a file.

pub mod data;
pub mod generate;
pub mod hours;
pub mod lunar;

use crate::sla::duration::Duration;
use chrono::{
    DateTime, Datelike, Duration as ChronoDuration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;
use data::{DayRow, RowKind};
use generate::{generate_year, GenerateOptions};
use hours::{OfficeHours, Session};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

/// First year the tables cover.
pub const FIRST_YEAR: i32 = 1901;
/// Last year the tables cover.
pub const LAST_YEAR: i32 = 2100;

const DAY: i64 = 86_400;

/// The shipped official days off, compiled in as the built-in default.
pub const SHIPPED_OFFICIAL_DAYS: &str = include_str!("../../config/calendar/vn-official-days.csv");

/// Everything a calendar is built from.
#[derive(Clone, Debug)]
pub struct CalendarSpec {
    /// Shown in versions, e.g. `vn-official`.
    pub name: String,
    pub zone: Tz,
    /// Weekly rest days, indexed by `Weekday::num_days_from_monday`.
    pub rest_days: [bool; 7],
    /// Generate 24/11 for generated years from 2026.
    pub culture_day: bool,
    /// Take a 24/11 on a rest day on the next workday (estimated years).
    pub culture_day_weekend_substitute: bool,
    /// The official rows (the shipped file): the years they touch are official.
    pub official: Vec<DayRow>,
    /// The operator's rows: each replaces whatever its date was.
    pub operator: Vec<DayRow>,
    /// Years the operator declares complete (official without shipped data).
    pub complete_years: Vec<i32>,
    pub hours: OfficeHours,
}

impl CalendarSpec {
    /// The built-in calendar: shipped official days, Saturday and Sunday off,
    /// `07:30–11:30, 13:30–17:30`, `Asia/Ho_Chi_Minh`.
    pub fn builtin() -> Self {
        CalendarSpec {
            name: "vn-official".into(),
            zone: chrono_tz::Asia::Ho_Chi_Minh,
            rest_days: [false, false, false, false, false, true, true],
            culture_day: true,
            culture_day_weekend_substitute: false,
            official: data::parse_rows(SHIPPED_OFFICIAL_DAYS, "vn-official-days.csv")
                .expect("the shipped calendar parses"),
            operator: Vec::new(),
            complete_years: Vec::new(),
            hours: OfficeHours::default(),
        }
    }
}

/// What a day is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DayKind {
    Workday = 0,
    /// A weekly rest day.
    Rest = 1,
    /// A day off (holiday, compensation day, swap).
    Holiday = 2,
    /// A rest day declared a working day (làm bù).
    MakeUp = 3,
}

impl DayKind {
    pub fn is_workday(self) -> bool {
        matches!(self, DayKind::Workday | DayKind::MakeUp)
    }
}

/// Where a listed day comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Dated data: the shipped announcements or the operator's rows.
    Official,
    /// The generation rule of an estimated year.
    Generated,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Official => "official",
            Origin::Generated => "generated",
        }
    }
}

/// A named day of the calendar: a holiday or a make-up workday.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayEntry {
    pub date: NaiveDate,
    pub kind: RowKind,
    pub name: String,
    pub origin: Origin,
    pub unconfirmed: bool,
    /// Set when the operator's rows decided this date.
    pub operator: bool,
}

/// What makes a span of days an estimate (see [`Calendar::estimate_in`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimate {
    /// A year with no official data: its days off are generated.
    Year(i32),
    /// A row marked `unconfirmed` (announced, its notice not yet out).
    Unconfirmed(NaiveDate),
}

/// Identifies the exact calendar a result was computed with: its name and a hash
/// of its content (days, sessions, zone).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct CalendarVersion {
    pub name: String,
    pub hash: String,
}

impl fmt::Display for CalendarVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.hash)
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CalendarError {
    #[error("{0} is outside the calendar's range ({FIRST_YEAR}–{LAST_YEAR})")]
    OutOfRange(String),
}

/// A run of days off with names (a break), for traces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub names: Vec<String>,
}

#[derive(Clone, Debug)]
struct Profile {
    sessions: Vec<Session>,
    total: u32,
}

/// UTC offsets over the covered range, as segments starting at a UTC instant.
#[derive(Clone, Debug)]
struct Offsets {
    /// `(first UTC second, offset seconds)`, sorted; the first starts at `i64::MIN`.
    segments: Vec<(i64, i64)>,
}

impl Offsets {
    fn build(zone: Tz, from_utc: i64, to_utc: i64) -> Self {
        let offset_at = |utc: i64| -> i64 {
            let dt = DateTime::from_timestamp(utc, 0)
                .expect("in range")
                .naive_utc();
            zone.offset_from_utc_datetime(&dt).fix().local_minus_utc() as i64
        };
        let mut segments = vec![(i64::MIN, offset_at(from_utc))];
        let mut t = from_utc;
        let mut current = segments[0].1;
        while t < to_utc {
            let next = t + DAY;
            let o = offset_at(next);
            if o != current {
                // The change happened in (t, next]: find its first second.
                let (mut lo, mut hi) = (t, next);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if offset_at(mid) == current {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                segments.push((hi, o));
                current = o;
            }
            t = next;
        }
        Offsets { segments }
    }

    #[inline]
    fn to_local(&self, utc: i64) -> i64 {
        for &(start, off) in self.segments.iter().rev() {
            if utc >= start {
                return utc + off;
            }
        }
        utc + self.segments[0].1
    }

    /// Local civil seconds to UTC. A time that exists twice takes the later offset's
    /// reading; one skipped by a forward jump is read with the offset before the jump.
    #[inline]
    fn to_utc(&self, local: i64) -> i64 {
        let n = self.segments.len();
        for i in (0..n).rev() {
            let (start, off) = self.segments[i];
            let cand = local - off;
            let end = if i + 1 < n {
                self.segments[i + 1].0
            } else {
                i64::MAX
            };
            if cand >= start && cand < end {
                return cand;
            }
        }
        let guess = local - self.segments[0].1;
        local - (self.to_local(guess) - guess)
    }
}

/// The built working calendar. Cheap to share (`Arc`), immutable.
#[derive(Clone, Debug)]
pub struct Calendar {
    zone: Tz,
    version: Arc<CalendarVersion>,
    /// Days since 1970-01-01 of the first covered day.
    first_day: i64,
    kinds: Vec<DayKind>,
    /// Profile index of each day (meaningful on workdays).
    profile_of: Vec<u16>,
    profiles: Vec<Profile>,
    /// Workdays strictly before day `i` (length `days + 1`).
    wd_before: Vec<u32>,
    /// Session seconds strictly before day `i` (length `days + 1`).
    work_before: Vec<i64>,
    /// Day index of each workday, in order.
    workdays: Vec<u32>,
    offsets: Offsets,
    entries: BTreeMap<NaiveDate, DayEntry>,
    official_years: BTreeSet<i32>,
    unconfirmed: Vec<DayRow>,
    hours: OfficeHours,
    rest_days: [bool; 7],
}

fn epoch_days(date: NaiveDate) -> i64 {
    date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid"))
        .num_days()
}

fn date_of_epoch_day(days: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid") + ChronoDuration::days(days)
}

impl Calendar {
    /// Builds the tables. Layers per SPEC §3: for an official year the weekly rule and
    /// the official rows; for an estimated year the generated days; then the
    /// operator's rows on top, each replacing whatever its date was. Within one layer
    /// a make-up day beats the weekly rest rule and a holiday beats everything.
    pub fn build(spec: &CalendarSpec) -> Calendar {
        let first = NaiveDate::from_ymd_opt(FIRST_YEAR, 1, 1).expect("valid");
        let last = NaiveDate::from_ymd_opt(LAST_YEAR, 12, 31).expect("valid");
        let first_day = epoch_days(first);
        let n = (epoch_days(last) - first_day + 1) as usize;
        let index = |d: NaiveDate| (epoch_days(d) - first_day) as usize;

        let mut official_years: BTreeSet<i32> =
            spec.official.iter().map(|r| r.date.year()).collect();
        official_years.extend(spec.complete_years.iter().copied());
        official_years.retain(|y| (FIRST_YEAR..=LAST_YEAR).contains(y));

        let mut kinds: Vec<DayKind> = (0..n)
            .map(|i| {
                let wd = date_of_epoch_day(first_day + i as i64).weekday();
                if spec.rest_days[wd.num_days_from_monday() as usize] {
                    DayKind::Rest
                } else {
                    DayKind::Workday
                }
            })
            .collect();
        let rest_kind = |d: NaiveDate| {
            if spec.rest_days[d.weekday().num_days_from_monday() as usize] {
                DayKind::Rest
            } else {
                DayKind::Workday
            }
        };
        let mut entries: BTreeMap<NaiveDate, DayEntry> = BTreeMap::new();

        // Layer 1 and 2: generated days for estimated years, official rows otherwise.
        let gen_opts = GenerateOptions {
            rest_days: spec.rest_days,
            culture_day: spec.culture_day,
            culture_day_weekend_substitute: spec.culture_day_weekend_substitute,
        };
        for year in FIRST_YEAR..=LAST_YEAR {
            if official_years.contains(&year) {
                continue;
            }
            for g in generate_year(year, gen_opts) {
                if g.date > last {
                    continue;
                }
                kinds[index(g.date)] = DayKind::Holiday;
                entries.insert(
                    g.date,
                    DayEntry {
                        date: g.date,
                        kind: RowKind::Holiday,
                        name: g.name,
                        origin: Origin::Generated,
                        unconfirmed: false,
                        operator: false,
                    },
                );
            }
        }
        let apply_layer = |rows: &[DayRow],
                           operator: bool,
                           kinds: &mut Vec<DayKind>,
                           entries: &mut BTreeMap<NaiveDate, DayEntry>| {
            // Holidays after workdays, so a holiday beats a make-up day on the same date.
            let mut sorted: Vec<&DayRow> = rows
                .iter()
                .filter(|r| (first..=last).contains(&r.date))
                .collect();
            sorted.sort_by_key(|r| (r.date, r.kind == RowKind::Holiday));
            let mut seen = HashMap::new();
            for r in sorted {
                let i = index(r.date);
                if operator && seen.insert(r.date, ()).is_none() {
                    // An operator row replaces whatever the date was.
                    kinds[i] = rest_kind(r.date);
                    entries.remove(&r.date);
                }
                kinds[i] = match r.kind {
                    RowKind::Holiday => DayKind::Holiday,
                    RowKind::Workday => {
                        if rest_kind(r.date) == DayKind::Rest {
                            DayKind::MakeUp
                        } else {
                            DayKind::Workday
                        }
                    }
                };
                let listed = r.kind == RowKind::Holiday || kinds[i] == DayKind::MakeUp;
                if listed {
                    entries.insert(
                        r.date,
                        DayEntry {
                            date: r.date,
                            kind: r.kind,
                            name: r.name.clone(),
                            origin: Origin::Official,
                            unconfirmed: r.unconfirmed,
                            operator,
                        },
                    );
                } else {
                    entries.remove(&r.date);
                }
            }
        };
        let official_rows: Vec<DayRow> = spec
            .official
            .iter()
            .filter(|r| official_years.contains(&r.date.year()))
            .cloned()
            .collect();
        apply_layer(&official_rows, false, &mut kinds, &mut entries);
        apply_layer(&spec.operator, true, &mut kinds, &mut entries);

        // Session profiles, deduplicated.
        let mut profiles: Vec<Profile> = Vec::new();
        let mut profile_ids: HashMap<Vec<Session>, u16> = HashMap::new();
        let mut profile_of = vec![0u16; n];
        let mut wd_before = Vec::with_capacity(n + 1);
        let mut work_before = Vec::with_capacity(n + 1);
        let mut workdays = Vec::new();
        let (mut wd, mut work) = (0u32, 0i64);
        for i in 0..n {
            wd_before.push(wd);
            work_before.push(work);
            if kinds[i].is_workday() {
                let date = date_of_epoch_day(first_day + i as i64);
                let sessions = spec.hours.for_day(date, kinds[i] == DayKind::MakeUp);
                let key = sessions.sessions().to_vec();
                let id = *profile_ids.entry(key.clone()).or_insert_with(|| {
                    profiles.push(Profile {
                        total: sessions.total(),
                        sessions: key,
                    });
                    (profiles.len() - 1) as u16
                });
                profile_of[i] = id;
                workdays.push(i as u32);
                wd += 1;
                work += profiles[id as usize].total as i64;
            }
        }
        wd_before.push(wd);
        work_before.push(work);

        let offsets = Offsets::build(
            spec.zone,
            (first_day - 2) * DAY,
            (first_day + n as i64 + 2) * DAY,
        );

        let mut hasher = Sha256::new();
        hasher.update(spec.zone.name().as_bytes());
        hasher.update(kinds.iter().map(|k| *k as u8).collect::<Vec<u8>>());
        for (i, p) in profile_of.iter().enumerate() {
            if kinds[i].is_workday() {
                hasher.update(p.to_le_bytes());
            }
        }
        for p in &profiles {
            for s in &p.sessions {
                hasher.update(s.open.to_le_bytes());
                hasher.update(s.close.to_le_bytes());
            }
            hasher.update([0xff]);
        }
        let digest = hasher.finalize();
        let hash: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();

        let mut unconfirmed: Vec<DayRow> = official_rows
            .iter()
            .chain(spec.operator.iter())
            .filter(|r| r.unconfirmed)
            .cloned()
            .collect();
        unconfirmed.sort_by_key(|r| r.date);

        Calendar {
            zone: spec.zone,
            version: Arc::new(CalendarVersion {
                name: spec.name.clone(),
                hash,
            }),
            first_day,
            kinds,
            profile_of,
            profiles,
            wd_before,
            work_before,
            workdays,
            offsets,
            entries,
            official_years,
            unconfirmed,
            hours: spec.hours.clone(),
            rest_days: spec.rest_days,
        }
    }

    /// The built-in calendar (see [`CalendarSpec::builtin`]).
    pub fn builtin() -> Calendar {
        Calendar::build(&CalendarSpec::builtin())
    }

    pub fn version(&self) -> &Arc<CalendarVersion> {
        &self.version
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    pub fn hours(&self) -> &OfficeHours {
        &self.hours
    }

    pub fn rest_days(&self) -> [bool; 7] {
        self.rest_days
    }

    // ----- conversions ---------------------------------------------------------------

    /// Local civil time of an instant.
    pub fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        let l = self.offsets.to_local(t.timestamp());
        DateTime::from_timestamp(l, 0)
            .expect("in range")
            .naive_utc()
    }

    /// The instant of a local civil time.
    pub fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let l = local.and_utc().timestamp();
        DateTime::from_timestamp(self.offsets.to_utc(l), 0).expect("in range")
    }

    /// Local civil seconds since 1970-01-01 00:00 (local) of an instant.
    #[inline]
    pub fn local_seconds(&self, t: DateTime<Utc>) -> i64 {
        self.offsets.to_local(t.timestamp())
    }

    /// The instant of local civil seconds since 1970-01-01 00:00 (local).
    #[inline]
    pub fn instant_of_local_seconds(&self, local: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.offsets.to_utc(local), 0)
    }

    /// The zone's offset at an instant, for RFC 3339 output.
    pub fn with_zone(&self, t: DateTime<Utc>) -> DateTime<chrono::FixedOffset> {
        let off = self.offsets.to_local(t.timestamp()) - t.timestamp();
        t.with_timezone(&chrono::FixedOffset::east_opt(off as i32).expect("valid offset"))
    }

    #[inline]
    fn local_secs(&self, t: DateTime<Utc>) -> i64 {
        self.offsets.to_local(t.timestamp())
    }

    #[inline]
    fn instant_of_local(&self, l: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(self.offsets.to_utc(l), 0).expect("in range")
    }

    #[inline]
    fn split(&self, local: i64) -> Result<(usize, u32), CalendarError> {
        let day = local.div_euclid(DAY) - self.first_day;
        if day < 0 || day as usize >= self.kinds.len() {
            return Err(self.out_of_range(local));
        }
        Ok((day as usize, local.rem_euclid(DAY) as u32))
    }

    fn out_of_range(&self, local: i64) -> CalendarError {
        CalendarError::OutOfRange(
            DateTime::from_timestamp(local, 0)
                .map(|d| d.naive_utc().to_string())
                .unwrap_or_else(|| format!("{local}s")),
        )
    }

    fn day_index(&self, date: NaiveDate) -> Option<usize> {
        let i = epoch_days(date) - self.first_day;
        (i >= 0 && (i as usize) < self.kinds.len()).then_some(i as usize)
    }

    fn day_start(&self, day: usize) -> i64 {
        (self.first_day + day as i64) * DAY
    }

    fn date_of(&self, day: usize) -> NaiveDate {
        date_of_epoch_day(self.first_day + day as i64)
    }

    // ----- day queries ---------------------------------------------------------------

    /// The kind of a date; dates outside the range follow the weekly rule.
    pub fn day_kind(&self, date: NaiveDate) -> DayKind {
        match self.day_index(date) {
            Some(i) => self.kinds[i],
            None if self.rest_days[date.weekday().num_days_from_monday() as usize] => DayKind::Rest,
            None => DayKind::Workday,
        }
    }

    pub fn is_workday(&self, date: NaiveDate) -> bool {
        self.day_kind(date).is_workday()
    }

    /// Whether the offices are open at `t`: a workday (make-up Saturdays included),
    /// inside one of its sessions `[open, close)`.
    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        let local = self.local(t);
        let sod = chrono::Timelike::num_seconds_from_midnight(&local.time());
        self.sessions(local.date())
            .iter()
            .any(|s| s.open <= sod && sod < s.close)
    }

    /// The office sessions of a date (empty on a day off).
    pub fn sessions(&self, date: NaiveDate) -> &[Session] {
        match self.day_index(date) {
            Some(i) if self.kinds[i].is_workday() => {
                &self.profiles[self.profile_of[i] as usize].sessions
            }
            _ => &[],
        }
    }

    /// The named day, if the calendar lists one for this date.
    pub fn entry(&self, date: NaiveDate) -> Option<&DayEntry> {
        self.entries.get(&date)
    }

    /// Holidays and make-up workdays of a year, in date order.
    pub fn entries_in_year(&self, year: i32) -> impl Iterator<Item = &DayEntry> {
        let from = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid");
        let to = NaiveDate::from_ymd_opt(year, 12, 31).expect("valid");
        self.entries.range(from..=to).map(|(_, e)| e)
    }

    /// Number of workdays in a year.
    pub fn workdays_in_year(&self, year: i32) -> Option<u32> {
        let from = self.day_index(NaiveDate::from_ymd_opt(year, 1, 1)?)?;
        let to = self.day_index(NaiveDate::from_ymd_opt(year, 12, 31)?)?;
        Some(self.wd_before[to + 1] - self.wd_before[from])
    }

    /// Whether a year has official (dated) data, as opposed to an estimated one.
    pub fn year_is_official(&self, year: i32) -> bool {
        self.official_years.contains(&year)
    }

    /// The last day of the last official year of the unbroken run of official years
    /// that starts at the first official year.
    pub fn official_until(&self) -> Option<NaiveDate> {
        let mut years = self.official_years.iter();
        let mut last = *years.next()?;
        for &y in years {
            if y != last + 1 {
                break;
            }
            last = y;
        }
        NaiveDate::from_ymd_opt(last, 12, 31)
    }

    /// Rows marked `unconfirmed` that the calendar uses (for a start-up warning).
    pub fn unconfirmed_rows(&self) -> &[DayRow] {
        &self.unconfirmed
    }

    /// Why days `from..=to` rest on estimated data, if they do: the first year among
    /// them without official data, else the first `unconfirmed` row among them.
    pub fn estimate_in(&self, from: NaiveDate, to: NaiveDate) -> Option<Estimate> {
        if from > to {
            return None;
        }
        if let Some(y) = (from.year()..=to.year()).find(|y| !self.official_years.contains(y)) {
            return Some(Estimate::Year(y));
        }
        let i = self.unconfirmed.partition_point(|r| r.date < from);
        self.unconfirmed
            .get(i)
            .filter(|r| r.date <= to)
            .map(|r| Estimate::Unconfirmed(r.date))
    }

    /// Runs of days off between two dates (inclusive) that hold a named holiday,
    /// spanning the first to the last named day of the run. Plain weekends are left out.
    pub fn breaks_between(&self, from: NaiveDate, to: NaiveDate) -> Vec<Break> {
        let mut out: Vec<Break> = Vec::new();
        let mut current: Option<Break> = None;
        let mut d = from;
        while d <= to {
            let kind = self.day_kind(d);
            if kind.is_workday() {
                if let Some(b) = current.take() {
                    out.push(b);
                }
            } else if let Some(e) = self.entries.get(&d).filter(|e| e.kind == RowKind::Holiday) {
                let name = e.name.split(" (").next().unwrap_or(&e.name).to_string();
                let b = current.get_or_insert_with(|| Break {
                    from: d,
                    to: d,
                    names: Vec::new(),
                });
                b.to = d;
                if !b.names.contains(&name) {
                    b.names.push(name);
                }
            }
            d = match d.succ_opt() {
                Some(n) => n,
                None => break,
            };
        }
        out.extend(current);
        out
    }

    /// Make-up workdays between two dates (inclusive).
    pub fn make_up_days_between(&self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        self.entries
            .range(from..=to)
            .filter(|(d, e)| e.kind == RowKind::Workday && self.day_kind(**d) == DayKind::MakeUp)
            .map(|(d, _)| *d)
            .collect()
    }

    // ----- arithmetic in local seconds -------------------------------------------------

    /// First workday with index ≥ `day`.
    #[inline]
    fn workday_at_or_after(&self, day: usize) -> Result<usize, CalendarError> {
        let k = self.wd_before[day] as usize;
        self.workdays
            .get(k)
            .map(|&d| d as usize)
            .ok_or_else(|| self.out_of_range(self.day_start(day)))
    }

    #[inline]
    fn profile(&self, day: usize) -> &Profile {
        &self.profiles[self.profile_of[day] as usize]
    }

    #[inline]
    fn first_open_of(&self, day: usize) -> i64 {
        self.day_start(day) + self.profile(day).sessions[0].open as i64
    }

    /// SPEC §4.1 snap, with an optional cut-off (seconds after midnight).
    #[inline]
    fn snap_local(&self, local: i64, cutoff: Option<u32>) -> Result<i64, CalendarError> {
        let (day, sod) = self.split(local)?;
        if self.kinds[day].is_workday() && cutoff.is_none_or(|c| sod < c) {
            for s in &self.profile(day).sessions {
                if sod < s.open {
                    return Ok(self.day_start(day) + s.open as i64);
                }
                if sod < s.close {
                    return Ok(local);
                }
            }
        }
        let next = self.workday_at_or_after(day + 1)?;
        Ok(self.first_open_of(next))
    }

    /// Same time of day as `start`, on the n-th workday after start's date (n ≥ 1).
    #[inline]
    fn add_workdays_local(&self, start: i64, n: u32) -> Result<i64, CalendarError> {
        let (day, sod) = self.split(start)?;
        let k = self.wd_before[day + 1] as usize + n as usize - 1;
        match self.workdays.get(k) {
            Some(&target) => Ok(self.day_start(target as usize) + sod as i64),
            None => Err(self.out_of_range(start)),
        }
    }

    /// Close of the last session of `start`'s day (or of the next workday).
    fn end_of_work_day(&self, start: i64) -> Result<i64, CalendarError> {
        let (day, _) = self.split(start)?;
        let day = self.workday_at_or_after(day)?;
        let p = self.profile(day);
        Ok(self.day_start(day) + p.sessions[p.sessions.len() - 1].close as i64)
    }

    /// Session seconds from the start of the tables to a local instant.
    #[inline]
    fn cum_work(&self, local: i64) -> Result<i64, CalendarError> {
        let (day, sod) = self.split(local)?;
        let mut w = self.work_before[day];
        if self.kinds[day].is_workday() {
            for s in &self.profile(day).sessions {
                if sod <= s.open {
                    break;
                }
                w += (sod.min(s.close) - s.open) as i64;
            }
        }
        Ok(w)
    }

    /// The earliest local instant at which `cum_work` reaches `target` (> 0): a target
    /// that is reached exactly at a session's close stays at that close.
    fn at_cum_work(&self, target: i64) -> Result<i64, CalendarError> {
        let p = self.work_before.partition_point(|&w| w < target);
        if p == 0 || p >= self.work_before.len() {
            return Err(CalendarError::OutOfRange(format!(
                "{target} working seconds"
            )));
        }
        let day = p - 1;
        let mut remaining = target - self.work_before[day];
        for s in &self.profile(day).sessions {
            let len = (s.close - s.open) as i64;
            if remaining <= len {
                return Ok(self.day_start(day) + s.open as i64 + remaining);
            }
            remaining -= len;
        }
        unreachable!("work_before is consistent with the profiles")
    }

    fn add_local(&self, start: i64, d: &Duration) -> Result<Option<i64>, CalendarError> {
        Ok(Some(match *d {
            Duration::None => return Ok(None),
            Duration::Workdays { halves } => {
                let whole = halves / 2;
                let base = if whole == 0 {
                    if halves == 0 {
                        return self.end_of_work_day(start).map(Some);
                    }
                    start
                } else {
                    self.add_workdays_local(start, whole)?
                };
                if halves % 2 == 1 {
                    let (day, _) = self.split(base)?;
                    let day = self.workday_at_or_after(day)?;
                    let half = self.profile(day).total as i64 / 2;
                    self.at_cum_work(self.cum_work(base)? + half)?
                } else {
                    base
                }
            }
            Duration::Workhours { seconds } => {
                if seconds == 0 {
                    start
                } else {
                    self.at_cum_work(self.cum_work(start)? + seconds as i64)?
                }
            }
            Duration::Days(n) => {
                let (day, _) = self.split(start)?;
                self.end_of_calendar_day(day + n as usize)?
            }
            Duration::Months(n) => {
                let (day, _) = self.split(start)?;
                let date = self
                    .date_of(day)
                    .checked_add_months(chrono::Months::new(n))
                    .ok_or_else(|| self.out_of_range(start))?;
                let target = self
                    .day_index(date)
                    .ok_or_else(|| self.out_of_range(start))?;
                self.end_of_calendar_day(target)?
            }
        }))
    }

    /// 23:59:59 of `day`, or of the next workday when `day` is not one.
    fn end_of_calendar_day(&self, day: usize) -> Result<i64, CalendarError> {
        if day >= self.kinds.len() {
            return Err(CalendarError::OutOfRange(format!("day {day}")));
        }
        let day = self.workday_at_or_after(day)?;
        Ok(self.day_start(day) + DAY - 1)
    }

    // ----- public arithmetic ---------------------------------------------------------

    /// SPEC §4.1: the effective start of a receipt (or of a resumption).
    pub fn snap(
        &self,
        t: DateTime<Utc>,
        cutoff: Option<u32>,
    ) -> Result<DateTime<Utc>, CalendarError> {
        Ok(self.instant_of_local(self.snap_local(self.local_secs(t), cutoff)?))
    }

    /// SPEC §4.2: the due of a duration counted from an effective `start` (already
    /// snapped). `None` for a duration of `none`.
    pub fn add(
        &self,
        start: DateTime<Utc>,
        d: &Duration,
    ) -> Result<Option<DateTime<Utc>>, CalendarError> {
        Ok(self
            .add_local(self.local_secs(start), d)?
            .map(|l| self.instant_of_local(l)))
    }

    /// `X + d` as the SPEC uses it everywhere: snap X (no cut-off), then add `d`.
    pub fn plus(
        &self,
        x: DateTime<Utc>,
        d: &Duration,
    ) -> Result<Option<DateTime<Utc>>, CalendarError> {
        let start = self.snap_local(self.local_secs(x), None)?;
        Ok(self.add_local(start, d)?.map(|l| self.instant_of_local(l)))
    }

    /// `X + n workdays` (snap, then n workdays; n = 0 is the close of the day).
    #[inline]
    pub fn add_workdays(&self, x: DateTime<Utc>, n: u32) -> Result<DateTime<Utc>, CalendarError> {
        let start = self.snap_local(self.local_secs(x), None)?;
        let due = if n == 0 {
            self.end_of_work_day(start)?
        } else {
            self.add_workdays_local(start, n)?
        };
        Ok(self.instant_of_local(due))
    }

    /// `X + n working seconds` (snap, then count session time forward).
    pub fn add_work_seconds(
        &self,
        x: DateTime<Utc>,
        secs: i64,
    ) -> Result<DateTime<Utc>, CalendarError> {
        let start = self.snap_local(self.local_secs(x), None)?;
        if secs <= 0 {
            return Ok(self.instant_of_local(start));
        }
        Ok(self.instant_of_local(self.at_cum_work(self.cum_work(start)? + secs)?))
    }

    /// Session time between two instants, in seconds (negative when `b < a`).
    #[inline]
    pub fn work_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Result<i64, CalendarError> {
        Ok(self.cum_work(self.local_secs(b))? - self.cum_work(self.local_secs(a))?)
    }

    /// Overdue age (SPEC §4.5): the largest k ≥ 1 with `due + k workdays ≤ now`, else 0.
    pub fn overdue_workdays(
        &self,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u32, CalendarError> {
        if now <= due {
            return Ok(0);
        }
        let s = self.snap_local(self.local_secs(due), None)?;
        let (ds, sod) = self.split(s)?;
        let (dn, sn) = self.split(self.local_secs(now))?;
        let base = self.wd_before[ds + 1] as i64;
        let mut k = self.wd_before[dn + 1] as i64 - base;
        if k > 0 && self.workdays[(base + k - 1) as usize] as usize == dn && sn < sod {
            k -= 1;
        }
        Ok(k.max(0) as u32)
    }
}

#[cfg(test)]
mod tests;
