//! The monthly report's e-mail (SPEC §10): the summary in the body, Biểu 06 attached.
//! Pure: the report and the language are arguments.

use super::render::{percent, period_name, points};
use super::tthc::Report;
use crate::calendar::Calendar;
use serde_json::{json, Value};

/// `10504` as "10.504" in Vietnamese, "10,504" in English.
pub fn count(n: u64, lang: &str) -> String {
    let digits = n.to_string();
    let sep = if lang == "en" { ',' } else { '.' };
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// The template context of the monthly report's e-mail (without the recipient and the
/// time of sending, which dispatch adds).
pub fn context(r: &Report, cal: &Calendar, lang: &str) -> Value {
    let en = lang == "en";
    let pct = |x| {
        let p = percent(x);
        if en {
            p.replace(',', ".")
        } else {
            p
        }
    };
    let pts = |x| {
        let p = points(x);
        if en {
            p.replace(',', ".")
        } else {
            p
        }
    };
    let n = |v: u64| count(v, lang);
    let t = &r.total;
    let lowest: Vec<Value> = r
        .ranking_on_time
        .iter()
        .rev()
        .take(5)
        .map(|x| {
            json!({"name": x.name, "ratio": pct(x.on_time), "on_time": n(x.on_time.on_time),
                   "population": n(x.on_time.population)})
        })
        .collect();
    let overdue: Vec<Value> = r
        .ranking_overdue
        .iter()
        .take(5)
        .map(|x| json!({"name": x.name, "overdue": n(x.overdue_open)}))
        .collect();
    let name = period_name(&r.period.label);
    json!({
        "period": r.period.label,
        "period_name": if en { r.period.label.clone() } else { name },
        "from": r.period.first_day.format("%d/%m/%Y").to_string(),
        "to": r.period.last_day.format("%d/%m/%Y").to_string(),
        "reporter": r.reporter,
        "received": n(t.received),
        "received_online": n(t.online),
        "carried_over": n(t.carried_over),
        "finished": n(t.finished),
        "early": n(t.early),
        "on_time": n(t.on_time),
        "late": n(t.late),
        "in_progress": n(t.in_progress),
        "overdue": n(t.overdue),
        "ratio": pct(r.total_on_time),
        "points": pts(r.total_on_time),
        "numerator": n(r.total_on_time.on_time),
        "denominator": n(r.total_on_time.population),
        "late_cases": n(r.late_cases.len() as u64),
        "lowest": lowest,
        "most_overdue": overdue,
        "regularly_late": r.regularly_late.iter().map(|x| json!({
            "name": x.name,
            "head": x.head.clone().unwrap_or_else(|| if en { "(no head named)".into() } else { "(chưa có tên)".into() }),
        })).collect::<Vec<_>>(),
        "file_name": super::render::file_name(r, super::render::ReportFormat::Xlsx),
        "calendar": r.calendar,
        "until": cal.local(r.until).format("%d/%m/%Y %H:%M").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_the_thousands_separator_of_the_language() {
        assert_eq!(count(10504, "vi"), "10.504");
        assert_eq!(count(10504, "en"), "10,504");
        assert_eq!(count(999, "vi"), "999");
        assert_eq!(count(1_000_000, "vi"), "1.000.000");
        assert_eq!(count(0, "vi"), "0");
    }

    #[test]
    fn the_summary_of_november_by_hand() {
        use crate::report::tthc::tests::{context as ctx, november, spec};
        use crate::report::tthc::{Builder, Options};
        let c = ctx();
        let mut b = Builder::new(&c, spec(Options::default())).unwrap();
        for x in november() {
            b.add(&x);
        }
        let r = b.finish(&[]).unwrap();
        let v = context(&r, &c.calendar, "vi");
        assert_eq!(v["period_name"], "tháng 11/2026");
        assert_eq!(v["received"], "26");
        assert_eq!(v["late"], "4");
        assert_eq!(v["overdue"], "5");
        // 15/26 = 57,7 %; 20 × 15/26 = 11,54.
        assert_eq!(v["ratio"], "57,7%");
        assert_eq!(v["points"], "11,54");
        // Lowest first: PTS 0/2, SXD 3/7, STP 7/12, XTH 4/4.
        assert_eq!(v["lowest"][0]["name"], "UBND phường Thành Sen");
        assert_eq!(v["lowest"][0]["ratio"], "0,0%");
        assert_eq!(v["most_overdue"][0]["name"], "Sở Tư pháp");
        assert_eq!(v["file_name"], "bieu06-2026-11.xlsx");
        assert_eq!(context(&r, &c.calendar, "en")["ratio"], "57.7%");
    }
}
