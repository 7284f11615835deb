//! The daemon's background jobs, one file each: polling, evaluation, alerts, the
//! digest and weekly reports, the outbox worker and the metrics refresh. Each acts on
//! the shared state ([`crate::state`]) at the instant it is given; none reads the
//! system time or schedules itself — the daemon registers them.

pub mod alerts;
pub mod digest;
pub mod dispatch;
pub mod evaluate;
pub mod metrics;
pub mod monthly;
pub mod poll;
pub mod replica;
pub mod report;
pub mod weekly;

pub use alerts::*;
pub use digest::*;
pub use dispatch::*;
pub use evaluate::*;
pub use metrics::*;
pub use monthly::*;
pub use poll::*;
pub use replica::{follow_loop, lease_loop, Held};
pub use weekly::*;

use crate::config::AlertsConfig;
use crate::scheduler::{ScheduleError, Scheduler};
use crate::state::Shared;
use std::sync::Arc;

/// What every scheduled job runs with.
pub struct JobEnv {
    pub shared: Arc<Shared>,
    pub alerts: Arc<AlertsConfig>,
    /// Wakes the outbox worker when a job queued messages.
    pub dispatch_wanted: Arc<tokio::sync::Notify>,
}

/// A background job the scheduler runs on its cron schedule, never twice at once.
#[async_trait::async_trait]
pub trait Job: Send + Sync + 'static {
    /// Its name in the logs and the scheduler.
    fn name(&self) -> String;
    /// Its schedule (cron, six fields, local time).
    fn schedule(&self) -> String;
    /// Also run once as soon as the scheduler starts.
    fn at_start(&self) -> bool {
        false
    }
    /// Runs it between ticks too, whenever this is notified.
    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
    async fn run(&self, env: &JobEnv);
}

/// Registers the jobs, in one place.
pub fn register(
    scheduler: &mut Scheduler,
    env: Arc<JobEnv>,
    jobs: Vec<Arc<dyn Job>>,
) -> Result<(), ScheduleError> {
    for job in jobs {
        let (name, schedule, at_start) = (job.name(), job.schedule(), job.at_start());
        let wake = job.wake();
        let env = env.clone();
        let run = move || -> crate::scheduler::JobFuture {
            let (job, env) = (job.clone(), env.clone());
            Box::pin(async move { job.run(&env).await })
        };
        if let Some(wake) = wake {
            scheduler.add_waking(&name, &schedule, at_start, wake, run)?;
        } else if at_start {
            scheduler.add_at_start(&name, &schedule, run)?;
        } else {
            scheduler.add(&name, &schedule, run)?;
        }
    }
    Ok(())
}
