//! Benchmarks of the pure core (issue targets in brackets):
//! - `add_workdays`: add N workdays to an instant [≥ 10 M/s on one core];
//! - `evaluate`: a typical open case [≥ 1 M/s on one core];
//! - `work_between` and `workhours`, for reference.
//!
//! Workloads: instants uniform over 2020–2030 including outside office hours, N uniform
//! in 1–60, the Hà Tĩnh seasonal profile. Inputs are generated with a fixed seed.

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use slawatch::calendar::hours::OfficeHours;
use slawatch::calendar::{Calendar, CalendarSpec};
use slawatch::catalogue::Procedure;
use slawatch::sla::duration::Duration;
use slawatch::sla::evaluate;
use slawatch::sla::horizon::holds_until;
use slawatch::sla::model::{Case, Kind, StatusChange, Step, Supplement};
use slawatch::sla::policy::Policy;

/// A small deterministic generator (xorshift), so the inputs are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ha_tinh() -> Calendar {
    let mut spec = CalendarSpec::builtin();
    spec.hours = OfficeHours::ha_tinh();
    Calendar::build(&spec)
}

fn instants(n: usize, rng: &mut Rng) -> Vec<DateTime<Utc>> {
    let from = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    let to = Utc
        .with_ymd_and_hms(2030, 12, 31, 0, 0, 0)
        .unwrap()
        .timestamp();
    (0..n)
        .map(|_| DateTime::from_timestamp(from + rng.below((to - from) as u64) as i64, 0).unwrap())
        .collect()
}

const BATCH: usize = 10_000;

fn bench_arithmetic(c: &mut Criterion) {
    let cal = ha_tinh();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let ts = instants(BATCH, &mut rng);
    let ns: Vec<u32> = (0..BATCH).map(|_| 1 + rng.below(60) as u32).collect();
    let mut g = c.benchmark_group("calendar");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("add_workdays", |b| {
        b.iter(|| {
            for (t, n) in ts.iter().zip(&ns) {
                black_box(cal.add_workdays(black_box(*t), black_box(*n)).unwrap());
            }
        })
    });
    g.bench_function("add_workhours", |b| {
        let ds: Vec<Duration> = ns
            .iter()
            .map(|n| Duration::Workhours { seconds: n * 3600 })
            .collect();
        b.iter(|| {
            for (t, d) in ts.iter().zip(&ds) {
                black_box(cal.plus(black_box(*t), d).unwrap());
            }
        })
    });
    g.bench_function("work_between", |b| {
        b.iter(|| {
            for (t, n) in ts.iter().zip(&ns) {
                let u = *t + Span::hours(*n as i64 * 24);
                black_box(cal.work_between(black_box(*t), u).unwrap());
            }
        })
    });
    g.finish();
}

/// A typical open dossier: 4 steps with their own deadlines, 0–1 supplement, a source
/// due and a catalogue duration.
fn typical_cases(cal: &Calendar, n: usize, rng: &mut Rng) -> Vec<Case> {
    instants(n, rng)
        .into_iter()
        .enumerate()
        .map(|(i, received)| {
            let start = cal.snap(received, None).unwrap();
            let due = cal.add_workdays(start, 15).unwrap();
            let mut steps = Vec::new();
            let mut at = start;
            for k in 0..4 {
                let step_due = cal.add_workdays(at, 3).unwrap();
                let acted = (k < 3).then(|| cal.add_workdays(at, 1 + rng.below(4) as u32).unwrap());
                steps.push(Step {
                    department: Some(format!("Phòng {k}").into()),
                    unit_code: (k % 2 == 0).then(|| "STP".into()),
                    title: Some("Thẩm định".into()),
                    started_at: Some(at),
                    acted_at: acted,
                    step_due_at: Some(step_due),
                    ..Step::default()
                });
                at = acted.unwrap_or(at);
            }
            let supplements = if i % 2 == 0 {
                let req = cal.add_workdays(start, 1).unwrap();
                vec![Supplement {
                    requested_at: req,
                    resumed_at: Some(cal.add_workdays(req, 2).unwrap()),
                    due_before: Some(due),
                    due_after: None,
                }]
            } else {
                Vec::new()
            };
            Case {
                source: "bench".into(),
                case_id: format!("000.00.12.H22-{i:06}"),
                kind: Kind::Dossier,
                procedure_code: Some("1.004227".into()),
                unit_code: Some("UBND-X".into()),
                status: 4,
                received_at: Some(received),
                due_at: Some(due),
                due_at_original: Some(due),
                supplements,
                steps,
                status_history: vec![StatusChange {
                    at: received,
                    status: 4,
                    approximate: false,
                }],
                ..Case::default()
            }
        })
        .collect()
}

fn bench_evaluate(c: &mut Criterion) {
    let cal = ha_tinh();
    let policy = Policy::default();
    let mut rng = Rng(0x0ddb_a11c_afe0_0001);
    let cases = typical_cases(&cal, BATCH, &mut rng);
    let procedure = Procedure {
        code: "1.004227".into(),
        name: "Cấp giấy phép xây dựng".into(),
        field: None,
        kind: None,
        duration: Duration::workdays(15),
        online_duration: None,
        steps: Vec::new(),
    };
    // "Now" a few workdays after each receipt, so states vary.
    let nows: Vec<DateTime<Utc>> = cases
        .iter()
        .map(|c| {
            cal.add_workdays(c.received_at.unwrap(), 1 + rng.below(25) as u32)
                .unwrap()
        })
        .collect();
    let mut g = c.benchmark_group("sla");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("evaluate_typical_open_case", |b| {
        b.iter(|| {
            for (case, now) in cases.iter().zip(&nows) {
                black_box(
                    evaluate(black_box(case), Some(&procedure), &cal, &policy, *now).unwrap(),
                );
            }
        })
    });
    // What the daemon adds once per judgement so that later re-evaluations can skip
    // the case: how long the evaluation holds.
    let evals: Vec<_> = cases
        .iter()
        .zip(&nows)
        .map(|(case, now)| evaluate(case, Some(&procedure), &cal, &policy, *now).unwrap())
        .collect();
    g.bench_function("holds_until_typical_open_case", |b| {
        b.iter(|| {
            for ((case, now), e) in cases.iter().zip(&nows).zip(&evals) {
                black_box(holds_until(black_box(case), &cal, &policy, e, *now));
            }
        })
    });
    g.finish();
}

fn bench_build(c: &mut Criterion) {
    let spec = {
        let mut s = CalendarSpec::builtin();
        s.hours = OfficeHours::ha_tinh();
        s
    };
    c.bench_function("calendar/build_1901_2100", |b| {
        b.iter(|| black_box(Calendar::build(&spec)))
    });
}

criterion_group!(benches, bench_arithmetic, bench_evaluate, bench_build);
criterion_main!(benches);
