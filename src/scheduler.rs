//! A small scheduler: 6-field cron expressions (sec min hour day month weekday) in
//! local time, ticking on the daemon's [`Clock`] (so a process whose clock is pinned
//! for a test fires its jobs at the pinned instants, not the machine's). A job never
//! overlaps itself: a tick that finds the previous run still going is skipped and
//! logged, and a job's start-up run ([`Scheduler::add_at_start`]) holds the same guard
//! as its ticks. Shutdown stops the ticks, then waits for the runs in flight.

use crate::clock::Clock;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

pub type JobFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type JobFn = Arc<dyn Fn() -> JobFuture + Send + Sync>;

struct Job {
    name: String,
    cron: Cron,
    run: JobFn,
    at_start: bool,
    guard: Arc<Mutex<()>>,
    /// Fires the job between ticks when notified (a replica took over its work).
    wake: Option<Arc<tokio::sync::Notify>>,
}

pub struct Scheduler {
    zone: Tz,
    clock: Clock,
    jobs: Vec<Job>,
    cancel: CancellationToken,
    tickers: Vec<tokio::task::JoinHandle<()>>,
    guards: Vec<(String, Arc<Mutex<()>>)>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

fn parse(expr: &str) -> Result<Cron, ScheduleError> {
    if expr.split_whitespace().count() != 6 {
        return Err(ScheduleError(format!(
            "`{expr}` is not a 6-field cron expression (sec min hour day month weekday)"
        )));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| ScheduleError(format!("`{expr}` is not a valid cron expression: {e}")))
}

/// Checks a cron expression without scheduling anything.
pub fn validate(expr: &str) -> Result<(), ScheduleError> {
    parse(expr).map(|_| ())
}

/// When the schedule last fired at or before `now` (local time in `zone`), for jobs
/// that catch up on a run the daemon missed (it was down, or a replica died mid-run).
pub fn last_fire(expr: &str, zone: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = parse(expr).ok()?;
    cron.find_previous_occurrence(&now.with_timezone(&zone), true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The first firing strictly after `after`.
pub fn next_fire(cron: &Cron, zone: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&zone), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Longest single sleep between two looks at the clock, so a clock that jumps (NTP,
/// a suspended machine) is noticed.
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(30);

impl Scheduler {
    pub fn new(zone: Tz, clock: Clock) -> Scheduler {
        Scheduler {
            zone,
            clock,
            jobs: Vec::new(),
            cancel: CancellationToken::new(),
            tickers: Vec::new(),
            guards: Vec::new(),
        }
    }

    /// Adds a job that runs `run` on the schedule, never twice at once.
    pub fn add<F>(&mut self, name: &str, expr: &str, run: F) -> Result<(), ScheduleError>
    where
        F: Fn() -> JobFuture + Send + Sync + 'static,
    {
        self.push(name, expr, Arc::new(run), false)
    }

    /// The same, and a first run as soon as the scheduler starts, under the same guard
    /// (a slow start-up run makes the ticks that come during it skip).
    pub fn add_at_start<F>(&mut self, name: &str, expr: &str, run: F) -> Result<(), ScheduleError>
    where
        F: Fn() -> JobFuture + Send + Sync + 'static,
    {
        self.push(name, expr, Arc::new(run), true)
    }

    /// A job that also runs whenever `wake` is notified, between its ticks (under the
    /// same guard: a wake during a run is skipped like a tick).
    pub fn add_waking<F>(
        &mut self,
        name: &str,
        expr: &str,
        at_start: bool,
        wake: Arc<tokio::sync::Notify>,
        run: F,
    ) -> Result<(), ScheduleError>
    where
        F: Fn() -> JobFuture + Send + Sync + 'static,
    {
        self.push(name, expr, Arc::new(run), at_start)?;
        self.jobs.last_mut().expect("just pushed").wake = Some(wake);
        Ok(())
    }

    fn push(
        &mut self,
        name: &str,
        expr: &str,
        run: JobFn,
        at_start: bool,
    ) -> Result<(), ScheduleError> {
        let cron = parse(expr).map_err(|e| ScheduleError(format!("{name}: {e}")))?;
        let guard = Arc::new(Mutex::new(()));
        self.guards.push((name.to_string(), guard.clone()));
        self.jobs.push(Job {
            name: name.to_string(),
            cron,
            run,
            at_start,
            guard,
            wake: None,
        });
        Ok(())
    }

    /// Starts ticking every job added so far.
    pub fn start(&mut self) {
        for job in std::mem::take(&mut self.jobs) {
            let (zone, clock, cancel) = (self.zone, self.clock, self.cancel.clone());
            self.tickers
                .push(tokio::spawn(tick(job, zone, clock, cancel)));
        }
    }

    /// Stops ticking, then waits for every run in flight to finish.
    pub async fn shutdown(&mut self) {
        self.cancel.cancel();
        for t in self.tickers.drain(..) {
            let _ = t.await;
        }
        for (name, guard) in &self.guards {
            let _ = guard.lock().await;
            tracing::debug!(job = %name, "stopped");
        }
    }
}

/// Fires one job: a run under its guard, spawned so the ticks go on counting.
fn fire(job: &Job) {
    match job.guard.clone().try_lock_owned() {
        Ok(held) => {
            let run = job.run.clone();
            tokio::spawn(async move {
                run().await;
                drop(held);
            });
        }
        Err(_) => {
            tracing::warn!(job = %job.name, "previous run still going: this tick is skipped")
        }
    }
}

async fn tick(job: Job, zone: Tz, clock: Clock, cancel: CancellationToken) {
    if job.at_start {
        fire(&job);
    }
    let mut after = clock.now();
    loop {
        let Some(next) = next_fire(&job.cron, zone, after) else {
            tracing::warn!(job = %job.name, "the schedule never fires again");
            return;
        };
        loop {
            let now = clock.now();
            if now >= next {
                after = now.max(next);
                break;
            }
            let wait = (next - now).to_std().unwrap_or_default().min(MAX_SLEEP);
            let woken = async {
                match &job.wake {
                    Some(w) => w.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = woken => fire(&job),
            }
        }
        if cancel.is_cancelled() {
            return;
        }
        fire(&job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_fire_is_in_local_time() {
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let hcm = chrono_tz::Asia::Ho_Chi_Minh;
        // 07:30 in Hà Nội is 00:30 UTC. At 09:00 local it last fired at 07:30 today.
        assert_eq!(
            last_fire("0 30 7 * * *", hcm, t("2024-03-15T09:00:00+07:00")),
            Some(t("2024-03-15T07:30:00+07:00"))
        );
        // At 07:00 local, yesterday's.
        assert_eq!(
            last_fire("0 30 7 * * *", hcm, t("2024-03-15T07:00:00+07:00")),
            Some(t("2024-03-14T07:30:00+07:00"))
        );
        // The firing instant itself counts.
        assert_eq!(
            last_fire("0 30 7 * * *", hcm, t("2024-03-15T07:30:00+07:00")),
            Some(t("2024-03-15T07:30:00+07:00"))
        );
        assert_eq!(last_fire("not cron", hcm, t("2024-03-15T07:30:00Z")), None);
    }

    #[test]
    fn validates_six_field_cron() {
        assert!(validate("0 */5 * * * *").is_ok());
        assert!(validate("*/30 * * * * *").is_ok());
        assert!(validate("0 30 7 * * Mon-Fri").is_ok());
        assert!(validate("*/5 * * * *").is_err());
        assert!(validate("0 61 * * * *").is_err());
        assert!(validate("every minute please").is_err());
    }

    #[tokio::test]
    async fn a_slow_job_never_overlaps_itself() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let mut s = Scheduler::new(chrono_tz::Asia::Ho_Chi_Minh, Clock::system());
        let running = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let (r, m, n) = (running.clone(), max_seen.clone(), runs.clone());
        s.add("slow", "* * * * * *", move || {
            let (r, m, n) = (r.clone(), m.clone(), n.clone());
            Box::pin(async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                n.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
                r.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .unwrap();
        s.start();
        tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
        s.shutdown().await;
        assert_eq!(max_seen.load(Ordering::SeqCst), 1);
        assert!(runs.load(Ordering::SeqCst) >= 1);
        assert_eq!(
            running.load(Ordering::SeqCst),
            0,
            "shutdown waited for the run in flight"
        );
    }

    /// The ticks follow the daemon's clock: a clock pinned two seconds before 07:30 on
    /// a Monday fires the 07:30 job within a few seconds of real time.
    #[tokio::test]
    async fn ticks_follow_a_pinned_clock() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let start = chrono::DateTime::parse_from_rfc3339("2026-12-07T07:29:58+07:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let mut s = Scheduler::new(chrono_tz::Asia::Ho_Chi_Minh, Clock::starting_at(start));
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        s.add("digest", "0 30 7 * * Mon-Fri", move || {
            let r = r.clone();
            Box::pin(async move {
                r.fetch_add(1, Ordering::SeqCst);
            })
        })
        .unwrap();
        s.start();
        tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
        s.shutdown().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    /// The start-up run holds the job's guard: ticks during it are skipped.
    #[tokio::test]
    async fn the_start_up_run_and_the_ticks_never_overlap() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let mut s = Scheduler::new(chrono_tz::Asia::Ho_Chi_Minh, Clock::system());
        let running = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let (r, m, n) = (running.clone(), max_seen.clone(), runs.clone());
        s.add_at_start("poll", "* * * * * *", move || {
            let (r, m, n) = (r.clone(), m.clone(), n.clone());
            Box::pin(async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                n.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(1800)).await;
                r.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .unwrap();
        s.start();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "the start-up run began at once"
        );
        tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
        s.shutdown().await;
        assert_eq!(max_seen.load(Ordering::SeqCst), 1);
        assert!(runs.load(Ordering::SeqCst) >= 2);
    }
}
