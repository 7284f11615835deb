//! Helpers shared across the test modules: scratch folders, the binary on a pinned
//! clock, a daemon process, the SMTP sink, PostgreSQL databases, one dispatch round.

mod daemon;
mod pg;
mod prometheus;
mod smtp;

pub use daemon::*;
pub use pg::*;
pub use prometheus::*;
pub use smtp::*;

use chrono::{DateTime, Utc};
use slawatch::config::AlertsConfig;
use slawatch::jobs::{dispatch_paced, Dispatched, Pace};
use slawatch::notify::templates::Templates;
use slawatch::notify::Transport;
use slawatch::store::{Store, StoreError};

/// One dispatch round with no memory of earlier rounds (a fresh pace).
pub async fn dispatch_once(
    store: &dyn Store,
    transport: &dyn Transport,
    templates: &Templates,
    cfg: &AlertsConfig,
    now: DateTime<Utc>,
) -> Result<Dispatched, StoreError> {
    dispatch_paced(
        store,
        transport,
        templates,
        cfg,
        &Pace::default(),
        now,
        vietnam(),
    )
    .await
}

/// The text part (line ends as `\n`) of the first `.eml` in `dir` addressed to `to`:
/// what a file transport delivered to that person.
pub fn delivered_text(dir: &std::path::Path, to: &str) -> Option<String> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .find_map(|raw| {
            let m = mail_parser::MessageParser::default().parse(&raw)?;
            (m.to()?.first()?.address()? == to)
                .then(|| m.body_text(0).unwrap_or_default().replace("\r\n", "\n"))
        })
}

/// Vietnam's offset from UTC (+07:00, no summer time), the zone of every test's calendar.
pub fn vietnam() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(7 * 3600).expect("valid offset")
}

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh scratch folder under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A pinned instant that runs on with real time, so a restarted daemon starts where
/// the previous one stopped rather than back at the pin.
pub struct Timeline {
    base: chrono::DateTime<chrono::FixedOffset>,
    started: std::time::Instant,
}

impl Timeline {
    pub fn from(at: &str) -> Timeline {
        Timeline {
            base: chrono::DateTime::parse_from_rfc3339(at)
                .unwrap_or_else(|e| panic!("`{at}` is not an RFC 3339 instant: {e}")),
            started: std::time::Instant::now(),
        }
    }

    pub fn now(&self) -> String {
        self.instant().to_rfc3339()
    }

    pub fn instant(&self) -> chrono::DateTime<chrono::FixedOffset> {
        self.base + chrono::Duration::from_std(self.started.elapsed()).unwrap()
    }
}

/// The timeline the real processes of this run follow: from `SLAWATCH_TEST_AT` (RFC
/// 3339, set by `.ci/run` to run them at chosen moments) on, or none (the real time).
fn run_timeline() -> Option<&'static Timeline> {
    static T: std::sync::OnceLock<Option<Timeline>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        std::env::var("SLAWATCH_TEST_AT")
            .ok()
            .filter(|s| !s.is_empty())
            .map(|s| Timeline::from(&s))
    })
    .as_ref()
}

/// The instant a real process started now would read.
pub fn test_instant() -> Option<String> {
    run_timeline().map(Timeline::now)
}

/// "Now" as the real processes of this run see it.
pub fn test_now() -> chrono::DateTime<chrono::Utc> {
    run_timeline()
        .map(|t| t.instant().with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now)
}

/// The slawatch binary, its clock on the run's timeline when one is set.
pub fn slawatch() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slawatch"));
    if let Some(at) = test_instant() {
        cmd.args(["--test-clock-start", &at]);
    }
    cmd
}

/// The slawatch binary with its clock started at `at` (RFC 3339), whatever the run's
/// instant: for tests whose expectations hold at one kind of moment only.
pub fn slawatch_at(at: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slawatch"));
    cmd.args(["--test-clock-start", at]);
    cmd
}
