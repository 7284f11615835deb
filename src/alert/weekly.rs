//! The weekly summary to the provincial office (SPEC §10): units ranked by open
//! overdue cases and by the on-time ratio of the quarter to date, and the units that
//! had a case overdue at some moment in at least 3 of the last 4 weeks ("thường xuyên
//! quá hạn"), with their heads named. Pure: the unit summaries, the weekly overdue
//! record and the directory are arguments.

use crate::directory::Directory;
use crate::metrics::{UnitSummary, UNKNOWN_UNIT};
use chrono::{Datelike, Duration, NaiveDate};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The Monday of the week of `d`.
pub fn week_of(d: NaiveDate) -> NaiveDate {
    d - Duration::days(d.weekday().num_days_from_monday() as i64)
}

/// The four complete weeks before the week of `today`, oldest first.
pub fn last_four_weeks(today: NaiveDate) -> [NaiveDate; 4] {
    let this = week_of(today);
    [4, 3, 2, 1].map(|k| this - Duration::weeks(k))
}

/// Units with an overdue case in at least 3 of `weeks`, from `(unit, week)` records
/// of weeks in which the unit had one.
pub fn regularly_late(records: &[(String, NaiveDate)], weeks: &[NaiveDate; 4]) -> Vec<String> {
    let mut by_unit: BTreeMap<&str, BTreeSet<NaiveDate>> = BTreeMap::new();
    for (unit, week) in records {
        if weeks.contains(week) {
            by_unit.entry(unit).or_default().insert(*week);
        }
    }
    by_unit
        .into_iter()
        .filter(|(_, w)| w.len() >= 3)
        .map(|(u, _)| u.to_string())
        .collect()
}

/// The report's template context.
pub fn build(
    units: &[UnitSummary],
    records: &[(String, NaiveDate)],
    today: NaiveDate,
    dir: &Directory,
    lang: &str,
) -> Value {
    let head_label = if lang == "en" {
        "(no head named)"
    } else {
        "(chưa có tên)"
    };
    // 50.0% in English, 50,0% in Vietnamese (decimal comma).
    let percent = |v: f64| {
        let p = format!("{:.1}%", v * 100.0);
        if lang == "en" {
            p
        } else {
            p.replace('.', ",")
        }
    };
    let weeks = last_four_weeks(today);
    let overdue_of = |u: &UnitSummary| -> i64 {
        u.kinds
            .values()
            .map(|k| k.open.get("overdue").copied().unwrap_or(0))
            .sum()
    };
    let mut by_overdue: Vec<&UnitSummary> = units.iter().filter(|u| overdue_of(u) > 0).collect();
    by_overdue.sort_by(|a, b| overdue_of(b).cmp(&overdue_of(a)).then(a.unit.cmp(&b.unit)));
    let ratio = |u: &UnitSummary| {
        u.kinds
            .get("dossier")
            .and_then(|k| k.on_time.get("quarter"))
            .and_then(|r| r.ratio.map(|v| (v, r.on_time, r.population)))
    };
    let mut by_ratio: Vec<(&UnitSummary, (f64, u64, u64))> = units
        .iter()
        .filter_map(|u| ratio(u).map(|r| (u, r)))
        .collect();
    by_ratio.sort_by(|a, b| {
        a.1 .0
            .partial_cmp(&b.1 .0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.0.unit.cmp(&b.0.unit))
    });
    let head = |code: &str| -> String {
        dir.get(code)
            .and_then(|u| u.head.as_ref())
            .map(|h| h.name.clone())
            .unwrap_or_else(|| head_label.to_string())
    };
    let name = |code: &str| -> String {
        units
            .iter()
            .find(|u| u.unit == code)
            .map(|u| u.name.clone())
            .or_else(|| dir.get(code).map(|u| u.name.clone()))
            .unwrap_or_else(|| code.to_string())
    };
    let regular: Vec<Value> = regularly_late(records, &weeks)
        .into_iter()
        .filter(|u| u != UNKNOWN_UNIT)
        .map(|u| {
            let n = records
                .iter()
                .filter(|(r, w)| *r == u && weeks.contains(w))
                .count();
            json!({"unit": u, "unit_name": name(&u), "head": head(&u), "weeks": n})
        })
        .collect();
    json!({
        "date": today.format("%d/%m/%Y").to_string(),
        "weeks_from": weeks[0].format("%d/%m/%Y").to_string(),
        "weeks_to": (weeks[3] + Duration::days(6)).format("%d/%m/%Y").to_string(),
        "by_overdue": by_overdue.iter().enumerate().map(|(i, u)| json!({
            "rank": i + 1, "unit": u.unit, "unit_name": u.name, "head": head(&u.unit), "overdue": overdue_of(u),
        })).collect::<Vec<_>>(),
        "by_ratio": by_ratio.iter().enumerate().map(|(i, (u, (v, ok, all)))| json!({
            "rank": i + 1, "unit": u.unit, "unit_name": u.name, "head": head(&u.unit),
            "ratio": percent(*v), "on_time": ok, "population": all,
        })).collect::<Vec<_>>(),
        "regularly_late": regular,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn weeks_are_the_four_complete_ones_before() {
        // Mon 18/03/2024: the weeks starting 19/02, 26/02, 04/03 and 11/03.
        assert_eq!(
            last_four_weeks(d("2024-03-18")),
            [
                d("2024-02-19"),
                d("2024-02-26"),
                d("2024-03-04"),
                d("2024-03-11")
            ]
        );
        // Any day of a week gives the same four.
        assert_eq!(
            last_four_weeks(d("2024-03-24")),
            last_four_weeks(d("2024-03-18"))
        );
        assert_eq!(week_of(d("2024-03-17")), d("2024-03-11"));
    }

    #[test]
    fn three_of_four_weeks_is_regular() {
        let weeks = last_four_weeks(d("2024-03-18"));
        let rec = |u: &str, w: &str| (u.to_string(), d(w));
        let records = vec![
            // STP: weeks 1, 2 and 4 → regular.
            rec("STP", "2024-02-19"),
            rec("STP", "2024-02-26"),
            rec("STP", "2024-03-11"),
            // SXD: weeks 3 and 4, and the current week (not counted) → not.
            rec("SXD", "2024-03-04"),
            rec("SXD", "2024-03-11"),
            rec("SXD", "2024-03-18"),
            // STC: every week, but three of them before the window → not.
            rec("STC", "2024-01-29"),
            rec("STC", "2024-02-05"),
            rec("STC", "2024-02-12"),
            rec("STC", "2024-02-19"),
        ];
        assert_eq!(regularly_late(&records, &weeks), ["STP"]);
    }
}
