//! The one integration-test binary: the CLI as a real process, and property tests of
//! the calendar arithmetic against a naive oracle.

mod alerts;
mod api;
mod cli;
mod daemon;
mod deploy;
mod metrics;
mod props;
mod reload;
mod sources;
mod store;

use std::path::PathBuf;
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
