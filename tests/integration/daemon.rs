//! The real daemon process: start, serve health, poll a real local portal, stop on
//! SIGTERM, resume from its cursor; `kill -9` in the middle of a poll loses nothing
//! and doubles nothing; files are read once; the DVCQG push endpoint.

use crate::scratch;
use crate::support::{serve_app, wait_until, Daemon};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A Sunday evening (06/12/2026 22:00, Hà Nội): no morning digest or weekly report is
/// due, so the tests that count alert e-mails (sent with `send_window = "always"`)
/// see alerts only, whatever the machine's hour.
const QUIET_SUNDAY: &str = "2026-12-06T22:00:00+07:00";

/// How many queued messages an e-mail carries (its `X-Slawatch-Items` header).
fn alerts_in(msg: &mail_parser::Message<'_>) -> usize {
    msg.header_raw("X-Slawatch-Items")
        .and_then(|n| n.trim().parse::<usize>().ok())
        .expect("an X-Slawatch-Items header")
}

/// A portal of `n` dossiers, two per page, with an optional stall on page 2.
#[derive(Clone, Default)]
struct Portal {
    n: usize,
    stall_page_2: Arc<AtomicBool>,
    page_2_asked: Arc<AtomicUsize>,
    since: Arc<Mutex<Vec<String>>>,
}

async fn hoso(
    State(p): State<Portal>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    if headers.get("authorization").and_then(|h| h.to_str().ok()) != Some("Bearer tok") {
        return (StatusCode::UNAUTHORIZED, "no").into_response();
    }
    let page: usize = q.get("page").and_then(|x| x.parse().ok()).unwrap_or(1);
    if page == 1 {
        p.since
            .lock()
            .unwrap()
            .push(q.get("since").cloned().unwrap_or_default());
    }
    if page == 2 {
        p.page_2_asked.fetch_add(1, Ordering::SeqCst);
        if p.stall_page_2.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }
    let items: Vec<Value> = (0..p.n)
        .skip((page - 1) * 2)
        .take(2)
        .map(|i| {
            json!({"MaHoSo": format!("D-{i:03}"), "TrangThaiHoSo": "4", "DonViXuLy": "Sở Tư pháp",
                   "NgayTiepNhan": "20240102080000", "NgayHenTra": "20240110170000", "MaTTHC": "1.004227"})
        })
        .collect();
    Json(json!({"data": items})).into_response()
}

fn serve_portal(p: Portal) -> String {
    serve_app(Router::new().route("/api/hoso", get(hoso)).with_state(p))
}

fn write_config(dir: &Path, sources: &str) {
    write_config_with(
        dir,
        &format!("sqlite://{}/slawatch.db", dir.display()),
        sources,
    );
}

fn write_config_with(dir: &Path, store: &str, sources: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        dir.join("slawatch.toml"),
        format!(
            "[catalogue]\nfile = \"{root}/config/procedures.toml\"\n[directory]\nfile = \"{root}/config/units.toml\"\n\
             [store]\nurl = \"{store}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [daemon]\nevaluate_schedule = \"*/5 * * * * *\"\n{sources}",
            root = root.display(),
        ),
    )
    .unwrap();
}

fn sqlite_count(dir: &Path, sql: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!(
            "sqlite://{}/slawatch.db?mode=ro",
            dir.display()
        ))
        .await
        .unwrap();
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&mut c)
            .await
            .unwrap_or(-1)
    })
}

fn portal_source(base: &str) -> String {
    format!(
        "[[source]]\nname = \"portal\"\ntype = \"http\"\nurl = \"{base}/api/hoso?since={{cursor}}&page={{page}}\"\n\
         schedule = \"*/2 * * * * *\"\nauth = \"bearer\"\nsecret_env = \"PORTAL_TOKEN\"\ntimeout_seconds = 60\n"
    )
}

#[test]
fn restart_resumes_from_the_cursor_and_sigterm_is_clean() {
    let portal = Portal {
        n: 7,
        ..Portal::default()
    };
    let base = serve_portal(portal.clone());
    let dir = scratch("daemon-restart");
    write_config(&dir, &portal_source(&base));
    let d = Daemon::start(&dir, &[("PORTAL_TOKEN", "tok")]);
    assert_eq!(d.get("/healthz").0, 200);
    wait_until(Duration::from_secs(30), "7 cases", || {
        sqlite_count(&dir, "SELECT COUNT(*) FROM cases") == 7
    });
    let (status, ready) = d.get("/readyz");
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["open_cases"], 7);
    assert_eq!(ready["sources"][0]["name"], "portal");
    assert_eq!(ready["sources"][0]["up"], true);
    d.signal("-TERM");
    let log = d.log_text();
    assert_eq!(d.wait(Duration::from_secs(20)), Some(0), "clean exit");
    assert!(log.contains("poll done"), "{log}");
    let cursor_before: i64 = sqlite_count(&dir, "SELECT COUNT(*) FROM cursors");
    assert_eq!(cursor_before, 1);
    let asked_before = portal.since.lock().unwrap().len();

    // Restart: the first poll asks from the stored cursor (not 90 days back), and
    // nothing is doubled.
    let d = Daemon::start(&dir, &[("PORTAL_TOKEN", "tok")]);
    wait_until(Duration::from_secs(20), "a poll after restart", || {
        portal.since.lock().unwrap().len() > asked_before
    });
    let since = portal.since.lock().unwrap()[asked_before].clone();
    // The stored cursor minus the 300 s overlap: minutes ago, not 90 days.
    let asked = chrono::DateTime::parse_from_rfc3339(&since).unwrap();
    let age = crate::test_now().signed_duration_since(asked).num_seconds();
    assert!(
        (290..600).contains(&age),
        "resumed from the cursor, asked since {since} ({age} s ago)"
    );
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM cases"), 7);
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM case_versions"), 7);
    let (_, ready) = d.get("/readyz");
    assert_eq!(ready["open_cases"], 7, "open cases reloaded from the store");
    d.signal("-INT");
    assert_eq!(d.wait(Duration::from_secs(20)), Some(0));
}

#[test]
fn kill_9_in_the_middle_of_a_poll_loses_and_doubles_nothing() {
    let portal = Portal {
        n: 9,
        ..Portal::default()
    };
    portal.stall_page_2.store(true, Ordering::SeqCst);
    let base = serve_portal(portal.clone());
    let dir = scratch("daemon-kill9");
    write_config(&dir, &portal_source(&base));
    let d = Daemon::start(&dir, &[("PORTAL_TOKEN", "tok")]);
    wait_until(Duration::from_secs(30), "the poll to reach page 2", || {
        portal.page_2_asked.load(Ordering::SeqCst) > 0
    });
    d.signal("-KILL");
    assert_eq!(d.wait(Duration::from_secs(10)), None, "killed by a signal");
    // Page 1 may be stored (pages are stored as they arrive), page 2 never arrived,
    // and the cursor did not move: the next poll asks for everything again.
    assert!(sqlite_count(&dir, "SELECT COUNT(*) FROM cases") <= 2);
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM cursors"), 0);

    portal.stall_page_2.store(false, Ordering::SeqCst);
    let d = Daemon::start(&dir, &[("PORTAL_TOKEN", "tok")]);
    wait_until(Duration::from_secs(30), "9 cases", || {
        sqlite_count(&dir, "SELECT COUNT(*) FROM cases") == 9
    });
    // Let a few more polls run over the same records: still 9, one version each.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM cases"), 9);
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM case_versions"), 9);
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM cursors"), 1);
    assert!(sqlite_count(&dir, "SELECT COUNT(*) FROM job_runs WHERE ok") >= 2);
    d.signal("-TERM");
    assert_eq!(d.wait(Duration::from_secs(20)), Some(0));
}

#[test]
fn files_are_read_once_across_restarts_and_bad_lines_are_quarantined() {
    let dir = scratch("daemon-files");
    let drop_dir = dir.join("exports");
    std::fs::create_dir_all(&drop_dir).unwrap();
    std::fs::write(
        drop_dir.join("2024-01-02.ndjson"),
        "{\"MaHoSo\":\"F-1\",\"TrangThaiHoSo\":\"4\",\"NgayTiepNhan\":\"20240102080000\",\"NgayHenTra\":\"20240110170000\",\"DonViXuLy\":\"Sở Tư pháp\"}\n\
         {\"MaHoSo\":\"F-2\",\"TrangThaiHoSo\":\"2\",\"NgayTiepNhan\":\"2024-01-02 08:00\",\"NgayHenTra\":\"\",\"DonViXuLy\":\"UBND xã Mới Lập\"}\n\
         {\"MaHoSo\":\"F-3\",\"TrangThaiHoSo\":\n",
    )
    .unwrap();
    write_config(
        &dir,
        &format!("[[source]]\nname = \"exports\"\ntype = \"file\"\ndir = \"{}\"\nschedule = \"*/1 * * * * *\"\n", drop_dir.display()),
    );
    let d = Daemon::start(&dir, &[]);
    wait_until(Duration::from_secs(30), "2 cases", || {
        sqlite_count(&dir, "SELECT COUNT(*) FROM cases") == 2
    });
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM quarantine"), 1);
    d.signal("-TERM");
    assert_eq!(d.wait(Duration::from_secs(20)), Some(0));
    // A new file after the restart is read; the old one is not read again.
    std::fs::write(
        drop_dir.join("2024-01-03.json"),
        r#"{"service":"DongBoHoSoMC","data":[{"MaHoSo":"F-4","TrangThaiHoSo":"4","NgayTiepNhan":"20240103080000","NgayHenTra":"20240111170000"}]}"#,
    )
    .unwrap();
    let d = Daemon::start(&dir, &[]);
    wait_until(Duration::from_secs(30), "3 cases", || {
        sqlite_count(&dir, "SELECT COUNT(*) FROM cases") == 3
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM seen_files"), 2);
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM quarantine"), 1);
    assert!(
        std::fs::metadata(drop_dir.join("2024-01-02.ndjson")).is_ok(),
        "files are never deleted"
    );
    d.signal("-TERM");
    assert_eq!(d.wait(Duration::from_secs(20)), Some(0));
    // The CLI sees what the daemon stored.
    let out = crate::slawatch()
        .args(["--config", "slawatch.toml", "units", "unmatched"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1  UBND xã Mới Lập"), "{text}");
    let out = crate::slawatch()
        .args(["--config", "slawatch.toml", "quarantine", "list"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2024-01-02.ndjson:3: not JSON"), "{text}");
    let out = crate::slawatch()
        .args([
            "--config",
            "slawatch.toml",
            "explain",
            "F-1",
            "--lang",
            "en",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("state: overdue"), "{text}");
    assert!(text.contains("received 02/01/2024 08:00"), "{text}");
}

#[test]
fn push_accepts_the_portal_protocol() {
    let dir = scratch("daemon-push");
    write_config(
        &dir,
        "[[source]]\nname = \"vendor\"\ntype = \"push\"\nusername = \"dongbo\"\nsecret_env = \"PUSH_PASSWORD\"\ntoken_env = \"PUSH_TOKEN\"\n",
    );
    let d = Daemon::start(&dir, &[("PUSH_PASSWORD", "mk"), ("PUSH_TOKEN", "tk")]);
    let url = format!("http://{}/api/v1/ingest/dvcqg", d.addr);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        // Wrong password.
        let r = c.post(format!("{url}/login")).json(&json!({"username": "dongbo", "password": "x"})).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let r: Value = c
            .post(format!("{url}/login"))
            .json(&json!({"username": "dongbo", "password": "mk"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["error_code"], "0");
        let session = r["session"].as_str().unwrap().to_string();
        let envelope = json!({"session": session, "madonvi": "000.00.01.H22", "service": "DongBoHoSoMC", "isUpdating": "False",
            "data": [{"MaHoSo": "P-1", "TrangThaiHoSo": "4", "NgayTiepNhan": "20240102080000", "NgayHenTra": "20240110170000", "DonViXuLy": "Sở Tư pháp"},
                     {"MaHoSo": "P-2", "TrangThaiHoSo": "99"}]});
        let r: Value = c.post(&url).json(&envelope).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["error_code"], "0", "{r}");
        assert_eq!((r["inserted"].as_u64(), r["quarantined"].as_u64()), (Some(1), Some(1)));
        // The same again changes nothing.
        let r: Value = c.post(&url).json(&envelope).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["unchanged"], 1);
        // Steps service.
        let steps = json!({"session": session, "service": "CapNhatTienDoHoSoMC",
            "data": [{"MaHoSo": "P-1", "NguoiXuLy": "Trần B", "NoiDungXuLy": "Thẩm định", "ThoiDiemXuLy": "20240103100000", "TrangThai": "4"}]});
        let r: Value = c.post(&url).json(&steps).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["updated"], 1, "{r}");
        // A bare array with the bearer token; a wrong token; a stale session.
        let r = c.post(&url).bearer_auth("tk").json(&json!([{"MaHoSo": "P-3", "TrangThaiHoSo": "2", "NgayTiepNhan": "20240102080000"}])).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let r = c.post(&url).bearer_auth("nope").json(&json!([])).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let r = c.post(&url).json(&json!({"session": "forged", "service": "DongBoHoSoMC", "data": []})).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let r = c.post(&url).body("{not json").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400);
    });
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM cases"), 2);
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM quarantine"), 1);
    d.signal("-TERM");
    assert_eq!(d.wait(Duration::from_secs(20)), Some(0));
}

/// A real Prometheus (Debian's package) scrapes the real daemon on loopback with the
/// shipped rules: `slawatch_cases_open` arrives with the values of the hand-made
/// cases, the recording rules compute, and every query of the Grafana dashboard
/// returns data.
#[test]
fn a_real_prometheus_scrapes_the_daemon() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI_REQUIRE_PROMTOOL").is_none(),
            "prometheus is required here"
        );
        eprintln!("prometheus is not installed: scrape test skipped");
        return;
    }
    let dir = scratch("daemon-prometheus");
    write_config(
        &dir,
        "[[source]]\nname = \"vendor\"\ntype = \"push\"\ntoken_env = \"PUSH_TOKEN\"\n",
    );
    let d = Daemon::start(&dir, &[("PUSH_TOKEN", "tk")]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = reqwest::Client::new();
    rt.block_on(async {
        // Dates long past, so the states hold whatever day the test runs.
        let records = json!([
            {"MaHoSo": "PR-OVERDUE", "TrangThaiHoSo": "4", "NgayTiepNhan": "20240102080000",
             "NgayHenTra": "20240110170000", "DonViXuLy": "Sở Tư pháp"},
            {"MaHoSo": "PR-PAUSED", "TrangThaiHoSo": "5", "NgayTiepNhan": "20240102080000",
             "NgayHenTra": "20240110170000", "DonViXuLy": "Sở Tư pháp",
             "DanhSachHoSoBoSung": [{"NgayBoSung": "20240103090000", "NgayTiepNhanBoSung": ""}]},
            {"MaHoSo": "PR-ELSEWHERE", "TrangThaiHoSo": "4", "NgayTiepNhan": "20240102080000",
             "NgayHenTra": "20240110170000", "DonViXuLy": "UBND xã Không Có"},
            {"MaHoSo": "PR-DONE", "TrangThaiHoSo": "10", "NgayTiepNhan": "20240102080000",
             "NgayHenTra": "20240110170000", "NgayKetThucXuLy": "20240109100000", "DonViXuLy": "Sở Tư pháp"}
        ]);
        let r = c
            .post(format!("http://{}/api/v1/ingest/dvcqg", d.addr))
            .bearer_auth("tk")
            .json(&records)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    });

    let prom = crate::support::Prometheus::start(&dir, &[&d.addr]);
    let query = |q: &str| prom.query(q);
    let scalar = |q: &str| prom.scalar(q);
    wait_until(
        Duration::from_secs(60),
        "a scrape holding the cases",
        || {
            scalar("slawatch_cases_open{kind=\"dossier\",unit=\"STP\",state=\"overdue\"}")
                == Some(1.0)
        },
    );
    let open = |unit: &str, state: &str| {
        scalar(&format!(
            "slawatch_cases_open{{job=\"slawatch\",kind=\"dossier\",unit=\"{unit}\",state=\"{state}\"}}"
        ))
    };
    assert_eq!(open("STP", "paused"), Some(1.0));
    assert_eq!(open("STP", "on_track"), Some(0.0));
    assert_eq!(open("unknown", "overdue"), Some(1.0));
    assert_eq!(scalar("sum(slawatch_cases_open)"), Some(3.0));
    assert_eq!(scalar("slawatch_source_up{source=\"vendor\"}"), Some(1.0));
    // Recording rules, evaluated by this Prometheus.
    wait_until(Duration::from_secs(30), "the recording rules", || {
        scalar("unit:slawatch_cases_overdue:sum{unit=\"STP\"}") == Some(1.0)
    });
    // Every dashboard query returns data (rate() needs a few scrapes).
    for (title, expr) in crate::deploy::dashboard_queries() {
        wait_until(
            Duration::from_secs(30),
            &format!("data for `{title}`: {expr}"),
            || !query(&expr).is_empty(),
        );
    }
    drop(d);
}

/// The real daemon with SMTP down: alerts fire and wait in the outbox; the daemon is
/// restarted (SIGTERM), the SMTP server comes up, and every message arrives exactly
/// once — nothing lost in the restart, nothing fired again.
#[test]
fn alerts_survive_an_smtp_outage_and_a_restart_exactly_once() {
    let quiet = crate::Timeline::from(QUIET_SUNDAY);
    let dir = scratch("daemon-alerts");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    write_config(
        &dir,
        &format!(
            "[alerts]\ntransport = \"smtp\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nsmtp_tls = \"none\"\n\
             from = \"slawatch <slawatch@pvhcc.example.gov.vn>\"\nsend_window = \"always\"\nretry_base_seconds = 1\n\
             monthly_report = false\n\
             [[source]]\nname = \"vendor\"\ntype = \"push\"\ntoken_env = \"PUSH_TOKEN\"\n"
        ),
    );
    let d = Daemon::start_at(&dir, &[("PUSH_TOKEN", "tk")], Some(&quiet.now()));
    d.push(&json!([
        {"MaHoSo": "AL-1", "TrangThaiHoSo": "4", "NgayTiepNhan": "20240102080000",
         "NgayHenTra": "20240104170000", "DonViXuLy": "Sở Tư pháp"},
        {"MaHoSo": "AL-2", "TrangThaiHoSo": "4", "NgayTiepNhan": "20240102080000",
         "NgayHenTra": "20240104170000", "DonViXuLy": "Sở Xây dựng"}
    ]));
    // Alerts fire (evaluation every 5 s) and their sending fails: both cases' alerts are
    // queued and every queued message has been tried (a slow machine may see the first
    // pass's messages before the dispatcher reaches them).
    wait_until(Duration::from_secs(30), "failed attempts", || {
        let tried = sqlite_count(&dir, "SELECT COUNT(*) FROM outbox WHERE attempts > 0");
        let cases = sqlite_count(&dir, "SELECT COUNT(DISTINCT case_id) FROM outbox");
        cases == 2 && tried == sqlite_count(&dir, "SELECT COUNT(*) FROM outbox")
    });
    let queued = sqlite_count(&dir, "SELECT COUNT(*) FROM outbox");
    assert!(queued >= 2, "{queued}");
    assert_eq!(
        sqlite_count(&dir, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'"),
        0
    );
    d.signal("-TERM");
    assert_eq!(d.wait(Duration::from_secs(30)), Some(0));

    let Some(sink) = crate::support::SmtpSink::start(&dir, Some(port)) else {
        assert!(
            std::env::var_os("CI_REQUIRE_PROMTOOL").is_none(),
            "aiosmtpd is required here"
        );
        eprintln!("aiosmtpd is not installed: delivery after the restart not tested");
        return;
    };
    let d = Daemon::start_at(&dir, &[("PUSH_TOKEN", "tk")], Some(&quiet.now()));
    wait_until(Duration::from_secs(60), "every message sent", || {
        sqlite_count(&dir, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'") == queued
    });
    // A few more evaluation rounds: nothing fires again, nothing is sent twice.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM outbox"), queued);
    // One e-mail per recipient (bundled), each recipient once.
    let mut to: Vec<String> = sink
        .messages()
        .iter()
        .filter_map(|m| {
            let text = String::from_utf8_lossy(m).to_string();
            text.lines()
                .find(|l| l.starts_with("To: "))
                .map(str::to_string)
        })
        .collect();
    let n = to.len();
    to.sort();
    to.dedup();
    assert_eq!(n, to.len(), "a recipient got two e-mails: {to:?}");
    assert!(
        to.iter().any(|t| t.contains("giamdoc@stp.example.gov.vn")),
        "{to:?}"
    );
    assert!(
        to.iter().any(|t| t.contains("giamdoc@sxd.example.gov.vn")),
        "{to:?}"
    );
    assert!(
        sqlite_count(
            &dir,
            "SELECT COUNT(*) FROM notification_log WHERE case_id = 'AL-1'"
        ) >= 1
    );
    drop(d);
}

/// `kill -9` while an e-mail is in flight (the SMTP server has its data and holds its
/// reply): after a restart every message arrives, nothing fires again, and the only
/// message sent twice is the one in flight, under the same Message-ID (the server
/// accepted it but the daemon never heard so: SMTP cannot do better, and the stable
/// Message-ID lets the receiving side see the repeat).
#[test]
fn kill_9_mid_dispatch_loses_nothing_and_repeats_only_the_message_in_flight() {
    let quiet = crate::Timeline::from(QUIET_SUNDAY);
    let dir = scratch("daemon-kill9");
    let marker = dir.join("holding");
    let Some(sink) = crate::support::SmtpSink::start_with(
        &dir,
        None,
        &["--hold", "3", "--marker", marker.to_str().unwrap()],
    ) else {
        assert!(
            std::env::var_os("CI_REQUIRE_PROMTOOL").is_none(),
            "aiosmtpd is required here"
        );
        eprintln!("aiosmtpd is not installed: kill -9 test not run");
        return;
    };
    write_config(
        &dir,
        &format!(
            "[alerts]\ntransport = \"smtp\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_tls = \"none\"\n\
             from = \"slawatch <slawatch@pvhcc.example.gov.vn>\"\nsend_window = \"always\"\nretry_base_seconds = 1\n\
             claim_seconds = 6\nmonthly_report = false\n\
             [[source]]\nname = \"vendor\"\ntype = \"push\"\ntoken_env = \"PUSH_TOKEN\"\n",
            sink.port()
        ),
    );
    let d = Daemon::start_at(&dir, &[("PUSH_TOKEN", "tk")], Some(&quiet.now()));
    d.push(&json!([
        {"MaHoSo": "K9-1", "TrangThaiHoSo": "4", "NgayTiepNhan": "20240102080000",
         "NgayHenTra": "20240104170000", "DonViXuLy": "Sở Tư pháp"},
        {"MaHoSo": "K9-2", "TrangThaiHoSo": "4", "NgayTiepNhan": "20240102080000",
         "NgayHenTra": "20240104170000", "DonViXuLy": "Sở Xây dựng"},
        {"MaHoSo": "K9-3", "TrangThaiHoSo": "4", "NgayTiepNhan": "20240102080000",
         "NgayHenTra": "20240104170000", "DonViXuLy": "Sở Tài chính"}
    ]));
    // Three overdue dossiers, one message per person: `overdue` to each department
    // head, STP's copy address and the service centre (3 + 1 + 3), `escalated` to
    // the chairman and each head (3 + 3): 13 messages in 6 e-mails (the three heads,
    // STP's copy, the centre, the chairman).
    wait_until(Duration::from_secs(30), "an e-mail in flight", || {
        marker.exists()
    });
    let in_flight = std::fs::read_to_string(&marker).unwrap();
    d.signal("-KILL");
    assert_eq!(d.wait(Duration::from_secs(10)), None, "killed by a signal");
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM outbox"), 13);
    assert_eq!(
        sqlite_count(&dir, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'"),
        0,
        "the first e-mail was in flight"
    );

    let d = Daemon::start_at(&dir, &[("PUSH_TOKEN", "tk")], Some(&quiet.now()));
    wait_until(Duration::from_secs(90), "every message sent", || {
        sqlite_count(&dir, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'") == 13
    });
    // A few more evaluation rounds: nothing fires again.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(sqlite_count(&dir, "SELECT COUNT(*) FROM outbox"), 13);
    drop(d);

    let mails = sink.messages();
    let held = std::fs::read(dir.join("maildir/new").join(in_flight.trim())).unwrap();
    let id_of = |m: &[u8]| {
        mail_parser::MessageParser::default()
            .parse(m)
            .unwrap()
            .message_id()
            .unwrap()
            .to_string()
    };
    let held_id = id_of(&held);
    let mut by_id: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for m in &mails {
        let msg = mail_parser::MessageParser::default().parse(m).unwrap();
        let items = alerts_in(&msg);
        let e = by_id
            .entry(msg.message_id().unwrap().to_string())
            .or_default();
        e.0 += 1;
        e.1 = items;
    }
    // Every message arrived: 6 distinct e-mails carrying the 13 messages.
    assert_eq!(by_id.len(), 6, "{by_id:?}");
    assert_eq!(by_id.values().map(|(_, items)| items).sum::<usize>(), 13);
    // Only the e-mail in flight at the kill came twice, with its Message-ID.
    let twice: Vec<&String> = by_id
        .iter()
        .filter(|(_, (n, _))| *n > 1)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(twice, [&held_id], "{by_id:?}");
    assert_eq!(by_id[&held_id].0, 2);
}

/// Two real daemons on one PostgreSQL, both polling the same portal: one fires the
/// alerts (lease), both dispatch (claims with `FOR UPDATE SKIP LOCKED`), and every
/// message reaches the SMTP server exactly once.
#[test]
fn two_daemons_on_one_postgres_send_each_message_once() {
    let quiet = crate::Timeline::from(QUIET_SUNDAY);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(db) = rt.block_on(crate::support::PgDatabase::create("twodaemons")) else {
        eprintln!("SLAWATCH_TEST_DATABASE_URL is not set: two-daemon test not run");
        return;
    };
    let dir = scratch("daemon-two");
    let Some(sink) = crate::support::SmtpSink::start(&dir, None) else {
        assert!(
            std::env::var_os("CI_REQUIRE_PROMTOOL").is_none(),
            "aiosmtpd is required here"
        );
        eprintln!("aiosmtpd is not installed: two-daemon test not run");
        return;
    };
    let portal = Portal {
        n: 6,
        ..Portal::default()
    };
    let base = serve_portal(portal);
    let extra = format!(
        "[alerts]\ntransport = \"smtp\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_tls = \"none\"\n\
         from = \"slawatch <slawatch@pvhcc.example.gov.vn>\"\nsend_window = \"always\"\nretry_base_seconds = 1\n\
         monthly_report = false\n{}",
        sink.port(),
        portal_source(&base)
    );
    let (da, db_dir) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db_dir).unwrap();
    write_config_with(&da, &db.url, &extra);
    write_config_with(&db_dir, &db.url, &extra);
    let env = [("PORTAL_TOKEN", "tok")];
    let a = Daemon::start_at(&da, &env, Some(&quiet.now()));
    let b = Daemon::start_at(&db_dir, &env, Some(&quiet.now()));
    let count = |sql: &str| -> i64 {
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&mut c)
                .await
                .unwrap_or(-1)
        })
    };
    // 6 overdue dossiers of STP, one message per person: `overdue` to its head, its
    // copy address and the service centre, `escalated` to the chairman and the head
    // (stuck is a digest rule): 30 messages.
    wait_until(Duration::from_secs(60), "30 messages sent", || {
        count("SELECT COUNT(*) FROM outbox WHERE status = 'sent'") == 30
    });
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(count("SELECT COUNT(*) FROM outbox"), 30);
    assert_eq!(
        count("SELECT COUNT(*) FROM alerts WHERE resolved_at IS NULL"),
        18
    );
    // Every alert message is in exactly one e-mail.
    let mails = sink.messages();
    let mut items = 0;
    let mut ids = Vec::new();
    for m in &mails {
        let msg = mail_parser::MessageParser::default().parse(m).unwrap();
        ids.push(msg.message_id().unwrap().to_string());
        items += alerts_in(&msg);
    }
    assert_eq!(items, 30, "{} e-mails", mails.len());
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(n, ids.len(), "an e-mail went out twice");
    drop(a);
    drop(b);
    rt.block_on(db.drop_it());
}

/// The e-mail a head receives links to the desk: a real daemon (`public_url` and the
/// desk secret from the environment) writes the alert as an `.eml`; the link in it
/// opens the head's unit and its case, and refuses another unit.
#[test]
fn an_alert_e_mail_links_to_the_heads_desk() {
    let quiet = crate::Timeline::from(QUIET_SUNDAY);
    let dir = scratch("daemon-desk-link");
    write_config(
        &dir,
        "[alerts]\ntransport = \"file\"\nfile_dir = \"mail\"\nsend_window = \"always\"\n\
         from = \"slawatch <canhbao@tinh.example.gov.vn>\"\n\
         [[source]]\nname = \"vendor\"\ntype = \"push\"\ntoken_env = \"PUSH_TOKEN\"\n",
    );
    let public = "https://slawatch.tinh.example.gov.vn";
    let d = Daemon::start_at(
        &dir,
        &[
            ("PUSH_TOKEN", "tk"),
            ("SLAWATCH_DESK_SECRET", "khoa-ky-bi-mat"),
            ("SLAWATCH__HTTP__PUBLIC_URL", public),
        ],
        Some(&quiet.now()),
    );
    d.push(&json!([
        {"MaHoSo": "DL-STP", "TrangThaiHoSo": "4", "NgayTiepNhan": "20241202080000",
         "NgayHenTra": "20241204170000", "DonViXuLy": "Sở Tư pháp", "ChuHoSo": "Nguyễn Văn A"},
        {"MaHoSo": "DL-SXD", "TrangThaiHoSo": "4", "NgayTiepNhan": "20241202080000",
         "NgayHenTra": "20241204170000", "DonViXuLy": "Sở Xây dựng"}
    ]));
    let head = || crate::delivered_text(&dir.join("mail"), "giamdoc@stp.example.gov.vn");
    wait_until(Duration::from_secs(30), "the head's e-mail", || {
        head().is_some()
    });
    let text = head().unwrap().replace("\r\n", "\n");
    let line = |prefix: &str| -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in {text}"))
            .trim()
            .to_string()
    };
    let unit_link = line("Trang làm việc của đơn vị: ");
    let case_link = line("Xử lý trên trang làm việc: ");
    assert!(
        unit_link.starts_with(&format!("{public}/desk/unit/STP?t=")),
        "{unit_link}"
    );
    assert!(
        case_link.starts_with(&format!("{public}/desk/case/vendor/DL-STP?t=")),
        "{case_link}"
    );
    let local = |link: &str| link.replacen(public, &format!("http://{}", d.addr), 1);
    let get = |url: String| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let (status, html) = get(local(&unit_link));
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("<b>DL-STP</b>") && !html.contains("DL-SXD"),
        "{html}"
    );
    let (status, html) = get(local(&case_link));
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<h1>DL-STP</h1>"), "{html}");
    assert!(
        !html.contains("Nguyễn Văn A"),
        "no applicant on the page: {html}"
    );
    // The same token does not open another unit.
    let token = unit_link.split("?t=").nth(1).unwrap();
    let (status, _) = get(format!("http://{}/desk/unit/SXD?t={token}", d.addr));
    assert_eq!(status, 403);
}

/// In the default set-up (no `public_url`, no secret in the environment) the e-mail
/// still links to the desk: at the address the daemon listens on, signed with a
/// secret it generated and keeps in the store, so the link still opens after a restart.
#[test]
fn in_the_default_set_up_the_e_mail_links_to_the_desk_too() {
    let quiet = crate::Timeline::from(QUIET_SUNDAY);
    let dir = scratch("daemon-desk-default");
    write_config(
        &dir,
        "[alerts]\ntransport = \"file\"\nfile_dir = \"mail\"\nsend_window = \"always\"\n\
         [[source]]\nname = \"vendor\"\ntype = \"push\"\ntoken_env = \"PUSH_TOKEN\"\n",
    );
    let d = Daemon::start_at(&dir, &[("PUSH_TOKEN", "tk")], Some(&quiet.now()));
    d.push(&json!([
        {"MaHoSo": "DD-STP", "TrangThaiHoSo": "4", "NgayTiepNhan": "20241202080000",
         "NgayHenTra": "20241204170000", "DonViXuLy": "Sở Tư pháp"}
    ]));
    let link = || -> Option<String> {
        crate::delivered_text(&dir.join("mail"), "giamdoc@stp.example.gov.vn")?
            .lines()
            .find_map(|l| l.trim().strip_prefix("Trang làm việc của đơn vị: "))
            .map(|l| l.trim().to_string())
    };
    wait_until(Duration::from_secs(30), "the head's e-mail", || {
        link().is_some()
    });
    let link = link().unwrap();
    assert!(
        link.starts_with(&format!("http://{}/desk/unit/STP?t=", d.addr)),
        "{link}"
    );
    let get = |url: &str| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { reqwest::get(url).await.unwrap().status().as_u16() })
    };
    assert_eq!(get(&link), 200);
    // After a restart (a new port), the same token still opens the page.
    drop(d);
    let d = Daemon::start_at(&dir, &[("PUSH_TOKEN", "tk")], Some(&quiet.now()));
    let token = link.split("?t=").nth(1).unwrap();
    assert_eq!(
        get(&format!("http://{}/desk/unit/STP?t={token}", d.addr)),
        200
    );
}

/// A real daemon's metrics from start-up: the notification counters at zero for every
/// rule, the evaluation histogram and its last run, the configuration's reload state
/// (a broken directory file turns it to 0), the process metrics, and whether the
/// calendar says the offices are open (a Wednesday morning: yes; a Saturday that is
/// no make-up day: no).
#[test]
fn the_metrics_say_what_runs_from_start_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = scratch("daemon-metrics-start");
    std::fs::copy(root.join("config/units.toml"), dir.join("units.toml")).unwrap();
    std::fs::write(
        dir.join("slawatch.toml"),
        format!(
            "[catalogue]\nfile = \"{root}/config/procedures.toml\"\n[directory]\nfile = \"units.toml\"\n\
             [store]\nurl = \"sqlite://{db}/slawatch.db\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [daemon]\nevaluate_schedule = \"*/2 * * * * *\"\n[alerts]\ntransport = \"file\"\nfile_dir = \"{db}/outbox\"\n",
            root = root.display(),
            db = dir.display(),
        ),
    )
    .unwrap();
    let d = Daemon::start_at(&dir, &[], Some("2026-12-02T09:00:00+07:00"));
    wait_until(Duration::from_secs(20), "a first evaluation", || {
        d.metric("slawatch_last_evaluation_timestamp_seconds") > 0.0
    });
    let text = d.text("/metrics");
    for rule in [
        "overdue",
        "escalated",
        "due_soon",
        "digest",
        "weekly",
        "monthly_report",
    ] {
        for result in ["sent", "failed"] {
            let series = format!(
                "slawatch_notifications_total{{channel=\"file\",result=\"{result}\",rule=\"{rule}\"}} 0"
            );
            assert!(
                text.lines().any(|l| l == series),
                "no `{series}` in\n{text}"
            );
        }
    }
    assert!(text.contains("\nslawatch_evaluation_duration_seconds_count "));
    assert!(text.contains("\nprocess_resident_memory_bytes "));
    assert_eq!(d.metric("slawatch_office_open"), 1.0);
    assert_eq!(d.metric("slawatch_config_last_reload_successful"), 1.0);
    // 09:00 on 02/12/2026 +07:00 is 02:00 UTC, 1796176800.
    assert_eq!(
        d.metric("slawatch_config_last_reload_success_timestamp_seconds")
            .floor(),
        1_796_176_800.0
    );
    // The directory file breaks: the reload is refused, and the metric says so.
    std::fs::write(dir.join("units.toml"), "[[unit]]\ncode = \n").unwrap();
    wait_until(Duration::from_secs(20), "the failed reload", || {
        d.metric("slawatch_config_last_reload_successful") == 0.0
    });
    drop(d);
    // Saturday 05/12/2026 is no make-up day: the offices are closed.
    std::fs::copy(root.join("config/units.toml"), dir.join("units.toml")).unwrap();
    let d = Daemon::start_at(&dir, &[], Some("2026-12-05T09:00:00+07:00"));
    wait_until(Duration::from_secs(20), "a first evaluation", || {
        d.metric("slawatch_last_evaluation_timestamp_seconds") > 0.0
    });
    assert_eq!(d.metric("slawatch_office_open"), 0.0);
}
