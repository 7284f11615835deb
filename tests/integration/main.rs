//! The one integration-test binary: the CLI as a real process, and property tests of
//! the calendar arithmetic against a naive oracle.

mod alerts;
mod api;
mod browser;
mod calendar_diff;
mod cli;
mod daemon;
mod deploy;
mod desk;
mod ingest;
mod metrics;
mod props;
mod reload;
mod replicas;
mod report;
mod sources;
mod store;
mod support;

pub use support::*;
