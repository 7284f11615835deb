//! Metrics from real ingested cases: hand-made dossiers around a fixed "now"
//! (Fri 15/03/2024 10:00 in Hà Tĩnh), the exposition's values checked by hand, and
//! the whole exposition through `promtool check metrics` when promtool is installed
//! (`.ci/run` installs it).

use crate::scratch;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use slawatch::config::Loaded;
use slawatch::daemon::{ingest, Context, Delivery, Shared};
use slawatch::source::normalize::Mapping;
use slawatch::source::RawRecord;
use slawatch::store;
use std::path::Path;
use std::sync::Arc;

pub fn dossier(id: &str, status: &str, received: &str, due: &str, finished: &str) -> Value {
    json!({
        "MaHoSo": id, "MaTTHC": "9.999999", "TenTTHC": "Thủ tục thử", "DonViXuLy": "Sở Tư pháp",
        "KenhThucHien": "1", "TrangThaiHoSo": status, "NgayTiepNhan": received, "NgayHenTra": due,
        "NgayKetThucXuLy": finished, "NgayTra": finished, "ChuHoSo": "Nguyễn Văn A",
    })
}

pub async fn shared_with_cases(dir: &Path, now: DateTime<Utc>) -> Arc<Shared> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let loaded = Loaded::load(Some(&root.join("config/slawatch.toml"))).unwrap();
    let s = store::open(&format!("sqlite://{}/slawatch.db", dir.display()))
        .await
        .unwrap();
    s.migrate().await.unwrap();
    let ctx = Context {
        calendar: Arc::new(loaded.calendar()),
        policy: loaded.policy.clone(),
        catalogue: loaded.catalogue.clone(),
        directory: loaded.directory.clone(),
    };
    let sh = Arc::new(Shared::new(s, ctx, "salt".into()));
    let mut unknown = dossier("M-UNKNOWN", "2", "20240314090000", "20240328170000", "");
    unknown["DonViXuLy"] = json!("UBND xã Không Có");
    let records = vec![
        // Open, due Fri 08/03 17:00: overdue by Mon–Thu, 4 whole workdays.
        dossier("M-OVERDUE", "4", "20240301080000", "20240308170000", ""),
        // Open, due 28/03: on track, on time to date.
        dossier("M-ONTRACK", "4", "20240314080000", "20240328170000", ""),
        // Finished 05/03 before its due 08/03: early, in the month.
        dossier(
            "M-EARLY",
            "10",
            "20240301080000",
            "20240308170000",
            "20240305100000",
        ),
        // Finished 20/02 after its due 16/02: late, in the quarter and year only.
        dossier(
            "M-LATE",
            "10",
            "20240201080000",
            "20240216170000",
            "20240220100000",
        ),
        // Finished 29/12/2023: in no running period.
        dossier(
            "M-LASTYEAR",
            "10",
            "20231201080000",
            "20231229170000",
            "20231228100000",
        ),
        unknown,
    ];
    let recs = records
        .into_iter()
        .map(|v| RawRecord::json(v, "test"))
        .collect();
    ingest(
        &sh,
        "portal",
        &Mapping::dvcqg(),
        Delivery::records(recs),
        now,
    )
    .await
    .unwrap();
    sh.register_source("portal", "http");
    sh.refresh_metrics(now).await.unwrap();
    sh
}

fn value<'a>(text: &'a str, series: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-03-15T10:00:00+07:00")
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn exposition_from_ingested_cases() {
    let dir = scratch("metrics");
    let sh = shared_with_cases(&dir, now()).await;
    let text = String::from_utf8(sh.metrics.exposition().to_vec()).unwrap();
    let path = dir.join("metrics.txt");
    std::fs::write(&path, &text).unwrap();
    let d = "kind=\"dossier\"";
    let v = |s: String| value(&text, &s).to_string();
    assert_eq!(
        v(format!(
            "slawatch_cases_open{{{d},state=\"overdue\",unit=\"STP\"}}"
        )),
        "1"
    );
    assert_eq!(
        v(format!(
            "slawatch_cases_open{{{d},state=\"on_track\",unit=\"STP\"}}"
        )),
        "1"
    );
    assert_eq!(
        v(format!(
            "slawatch_cases_open{{{d},state=\"paused\",unit=\"STP\"}}"
        )),
        "0"
    );
    assert_eq!(
        v(format!(
            "slawatch_cases_open{{{d},state=\"on_track\",unit=\"unknown\"}}"
        )),
        "1"
    );
    assert_eq!(
        v(format!(
            "slawatch_overdue_age_workdays_bucket{{{d},unit=\"STP\",le=\"3\"}}"
        )),
        "0"
    );
    assert_eq!(
        v(format!(
            "slawatch_overdue_age_workdays_bucket{{{d},unit=\"STP\",le=\"5\"}}"
        )),
        "1"
    );
    assert_eq!(
        v(format!(
            "slawatch_overdue_age_workdays_sum{{{d},unit=\"STP\"}}"
        )),
        "4"
    );
    // Month: overdue (late), on track (on time), early = 2/3.
    assert_eq!(
        v(format!(
            "slawatch_on_time_ratio{{{d},period=\"month\",unit=\"STP\"}}"
        )),
        (2.0f64 / 3.0).to_string()
    );
    // Quarter and year add the late February one: 2/4.
    for period in ["quarter", "year"] {
        assert_eq!(
            v(format!(
                "slawatch_on_time_ratio{{{d},period=\"{period}\",unit=\"STP\"}}"
            )),
            "0.5"
        );
    }
    assert_eq!(
        v(format!(
            "slawatch_cases_finished{{{d},outcome=\"early\",period=\"month\",unit=\"STP\"}}"
        )),
        "1"
    );
    assert_eq!(
        v(format!(
            "slawatch_cases_finished{{{d},outcome=\"late\",period=\"month\",unit=\"STP\"}}"
        )),
        "0"
    );
    assert_eq!(
        v(format!(
            "slawatch_cases_finished{{{d},outcome=\"late\",period=\"year\",unit=\"STP\"}}"
        )),
        "1"
    );
    assert_eq!(v("slawatch_source_up{source=\"portal\"}".into()), "0");
    // The official calendar file ends with 2027: midnight 01/01/2028 in Hà Tĩnh
    // (2027-12-31 17:00 UTC).
    assert_eq!(
        v("slawatch_calendar_official_until_timestamp_seconds".into()),
        "1830272400"
    );
    assert!(!text.contains("M-OVERDUE") && !text.contains("Nguyễn"));

    // promtool, when installed, must accept the exposition.
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) if std::env::var_os("CI_REQUIRE_PROMTOOL").is_none() => {
            eprintln!("promtool is not installed: exposition not linted")
        }
        Err(e) => panic!("promtool required: {e}"),
    }
}

/// Finished cases stored before the end and indicator 2.1 were kept get them once at
/// start-up, so the period counts include them.
#[tokio::test]
async fn earlier_finished_cases_are_backfilled_once() {
    let dir = scratch("backfill");
    let sh = shared_with_cases(&dir, now()).await;
    // Make M-EARLY and M-LATE look like rows from before schema version 2.
    let url = format!("sqlite://{}/slawatch.db", dir.display());
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let n = sqlx::query("UPDATE cases SET ended_at = NULL, on_time = NULL WHERE is_open = 0")
            .execute(&mut c)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 3);
    }
    let n = slawatch::daemon::backfill_period_facts(&sh, now())
        .await
        .unwrap();
    assert_eq!(n, 3);
    let late = sh.store.find_case("M-LATE").await.unwrap();
    let e = late[0].1.clone().unwrap();
    // Finished Tue 20/02/2024 10:00 (+07), due 16/02: late in 766 terms.
    assert_eq!(
        e.ended_at,
        Some(
            DateTime::parse_from_rfc3339("2024-02-20T10:00:00+07:00")
                .unwrap()
                .with_timezone(&Utc)
        )
    );
    assert_eq!(e.on_time, Some(false));
    // Once only.
    assert_eq!(
        slawatch::daemon::backfill_period_facts(&sh, now())
            .await
            .unwrap(),
        0
    );
}

/// A timer re-evaluation racing polls never writes back an evaluation older than what
/// the polls stored: cases a poll returned stay finished in the store (and would not
/// come back as open after a restart), and memory holds the poll's evaluation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reevaluation_racing_polls_never_reopens_a_returned_case() {
    let dir = scratch("race");
    let sh = shared_with_cases(&dir, now()).await;
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    // 600 open dossiers due Fri 15/03/2024 17:00.
    let record = |i: usize, status: &str, finished: &str| {
        RawRecord::json(
            dossier(
                &format!("R-{i:03}"),
                status,
                "20240311080000",
                "20240315170000",
                finished,
            ),
            "t",
        )
    };
    let open = (0..600).map(|i| record(i, "4", "")).collect();
    ingest(
        &sh,
        "portal",
        &Mapping::dvcqg(),
        Delivery::records(open),
        now(),
    )
    .await
    .unwrap();
    // The timer re-evaluates at instants before and after the due in turn, so every
    // round changes (and writes) about 600 evaluations.
    let (before, after) = (
        at("2024-03-15T10:00:00+07:00"),
        at("2024-03-18T10:00:00+07:00"),
    );
    let timer_shared = sh.clone();
    let timer = tokio::spawn(async move {
        for k in 0..60 {
            let t = if k % 2 == 0 { after } else { before };
            slawatch::daemon::reevaluate(&timer_shared, t)
                .await
                .unwrap();
        }
    });
    // Meanwhile the portal returns them, 20 at a time.
    for first in (0..600).step_by(20) {
        let returned = (first..first + 20)
            .map(|i| record(i, "10", "20240315100000"))
            .collect();
        ingest(
            &sh,
            "portal",
            &Mapping::dvcqg(),
            Delivery::records(returned),
            now(),
        )
        .await
        .unwrap();
        tokio::task::yield_now().await;
    }
    timer.await.unwrap();
    assert!(sh
        .select_open(|_| true)
        .iter()
        .all(|e| !e.case.case_id.starts_with("R-")));
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}/slawatch.db", dir.display()))
        .await
        .unwrap();
    let reopened: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM cases WHERE case_id LIKE 'R-%' AND (is_open <> 0 OR on_time IS NULL)",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(reopened, 0, "returned cases written back as open");
}

/// The timer judges again only the cases whose evaluation may have moved (`sla::horizon`),
/// yet at every instant of two weeks, every 20 minutes, memory holds what judging each
/// case afresh says; the thresholds fall where they were worked out by hand; a reload
/// that changes the rules is judged at once, one that changes nothing it reads is not.
#[tokio::test]
async fn a_reevaluation_that_skips_what_holds_says_what_judging_afresh_says() {
    let dir = scratch("holds");
    let sh = shared_with_cases(&dir, now()).await;
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let state_of = |id: &str| {
        let e = sh.select_open(|e| e.case.case_id == id);
        let s = e[0].eval.as_ref().unwrap();
        (s.state.unwrap().as_str(), s.overdue_workdays, s.stuck)
    };
    let mut t = now();
    let mut seen = std::collections::HashMap::new();
    let (mut judged, mut held) = (0, 0);
    while t <= at("2024-03-29T10:00:00+07:00") {
        let r = slawatch::daemon::reevaluate_counted(&sh, t).await.unwrap();
        judged += r.judged;
        held += r.held;
        let ctx = sh.context();
        for e in sh.select_open(|_| true) {
            let (_, fresh) = ctx.judge(&e.case, t).unwrap();
            let held = e.eval.as_ref().unwrap();
            assert!(
                held.same_as(&fresh),
                "{} at {t}: memory {held:?}, afresh {fresh:?}",
                e.case.case_id
            );
        }
        seen.insert(t, (state_of("M-ONTRACK"), state_of("M-OVERDUE")));
        t += chrono::Duration::minutes(20);
    }
    // 1,009 rounds over the open cases; a case is judged again only where it may have
    // moved: a few dozen times, not thousands.
    let open = sh.open_count();
    assert_eq!(judged + held, 1009 * open, "{judged} + {held}");
    assert!(judged < 20 * open, "judged {judged} times, held {held}");
    // M-OVERDUE, due Fri 08/03 17:00: 4 whole workdays late on Friday 15/03 until
    // 17:00, then 5 (Mon 11 … Fri 15 at 17:00).
    assert_eq!(
        seen[&at("2024-03-15T16:40:00+07:00")].1,
        ("overdue", 4, true)
    );
    assert_eq!(
        seen[&at("2024-03-15T17:00:00+07:00")].1,
        ("overdue", 5, true)
    );
    // M-ONTRACK, received Thu 14/03 08:00, due Thu 28/03 17:00: stuck three workdays
    // after its last change (Tue 19/03 08:00); due soon once now + 2 workdays reaches
    // the due (Tue 26/03 17:00); overdue after Thu 28/03 17:00.
    assert_eq!(
        seen[&at("2024-03-19T07:40:00+07:00")].0,
        ("on_track", 0, false)
    );
    assert_eq!(
        seen[&at("2024-03-19T08:00:00+07:00")].0,
        ("on_track", 0, true)
    );
    assert_eq!(
        seen[&at("2024-03-26T16:40:00+07:00")].0,
        ("on_track", 0, true)
    );
    assert_eq!(
        seen[&at("2024-03-26T17:00:00+07:00")].0,
        ("due_soon", 0, true)
    );
    assert_eq!(
        seen[&at("2024-03-28T17:00:00+07:00")].0,
        ("due_soon", 0, true)
    );
    assert_eq!(
        seen[&at("2024-03-28T17:20:00+07:00")].0,
        ("overdue", 0, true)
    );

    // A reload that widens `due_soon_within` to 10 workdays: at the same instant, on
    // Mon 18/03 10:00 M-ONTRACK is due soon (18/03 + 10 workdays = Mon 01/04 ≥ 28/03).
    // A reload of the same calendar, rules and catalogue (the directory's heads, say)
    // keeps what holds.
    let t = at("2024-03-18T10:00:00+07:00");
    slawatch::daemon::reevaluate(&sh, t).await.unwrap();
    assert_eq!(state_of("M-ONTRACK").0, "on_track");
    sh.set_context((*sh.context()).clone());
    let r = slawatch::daemon::reevaluate_counted(&sh, t).await.unwrap();
    assert_eq!((r.judged, r.held), (0, open));
    let mut ctx = (*sh.context()).clone();
    ctx.policy.base.due_soon_within = "10 workdays".parse().unwrap();
    sh.set_context(ctx);
    let r = slawatch::daemon::reevaluate_counted(&sh, t).await.unwrap();
    assert_eq!((r.judged, r.held), (open, 0));
    assert_eq!(state_of("M-ONTRACK").0, "due_soon");
}
