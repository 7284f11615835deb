//! Report harness (issue 14): Biểu 06 for a year over 1,000,000 stored cases and 500
//! units must take ≤ 5 s. Not a criterion benchmark (one run is seconds long): it fills
//! a store once, then times the year's report, a month's, and their XLSX and CSV.
//!
//! Run: `cargo bench --bench report` (SQLite in a temporary folder), or with
//! `SLAWATCH_BENCH_DATABASE_URL=postgres://…/db` for PostgreSQL (emptied first).
//! `SLAWATCH_BENCH_CASES` changes the size.

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use slawatch::jobs::report::TthcRequest;
use slawatch::report::tthc::{By, Options};
use slawatch::report::ReportPeriod;
use slawatch::sla::model::{Case, Channel, Kind, StatusChange, Supplement};
use slawatch::state::Context;
use slawatch::store::{self, Batch, CaseRow, Store};
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const UNITS: u64 = 500;

fn units_toml() -> String {
    let mut t = String::from("[[unit]]\ncode = \"UBND\"\nname = \"UBND tỉnh\"\nlevel = 0\n");
    for u in 1..=UNITS {
        let name = if u > 400 {
            format!("UBND xã {u:03}")
        } else {
            format!("Sở {u:03}")
        };
        t.push_str(&format!(
            "\n[[unit]]\ncode = \"U{u:03}\"\nname = \"{name}\"\nparent = \"UBND\"\nlevel = 1\n\
             head = {{ name = \"Thủ trưởng {u:03}\", email = \"u{u:03}@bench.example.gov.vn\" }}\n"
        ));
    }
    t
}

fn context() -> Context {
    Context {
        calendar: Arc::new(slawatch::calendar::Calendar::builtin()),
        policy: Default::default(),
        catalogue: Default::default(),
        directory: slawatch::directory::Directory::parse(&units_toml(), "units.toml").unwrap(),
    }
}

/// Case `i` of `n`: received across 2024-12 … 2025-12 (local office hours), due 10
/// days later; most finished early, some on the day or late, some open, some with a
/// supplement, a few withdrawn.
fn case(i: u64, n: u64) -> Case {
    let start = Utc.with_ymd_and_hms(2024, 12, 1, 1, 0, 0).unwrap();
    let span = 396 * 86_400i64;
    let received = start + Span::seconds((i as i64 * span) / n as i64);
    let due = received + Span::days(10);
    let r = i % 100;
    let mut c = Case {
        source: "bench".into(),
        case_id: format!("B-{i:08}"),
        kind: Kind::Dossier,
        procedure_code: Some(format!("1.{:06}", i % 2000).into()),
        unit_code: Some(format!("U{:03}", i % UNITS + 1).into()),
        channel: Some(if i % 3 == 0 {
            Channel::InPerson
        } else {
            Channel::Online
        }),
        status: 10,
        received_at: Some(received),
        due_at: Some(due),
        due_at_original: Some(due),
        status_history: vec![StatusChange {
            at: received,
            status: 2,
            approximate: false,
        }],
        updated_at: Some(received),
        ..Case::default()
    };
    let finish = |c: &mut Case, at: DateTime<Utc>| {
        c.status = 10;
        c.finished_at = Some(at);
        c.status_history.push(StatusChange {
            at,
            status: 10,
            approximate: false,
        });
    };
    match r {
        0..=69 => finish(&mut c, received + Span::days(5)),
        70..=79 => finish(&mut c, due - Span::hours(1)),
        80..=84 => finish(&mut c, due + Span::days(3)),
        85..=89 => {
            c.supplements.push(Supplement {
                requested_at: received + Span::days(2),
                resumed_at: Some(received + Span::days(4)),
                due_before: None,
                due_after: None,
            });
            finish(&mut c, received + Span::days(9));
        }
        90..=91 => {
            c.status = 7;
            c.status_history.push(StatusChange {
                at: received + Span::days(1),
                status: 7,
                approximate: false,
            });
        }
        _ => c.status = 4,
    }
    c
}

async fn open_store() -> (Arc<dyn Store>, String) {
    if let Ok(url) = std::env::var("SLAWATCH_BENCH_DATABASE_URL") {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        for sql in ["DROP SCHEMA public CASCADE", "CREATE SCHEMA public"] {
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        let s = store::open(&url).await.unwrap();
        s.migrate().await.unwrap();
        (s, url)
    } else {
        let dir = std::env::temp_dir().join(format!("slawatch-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}/slawatch.db", dir.display());
        let s = store::open(&url).await.unwrap();
        s.migrate().await.unwrap();
        (s, url)
    }
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::var("SLAWATCH_BENCH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let ctx = context();
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap();
    let (s, url) = open_store().await;
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut b = Batch::new("bench", now);
        for k in i..(i + 10_000).min(n) {
            let c = case(k, n);
            let (e, summary) = ctx.judge(&c, now).unwrap();
            let open = e.lifecycle == slawatch::sla::Lifecycle::Open;
            let on_time = (!open)
                .then(|| {
                    slawatch::sla::ratio::on_time_until(&c, None, &ctx.calendar, &ctx.policy, now)
                })
                .flatten();
            b.cases.push(CaseRow {
                case: c,
                open,
                eval: Some(summary.judged(on_time)),
            });
        }
        s.commit(&b).await.unwrap();
        i += 10_000;
    }
    println!(
        "filled {n} cases over {UNITS} units into {} in {:.1} s",
        store::redact_url(&url),
        t.elapsed().as_secs_f64()
    );
    s.close().await;
    // As `slawatch report` reads it: a read-only store.
    let ro = store::open_read_only(&url).await.unwrap();
    // The store's part alone: the year's rows read, nothing judged.
    let year = ReportPeriod::parse("2025")
        .unwrap()
        .bounds(&ctx.calendar, now);
    let t = Instant::now();
    let (mut light, mut whole) = (0u64, 0u64);
    ro.load_report_each(year.start, year.end, &mut |r| {
        if r.case.is_some() {
            whole += 1
        } else {
            light += r.count
        }
    })
    .await
    .unwrap();
    println!(
        "read the year's rows: {:.2} s ({light} counted by their columns, {whole} with their document)",
        t.elapsed().as_secs_f64()
    );
    for label in ["2025", "2025-Q4", "2025-11"] {
        let req = TthcRequest {
            period: ReportPeriod::parse(label).unwrap(),
            by: By::Unit,
            unit: None,
            kind: Kind::Dossier,
            options: Options::default(),
        };
        let t = Instant::now();
        let r = slawatch::jobs::report::tthc(ro.as_ref(), &ctx, &req, now)
            .await
            .unwrap();
        let built = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let xlsx = slawatch::report::render::xlsx(&r, &ctx.calendar).unwrap();
        let xlsx_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let csv = slawatch::report::render::csv(&r, &ctx.calendar).unwrap();
        let csv_s = t.elapsed().as_secs_f64();
        println!(
            "report {label}: {built:.2} s ({} received, {} finished, {} in progress, {} late cases listed; 766 {}/{}); XLSX {:.2} s ({} kB), CSV {:.3} s ({} kB)",
            r.total.received,
            r.total.finished,
            r.total.in_progress,
            r.late_cases.len(),
            r.total_on_time.on_time,
            r.total_on_time.population,
            xlsx_s,
            xlsx.len() / 1024,
            csv_s,
            csv.len() / 1024,
        );
    }
}
