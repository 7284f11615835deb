//! Several replicas on one store, in process: leases taken, kept, lost when not renewed,
//! released on shutdown, and taken from a dead process of the same host; the change
//! feed bringing one replica's memory up to what another committed (new, changed and
//! ended cases, acknowledgements, a source's health), on SQLite and PostgreSQL.
//! The real-process tests (two daemons, `kill -9`, a real Prometheus) are in
//! `replicas::processes`.

mod processes;

use crate::scratch;
use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use serde_json::{json, Value};
use slawatch::config::Loaded;
use slawatch::daemon::{Context, Delivery, Shared};
use slawatch::jobs::Held;
use slawatch::source::normalize::Mapping;
use slawatch::source::RawRecord;
use slawatch::store::{self, Store};
use std::path::Path;
use std::sync::Arc;

/// A Tuesday at 09:00 in Hà Nội (2026-11-24T02:00Z).
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap()
}

fn context() -> Context {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let loaded = Loaded::load(Some(&root.join("config/slawatch.toml"))).unwrap();
    Context::from_loaded(&loaded, Arc::new(loaded.calendar()))
}

/// Two replicas of one store, each its own process as far as leases go.
fn replicas(s: Arc<dyn Store>) -> (Arc<Shared>, Arc<Shared>) {
    let one = |host: &str| {
        Arc::new(
            Shared::new(s.clone(), context(), "salt".into())
                .with_lease_span(Span::seconds(30))
                .with_holder(&format!("{host}:{}:1", std::process::id())),
        )
    };
    (one("replica-a"), one("replica-b"))
}

async fn sqlite_store(tag: &str) -> Arc<dyn Store> {
    let dir = scratch(tag);
    let s = store::open(&format!("sqlite://{}/slawatch.db", dir.display()))
        .await
        .unwrap();
    s.migrate().await.unwrap();
    s
}

async fn push(sh: &Shared, records: Value, at: DateTime<Utc>) {
    let records = records
        .as_array()
        .unwrap()
        .iter()
        .map(|v| RawRecord::json(v.clone(), "t"))
        .collect();
    slawatch::daemon::ingest(
        sh,
        "vendor",
        &Mapping::dvcqg(),
        Delivery::records(records),
        at,
    )
    .await
    .unwrap();
}

async fn leases_behave(s: Arc<dyn Store>) {
    let (a, b) = replicas(s.clone());
    let now = t0();
    assert_eq!(a.hold("poll:p", now).await.unwrap(), Held::Taken);
    assert_eq!(b.hold("poll:p", now).await.unwrap(), Held::Other);
    assert_eq!(
        a.hold("poll:p", now + Span::seconds(5)).await.unwrap(),
        Held::Kept
    );
    // Renewed at 10 s: good until 40 s; B still cannot take it at 35 s.
    a.renew_leases(now + Span::seconds(10)).await;
    assert_eq!(
        b.hold("poll:p", now + Span::seconds(35)).await.unwrap(),
        Held::Other
    );
    // A stops renewing (it died): at 41 s the lease has ended and B takes it.
    assert_eq!(
        b.hold("poll:p", now + Span::seconds(41)).await.unwrap(),
        Held::Taken
    );
    assert!(b.holds("poll:p", now + Span::seconds(42)));
    // A comes back to life: its renewal finds the lease gone and lets it go.
    a.renew_leases(now + Span::seconds(42)).await;
    assert!(!a.holds("poll:p", now + Span::seconds(42)));
    assert_eq!(
        a.hold("poll:p", now + Span::seconds(43)).await.unwrap(),
        Held::Other
    );
    // A clean shutdown of B hands the lease over at once.
    b.release_leases().await;
    assert_eq!(
        a.hold("poll:p", now + Span::seconds(44)).await.unwrap(),
        Held::Taken
    );
    assert_eq!(
        s.lease_holder("poll:p", now + Span::seconds(50))
            .await
            .unwrap()
            .as_deref(),
        Some(a.holder.as_str())
    );
    // A process of this host that is gone (a crash, then a restart) holds nothing up:
    // its successor takes the lease before its end.
    let host = a.holder.split(':').next().unwrap().to_string();
    let ghost = Shared::new(s.clone(), context(), "salt".into())
        .with_holder(&format!("{host}:4194303:ghost"));
    assert_eq!(ghost.hold("digest", now).await.unwrap(), Held::Taken);
    assert_eq!(
        a.hold("digest", now + Span::seconds(1)).await.unwrap(),
        Held::Taken,
        "pid 4194303 does not run"
    );
    // One that still runs is waited for.
    assert_eq!(
        b.hold("digest", now + Span::seconds(2)).await.unwrap(),
        Held::Other
    );
}

#[tokio::test]
async fn leases_are_taken_kept_lost_and_released_on_sqlite() {
    leases_behave(sqlite_store("replica-leases").await).await;
}

#[tokio::test]
async fn leases_are_taken_kept_lost_and_released_on_postgres() {
    let Some(db) = crate::support::PgDatabase::create("replicaleases").await else {
        eprintln!("SLAWATCH_TEST_DATABASE_URL is not set: test not run");
        return;
    };
    let s = store::open(&db.url).await.unwrap();
    s.migrate().await.unwrap();
    leases_behave(s.clone()).await;
    s.close().await;
    db.drop_it().await;
}

async fn feed_behaves(s: Arc<dyn Store>) {
    let (a, b) = replicas(s.clone());
    let now = t0();
    for sh in [&a, &b] {
        sh.register_source("vendor", "push");
        sh.load(now).await.unwrap();
    }
    // Two open dossiers of STP pushed to A: one overdue since 20/11, one due 30/11.
    push(
        &a,
        json!([
            {"MaHoSo": "F-1", "TrangThaiHoSo": "4", "NgayTiepNhan": "20261116080000",
             "NgayHenTra": "20261120170000", "DonViXuLy": "Sở Tư pháp", "NgayCapNhat": "20261116080000"},
            {"MaHoSo": "F-2", "TrangThaiHoSo": "2", "NgayTiepNhan": "20261123080000",
             "NgayHenTra": "20261130170000", "DonViXuLy": "Sở Tư pháp", "NgayCapNhat": "20261123080000"}
        ]),
        now,
    )
    .await;
    a.touch_source("vendor", now, 2);
    a.share_health("vendor").await.unwrap();
    assert_eq!(a.open_count(), 2);
    assert_eq!(b.open_count(), 0, "B has not followed yet");
    let f = b.follow(now + Span::seconds(2)).await.unwrap();
    assert_eq!((f.changes, f.cases), (1, 2), "{f:?}");
    assert_eq!(b.open_count(), 2);
    let e = b.open_case("vendor", "F-1").unwrap();
    assert_eq!(
        e.eval.as_ref().and_then(|e| e.state).map(|s| s.as_str()),
        Some("overdue")
    );
    assert_eq!(
        b.open_case("vendor", "F-2")
            .unwrap()
            .eval
            .unwrap()
            .state
            .map(|s| s.as_str()),
        Some("on_track")
    );
    // B took the health of the push source from the store.
    let h = b.health();
    assert_eq!(h[0].last_records, 2);
    assert_eq!(h[0].last_poll, Some(now));
    // A skips its own commit; nothing more for B.
    assert_eq!(a.follow(now).await.unwrap().changes, 0);
    assert_eq!(
        b.follow(now + Span::seconds(4)).await.unwrap(),
        Default::default()
    );
    // F-1 finishes (returned 25/11), pushed to B this time: A follows and drops it.
    push(
        &b,
        json!([{"MaHoSo": "F-1", "TrangThaiHoSo": "10", "NgayTiepNhan": "20261116080000",
                "NgayHenTra": "20261120170000", "DonViXuLy": "Sở Tư pháp",
                "NgayKetThucXuLy": "20261125090000", "NgayTra": "20261125090000",
                "NgayCapNhat": "20261125090000"}]),
        now + Span::hours(2),
    )
    .await;
    assert!(b.open_case("vendor", "F-1").is_none());
    let f = a.follow(now + Span::hours(2)).await.unwrap();
    assert_eq!((f.changes, f.cases), (1, 1));
    assert!(a.open_case("vendor", "F-1").is_none());
    assert_eq!(a.open_count(), 1);
    // A quarantined record (no id) reaches the other replica as a change too, so its
    // metrics count it.
    push(&a, json!([{"TrangThaiHoSo": "4"}]), now + Span::hours(3)).await;
    let f = b.follow(now + Span::hours(3)).await.unwrap();
    assert_eq!((f.changes, f.cases), (1, 0));
    // A replica that has not followed for more than half a day reloads whole.
    let f = b.follow(now + Span::days(2)).await.unwrap();
    assert!(f.reloaded);
    assert_eq!(b.open_count(), 1);
}

#[tokio::test]
async fn the_change_feed_brings_other_replicas_commits_on_sqlite() {
    feed_behaves(sqlite_store("replica-feed").await).await;
}

#[tokio::test]
async fn the_change_feed_brings_other_replicas_commits_on_postgres() {
    let Some(db) = crate::support::PgDatabase::create("replicafeed").await else {
        eprintln!("SLAWATCH_TEST_DATABASE_URL is not set: test not run");
        return;
    };
    let s = store::open(&db.url).await.unwrap();
    s.migrate().await.unwrap();
    feed_behaves(s.clone()).await;
    s.close().await;
    db.drop_it().await;
}

/// The feed read while pushes commit on several connections at once (PostgreSQL,
/// where numbers are taken as transactions write, not as they commit): reading on
/// from each page's position, every batch comes once, none skipped.
#[tokio::test]
async fn feed_numbers_follow_commit_order_on_postgres() {
    let Some(db) = crate::support::PgDatabase::create("replicaorder").await else {
        eprintln!("SLAWATCH_TEST_DATABASE_URL is not set: test not run");
        return;
    };
    let s = store::open(&db.url).await.unwrap();
    s.migrate().await.unwrap();
    let (a, _) = replicas(s.clone());
    a.register_source("vendor", "push");
    // Eight pushes at once, on as many connections: whatever the interleaving, the
    // feed read in order of numbers holds each batch once, and reading past any
    // number seen so far never skips one.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            push(
                &a,
                json!([{"MaHoSo": format!("O-{i}"), "TrangThaiHoSo": "2",
                        "NgayTiepNhan": "20261123080000", "NgayHenTra": "20261130170000",
                        "DonViXuLy": "Sở Tư pháp"}]),
                t0(),
            )
            .await
        }));
    }
    let mut position = 0;
    let mut seen = Vec::new();
    loop {
        let done = tasks.iter().all(|t| t.is_finished());
        let page = s.changes_after(position, 100).await.unwrap();
        assert!(page.next >= position);
        position = page.next;
        for c in &page.changes {
            seen.extend(c.case_ids.iter().cloned());
        }
        if done && page.changes.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    seen.sort();
    for t in tasks {
        t.await.unwrap();
    }
    // Each batch once: none skipped, none twice.
    assert_eq!(seen.len(), 8, "{seen:?}");
    seen.dedup();
    assert_eq!(seen.len(), 8, "{seen:?}");
    s.close().await;
    db.drop_it().await;
}
