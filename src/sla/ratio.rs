//! Decision 766 indicator 2.1, the on-time ratio (SPEC §4.7, contract), and the
//! reporting periods it is computed over.
//!
//! Population for a period P: cases accepted before P's end that ended in P or were
//! still open at P's end (withdrawals of accepted cases and terminal stops end a case
//! like a finish; refusals at intake never enter). On time ⇔
//! `end − completed supplement time (wall clock) ≤ due_at_original`, where `end` is the
//! finish, P's end for a case still open, or the request time for a case waiting on its
//! first supplement; more than one request is late. For the running period P's end is
//! `now`.

use super::engine::{legal_duration, lifecycle_of, supplement_intervals, Lifecycle};
use super::model::{status, Case};
use super::policy::Policy;
use crate::calendar::{Calendar, CalendarError};
use crate::catalogue::Procedure;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;

/// Month, quarter or year.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    Month,
    Quarter,
    Year,
}

impl PeriodKind {
    pub const ALL: [PeriodKind; 3] = [PeriodKind::Month, PeriodKind::Quarter, PeriodKind::Year];

    pub fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Month => "month",
            PeriodKind::Quarter => "quarter",
            PeriodKind::Year => "year",
        }
    }
}

/// A reporting period in local time: `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    pub kind: PeriodKind,
    /// `2024-02`, `2024-Q1`, `2024`.
    pub label: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    /// The period of `kind` that contains the instant `t` (local time).
    pub fn containing(kind: PeriodKind, t: DateTime<Utc>, cal: &Calendar) -> Period {
        let d = cal.local(t).date();
        let (first, next, label) = match kind {
            PeriodKind::Month => {
                let first = NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("valid");
                let next = first + chrono::Months::new(1);
                (first, next, format!("{:04}-{:02}", d.year(), d.month()))
            }
            PeriodKind::Quarter => {
                let q = (d.month() - 1) / 3;
                let first = NaiveDate::from_ymd_opt(d.year(), q * 3 + 1, 1).expect("valid");
                (
                    first,
                    first + chrono::Months::new(3),
                    format!("{:04}-Q{}", d.year(), q + 1),
                )
            }
            PeriodKind::Year => {
                let first = NaiveDate::from_ymd_opt(d.year(), 1, 1).expect("valid");
                (
                    first,
                    first + chrono::Months::new(12),
                    format!("{:04}", d.year()),
                )
            }
        };
        let midnight = |d: NaiveDate| cal.instant(d.and_hms_opt(0, 0, 0).expect("valid"));
        Period {
            kind,
            label,
            start: midnight(first),
            end: midnight(next),
        }
    }

    /// The period so far: its end is `now` when `now` falls inside it.
    pub fn to_date(mut self, now: DateTime<Utc>) -> Period {
        if now < self.end {
            self.end = now.max(self.start);
        }
        self
    }
}

/// How one case stands in indicator 2.1 for a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Judgement {
    pub on_time: bool,
    /// The end used, after subtracting completed supplement time.
    pub effective_end: DateTime<Utc>,
    /// The due judged against: `due_at_original`, else the catalogue's due from the
    /// receipt.
    pub due: DateTime<Utc>,
}

/// Judges one case for a period `[start, end)`; `None` when it is not in the
/// population (or has no due and no catalogue duration).
pub fn judge(
    case: &Case,
    procedure: Option<&Procedure>,
    cal: &Calendar,
    policy: &Policy,
    period_start: DateTime<Utc>,
    period_end: DateTime<Utc>,
) -> Result<Option<Judgement>, CalendarError> {
    let Some(received) = case.received_at else {
        return Ok(None);
    };
    if received >= period_end || case.status == status::SUBMITTED {
        return Ok(None);
    }
    let rules = policy.rules_for(Some(cal.local(received).date()));
    let (lifecycle, end) = lifecycle_of(case, rules);
    if lifecycle == Lifecycle::RefusedAtIntake {
        return Ok(None);
    }
    if end.is_some_and(|e| e < period_start) {
        return Ok(None);
    }
    let cut = match end {
        Some(e) if e < period_end => e,
        _ => period_end,
    };
    let due = match case.original_due() {
        Some(d) => d,
        None => match legal_duration(case, procedure) {
            Some(d) => {
                let start = cal.snap(received, rules.receipt_cutoff)?;
                match cal.add(start, &d)? {
                    Some(due) => due,
                    None => return Ok(None),
                }
            }
            None => return Ok(None),
        },
    };
    let requests: Vec<_> = supplement_intervals(case)
        .into_iter()
        .filter(|(req, _)| *req <= cut)
        .collect();
    let effective_end = match requests.as_slice() {
        [] => cut,
        [(req, resumed)] if resumed.is_none_or(|r| r > cut) => *req,
        _ => {
            let completed: chrono::Duration = requests
                .iter()
                .filter_map(|(req, res)| res.filter(|r| *r <= cut).map(|r| r - *req))
                .sum();
            cut - completed
        }
    };
    Ok(Some(Judgement {
        on_time: requests.len() <= 1 && effective_end <= due,
        effective_end,
        due,
    }))
}

/// Indicator 2.1 of one case as it stands at `until` (an ended case: for good, with
/// `until` at or after its end); `None` outside the population or without a due.
pub fn on_time_until(
    case: &Case,
    procedure: Option<&Procedure>,
    cal: &Calendar,
    policy: &Policy,
    until: DateTime<Utc>,
) -> Option<bool> {
    judge(
        case,
        procedure,
        cal,
        policy,
        DateTime::<Utc>::MIN_UTC,
        until,
    )
    .ok()
    .flatten()
    .map(|j| j.on_time)
}

/// On-time count and population.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ratio {
    pub on_time: u64,
    pub population: u64,
}

impl Ratio {
    pub fn add(&mut self, j: Option<Judgement>) {
        if let Some(j) = j {
            self.population += 1;
            self.on_time += j.on_time as u64;
        }
    }

    /// The ratio, or `None` for an empty population.
    pub fn value(&self) -> Option<f64> {
        (self.population > 0).then(|| self.on_time as f64 / self.population as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::model::{StatusChange, Supplement};
    use crate::timefmt::parse_instant;
    use std::sync::OnceLock;

    fn cal() -> &'static Calendar {
        static CAL: OnceLock<Calendar> = OnceLock::new();
        CAL.get_or_init(Calendar::builtin)
    }

    fn t(s: &str) -> DateTime<Utc> {
        parse_instant(s, cal()).unwrap().unwrap()
    }

    #[test]
    fn periods_in_local_time() {
        let p = Period::containing(PeriodKind::Quarter, t("2024-02-15 10:00"), cal());
        assert_eq!(p.label, "2024-Q1");
        assert_eq!(p.start, t("2024-01-01 00:00"));
        assert_eq!(p.end, t("2024-04-01 00:00"));
        // 23:30 local on 31/01 is 16:30 UTC: still January here.
        let m = Period::containing(PeriodKind::Month, t("2024-01-31 23:30"), cal());
        assert_eq!(m.label, "2024-01");
        let y = Period::containing(PeriodKind::Year, t("2024-12-31 23:59"), cal());
        assert_eq!((y.label.as_str(), y.end), ("2024", t("2025-01-01 00:00")));
        let so_far = m.to_date(t("2024-01-20 10:00"));
        assert_eq!(so_far.end, t("2024-01-20 10:00"));
    }

    fn base(id: &str, received: &str, due: &str) -> Case {
        Case {
            case_id: id.into(),
            status: 4,
            received_at: Some(t(received)),
            due_at: Some(t(due)),
            due_at_original: Some(t(due)),
            ..Case::default()
        }
    }

    fn finish(mut c: Case, at: &str) -> Case {
        c.status = 10;
        c.finished_at = Some(t(at));
        c
    }

    fn supp(mut c: Case, req: &str, res: Option<&str>) -> Case {
        c.supplements.push(Supplement {
            requested_at: t(req),
            resumed_at: res.map(t),
            due_before: None,
            due_after: None,
        });
        c
    }

    /// February 2024 (P = [01/02 00:00, 01/03 00:00)), worked by hand:
    ///
    /// | case | what happened | in P? | on time? |
    /// |---|---|---|---|
    /// | A | due 20/02, finished 19/02 | yes | yes |
    /// | B | due 20/02 10:00, finished 20/02 10:01 | yes | no |
    /// | C | due 10/02, finished 30/01 | no: ended before P | – |
    /// | D | due 26/02, open at P's end | yes, end = 01/03 | no |
    /// | E | due 15/03, open at P's end | yes | yes |
    /// | F | due 20/02; supplement 12/02 09:00 → 16/02 09:00 (4 d); finished 23/02 09:00 → 19/02 09:00 | yes | yes |
    /// | G | due 20/02; two supplements; finished 19/02 | yes | no |
    /// | H | due 20/02; waiting since 15/02 on its first supplement | yes, end = 15/02 | yes |
    /// | I | received 05/03 | no: after P | – |
    /// | J | refused at intake | no | – |
    /// | K | withdrawn 25/02 after acceptance, due 20/02 | yes, ends like a finish | no |
    /// | L | finished 05/03 (after P), due 10/02 | yes, open at P's end | no |
    /// | M | no due; catalogue 3 workdays from Mon 05/02 07:30 → 06, 07, (Tết 08–14) 15/02 07:30; finished 07/02 | yes | yes |
    /// | N | no due, no catalogue | no | – |
    ///
    /// Population A, B, D, E, F, G, H, K, L, M = 10; on time A, E, F, H, M = 5 → 0.5.
    #[test]
    fn february_2024_worked_by_hand() {
        let mut cases = vec![
            finish(
                base("A", "2024-02-01 08:00", "2024-02-20 10:00"),
                "2024-02-19 10:00",
            ),
            finish(
                base("B", "2024-02-01 08:00", "2024-02-20 10:00"),
                "2024-02-20 10:01",
            ),
            finish(
                base("C", "2024-01-15 08:00", "2024-02-10 10:00"),
                "2024-01-30 10:00",
            ),
            base("D", "2024-02-01 08:00", "2024-02-26 10:00"),
            base("E", "2024-02-01 08:00", "2024-03-15 10:00"),
            finish(
                supp(
                    base("F", "2024-02-01 08:00", "2024-02-20 10:00"),
                    "2024-02-12 09:00",
                    Some("2024-02-16 09:00"),
                ),
                "2024-02-23 09:00",
            ),
            finish(
                supp(
                    supp(
                        base("G", "2024-02-01 08:00", "2024-02-20 10:00"),
                        "2024-02-05 09:00",
                        Some("2024-02-06 09:00"),
                    ),
                    "2024-02-07 09:00",
                    Some("2024-02-07 10:00"),
                ),
                "2024-02-19 10:00",
            ),
            {
                let mut h = supp(
                    base("H", "2024-02-01 08:00", "2024-02-20 10:00"),
                    "2024-02-15 09:00",
                    None,
                );
                h.status = 5;
                h
            },
            base("I", "2024-03-05 08:00", "2024-03-20 10:00"),
            Case {
                case_id: "J".into(),
                status: 3,
                refused_at: Some(t("2024-02-05 09:00")),
                ..Case::default()
            },
            {
                let mut k = base("K", "2024-02-01 08:00", "2024-02-20 10:00");
                k.status = 7;
                k.status_history.push(StatusChange {
                    at: t("2024-02-25 09:00"),
                    status: 7,
                    approximate: false,
                });
                k
            },
            finish(
                base("L", "2024-01-20 08:00", "2024-02-10 10:00"),
                "2024-03-05 10:00",
            ),
            {
                let mut m = finish(
                    base("M", "2024-02-05 07:30", "2024-02-05 07:30"),
                    "2024-02-07 10:00",
                );
                m.due_at = None;
                m.due_at_original = None;
                m.procedure_code = Some("P3".into());
                m
            },
            {
                let mut n = base("N", "2024-02-05 07:30", "2024-02-05 07:30");
                n.due_at = None;
                n.due_at_original = None;
                n
            },
        ];
        cases.sort_by(|a, b| a.case_id.cmp(&b.case_id));
        let p3 = Procedure {
            code: "P3".into(),
            name: String::new(),
            field: None,
            kind: None,
            duration: "3 workdays".parse().unwrap(),
            online_duration: None,
            steps: Vec::new(),
        };
        let period = Period::containing(PeriodKind::Month, t("2024-02-10 10:00"), cal());
        let policy = Policy::default();
        let mut ratio = Ratio::default();
        let mut verdicts = Vec::new();
        for c in &cases {
            let proc = (c.procedure_code.as_deref() == Some("P3")).then_some(&p3);
            let j = judge(c, proc, cal(), &policy, period.start, period.end).unwrap();
            verdicts.push(format!(
                "{}:{}",
                c.case_id,
                match j {
                    None => "-",
                    Some(j) if j.on_time => "on",
                    Some(_) => "late",
                }
            ));
            ratio.add(j);
        }
        assert_eq!(
            verdicts,
            [
                "A:on", "B:late", "C:-", "D:late", "E:on", "F:on", "G:late", "H:on", "I:-", "J:-",
                "K:late", "L:late", "M:on", "N:-"
            ]
        );
        assert_eq!(
            ratio,
            Ratio {
                on_time: 5,
                population: 10
            }
        );
        assert_eq!(ratio.value(), Some(0.5));
    }

    #[test]
    fn running_period_counts_open_cases_not_yet_due_as_on_time() {
        let c = base("A", "2024-02-01 08:00", "2024-02-20 10:00");
        let p = Period::containing(PeriodKind::Month, t("2024-02-10 10:00"), cal())
            .to_date(t("2024-02-10 10:00"));
        let j = judge(&c, None, cal(), &Policy::default(), p.start, p.end)
            .unwrap()
            .unwrap();
        assert!(j.on_time);
        assert_eq!(j.effective_end, t("2024-02-10 10:00"));
        // The same case judged at the month's end is late.
        let p = Period::containing(PeriodKind::Month, t("2024-02-10 10:00"), cal());
        assert!(
            !judge(&c, None, cal(), &Policy::default(), p.start, p.end)
                .unwrap()
                .unwrap()
                .on_time
        );
    }

    #[test]
    fn domain_example_is_late_in_the_766_view() {
        // Due 06/10 14:30; supplement 18/09 09:00 → 22/09 10:00 (4 d 1 h); finished
        // 12/10 16:00 → 12/10 16:00 − 4 d 1 h = 08/10 15:00 > 06/10 14:30.
        let c = finish(
            supp(
                base("X", "2023-09-15 14:30", "2023-10-06 14:30"),
                "2023-09-18 09:00",
                Some("2023-09-22 10:00"),
            ),
            "2023-10-12 16:00",
        );
        let p = Period::containing(PeriodKind::Month, t("2023-10-12 16:00"), cal());
        let j = judge(&c, None, cal(), &Policy::default(), p.start, p.end)
            .unwrap()
            .unwrap();
        assert_eq!(j.effective_end, t("2023-10-08 15:00"));
        assert!(!j.on_time);
    }

    #[test]
    fn empty_population_has_no_value() {
        assert_eq!(Ratio::default().value(), None);
    }
}
