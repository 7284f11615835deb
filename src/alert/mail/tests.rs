use super::*;

fn item(rule: &str, case: &str, unit: &str, days: i32, due: &str) -> Item {
    Item {
        rule: rule.into(),
        source: "p".into(),
        case_id: case.into(),
        kind: "dossier".into(),
        unit: Some(unit.into()),
        unit_name: format!("Đơn vị {unit}"),
        due_at: Some(due.into()),
        overdue_workdays: days,
        ..Item::default()
    }
}

fn ids(v: &Value) -> Vec<&str> {
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case_id"].as_str().unwrap())
        .collect()
}

/// The order of the chairman's mail in the issue, worked by hand: overdue oldest first
/// (48, 27, 25, 7), then apology due, due soon, step overdue (of a case whose own due
/// is in the future), stuck; a case with two rules is one entry, at its worst rule.
#[test]
fn one_entry_per_case_most_urgent_first() {
    let items = vec![
        item("step_overdue", "S1", "A", 0, "2026-12-20T10:00:00Z"),
        item("overdue", "O7", "A", 7, "2026-11-20T10:00:00Z"),
        item("stuck", "K1", "A", 0, "2026-12-10T10:00:00Z"),
        item("overdue", "O48", "A", 48, "2026-09-20T10:00:00Z"),
        item("due_soon", "D1", "A", 0, "2026-12-03T10:00:00Z"),
        item("step_overdue", "O27", "A", 27, "2026-10-20T10:00:00Z"),
        item("overdue", "O27", "A", 27, "2026-10-20T10:00:00Z"),
        item("apology_due", "P1", "A", 0, "2026-12-02T10:00:00Z"),
        item("overdue", "O25", "A", 25, "2026-10-22T10:00:00Z"),
    ];
    let m = compose(&items, "vi", 30);
    assert_eq!(ids(&m), ["O48", "O27", "O25", "O7", "P1", "D1", "S1", "K1"]);
    assert_eq!(m["total"], 8);
    assert_eq!(m["cases"][1]["rules"], json!(["overdue", "step_overdue"]));
    assert_eq!(
        m["cases"][1]["badges"],
        json!(["quá hạn 27 ngày làm việc", "bước xử lý quá hạn"])
    );
    assert_eq!(
        m["counts"],
        json!([
            {"rule": "overdue", "label": "quá hạn", "count": 4},
            {"rule": "apology_due", "label": "cần văn bản xin lỗi", "count": 1},
            {"rule": "due_soon", "label": "sắp đến hạn", "count": 1},
            {"rule": "step_overdue", "label": "có bước quá hạn", "count": 2},
            {"rule": "stuck", "label": "chưa cập nhật tiến độ", "count": 1},
        ])
    );
    assert_eq!(
        m["headline"],
        "Đơn vị A: 4 hồ sơ quá hạn mới, lâu nhất 48 ngày"
    );
    // One line on what to do per rule present, in urgency order.
    let rules: Vec<&str> = m["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "overdue",
            "apology_due",
            "due_soon",
            "step_overdue",
            "stuck"
        ]
    );
    assert!(m["actions"][1]["text"].as_str().unwrap().contains("Mẫu 04"));
    // A limit lists the most urgent; the rest are counted, never dropped silently.
    let short = compose(&items, "vi", 3);
    assert_eq!(ids(&short), ["O48", "O27", "O25"]);
    assert_eq!(short["more"], 5);
    assert_eq!(short["counts"], m["counts"]);
}

/// Escalations reach the parent's head as one line per unit, the most overdue unit
/// first: "≥ least, longest most" over that unit's distinct cases.
#[test]
fn escalations_are_summarised_by_unit() {
    let mut items = Vec::new();
    for (unit, case, days) in [
        ("X", "X1", 9),
        ("X", "X2", 48),
        ("X", "X3", 12),
        ("Y", "Y1", 10),
    ] {
        let mut it = item("escalated", case, unit, days, "2026-10-01T10:00:00Z");
        it.role = Role::Summary;
        it.level = 1;
        items.push(it);
    }
    // The same case escalated and overdue in one mail counts once.
    let mut dup = item("overdue", "X2", "X", 48, "2026-10-01T10:00:00Z");
    dup.role = Role::Summary;
    items.push(dup);
    let m = compose(&items, "vi", 30);
    assert_eq!(m["cases"], json!([]));
    let lines: Vec<&str> = m["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["line"].as_str().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "Đơn vị X: 3 hồ sơ quá hạn ≥ 9 ngày làm việc, lâu nhất 48 ngày",
            "Đơn vị Y: 1 hồ sơ quá hạn 10 ngày làm việc",
        ]
    );
    assert_eq!(
        m["headline"],
        "Tổng hợp quá hạn: 2 đơn vị, 4 hồ sơ, lâu nhất 48 ngày"
    );
    assert_eq!(m["actions"][0]["rule"], "summary");
    let en = compose(&items, "en", 30);
    assert_eq!(
        en["units"][0]["line"],
        "Đơn vị X: 3 cases overdue by ≥ 9 workdays, the longest by 48"
    );
}

#[test]
fn a_stale_source_alone_names_the_source() {
    let it = Item {
        rule: "source_stale".into(),
        source: "ops".into(),
        case_id: "motcua".into(),
        due: "01/12/2026 06:10".into(),
        note: Some("HTTP 503".into()),
        ..Item::default()
    };
    let m = compose(&[it], "vi", 30);
    assert_eq!(m["headline"], "Nguồn dữ liệu motcua không cập nhật");
    assert_eq!(m["ops"][0]["note"], "HTTP 503");
    assert_eq!(m["actions"][0]["rule"], "source_stale");
}

#[test]
fn tasks_are_named_as_tasks() {
    let mut a = item("due_soon", "T1", "A", 0, "2026-12-03T10:00:00Z");
    a.kind = "task".into();
    let m = compose(&[a.clone()], "vi", 30);
    assert_eq!(m["headline"], "Đơn vị A: 1 nhiệm vụ sắp đến hạn");
    let m = compose(&[a], "en", 30);
    assert_eq!(m["headline"], "Đơn vị A: 1 task due soon");
}
