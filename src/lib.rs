//! slawatch: watches Vietnamese administrative-procedure dossiers, tasks and
//! petitions against their legal deadlines in working time.
//!
//! The pure core is [`calendar`] (working days and hours) and [`sla`] (deadlines,
//! states, outcomes, flags, the Decision 766 ratio, traces); it does no I/O and never
//! reads the clock. [`config`] and [`cli`] are the edges.

pub mod alert;
pub mod calendar;
pub mod calendar_diff;
pub mod catalogue;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod desk;
pub mod directory;
pub mod http;
pub mod import;
pub mod ingest;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod report;
pub mod scheduler;
pub mod sla;
pub mod source;
pub mod state;
pub mod store;
#[cfg(test)]
mod testkit;
pub mod timefmt;
