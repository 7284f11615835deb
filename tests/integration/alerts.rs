//! Alerts end to end on a real store: the ladder fires once per alert (also after a
//! restart), messages wait for the sending window, go out through the file transport
//! and a real SMTP server (aiosmtpd), survive an SMTP outage without loss or
//! duplicates, and are logged on the case.

use crate::metrics::{now, shared_with_cases};
use crate::scratch;
use crate::support::dispatch_once;
use crate::support::SmtpSink;
use chrono::{DateTime, Duration, Utc};
use slawatch::config::AlertsConfig;
use slawatch::daemon::{alert_pass, Context, Shared};
use slawatch::notify::templates::Templates;
use slawatch::notify::{FileTransport, SmtpTransport};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default()
        .parse(bytes)
        .expect("a MIME message")
}

fn addresses(a: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| x.address().map(str::to_string))
            .collect()
    })
    .unwrap_or_default()
}

fn eml_files(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "eml"));
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Sends what is due at `at` as `.eml` files into `out`, with the built-in templates.
async fn dispatch_files(
    sh: &Shared,
    cfg: &AlertsConfig,
    out: &Path,
    at: DateTime<Utc>,
) -> slawatch::jobs::Dispatched {
    let t = FileTransport {
        dir: out.to_path_buf(),
    };
    dispatch_once(
        sh.store.as_ref(),
        &t,
        &Templates::load(None).unwrap(),
        cfg,
        at,
    )
    .await
    .unwrap()
}

async fn restarted(dir: &Path, sh: &Shared) -> Arc<Shared> {
    let s = slawatch::store::open(&format!("sqlite://{}/slawatch.db", dir.display()))
        .await
        .unwrap();
    let ctx: Context = (*sh.context()).clone();
    let again = Arc::new(Shared::new(s, ctx, "salt".into()));
    again.load(now()).await.unwrap();
    again
}

#[tokio::test]
async fn alerts_fire_once_and_go_out_as_files_in_the_window() {
    let dir = scratch("alerts-file");
    let sh = shared_with_cases(&dir, now()).await;
    let cfg = AlertsConfig {
        link_template: Some("https://motcua.example.gov.vn/hoso/{case_id}".into()),
        ..AlertsConfig::default()
    };
    // While the source is down (its last poll failed), its cases alarm nobody.
    let p = alert_pass(&sh, &cfg, now()).await.unwrap();
    assert_eq!((p.fired, p.queued), (0, 0));
    sh.touch_source("portal", now(), 6);
    // Fri 15/03/2024 10:00: inside the window. M-OVERDUE (STP, due 08/03, 4 workdays
    // late) wants `overdue` (STP's head and its copy address in full, the service
    // centre a summary), `escalated` level 1 (the province's chairman a summary, STP's
    // head told) and `stuck` (digest only): one message per person, never a Cc:
    // overdue 3 + escalated 2.
    let p = alert_pass(&sh, &cfg, now()).await.unwrap();
    assert_eq!((p.fired, p.queued), (3, 5), "{p:?}");
    // Again, and after a restart: nothing new.
    let p = alert_pass(&sh, &cfg, now()).await.unwrap();
    assert_eq!((p.fired, p.queued, p.resolved), (0, 0, 0));
    let sh2 = restarted(&dir, &sh).await;
    sh2.register_source("portal", "push");
    // The first process still holds the alerts lease: the new one waits.
    let p = alert_pass(&sh2, &cfg, now()).await.unwrap();
    assert_eq!((p.fired, p.queued, p.resolved), (0, 0, 0));
    // Once it has run out, the new one takes over, reading what was fired: nothing new.
    let p = alert_pass(&sh2, &cfg, now() + Duration::minutes(3))
        .await
        .unwrap();
    assert_eq!((p.fired, p.queued, p.resolved), (0, 0, 0));

    let out = dir.join("outbox");
    let t = FileTransport { dir: out.clone() };
    let templates = Templates::load(None).unwrap();
    let d = dispatch_once(sh.store.as_ref(), &t, &templates, &cfg, now())
        .await
        .unwrap();
    assert_eq!((d.sent, d.failed), (5, 0));
    let d = dispatch_once(sh.store.as_ref(), &t, &templates, &cfg, now())
        .await
        .unwrap();
    assert_eq!(d.sent, 0, "sent once");
    // Four people, one e-mail each: the head (overdue and escalated, one entry), the
    // unit's copy address, the service centre, the chairman.
    let files = eml_files(&out);
    assert_eq!(files.len(), 4);
    let msgs: Vec<_> = files.iter().map(|f| parse(f)).collect();
    let to = |addr: &str| {
        msgs.iter()
            .find(|m| addresses(m.to()) == [addr])
            .unwrap_or_else(|| panic!("no e-mail to {addr}"))
    };
    assert!(msgs.iter().all(|m| m.cc().is_none()), "no Cc");
    let head = to("giamdoc@stp.example.gov.vn");
    assert_eq!(
        head.subject(),
        Some("Sở Tư pháp: 1 hồ sơ quá hạn mới, lâu nhất 4 ngày")
    );
    let text = head.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(text.starts_with("Kính gửi Giám đốc Sở Tư pháp,"), "{text}");
    assert!(
        text.contains("\n1. Hồ sơ M-OVERDUE — Thủ tục thử\n   [quá hạn 4 ngày làm việc] [đã báo cáo UBND tỉnh Hà Tĩnh]\n   Sở Tư pháp · Hạn 08/03/2024 17:00\n"),
        "{text}"
    );
    assert_eq!(
        text.matches("M-OVERDUE").count(),
        2,
        "one entry and its link: {text}"
    );
    assert!(
        text.contains("Xem trên hệ thống một cửa: https://motcua.example.gov.vn/hoso/M-OVERDUE")
    );
    assert!(text.contains("\nViệc cần làm:\n- Hồ sơ quá hạn:"), "{text}");
    let html = head.body_html(0).unwrap();
    assert!(html.contains(">quá hạn 4 ngày làm việc</span>"), "{html}");
    assert!(head
        .message_id()
        .is_some_and(|id| id.starts_with("bundle-")));
    let copy = to("vanphong@stp.example.gov.vn");
    assert_eq!(copy.subject(), head.subject());
    // The service centre and the chairman oversee: a summary by unit, no case list.
    for addr in [
        "giamdoc@pvhcc.example.gov.vn",
        "chutich@ubnd.example.gov.vn",
    ] {
        let m = to(addr);
        assert_eq!(
            m.subject(),
            Some("Tổng hợp quá hạn: 1 đơn vị, 1 hồ sơ, lâu nhất 4 ngày"),
            "{addr}"
        );
        let text = m.body_text(0).unwrap().replace("\r\n", "\n");
        assert!(
            text.contains(
                "\nTổng hợp theo đơn vị:\n- Sở Tư pháp: 1 hồ sơ quá hạn 4 ngày làm việc\n"
            ),
            "{text}"
        );
        assert!(!text.contains("M-OVERDUE"), "{text}");
        assert!(m.message_id().is_some_and(|id| id.starts_with("alert-")));
    }

    // The case's notification log, through the store: each message to its person.
    let log = sh.store.notifications("portal", "M-OVERDUE").await.unwrap();
    assert_eq!(log.len(), 5, "{log:?}");
    assert!(log
        .iter()
        .all(|n| n.status == "sent" && n.channel == "file"));
    assert_eq!(sh.store.outbox_pending().await.unwrap(), 0);
}

#[tokio::test]
async fn messages_wait_for_the_next_window() {
    let dir = scratch("alerts-window");
    // Fri 15/03/2024 18:00 +07: after the last session.
    let evening = DateTime::parse_from_rfc3339("2024-03-15T18:00:00+07:00")
        .unwrap()
        .with_timezone(&Utc);
    let sh = shared_with_cases(&dir, evening).await;
    sh.touch_source("portal", evening, 6);
    let cfg = AlertsConfig::default();
    // Overdue to the head, its copy and the service centre; escalated to the
    // chairman and the head.
    let p = alert_pass(&sh, &cfg, evening).await.unwrap();
    assert_eq!(p.queued, 5);
    let t = FileTransport {
        dir: dir.join("outbox"),
    };
    let templates = Templates::load(None).unwrap();
    for at in [evening, evening + Duration::days(2)] {
        // Still held on Sunday.
        let d = dispatch_once(sh.store.as_ref(), &t, &templates, &cfg, at)
            .await
            .unwrap();
        assert_eq!(d.sent, 0);
    }
    // Mon 18/03 07:30 +07 (winter hours): released.
    let monday = DateTime::parse_from_rfc3339("2024-03-18T07:30:00+07:00")
        .unwrap()
        .with_timezone(&Utc);
    let d = dispatch_once(sh.store.as_ref(), &t, &templates, &cfg, monday)
        .await
        .unwrap();
    assert_eq!(d.sent, 5);
}

/// An alert held for the window is not sent once its case has left the state: M-OVERDUE
/// is returned on Saturday morning, so Monday's release announces nothing.
#[tokio::test]
async fn a_held_alert_whose_case_was_resolved_meanwhile_is_not_sent() {
    let dir = scratch("alerts-cancel");
    let evening = local("2024-03-15T18:00:00+07:00");
    let sh = shared_with_cases(&dir, evening).await;
    sh.touch_source("portal", evening, 6);
    let cfg = AlertsConfig::default();
    let p = alert_pass(&sh, &cfg, evening).await.unwrap();
    assert_eq!(
        p.queued, 5,
        "overdue (3 people) and escalated (2), held for Monday"
    );
    let saturday = local("2024-03-16T09:00:00+07:00");
    let v = serde_json::json!({
        "MaHoSo": "M-OVERDUE", "MaTTHC": "9.999999", "TenTTHC": "Thủ tục thử", "DonViXuLy": "Sở Tư pháp",
        "TrangThaiHoSo": "10", "NgayTiepNhan": "20240301080000", "NgayHenTra": "20240308170000",
        "NgayKetThucXuLy": "20240316083000", "NgayTra": "20240316083000", "ChuHoSo": "Nguyễn Văn A",
        "NgayCapNhat": "20240316083000",
    });
    slawatch::daemon::ingest(
        &sh,
        "portal",
        &slawatch::source::normalize::Mapping::dvcqg(),
        slawatch::daemon::Delivery::records(vec![slawatch::source::RawRecord::json(v, "t")]),
        saturday,
    )
    .await
    .unwrap();
    sh.touch_source("portal", saturday, 1);
    let p = alert_pass(&sh, &cfg, saturday).await.unwrap();
    assert_eq!((p.fired, p.resolved, p.queued), (0, 3, 0), "{p:?}");
    assert_eq!(sh.store.outbox_pending().await.unwrap(), 0);
    let d = dispatch_files(
        &sh,
        &cfg,
        &dir.join("outbox"),
        local("2024-03-18T07:30:00+07:00"),
    )
    .await;
    assert_eq!(d.sent, 0);
    assert!(eml_files(&dir.join("outbox")).is_empty());
}

#[tokio::test]
async fn smtp_outage_then_every_message_arrives_once() {
    let dir = scratch("alerts-smtp");
    let sh = shared_with_cases(&dir, now()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = AlertsConfig {
        transport: "smtp".into(),
        smtp_host: "127.0.0.1".into(),
        smtp_port: port,
        smtp_tls: "none".into(),
        from: "slawatch <slawatch@pvhcc.example.gov.vn>".into(),
        ..AlertsConfig::default()
    };
    let smtp = SmtpTransport::new(&cfg).unwrap();
    sh.touch_source("portal", now(), 6);
    let templates = Templates::load(None).unwrap();
    // Overdue to the head, its copy and the service centre; escalated to the
    // chairman and the head: five messages, four people.
    assert_eq!(alert_pass(&sh, &cfg, now()).await.unwrap().queued, 5);
    // The server is down: every attempt fails and is scheduled again.
    let d = dispatch_once(sh.store.as_ref(), &smtp, &templates, &cfg, now())
        .await
        .unwrap();
    assert_eq!((d.sent, d.failed), (0, 5));
    assert_eq!(sh.store.outbox_pending().await.unwrap(), 5);
    let Some(sink) = SmtpSink::start(&dir, Some(port)) else {
        assert!(
            std::env::var_os("CI_REQUIRE_PROMTOOL").is_none(),
            "aiosmtpd is required here"
        );
        eprintln!("aiosmtpd is not installed: SMTP delivery not tested");
        return;
    };
    // Before the back-off ends nothing is retried; after it, all go, once.
    let d = dispatch_once(
        sh.store.as_ref(),
        &smtp,
        &templates,
        &cfg,
        now() + Duration::seconds(10),
    )
    .await
    .unwrap();
    assert_eq!(d.sent, 0);
    let later = now() + Duration::minutes(2);
    let d = dispatch_once(sh.store.as_ref(), &smtp, &templates, &cfg, later)
        .await
        .unwrap();
    assert_eq!((d.sent, d.failed), (5, 0));
    let d = dispatch_once(sh.store.as_ref(), &smtp, &templates, &cfg, later)
        .await
        .unwrap();
    assert_eq!(d.sent, 0);
    let got = sink.messages();
    assert_eq!(got.len(), 4, "one e-mail per person");
    let m = got
        .iter()
        .map(|b| parse(b))
        .find(|m| addresses(m.to()) == ["giamdoc@stp.example.gov.vn"])
        .expect("the unit head's message");
    assert_eq!(
        m.subject(),
        Some("Sở Tư pháp: 1 hồ sơ quá hạn mới, lâu nhất 4 ngày")
    );
    assert_eq!(addresses(m.from()), ["slawatch@pvhcc.example.gov.vn"]);
    assert!(m
        .body_text(0)
        .unwrap()
        .replace("\r\n", "\n")
        .contains("   Sở Tư pháp · Hạn 08/03/2024 17:00\n"));
    assert!(m.body_html(0).unwrap().contains("Hồ sơ"));
    // Headers a mail system and a reader expect: the local zone, no auto-replies, a
    // Message-ID in the sender's domain.
    let raw = String::from_utf8_lossy(&got[0]).to_string();
    assert!(
        raw.contains("\r\nAuto-Submitted: auto-generated\r\n"),
        "{raw}"
    );
    let m = parse(&got[0]);
    let date = m.date().unwrap();
    assert_eq!(
        (date.tz_before_gmt, date.tz_hour, date.tz_minute),
        (false, 7, 0),
        "{date:?}"
    );
    assert!(m.message_id().unwrap().ends_with("@pvhcc.example.gov.vn"));
}

/// A backlog is one e-mail per recipient: two overdue dossiers of one unit give the
/// head one message listing both, most overdue first, and the chairman and the service
/// centre one summary each.
#[tokio::test]
async fn a_backlog_is_bundled_per_recipient() {
    let dir = scratch("alerts-bundle");
    let sh = shared_with_cases(&dir, now()).await;
    let second = serde_json::json!({
        "MaHoSo": "M-OVERDUE-2", "MaTTHC": "9.999999", "TenTTHC": "Thủ tục thử", "DonViXuLy": "Sở Tư pháp",
        "TrangThaiHoSo": "4", "NgayTiepNhan": "20240301080000", "NgayHenTra": "20240307170000",
        "NgayKetThucXuLy": "", "NgayTra": "",
    });
    slawatch::daemon::ingest(
        &sh,
        "portal",
        &slawatch::source::normalize::Mapping::dvcqg(),
        slawatch::daemon::Delivery::records(vec![slawatch::source::RawRecord::json(second, "t")]),
        now(),
    )
    .await
    .unwrap();
    sh.touch_source("portal", now(), 7);
    let cfg = AlertsConfig::default();
    let p = alert_pass(&sh, &cfg, now()).await.unwrap();
    // Per case: overdue to the head, its copy, the centre; escalated to the chairman
    // and the head.
    assert_eq!(p.queued, 10);
    let out = dir.join("outbox");
    let d = dispatch_files(&sh, &cfg, &out, now()).await;
    assert_eq!(d.sent, 10);
    let files = eml_files(&out);
    assert_eq!(files.len(), 4, "one e-mail per recipient");
    let msgs: Vec<_> = files.iter().map(|f| parse(f)).collect();
    let to = |addr: &str| {
        msgs.iter()
            .find(|m| addresses(m.to()) == [addr])
            .unwrap_or_else(|| panic!("no e-mail to {addr}"))
    };
    for addr in ["giamdoc@stp.example.gov.vn", "vanphong@stp.example.gov.vn"] {
        let m = to(addr);
        // M-OVERDUE-2 (due Thu 07/03) is a workday later than M-OVERDUE (Fri 08/03).
        assert_eq!(
            m.subject(),
            Some("Sở Tư pháp: 2 hồ sơ quá hạn mới, lâu nhất 5 ngày")
        );
        let text = m.body_text(0).unwrap();
        let first = text.find("1. Hồ sơ M-OVERDUE-2 —").expect(&text);
        let second = text.find("2. Hồ sơ M-OVERDUE —").expect(&text);
        assert!(first < second, "{text}");
        assert!(m.message_id().unwrap().starts_with("bundle-"));
    }
    for addr in [
        "chutich@ubnd.example.gov.vn",
        "giamdoc@pvhcc.example.gov.vn",
    ] {
        let m = to(addr);
        assert_eq!(
            m.subject(),
            Some("Tổng hợp quá hạn: 1 đơn vị, 2 hồ sơ, lâu nhất 5 ngày")
        );
        let text = m.body_text(0).unwrap().replace("\r\n", "\n");
        assert!(
            text.contains("- Sở Tư pháp: 2 hồ sơ quá hạn ≥ 4 ngày làm việc, lâu nhất 5 ngày\n"),
            "{text}"
        );
    }
    // Each case logs the bundle it went out in.
    let log = sh
        .store
        .notifications("portal", "M-OVERDUE-2")
        .await
        .unwrap();
    assert!(log
        .iter()
        .all(|n| n.message_id.as_deref().unwrap().starts_with("<bundle-")));
}

fn local(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The morning digest: workdays only (make-up Saturdays in, holidays out), one per
/// unit with something to report, once per day, saying when data is stale.
#[tokio::test]
async fn morning_digest_on_workdays_once_per_unit_and_day() {
    let dir = scratch("alerts-digest");
    let sh = shared_with_cases(&dir, now()).await;
    let cfg = AlertsConfig::default();
    // Sat 16/03/2024 and Mon 12/02/2024 (Tết): no digest.
    for day in ["2024-03-16T07:30:00+07:00", "2024-02-12T07:30:00+07:00"] {
        let p = slawatch::daemon::digest_pass(&sh, &cfg, local(day))
            .await
            .unwrap();
        assert!(!p.ran, "{day}");
    }
    // Sat 04/05/2024, a make-up workday: it runs.
    let p = slawatch::daemon::digest_pass(&sh, &cfg, local("2024-05-04T07:30:00+07:00"))
        .await
        .unwrap();
    assert!(p.ran);
    // Fri 15/03/2024 07:30: STP has M-OVERDUE (overdue, also stuck: listed once);
    // nothing else is due soon, late or stuck.
    let morning = local("2024-03-15T07:30:00+07:00");
    let p = slawatch::daemon::digest_pass(&sh, &cfg, morning)
        .await
        .unwrap();
    // One message each for the head and the unit's copy address (never a Cc).
    assert_eq!((p.units, p.cases, p.queued), (1, 1, 2));
    let again = slawatch::daemon::digest_pass(&sh, &cfg, morning + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(again.queued, 2);
    let out = dir.join("outbox");
    let d = dispatch_files(&sh, &cfg, &out, morning + Duration::minutes(6)).await;
    // Today's, once per person (the repeat was the same message); the one built for
    // 04/05 waits for its own morning.
    assert_eq!(d.sent, 2);
    let files = eml_files(&out);
    let today = files
        .iter()
        .map(|f| parse(f))
        .find(|m| addresses(m.to()) == ["giamdoc@stp.example.gov.vn"])
        .expect("today's digest");
    assert_eq!(today.subject(), Some("Sở Tư pháp: 1 quá hạn (15/03/2024)"));
    let text = today.body_text(0).unwrap().replace("\r\n", "\n");
    // The source has not been polled successfully: the digest says so.
    assert!(
        text.contains("(Lưu ý: dữ liệu từ nguồn portal chỉ cập nhật đến —.)"),
        "{text}"
    );
    // Counts first, said at the time of sending (07:36, the morning).
    assert!(
        text.contains("\nTình hình hồ sơ của Sở Tư pháp sáng 15/03/2024 (lúc 07:36): 1 hồ sơ cần chú ý — 1 quá hạn.\n"),
        "{text}"
    );
    assert!(
        text.contains("\nQuá hạn (1):\n- M-OVERDUE — Thủ tục thử: Hạn 08/03/2024 17:00 · quá hạn 4 ngày làm việc · không có cập nhật từ 01/03/2024\n"),
        "{text}"
    );
    let log = sh.store.notifications("portal", "M-OVERDUE").await.unwrap();
    assert!(log.iter().any(|n| n.rule == "digest"), "{log:?}");
}

/// The weekly report on a worked example: STP had an overdue case in 3 of the 4 weeks
/// before Mon 18/03/2024 (19/02, 26/02, 11/03), SXD in 1; STP has 1 overdue case open
/// now and a quarter-to-date on-time ratio of 2/4 (see the metrics test).
#[tokio::test]
async fn weekly_report_ranks_units_and_names_the_regularly_late() {
    let dir = scratch("alerts-weekly");
    let sh = shared_with_cases(&dir, now()).await;
    sh.touch_source("portal", now(), 6);
    let cfg = AlertsConfig::default();
    // The alert pass of Fri 15/03 records STP's overdue case in the week of 11/03.
    alert_pass(&sh, &cfg, now()).await.unwrap();
    let mark = |u: &str, w: &str| (u.to_string(), w.to_string(), 1i64);
    sh.store
        .unit_weeks_mark(&[
            mark("STP", "2024-02-19"),
            mark("STP", "2024-02-26"),
            mark("SXD", "2024-03-04"),
        ])
        .await
        .unwrap();
    assert_eq!(
        sh.store.unit_weeks_since("2024-03-11").await.unwrap(),
        vec![("STP".to_string(), "2024-03-11".to_string())]
    );
    // Tue 19/03 is not the first workday of its week: nothing.
    let tuesday = local("2024-03-19T08:00:00+07:00");
    assert!(!slawatch::daemon::weekly_pass(&sh, &cfg, tuesday)
        .await
        .unwrap());
    let monday = local("2024-03-18T08:00:00+07:00");
    assert!(slawatch::daemon::weekly_pass(&sh, &cfg, monday)
        .await
        .unwrap());
    let out = dir.join("outbox");
    let d = dispatch_files(&sh, &cfg, &out, monday + Duration::minutes(1)).await;
    assert!(d.sent >= 1);
    let report = eml_files(&out)
        .iter()
        .map(|f| parse(f).into_owned())
        .find(|m| {
            m.subject()
                .is_some_and(|s| s.starts_with("[slawatch] Báo cáo tuần"))
        })
        .expect("the weekly report");
    assert_eq!(
        addresses(report.to()),
        ["chanhvanphong@ubnd.example.gov.vn"]
    );
    let text = report.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(
        text.contains(
            "Đơn vị có hồ sơ đang quá hạn:\n1. Sở Tư pháp (Giám đốc Sở Tư pháp): 1 hồ sơ\n"
        ),
        "{text}"
    );
    // Vietnamese writes the decimal comma.
    assert!(text.contains("1. Sở Tư pháp: 50,0% (2/4)\n"), "{text}");
    assert!(
        text.contains("từ 19/02/2024 đến 17/03/2024):\n- Sở Tư pháp, thủ trưởng: Giám đốc Sở Tư pháp (3/4 tuần)\n"),
        "{text}"
    );
    assert!(!text.contains("Sở Xây dựng, thủ trưởng"), "{text}");
}

/// A request the webhook received: its Authorization header and JSON body.
type Posted = (Option<String>, serde_json::Value);

/// A stale source is an operational fault: IT staff are told at any hour (the unit
/// heads' alerts wait for the window), once, through a webhook here (a real local
/// HTTP server receiving the JSON).
#[tokio::test]
async fn a_stale_source_reaches_it_staff_at_night_through_the_webhook() {
    use axum::routing::post;
    let received: Arc<std::sync::Mutex<Vec<Posted>>> = Default::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, axum::Json(v): axum::Json<serde_json::Value>| {
                let store = store.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_string);
                    store.lock().unwrap().push((auth, v));
                    "ok"
                }
            },
        ),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let dir = scratch("alerts-ops");
    // Fri 15/03/2024 22:00 +07: outside the window.
    let night = local("2024-03-15T22:00:00+07:00");
    let sh = shared_with_cases(&dir, night).await;
    // The last successful poll was at 20:00: two hours without fresh data.
    sh.touch_source("portal", night - Duration::hours(2), 6);
    std::env::set_var("SLAWATCH_TEST_HOOK_TOKEN", "hook-secret");
    let cfg = AlertsConfig {
        transport: "webhook".into(),
        webhook_url: Some(format!("http://{addr}/hook")),
        webhook_token_env: "SLAWATCH_TEST_HOOK_TOKEN".into(),
        it_recipients: vec!["it@pvhcc.example.gov.vn".into()],
        ..AlertsConfig::default()
    };
    let p = alert_pass(&sh, &cfg, night).await.unwrap();
    // The source_stale fault, and the cases' alerts (held for the morning).
    // (M-OVERDUE's overdue to three people and escalated to two.)
    assert!(p.fired >= 1 && p.queued == 6, "{p:?}");
    let hook = slawatch::notify::WebhookTransport::new(&cfg).unwrap();
    let templates = Templates::load(None).unwrap();
    let d = dispatch_once(sh.store.as_ref(), &hook, &templates, &cfg, night)
        .await
        .unwrap();
    assert_eq!(d.sent, 1, "only the operational fault goes out at night");
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.as_deref(), Some("Bearer hook-secret"));
    let v = &got[0].1;
    assert_eq!(v["to"]["email"], "it@pvhcc.example.gov.vn");
    assert_eq!(v["subject"], "Nguồn dữ liệu portal không cập nhật");
    assert!(v["text"]
        .as_str()
        .unwrap()
        .contains("Nguồn dữ liệu portal: lần lấy dữ liệu thành công gần nhất 15/03/2024 20:00."));
    // Again: nothing new while it stays stale; fresh data resolves it.
    assert_eq!(alert_pass(&sh, &cfg, night).await.unwrap().queued, 0);
    sh.touch_source("portal", night, 6);
    let p = alert_pass(&sh, &cfg, night + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(p.resolved, 1);
}

/// A re-appointed due is a new version of the alert: `overdue` fires again when the
/// new due passes too; `start_after` keeps earlier alerts out of e-mail; a pilot's
/// override recipient receives everything.
#[tokio::test]
async fn reappointment_rearms_overdue_and_going_live_quietly() {
    let dir = scratch("alerts-reappoint");
    let sh = shared_with_cases(&dir, now()).await;
    sh.touch_source("portal", now(), 6);
    // Going live at 12:00: alerts firing at 10:00 are recorded but not mailed.
    let quiet = AlertsConfig {
        start_after: Some("2024-03-15T12:00:00+07:00".into()),
        ..AlertsConfig::default()
    };
    let p = alert_pass(&sh, &quiet, now()).await.unwrap();
    assert_eq!((p.fired, p.queued), (3, 0));
    // The unit re-appoints M-OVERDUE to Tue 12/03 17:00, still past on Fri 15/03.
    let mut v = serde_json::json!({
        "MaHoSo": "M-OVERDUE", "MaTTHC": "9.999999", "TenTTHC": "Thủ tục thử", "DonViXuLy": "Sở Tư pháp",
        "TrangThaiHoSo": "4", "NgayTiepNhan": "20240301080000", "NgayHenTra": "20240312170000",
        "NgayKetThucXuLy": "", "NgayTra": "", "ChuHoSo": "Nguyễn Văn A",
    });
    v["NgayCapNhat"] = serde_json::json!("20240315100000");
    let later = now() + Duration::hours(3);
    slawatch::daemon::ingest(
        &sh,
        "portal",
        &slawatch::source::normalize::Mapping::dvcqg(),
        slawatch::daemon::Delivery::records(vec![slawatch::source::RawRecord::json(v, "t")]),
        later,
    )
    .await
    .unwrap();
    let pilot = AlertsConfig {
        start_after: Some("2024-03-15T12:00:00+07:00".into()),
        override_recipient: Some("pilot@pvhcc.example.gov.vn".into()),
        ..AlertsConfig::default()
    };
    let p = alert_pass(&sh, &pilot, later).await.unwrap();
    // overdue and stuck of the new due fire (escalation: 2 workdays late, not yet);
    // the old due's alerts resolve.
    assert_eq!((p.fired, p.resolved), (2, 3), "{p:?}");
    assert_eq!(
        p.queued, 3,
        "overdue again, to the head, its copy and the centre (stuck is a digest rule)"
    );
    let out = dir.join("outbox");
    let d = dispatch_files(&sh, &pilot, &out, later).await;
    assert_eq!(d.sent, 3);
    // The pilot receives what each of the three would have, one e-mail each.
    let files = eml_files(&out);
    assert_eq!(files.len(), 3);
    let msgs: Vec<_> = files.iter().map(|f| parse(f)).collect();
    assert!(msgs
        .iter()
        .all(|m| addresses(m.to()) == ["pilot@pvhcc.example.gov.vn"] && m.cc().is_none()));
    let listed = msgs
        .iter()
        .filter(|m| m.body_text(0).unwrap().contains("Hạn 12/03/2024 17:00"))
        .count();
    assert_eq!(listed, 2, "the head's and the copy's list the case");
}

/// Pacing: an alert to a recipient who was written to minutes ago waits until ten
/// minutes after that e-mail (and goes out with whatever else came meanwhile); past
/// the hourly cap, the rest waits for the hour to roll.
#[tokio::test]
async fn the_bundling_window_and_the_hourly_cap_hold_alerts_back() {
    use slawatch::jobs::{dispatch_paced, Pace};
    for (window, cap, release) in [(10, 20, 10), (0, 1, 60)] {
        let dir = scratch("alerts-pace");
        let sh = shared_with_cases(&dir, now()).await;
        sh.touch_source("portal", now(), 6);
        let cfg = AlertsConfig {
            bundle_window_minutes: window,
            hourly_cap: cap,
            ..AlertsConfig::default()
        };
        let pace = Pace::default();
        let t = FileTransport {
            dir: dir.join("outbox"),
        };
        let templates = Templates::load(None).unwrap();
        let send = |at: DateTime<Utc>| {
            let (sh, cfg, pace, t, templates) = (&sh, &cfg, &pace, &t, &templates);
            async move {
                dispatch_paced(
                    sh.store.as_ref(),
                    t,
                    templates,
                    cfg,
                    pace,
                    at,
                    crate::support::vietnam(),
                )
                .await
                .unwrap()
            }
        };
        // M-OVERDUE: overdue to the head, its copy and the centre; escalated to the
        // chairman and the head (four people).
        assert_eq!(alert_pass(&sh, &cfg, now()).await.unwrap().queued, 5);
        assert_eq!(send(now()).await.sent, 5);
        // Two minutes later a second STP dossier is overdue (5 workdays: escalated).
        let second = serde_json::json!({
            "MaHoSo": "M-OVERDUE-2", "MaTTHC": "9.999999", "DonViXuLy": "Sở Tư pháp",
            "TrangThaiHoSo": "4", "NgayTiepNhan": "20240301080000", "NgayHenTra": "20240307170000",
        });
        let t2 = now() + Duration::minutes(2);
        slawatch::daemon::ingest(
            &sh,
            "portal",
            &slawatch::source::normalize::Mapping::dvcqg(),
            slawatch::daemon::Delivery::records(vec![slawatch::source::RawRecord::json(
                second, "t",
            )]),
            t2,
        )
        .await
        .unwrap();
        // The same four people: every one was written to two minutes ago.
        assert_eq!(alert_pass(&sh, &cfg, t2).await.unwrap().queued, 5);
        let d = send(t2).await;
        assert_eq!((d.sent, d.postponed), (0, 5), "window {window}, cap {cap}");
        // Not before the release; then all go.
        let d = send(now() + Duration::minutes(release) - Duration::seconds(1)).await;
        assert_eq!(d.sent, 0);
        let d = send(now() + Duration::minutes(release)).await;
        assert_eq!(d.sent, 5, "window {window}, cap {cap}");
        // Postponing is not a failed attempt.
        assert_eq!(sh.store.outbox_pending().await.unwrap(), 0);
    }
}

/// An acknowledgement (SPEC §10) stops repeats of its rule for its due: the alert is
/// recorded without a message, further escalation levels stay quiet, an
/// acknowledgement of another due stops nothing, and the morning digest still lists
/// the case, after the others, with who acknowledged it and their note.
#[tokio::test]
async fn an_acknowledgement_stops_repeats_and_marks_the_digest() {
    use slawatch::store::Ack;
    let dir = scratch("alerts-ack");
    let sh = shared_with_cases(&dir, now()).await;
    sh.touch_source("portal", now(), 6);
    let cfg = AlertsConfig::default();
    // M-OVERDUE is due Fri 08/03/2024 17:00.
    let due = local("2024-03-08T17:00:00+07:00");
    let ack = |rule: &str, due_at: DateTime<Utc>, at: DateTime<Utc>| Ack {
        source: "portal".into(),
        case_id: "M-OVERDUE".into(),
        rule: rule.into(),
        due_at: Some(due_at),
        note: "Đã gửi phiếu xin lỗi và hẹn lại".into(),
        by: "Trần Thị B".into(),
        at,
    };
    sh.store
        .ack_add(&ack("overdue", due, local("2024-03-15T09:05:00+07:00")))
        .await
        .unwrap();
    // An acknowledgement of an earlier appointment does not cover this due.
    sh.store
        .ack_add(&ack(
            "escalated",
            local("2024-03-05T17:00:00+07:00"),
            local("2024-03-04T09:00:00+07:00"),
        ))
        .await
        .unwrap();
    // Fri 15/03 10:00: overdue (acknowledged: recorded, no message), escalated level 1
    // (mailed: the chairman's summary, the head told), stuck (digest rule).
    let p = alert_pass(&sh, &cfg, now()).await.unwrap();
    assert_eq!((p.fired, p.queued, p.acknowledged), (3, 2, 1), "{p:?}");
    // The unit acknowledges the escalation too. Fri 22/03 10:00, 9 workdays late:
    // level 3 fires (the top again) and level 1 resolves, without a message. M-ONTRACK
    // and M-UNKNOWN (received 14/03, untouched for 3 workdays since) are stuck now:
    // digest-only alerts.
    sh.store
        .ack_add(&ack("escalated", due, local("2024-03-15T11:00:00+07:00")))
        .await
        .unwrap();
    let later = local("2024-03-22T10:00:00+07:00");
    sh.touch_source("portal", later, 0);
    slawatch::daemon::reevaluate(&sh, later).await.unwrap();
    let p = alert_pass(&sh, &cfg, later).await.unwrap();
    assert_eq!(
        (p.fired, p.resolved, p.queued, p.acknowledged),
        (3, 1, 0, 1),
        "{p:?}"
    );

    // The morning digest still lists it, marked.
    let morning = local("2024-03-22T07:30:00+07:00");
    let d = slawatch::daemon::digest_pass(&sh, &cfg, morning)
        .await
        .unwrap();
    // STP's to its head and its copy address, and the unknown unit's to the service
    // centre.
    assert_eq!(d.queued, 3);
    let out = dir.join("outbox");
    let sent = dispatch_files(&sh, &cfg, &out, later).await;
    // The three digests; the escalation queued on 15/03 was acknowledged before it
    // went out, so it is cancelled, not sent.
    assert_eq!(sent.sent, 3);
    let digest = eml_files(&out)
        .iter()
        .map(|f| parse(f).into_owned())
        .find(|m| addresses(m.to()) == ["giamdoc@stp.example.gov.vn"])
        .expect("the digest");
    assert!(digest
        .subject()
        .unwrap()
        .starts_with("Sở Tư pháp: 1 quá hạn"));
    let text = digest.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(
        text.contains(
            "\nQuá hạn (1, 1 đã xác nhận):\n- M-OVERDUE — Thủ tục thử: Hạn 08/03/2024 17:00 · quá hạn 9 ngày làm việc · không có cập nhật từ 01/03/2024\n  Đã xác nhận: Trần Thị B, 15/03/2024 09:05: Đã gửi phiếu xin lỗi và hẹn lại\n"
        ),
        "{text}"
    );
}

/// A private certificate authority and a server certificate for `localhost` it
/// issued (openssl): (ca.pem, cert.pem, key.pem).
fn private_pki(dir: &Path) -> Option<(String, String, String)> {
    std::fs::create_dir_all(dir).unwrap();
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let steps: [Vec<String>; 3] = [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=slawatch test authority",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
        ]
        .into_iter()
        .map(str::to_string)
        .collect(),
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &p("key.pem"),
            "-out",
            &p("leaf.csr"),
        ]
        .into_iter()
        .map(str::to_string)
        .collect(),
        vec![
            "x509",
            "-req",
            "-in",
            &p("leaf.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p("leaf.ext"),
            "-out",
            &p("cert.pem"),
        ]
        .into_iter()
        .map(str::to_string)
        .collect(),
    ];
    for args in steps {
        let ok = Command::new("openssl")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
    }
    Some((p("ca.pem"), p("cert.pem"), p("key.pem")))
}

/// SMTP over real TLS, both ways a province's server may ask for it: STARTTLS
/// (required by the server before MAIL) and implicit TLS, each with AUTH whose
/// credentials come from the environment, the server's certificate issued by a
/// private authority trusted through `smtp_ca_file`. Without that file, or with a
/// wrong password, nothing is sent.
#[tokio::test]
async fn smtp_over_tls_with_a_private_authority_and_credentials() {
    use slawatch::alert::Recipient;
    use slawatch::notify::{Email, Transport};
    let dir = scratch("alerts-tls");
    let required = std::env::var_os("CI_REQUIRE_PROMTOOL").is_some();
    let Some((ca, cert, key)) = private_pki(&dir.join("pki")) else {
        assert!(!required, "openssl is required here");
        eprintln!("openssl is not installed: SMTP over TLS not tested");
        return;
    };
    std::env::set_var("SLAWATCH_TEST_SMTP_USER", "slawatch");
    std::env::set_var("SLAWATCH_TEST_SMTP_PASSWORD", "mat-khau-bi-mat");
    std::env::set_var("SLAWATCH_TEST_SMTP_WRONG", "doan-bua");
    let rendered = Templates::load(None)
        .unwrap()
        .render("alert", "vi", &slawatch::notify::templates::fixture("vi"))
        .unwrap();
    for (mode, server_mode) in [("starttls", "starttls"), ("tls", "implicit")] {
        let Some(sink) = SmtpSink::start_with(
            &dir.join(mode),
            None,
            &[
                "--tls",
                server_mode,
                "--cert",
                &cert,
                "--key",
                &key,
                "--user",
                "slawatch",
                "--password",
                "mat-khau-bi-mat",
            ],
        ) else {
            assert!(!required, "aiosmtpd is required here");
            eprintln!("aiosmtpd is not installed: SMTP over TLS not tested");
            return;
        };
        let cfg = AlertsConfig {
            transport: "smtp".into(),
            smtp_host: "localhost".into(),
            smtp_port: sink.port(),
            smtp_tls: mode.into(),
            smtp_ca_file: Some(ca.clone()),
            smtp_username_env: "SLAWATCH_TEST_SMTP_USER".into(),
            smtp_password_env: "SLAWATCH_TEST_SMTP_PASSWORD".into(),
            ..AlertsConfig::default()
        };
        let email = Email {
            message_id: format!("<tls-{mode}@slawatch>"),
            from: "slawatch <slawatch@pvhcc.example.gov.vn>".into(),
            to: Recipient {
                name: "Giám đốc Sở Tư pháp".into(),
                email: "giamdoc@stp.example.gov.vn".into(),
            },
            cc: Vec::new(),
            date: chrono::DateTime::parse_from_rfc3339("2024-03-15T08:00:00+07:00").unwrap(),
            items: 1,
            rendered: rendered.clone(),
            attachments: Vec::new(),
        };
        // The public roots alone do not know the private authority.
        let untrusted = SmtpTransport::new(&AlertsConfig {
            smtp_ca_file: None,
            ..cfg.clone()
        })
        .unwrap();
        assert!(untrusted.send(&email).await.is_err(), "{mode}: untrusted");
        let wrong = SmtpTransport::new(&AlertsConfig {
            smtp_password_env: "SLAWATCH_TEST_SMTP_WRONG".into(),
            ..cfg.clone()
        })
        .unwrap();
        assert!(wrong.send(&email).await.is_err(), "{mode}: wrong password");
        assert!(sink.messages().is_empty(), "{mode}");

        SmtpTransport::new(&cfg)
            .unwrap()
            .send(&email)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        let got = sink.messages();
        assert_eq!(got.len(), 1, "{mode}");
        let m = parse(&got[0]);
        assert_eq!(m.subject(), Some(rendered.subject.as_str()), "{mode}");
        assert_eq!(addresses(m.to()), ["giamdoc@stp.example.gov.vn"]);
        assert_eq!(
            m.message_id(),
            Some(format!("tls-{mode}@slawatch").as_str())
        );
    }
}

/// A report the daemon missed (down at 07:30, or a replica died halfway) goes out late
/// rather than never: the next evaluation round catches up while today's sending window
/// is open, once, and only on the days the report is due.
#[tokio::test]
async fn missed_reports_are_caught_up_within_the_day() {
    use slawatch::daemon::{digest_catch_up, digest_pass, weekly_catch_up};
    let dir = scratch("alerts-catch-up");
    let sh = shared_with_cases(&dir, now()).await;
    let cfg = AlertsConfig::default();
    // Fri 15/03/2024, digest at 07:30. The source has not been tried since start-up:
    // wait for its first poll, so the digest does not call fresh data stale.
    let p = digest_catch_up(&sh, &cfg, local("2024-03-15T09:00:00+07:00"))
        .await
        .unwrap();
    assert!(!p.ran);
    sh.touch_source("portal", local("2024-03-15T09:00:00+07:00"), 6);
    // 07:00: not due yet; 07:32: the scheduled run may still be going.
    for at in ["2024-03-15T07:00:00+07:00", "2024-03-15T07:32:00+07:00"] {
        assert!(
            !digest_catch_up(&sh, &cfg, local(at)).await.unwrap().ran,
            "{at}"
        );
    }
    // 09:05, nothing queued today: caught up, once (STP's head and its copy address).
    let p = digest_catch_up(&sh, &cfg, local("2024-03-15T09:05:00+07:00"))
        .await
        .unwrap();
    assert_eq!((p.ran, p.queued), (true, 2));
    let again = digest_catch_up(&sh, &cfg, local("2024-03-15T09:06:00+07:00"))
        .await
        .unwrap();
    assert!(!again.ran);
    // Mon 18/03: the scheduled run went out, nothing to catch up.
    let monday = local("2024-03-18T07:30:00+07:00");
    assert!(digest_pass(&sh, &cfg, monday).await.unwrap().ran);
    assert!(
        !digest_catch_up(&sh, &cfg, monday + Duration::hours(2))
            .await
            .unwrap()
            .ran
    );
    // Tue 19/03 at 18:00, after the last session: too late for today.
    assert!(
        !digest_catch_up(&sh, &cfg, local("2024-03-19T18:00:00+07:00"))
            .await
            .unwrap()
            .ran
    );
    // Sat 16/03: no digest to catch up.
    assert!(
        !digest_catch_up(&sh, &cfg, local("2024-03-16T09:00:00+07:00"))
            .await
            .unwrap()
            .ran
    );
    // The weekly report (08:00 on the first workday of the week): caught up on Mon
    // 18/03 at 10:00, once; not on Tuesday.
    assert!(
        !weekly_catch_up(&sh, &cfg, local("2024-03-19T10:00:00+07:00"))
            .await
            .unwrap()
    );
    assert!(
        weekly_catch_up(&sh, &cfg, local("2024-03-18T10:00:00+07:00"))
            .await
            .unwrap()
    );
    assert!(
        !weekly_catch_up(&sh, &cfg, local("2024-03-18T10:01:00+07:00"))
            .await
            .unwrap()
    );
}

/// A backlog of more than 2,000 messages (500 overdue dossiers of four departments,
/// long past due, released at once) reaches each person as exactly one e-mail, and no
/// e-mail lists a case of a unit its reader does not answer for: each department's
/// head (and STP's copy address) sees only that department's cases; the chairman and
/// the service centre see a summary by unit and no case at all.
#[tokio::test]
async fn a_large_backlog_is_one_e_mail_per_person_and_each_sees_only_their_units() {
    let dir = scratch("alerts-large-backlog");
    let sh = shared_with_cases(&dir, now()).await;
    let units = [
        ("STP", "Sở Tư pháp"),
        ("SXD", "Sở Xây dựng"),
        ("STC", "Sở Tài chính"),
        ("SNNMT", "Sở Nông nghiệp và Môi trường"),
    ];
    let records: Vec<_> = (0..500)
        .map(|i| {
            let (code, name) = units[i % units.len()];
            slawatch::source::RawRecord::json(
                serde_json::json!({
                    "MaHoSo": format!("BL-{code}-{i:03}"), "MaTTHC": "9.999999", "TenTTHC": "Thủ tục thử",
                    "DonViXuLy": name, "TrangThaiHoSo": "4", "NgayTiepNhan": "20240102080000",
                    "NgayHenTra": "20240104170000",
                }),
                "t",
            )
        })
        .collect();
    slawatch::daemon::ingest(
        &sh,
        "portal",
        &slawatch::source::normalize::Mapping::dvcqg(),
        slawatch::daemon::Delivery::records(records),
        now(),
    )
    .await
    .unwrap();
    sh.touch_source("portal", now(), 506);
    let cfg = AlertsConfig::default();
    let p = alert_pass(&sh, &cfg, now()).await.unwrap();
    // Per dossier: overdue to its head and the service centre (STP's also to its copy
    // address), escalated to the chairman and the head; plus M-OVERDUE's five.
    assert_eq!(p.queued, 500 * 4 + 125 + 5, "{p:?}");
    let out = dir.join("outbox");
    let mut sent = 0;
    loop {
        let d = dispatch_files(&sh, &cfg, &out, now()).await;
        if d.sent + d.failed + d.dead + d.postponed == 0 {
            break;
        }
        assert_eq!((d.failed, d.postponed), (0, 0));
        sent += d.sent;
    }
    assert_eq!(sent, p.queued);
    let files = eml_files(&out);
    let msgs: Vec<_> = files.iter().map(|f| parse(f)).collect();
    let mut per_person: std::collections::BTreeMap<String, usize> = Default::default();
    let mut items = 0;
    for m in &msgs {
        *per_person.entry(addresses(m.to()).join(",")).or_default() += 1;
        items += m
            .header_raw("X-Slawatch-Items")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap();
        assert!(m.cc().is_none());
    }
    // Four heads, STP's copy address, the chairman, the service centre.
    assert_eq!(per_person.len(), 7, "{per_person:?}");
    assert!(per_person.values().all(|n| *n == 1), "{per_person:?}");
    assert_eq!(items, sent, "every message in exactly one e-mail");
    let of = |addr: &str| {
        msgs.iter()
            .find(|m| addresses(m.to()) == [addr])
            .unwrap()
            .body_text(0)
            .unwrap()
            .replace("\r\n", "\n")
    };
    for (addr, code) in [
        ("giamdoc@stp.example.gov.vn", "STP"),
        ("vanphong@stp.example.gov.vn", "STP"),
        ("giamdoc@sxd.example.gov.vn", "SXD"),
        ("giamdoc@stc.example.gov.vn", "STC"),
    ] {
        let text = of(addr);
        let listed: Vec<&str> = text
            .split(|c: char| c.is_whitespace())
            .filter(|w| w.starts_with("BL-"))
            .collect();
        assert_eq!(listed.len(), 30, "the list limit: {text}");
        assert!(
            listed.iter().all(|w| w.starts_with(&format!("BL-{code}-"))),
            "{addr}: {listed:?}"
        );
        // The rest is counted, never dropped silently.
        let more = if code == "STP" { 96 } else { 95 };
        assert!(text.contains(&format!("… và {more} hồ sơ khác")), "{text}");
    }
    for addr in [
        "chutich@ubnd.example.gov.vn",
        "giamdoc@pvhcc.example.gov.vn",
    ] {
        let text = of(addr);
        assert!(!text.contains("BL-"), "{addr}: {text}");
        assert!(text.contains("- Sở Tư pháp: 126 hồ sơ quá hạn"), "{text}");
    }
}

/// `notify preview` renders what would be sent now, exactly as the dispatcher would,
/// from a store it only reads: the alert e-mails of a case (one per person), a unit's
/// digest, the weekly report; nothing is queued.
#[tokio::test]
async fn notify_preview_shows_what_would_be_sent_and_records_nothing() {
    let dir = scratch("alerts-preview");
    let sh = shared_with_cases(&dir, now()).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        dir.join("preview.toml"),
        format!(
            "[catalogue]\nfile = \"{}\"\n[directory]\nfile = \"{}\"\n[store]\nurl = \"sqlite://{}/slawatch.db\"\n",
            root.join("config/procedures.toml").display(),
            root.join("config/units.toml").display(),
            dir.display()
        ),
    )
    .unwrap();
    let run = |at: &str, args: &[&str]| {
        let o = crate::slawatch_at(at)
            .args(["--config", "preview.toml", "notify", "preview"])
            .args(args)
            .current_dir(&dir)
            .env_remove("SLAWATCH_LOG")
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    // Fri 15/03/2024 10:00: M-OVERDUE's overdue and escalation, one e-mail per person.
    let (code, out, err) = run(
        "2024-03-15T10:00:00+07:00",
        &["alert", "--case", "M-OVERDUE"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.matches("\nSubject: ").count() + out.starts_with("Subject: ") as usize,
        4,
        "{out}"
    );
    assert!(out.contains("To: giamdoc@stp.example.gov.vn\nSubject: Sở Tư pháp: 1 hồ sơ quá hạn mới, lâu nhất 4 ngày\n"), "{out}");
    assert!(out.contains("To: chutich@ubnd.example.gov.vn\nSubject: Tổng hợp quá hạn: 1 đơn vị, 1 hồ sơ, lâu nhất 4 ngày\n"), "{out}");
    assert!(out.contains("lúc 10:00 sáng ngày 15/03/2024"), "{out}");
    // The digest of STP that morning, to its head and its copy address; as .eml files.
    let eml = dir.join("preview-eml");
    let (code, out, err) = run(
        "2024-03-15T07:40:00+07:00",
        &["digest", "--unit", "STP", "--eml", eml.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let m = parse(&std::fs::read(eml.join("giamdoc@stp.example.gov.vn.eml")).unwrap()).into_owned();
    assert_eq!(m.subject(), Some("Sở Tư pháp: 1 quá hạn (15/03/2024)"));
    // A unit with nothing to report, and a case that wants nothing, say so.
    let (code, _, err) = run("2024-03-15T07:40:00+07:00", &["digest", "--unit", "SXD"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("unit `SXD` has nothing to report now"),
        "{err}"
    );
    let (code, _, err) = run(
        "2024-03-15T10:00:00+07:00",
        &["alert", "--case", "M-ONTRACK"],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("case `M-ONTRACK` wants no immediate alert now"),
        "{err}"
    );
    // The weekly report goes to the provincial office.
    let (code, out, err) = run("2024-03-18T08:00:00+07:00", &["weekly"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("To: chanhvanphong@ubnd.example.gov.vn\n"),
        "{out}"
    );
    // Nothing was queued or recorded.
    assert_eq!(sh.store.outbox_pending().await.unwrap(), 0);
    assert!(sh.store.alerts_open().await.unwrap().is_empty());
}

/// The alert pass remembers what decided each case's alerts: with nothing moved it
/// fires and resolves nothing, a case that ends resolves exactly its own alerts, and
/// a reload of the directory decides again for every case without firing twice.
#[tokio::test]
async fn an_alert_pass_decides_again_only_where_something_moved() {
    let dir = scratch("alerts-incremental");
    let sh = shared_with_cases(&dir, now()).await;
    sh.touch_source("portal", now(), 6);
    let cfg = AlertsConfig {
        send_window: "always".into(),
        ..AlertsConfig::default()
    };
    // M-OVERDUE wants overdue, escalated level 1 and stuck (see the first test).
    let p = alert_pass(&sh, &cfg, now()).await.unwrap();
    assert_eq!(p.fired, 3, "{p:?}");
    let p = alert_pass(&sh, &cfg, now() + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!((p.fired, p.resolved, p.queued), (0, 0, 0));
    // A reload of the directory: every case decided again, nothing new.
    sh.set_context((*sh.context()).clone());
    let p = alert_pass(&sh, &cfg, now() + Duration::seconds(10))
        .await
        .unwrap();
    assert_eq!((p.fired, p.resolved, p.queued), (0, 0, 0));
    // M-OVERDUE is returned at 10:30: its three alerts resolve, no other.
    let done = crate::metrics::dossier(
        "M-OVERDUE",
        "10",
        "20240301080000",
        "20240308170000",
        "20240315103000",
    );
    slawatch::daemon::ingest(
        &sh,
        "portal",
        &slawatch::source::normalize::Mapping::dvcqg(),
        slawatch::daemon::Delivery::records(vec![slawatch::source::RawRecord::json(done, "t")]),
        now() + Duration::minutes(30),
    )
    .await
    .unwrap();
    let p = alert_pass(&sh, &cfg, now() + Duration::minutes(31))
        .await
        .unwrap();
    assert_eq!((p.fired, p.resolved, p.queued), (0, 3, 0), "{p:?}");
    assert_eq!(sh.store.alerts_open().await.unwrap(), Vec::new());
    let p = alert_pass(&sh, &cfg, now() + Duration::minutes(32))
        .await
        .unwrap();
    assert_eq!((p.fired, p.resolved), (0, 0));
}
