//! Property tests: the indexed calendar arithmetic against a deliberately naive oracle
//! written here, a day-by-day walk over a plain set of days off and hand-written Hà Tĩnh
//! sessions. Instants 1990–2100, durations up to 60 workdays.

use chrono::{Datelike, Duration as Span, NaiveDate, NaiveDateTime, NaiveTime};
use proptest::prelude::*;
use slawatch::calendar::hours::OfficeHours;
use slawatch::calendar::{Calendar, CalendarSpec};
use slawatch::sla::duration::Duration;
use std::collections::HashSet;
use std::sync::OnceLock;

struct Oracle {
    cal: Calendar,
    days_off: HashSet<NaiveDate>,
}

fn oracle() -> &'static Oracle {
    static O: OnceLock<Oracle> = OnceLock::new();
    O.get_or_init(|| {
        let mut spec = CalendarSpec::builtin();
        spec.hours = OfficeHours::ha_tinh();
        let cal = Calendar::build(&spec);
        let mut days_off = HashSet::new();
        let mut d = NaiveDate::from_ymd_opt(1989, 1, 1).unwrap();
        while d.year() <= 2100 {
            if !cal.is_workday(d) {
                days_off.insert(d);
            }
            d = d.succ_opt().unwrap();
        }
        Oracle { cal, days_off }
    })
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

impl Oracle {
    fn workday(&self, d: NaiveDate) -> bool {
        !self.days_off.contains(&d)
    }

    /// Hà Tĩnh: summer 16/4–15/10, 07:00–11:30 and 14:00–17:30; otherwise 07:30–11:30
    /// and 13:30–17:30.
    fn sessions(&self, d: NaiveDate) -> Vec<(NaiveDateTime, NaiveDateTime)> {
        if !self.workday(d) {
            return Vec::new();
        }
        let md = (d.month(), d.day());
        let summer = ((4, 16)..=(10, 15)).contains(&md);
        let s = if summer {
            [(hm(7, 0), hm(11, 30)), (hm(14, 0), hm(17, 30))]
        } else {
            [(hm(7, 30), hm(11, 30)), (hm(13, 30), hm(17, 30))]
        };
        s.iter()
            .map(|(a, b)| (d.and_time(*a), d.and_time(*b)))
            .collect()
    }

    fn snap(&self, t: NaiveDateTime) -> NaiveDateTime {
        for (open, close) in self.sessions(t.date()) {
            if t < open {
                return open;
            }
            if t < close {
                return t;
            }
        }
        let mut d = t.date().succ_opt().unwrap();
        while !self.workday(d) {
            d = d.succ_opt().unwrap();
        }
        self.sessions(d)[0].0
    }

    fn add_workdays(&self, start: NaiveDateTime, n: u32) -> NaiveDateTime {
        if n == 0 {
            return self.sessions(start.date()).last().unwrap().1;
        }
        let mut d = start.date();
        let mut count = 0;
        while count < n {
            d = d.succ_opt().unwrap();
            if self.workday(d) {
                count += 1;
            }
        }
        d.and_time(start.time())
    }

    fn add_work(&self, start: NaiveDateTime, mut secs: i64) -> NaiveDateTime {
        let mut d = start.date();
        loop {
            for (open, close) in self.sessions(d) {
                let from = open.max(start);
                if from >= close {
                    continue;
                }
                let len = (close - from).num_seconds();
                if secs <= len {
                    return from + Span::seconds(secs);
                }
                secs -= len;
            }
            d = d.succ_opt().unwrap();
        }
    }

    fn work_between(&self, a: NaiveDateTime, b: NaiveDateTime) -> i64 {
        let (lo, hi, sign) = if a <= b { (a, b, 1) } else { (b, a, -1) };
        let mut total = 0;
        let mut d = lo.date();
        while d <= hi.date() {
            for (open, close) in self.sessions(d) {
                let s = open.max(lo);
                let e = close.min(hi);
                if e > s {
                    total += (e - s).num_seconds();
                }
            }
            d = d.succ_opt().unwrap();
        }
        sign * total
    }

    fn add_days(&self, start: NaiveDateTime, n: u32) -> NaiveDateTime {
        let mut d = start.date() + Span::days(n as i64);
        while !self.workday(d) {
            d = d.succ_opt().unwrap();
        }
        d.and_hms_opt(23, 59, 59).unwrap()
    }
}

fn instant() -> impl Strategy<Value = NaiveDateTime> {
    // 1990-01-01 .. 2100-09-30, to the minute.
    let from = NaiveDate::from_ymd_opt(1990, 1, 1).unwrap();
    let days = (NaiveDate::from_ymd_opt(2100, 9, 30).unwrap() - from).num_days();
    (0..days, 0..24 * 60i64).prop_map(move |(d, m)| {
        from.and_hms_opt(0, 0, 0).unwrap() + Span::days(d) + Span::minutes(m)
    })
}

fn run(
    t: NaiveDateTime,
    f: impl Fn(&Calendar, chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc>,
) -> NaiveDateTime {
    let cal = &oracle().cal;
    cal.local(f(cal, cal.instant(t)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn snap_equals_the_oracle(t in instant()) {
        let o = oracle();
        prop_assert_eq!(run(t, |c, x| c.snap(x, None).unwrap()), o.snap(t));
    }

    #[test]
    fn add_workdays_equals_the_oracle(t in instant(), n in 0u32..=60) {
        let o = oracle();
        let want = o.add_workdays(o.snap(t), n);
        prop_assert_eq!(run(t, |c, x| c.add_workdays(x, n).unwrap()), want);
        let d = Duration::workdays(n);
        prop_assert_eq!(run(t, |c, x| c.plus(x, &d).unwrap().unwrap()), want);
    }

    #[test]
    fn add_half_workdays_equals_the_oracle(t in instant(), n in 0u32..=30) {
        // Half days: n workdays, then half of the day reached (4 h in both seasons).
        let o = oracle();
        let s = o.snap(t);
        let base = if n == 0 { s } else { o.add_workdays(s, n) };
        let want = o.add_work(base, 4 * 3600);
        let d = Duration::Workdays { halves: 2 * n + 1 };
        prop_assert_eq!(run(t, |c, x| c.plus(x, &d).unwrap().unwrap()), want);
    }

    #[test]
    fn add_workhours_equals_the_oracle(t in instant(), minutes in 1u32..=(200 * 60)) {
        let o = oracle();
        let want = o.add_work(o.snap(t), minutes as i64 * 60);
        let d = Duration::Workhours { seconds: minutes * 60 };
        prop_assert_eq!(run(t, |c, x| c.plus(x, &d).unwrap().unwrap()), want);
    }

    #[test]
    fn add_days_equals_the_oracle(t in instant(), n in 0u32..=90) {
        let o = oracle();
        let want = o.add_days(o.snap(t), n);
        let d = Duration::Days(n);
        prop_assert_eq!(run(t, |c, x| c.plus(x, &d).unwrap().unwrap()), want);
    }

    #[test]
    fn work_between_equals_the_oracle(a in instant(), gap_minutes in -(90 * 24 * 60i64)..(90 * 24 * 60i64)) {
        let o = oracle();
        let b = a + Span::minutes(gap_minutes);
        let cal = &o.cal;
        let got = cal.work_between(cal.instant(a), cal.instant(b)).unwrap();
        prop_assert_eq!(got, o.work_between(a, b));
    }

    #[test]
    fn add_is_monotonic(t in instant(), step in 0i64..(10 * 24 * 60), n in 0u32..=60, m in 0u32..=60) {
        let cal = &oracle().cal;
        let (a, b) = (cal.instant(t), cal.instant(t + Span::minutes(step)));
        prop_assert!(cal.add_workdays(a, n).unwrap() <= cal.add_workdays(b, n).unwrap());
        let (lo, hi) = (n.min(m), n.max(m));
        prop_assert!(cal.add_workdays(a, lo).unwrap() <= cal.add_workdays(a, hi).unwrap());
        let (h1, h2) = (Duration::Workhours { seconds: lo * 1800 }, Duration::Workhours { seconds: hi * 1800 });
        prop_assert!(cal.plus(a, &h1).unwrap() <= cal.plus(a, &h2).unwrap());
        prop_assert!(cal.plus(a, &h1).unwrap() <= cal.plus(b, &h1).unwrap());
    }

    #[test]
    fn add_then_measure_round_trips(t in instant(), minutes in 0u32..=(300 * 60), k in 1u32..=40) {
        let cal = &oracle().cal;
        let x = cal.instant(t);
        let start = cal.snap(x, None).unwrap();
        // Working time from the start to start + h is h.
        let due = cal.add_work_seconds(x, minutes as i64 * 60).unwrap();
        prop_assert_eq!(cal.work_between(start, due).unwrap(), minutes as i64 * 60);
        // A due that is k workdays behind `now = due + k workdays` is k workdays overdue.
        let now = cal.add_workdays(start, k).unwrap();
        prop_assert_eq!(cal.overdue_workdays(start, now).unwrap(), k);
        prop_assert_eq!(cal.overdue_workdays(start, now - chrono::Duration::seconds(1)).unwrap(), k - 1);
    }
}
