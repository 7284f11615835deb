//! The `demo` source: a deterministic province, relative to the current time, for the
//! out-of-the-box run and for load tests.
//!
//! Dossiers arrive on a fixed grid of working time since 2020 (`per_day` per
//! workday), so a dossier's id, arrival and fate depend only on the seed and its
//! number, never on when the daemon started: a restart sees the same province. Each
//! dossier draws a procedure from the configured catalogue and a unit from the
//! configured directory, steps through receipt, appraisal and approval, and meets
//! its fate: most finish early, some late, some wait for a supplement, a few are
//! re-appointed, a few get stuck; one in twenty is a task assigned to a unit. A poll
//! returns every case with an event since the cursor (on the first poll: the last 75
//! days), in the canonical record format.

use super::{Poll, PollContext, RawRecord, Source, SourceConfig, SourceError};
use crate::calendar::Calendar;
use crate::catalogue::Procedure;
use crate::sla::duration::Duration;
use async_trait::async_trait;
use chrono::{DateTime, Duration as Span, NaiveDate, Utc};
use serde_json::{json, Map, Value};

/// How far back the first poll reaches.
const HISTORY_DAYS: i64 = 75;

pub struct DemoSource {
    per_day: u32,
    seed: u64,
    overlap: Span,
}

/// SplitMix64: small, fast, good enough for a demo.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, i: u64) -> Rng {
        let mut r = Rng(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

impl DemoSource {
    pub fn new(cfg: &SourceConfig, _calendar: &Calendar) -> Result<DemoSource, String> {
        let per_day = cfg.per_day.unwrap_or(400);
        if per_day == 0 || per_day > 200_000 {
            return Err(format!("per_day: {per_day} is not in 1–200000"));
        }
        Ok(DemoSource {
            per_day,
            seed: cfg.seed.unwrap_or(20_260_101),
            overlap: Span::seconds(cfg.overlap_seconds.max(0)),
        })
    }
}

/// Fixed origin of the arrival grid: 2020-01-02 07:30 local.
fn origin(cal: &Calendar) -> DateTime<Utc> {
    cal.instant(
        NaiveDate::from_ymd_opt(2020, 1, 2)
            .expect("valid")
            .and_hms_opt(7, 30, 0)
            .expect("valid"),
    )
}

struct Built {
    record: Value,
    last_event: DateTime<Utc>,
}

fn fallback_procedures() -> Vec<Procedure> {
    [
        ("1.004227", "Cấp giấy phép xây dựng", "XD", 15),
        ("2.001023", "Đăng ký khai sinh", "HT", 1),
        ("1.001612", "Đăng ký doanh nghiệp", "DKKD", 3),
    ]
    .into_iter()
    .map(|(code, name, field, days)| Procedure {
        code: code.into(),
        name: name.into(),
        field: Some(field.into()),
        kind: None,
        duration: Duration::workdays(days),
        online_duration: None,
        steps: Vec::new(),
    })
    .collect()
}

fn at(t: DateTime<Utc>, cal: &Calendar) -> Value {
    Value::String(crate::timefmt::rfc3339(t, cal))
}

impl DemoSource {
    /// The case with number `i` as it stands at `now` (None before it arrives).
    fn build(
        &self,
        i: u64,
        arrival: DateTime<Utc>,
        now: DateTime<Utc>,
        ctx: &PollContext<'_>,
        procedures: &[Procedure],
        units: &[(String, String)],
    ) -> Option<Built> {
        let cal = ctx.calendar;
        let mut rng = Rng::new(self.seed, i);
        let (unit_code, unit_name) = &units[rng.below(units.len())];
        let is_task = rng.below(20) == 0;
        let p = &procedures[rng.below(procedures.len())];
        let online = rng.unit() < 0.6;
        let start = cal.snap(arrival, None).ok()?;
        let duration = if is_task {
            Duration::workdays(10)
        } else {
            p.duration
        };
        let due = match duration {
            Duration::None => None,
            d => cal.add(start, &d).ok()?,
        };
        // Working seconds available; 8 hours when the procedure has no deadline.
        let span = due
            .map(|d| cal.work_between(start, d).unwrap_or(0).max(3600))
            .unwrap_or(8 * 3600);
        let after = |frac: f64| {
            cal.add_work_seconds(start, (span as f64 * frac) as i64)
                .ok()
        };
        let fate = rng.unit();
        let unit_idx = units.iter().position(|u| &u.0 == unit_code).unwrap_or(0);
        let yymmdd = cal.local(arrival).format("%y%m%d");
        let case_id = if is_task {
            format!("NV-{yymmdd}-{i:07}")
        } else {
            format!("000.00.{:02}.H22-{yymmdd}-{i:07}", unit_idx + 1)
        };

        let mut events: Vec<DateTime<Utc>> = vec![arrival];
        let mut supplements = Vec::new();
        let mut due_now = due;
        let mut finish: Option<DateTime<Utc>>;
        let mut waiting_supplement = false;
        let mut stuck = false;
        if fate < 0.03 {
            // Late.
            finish = after(1.05 + rng.unit() * 0.35);
        } else if fate < 0.05 {
            // Stuck: nothing after the receipt.
            stuck = true;
            finish = None;
        } else if fate < 0.15 && !is_task {
            // A supplement: usually within 3 workdays, sometimes later.
            let req_days = if rng.below(6) == 0 { 4 } else { 1 };
            let req = cal.add_workdays(start, req_days).ok()?;
            let resumed = if rng.below(8) == 0 {
                None
            } else {
                Some(
                    cal.add_workdays(req, 1 + rng.below(4) as u32).ok()?
                        + Span::minutes(rng.below(120) as i64),
                )
            };
            let due_after = match (resumed, duration) {
                (Some(r), d) if d != Duration::None => cal.add(cal.snap(r, None).ok()?, &d).ok()?,
                _ => None,
            };
            supplements.push((req, resumed, due, due_after));
            events.push(req);
            match resumed {
                Some(r) if r <= now => {
                    events.push(r);
                    due_now = due_after.or(due);
                    let restart_span = due_after
                        .map(|d| cal.work_between(r, d).unwrap_or(0))
                        .unwrap_or(span);
                    finish = cal
                        .add_work_seconds(
                            r,
                            (restart_span as f64 * (0.3 + rng.unit() * 0.6)) as i64,
                        )
                        .ok();
                }
                _ => {
                    waiting_supplement = true;
                    finish = None;
                }
            }
        } else if fate < 0.17 {
            // Re-appointed once, one workday before the due, by 3 workdays.
            finish = after(1.1);
            if let Some(d) = due {
                let moved_at = after(0.8)?;
                if moved_at <= now {
                    events.push(moved_at);
                    due_now = cal.add_workdays(d, 3).ok();
                }
            }
        } else {
            finish = after(0.3 + rng.unit() * 0.6);
        }
        if finish.is_some_and(|f| f > now) {
            finish = None;
        }
        if let Some(f) = finish {
            events.push(f);
        }
        let returned = finish
            .map(|f| {
                if rng.below(5) == 0 {
                    cal.add_workdays(f, 1).unwrap_or(f)
                } else {
                    f + Span::minutes(30 + rng.below(120) as i64)
                }
            })
            .filter(|r| *r <= now);
        if let Some(r) = returned {
            events.push(r);
        }

        // Steps: receipt, appraisal (its own deadline: 70 % of the time), approval.
        let mut steps = Vec::new();
        let receipt_done = arrival + Span::minutes(10);
        steps.push(
            json!({"title": "Tiếp nhận hồ sơ", "department": "Bộ phận Một cửa", "status": 2,
            "started_at": at(arrival, cal), "acted_at": at(receipt_done.min(now), cal)}),
        );
        let appraisal_start = receipt_done;
        if appraisal_start <= now {
            let appraisal_due = after(0.7);
            let appraisal_done = if stuck || waiting_supplement {
                None
            } else {
                finish.and_then(|f| {
                    cal.add_work_seconds(
                        appraisal_start,
                        (cal.work_between(appraisal_start, f).unwrap_or(0) as f64 * 0.6) as i64,
                    )
                    .ok()
                })
            };
            let mut s = Map::new();
            s.insert("title".into(), json!("Thẩm định hồ sơ"));
            s.insert(
                "department".into(),
                json!(format!("Phòng chuyên môn — {unit_name}")),
            );
            s.insert("status".into(), json!(4));
            s.insert("started_at".into(), at(appraisal_start, cal));
            if let Some(d) = appraisal_due {
                s.insert("step_due_at".into(), at(d, cal));
            }
            if let Some(done) = appraisal_done.filter(|d| *d <= now) {
                s.insert("acted_at".into(), at(done, cal));
                events.push(done);
                steps.push(Value::Object(s));
                let mut a = Map::new();
                a.insert("title".into(), json!("Phê duyệt, trả kết quả"));
                a.insert("department".into(), json!("Lãnh đạo"));
                a.insert("status".into(), json!(4));
                a.insert("started_at".into(), at(done, cal));
                if let Some(d) = due_now {
                    a.insert("step_due_at".into(), at(d, cal));
                }
                if let Some(f) = finish {
                    a.insert("acted_at".into(), at(f, cal));
                }
                steps.push(Value::Object(a));
            } else {
                steps.push(Value::Object(s));
            }
        }

        let status = if returned.is_some() {
            10
        } else if finish.is_some() {
            9
        } else if waiting_supplement && supplements.first().is_some_and(|s| s.0 <= now) {
            5
        } else if appraisal_start <= now {
            4
        } else {
            2
        };
        let mut r = Map::new();
        r.insert("case_id".into(), json!(case_id));
        r.insert(
            "kind".into(),
            json!(if is_task { "task" } else { "dossier" }),
        );
        if !is_task {
            r.insert("procedure_code".into(), json!(p.code));
            r.insert("procedure_name".into(), json!(p.name));
            if let Some(f) = &p.field {
                r.insert("field_code".into(), json!(f));
            }
            r.insert("channel".into(), json!(if online { "2" } else { "1" }));
        }
        r.insert("unit".into(), json!(unit_name));
        r.insert("status".into(), json!(status));
        r.insert("received_at".into(), at(arrival, cal));
        if let Some(d) = due_now {
            r.insert("due_at".into(), at(d, cal));
        }
        if let Some(f) = finish {
            r.insert("finished_at".into(), at(f, cal));
        }
        if let Some(x) = returned {
            r.insert("returned_at".into(), at(x, cal));
        }
        let supps: Vec<Value> = supplements
            .iter()
            .filter(|s| s.0 <= now)
            .map(|(req, res, before, after)| {
                let mut m = Map::new();
                m.insert("requested_at".into(), at(*req, cal));
                if let Some(x) = res.filter(|x| *x <= now) {
                    m.insert("resumed_at".into(), at(x, cal));
                    if let Some(a) = after {
                        m.insert("due_after".into(), at(*a, cal));
                    }
                }
                if let Some(b) = before {
                    m.insert("due_before".into(), at(*b, cal));
                }
                Value::Object(m)
            })
            .collect();
        r.insert("supplements".into(), Value::Array(supps));
        r.insert("steps".into(), Value::Array(steps));
        let last_event = events
            .into_iter()
            .filter(|e| *e <= now)
            .max()
            .unwrap_or(arrival);
        Some(Built {
            record: Value::Object(r),
            last_event,
        })
    }
}

#[async_trait]
impl Source for DemoSource {
    async fn poll(&self, cursor: Option<&str>, ctx: &PollContext<'_>) -> Result<Poll, SourceError> {
        let cal = ctx.calendar;
        let now = ctx.now;
        let since = cursor
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map(|c| c.with_timezone(&Utc) - self.overlap);
        let mut procedures: Vec<Procedure> = ctx.catalogue.procedures().cloned().collect();
        procedures.sort_by(|a, b| a.code.cmp(&b.code));
        if procedures.is_empty() {
            procedures = fallback_procedures();
        }
        let mut units: Vec<(String, String)> = ctx
            .directory
            .units()
            .iter()
            // Offices that hold no dossiers of their own; a Sở tagged for the reports
            // it receives (home_affairs) still handles its procedures.
            .filter(|u| {
                !u.tags.iter().any(|t| {
                    matches!(
                        t.as_str(),
                        "service_centre" | "provincial_office" | "province"
                    )
                })
            })
            .map(|u| (u.code.clone(), u.name.clone()))
            .collect();
        if units.is_empty() {
            units = vec![("DEMO".into(), "UBND phường Demo".into())];
        }
        let t0 = origin(cal);
        let spacing = (8.0 * 3600.0 / self.per_day as f64).max(0.001);
        let window = now - Span::days(HISTORY_DAYS);
        let err = |e: crate::calendar::CalendarError| SourceError::Response(e.to_string());
        let first = (cal.work_between(t0, window).map_err(err)? as f64 / spacing)
            .floor()
            .max(0.0) as u64;
        let last = (cal.work_between(t0, now).map_err(err)? as f64 / spacing).floor() as u64;
        let mut records = Vec::new();
        for i in first..=last {
            let arrival = cal
                .add_work_seconds(t0, (i as f64 * spacing) as i64)
                .map_err(err)?;
            if arrival > now {
                break;
            }
            if arrival < window {
                continue;
            }
            let Some(b) = self.build(i, arrival, now, ctx, &procedures, &units) else {
                continue;
            };
            if since.is_none_or(|s| b.last_event > s) {
                records.push(RawRecord::json(b.record, format!("demo #{i}")));
            }
        }
        Ok(Poll {
            records,
            cursor: Some(now.to_rfc3339()),
            files: Vec::new(),
        })
    }
}
