//! Two real daemons on one PostgreSQL: the poller killed with `kill -9` in the middle
//! of a poll (the other takes the source over from the stored cursor, within the
//! lease), a push to one visible in the other's memory and API, a real Prometheus
//! scraping both with the shipped rules (single counts), and the digest's sender
//! killed while its e-mail is in flight (the other sends the rest; nothing twice but
//! the e-mail in flight, under its Message-ID).

use crate::scratch;
use crate::support::{serve_app, wait_until, Daemon};
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A portal of `n` overdue dossiers of STP, two per page; page 2 can stall.
#[derive(Clone, Default)]
struct Portal {
    n: usize,
    stall_page_2: Arc<AtomicBool>,
    page_2_asked: Arc<AtomicUsize>,
}

async fn hoso(
    State(p): State<Portal>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    let page: usize = q.get("page").and_then(|x| x.parse().ok()).unwrap_or(1);
    if page == 2 {
        p.page_2_asked.fetch_add(1, Ordering::SeqCst);
        while p.stall_page_2.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let items: Vec<Value> = (0..p.n)
        .skip((page - 1) * 2)
        .take(2)
        .map(|i| {
            json!({"MaHoSo": format!("R-{i:03}"), "TrangThaiHoSo": "4", "DonViXuLy": "Sở Tư pháp",
                   "NgayTiepNhan": "20240102080000", "NgayHenTra": "20240110170000",
                   "NgayCapNhat": format!("202401020800{i:02}")})
        })
        .collect();
    Json(json!({"data": items})).into_response()
}

fn config(dir: &Path, store: &str, extra: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("slawatch.toml"),
        format!(
            "[catalogue]\nfile = \"{root}/config/procedures.toml\"\n[directory]\nfile = \"{root}/config/units.toml\"\n\
             [store]\nurl = \"{store}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [daemon]\nevaluate_schedule = \"*/2 * * * * *\"\nlease_seconds = 6\nfollow_interval_ms = 500\n{extra}",
            root = root.display(),
        ),
    )
    .unwrap();
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn pg_scalar(url: &str, sql: &str) -> Option<String> {
    block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.ok()?;
        sqlx::query_scalar::<_, Option<String>>(sql)
            .fetch_one(&mut c)
            .await
            .ok()
            .flatten()
    })
}

fn pg_count(url: &str, sql: &str) -> i64 {
    pg_scalar(url, &format!("SELECT ({sql})::text"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}

fn open_cases(d: &Daemon) -> i64 {
    d.ready()["open_cases"].as_i64().unwrap_or(-1)
}

fn prometheus_missing() -> bool {
    if Command::new("prometheus").arg("--version").output().is_ok() {
        return false;
    }
    assert!(
        std::env::var_os("CI_REQUIRE_PROMTOOL").is_none(),
        "prometheus is required here"
    );
    eprintln!("prometheus is not installed: replica test not run");
    true
}

/// Replica A polls (it started first); `kill -9` while page 2 of its poll hangs.
/// Replica B takes the source over once A's lease ends (6 s here; 30 s by default)
/// and reads everything from the stored cursor: nothing lost, each record once. A
/// push to the restarted A is in B's memory and API within a second or two. A real
/// Prometheus scraping both with the shipped rules counts each case once.
#[test]
fn a_killed_poller_is_taken_over_and_both_replicas_agree() {
    if prometheus_missing() {
        return;
    }
    let Some(db) = block_on(crate::support::PgDatabase::create("replicapoll")) else {
        eprintln!("SLAWATCH_TEST_DATABASE_URL is not set: replica test not run");
        return;
    };
    let portal = Portal {
        n: 9,
        ..Portal::default()
    };
    portal.stall_page_2.store(true, Ordering::SeqCst);
    let base = serve_app(
        Router::new()
            .route("/api/hoso", get(hoso))
            .with_state(portal.clone()),
    );
    let dir = scratch("replica-poll");
    // An hourly schedule: the takeover itself runs the poll, not the next tick.
    let extra = format!(
        "[[source]]\nname = \"portal\"\ntype = \"http\"\nurl = \"{base}/api/hoso?since={{cursor}}&page={{page}}\"\n\
         schedule = \"0 0 * * * *\"\ntimeout_seconds = 120\n\
         [[source]]\nname = \"vendor\"\ntype = \"push\"\ntoken_env = \"PUSH_TOKEN\"\n"
    );
    let (da, dbb) = (dir.join("a"), dir.join("b"));
    config(&da, &db.url, &extra);
    config(&dbb, &db.url, &extra);
    let env = |name: &'static str| [("PUSH_TOKEN", "tk"), ("SLAWATCH_REPLICA", name)];
    let a = Daemon::start(&da, &env("replica-a"));
    wait_until(Duration::from_secs(30), "A's poll to reach page 2", || {
        portal.page_2_asked.load(Ordering::SeqCst) > 0
    });
    let b = Daemon::start(&dbb, &env("replica-b"));
    let holder = |lease: &str| {
        pg_scalar(
            &db.url,
            &format!("SELECT holder FROM leases WHERE name = '{lease}'"),
        )
        .unwrap_or_default()
    };
    assert!(holder("poll:portal").starts_with("replica-a:"));
    assert!(holder("metrics").starts_with("replica-a:"));
    assert_eq!(b.metric("slawatch_replica_leader"), 0.0);
    assert!(
        !b.text("/metrics").contains("slawatch_cases_open{"),
        "only the leader exports case gauges"
    );
    a.signal("-KILL");
    let killed = Instant::now();
    assert_eq!(a.wait(Duration::from_secs(10)), None, "killed by a signal");
    portal.stall_page_2.store(false, Ordering::SeqCst);
    // Page 1 may be stored; the cursor never moved past what was committed.
    assert!(pg_count(&db.url, "SELECT COUNT(*) FROM cases") <= 2);
    wait_until(Duration::from_secs(30), "B to store all 9 dossiers", || {
        pg_count(&db.url, "SELECT COUNT(*) FROM cases") == 9
    });
    let takeover = killed.elapsed();
    eprintln!("takeover after kill -9: {:.1} s", takeover.as_secs_f64());
    // The lease ends at most 6 s after A's last renewal; B contends every 2 s.
    assert!(takeover < Duration::from_secs(15), "{takeover:?}");
    assert!(holder("poll:portal").starts_with("replica-b:"));
    assert!(b
        .log_text()
        .contains("taking over the polling of this source"));
    wait_until(
        Duration::from_secs(15),
        "B to export the case metrics",
        || b.metric("slawatch_replica_leader") == 1.0,
    );
    assert_eq!(pg_count(&db.url, "SELECT COUNT(*) FROM case_versions"), 9);
    wait_until(Duration::from_secs(10), "B's memory to hold 9", || {
        open_cases(&b) == 9
    });

    // A comes back: it loads what B stored, polls nothing (B holds the source).
    let a = Daemon::start(&da, &env("replica-a"));
    assert_eq!(open_cases(&a), 9);
    assert_eq!(a.metric("slawatch_replica_leader"), 0.0);
    // A push to A reaches B's memory and API through the change feed.
    let pushed = Instant::now();
    a.push(&json!([
        {"MaHoSo": "P-A", "TrangThaiHoSo": "4", "NgayTiepNhan": "20240102080000",
         "NgayHenTra": "20240110170000", "DonViXuLy": "Sở Xây dựng"}
    ]));
    wait_until(Duration::from_secs(10), "B to see A's push", || {
        open_cases(&b) == 10
    });
    let lag = pushed.elapsed();
    eprintln!("a push to A in B's memory after {} ms", lag.as_millis());
    let (status, listed) = b.get("/api/v1/cases?unit=SXD");
    assert_eq!(status, 200, "{listed}");
    assert!(listed.to_string().contains("P-A"), "{listed}");
    // And the other way: a push to B is in A's memory.
    b.push(&json!([
        {"MaHoSo": "P-B", "TrangThaiHoSo": "4", "NgayTiepNhan": "20240102080000",
         "NgayHenTra": "20240110170000", "DonViXuLy": "Sở Tài chính"}
    ]));
    wait_until(Duration::from_secs(10), "A to see B's push", || {
        open_cases(&a) == 11
    });

    // A real Prometheus scraping both, with the shipped rules.
    let prom = crate::support::Prometheus::start(&dir, &[&a.addr, &b.addr]);
    let scalar = |q: &str| prom.scalar(q);
    wait_until(
        Duration::from_secs(60),
        "both replicas scraped and the rules evaluated",
        || {
            scalar("count(up{job=\"slawatch\"} == 1)") == Some(2.0)
                && scalar("slawatch:cases_overdue:sum").is_some()
        },
    );
    // 11 overdue dossiers (9 of STP, one each of SXD and STC): once, not twice.
    assert_eq!(scalar("slawatch:cases_overdue:sum"), Some(11.0));
    assert_eq!(
        scalar("sum(unit:slawatch_cases_overdue:sum{unit=\"STP\"})"),
        Some(9.0)
    );
    assert_eq!(scalar("sum(slawatch_cases_open)"), Some(11.0));
    assert_eq!(scalar("sum(slawatch_replica_leader)"), Some(1.0));
    assert_eq!(scalar("count(slawatch_build_info)"), Some(2.0));
    assert_eq!(
        scalar("sum(slawatch_source_up{source=\"portal\"})"),
        Some(1.0),
        "the portal's health from the leader only"
    );
    drop(a);
    drop(b);
    block_on(db.drop_it());
}

/// The morning digest on two replicas: A queues it at 07:30 (it holds the digest
/// lease) and starts sending; `kill -9` while its first e-mail is in flight (the SMTP
/// server has its data and holds its reply). B, started meanwhile, sends every digest
/// e-mail once A's claim has run out and queues nothing again: each e-mail arrives
/// once, except the one in flight at the kill, twice under the same Message-ID.
#[test]
fn the_digest_survives_its_sender_killed_mid_dispatch() {
    let Some(db) = block_on(crate::support::PgDatabase::create("replicadigest")) else {
        eprintln!("SLAWATCH_TEST_DATABASE_URL is not set: replica test not run");
        return;
    };
    let dir = scratch("replica-digest");
    let marker = dir.join("holding");
    let Some(sink) = crate::support::SmtpSink::start_with(
        &dir,
        None,
        &["--hold", "4", "--marker", marker.to_str().unwrap()],
    ) else {
        assert!(
            std::env::var_os("CI_REQUIRE_PROMTOOL").is_none(),
            "aiosmtpd is required here"
        );
        eprintln!("aiosmtpd is not installed: replica digest test not run");
        return;
    };
    // Tuesday 1 December 2026, a workday: the digest is at 07:30.
    let day = crate::Timeline::from("2026-12-01T07:29:50+07:00");
    let extra = format!(
        "[alerts]\ntransport = \"smtp\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_tls = \"none\"\n\
         from = \"slawatch <slawatch@pvhcc.example.gov.vn>\"\nsend_window = \"always\"\nretry_base_seconds = 1\n\
         claim_seconds = 12\nmonthly_report = false\ndigest_schedule = \"0 30 7 * * *\"\n\
         [alerts.rules]\noverdue = \"digest\"\nescalated = \"digest\"\napology_due = \"digest\"\nstep_overdue = \"digest\"\n\
         [[source]]\nname = \"vendor\"\ntype = \"push\"\ntoken_env = \"PUSH_TOKEN\"\n",
        sink.port()
    );
    let (da, dbb) = (dir.join("a"), dir.join("b"));
    config(&da, &db.url, &extra);
    config(&dbb, &db.url, &extra);
    let env = |name: &'static str| [("PUSH_TOKEN", "tk"), ("SLAWATCH_REPLICA", name)];
    let a = Daemon::start_at(&da, &env("replica-a"), Some(&day.now()));
    a.push(&json!([
        {"MaHoSo": "DG-1", "TrangThaiHoSo": "4", "NgayTiepNhan": "20261116080000",
         "NgayHenTra": "20261120170000", "DonViXuLy": "Sở Tư pháp"},
        {"MaHoSo": "DG-2", "TrangThaiHoSo": "4", "NgayTiepNhan": "20261116080000",
         "NgayHenTra": "20261120170000", "DonViXuLy": "Sở Xây dựng"}
    ]));
    wait_until(Duration::from_secs(40), "a digest e-mail in flight", || {
        marker.exists()
    });
    let in_flight = std::fs::read_to_string(&marker).unwrap();
    let queued = pg_count(&db.url, "SELECT COUNT(*) FROM outbox WHERE rule = 'digest'");
    assert!(queued >= 2, "{queued} digest e-mails queued");
    let b = Daemon::start_at(&dbb, &env("replica-b"), Some(&day.now()));
    assert_eq!(
        std::fs::read_to_string(&marker).ok().as_deref(),
        Some(in_flight.as_str()),
        "still the first e-mail in flight"
    );
    a.signal("-KILL");
    assert_eq!(a.wait(Duration::from_secs(10)), None, "killed by a signal");
    assert_eq!(
        pg_count(&db.url, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'"),
        0
    );
    wait_until(Duration::from_secs(90), "every digest e-mail sent", || {
        pg_count(&db.url, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'") == queued
    });
    // A few more rounds: B queues no digest again.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(pg_count(&db.url, "SELECT COUNT(*) FROM outbox"), queued);
    drop(b);
    let id_of = |m: &[u8]| {
        mail_parser::MessageParser::default()
            .parse(m)
            .unwrap()
            .message_id()
            .unwrap()
            .to_string()
    };
    let held = std::fs::read(dir.join("maildir/new").join(in_flight.trim())).unwrap();
    let held_id = id_of(&held);
    let mut by_id: std::collections::BTreeMap<String, usize> = Default::default();
    for m in sink.messages() {
        *by_id.entry(id_of(&m)).or_default() += 1;
    }
    assert_eq!(by_id.len() as i64, queued, "{by_id:?}");
    let twice: Vec<&String> = by_id
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(twice, [&held_id], "{by_id:?}");
    assert_eq!(by_id[&held_id], 2);
    block_on(db.drop_it());
}
