//! `slawatch calendar diff` and the reload line of `check-config`, as real processes
//! on a real store (SQLite; PostgreSQL when `SLAWATCH_TEST_DATABASE_URL` is set), with
//! hand-made cases stored as the daemon stores them at Mon 22/02/2027 10:00 (+07).
//!
//! Built-in hours 07:30–11:30, 13:30–17:30; the shipped days (Tết 2027 off Thu 4 – Wed
//! 10/02). Procedure `PN` takes N workdays. Hand-worked dues:
//! - H1 STP, 10 wd from Mon 15/02 08:00: 16–19 = 4, 22–26 = 9, Mon 01/03 = 10.
//! - H2 STP, 14 wd from Mon 01/02 08:00: 2–3, Tết, 11–12, 15–19, 22–26 → Fri 26/02.
//! - H3 STP, 15 wd from Fri 19/02 08:00: 22–26, 1–5/3, 8–12/3 → Fri 12/03.
//! - H4 SXD, 3 wd from Mon 22/02 08:00 → Thu 25/02.
//! - F1 STP, 10 wd from Mon 25/01 08:00: 26–29, 1–3/2, Tết, 11–12, 15 → Mon 15/02;
//!   finished Fri 12/02 10:00 (early).
//! - F2 SXD, 5 wd from Mon 04/01 08:00 → Mon 11/01; finished Fri 08/01 (early).

use crate::scratch;
use crate::support::PgDatabase;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::Digest;
use slawatch::calendar::Calendar;
use slawatch::catalogue::Catalogue;
use slawatch::sla::model::{Case, StatusChange};
use slawatch::sla::policy::Policy;
use slawatch::store::{self, Batch, CaseRow, EvalSummary};
use std::path::{Path, PathBuf};

const NOW: &str = "2027-02-22T10:00:00+07:00";

fn t(s: &str) -> DateTime<Utc> {
    slawatch::timefmt::parse_instant(s, &Calendar::builtin())
        .unwrap()
        .unwrap()
}

fn procedures() -> String {
    [3, 5, 10, 14, 15]
        .iter()
        .map(|n| {
            format!("[[procedure]]\ncode = \"P{n}\"\nname = \"{n} ngày\"\nduration = \"{n} workdays\"\n\n")
        })
        .collect()
}

fn case(id: &str, unit: &str, procedure: &str, at: &str, done: Option<&str>) -> Case {
    let mut c = Case {
        source: "portal".into(),
        case_id: id.into(),
        unit_code: Some(unit.into()),
        procedure_code: Some(procedure.into()),
        status: 4,
        received_at: Some(t(at)),
        updated_at: Some(t(at)),
        status_history: vec![StatusChange {
            at: t(at),
            status: 4,
            approximate: false,
        }],
        ..Case::default()
    };
    if let Some(d) = done {
        c.status = 10;
        c.finished_at = Some(t(d));
        c.updated_at = Some(t(d));
        c.status_history.push(StatusChange {
            at: t(d),
            status: 10,
            approximate: false,
        });
    }
    c
}

fn held() -> Vec<Case> {
    vec![
        case("H1", "STP", "P10", "2027-02-15 08:00", None),
        case("H2", "STP", "P14", "2027-02-01 08:00", None),
        case("H3", "STP", "P15", "2027-02-19 08:00", None),
        case("H4", "SXD", "P3", "2027-02-22 08:00", None),
        case(
            "F1",
            "STP",
            "P10",
            "2027-01-25 08:00",
            Some("2027-02-12 10:00"),
        ),
        case(
            "F2",
            "SXD",
            "P5",
            "2027-01-04 08:00",
            Some("2027-01-08 10:00"),
        ),
    ]
}

/// Stores the cases with the evaluation the daemon would have made at `NOW`.
async fn fill(url: &str) {
    let s = store::open(url).await.unwrap();
    s.migrate().await.unwrap();
    let cal = Calendar::builtin();
    let catalogue = Catalogue::parse(&procedures(), "procedures.toml").unwrap();
    let policy = Policy::default();
    let now = t("2027-02-22 10:00");
    let mut b = Batch::new("portal", now);
    for c in held() {
        let p = catalogue.get(c.procedure_code.as_deref().unwrap());
        let e = slawatch::sla::evaluate(&c, p, &cal, &policy, now).unwrap();
        let open = e.lifecycle == slawatch::sla::Lifecycle::Open;
        let on_time = (!open)
            .then(|| slawatch::sla::ratio::on_time_until(&c, p, &cal, &policy, now))
            .flatten();
        b.cases.push(CaseRow {
            eval: Some(EvalSummary::of(&e, now).judged(on_time)),
            case: c,
            open,
        });
    }
    s.commit(&b).await.unwrap();
    s.close().await;
    if !url.starts_with("postgres") {
        // Everything into the main file, so its bytes say what the store holds.
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
}

/// Row counts of every table and the stored evaluations, as one string.
async fn fingerprint(url: &str) -> String {
    use sqlx::Row;
    let mut out = String::new();
    let tables = [
        "cases",
        "case_versions",
        "meta",
        "quarantine",
        "alerts",
        "outbox",
        "cursors",
        "job_runs",
    ];
    let evals = "SELECT source || '|' || case_id || '|' || COALESCE(state, '') || '|' || \
                 COALESCE(outcome, '') || '|' || flags || '|' || COALESCE(CAST(effective_due AS TEXT), '') || '|' || \
                 COALESCE(CAST(evaluated_at AS TEXT), '') || '|' || COALESCE(calendar_version, '') || '|' || \
                 CAST(calendar_estimated AS TEXT) FROM cases ORDER BY source, case_id";
    // Row counts and evaluations, through whichever connection the backend has.
    macro_rules! read_rows {
        ($c:expr) => {
            for table in tables {
                let n: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
                    .fetch_one(&mut $c)
                    .await
                    .unwrap()
                    .get(0);
                out += &format!("{table}={n};");
            }
            for r in sqlx::query(evals).fetch_all(&mut $c).await.unwrap() {
                out += &r.get::<String, _>(0);
                out.push('\n');
            }
        };
    }
    use sqlx::Connection;
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        read_rows!(c);
    } else {
        let mut c = sqlx::SqliteConnection::connect(&format!("{url}?mode=ro"))
            .await
            .unwrap();
        read_rows!(c);
        c.close().await.unwrap();
        // The file itself, byte for byte, and any write-ahead log beside it.
        let path = url.trim_start_matches("sqlite://");
        let bytes = std::fs::read(path).unwrap();
        out += &format!("file={:x}", sha2::Sha256::digest(&bytes));
        let wal = std::fs::read(format!("{path}-wal")).unwrap_or_default();
        out += &format!(" wal={:x}", sha2::Sha256::digest(&wal));
    }
    out
}

/// A configuration folder on `url`, with the new official files beside it.
fn setup(url: &str) -> PathBuf {
    let dir = scratch("calendar-diff");
    std::fs::write(dir.join("procedures.toml"), procedures()).unwrap();
    std::fs::write(
        dir.join("units.toml"),
        "[[unit]]\ncode = \"STP\"\nname = \"Sở Tư pháp\"\n\n[[unit]]\ncode = \"SXD\"\nname = \"Sở Xây dựng\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("slawatch.toml"),
        format!(
            "[catalogue]\nfile = \"procedures.toml\"\n[directory]\nfile = \"units.toml\"\n[store]\nurl = \"{url}\"\n"
        ),
    )
    .unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/calendar/vn-official-days.csv"),
    )
    .unwrap();
    std::fs::write(dir.join("same.csv"), &shipped).unwrap();
    std::fs::write(
        dir.join("saturday.csv"),
        format!("{shipped}2027-02-27,workday,Làm bù,confirmed\n"),
    )
    .unwrap();
    let no_tet: String = shipped
        .lines()
        .filter(|l| !l.starts_with("2027-02-"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("no-tet.csv"), no_tet).unwrap();
    std::fs::write(
        dir.join("bad.csv"),
        "date,kind,name,status\n2027-01-01,holiday,Tết Dương lịch,confirmed\n2027-02-30,holiday,Ngày không có,confirmed\n",
    )
    .unwrap();
    dir
}

fn diff(dir: &Path, file: &str, format: &str) -> (Option<i32>, String, String) {
    let o = crate::slawatch_at(NOW)
        .args([
            "--config",
            "slawatch.toml",
            "calendar",
            "diff",
            "--calendar",
            file,
            "--format",
            format,
        ])
        .current_dir(dir)
        .env("SLAWATCH_LOG", "warn")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn json(dir: &Path, file: &str) -> (Option<i32>, Value) {
    let (code, out, err) = diff(dir, file, "json");
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, v)
}

fn unit<'a>(v: &'a Value, code: &str) -> &'a Value {
    v["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == code)
        .unwrap_or_else(|| panic!("no unit {code}: {v}"))
}

fn ratio(u: &Value, period: &str, side: &str) -> (u64, u64) {
    let r = u["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["period"] == period)
        .unwrap();
    (
        r[side]["on_time"].as_u64().unwrap(),
        r[side]["population"].as_u64().unwrap(),
    )
}

async fn scenario(url: &str) {
    fill(url).await;
    let dir = setup(url);
    let before = fingerprint(url).await;

    // The same file: nothing changes, exit 0.
    let (code, out, err) = diff(&dir, "same.csv", "text");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("calendar diff at 22/02/2027 10:00 (Asia/Ho_Chi_Minh)"),
        "{out}"
    );
    assert!(
        out.contains("read 4 open cases and 2 ended since 01/01/2027"),
        "{out}"
    );
    assert!(out.contains("no change"), "{out}");

    // A make-up Saturday 27/02: H1 01/03 → 27/02, H3 12/03 → 11/03, nothing else.
    let (code, v) = json(&dir, "saturday.csv");
    assert_eq!(code, Some(1), "{v}");
    let moved: Vec<(String, String, String)> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["case_id"].as_str().unwrap().to_string(),
                c["before"]["due"].as_str().unwrap().to_string(),
                c["after"]["due"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        moved,
        [
            (
                "H1".to_string(),
                "2027-03-01T08:00:00+07:00".to_string(),
                "2027-02-27T08:00:00+07:00".to_string()
            ),
            (
                "H3".to_string(),
                "2027-03-12T08:00:00+07:00".to_string(),
                "2027-03-11T08:00:00+07:00".to_string()
            ),
        ]
    );
    let stp = unit(&v, "STP");
    assert_eq!(stp["name"], "Sở Tư pháp");
    assert_eq!(
        (
            stp["dues_moved"].as_u64(),
            stp["earlier"].as_u64(),
            stp["later"].as_u64()
        ),
        (Some(2), Some(2), Some(0))
    );
    assert_eq!(stp["states_changed"], 0);
    assert_eq!(unit(&v, "SXD")["dues_moved"], 0);

    // Tết 2027 taken out (Thu 4, Fri 5, Mon 8 – Wed 10/02 worked): H2's 14 workdays
    // end Fri 19/02 08:00, so it is overdue at 22/02 10:00 (was on track); F1's 10 end
    // Mon 08/02, so its finish on 12/02 is late (was early). 766 for February to date,
    // STP: H1, H2, H3 open and F1 ended in February, 4/4 → 2/4; SXD keeps 1/1 (H4) for
    // the month and 2/2 (with F2, ended in January) for the quarter; the year 6/6 → 4/6.
    let (code, v) = json(&dir, "no-tet.csv");
    assert_eq!(code, Some(1), "{v}");
    let ids: Vec<&str> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["H2", "F1"]);
    let h2 = &v["cases"][0];
    assert_eq!(h2["before"]["state"], "on_track");
    assert_eq!(h2["after"]["state"], "overdue");
    assert_eq!(h2["after"]["due"], "2027-02-19T08:00:00+07:00");
    assert_eq!(h2["due_move"], "earlier");
    let f1 = &v["cases"][1];
    assert_eq!(
        (&f1["before"]["outcome"], &f1["after"]["outcome"]),
        (&"early".into(), &"late".into())
    );
    let stp = unit(&v, "STP");
    assert_eq!(stp["state_changes"]["on_track → overdue"], 1);
    assert_eq!(stp["outcome_changes"]["early → late"], 1);
    assert_eq!(ratio(stp, "month", "before"), (4, 4));
    assert_eq!(ratio(stp, "month", "after"), (2, 4));
    assert_eq!(ratio(unit(&v, "SXD"), "month", "after"), (1, 1));
    assert_eq!(ratio(unit(&v, "SXD"), "quarter", "after"), (2, 2));
    assert_eq!(ratio(&v["total"], "year", "before"), (6, 6));
    assert_eq!(ratio(&v["total"], "year", "after"), (4, 6));
    // The text report says the same, with Vietnamese percentages.
    let (_, text, _) = diff(&dir, "no-tet.csv", "text");
    assert!(text.contains("4/4 (100,0%) → 2/4 (50,0%)"), "{text}");
    assert!(
        text.contains("dues moved: 1 (1 earlier, 0 later); states changed: 1; outcomes changed: 1; units touched: 1 of 2"),
        "{text}"
    );
    assert!(
        text.contains("5/5 (100,0%) → 3/5 (60,0%)"),
        "all units, the month: {text}"
    );
    assert!(text.contains("portal / H2"), "{text}");
    assert!(
        text.contains(
            "due 26/02/2027 08:00 → 19/02/2027 08:00 (earlier), state on_track → overdue"
        ),
        "{text}"
    );
    // CSV: one row per changed case.
    let (_, csv, _) = diff(&dir, "no-tet.csv", "csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("source,case_id,kind,unit,open,due_before"));
    assert!(lines[1].starts_with("portal,H2,dossier,STP,true,2027-02-26T08:00:00+07:00,2027-02-19T08:00:00+07:00,earlier,on_track,overdue"), "{csv}");

    // A malformed line: exit 2, the file and line named, as the daemon would say it.
    let (code, out, err) = diff(&dir, "bad.csv", "text");
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("bad.csv:3"), "{err}");

    // check-config with the new file installed: the one line of what a reload moves.
    std::fs::write(
        dir.join("reload.toml"),
        format!(
            "[calendar]\nofficial_days = \"no-tet.csv\"\n[catalogue]\nfile = \"procedures.toml\"\n[directory]\nfile = \"units.toml\"\n[store]\nurl = \"{url}\"\n"
        ),
    )
    .unwrap();
    let o = crate::slawatch_at(NOW)
        .args(["--config", "reload.toml", "check-config"])
        .current_dir(&dir)
        .env("SLAWATCH_LOG", "warn")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("calendar reload:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains(
            ": dues moved 1 of 4 open cases (1 earlier, 0 later), states changed 1, units 1"
        ),
        "{line}"
    );
    // And the shipped calendar, which the stored evaluations were made with: no change.
    let o = crate::slawatch_at(NOW)
        .args(["--config", "slawatch.toml", "check-config"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("calendar reload: no change (4 open cases evaluated with vn-official@"),
        "{out}"
    );

    // Nothing was written.
    assert_eq!(fingerprint(url).await, before);
}

#[tokio::test]
async fn calendar_diff_on_sqlite() {
    let dir = scratch("calendar-diff-store");
    let db = dir.join("slawatch.db");
    let url = format!("sqlite://{}", db.display());
    scenario(&url).await;
}

#[tokio::test]
async fn calendar_diff_on_postgres() {
    let Some(db) = PgDatabase::create("caldiff").await else {
        eprintln!("SLAWATCH_TEST_DATABASE_URL is not set: calendar diff on PostgreSQL not run");
        return;
    };
    scenario(&db.url).await;
    db.drop_it().await;
}
