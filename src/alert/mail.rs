//! What one alert e-mail says (pure): the messages queued for one person, folded into
//! one entry per case, most urgent first, with the counts at the top, one line on what
//! to do per rule, summaries by unit for what the person oversees rather than handles,
//! and the subject's headline.
//!
//! It never decides who receives what (that is the ladder, [`crate::alert::wanted`])
//! and never renders text outside the words below: templates lay the result out.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// How a person receives a case's alert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The case is theirs to handle (the unit's head, deputy or copies, the step's unit):
    /// listed in full.
    #[default]
    Case,
    /// They oversee it (a parent's head on escalation, the service centre, a rule's
    /// copies): counted in a summary by unit.
    Summary,
}

/// One queued alert message, as the alert pass stores it in the outbox.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Item {
    pub rule: String,
    pub level: u8,
    pub role: Role,
    pub source: String,
    pub case_id: String,
    pub kind: String,
    pub procedure: Option<String>,
    pub unit: Option<String>,
    pub unit_name: String,
    /// The due as a reader sees it ("hết ngày 07/12/2026", "08/03/2024 10:30").
    pub due: String,
    /// The due in RFC 3339, for ordering.
    pub due_at: Option<String>,
    pub due_estimated: bool,
    pub overdue_workdays: i32,
    /// The step that holds the case: «title» (department), and its title alone.
    pub step: Option<String>,
    pub step_title: Option<String>,
    /// For `escalated`: the unit the case was reported to.
    pub escalated_to: Option<String>,
    /// The one line of how the case stands (due, how late, the holding step).
    pub short: String,
    pub link: Option<String>,
    /// Operational items (`source_stale`): the last error.
    pub note: Option<String>,
}

/// The urgency order of the rules in one e-mail (SPEC §10): overdue first.
pub const URGENCY: [&str; 6] = [
    "overdue",
    "escalated",
    "apology_due",
    "due_soon",
    "step_overdue",
    "stuck",
];

fn rank(rule: &str) -> usize {
    URGENCY
        .iter()
        .position(|r| *r == rule)
        .unwrap_or(URGENCY.len())
}

fn vi(lang: &str) -> bool {
    lang != "en"
}

/// A case's badge for a rule, in the message's language.
pub fn badge(it: &Item, rule: &str, lang: &str) -> String {
    let v = vi(lang);
    match rule {
        "overdue" if it.overdue_workdays > 0 => {
            if v {
                format!("quá hạn {} ngày làm việc", it.overdue_workdays)
            } else {
                format!("overdue by {} workdays", it.overdue_workdays)
            }
        }
        "overdue" => pick(v, "quá hạn", "overdue"),
        "escalated" => match &it.escalated_to {
            Some(u) if v => format!("đã báo cáo {u}"),
            Some(u) => format!("reported to {u}"),
            None => pick(v, "đã báo cáo cấp trên", "reported upwards"),
        },
        "apology_due" => pick(v, "cần văn bản xin lỗi", "apology letter due"),
        "due_soon" => pick(v, "sắp đến hạn", "due soon"),
        "step_overdue" => match &it.step_title {
            Some(s) if v => format!("bước «{s}» quá hạn"),
            Some(s) => format!("step «{s}» overdue"),
            None => pick(v, "bước xử lý quá hạn", "a step is overdue"),
        },
        "stuck" => pick(v, "chưa cập nhật tiến độ", "no progress recorded"),
        "source_stale" => pick(
            v,
            "nguồn dữ liệu không cập nhật",
            "data source not updating",
        ),
        other => other.to_string(),
    }
}

fn pick(v: bool, a: &str, b: &str) -> String {
    if v { a } else { b }.to_string()
}

/// What to do about a rule: one line, in the message's language.
pub fn action(rule: &str, lang: &str) -> String {
    let v = vi(lang);
    match rule {
        "overdue" => pick(
            v,
            "Hồ sơ quá hạn: chỉ đạo giải quyết ngay; nếu chưa thể trả kết quả, gửi người nộp Văn bản xin lỗi và đề nghị gia hạn thời gian giải quyết (Mẫu 04, Thông tư 03/2025/TT-VPCP) với ngày hẹn mới.",
            "Overdue: have the case settled now; if the result cannot be returned yet, send the applicant the letter of apology and request to extend the processing time (form 04, Circular 03/2025/TT-VPCP) with a new date.",
        ),
        "escalated" => pick(
            v,
            "Đã báo cáo cấp trên: hồ sơ quá hạn kéo dài đã được báo cáo lên cấp trên; giải quyết dứt điểm và báo cáo kết quả.",
            "Escalated: the long-overdue case has been reported upwards; settle it and report back.",
        ),
        "summary" => pick(
            v,
            "Tổng hợp theo đơn vị: đôn đốc thủ trưởng các đơn vị giải quyết dứt điểm hồ sơ quá hạn và báo cáo kết quả.",
            "Summary by unit: press the units' heads to settle their overdue cases and report back.",
        ),
        "apology_due" => pick(
            v,
            "Cần văn bản xin lỗi: lập Văn bản xin lỗi và đề nghị gia hạn thời gian giải quyết (Mẫu 04) và gửi người nộp trước khi hết hạn.",
            "Apology letter due: prepare the letter of apology and request to extend the processing time (form 04) and send it to the applicant before the due.",
        ),
        "due_soon" => pick(
            v,
            "Sắp đến hạn: ưu tiên hoàn thành trước hạn; nếu không kịp, chuẩn bị văn bản xin lỗi (Mẫu 04).",
            "Due soon: finish it before the due; if that cannot be done, prepare the apology letter (form 04).",
        ),
        "step_overdue" => pick(
            v,
            "Bước quá hạn: đôn đốc bộ phận đang giữ hồ sơ hoàn thành bước này hoặc chuyển bước tiếp theo.",
            "Step overdue: press the department holding the case to finish the step or pass it on.",
        ),
        "stuck" => pick(
            v,
            "Chưa cập nhật tiến độ: cập nhật tiến độ trên hệ thống một cửa hoặc chuyển bước tiếp theo.",
            "No progress recorded: record the progress in the one-stop system or move the case to its next step.",
        ),
        "source_stale" => pick(
            v,
            "Nguồn dữ liệu không cập nhật: kiểm tra kết nối tới hệ thống nguồn; cảnh báo hạn của các hồ sơ từ nguồn này tạm dừng đến khi có dữ liệu mới.",
            "Data source not updating: check the connection to the source; deadline alerts for its cases wait until fresh data arrives.",
        ),
        _ => String::new(),
    }
}

/// The noun for a count of cases of a kind.
fn noun(kind: &str, lang: &str) -> &'static str {
    match (vi(lang), kind) {
        (true, "task") => "nhiệm vụ",
        (true, "feedback") => "phản ánh",
        (true, _) => "hồ sơ",
        (false, "task") => "tasks",
        (false, "feedback") => "petitions",
        (false, _) => "cases",
    }
}

/// One case's entry: its items' rules folded into badges, and what each item knows
/// (the escalation's unit, the late step) merged into one.
struct Entry<'a> {
    first: Item,
    rules: Vec<&'a str>,
}

impl Entry<'_> {
    fn key(&self) -> (usize, i32, String, String) {
        let worst = self
            .rules
            .iter()
            .map(|r| rank(r))
            .min()
            .unwrap_or(usize::MAX);
        (
            worst,
            -self.first.overdue_workdays,
            self.first
                .due_at
                .clone()
                .unwrap_or_else(|| "9999".to_string()),
            self.first.case_id.clone(),
        )
    }
}

/// The parts of an alert e-mail for one person: `items` are every message bundled for
/// them; at most `limit` case entries are listed (the rest are counted as `more`).
pub fn compose(items: &[Item], lang: &str, limit: usize) -> Value {
    let v = vi(lang);
    // One entry per case (source, case id), in the order of urgency.
    let mut cases: BTreeMap<(&str, &str), Entry<'_>> = BTreeMap::new();
    let mut summary: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
    let mut ops: Vec<&Item> = Vec::new();
    for it in items {
        if it.source == "ops" {
            ops.push(it);
            continue;
        }
        if it.role == Role::Summary {
            summary
                .entry(it.unit.as_deref().unwrap_or(""))
                .or_default()
                .push(it);
            continue;
        }
        let e = cases
            .entry((it.source.as_str(), it.case_id.as_str()))
            .or_insert(Entry {
                first: it.clone(),
                rules: Vec::new(),
            });
        if !e.rules.contains(&it.rule.as_str()) {
            e.rules.push(it.rule.as_str());
        }
        // The item with the most overdue age speaks for the case.
        if it.overdue_workdays > e.first.overdue_workdays {
            let known = (e.first.escalated_to.take(), e.first.step_title.take());
            e.first = it.clone();
            e.first.escalated_to = e.first.escalated_to.take().or(known.0);
            e.first.step_title = e.first.step_title.take().or(known.1);
        } else {
            if e.first.escalated_to.is_none() {
                e.first.escalated_to = it.escalated_to.clone();
            }
            if e.first.step_title.is_none() {
                e.first.step_title = it.step_title.clone();
            }
        }
    }
    let mut entries: Vec<Entry<'_>> = cases.into_values().collect();
    entries.sort_by_key(|e| e.key());
    for e in &mut entries {
        e.rules.sort_by_key(|r| rank(r));
    }
    // Counts: cases per rule, in urgency order.
    let mut counts: Vec<Value> = Vec::new();
    let mut rules_present: Vec<&str> = Vec::new();
    for rule in URGENCY {
        let n = entries.iter().filter(|e| e.rules.contains(&rule)).count();
        if n > 0 {
            rules_present.push(rule);
            counts.push(json!({"rule": rule, "label": count_label(rule, lang), "count": n}));
        }
    }
    let shown: Vec<Value> = entries
        .iter()
        .take(limit)
        .map(|e| {
            let it = &e.first;
            json!({
                "source": it.source,
                "case_id": it.case_id,
                "kind": it.kind,
                "procedure": it.procedure,
                "unit": it.unit,
                "unit_name": it.unit_name,
                "due": it.due,
                "due_estimated": it.due_estimated,
                "overdue_workdays": it.overdue_workdays,
                "short": it.short,
                "link": it.link,
                "desk_url": null,
                "rules": e.rules,
                "badges": e.rules.iter().map(|r| badge(it, r, lang)).collect::<Vec<_>>(),
                "urgent": e.rules.iter().any(|r| matches!(*r, "overdue" | "escalated" | "apology_due")),
            })
        })
        .collect();
    // Summaries by unit, the most overdue unit first.
    let mut units: Vec<Value> = summary
        .into_iter()
        .map(|(unit, its)| summarize_unit(unit, &its, lang))
        .collect();
    units.sort_by_key(|u| {
        (
            -u["max_overdue"].as_i64().unwrap_or(0),
            -u["cases"].as_i64().unwrap_or(0),
            u["unit_name"].as_str().unwrap_or("").to_string(),
        )
    });
    let summary_rules: Vec<&str> = URGENCY
        .iter()
        .copied()
        .filter(|r| {
            items
                .iter()
                .any(|i| i.role == Role::Summary && i.source != "ops" && i.rule == *r)
        })
        .collect();
    let mut actions: Vec<Value> = Vec::new();
    for r in rules_present.iter().copied() {
        actions.push(json!({"rule": r, "text": action(r, lang)}));
    }
    if !units.is_empty() {
        actions.push(json!({"rule": "summary", "text": action("summary", lang)}));
    }
    if !ops.is_empty() {
        actions.push(json!({"rule": "source_stale", "text": action("source_stale", lang)}));
    }
    let ops: Vec<Value> = ops
        .iter()
        .map(|o| json!({"name": o.case_id, "since": o.due, "note": o.note, "badge": badge(o, "source_stale", lang)}))
        .collect();
    let headline = headline(&entries, &units, &ops, lang);
    let unit_label = {
        let mut names: Vec<&str> = entries.iter().map(|e| e.first.unit_name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        match names.as_slice() {
            [one] => one.to_string(),
            [] => String::new(),
            many if v => format!("{} đơn vị", many.len()),
            many => format!("{} units", many.len()),
        }
    };
    json!({
        "headline": headline,
        "unit_label": unit_label,
        "counts": counts,
        "cases": shown,
        "total": entries.len(),
        "more": entries.len().saturating_sub(limit),
        "actions": actions,
        "units": units,
        "summary_rules": summary_rules,
        "ops": ops,
    })
}

fn count_label(rule: &str, lang: &str) -> String {
    let v = vi(lang);
    match rule {
        "overdue" => pick(v, "quá hạn", "overdue"),
        "escalated" => pick(v, "đã báo cáo cấp trên", "escalated"),
        "apology_due" => pick(v, "cần văn bản xin lỗi", "needing an apology letter"),
        "due_soon" => pick(v, "sắp đến hạn", "due soon"),
        "step_overdue" => pick(v, "có bước quá hạn", "with a step overdue"),
        "stuck" => pick(v, "chưa cập nhật tiến độ", "without recorded progress"),
        other => other.to_string(),
    }
}

/// A unit's line in a summary: its overdue cases (at least how late, at most), apology
/// letters due, the rest.
fn summarize_unit(unit: &str, its: &[&Item], lang: &str) -> Value {
    let v = vi(lang);
    let mut late: BTreeMap<&str, i32> = BTreeMap::new();
    let mut sorry: Vec<&str> = Vec::new();
    let mut other: Vec<&str> = Vec::new();
    for it in its {
        match it.rule.as_str() {
            "overdue" | "escalated" => {
                let d = late.entry(it.case_id.as_str()).or_default();
                *d = (*d).max(it.overdue_workdays);
            }
            "apology_due" => sorry.push(&it.case_id),
            _ => other.push(&it.case_id),
        }
    }
    sorry.sort_unstable();
    sorry.dedup();
    other.sort_unstable();
    other.dedup();
    other.retain(|c| !late.contains_key(c) && !sorry.contains(c));
    let min = late.values().copied().min().unwrap_or(0);
    let max = late.values().copied().max().unwrap_or(0);
    let kind = its.first().map(|i| i.kind.as_str()).unwrap_or("dossier");
    let n = noun(kind, lang);
    let mut parts = Vec::new();
    if !late.is_empty() {
        parts.push(match (v, late.len() > 1 && min != max) {
            (true, true) => format!(
                "{} {n} quá hạn ≥ {min} ngày làm việc, lâu nhất {max} ngày",
                late.len()
            ),
            (true, false) => format!("{} {n} quá hạn {max} ngày làm việc", late.len()),
            (false, true) => format!(
                "{} {n} overdue by ≥ {min} workdays, the longest by {max}",
                late.len()
            ),
            (false, false) => format!("{} {n} overdue by {max} workdays", late.len()),
        });
    }
    if !sorry.is_empty() {
        parts.push(if v {
            format!("{} cần văn bản xin lỗi", sorry.len())
        } else {
            format!("{} need an apology letter", sorry.len())
        });
    }
    if !other.is_empty() {
        parts.push(if v {
            format!("{} cảnh báo khác", other.len())
        } else {
            format!("{} other alerts", other.len())
        });
    }
    let name = its
        .iter()
        .map(|i| i.unit_name.as_str())
        .find(|n| !n.is_empty())
        .unwrap_or(unit);
    let cases = late.len() + sorry.iter().filter(|c| !late.contains_key(*c)).count() + other.len();
    json!({
        "unit": unit,
        "unit_name": name,
        "desk_url": null,
        "line": format!("{name}: {}", parts.join("; ")),
        "cases": cases,
        "overdue": late.len(),
        "max_overdue": max,
    })
}

/// The subject's headline: the unit and the worst item.
fn headline(entries: &[Entry<'_>], units: &[Value], ops: &[Value], lang: &str) -> String {
    let v = vi(lang);
    let pressing = |e: &Entry<'_>| matches!(e.rules[0], "overdue" | "escalated" | "apology_due");
    if let Some(worst) = entries.first().filter(|e| units.is_empty() || pressing(e)) {
        let mut names: Vec<&str> = entries.iter().map(|e| e.first.unit_name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let who = match names.as_slice() {
            [one] if !one.is_empty() => one.to_string(),
            many if v => format!("{} đơn vị", many.len()),
            many => format!("{} units", many.len()),
        };
        let rule = worst.rules[0];
        let with = |r: &str| entries.iter().filter(|e| e.rules.contains(&r)).count();
        let all_tasks = entries.iter().all(|e| e.first.kind == "task");
        let n_of = |n: usize| {
            let word = noun(if all_tasks { "task" } else { "dossier" }, lang);
            match (v, n) {
                (false, 1) => format!("1 {}", word.trim_end_matches('s')),
                _ => format!("{n} {word}"),
            }
        };
        let max = entries
            .iter()
            .map(|e| e.first.overdue_workdays)
            .max()
            .unwrap_or(0);
        return match rule {
            "overdue" | "escalated" => {
                let n = entries
                    .iter()
                    .filter(|e| {
                        e.rules
                            .iter()
                            .any(|r| matches!(*r, "overdue" | "escalated"))
                    })
                    .count();
                match (v, max > 0) {
                    (true, true) => {
                        format!("{who}: {} quá hạn mới, lâu nhất {max} ngày", n_of(n))
                    }
                    (true, false) => format!("{who}: {} quá hạn mới", n_of(n)),
                    (false, true) => format!(
                        "{who}: {} newly overdue, the longest by {max} workdays",
                        n_of(n)
                    ),
                    (false, false) => format!("{who}: {} newly overdue", n_of(n)),
                }
            }
            "apology_due" if v => format!("{who}: {} cần văn bản xin lỗi", n_of(with(rule))),
            "apology_due" => format!("{who}: {} need an apology letter", n_of(with(rule))),
            "due_soon" if v => format!("{who}: {} sắp đến hạn", n_of(with(rule))),
            "due_soon" => format!("{who}: {} due soon", n_of(with(rule))),
            "step_overdue" if v => format!("{who}: {} có bước quá hạn", n_of(with(rule))),
            "step_overdue" => format!("{who}: {} with a step overdue", n_of(with(rule))),
            _ if v => format!("{who}: {} chưa cập nhật tiến độ", n_of(with(rule))),
            _ => format!("{who}: {} without recorded progress", n_of(with(rule))),
        };
    }
    if !units.is_empty() {
        let n: i64 = units
            .iter()
            .map(|u| u["overdue"].as_i64().unwrap_or(0))
            .sum();
        let max = units
            .iter()
            .map(|u| u["max_overdue"].as_i64().unwrap_or(0))
            .max()
            .unwrap_or(0);
        return if v {
            format!(
                "Tổng hợp quá hạn: {} đơn vị, {n} hồ sơ, lâu nhất {max} ngày",
                units.len()
            )
        } else {
            format!(
                "Overdue summary: {} units, {n} cases, the longest by {max} workdays",
                units.len()
            )
        };
    }
    match (ops.first(), v) {
        (Some(o), true) => format!(
            "Nguồn dữ liệu {} không cập nhật",
            o["name"].as_str().unwrap_or("")
        ),
        (Some(o), false) => format!(
            "Data source {} is not updating",
            o["name"].as_str().unwrap_or("")
        ),
        (None, true) => "Cảnh báo của slawatch".into(),
        (None, false) => "slawatch alert".into(),
    }
}

#[cfg(test)]
mod tests;
