//! The morning digest (SPEC §10): per unit, a snapshot of its overdue, apology-due,
//! due-soon and stuck cases, most urgent first, tasks in a section of their own, each
//! with its trace and link. A unit with nothing to report gets nothing. Pure: the
//! cases, the directory and `now` are arguments.

use super::{unit_recipients, Recipient};
use crate::metrics::UNKNOWN_UNIT;
use crate::sla::model::{Case, Kind};
use crate::sla::State;
use crate::store::EvalSummary;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The sections of a digest, most urgent first.
pub const SECTIONS: [&str; 4] = ["overdue", "apology_due", "due_soon", "stuck"];

/// The section a case is listed in (each case once, in its most urgent section).
pub fn section_of(e: &EvalSummary) -> Option<&'static str> {
    let flags: Vec<&str> = e.flags.names().collect();
    // A supplement requested once the case was overdue does not make it timely: it is
    // listed with the overdue ones, though its state is `paused`.
    if e.state == Some(State::Overdue)
        || (e.state == Some(State::Paused) && flags.contains(&"supplement_after_due"))
    {
        Some("overdue")
    } else if flags.contains(&"apology_due") {
        Some("apology_due")
    } else if e.state == Some(State::DueSoon) {
        Some("due_soon")
    } else if e.stuck {
        Some("stuck")
    } else {
        None
    }
}

/// One listed case: its section, its sort key and its template context.
pub struct Listed {
    pub unit: Option<String>,
    pub section: &'static str,
    pub task: bool,
    /// Acknowledged for its section's rule and current due: listed after the others
    /// of its section.
    pub acked: bool,
    /// Overdue oldest first, then by due.
    pub order: (i64, i64),
    pub item: Value,
}

/// Lists a case when it belongs in a digest; `item` builds its context (trace, link,
/// acknowledgement).
pub fn listed(
    case: &Case,
    e: &EvalSummary,
    acked: bool,
    item: impl FnOnce() -> Value,
) -> Option<Listed> {
    let section = section_of(e)?;
    Some(Listed {
        unit: case.unit_code.as_deref().map(str::to_string),
        section,
        task: case.kind == Kind::Task,
        acked,
        order: (
            -(e.overdue_workdays as i64),
            e.due.map(|d| d.timestamp()).unwrap_or(i64::MAX),
        ),
        item: item(),
    })
}

/// A unit's digest, ready to queue.
pub struct Digest {
    pub unit: String,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    /// The template context (without the recipient).
    pub context: Value,
    pub cases: usize,
}

/// Groups listed cases into one digest per unit. `labels` names the sections in the
/// message's language; `stale` lists sources whose data is old, with since when. Every
/// case is counted; the `limit` most urgent of each section are listed, one line each,
/// and the rest counted as `more`, so a unit with hundreds of cases gets an e-mail a
/// head reads on a phone.
pub fn build(
    listed: Vec<Listed>,
    dir: &crate::directory::Directory,
    date: &str,
    labels: &dyn Fn(&str) -> String,
    actions: &dyn Fn(&str) -> String,
    stale: &[(String, String)],
    limit: usize,
) -> Vec<Digest> {
    let mut by_unit: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
    for l in listed {
        let unit = l.unit.clone().unwrap_or_else(|| UNKNOWN_UNIT.to_string());
        by_unit.entry(unit).or_default().push(l);
    }
    let mut out = Vec::new();
    for (unit, mut cases) in by_unit {
        cases.sort_by_key(|l| {
            (
                SECTIONS.iter().position(|s| *s == l.section),
                l.acked,
                l.order,
                l.item["case_id"].as_str().map(str::to_string),
            )
        });
        let code = (unit != UNKNOWN_UNIT).then_some(unit.as_str());
        let (to, cc) = unit_recipients(dir, code, None);
        if to.is_empty() {
            continue;
        }
        let section = |task: bool| -> Vec<Value> {
            SECTIONS
                .iter()
                .filter_map(|s| {
                    let listed: Vec<&Listed> = cases
                        .iter()
                        .filter(|l| l.task == task && l.section == *s)
                        .collect();
                    let acked = listed.iter().filter(|l| l.acked).count();
                    let items: Vec<Value> =
                        listed.iter().take(limit).map(|l| l.item.clone()).collect();
                    (!listed.is_empty()).then(|| {
                        json!({"section": s, "title": labels(s), "count": listed.len(), "acknowledged": acked, "more": listed.len() - items.len(), "cases": items})
                    })
                })
                .collect()
        };
        let unit_name = code
            .and_then(|c| dir.get(c))
            .map(|u| u.name.clone())
            .unwrap_or_else(|| labels("unknown_unit"));
        out.push(Digest {
            context: json!({
                "unit": unit,
                "unit_name": unit_name,
                "date": date,
                "total": cases.len(),
                "counts": SECTIONS.iter().filter_map(|s| {
                    let n = cases.iter().filter(|l| l.section == *s).count();
                    (n > 0).then(|| json!({"section": s, "title": labels(s), "count": n, "action": actions(s)}))
                }).collect::<Vec<_>>(),
                "sections": section(false),
                "tasks": section(true),
                "stale": stale.iter().map(|(s, since)| json!({"source": s, "since": since})).collect::<Vec<_>>(),
            }),
            cases: cases.len(),
            unit,
            to,
            cc,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Directory;
    use chrono::{DateTime, Utc};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn eval(state: &'static str, flags: &str, stuck: bool, age: i32, due: &str) -> EvalSummary {
        EvalSummary {
            state: crate::sla::State::parse(state),
            outcome: None,
            flags: crate::sla::Flags::parse(flags),
            stuck,
            due: Some(t(due)),
            overdue_workdays: age,
            evaluated_at: t("2024-03-15T00:30:00Z"),
            calendar_version: "x".into(),
            calendar_estimated: false,
            ended_at: None,
            on_time: None,
        }
    }

    fn case(id: &str, unit: Option<&str>, kind: Kind) -> Case {
        Case {
            source: "p".into(),
            case_id: id.into(),
            unit_code: unit.map(Into::into),
            kind,
            ..Case::default()
        }
    }

    #[test]
    fn one_digest_per_unit_most_urgent_first_tasks_apart() {
        let dir = Directory::parse(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/units.toml"))
                .unwrap(),
            "units.toml",
        )
        .unwrap();
        let rows = [
            (
                case("A-due-soon", Some("STP"), Kind::Dossier),
                eval("due_soon", "", false, 0, "2024-03-18T10:00:00Z"),
            ),
            (
                case("A-late-2", Some("STP"), Kind::Dossier),
                eval("overdue", "", true, 2, "2024-03-12T10:00:00Z"),
            ),
            (
                case("A-late-5", Some("STP"), Kind::Dossier),
                eval("overdue", "", false, 5, "2024-03-07T10:00:00Z"),
            ),
            (
                case("A-sorry", Some("STP"), Kind::Dossier),
                eval("on_track", "apology_due", false, 0, "2024-03-16T10:00:00Z"),
            ),
            (
                case("A-task", Some("STP"), Kind::Task),
                eval("overdue", "", false, 1, "2024-03-13T10:00:00Z"),
            ),
            (
                case("A-fine", Some("SXD"), Kind::Dossier),
                eval("on_track", "", false, 0, "2024-04-01T10:00:00Z"),
            ),
            (
                case("A-lost", None, Kind::Dossier),
                eval("stuck_free", "", true, 0, "2024-04-01T10:00:00Z"),
            ),
        ];
        // A-late-5 was acknowledged by the unit: still listed, after the others.
        let all_listed = || -> Vec<Listed> {
            rows.iter()
                .filter_map(|(c, e)| {
                    listed(
                        c,
                        e,
                        c.case_id == "A-late-5",
                        || json!({"case_id": c.case_id}),
                    )
                })
                .collect()
        };
        let digests = build(
            all_listed(),
            &dir,
            "15/03/2024",
            &|s| s.to_string(),
            &|s| format!("do {s}"),
            &[],
            1,
        );
        // SXD has nothing to report: no digest. STP and the unknown unit do.
        let units: Vec<&str> = digests.iter().map(|d| d.unit.as_str()).collect();
        assert_eq!(units, ["STP", "unknown"]);
        let stp = &digests[0];
        assert_eq!(stp.to[0].email, "giamdoc@stp.example.gov.vn");
        let ids = |v: &Value| -> Vec<String> {
            v["cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["case_id"].as_str().unwrap().to_string())
                .collect()
        };
        let sections = stp.context["sections"].as_array().unwrap();
        let names: Vec<&str> = sections
            .iter()
            .map(|s| s["section"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["overdue", "apology_due", "due_soon"]);
        // Overdue: oldest first, but the acknowledged A-late-5 after A-late-2; the
        // stuck overdue case is listed once.
        // A limit of 1 lists the most urgent of each section; the rest are counted.
        assert_eq!(ids(&sections[0]), ["A-late-2"]);
        assert_eq!(sections[0]["count"], 2);
        assert_eq!(sections[0]["more"], 1);
        assert_eq!(sections[0]["acknowledged"], 1);
        assert_eq!(sections[1]["acknowledged"], 0);
        assert_eq!(ids(&sections[1]), ["A-sorry"]);
        // The counts at the top: every case of the unit, tasks included, by section.
        assert_eq!(
            stp.context["counts"],
            json!([
                {"section": "overdue", "title": "overdue", "count": 3, "action": "do overdue"},
                {"section": "apology_due", "title": "apology_due", "count": 1, "action": "do apology_due"},
                {"section": "due_soon", "title": "due_soon", "count": 1, "action": "do due_soon"},
            ])
        );
        assert_eq!(sections[1]["more"], 0);
        let all = build(
            all_listed(),
            &dir,
            "15/03/2024",
            &|s| s.to_string(),
            &|s| format!("do {s}"),
            &[],
            20,
        );
        assert_eq!(
            ids(&all[0].context["sections"][0]),
            ["A-late-2", "A-late-5"]
        );
        assert_eq!(stp.context["tasks"][0]["section"], "overdue");
        assert_eq!(ids(&stp.context["tasks"][0]), ["A-task"]);
        assert_eq!(stp.cases, 5);
        // The unknown unit's digest goes to the service centre.
        assert_eq!(digests[1].to[0].email, "giamdoc@pvhcc.example.gov.vn");
    }
}
