//! Sources against real servers on 127.0.0.1: a paged DVCQG-format HTTP API (bearer
//! and session auth, a flaky first answer), into a real store, through evaluation.
//! The dossiers are hand-made with historic dates, so their states hold whatever day
//! the test runs.

use crate::scratch;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use slawatch::config::Loaded;
use slawatch::daemon::{poll_once, Context, Shared, SourceRuntime};
use slawatch::source::{self, SourceConfig};
use slawatch::store;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Portal {
    /// Pages of records, served in order for `page=1..`.
    records: Arc<Mutex<Vec<Value>>>,
    calls: Arc<AtomicUsize>,
    fail_first: Arc<AtomicUsize>,
    seen_since: Arc<Mutex<Vec<String>>>,
    sessions: Arc<Mutex<Vec<String>>>,
    logins: Arc<AtomicUsize>,
}

const PAGE: usize = 2;

async fn hoso(
    State(p): State<Portal>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    p.calls.fetch_add(1, Ordering::SeqCst);
    if p.fail_first.load(Ordering::SeqCst) > 0 {
        p.fail_first.fetch_sub(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
    }
    let auth = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let ok = auth == "Bearer t0ken"
        || p.sessions
            .lock()
            .unwrap()
            .iter()
            .any(|s| auth == format!("Bearer {s}"));
    if !ok {
        return (StatusCode::UNAUTHORIZED, "no").into_response();
    }
    p.seen_since
        .lock()
        .unwrap()
        .push(q.get("since").cloned().unwrap_or_default());
    let page: usize = q.get("page").and_then(|x| x.parse().ok()).unwrap_or(1);
    let all = p.records.lock().unwrap().clone();
    let items: Vec<Value> = all.into_iter().skip((page - 1) * PAGE).take(PAGE).collect();
    Json(json!({"error_code": "0", "data": items})).into_response()
}

async fn login(State(p): State<Portal>, Json(body): Json<Value>) -> axum::response::Response {
    p.logins.fetch_add(1, Ordering::SeqCst);
    if body["username"] == "dongbo" && body["password"] == "mat-khau" {
        let s = format!("s{}", p.logins.load(Ordering::SeqCst));
        p.sessions.lock().unwrap().push(s.clone());
        Json(json!({"error_code": "0", "session": s})).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, Json(json!({"error_code": "-1"}))).into_response()
    }
}

async fn serve(p: Portal) -> String {
    let app = Router::new()
        .route("/api/hoso", get(hoso))
        .route("/api/login", post(login))
        .with_state(p);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

fn dossier(id: &str, status: &str, received: &str, due: &str) -> Value {
    json!({
        "MaHoSo": id, "MaTTHC": "9.999999", "TenTTHC": "Thủ tục thử", "DonViXuLy": "Sở Tư pháp",
        "KenhThucHien": "1", "TrangThaiHoSo": status, "NgayTiepNhan": received, "NgayHenTra": due,
        "NgayKetThucXuLy": "", "NgayTra": "", "ChuHoSo": "Nguyễn Văn A", "SoGiayToChuHoSo": "042090001234",
    })
}

/// The hand-made feed and what each case must become.
fn feed() -> Vec<Value> {
    let mut late = dossier("H-LATE", "10", "20230915143000", "20231006143000");
    late["NgayKetThucXuLy"] = json!("20231010100000");
    let mut overdue = dossier("H-OVERDUE", "4", "20240102080000", "20240110170000");
    overdue["QuaTrinhXuLy"] = json!([{"NoiDungXuLy": "Thẩm định", "PhongBanXuLy": "Sở Xây dựng",
        "NgayBatDau": "20240102090000", "NgayKetThucTheoQuyDinh": "20240105170000"}]);
    let mut paused = dossier("H-PAUSED", "5", "20240102080000", "20240110170000");
    paused["DanhSachHoSoBoSung"] =
        json!([{"NgayBoSung": "20240103090000", "NgayTiepNhanBoSung": ""}]);
    let mut beyond = dossier("H-BEYOND", "9", "20240301080000", "20240430170000");
    beyond["MaTTHC"] = json!("1.004227");
    beyond["NgayKetThucXuLy"] = json!("20240320100000");
    let mut bad = dossier("H-BAD", "42", "20240301080000", "20240430170000");
    bad["DonViXuLy"] = json!("UBND xã Không Có Trong Danh Bạ");
    let step_first = json!({"MaHoSo": "H-LATER", "NguoiXuLy": "Trần B", "NoiDungXuLy": "Tiếp nhận",
        "ThoiDiemXuLy": "20240105100000", "NgayBatDau": "20240105090000", "TrangThai": "2"});
    vec![late, overdue, paused, beyond, bad, step_first]
}

async fn shared(dir: &Path) -> Arc<Shared> {
    shared_at(&format!("sqlite://{}/slawatch.db", dir.display())).await
}

async fn shared_at(url: &str) -> Arc<Shared> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let loaded = Loaded::load(Some(&root.join("config/slawatch.toml"))).unwrap();
    let s = store::open(url).await.unwrap();
    s.migrate().await.unwrap();
    let ctx = Context {
        calendar: Arc::new(loaded.calendar()),
        policy: loaded.policy.clone(),
        catalogue: loaded.catalogue.clone(),
        directory: loaded.directory.clone(),
    };
    Arc::new(Shared::new(s, ctx, "salt".into()))
}

fn runtime(sh: &Shared, cfg_toml: &str) -> Arc<SourceRuntime> {
    let cfg: SourceConfig = toml::from_str(cfg_toml).unwrap();
    sh.register_source(&cfg.name, &cfg.kind);
    let cal = slawatch::calendar::Calendar::builtin();
    Arc::new(SourceRuntime {
        mapping: cfg.mapping().unwrap(),
        source: source::build(&cfg, &cal).unwrap().unwrap(),
        config: cfg,
    })
}

fn state_of(sh: &Shared, id: &str) -> Option<&'static str> {
    sh.select_open(|_| true)
        .into_iter()
        .find(|e| e.case.case_id == id)
        .and_then(|e| e.eval)
        .and_then(|e| e.state)
        .map(|s| s.as_str())
}

#[tokio::test]
async fn paged_dvcqg_http_source_to_store_and_states() {
    let portal = Portal::default();
    *portal.records.lock().unwrap() = feed();
    portal.fail_first.store(1, Ordering::SeqCst);
    let base = serve(portal.clone()).await;
    // SAFETY of the test: a variable no other test reads.
    std::env::set_var("SLAWATCH_TEST_PORTAL_TOKEN", "t0ken");
    let dir = scratch("http-source");
    let sh = shared(&dir).await;
    let rt = runtime(
        &sh,
        &format!(
            "name = \"portal\"\ntype = \"http\"\nurl = \"{base}/api/hoso?since={{cursor}}&page={{page}}\"\n\
             auth = \"bearer\"\nsecret_env = \"SLAWATCH_TEST_PORTAL_TOKEN\"\ncursor_format = \"dvcqg\"\ntimeout_seconds = 5\n"
        ),
    );
    poll_once(&sh, &rt, Duration::from_secs(30), 60).await;

    let health = sh.health();
    assert!(health[0].up && health[0].last_records == 6, "{health:?}");
    // 6 records in 3 pages of 2, then an empty page 4; one 503 retried.
    assert_eq!(portal.calls.load(Ordering::SeqCst), 5);
    let counts = sh.store.counts().await.unwrap();
    assert_eq!((counts.cases, counts.quarantined), (4, 1));
    // Open cases and their states.
    assert_eq!(state_of(&sh, "H-OVERDUE"), Some("overdue"));
    assert_eq!(state_of(&sh, "H-PAUSED"), Some("paused"));
    assert_eq!(sh.open_count(), 2);
    // The finished ones, from the store.
    let late = sh.store.find_case("H-LATE").await.unwrap();
    assert_eq!(
        late[0].1.as_ref().unwrap().outcome.map(|o| o.as_str()),
        Some("late")
    );
    let beyond = sh.store.find_case("H-BEYOND").await.unwrap();
    let e = beyond[0].1.clone().unwrap();
    // 1.004227 is 15 workdays: from Fri 01/03/2024 08:00 the legal due is 22/03; the
    // source's 30/04 is beyond it. Finished 20/03, a date before 30/04: early.
    assert_eq!(
        (e.outcome.map(|o| o.as_str()), e.flags.joined().as_str()),
        (Some("early"), "due_beyond_legal")
    );
    // Units resolved through the directory; the step's department too.
    let overdue = sh.store.find_case("H-OVERDUE").await.unwrap();
    assert_eq!(overdue[0].0.unit_code.as_deref(), Some("STP"));
    assert_eq!(overdue[0].0.steps[0].unit_code.as_deref(), Some("SXD"));
    assert!(overdue[0].1.as_ref().unwrap().flags.has("step_overdue"));
    // The applicant never lands in the store.
    assert!(!serde_json::to_string(&overdue[0].0)
        .unwrap()
        .contains("042090001234"));
    // The bad record is quarantined with its reason; the steps wait for their dossier.
    let q = sh
        .store
        .quarantine_list(Some("portal"), false, 10)
        .await
        .unwrap();
    assert!(
        q[0].reason.contains("unknown status `42`"),
        "{}",
        q[0].reason
    );
    assert_eq!(
        sh.store
            .pending_steps("portal", &["H-LATER".into()])
            .await
            .unwrap()["H-LATER"]
            .len(),
        1
    );
    // First poll: no cursor, so 90 days back, written as yyyyMMddHHmmss.
    let since = portal.seen_since.lock().unwrap()[0].clone();
    assert_eq!(since.len(), 14, "{since}");
    let cursor = sh.store.cursor("portal").await.unwrap().unwrap();

    // Second poll: the same records change nothing; the dossier of the early step arrives.
    let mut later = dossier("H-LATER", "4", "20240105090000", "20240119170000");
    later["QuaTrinhXuLy"] = json!([]);
    portal.records.lock().unwrap().push(later);
    poll_once(&sh, &rt, Duration::from_secs(30), 60).await;
    let counts = sh.store.counts().await.unwrap();
    assert_eq!((counts.cases, counts.quarantined), (5, 1));
    let l = sh.store.find_case("H-LATER").await.unwrap();
    assert_eq!(l[0].0.steps.len(), 1, "the early step is joined");
    assert!(sh
        .store
        .pending_steps("portal", &["H-LATER".into()])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        sh.store
            .versions("portal", "H-OVERDUE")
            .await
            .unwrap()
            .len(),
        1
    );
    // The second poll asked from the stored cursor minus the overlap.
    let cursor_local = {
        let cal = slawatch::calendar::Calendar::builtin();
        let c = chrono::DateTime::parse_from_rfc3339(&cursor)
            .unwrap()
            .with_timezone(&chrono::Utc)
            - chrono::Duration::seconds(300);
        cal.local(c).format("%Y%m%d%H%M%S").to_string()
    };
    assert!(portal.seen_since.lock().unwrap().contains(&cursor_local));
}

#[tokio::test]
async fn session_login_is_renewed_when_refused() {
    let portal = Portal::default();
    *portal.records.lock().unwrap() = vec![dossier("S-1", "4", "20240102080000", "20240110170000")];
    let base = serve(portal.clone()).await;
    std::env::set_var("SLAWATCH_TEST_PORTAL_PASSWORD", "mat-khau");
    let dir = scratch("http-session");
    let sh = shared(&dir).await;
    let rt = runtime(
        &sh,
        &format!(
            "name = \"portal\"\ntype = \"http\"\nurl = \"{base}/api/hoso?since={{cursor}}\"\nauth = \"session\"\n\
             login_url = \"{base}/api/login\"\nusername = \"dongbo\"\nsecret_env = \"SLAWATCH_TEST_PORTAL_PASSWORD\"\n"
        ),
    );
    poll_once(&sh, &rt, Duration::from_secs(30), 60).await;
    assert_eq!(portal.logins.load(Ordering::SeqCst), 1);
    assert_eq!(sh.store.counts().await.unwrap().cases, 1);
    // The portal forgets its sessions: the next poll logs in again and goes on.
    portal.sessions.lock().unwrap().clear();
    poll_once(&sh, &rt, Duration::from_secs(30), 60).await;
    assert_eq!(portal.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_outage_is_reported_and_recovered() {
    let portal = Portal::default();
    *portal.records.lock().unwrap() = vec![dossier("O-1", "4", "20240102080000", "20240110170000")];
    portal.fail_first.store(100, Ordering::SeqCst);
    let base = serve(portal.clone()).await;
    std::env::set_var("SLAWATCH_TEST_OUTAGE_TOKEN", "t0ken");
    let dir = scratch("http-outage");
    let sh = shared(&dir).await;
    let rt = runtime(
        &sh,
        &format!(
            "name = \"portal\"\ntype = \"http\"\nurl = \"{base}/api/hoso\"\nretries = 1\nauth = \"bearer\"\n\
             secret_env = \"SLAWATCH_TEST_OUTAGE_TOKEN\"\n"
        ),
    );
    poll_once(&sh, &rt, Duration::from_secs(30), 0).await;
    assert_eq!(
        portal.calls.load(Ordering::SeqCst),
        2,
        "one try and one retry"
    );
    assert_eq!(sh.store.counts().await.unwrap().cases, 0);
    assert_eq!(
        sh.store.cursor("portal").await.unwrap(),
        None,
        "a failed poll moves no cursor"
    );
    let h = sh.health()[0].clone();
    assert!(!h.up && h.consecutive_failures == 1, "{h:?}");
    assert!(h.last_error.as_deref().unwrap().contains("503"), "{h:?}");
    // Within the back-off (5 s) the source is not asked again.
    portal.fail_first.store(0, Ordering::SeqCst);
    poll_once(&sh, &rt, Duration::from_secs(30), 0).await;
    assert_eq!(portal.calls.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(5200)).await;
    poll_once(&sh, &rt, Duration::from_secs(30), 0).await;
    assert_eq!(sh.store.counts().await.unwrap().cases, 1);
    assert!(sh.health()[0].up);
}

/// The same table in each database: the one-stop system's own schema, read through a
/// query that aliases its columns to canonical names.
const ROWS: &[(&str, i32, &str, &str, Option<&str>)] = &[
    (
        "Q-OVERDUE",
        4,
        "2024-01-02 08:00:00",
        "2024-01-10 17:00:00",
        None,
    ),
    (
        "Q-DONE",
        10,
        "2024-01-02 08:00:00",
        "2024-01-10 17:00:00",
        Some("2024-01-09 10:00:00"),
    ),
    (
        "Q-PAUSED",
        5,
        "2024-01-02 08:00:00",
        "2024-01-10 17:00:00",
        None,
    ),
];

async fn sql_story(sh: Arc<Shared>, url: &str, query: &str) {
    let rt = runtime(
        &sh,
        &format!("name = \"motcua\"\ntype = \"sql\"\ndatabase_url = \"{url}\"\nquery = \"\"\"{query}\"\"\"\n"),
    );
    poll_once(&sh, &rt, Duration::from_secs(30), 60).await;
    let h = &sh.health()[0];
    assert!(h.up, "{h:?}");
    let counts = sh.store.counts().await.unwrap();
    let q = sh.store.quarantine_list(None, false, 10).await.unwrap();
    assert!(
        q.is_empty(),
        "{:?}",
        q.iter().map(|r| &r.reason).collect::<Vec<_>>()
    );
    assert_eq!((counts.cases, counts.open, counts.quarantined), (3, 2, 0));
    assert_eq!(state_of(&sh, "Q-OVERDUE"), Some("overdue"));
    assert_eq!(state_of(&sh, "Q-PAUSED"), Some("paused"));
    let done = sh.store.find_case("Q-DONE").await.unwrap();
    assert_eq!(
        done[0].1.as_ref().unwrap().outcome.map(|o| o.as_str()),
        Some("early")
    );
    // Naive timestamps are local time: 08:00 in Hà Nội is 01:00 UTC.
    assert_eq!(
        done[0].0.received_at.unwrap().to_rfc3339(),
        "2024-01-02T01:00:00+00:00"
    );
    assert_eq!(done[0].0.unit_code.as_deref(), Some("STP"));
    let overdue = sh.store.find_case("Q-OVERDUE").await.unwrap();
    assert_eq!(overdue[0].0.steps.len(), 1, "steps from a JSON column");
    // Polled again: nothing changes.
    poll_once(&sh, &rt, Duration::from_secs(30), 60).await;
    assert_eq!(sh.store.counts().await.unwrap().cases, 3);
    assert_eq!(
        sh.store
            .versions("motcua", "Q-OVERDUE")
            .await
            .unwrap()
            .len(),
        1
    );
}

fn steps_json(id: &str) -> String {
    if id == "Q-OVERDUE" {
        r#"[{"title":"Thẩm định","department":"Sở Xây dựng","started_at":"2024-01-02 09:00"}]"#
            .into()
    } else {
        "[]".into()
    }
}

#[tokio::test]
async fn sql_source_on_mariadb() {
    let Ok(url) = std::env::var("SLAWATCH_TEST_MYSQL_URL") else {
        eprintln!("SLAWATCH_TEST_MYSQL_URL is not set: MariaDB source not tested");
        return;
    };
    use sqlx::Connection;
    let mut c = sqlx::MySqlConnection::connect(&url)
        .await
        .expect("MariaDB reachable");
    let table = format!("hoso_{}", std::process::id());
    sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query(&format!(
        "CREATE TABLE {table} (MaHoSo VARCHAR(64) PRIMARY KEY, TrangThai INT, NgayTiepNhan DATETIME, \
         NgayHenTra DATETIME, NgayKetThuc DATETIME NULL, DonVi VARCHAR(200), QuaTrinh TEXT, CapNhat DATETIME)"
    ))
    .execute(&mut c)
    .await
    .unwrap();
    for (id, st, rec, due, fin) in ROWS {
        sqlx::query(&format!(
            "INSERT INTO {table} VALUES (?, ?, ?, ?, ?, 'Sở Tư pháp', ?, NOW())"
        ))
        .bind(id)
        .bind(st)
        .bind(rec)
        .bind(due)
        .bind(fin)
        .bind(steps_json(id))
        .execute(&mut c)
        .await
        .unwrap();
    }
    let dir = scratch("sql-mariadb");
    let sh = shared(&dir).await;
    let query = format!(
        "SELECT MaHoSo AS case_id, TrangThai AS status, NgayTiepNhan AS received_at, NgayHenTra AS due_at, \
         NgayKetThuc AS finished_at, DonVi AS unit, QuaTrinh AS steps FROM {table} WHERE CapNhat > ?"
    );
    sql_story(sh, &url, &query).await;
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn sql_source_on_postgres() {
    let Some(db) = crate::support::PgDatabase::create("source").await else {
        eprintln!("SLAWATCH_TEST_DATABASE_URL is not set: PostgreSQL source not tested");
        return;
    };
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        "CREATE TABLE hoso (ma_ho_so TEXT PRIMARY KEY, trang_thai INT, ngay_tiep_nhan TIMESTAMP, \
         ngay_hen_tra TIMESTAMP, ngay_ket_thuc TIMESTAMP, don_vi TEXT, qua_trinh JSONB, cap_nhat TIMESTAMPTZ)",
    )
    .execute(&mut c)
    .await
    .unwrap();
    for (id, st, rec, due, fin) in ROWS {
        sqlx::query(
            "INSERT INTO hoso VALUES ($1, $2, $3::timestamp, $4::timestamp, $5::timestamp, 'Sở Tư pháp', $6::jsonb, now())",
        )
        .bind(id)
        .bind(st)
        .bind(rec)
        .bind(due)
        .bind(fin)
        .bind(steps_json(id))
        .execute(&mut c)
        .await
        .unwrap();
    }
    c.close().await.ok();
    let dir = scratch("sql-postgres");
    let sh = shared(&dir).await;
    let query = "SELECT ma_ho_so AS case_id, trang_thai AS status, ngay_tiep_nhan AS received_at, \
                 ngay_hen_tra AS due_at, ngay_ket_thuc AS finished_at, don_vi AS unit, qua_trinh::text AS steps \
                 FROM hoso WHERE cap_nhat > $1::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh'";
    sql_story(sh, &db.url, query).await;
    db.drop_it().await;
}

#[tokio::test]
async fn sql_source_on_sqlite() {
    let dir = scratch("sql-sqlite");
    let path = dir.join("motcua.db");
    {
        use sqlx::Connection;
        let mut c =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                .await
                .unwrap();
        sqlx::query("CREATE TABLE hoso (id TEXT, st INTEGER, rec TEXT, due TEXT, fin TEXT, dv TEXT, steps TEXT, upd TEXT)")
            .execute(&mut c)
            .await
            .unwrap();
        for (id, st, rec, due, fin) in ROWS {
            sqlx::query(
                "INSERT INTO hoso VALUES (?, ?, ?, ?, ?, 'Sở Tư pháp', ?, '2099-01-01 00:00:00')",
            )
            .bind(id)
            .bind(st)
            .bind(rec)
            .bind(due)
            .bind(fin)
            .bind(steps_json(id))
            .execute(&mut c)
            .await
            .unwrap();
        }
    }
    let sh = shared(&dir).await;
    let query = "SELECT id AS case_id, st AS status, rec AS received_at, due AS due_at, fin AS finished_at, \
                 dv AS unit, steps FROM hoso WHERE upd > ?";
    sql_story(sh, &format!("sqlite://{}", path.display()), query).await;
}

/// The bad-input corpus through the whole pipeline: every bad record is quarantined
/// with a reason, nothing crashes, the good records land.
#[tokio::test]
async fn bad_input_corpus_is_quarantined_and_good_records_land() {
    let dir = scratch("corpus");
    let sh = shared(&dir).await;
    let good = |id: &str| dossier(id, "4", "20240102080000", "20240110170000");
    let mut records = vec![
        slawatch::source::RawRecord::json(good("G-1"), "corpus"),
        slawatch::source::RawRecord::json(good("G-2"), "corpus"),
        slawatch::source::RawRecord::unparsable(
            "{\"MaHoSo\": \"T-1\", \"TrangThaiHoSo\":",
            "not JSON: EOF",
            "corpus:3",
        ),
    ];
    let mut bad = Vec::new();
    let mut missing_id = good("x");
    missing_id.as_object_mut().unwrap().remove("MaHoSo");
    bad.push(missing_id);
    let mut bad_date = good("B-DATE");
    bad_date["NgayTiepNhan"] = json!("32/13/2024 25:61");
    bad.push(bad_date);
    let mut end_before = good("B-END");
    end_before["NgayKetThucXuLy"] = json!("20231201080000");
    bad.push(end_before);
    bad.push(dossier(
        "B-STATUS",
        "11",
        "20240102080000",
        "20240110170000",
    ));
    let mut huge = good("B-HUGE");
    huge["DonViXuLy"] = json!("x".repeat(1_000_000));
    bad.push(huge);
    let mut wrong = good("B-TYPE");
    wrong["NgayHenTra"] = json!({"date": "20240110170000"});
    bad.push(wrong);
    let mut wrong_list = good("B-LIST");
    wrong_list["QuaTrinhXuLy"] = json!("not a list");
    bad.push(wrong_list);
    bad.push(json!(42));
    bad.push(json!(null));
    records.extend(
        bad.into_iter()
            .map(|v| slawatch::source::RawRecord::json(v, "corpus")),
    );
    let mapping = slawatch::source::normalize::Mapping::dvcqg();
    let stats = slawatch::daemon::ingest(
        &sh,
        "portal",
        &mapping,
        slawatch::daemon::Delivery::records(records),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!((stats.inserted, stats.quarantined), (2, 10), "{stats:?}");
    let q = sh.store.quarantine_list(None, false, 100).await.unwrap();
    assert_eq!(q.len(), 10);
    for r in &q {
        assert!(!r.reason.is_empty());
    }
    let reasons: Vec<&str> = q.iter().map(|r| r.reason.as_str()).collect();
    for want in [
        "not JSON",
        "no case id",
        "`received_at`",
        "is before `received_at`",
        "unknown status `11`",
        "longer than",
        "expected text, found an object",
        "expected an array",
        "expected a JSON object",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(want)),
            "no reason with `{want}` in {reasons:#?}"
        );
    }
    assert_eq!(sh.store.counts().await.unwrap().cases, 2);
}

/// A source that says when each record changed: an older copy arriving later never
/// overwrites the newer one.
#[tokio::test]
async fn out_of_order_updates_keep_the_newest() {
    let dir = scratch("out-of-order");
    let sh = shared(&dir).await;
    let mut mapping = slawatch::source::normalize::Mapping::dvcqg();
    mapping
        .fields
        .insert("updated_at".into(), "/NgayCapNhat".into());
    let at = |status: &str, updated: &str| {
        let mut v = dossier("OO-1", status, "20240102080000", "20240110170000");
        v["NgayCapNhat"] = json!(updated);
        slawatch::source::RawRecord::json(v, "t")
    };
    let ingest = |recs: Vec<slawatch::source::RawRecord>| {
        let sh = sh.clone();
        let mapping = mapping.clone();
        async move {
            slawatch::daemon::ingest(
                &sh,
                "portal",
                &mapping,
                slawatch::daemon::Delivery::records(recs),
                chrono::Utc::now(),
            )
            .await
            .unwrap()
        }
    };
    ingest(vec![at("9", "20240108100000")]).await;
    let s = ingest(vec![at("4", "20240105100000")]).await;
    assert_eq!(s.unchanged, 1, "the older copy is ignored");
    let c = sh.store.find_case("OO-1").await.unwrap();
    assert_eq!(c[0].0.status, 9);
    ingest(vec![at("10", "20240109100000")]).await;
    let c = sh.store.find_case("OO-1").await.unwrap();
    assert_eq!(c[0].0.status, 10);
    let history: Vec<u8> = c[0].0.status_history.iter().map(|h| h.status).collect();
    assert_eq!(history, [9, 10]);
}

/// The demo province is a pure function of its seed and the time: the same poll gives
/// the same records, its volume follows `per_day`, and it holds the whole variety.
#[tokio::test]
async fn demo_province_is_deterministic_and_varied() {
    let dir = scratch("demo");
    let sh = shared(&dir).await;
    let ctx = sh.context();
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-25T03:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let poll = |per_day: u32| {
        let cfg: SourceConfig = toml::from_str(&format!(
            "name = \"demo\"\ntype = \"demo\"\nper_day = {per_day}\nseed = 7\n"
        ))
        .unwrap();
        let src = source::build(&cfg, &ctx.calendar).unwrap().unwrap();
        let store = sh.store.clone();
        let ctx = ctx.clone();
        async move {
            let pctx = slawatch::source::PollContext {
                source: "demo",
                now,
                since: now,
                calendar: &ctx.calendar,
                directory: &ctx.directory,
                catalogue: &ctx.catalogue,
                ledger: &store,
            };
            src.poll(None, &pctx).await.unwrap()
        }
    };
    let a = poll(100).await;
    let b = poll(100).await;
    let values = |p: &slawatch::source::Poll| -> Vec<Value> {
        p.records.iter().map(|r| r.value.clone().unwrap()).collect()
    };
    assert_eq!(values(&a), values(&b), "same seed, same time, same records");
    // 75 days back hold about 52 workdays: ~5,200 cases at 100 a workday.
    let n = a.records.len();
    assert!((4_500..6_000).contains(&n), "{n}");
    let double = poll(200).await.records.len();
    assert!(
        (double as f64 / n as f64 - 2.0).abs() < 0.1,
        "{n} vs {double}"
    );
    let vals = values(&a);
    let ids: std::collections::HashSet<&str> = vals
        .iter()
        .map(|v| v["case_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), n, "unique ids");
    let count = |f: &dyn Fn(&Value) -> bool| vals.iter().filter(|v| f(v)).count();
    assert!(count(&|v| v["kind"] == "task") > n / 40, "tasks");
    assert!(
        count(&|v| v["supplements"].as_array().is_some_and(|s| !s.is_empty())) > n / 20,
        "supplements"
    );
    assert!(count(&|v| v["status"] == 10) > n / 3, "finished");
    assert!(count(&|v| v["status"] == 5) > 0, "waiting on a supplement");
    assert!(
        count(&|v| v["steps"].as_array().is_some_and(|s| s.len() == 3)) > n / 3,
        "three steps"
    );
    // Every unit it uses is in the directory.
    for v in &vals {
        assert!(ctx.directory.resolve(v["unit"].as_str().unwrap()).is_some());
    }
    // Ingested: some late, some overdue, some stuck, nothing quarantined.
    let mapping = cfg_mapping();
    let stats = slawatch::daemon::ingest(
        &sh,
        "demo",
        &mapping,
        slawatch::daemon::Delivery::records(a.records),
        now,
    )
    .await
    .unwrap();
    assert_eq!((stats.inserted, stats.quarantined), (n, 0));
    let open = sh.select_open(|_| true);
    let state = |s: &str| {
        open.iter()
            .filter(|e| e.eval.as_ref().and_then(|e| e.state).map(|x| x.as_str()) == Some(s))
            .count()
    };
    assert!(
        state("overdue") > 0 && state("on_track") > 0 && state("paused") > 0,
        "varied states"
    );
    assert!(open
        .iter()
        .any(|e| e.eval.as_ref().is_some_and(|e| e.stuck)));
}

fn cfg_mapping() -> slawatch::source::normalize::Mapping {
    let cfg: SourceConfig = toml::from_str("name = \"demo\"\ntype = \"demo\"\n").unwrap();
    cfg.mapping().unwrap()
}

/// One poll whose pages all carry the same dossier, changing as it goes, beside other
/// dossiers and the same bad record twice: pages are committed concurrently, yet the
/// dossier ends as its last copy with every status in its history, and nothing else
/// is lost or doubled.
async fn a_case_on_every_page_ends_as_its_last_copy(sh: Arc<Shared>) {
    let statuses = ["1", "2", "4", "5", "4", "6", "9"];
    let mut records = Vec::new();
    for (i, st) in statuses.iter().enumerate() {
        let mut moving = dossier("MP-1", st, "20240102080000", "20240110170000");
        if *st == "5" {
            moving["DanhSachHoSoBoSung"] =
                json!([{"NgayBoSung": "20240103090000", "NgayTiepNhanBoSung": ""}]);
        }
        records.push(moving);
        let other = if i % 3 == 2 {
            dossier("MP-BAD", "42", "20240301080000", "20240430170000")
        } else {
            dossier(&format!("MP-O{i}"), "4", "20240102080000", "20240110170000")
        };
        records.push(other);
    }
    let portal = Portal::default();
    *portal.records.lock().unwrap() = records;
    let base = serve(portal.clone()).await;
    let rt = runtime(
        &sh,
        &format!(
            "name = \"portal\"\ntype = \"http\"\nurl = \"{base}/api/hoso?page={{page}}\"\n\
             auth = \"bearer\"\nsecret_env = \"SLAWATCH_TEST_PAGES_TOKEN\"\ntimeout_seconds = 5\n"
        ),
    );
    poll_once(&sh, &rt, Duration::from_secs(30), 60).await;
    let health = sh.health();
    assert!(health[0].up && health[0].last_records == 14, "{health:?}");
    let counts = sh.store.counts().await.unwrap();
    // MP-1 and the five others; the bad record (pages 3 and 6) is one quarantine row.
    assert_eq!((counts.cases, counts.quarantined), (6, 1));
    let stored = sh.store.find_case("MP-1").await.unwrap();
    assert_eq!(stored.len(), 1);
    let case = &stored[0].0;
    assert_eq!(case.status, 9);
    let history: Vec<u8> = case.status_history.iter().map(|h| h.status).collect();
    assert_eq!(history, [1, 2, 4, 5, 4, 6, 9]);
    assert_eq!(case.supplements.len(), 1);
    // Memory agrees with the store: MP-1 is finished, the five others are open.
    assert_eq!(sh.open_count(), 5);
    assert!(state_of(&sh, "MP-1").is_none());
}

#[tokio::test]
async fn pages_committed_concurrently_keep_order_on_sqlite() {
    std::env::set_var("SLAWATCH_TEST_PAGES_TOKEN", "t0ken");
    let dir = scratch("pages-sqlite");
    a_case_on_every_page_ends_as_its_last_copy(shared(&dir).await).await;
}

#[tokio::test]
async fn pages_committed_concurrently_keep_order_on_postgres() {
    std::env::set_var("SLAWATCH_TEST_PAGES_TOKEN", "t0ken");
    let Some(db) = crate::support::PgDatabase::create("pages").await else {
        eprintln!("SLAWATCH_TEST_DATABASE_URL is not set: not run on PostgreSQL");
        return;
    };
    let sh = shared_at(&db.url).await;
    a_case_on_every_page_ends_as_its_last_copy(sh.clone()).await;
    sh.store.close().await;
    db.drop_it().await;
}
