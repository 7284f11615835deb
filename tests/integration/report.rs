//! `slawatch report tthc` end to end: the hand-worked population of November 2026
//! (src/report/tthc/tests.rs, where every cell is worked out by hand) stored as the
//! daemon stores it, then reported by the binary in CSV, XLSX (read back with
//! calamine, a reader that is not the writer) and JSON, on SQLite and PostgreSQL.

use crate::scratch;
use crate::support::PgDatabase;
use chrono::{DateTime, Utc};
use slawatch::calendar::Calendar;
use slawatch::sla::model::Case;
use slawatch::sla::policy::Policy;
use slawatch::store::{self, Batch, CaseRow, EvalSummary};
use std::path::{Path, PathBuf};

/// Reported on 10/12/2026 09:00 (+07:00): November is closed.
const NOW: &str = "2026-12-10T09:00:00+07:00";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn population() -> Vec<Case> {
    let text =
        std::fs::read_to_string(repo().join("tests/fixtures/report/november-2026.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Stores the cases with the evaluation the daemon would have made at `NOW`.
async fn fill(url: &str) {
    let s = store::open(url).await.unwrap();
    s.migrate().await.unwrap();
    let cal = Calendar::builtin();
    let policy = Policy::default();
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339(NOW).unwrap().into();
    let mut b = Batch::new("test", now);
    for c in population() {
        let e = slawatch::sla::evaluate(&c, None, &cal, &policy, now).unwrap();
        let open = e.lifecycle == slawatch::sla::Lifecycle::Open;
        let on_time = (!open)
            .then(|| slawatch::sla::ratio::on_time_until(&c, None, &cal, &policy, now))
            .flatten();
        b.cases.push(CaseRow {
            eval: Some(EvalSummary::of(&e, now).judged(on_time)),
            case: c,
            open,
        });
    }
    s.commit(&b).await.unwrap();
    s.close().await;
}

fn setup(tag: &str, url: &str) -> PathBuf {
    let dir = scratch(tag);
    std::fs::copy(
        repo().join("tests/fixtures/report/units.toml"),
        dir.join("units.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("slawatch.toml"),
        format!("[directory]\nfile = \"units.toml\"\n[store]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    dir
}

fn report(dir: &Path, extra: &[&str]) -> std::process::Output {
    crate::slawatch_at(NOW)
        .current_dir(dir)
        .args([
            "--config",
            "slawatch.toml",
            "report",
            "tthc",
            "--period",
            "2026-11",
        ])
        .args(extra)
        .output()
        .unwrap()
}

/// Cols 3–13 of the line whose column 2 is `name` on the form's sheet of an XLSX
/// file, read with calamine (not the writer).
fn xlsx_line(bytes: &[u8], name: &str) -> Vec<f64> {
    use calamine::{Data, DataType, Reader, Xlsx};
    let mut book = Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let sheet = book.worksheet_range("Biểu 06").unwrap();
    let row = sheet
        .rows()
        .find(|r| r.get(1) == Some(&Data::String(name.into())))
        .unwrap_or_else(|| panic!("no line {name}"));
    row[2..13].iter().map(|c| c.as_f64().unwrap()).collect()
}

/// Cols 3–13 of the line whose column 2 is `name`, from CSV text.
fn csv_line(text: &str, name: &str) -> Vec<u64> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let rec = r
        .records()
        .map(|x| x.unwrap())
        .find(|x| x.get(1) == Some(name))
        .unwrap_or_else(|| panic!("no line {name} in\n{text}"));
    (2..13).map(|i| rec[i].parse().unwrap()).collect()
}

async fn the_hand_worked_numbers_come_out(url: &str, tag: &str) {
    fill(url).await;
    let dir = setup(tag, url);
    // The store counts the cases ended in November, on time and not refused, by their
    // columns: A1 A2 A5 A28 A12 A13 A16 A21 A23 A25 and the withdrawn A10 A31.
    {
        let s = store::open_read_only(url).await.unwrap();
        let cal = Calendar::builtin();
        let b = slawatch::report::ReportPeriod::parse("2026-11")
            .unwrap()
            .bounds(&cal, DateTime::parse_from_rfc3339(NOW).unwrap().into());
        let mut light = 0;
        let mut whole = 0;
        s.load_report_each(b.start, b.end, &mut |r| {
            if r.case.is_some() {
                whole += 1
            } else {
                light += r.count
            }
        })
        .await
        .unwrap();
        assert_eq!(light, 12);
        // Late A3 A4 A14 A20, refused A11 A24, open at the end A6 A8 A9 A15 A18 A19
        // A22 A26 A29 A30 A32 (A17 after the end, A27 a task counted here, dropped
        // later), no receipt A33.
        assert_eq!(whole, 19);
        s.close().await;
    }

    // CSV: a BOM, then the form.
    let o = report(&dir, &["--format", "csv"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.starts_with(b"\xEF\xBB\xBF"));
    let text = String::from_utf8(o.stdout[3..].to_vec()).unwrap();
    // Worked by hand in src/report/tthc/tests.rs.
    assert_eq!(
        csv_line(&text, "Sở Tư pháp"),
        [11, 3, 4, 4, 6, 2, 2, 2, 5, 2, 3]
    );
    assert_eq!(
        csv_line(&text, "Sở Xây dựng"),
        [8, 2, 6, 0, 4, 3, 0, 1, 4, 3, 1]
    );
    assert_eq!(
        csv_line(&text, "UBND xã Thạch Hà"),
        [3, 1, 1, 1, 3, 2, 1, 0, 0, 0, 0]
    );
    assert_eq!(
        csv_line(&text, "Tổng cộng"),
        [26, 7, 13, 6, 15, 7, 4, 4, 11, 6, 5]
    );
    assert!(text.contains("2 hồ sơ công dân rút trong kỳ"), "{text}");

    // XLSX, by the extension of --output, read back by calamine.
    let out = dir.join("bieu06.xlsx");
    let o = report(&dir, &["--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    {
        use calamine::{Data, DataType, Reader, Xlsx};
        assert_eq!(
            xlsx_line(&std::fs::read(&out).unwrap(), "Tổng cộng"),
            [26.0, 7.0, 13.0, 6.0, 15.0, 7.0, 4.0, 4.0, 11.0, 6.0, 5.0]
        );
        let mut book: Xlsx<_> = calamine::open_workbook(&out).unwrap();
        let ind = book.worksheet_range("Chỉ số 2.1").unwrap();
        let sxd = ind
            .rows()
            .find(|r| r.get(1) == Some(&Data::String("Sở Xây dựng".into())))
            .unwrap();
        assert_eq!((sxd[2].as_f64(), sxd[3].as_f64()), (Some(3.0), Some(7.0)));
        let late = book.worksheet_range("Hồ sơ trễ hạn").unwrap();
        let ids: Vec<String> = late.rows().skip(4).map(|r| r[2].to_string()).collect();
        assert_eq!(
            ids,
            ["A32", "A9", "A6", "A4", "A3", "A19", "A14", "A22", "A20"]
        );
    }

    // JSON: numerator, denominator, points; no applicant identity.
    let o = report(&dir, &["--format", "json"]);
    assert!(o.status.success());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["total"]["indicator_2_1"]["numerator"], 15);
    assert_eq!(j["total"]["indicator_2_1"]["denominator"], 26);
    assert_eq!(j["groups"][0]["rows"][0]["indicator_2_1"]["numerator"], 7);
    assert_eq!(
        j["groups"][0]["rows"][0]["indicator_2_1"]["denominator"],
        12
    );
    assert_eq!(j["ranking_on_time"][0]["unit"], "XTH");

    // One unit and its subtree; an unknown unit is one clear error.
    let o = report(&dir, &["--unit", "STP"]);
    let text = String::from_utf8(o.stdout[3..].to_vec()).unwrap();
    assert_eq!(
        csv_line(&text, "Phòng Hộ tịch"),
        [1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0]
    );
    let o = report(&dir, &["--unit", "NOPE"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--unit NOPE: no such unit"));
    let o = report(&dir, &["--format", "xlsx"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--output"));
}

#[tokio::test]
async fn report_tthc_gives_the_hand_worked_numbers_on_sqlite() {
    let dir = scratch("report-sqlite");
    let url = format!("sqlite://{}", dir.join("store.db").display());
    the_hand_worked_numbers_come_out(&url, "report-sqlite-cfg").await;
}

#[tokio::test]
async fn report_tthc_gives_the_hand_worked_numbers_on_postgres() {
    let Some(db) = PgDatabase::create("report").await else {
        eprintln!("SLAWATCH_TEST_DATABASE_URL not set: PostgreSQL not tested here");
        return;
    };
    the_hand_worked_numbers_come_out(&db.url, "report-pg-cfg").await;
    db.drop_it().await;
}

/// The API gives the same numbers: the report in JSON, CSV and XLSX behind the token,
/// and the cases that finished in November by outcome.
#[tokio::test]
async fn the_api_gives_the_same_report_and_the_finished_cases() {
    use slawatch::state::{Context, Shared};
    use std::sync::Arc;
    let dir = scratch("report-api");
    let url = format!("sqlite://{}", dir.join("store.db").display());
    fill(&url).await;
    let units = std::fs::read_to_string(repo().join("tests/fixtures/report/units.toml")).unwrap();
    let ctx = Context {
        calendar: Arc::new(Calendar::builtin()),
        policy: Policy::default(),
        catalogue: Default::default(),
        directory: slawatch::directory::Directory::parse(&units, "units.toml").unwrap(),
    };
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339(NOW).unwrap().into();
    let s = store::open(&url).await.unwrap();
    let sh = Arc::new(
        Shared::new(s, ctx, "salt".into()).with_clock(slawatch::clock::Clock::starting_at(now)),
    );
    sh.load(now).await.unwrap();
    sh.refresh_metrics(now).await.unwrap();
    let app = slawatch::http::router(sh, vec![], 1 << 20, Some("tok".into()));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let c = reqwest::Client::new();
    let get = |path: &str| c.get(format!("{base}{path}")).bearer_auth("tok").send();

    let r = c
        .get(format!("{base}/api/v1/reports/tthc?period=2026-11"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = get("/api/v1/reports/tthc?period=2026-11").await.unwrap();
    assert_eq!(r.status(), 200);
    let j: serde_json::Value = r.json().await.unwrap();
    let cols: Vec<u64> = (3..=13)
        .map(|i| j["total"]["columns"][i.to_string()].as_u64().unwrap())
        .collect();
    assert_eq!(cols, [26, 7, 13, 6, 15, 7, 4, 4, 11, 6, 5]);
    assert_eq!(j["total"]["indicator_2_1"]["numerator"], 15);
    assert_eq!(j["total"]["indicator_2_1"]["denominator"], 26);

    let r = get("/api/v1/reports/tthc?period=2026-11&format=csv")
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"bieu06-2026-11.csv\""
    );
    let body = r.bytes().await.unwrap();
    let text = String::from_utf8(body[3..].to_vec()).unwrap();
    assert_eq!(
        csv_line(&text, "UBND phường Thành Sen"),
        [3, 1, 1, 1, 2, 0, 1, 1, 1, 0, 1]
    );
    let r = get("/api/v1/reports/tthc?period=2026-11&format=xlsx&unit=SXD")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap().to_vec();
    assert_eq!(
        xlsx_line(&bytes, "Sở Xây dựng"),
        [8.0, 2.0, 6.0, 0.0, 4.0, 3.0, 0.0, 1.0, 4.0, 3.0, 1.0]
    );
    for (q, status) in [
        ("period=2026-13", 400),
        ("period=2026-11&format=pdf", 400),
        ("period=2026-11&unit=NOPE", 404),
        ("period=2026-11&by=colour", 400),
        ("period=2026-11&compat=everything", 400),
        ("periodo=2026-11", 400),
    ] {
        let r = get(&format!("/api/v1/reports/tthc?{q}")).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{q}");
    }

    // Finished in November, late: A3 (06/11), A4 (04/11), A14 (26/11), A20 (06/11),
    // in order of their end.
    let r = get("/api/v1/cases?finished_from=2026-11-01&finished_to=30/11/2026&outcome=late")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let ids: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["case_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["A4", "A3", "A20", "A14"]);
    assert_eq!(v["total"], 4);
    assert_eq!(v["items"][0]["ended_at"], "2026-11-04T15:00:00+07:00");
    assert_eq!(v["items"][0]["on_time_766"], false);
    // Every case that ended in November (finished, withdrawn, refused): 15 finished
    // in the table + A10, A31 withdrawn + A11 refused at intake + A24 counted with
    // them already = 18.
    let v: serde_json::Value =
        get("/api/v1/cases?finished_from=2026-11-01&finished_to=2026-11-30&limit=100")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(v["total"], 18);
    let v: serde_json::Value =
        get("/api/v1/cases?finished_from=2026-11-01&finished_to=2026-11-30&outcome=early&unit=SXD")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    // A12 (19/11), A13 (17/11), A16 (30/11).
    assert_eq!(v["total"], 3);
    let r = get("/api/v1/cases?finished_from=2026-11-31").await.unwrap();
    assert_eq!(r.status(), 400);
    // A bad `stuck` is refused even beside a `state` that already selects nothing.
    let r = get("/api/v1/cases?finished_from=2026-11-01&state=due_soon&stuck=null")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The metrics agree, and aggregate. Q4 to date (10/12 09:00), dossiers of STP's
    // tree, by hand: A1 A2 A3 A4 A5 A6 A7 (ended 29/10, in Q4) A8 A9 A10 A28 A29 A32 A34
    // (received 30/09 in Q3, finished 01/10 in Q4) = 14, on time A1 A2 A5 A7 A8 A10 A28
    // A29 A34 = 9 (A6, A9, A32 are past their due, A3 and A4 finished late). The metrics
    // count the holding unit: STP 8/13, STP-HT 1/1.
    let metrics = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sample = |name: &str, labels: &[&str]| -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{' | b' '))
            })
            .find(|l| labels.iter().all(|p| l.contains(p)))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} {labels:?}"))
    };
    let q = ["kind=\"dossier\"", "period=\"quarter\""];
    let stp = |name: &str| sample(name, &[q[0], q[1], "unit=\"STP\""]);
    let ht = |name: &str| sample(name, &[q[0], q[1], "unit=\"STP-HT\""]);
    assert_eq!(
        (
            stp("slawatch_on_time_cases"),
            stp("slawatch_on_time_population")
        ),
        (8.0, 13.0)
    );
    assert_eq!(
        (
            ht("slawatch_on_time_cases"),
            ht("slawatch_on_time_population")
        ),
        (1.0, 1.0)
    );
    assert!((stp("slawatch_on_time_ratio") - 8.0 / 13.0).abs() < 1e-9);
    let j: serde_json::Value = get("/api/v1/reports/tthc?period=2026-Q4&unit=STP")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j["total"]["indicator_2_1"]["numerator"], 9);
    assert_eq!(j["total"]["indicator_2_1"]["denominator"], 14);
    // Biểu 06 of Q4 to date for STP's tree, by hand: received online A1 A4 A9 A28 (4),
    // in person A2 A3 A5 A6 A7 A8 A29 A32 (8), from Q3 A34 (1) = 13; finished early A1
    // A5 A7 A34, on time A2 A28, late A3 A4 A9 (03/12 > 20/11) A32 = 10; in progress in
    // time A8 A29, overdue A6 = 3.
    let cols: Vec<u64> = (3..=13)
        .map(|i| j["total"]["columns"][i.to_string()].as_u64().unwrap())
        .collect();
    assert_eq!(cols, [13, 4, 8, 1, 10, 4, 2, 4, 3, 2, 1]);
    // Ended with an outcome, ever: STP early A1 A5 A7 (29/10 before 31/10) A34, on time
    // A2, late A3 A4 A9 A32.
    let ever = |o: &str| {
        sample(
            "slawatch_cases_finished_total",
            &["unit=\"STP\"", q[0], &format!("outcome=\"{o}\"")],
        )
    };
    assert_eq!(
        (ever("early"), ever("on_time"), ever("late")),
        (4.0, 1.0, 4.0)
    );
    // 10/12/2026 09:00 is a Thursday morning session: the offices are open.
    assert_eq!(sample("slawatch_office_open", &[]), 1.0);
}

/// The monthly report: on the first workday of December 2026 (Tuesday 01/12), once the
/// schedule (08:00) has fired, November's Biểu 06 goes to the heads tagged
/// `provincial_office` and `home_affairs`, XLSX attached, once; missed that day, it is
/// caught up later; never before the month's first workday.
#[tokio::test]
async fn the_monthly_report_goes_out_once_with_the_form_attached() {
    use slawatch::state::{Context, Shared};
    use std::sync::Arc;
    let units = std::fs::read_to_string(repo().join("tests/fixtures/report/units.toml")).unwrap()
        + r#"
[[unit]]
code = "VP"
name = "Văn phòng UBND tỉnh"
parent = "UBND-T"
level = 1
head = { name = "Chánh Văn phòng", email = "chanhvanphong@ubnd.example.gov.vn" }
tags = ["provincial_office"]

[[unit]]
code = "SNV"
name = "Sở Nội vụ"
parent = "UBND-T"
level = 1
head = { name = "Giám đốc Sở Nội vụ", email = "giamdoc@snv.example.gov.vn" }
tags = ["home_affairs"]
"#;
    let at = |s: &str| -> DateTime<Utc> { DateTime::parse_from_rfc3339(s).unwrap().into() };
    let shared = |url: &str| {
        let url = url.to_string();
        let units = units.clone();
        async move {
            let ctx = Context {
                calendar: Arc::new(Calendar::builtin()),
                policy: Policy::default(),
                catalogue: Default::default(),
                directory: slawatch::directory::Directory::parse(&units, "units.toml").unwrap(),
            };
            Arc::new(Shared::new(
                store::open(&url).await.unwrap(),
                ctx,
                "salt".into(),
            ))
        }
    };
    let cfg = slawatch::config::AlertsConfig {
        from: "slawatch <slawatch@ubnd.example.gov.vn>".into(),
        ..Default::default()
    };
    let schedule = cfg.weekly_schedule.clone();
    let dir = scratch("report-monthly");
    let url = format!("sqlite://{}", dir.join("store.db").display());
    fill(&url).await;
    let sh = shared(&url).await;
    let pass = |t: &str| {
        let sh = sh.clone();
        let (cfg, schedule, t) = (cfg.clone(), schedule.clone(), at(t));
        async move {
            slawatch::jobs::monthly_pass(&sh, &cfg, &schedule, t)
                .await
                .unwrap()
        }
    };
    // Before the 08:00 run on the first workday: nothing.
    assert_eq!(pass("2026-12-01T07:00:00+07:00").await, 0);
    assert_eq!(pass("2026-12-01T08:05:00+07:00").await, 2);
    assert_eq!(pass("2026-12-01T09:00:00+07:00").await, 0, "once");
    assert_eq!(pass("2026-12-02T08:05:00+07:00").await, 0, "once a month");

    let out = dir.join("outbox");
    let transport = slawatch::notify::FileTransport { dir: out.clone() };
    let templates = slawatch::notify::templates::Templates::load(None).unwrap();
    let d = crate::support::dispatch_once(
        sh.store.as_ref(),
        &transport,
        &templates,
        &cfg,
        at("2026-12-01T08:06:00+07:00"),
    )
    .await
    .unwrap();
    assert_eq!(d.sent, 2);
    let mut heads = Vec::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        heads.push(
            m.to()
                .unwrap()
                .first()
                .unwrap()
                .address()
                .unwrap()
                .to_string(),
        );
        let subject = m.subject().unwrap();
        // 15/26 on time (worked by hand), 5 open overdue at the month's end.
        assert_eq!(
            subject,
            "Báo cáo tháng 11/2026: 57,7% hồ sơ đúng hạn, 5 đang quá hạn (Biểu 06 đính kèm)"
        );
        let text = m.body_text(0).unwrap().replace("\r\n", "\n");
        assert!(
            text.contains("- Nhận giải quyết: 26 hồ sơ (7 trực tuyến; 6 từ kỳ trước)."),
            "{text}"
        );
        assert!(
            text.contains("- Đã giải quyết: 15 hồ sơ — 7 trước hạn, 4 đúng hạn, 4 quá hạn."),
            "{text}"
        );
        assert!(
            text.contains("Chỉ số 2.1 (Quyết định 766): 57,7% đúng hạn (15/26), 11,54/20 điểm."),
            "{text}"
        );
        let att = m.attachment(0).expect("the form attached");
        use mail_parser::MimeHeaders;
        assert_eq!(att.attachment_name(), Some("bieu06-2026-11.xlsx"));
        assert_eq!(
            xlsx_line(att.contents(), "Tổng cộng"),
            [26.0, 7.0, 13.0, 6.0, 15.0, 7.0, 4.0, 4.0, 11.0, 6.0, 5.0]
        );
    }
    heads.sort();
    assert_eq!(
        heads,
        [
            "chanhvanphong@ubnd.example.gov.vn",
            "giamdoc@snv.example.gov.vn"
        ]
    );

    // Missed on the first workday (the daemon was down): caught up on the 3rd.
    let dir = scratch("report-monthly-late");
    let url = format!("sqlite://{}", dir.join("store.db").display());
    fill(&url).await;
    let late = shared(&url).await;
    assert_eq!(
        slawatch::jobs::monthly_pass(&late, &cfg, &schedule, at("2026-12-03T10:00:00+07:00"))
            .await
            .unwrap(),
        2
    );
    // 01/01/2027 is New Year's day: January's first workday is Monday 04/01.
    assert_eq!(
        slawatch::jobs::monthly_pass(&late, &cfg, &schedule, at("2027-01-01T09:00:00+07:00"))
            .await
            .unwrap(),
        0
    );
    let off = slawatch::config::AlertsConfig {
        monthly_report: false,
        ..cfg.clone()
    };
    assert_eq!(
        slawatch::jobs::monthly_pass(&late, &off, &schedule, at("2027-01-04T09:00:00+07:00"))
            .await
            .unwrap(),
        0
    );
}

/// `notify preview monthly` shows the monthly e-mails, the form attached, without
/// queueing anything.
#[tokio::test]
async fn notify_preview_monthly_shows_the_report_mail() {
    let dir = scratch("report-preview");
    let url = format!("sqlite://{}", dir.join("store.db").display());
    fill(&url).await;
    let cfg = setup("report-preview-cfg", &url);
    let mut units = std::fs::read_to_string(cfg.join("units.toml")).unwrap();
    units.push_str(
        "\n[[unit]]\ncode = \"VP\"\nname = \"Văn phòng UBND tỉnh\"\nparent = \"UBND-T\"\nlevel = 1\n\
         head = { name = \"Chánh Văn phòng\", email = \"chanhvanphong@ubnd.example.gov.vn\" }\ntags = [\"provincial_office\"]\n",
    );
    std::fs::write(cfg.join("units.toml"), units).unwrap();
    let o = crate::slawatch_at(NOW)
        .current_dir(&cfg)
        .args([
            "--config",
            "slawatch.toml",
            "notify",
            "preview",
            "monthly",
            "--period",
            "2026-11",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("To: chanhvanphong@ubnd.example.gov.vn\nSubject: Báo cáo tháng 11/2026: 57,7% hồ sơ đúng hạn"), "{text}");
    let eml = dir.join("eml");
    let o = crate::slawatch_at(NOW)
        .current_dir(&cfg)
        .args([
            "--config",
            "slawatch.toml",
            "notify",
            "preview",
            "monthly",
            "--period",
            "2026-11",
            "--eml",
        ])
        .arg(&eml)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let raw = std::fs::read(eml.join("chanhvanphong@ubnd.example.gov.vn.eml")).unwrap();
    let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
    use mail_parser::MimeHeaders;
    assert_eq!(
        m.attachment(0).unwrap().attachment_name(),
        Some("bieu06-2026-11.xlsx")
    );
    // Nothing queued.
    let s = store::open_read_only(&url).await.unwrap();
    assert_eq!(s.outbox_pending().await.unwrap(), 0);
    s.close().await;
}
