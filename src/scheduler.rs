//! A small scheduling interface over tokio-cron-scheduler: 6-field cron expressions
//! (sec min hour day month weekday) in local time; a job never overlaps itself (a tick
//! that finds the previous run still going is skipped and logged); shutdown waits for
//! the runs in flight.

use chrono_tz::Tz;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};

pub type JobFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct Scheduler {
    inner: JobScheduler,
    zone: Tz,
    guards: Vec<(String, Arc<Mutex<()>>)>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

/// Checks a cron expression without scheduling anything.
pub fn validate(expr: &str) -> Result<(), ScheduleError> {
    if expr.split_whitespace().count() != 6 {
        return Err(ScheduleError(format!(
            "`{expr}` is not a 6-field cron expression (sec min hour day month weekday)"
        )));
    }
    Job::new_async(expr, |_, _| Box::pin(async {}))
        .map(|_| ())
        .map_err(|e| ScheduleError(format!("`{expr}` is not a valid cron expression: {e}")))
}

/// When the schedule last fired at or before `now` (local time in `zone`), for jobs
/// that catch up on a run the daemon missed (it was down, or a replica died mid-run).
pub fn last_fire(
    expr: &str,
    zone: Tz,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .ok()?;
    cron.find_previous_occurrence(&now.with_timezone(&zone), true)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

impl Scheduler {
    pub async fn new(zone: Tz) -> Result<Scheduler, ScheduleError> {
        Ok(Scheduler {
            inner: JobScheduler::new()
                .await
                .map_err(|e| ScheduleError(e.to_string()))?,
            zone,
            guards: Vec::new(),
        })
    }

    /// Adds a job that runs `run` on the schedule, never twice at once.
    pub async fn add<F>(&mut self, name: &str, expr: &str, run: F) -> Result<(), ScheduleError>
    where
        F: Fn() -> JobFuture + Send + Sync + 'static,
    {
        validate(expr)?;
        let guard = Arc::new(Mutex::new(()));
        let run = Arc::new(run);
        let job_name = name.to_string();
        let g = guard.clone();
        let job = Job::new_async_tz(expr, self.zone, move |_, _| {
            let guard = g.clone();
            let run = run.clone();
            let name = job_name.clone();
            Box::pin(async move {
                let Ok(_held) = guard.try_lock() else {
                    tracing::warn!(job = %name, "previous run still going: this tick is skipped");
                    return;
                };
                run().await;
            })
        })
        .map_err(|e| ScheduleError(format!("{name}: {e}")))?;
        self.inner
            .add(job)
            .await
            .map_err(|e| ScheduleError(format!("{name}: {e}")))?;
        self.guards.push((name.to_string(), guard));
        Ok(())
    }

    pub async fn start(&self) -> Result<(), ScheduleError> {
        self.inner
            .start()
            .await
            .map_err(|e| ScheduleError(e.to_string()))
    }

    /// Stops ticking, then waits for every run in flight to finish.
    pub async fn shutdown(&mut self) {
        if let Err(e) = self.inner.shutdown().await {
            tracing::warn!(error = %e, "scheduler shutdown");
        }
        for (name, guard) in &self.guards {
            let _ = guard.lock().await;
            tracing::debug!(job = %name, "stopped");
        }
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
        let mut s = Scheduler::new(chrono_tz::Asia::Ho_Chi_Minh).await.unwrap();
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
        .await
        .unwrap();
        s.start().await.unwrap();
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
}
