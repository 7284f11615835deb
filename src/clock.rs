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
//! `/readyz`. In-process tests use [`Clock::manual`], set by hand.

use chrono::{DateTime, Duration as Span, Utc};
use std::sync::{Arc, Mutex};

/// Where "now" comes from. Cheap to clone; clones share a manual clock's setting.
#[derive(Clone, Debug)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    System,
    /// The system clock moved by a fixed amount (a pinned start, running on).
    Shifted(Span),
    /// Set by hand (in-process tests).
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { kind: Kind::System }
    }

    /// A clock that reads `start` now and runs on at the system clock's speed (tests
    /// of the real process only).
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock {
            kind: Kind::Shifted(start - Utc::now()),
        }
    }

    /// A clock that reads `at` until it is set again.
    pub fn manual(at: DateTime<Utc>) -> Clock {
        Clock {
            kind: Kind::Manual(Arc::new(Mutex::new(at))),
        }
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.kind {
            Kind::System => Utc::now(),
            Kind::Shifted(by) => Utc::now() + *by,
            Kind::Manual(at) => *at.lock().expect("clock lock"),
        }
    }

    /// Sets a manual clock (no effect on the others).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Kind::Manual(m) = &self.kind {
            *m.lock().expect("clock lock") = at;
        }
    }

    /// Moves a manual clock on by `by`.
    pub fn advance(&self, by: Span) {
        if let Kind::Manual(m) = &self.kind {
            let mut t = m.lock().expect("clock lock");
            *t += by;
        }
    }

    /// Whether this is the production clock.
    pub fn is_system(&self) -> bool {
        matches!(self.kind, Kind::System)
    }

    /// How this clock differs from the system clock, for the start-up warning and
    /// `/readyz` (`None` for the system clock).
    pub fn describe(&self) -> Option<String> {
        match &self.kind {
            Kind::System => None,
            Kind::Shifted(by) => Some(format!(
                "test clock: {} s from the system clock",
                by.num_seconds()
            )),
            Kind::Manual(_) => Some("manual test clock".into()),
        }
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
        assert!(!c.is_system());
        assert!(Clock::system().is_system());
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let t = DateTime::parse_from_rfc3339("2026-12-06T22:00:00+07:00")
            .unwrap()
            .with_timezone(&Utc);
        let c = Clock::manual(t);
        let shared = c.clone();
        assert_eq!(c.now(), t);
        shared.advance(Span::minutes(5));
        assert_eq!(c.now(), t + Span::minutes(5));
        c.set(t);
        assert_eq!(shared.now(), t);
    }
}
