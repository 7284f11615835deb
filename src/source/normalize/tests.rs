use super::*;
use std::sync::OnceLock;

fn cal() -> &'static Calendar {
    static CAL: OnceLock<Calendar> = OnceLock::new();
    CAL.get_or_init(Calendar::builtin)
}

fn t(s: &str) -> DateTime<Utc> {
    parse_instant(s, cal()).unwrap().unwrap()
}

fn domain_record() -> Value {
    let envelope: Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/dvcqg/domain-example.json"
    ))
    .unwrap();
    envelope["data"][0].clone()
}

fn norm(v: &Value) -> Result<Normalized, Rejection> {
    normalize(v, &Mapping::dvcqg(), "portal", cal(), "salt")
}

#[test]
fn the_domain_example_normalises() {
    let Normalized::Case { case, source_time } = norm(&domain_record()).unwrap() else {
        panic!("a case")
    };
    assert_eq!(source_time, None);
    assert_eq!(case.case_id, "000.00.12.H22-230915-0042");
    assert_eq!(&*case.source, "portal");
    assert_eq!(case.procedure_code.as_deref(), Some("1.004227"));
    assert_eq!(case.field_code.as_deref(), Some("G09-XD02"));
    assert_eq!(case.unit_name.as_deref(), Some("UBND phường X"));
    assert_eq!(case.channel, Some(Channel::Online));
    assert_eq!(case.status, 4);
    // yyyyMMddHHmmss in local time (UTC+7).
    assert_eq!(case.received_at, Some(t("2023-09-15T07:30:00Z")));
    assert_eq!(case.due_at, Some(t("2023-10-06 14:30")));
    assert_eq!(case.finished_at, None);
    assert_eq!(case.supplements.len(), 1);
    let s = &case.supplements[0];
    assert_eq!(s.requested_at, t("2023-09-18 09:00"));
    assert_eq!(s.resumed_at, Some(t("2023-09-22 10:00")));
    assert_eq!(s.due_before, Some(t("2023-10-06 14:30")));
    assert_eq!(s.due_after, Some(t("2023-10-13 10:00")));
    // The applicant is a salted hash, never the number.
    let h = case.applicant_hash.clone().unwrap();
    assert_eq!(h, applicant_hash("042090001234", "salt"));
    assert!(!serde_json::to_string(&case)
        .unwrap()
        .contains("042090001234"));
}

#[test]
fn a_progress_item_is_a_step_for_its_dossier() {
    let item: Value = serde_json::from_str(
        r#"{"MaHoSo":"000.00.12.H22-230915-0042","NguoiXuLy":"Trần B","ChucDanh":"Chuyên viên",
 "ThoiDiemXuLy":"20230926101500","PhongBanXuLy":"Phòng Kinh tế - Hạ tầng",
 "NoiDungXuLy":"Thẩm định hồ sơ, trình lãnh đạo","TrangThai":"4",
 "NgayBatDau":"20230922100000","NgayKetThucTheoQuyDinh":"20231004170000"}"#,
    )
    .unwrap();
    let Normalized::Steps { case_id, steps } = norm(&item).unwrap() else {
        panic!("steps")
    };
    assert_eq!(case_id, "000.00.12.H22-230915-0042");
    let s = &steps[0];
    assert_eq!(s.department.as_deref(), Some("Phòng Kinh tế - Hạ tầng"));
    assert_eq!(s.status, Some(4));
    assert_eq!(s.acted_at, Some(t("2023-09-26 10:15")));
    assert_eq!(s.started_at, Some(t("2023-09-22 10:00")));
    assert_eq!(s.step_due_at, Some(t("2023-10-04 17:00")));
}

#[test]
fn nested_steps_english_states_and_numbers() {
    let mut r = domain_record();
    r["TrangThaiHoSo"] = Value::String("releasing".into());
    r["KenhThucHien"] = serde_json::json!(1);
    r["NgayKetThucXuLy"] = Value::String("2023-10-12T16:00:00+07:00".into());
    r["QuaTrinhXuLy"] = serde_json::json!([{"NoiDungXuLy": "Tiếp nhận", "NgayBatDau": "15/09/2023 14:30", "ThoiDiemXuLy": "15/09/2023 14:35"}]);
    let Normalized::Case { case, .. } = norm(&r).unwrap() else {
        panic!()
    };
    assert_eq!(case.status, 9);
    assert_eq!(case.channel, Some(Channel::InPerson));
    assert_eq!(case.finished_at, Some(t("2023-10-12 16:00")));
    assert_eq!(case.steps[0].acted_at, Some(t("2023-09-15 14:35")));
}

/// The bad-input corpus: each is quarantined with a reason that says what is wrong.
#[test]
fn bad_records_are_rejected_with_a_reason() {
    let base = domain_record();
    let with = |k: &str, v: Value| {
        let mut r = base.clone();
        r[k] = v;
        r
    };
    let without = |k: &str| {
        let mut r = base.clone();
        r.as_object_mut().unwrap().remove(k);
        r
    };
    let cases: Vec<(Value, &str)> = vec![
        (without("MaHoSo"), "no case id"),
        (with("MaHoSo", Value::String("  ".into())), "no case id"),
        (
            with("MaHoSo", Value::String("x".repeat(500))),
            "longer than 128",
        ),
        (
            with("NgayTiepNhan", Value::String("20231345143000".into())),
            "`received_at`",
        ),
        (
            with("NgayHenTra", Value::String("next friday".into())),
            "`due_at`",
        ),
        (
            with("NgayKetThucXuLy", Value::String("20230901090000".into())),
            "`finished_at` (2023-09-01 02:00:00 UTC) is before `received_at`",
        ),
        (
            with("TrangThaiHoSo", Value::String("42".into())),
            "unknown status `42`",
        ),
        (
            with("TrangThaiHoSo", Value::String("archived".into())),
            "unknown status `archived`",
        ),
        (
            with("TrangThaiHoSo", serde_json::json!({"x": 1})),
            "`status`: expected text, found an object",
        ),
        (
            with("NgayTiepNhan", serde_json::json!(["20230915143000"])),
            "`received_at`: expected text, found an array",
        ),
        (with("TrichYeuHoSo", Value::String("y".repeat(20_000))), ""),
        (
            with("DonViXuLy", Value::String("z".repeat(20_000))),
            "`unit` is longer than 10000",
        ),
        (
            with("DanhSachHoSoBoSung", Value::String("none".into())),
            "`supplements`: expected an array",
        ),
        (
            with(
                "DanhSachHoSoBoSung",
                serde_json::json!([{"NgayTiepNhanBoSung": "20230922100000"}]),
            ),
            "supplement without `requested_at`",
        ),
        (
            with("KenhThucHien", Value::String("9".into())),
            "unknown channel",
        ),
        (without("TrangThaiHoSo"), ""),
        (serde_json::json!([1, 2]), "expected a JSON object"),
        (serde_json::json!({"MaHoSo": "A"}), "no status"),
    ];
    for (record, want) in cases {
        let got = norm(&record);
        if want.is_empty() {
            // Unmapped long text is ignored; a dossier without a status but with an id
            // and no step fields is rejected below.
            continue;
        }
        let e = got.expect_err(want);
        assert!(e.reason.contains(want), "want `{want}`, got `{}`", e.reason);
    }
    // The id is kept with the rejection when there is one.
    let e = norm(&with("TrangThaiHoSo", Value::String("42".into()))).unwrap_err();
    assert_eq!(e.case_id.as_deref(), Some("000.00.12.H22-230915-0042"));
}

#[test]
fn custom_mappings_and_task_statuses() {
    let mut entries = BTreeMap::new();
    entries.insert("case_id".to_string(), "/id".to_string());
    entries.insert("status".to_string(), "/state".to_string());
    entries.insert("received_at".to_string(), "/assigned/at".to_string());
    entries.insert("due_at".to_string(), "/deadline".to_string());
    entries.insert("unit".to_string(), "/assignee".to_string());
    let mut m = Mapping::custom(&entries).unwrap();
    m.kind = Kind::Task;
    m.status_map.insert("open".into(), 4);
    m.status_map.insert("done".into(), 9);
    let v = serde_json::json!({"id": 17, "state": "open", "assigned": {"at": "2024-03-01 08:00"}, "deadline": "2024-03-15T17:00:00+07:00", "assignee": "Sở Tư pháp"});
    let Normalized::Case { case, .. } = normalize(&v, &m, "tasks", cal(), "s").unwrap() else {
        panic!()
    };
    assert_eq!(
        (case.case_id.as_str(), case.kind, case.status),
        ("17", Kind::Task, 4)
    );
    assert_eq!(case.due_at, Some(t("2024-03-15 17:00")));
    assert!(Mapping::custom(
        &[("nope".to_string(), "/x".to_string())]
            .into_iter()
            .collect()
    )
    .is_err());
    assert!(Mapping::custom(
        &[("case_id".to_string(), "x".to_string())]
            .into_iter()
            .collect()
    )
    .is_err());
}

#[test]
fn redaction_keeps_only_fields_known_to_carry_no_identity() {
    let r = redact(&domain_record());
    let text = r.to_string();
    for secret in [
        "042090001234",
        "Nguyễn Văn A",
        "a@example.vn",
        "0912345678",
        "Xin cấp phép xây dựng nhà ở tại phường X",
        "Trần B",
        "Lê C",
        "Bổ sung bản vẽ mặt bằng",
        "Don_de_nghi.pdf",
        "https://example.invalid/98121",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    // Ids, codes, dates, statuses and unit names stay readable.
    assert_eq!(r["MaHoSo"], "000.00.12.H22-230915-0042");
    assert_eq!(r["NgayTiepNhan"], "20230915143000");
    assert_eq!(r["TrangThaiHoSo"], "4");
    assert_eq!(r["DonViXuLy"], "UBND phường X");
    assert_eq!(r["TrichYeuHoSo"], "***");
    assert_eq!(r["ChuHoSo"], "***");
    assert_eq!(r["DinhDanhCHS"][0]["SoDinhDanh"], "***");
    assert_eq!(r["DanhSachHoSoBoSung"][0]["NgayBoSung"], "20230918090000");
    assert_eq!(r["DanhSachHoSoBoSung"][0]["NoiDungBoSung"], "***");
    // Empty stays empty: the shape of the record is visible.
    assert_eq!(r["Fax"], "");
    // A field nobody listed is hidden.
    let odd =
        redact(&serde_json::json!({"MaHoSo": "X", "TenNguoiNop": "Phạm D", "extra": [1, "y"]}));
    assert_eq!(
        odd,
        serde_json::json!({"MaHoSo": "X", "TenNguoiNop": "***", "extra": ["***", "***"]})
    );
    // Canonical names too: a step's title stays, its officer is a person.
    let step = redact(
        &serde_json::json!({"title": "Thẩm định", "officer": "Lê C", "acted_at": "2024-03-01"}),
    );
    assert_eq!(
        step,
        serde_json::json!({"title": "Thẩm định", "officer": "***", "acted_at": "2024-03-01"})
    );
    // In place and as a copy alike.
    let mut inplace = domain_record();
    redact_in_place(&mut inplace);
    assert_eq!(inplace, r);
}

#[test]
fn unparsable_bodies_show_their_shape_only() {
    let shown = redact_text(
        r#"{"MaHoSo": "H22-0042", "ChuHoSo": "Nguyễn Công Hải", "SoGiayTo": "042090001234", "NgayT"#,
    );
    assert!(!shown.contains("Nguy"), "{shown}");
    assert!(!shown.contains("042090001234"), "{shown}");
    assert!(shown.contains("-0042"), "{shown}");
    assert!(shown.starts_with(r#"{"***": "***22-0042""#), "{shown}");
}
