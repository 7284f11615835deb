//! The one source of "now" outside the pure core.
//!
//! Everything in the daemon and the CLI that needs the current instant asks a
//! [`Clock`]: the polls (their `now`), the evaluation timer, alerts, digests, the
//! weekly report, the sending window, the outbox, the scheduler's ticks and the HTTP
//! handlers. Production runs on [`Clock::system`].
//!
//! Tests that start the real process pin the instant it runs at with the hidden
//! command-line option `--test-clock-start INSTANT` ([`Clock::starting_at`]): the
//! process's clock starts at that instant and runs at the speed of the system clock,
//! so timers, schedules and timeouts behave as they would at that moment. The option
//! is absent from `--help`, cannot be set from the configuration file or the
//! environment, and a process started with it says so in a warning at start-up and in
//! `/readyz`. In-process tests pass the instant to the job they test.

use chrono::{DateTime, Duration as Span, Utc};

/// Where "now" comes from. Cheap to copy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    /// How far this clock reads from the system clock (a pinned test start, running
    /// on); `None` for the system clock.
    shift: Option<Span>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { shift: None }
    }

    /// A clock that reads `start` now and runs on at the system clock's speed (tests
    /// of the real process only).
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock {
            shift: Some(start - Utc::now()),
        }
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.shift.unwrap_or_default()
    }

    /// How this clock differs from the system clock, for the start-up warning and
    /// `/readyz` (`None` for the system clock).
    pub fn describe(&self) -> Option<String> {
        self.shift
            .map(|by| format!("test clock: {} s from the system clock", by.num_seconds()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_start_runs_on_from_it() {
        let start = DateTime::parse_from_rfc3339("2027-02-08T09:00:00+07:00")
            .unwrap()
            .with_timezone(&Utc);
        let c = Clock::starting_at(start);
        let a = c.now();
        assert!((a - start).num_seconds().abs() <= 1, "{a}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(c.now() > a);
        assert!(c.describe().is_some());
        assert!(Clock::system().describe().is_none());
    }
}
