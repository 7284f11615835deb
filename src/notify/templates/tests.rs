use super::*;

#[test]
fn builtin_templates_render_in_both_languages() {
    let t = Templates::load(None).unwrap();
    assert!(t.check().is_empty(), "{:?}", t.check());
    let d = t
        .render("digest", "vi", &fixture_for("digest", "vi"))
        .unwrap();
    assert_eq!(
        d.subject,
        "Sở Tư pháp: 2 quá hạn, 1 chưa cập nhật tiến độ, 1 sắp đến hạn (15/03/2024)"
    );
    // Counts first, then the sections; the greeting says when it was sent.
    assert!(d.text.contains("\nTình hình hồ sơ của Sở Tư pháp chiều 15/03/2024 (lúc 15:43): 4 hồ sơ cần chú ý — 2 quá hạn · 1 chưa cập nhật tiến độ · 1 sắp đến hạn.\n"), "{}", d.text);
    assert!(d
        .text
        .contains("(Lưu ý: dữ liệu từ nguồn portal chỉ cập nhật đến 15/03/2024 06:10.)\n"));
    assert!(d.text.contains("\nQuá hạn (2, 1 đã xác nhận):\n- 000.00.12.H22-240301-0001 — Cấp giấy phép xây dựng nhà ở riêng lẻ: Hạn hết ngày 08/03/2024 · quá hạn 4 ngày làm việc · đang ở bước «Thẩm định» (Phòng Quản lý xây dựng)\n"), "{}", d.text);
    assert!(d.text.contains("\nChưa cập nhật tiến độ (1):\n- 000.00.12.H22-240307-0003 — Chứng thực bản sao từ bản chính: Hạn hết ngày 20/03/2024 · không có cập nhật từ 11/03/2024\n"), "{}", d.text);
    assert!(
        d.text.contains("\nNhiệm vụ được giao:\nSắp đến hạn (1):\n"),
        "{}",
        d.text
    );
    assert!(
        d.text.contains("\nViệc cần làm:\n- Hồ sơ quá hạn:"),
        "{}",
        d.text
    );
    let d = t
        .render("digest", "en", &fixture_for("digest", "en"))
        .unwrap();
    assert_eq!(
        d.subject,
        "Sở Tư pháp: 2 overdue, 1 no progress recorded, 1 due soon (15/03/2024)"
    );
    let vi = t.render("alert", "vi", &fixture("vi")).unwrap();
    assert_eq!(
        vi.subject,
        "Sở Tư pháp: 1 hồ sơ quá hạn mới, lâu nhất 4 ngày"
    );
    assert!(
        vi.text.starts_with(
            "Kính gửi Giám đốc Sở Tư pháp,\n\nSở Tư pháp: 1 hồ sơ quá hạn · 1 hồ sơ cần văn bản xin lỗi · 1 hồ sơ sắp đến hạn · 1 hồ sơ có bước quá hạn.\nTrang làm việc của đơn vị: https://slawatch.tinh.example.gov.vn/desk/unit/STP?t=…\n\n1. Hồ sơ 000.00.12.H22-240301-0001 — Cấp giấy phép xây dựng nhà ở riêng lẻ\n   [quá hạn 4 ngày làm việc] [cần văn bản xin lỗi]\n   Sở Tư pháp · Hạn hết ngày 08/03/2024 · đang ở bước «Thẩm định» (Phòng Quản lý xây dựng)\n   Xử lý trên trang làm việc: https://slawatch.tinh.example.gov.vn/desk/case/portal/000.00.12.H22-240301-0001?t=…\n   Xem trên hệ thống một cửa: https://motcua.example.gov.vn/hoso/000.00.12.H22-240301-0001\n\n2. Hồ sơ 000.00.12.H22-240311-0002"
        ),
        "{}",
        vi.text
    );
    assert!(vi.text.contains("\n3. Hồ sơ 000.00.12.H22-240304-0005 — Đăng ký khai sinh\n   [bước «Ký duyệt» quá hạn]\n"), "{}", vi.text);
    assert!(vi.text.contains("lúc 15:43 chiều ngày 15/03/2024"));
    // The case opens on the desk; the one-stop system's page is a second link.
    assert!(vi.html.contains(
        "<a href=\"https://slawatch.tinh.example.gov.vn/desk/case/portal/000.00.12.H22-240301-0001?t=…\""
    ));
    assert!(vi
        .html
        .contains("<a href=\"https://motcua.example.gov.vn/hoso/000.00.12.H22-240301-0001\""));
    assert!(vi
        .html
        .contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
    let en = t.render("alert", "en", &fixture("en")).unwrap();
    assert_eq!(
        en.subject,
        "Sở Tư pháp: 1 case newly overdue, the longest by 4 workdays"
    );
    assert!(en
        .text
        .contains("[overdue by 4 workdays] [apology letter due]"));
}

/// The contexts snapshotted: each message kind in each language, plus a bundle of a
/// case, an escalation summary and a stale data source in one e-mail.
fn snapshot_cases() -> Vec<(String, &'static str, &'static str, Value)> {
    use crate::alert::mail::{Item, Role};
    let mut out = Vec::new();
    for lang in LANGS {
        for name in NAMES {
            out.push((
                format!("{name}.{lang}"),
                name,
                lang,
                fixture_for(name, lang),
            ));
        }
        let mut items = sample_items(lang);
        items.truncate(1);
        for (unit, name, days) in [
            ("SXD", "Sở Xây dựng", [9, 48]),
            ("STC", "Sở Tài chính", [12, 12]),
        ] {
            for (i, d) in days.iter().enumerate() {
                items.push(Item {
                    rule: "escalated".into(),
                    level: 1,
                    role: Role::Summary,
                    source: "portal".into(),
                    case_id: format!("{unit}-{i}"),
                    kind: "dossier".into(),
                    unit: Some(unit.into()),
                    unit_name: name.into(),
                    overdue_workdays: *d,
                    ..Item::default()
                });
            }
        }
        items.push(Item {
            rule: "source_stale".into(),
            source: "ops".into(),
            case_id: "motcua-tinh".into(),
            unit_name: "—".into(),
            due: "15/03/2024 06:10".into(),
            note: Some("HTTP 503 Service Unavailable".into()),
            ..Item::default()
        });
        let mut ctx = crate::alert::mail::compose(&items, lang, 30);
        sending(&mut ctx, lang);
        out.push((format!("alert-bundle.{lang}"), "alert", lang, ctx));
    }
    out
}

/// Each built-in template rendered against its fixture, compared with the reviewed
/// file under `tests/snapshots/templates/` (`SLAWATCH_UPDATE_SNAPSHOTS=1` rewrites
/// them, with an `.html` beside each for a browser; review the diff before committing).
#[test]
fn templates_match_their_reviewed_snapshots() {
    let t = Templates::load(None).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/templates");
    let update = std::env::var_os("SLAWATCH_UPDATE_SNAPSHOTS").is_some();
    let mut wrong = Vec::new();
    for (file, name, lang, ctx) in snapshot_cases() {
        let r = t.render(name, lang, &ctx).unwrap();
        let got = format!(
            "Subject: {}\n\n----- text/plain -----\n{}\n----- text/html -----\n{}",
            r.subject, r.text, r.html
        );
        let path = dir.join(format!("{file}.snap"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            std::fs::write(dir.join(format!("{file}.html")), &r.html).unwrap();
            continue;
        }
        let want =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if want != got {
            let line = want
                .lines()
                .zip(got.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| want.lines().count().min(got.lines().count()));
            wrong.push(format!(
                "{file}: first difference at line {}:\n  want: {:?}\n  got:  {:?}",
                line + 1,
                want.lines().nth(line),
                got.lines().nth(line)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn html_is_escaped() {
    let t = Templates::load(None).unwrap();
    let mut items = sample_items("vi");
    items[0].procedure = Some("<script>x</script> & co".into());
    items[0].link = Some("https://x.example/?a=1&b=\"2\"".into());
    let mut ctx = crate::alert::mail::compose(&items, "vi", 30);
    sending(&mut ctx, "vi");
    let r = t.render("alert", "vi", &ctx).unwrap();
    assert!(r.html.contains("&lt;script&gt;x&lt;/script&gt; &amp; co"));
    assert!(r
        .html
        .contains("<a href=\"https://x.example/?a=1&amp;b=&quot;2&quot;\""));
    assert!(r.text.contains("<script>x</script> & co"));
    assert!(!r.html.contains("<script>"));
}

#[test]
fn a_bad_override_is_caught_by_check() {
    let dir = std::env::temp_dir().join(format!("slawatch-tpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("alert.vi.txt"), "Kính gửi {{ recipient.ten }}").unwrap();
    let t = Templates::load(Some(&dir)).unwrap();
    let errors = t.check();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("template alert.vi.txt:"),
        "{errors:?}"
    );
    // A syntax error is refused when loading.
    std::fs::write(dir.join("alert.en.html"), "{% for %}").unwrap();
    assert!(Templates::load(Some(&dir)).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
