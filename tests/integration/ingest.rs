//! Nothing lost on the way in, against the real daemon and a paged fake one-stop API
//! on 127.0.0.1: the first poll reads back to `initial_cursor`; a numeric next-page
//! pointer is followed; `max_pages` reached keeps the cursor at the last committed
//! record and the next poll finishes; counters match the store after a failed page
//! and after `kill -9`; the start-up poll never overlaps a scheduled one; a source
//! whose clock runs 10 minutes behind or ahead loses no update.

use crate::scratch;
use crate::support::{wait_until, Daemon};
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration as Span, FixedOffset, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One dossier of the fake system, with its change time by the system's clock.
#[derive(Clone)]
struct Rec {
    id: String,
    status: &'static str,
    changed: DateTime<Utc>,
    /// The applicant (in `ChuHoSo` and the free-text `TrichYeuHoSo`).
    name: Option<String>,
    /// Served with a broken date by the list (garbled in transit), whole by id.
    garbled: bool,
}

/// A fake one-stop API: `GET /api/hoso?since=…&page=N` answers the dossiers changed
/// at or after `since` (by its own clock), oldest change first, `per_page` a page,
/// with `"next_page": N+1` (a number) or `null` on the last page.
#[derive(Clone)]
struct Api {
    recs: Arc<Mutex<Vec<Rec>>>,
    per_page: usize,
    /// A page answered with a truncated body.
    truncate_page: Arc<Mutex<Option<usize>>>,
    /// A page that waits this long before answering.
    stall_page: Arc<Mutex<Option<(usize, Duration)>>>,
    /// Every request waits this long (a slow system).
    delay: Duration,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    stalled: Arc<AtomicBool>,
}

impl Api {
    fn new(recs: Vec<Rec>, per_page: usize) -> Api {
        Api {
            recs: Arc::new(Mutex::new(recs)),
            per_page,
            truncate_page: Default::default(),
            stall_page: Default::default(),
            delay: Duration::ZERO,
            in_flight: Default::default(),
            max_in_flight: Default::default(),
            requests: Default::default(),
            stalled: Default::default(),
        }
    }
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&FixedOffset::east_opt(7 * 3600).unwrap())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

fn dossier(r: &Rec) -> Value {
    let mut v = json!({"MaHoSo": r.id, "TrangThaiHoSo": r.status, "DonViXuLy": "Sở Tư pháp",
           "MaTTHC": "1.004227", "NgayTiepNhan": local(r.changed - Span::days(3)),
           "NgayHenTra": local(r.changed + Span::days(30)),
           "NgayKetThucXuLy": if r.status == "10" { json!(local(r.changed)) } else { json!("") },
           "NgayCapNhat": local(r.changed)});
    if let Some(n) = &r.name {
        v["ChuHoSo"] = json!(n);
        v["TrichYeuHoSo"] = json!(format!("Đăng ký khai sinh - {n}"));
        v["DiaChiThuongTru"] = json!(format!("Nhà của {n}, phường Hà Huy Tập"));
        v["SoGiayToChuHoSo"] = json!("042090001234");
    }
    v
}

async fn one(
    State(api): State<Api>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> axum::response::Response {
    let found = api
        .recs
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.id == id)
        .cloned();
    match found {
        Some(r) => axum::Json(dossier(&r)).into_response(),
        None => (axum::http::StatusCode::NOT_FOUND, "no such dossier").into_response(),
    }
}

async fn hoso(
    State(api): State<Api>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let now = api.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    api.max_in_flight.fetch_max(now, Ordering::SeqCst);
    api.requests.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(api.delay).await;
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let stall = *api.stall_page.lock().unwrap();
    if let Some((p, d)) = stall {
        if p == page {
            api.stalled.store(true, Ordering::SeqCst);
            tokio::time::sleep(d).await;
        }
    }
    let since = q
        .get("since")
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|s| s.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut recs: Vec<Rec> = api
        .recs
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.changed >= since)
        .cloned()
        .collect();
    recs.sort_by_key(|r| (r.changed, r.id.clone()));
    let items: Vec<Value> = recs
        .iter()
        .skip((page - 1) * api.per_page)
        .take(api.per_page)
        .map(|r| {
            let mut v = dossier(r);
            if r.garbled {
                v["NgayTiepNhan"] = json!("3x/02/2026 25:61");
            }
            v
        })
        .collect();
    let more = recs.len() > page * api.per_page;
    let body =
        json!({"data": items, "next_page": if more { json!(page + 1) } else { Value::Null }})
            .to_string();
    api.in_flight.fetch_sub(1, Ordering::SeqCst);
    if *api.truncate_page.lock().unwrap() == Some(page) {
        return body[..body.len() / 2].to_string();
    }
    body
}

fn serve(api: Api) -> String {
    crate::support::serve_app(
        Router::new()
            .route("/api/hoso", get(hoso))
            .route("/api/hoso/{id}", get(one))
            .with_state(api),
    )
}

fn start(dir: &Path) -> Daemon {
    Daemon::start(dir, &[])
}

/// Serves `api`, writes the configuration with the source's `extra` keys (`{base}`
/// stands for the fake system's URL) in a fresh folder, and starts the daemon there.
fn run(api: &Api, name: &str, extra: &str) -> (std::path::PathBuf, Daemon) {
    let base = serve(api.clone());
    let dir = scratch(name);
    config(&dir, &base, &extra.replace("{base}", &base));
    let d = start(&dir);
    (dir, d)
}

/// Waits until the `inserted` ingest counter reads `n`.
fn wait_inserted(d: &Daemon, n: f64, what: &str) {
    wait_until(Duration::from_secs(10), what, || {
        d.metric("slawatch_ingest_records_total{result=\"inserted\",source=\"p\"}") == n
    });
}

fn config(dir: &Path, base: &str, extra: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        dir.join("slawatch.toml"),
        format!(
            "[catalogue]\nfile = \"{root}/config/procedures.toml\"\n[directory]\nfile = \"{root}/config/units.toml\"\n\
             [store]\nurl = \"sqlite://{db}/slawatch.db\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [daemon]\nevaluate_schedule = \"*/5 * * * * *\"\nmax_backoff_seconds = 5\n[alerts]\ntransport = \"none\"\n\
             [[source]]\nname = \"p\"\ntype = \"http\"\nurl = \"{base}/api/hoso?since={{cursor}}&page={{page}}\"\n\
             next_page = \"/next_page\"\nschedule = \"*/2 * * * * *\"\n{extra}",
            root = root.display(),
            db = dir.display(),
        ),
    )
    .unwrap();
}

fn count(dir: &Path, sql: &str) -> i64 {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let url = format!("sqlite://{}/slawatch.db?mode=ro", dir.display());
            let Ok(mut c) = sqlx::SqliteConnection::connect(&url).await else {
                return -1;
            };
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&mut c)
                .await
                .unwrap_or(-1)
        })
}

/// `n` dossiers changed one minute apart, the newest `newest_ago` before now.
fn recs(prefix: &str, n: usize, newest: DateTime<Utc>) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            id: format!("{prefix}-{i:03}"),
            status: "4",
            changed: newest - Span::minutes((n - 1 - i) as i64),
            name: None,
            garbled: false,
        })
        .collect()
}

/// Records changed 800, 400, 200, 100 and 1 days ago, open and finished, 3 a page with a
/// numeric next-page pointer: a fresh daemon reads all but the 800-day-old ones (before
/// the default initial_cursor, 1 January of last year), and warns that open dossiers
/// unchanged since then are not read.
#[test]
fn a_fresh_daemon_reads_back_to_the_start_of_last_year_through_numeric_pages() {
    let now = crate::test_now();
    let mut all = Vec::new();
    for (days, n) in [(800i64, 2usize), (400, 5), (200, 5), (100, 5), (1, 5)] {
        for i in 0..n {
            all.push(Rec {
                id: format!("D{days}-{i}"),
                status: if i % 2 == 0 { "4" } else { "10" },
                changed: now - Span::days(days) + Span::minutes(i as i64),
                name: None,
                garbled: false,
            });
        }
    }
    let api = Api::new(all, 3);
    let (dir, d) = run(&api, "ingest-first", "");
    wait_until(Duration::from_secs(30), "the first poll", || {
        d.log_text().contains("poll done")
    });
    assert_eq!(
        count(&dir, "SELECT COUNT(*) FROM cases"),
        20,
        "{}",
        d.log_text()
    );
    assert_eq!(
        count(
            &dir,
            "SELECT COUNT(*) FROM cases WHERE case_id LIKE 'D800-%'"
        ),
        0
    );
    // 20 records at 3 a page: 7 pages read by following "next_page": 2, 3, …
    assert!(api.requests.load(Ordering::SeqCst) >= 7);
    let log = d.log_text();
    assert!(
        log.contains("first poll: reading every record changed since initial_cursor"),
        "{log}"
    );
    assert!(log.contains("no open case last changed before"), "{log}");
    let ready = d.ready();
    assert!(
        ready["sources"][0]["first_poll_warning"]
            .as_str()
            .unwrap_or("")
            .contains("initial_cursor"),
        "{ready}"
    );
    wait_inserted(&d, 20.0, "the counters");
}

/// `max_pages = 2` with 15 records at 3 a page: each poll stops with an error after 6
/// records, the cursor stays at the last committed record, and the following polls
/// read on from there until every record is in.
#[test]
fn max_pages_reached_is_an_error_and_the_next_poll_reads_on() {
    let now = crate::test_now();
    let api = Api::new(recs("M", 15, now - Span::hours(1)), 3);
    let (dir, d) = run(
        &api,
        "ingest-maxpages",
        "max_pages = 2\noverlap_seconds = 30\n",
    );
    wait_until(Duration::from_secs(20), "the first poll to fail", || {
        d.ready()["sources"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("max_pages (2) reached"))
    });
    let first = count(&dir, "SELECT COUNT(*) FROM cases");
    assert!(first >= 6, "{first}");
    assert_eq!(d.ready()["sources"][0]["up"], false);
    assert!(
        d.log_text().contains("\"level\":\"ERROR\""),
        "an error is logged"
    );
    wait_until(Duration::from_secs(60), "every record", || {
        count(&dir, "SELECT COUNT(*) FROM cases") == 15
    });
    wait_until(Duration::from_secs(20), "a complete poll", || {
        d.ready()["sources"][0]["up"] == true
    });
    // The cursor is the newest change time stored, by the source's clock.
    let cursor = d.ready()["sources"][0]["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let cursor = DateTime::parse_from_rfc3339(&cursor)
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(cursor, (now - Span::hours(1)).with_nanosecond_zero());
    wait_inserted(&d, 15.0, "the counters");
}

trait NoNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl NoNanos for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap()
    }
}

/// A truncated page 2: page 1 stays stored and counted (the counters equal the store),
/// the poll is an error, and once the page is whole again the rest comes in.
#[test]
fn a_truncated_page_keeps_what_was_committed_and_counts_it() {
    let now = crate::test_now();
    let api = Api::new(recs("T", 7, now - Span::hours(2)), 3);
    *api.truncate_page.lock().unwrap() = Some(2);
    let (dir, d) = run(&api, "ingest-truncated", "overlap_seconds = 30\n");
    wait_until(Duration::from_secs(20), "the poll to fail", || {
        d.ready()["sources"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not JSON"))
    });
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM cases"), 3);
    wait_inserted(&d, 3.0, "the counters of page 1");
    *api.truncate_page.lock().unwrap() = None;
    wait_until(Duration::from_secs(30), "the rest", || {
        count(&dir, "SELECT COUNT(*) FROM cases") == 7
    });
    wait_inserted(&d, 7.0, "the counters");
}

/// `kill -9` while page 3 is being fetched: what the counters said before the kill is
/// what the store holds after it, and a restarted daemon reads the rest.
#[test]
fn kill_9_between_pages_leaves_the_counters_equal_to_the_store() {
    let now = crate::test_now();
    let api = Api::new(recs("K", 12, now - Span::hours(3)), 3);
    *api.stall_page.lock().unwrap() = Some((3, Duration::from_secs(60)));
    let (dir, mut d) = run(&api, "ingest-kill9", "overlap_seconds = 30\n");
    wait_until(Duration::from_secs(20), "page 3 asked", || {
        api.stalled.load(Ordering::SeqCst)
    });
    wait_until(Duration::from_secs(20), "pages 1 and 2 stored", || {
        count(&dir, "SELECT COUNT(*) FROM cases") == 6
    });
    // The exposition is rendered a moment after each commit.
    wait_inserted(&d, 6.0, "the counters of pages 1 and 2");
    let counted = 6.0;
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM cases") as f64, counted);
    *api.stall_page.lock().unwrap() = None;
    let d = start(&dir);
    wait_until(Duration::from_secs(30), "the rest", || {
        count(&dir, "SELECT COUNT(*) FROM cases") == 12
    });
    wait_inserted(&d, 6.0, "the counters");
}

/// A slow system (3 s a request) polled every 2 s: the start-up poll and the
/// scheduled ones never run at once.
#[test]
fn a_slow_source_is_never_polled_twice_at_once() {
    let now = crate::test_now();
    let mut api = Api::new(recs("S", 4, now - Span::hours(1)), 10);
    api.delay = Duration::from_secs(3);
    let (_dir, d) = run(&api, "ingest-slow", "");
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        api.requests.load(Ordering::SeqCst) >= 2,
        "polled again after the first"
    );
    assert_eq!(
        api.max_in_flight.load(Ordering::SeqCst),
        1,
        "{}",
        d.log_text()
    );
    assert!(d.log_text().contains("previous run still going"));
}

/// A source whose clock runs `offset` from ours: 18 dossiers, then each one updated
/// (status 4 → 10) and stamped by the source's clock; every update is read, the skew
/// shows in its gauge and the source's health.
fn skewed(offset: Span, name: &str) -> (f64, Value) {
    // The fake system starts once the daemon is up, its clock `offset` from the
    // daemon's (read from /readyz, so this holds however the two processes' clocks
    // were set).
    let api = Api::new(Vec::new(), 50);
    let (dir, d) = run(&api, name, "");
    let asked = crate::test_now();
    let daemon_now = DateTime::parse_from_rfc3339(d.ready()["now"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let to_daemon = daemon_now - asked;
    let source_now = || crate::test_now() + to_daemon + offset;
    *api.recs.lock().unwrap() = recs(name, 18, source_now());
    wait_until(Duration::from_secs(20), "18 cases", || {
        count(&dir, "SELECT COUNT(*) FROM cases") == 18
    });
    // Two polls later, the system changes every dossier.
    let polls = api.requests.load(Ordering::SeqCst);
    wait_until(Duration::from_secs(20), "two more polls", || {
        api.requests.load(Ordering::SeqCst) >= polls + 2
    });
    for r in api.recs.lock().unwrap().iter_mut() {
        r.status = "10";
        r.changed = source_now();
    }
    wait_until(Duration::from_secs(30), "every update read", || {
        count(&dir, "SELECT COUNT(*) FROM cases WHERE status = 10") == 18
    });
    wait_until(Duration::from_secs(10), "the skew gauge", || {
        d.metric("slawatch_source_clock_skew_seconds{source=\"p\"}")
            .is_finite()
    });
    let skew = d.metric("slawatch_source_clock_skew_seconds{source=\"p\"}");
    (skew, d.ready()["sources"][0].clone())
}

#[test]
fn a_source_clock_ten_minutes_behind_or_ahead_loses_no_update() {
    let (skew, health) = skewed(Span::minutes(-10), "behind");
    assert!((-660.0..=-590.0).contains(&skew), "{skew}");
    assert!(
        health["clock_warning"]
            .as_str()
            .unwrap_or("")
            .contains("runs behind"),
        "{health}"
    );
    let (skew, health) = skewed(Span::minutes(10), "ahead");
    assert!((590.0..=610.0).contains(&skew), "{skew}");
    assert!(
        health["clock_warning"]
            .as_str()
            .unwrap_or("")
            .contains("runs ahead"),
        "{health}"
    );
}

/// `initial_cursor` set 30 days back reads only what changed since; `slawatch backfill
/// --since` then re-reads further back on purpose, and a second run changes nothing.
#[test]
fn initial_cursor_and_backfill_reach_back_on_purpose() {
    let now = crate::test_now();
    let mut all = recs("OLD", 4, now - Span::days(200));
    all.extend(recs("NEW", 3, now - Span::days(2)));
    let api = Api::new(all, 3);
    let initial = (now - Span::days(30)).to_rfc3339();
    let (dir, d) = run(
        &api,
        "ingest-backfill",
        &format!("initial_cursor = \"{initial}\"\n"),
    );
    wait_until(Duration::from_secs(30), "the first poll", || {
        d.log_text().contains("poll done")
    });
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM cases"), 3);
    drop(d);
    let since = (now - Span::days(365)).format("%Y-%m-%d").to_string();
    let run = || {
        crate::slawatch()
            .args([
                "--config",
                "slawatch.toml",
                "backfill",
                "--source",
                "p",
                "--since",
                &since,
            ])
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let out = run();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("7 records, 4 inserted, 0 updated, 3 unchanged"),
        "{text}"
    );
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM cases"), 7);
    let out = run();
    let again = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && again.contains("7 records, 0 inserted, 0 updated, 7 unchanged"),
        "{again}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A source that is not asked by change time, or a bad date: one clear line.
    let bad = crate::slawatch()
        .args([
            "--config",
            "slawatch.toml",
            "backfill",
            "--source",
            "p",
            "--since",
            "last year",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
}

fn names() -> Vec<String> {
    include_str!("../fixtures/applicant-names.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn assert_no_name(what: &str, text: &str) {
    for n in names() {
        assert!(
            !text.contains(&n),
            "{what} holds the applicant name {n}: {text}"
        );
    }
    assert!(!text.contains("042090001234"), "{what} holds an id number");
    assert!(
        !text.contains("Đăng ký khai sinh"),
        "{what} holds free text"
    );
}

/// Records garbled in transit (a broken date in the list) are quarantined, fetched
/// again by id (`record_url`) after the poll, stored, and their quarantine rows
/// resolved; no applicant name appears in any quarantine answer, raw version or log.
#[test]
fn garbled_records_are_fetched_again_by_id_and_no_name_leaves_the_store() {
    let now = crate::test_now();
    let mut all = recs("G", 12, now - Span::hours(1));
    for (i, (r, n)) in all.iter_mut().zip(names()).enumerate() {
        r.name = Some(n);
        r.garbled = i % 3 == 0;
    }
    let api = Api::new(all, 5);
    let (dir, d) = run(
        &api,
        "ingest-refetch",
        "record_url = \"{base}/api/hoso/{case_id}\"\n",
    );
    wait_until(
        Duration::from_secs(30),
        "every dossier, the garbled ones by id",
        || count(&dir, "SELECT COUNT(*) FROM cases") == 12,
    );
    wait_until(Duration::from_secs(10), "the quarantine resolved", || {
        count(&dir, "SELECT COUNT(*) FROM quarantine WHERE resolved = 0") == 0
    });
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM quarantine"), 4);
    assert_eq!(
        count(
            &dir,
            "SELECT COUNT(*) FROM quarantine WHERE resolution LIKE 'superseded%'"
        ),
        4
    );
    let q = d.text("/api/v1/quarantine?resolved=true");
    let v: Value = serde_json::from_str(&q).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(v["items"][0]["body"]["TrichYeuHoSo"], "***");
    assert_eq!(v["items"][0]["body"]["DonViXuLy"], "Sở Tư pháp");
    assert_no_name("GET /api/v1/quarantine", &q);
    let id = v["items"][0]["id"].as_i64().unwrap().to_string();
    for args in [
        vec!["quarantine", "list", "--all"],
        vec!["quarantine", "show", &id],
    ] {
        let out = crate::slawatch()
            .args(["--config", "slawatch.toml"])
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_no_name(&args.join(" "), &String::from_utf8_lossy(&out.stdout));
    }
    let versions = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let url = format!("sqlite://{}/slawatch.db?mode=ro", dir.display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_scalar::<_, String>("SELECT body FROM case_versions")
                .fetch_all(&mut c)
                .await
                .unwrap()
        });
    assert_eq!(versions.len(), 12);
    assert_no_name("the raw versions", &versions.join("\n"));
    let api_case = d.text("/api/v1/cases/G-000");
    assert_no_name("GET /api/v1/cases/G-000", &api_case);
    drop(d);
    assert_no_name(
        "the log",
        &std::fs::read_to_string(dir.join("daemon-0.log")).unwrap_or_default(),
    );
}

/// Without `record_url`: a garbled copy stays quarantined until the list serves a
/// valid version with a later change time, which resolves it.
#[test]
fn a_garbled_copy_is_resolved_by_its_later_valid_version() {
    let now = crate::test_now();
    let mut all = recs("V", 3, now - Span::hours(1));
    all[0].garbled = true;
    all[2].garbled = true;
    let api = Api::new(all, 10);
    let (dir, d) = run(&api, "ingest-supersede", "");
    wait_until(Duration::from_secs(20), "two quarantined", || {
        count(&dir, "SELECT COUNT(*) FROM quarantine WHERE resolved = 0") == 2
    });
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM cases"), 1);
    wait_until(Duration::from_secs(10), "the gauge", || {
        d.metric("slawatch_quarantined_records{source=\"p\"}") == 2.0
    });
    for r in api.recs.lock().unwrap().iter_mut() {
        r.garbled = false;
        r.changed = crate::test_now();
    }
    wait_until(Duration::from_secs(20), "resolved", || {
        count(&dir, "SELECT COUNT(*) FROM quarantine WHERE resolved = 0") == 0
    });
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM cases"), 3);
    wait_until(Duration::from_secs(10), "the gauge at zero", || {
        d.metric("slawatch_quarantined_records{source=\"p\"}") == 0.0
    });
}

/// A source with nothing to read yet: the first poll stores where it read from, so
/// the polls after it are not first polls (no repeated first-poll log or warning).
#[test]
fn an_empty_first_poll_is_first_once() {
    let api = Api::new(Vec::new(), 10);
    let (_dir, d) = run(&api, "ingest-empty", "initial_cursor = \"2025-06-01\"\n");
    wait_until(Duration::from_secs(20), "three polls", || {
        api.requests.load(Ordering::SeqCst) >= 3
    });
    let log = d.log_text();
    assert_eq!(
        log.matches("first poll: reading every record").count(),
        1,
        "{log}"
    );
    let cursor = d.ready()["sources"][0]["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        DateTime::parse_from_rfc3339(&cursor).unwrap(),
        DateTime::parse_from_rfc3339("2025-06-01T00:00:00+07:00").unwrap()
    );
}
