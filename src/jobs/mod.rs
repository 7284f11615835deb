//! The daemon's background jobs, one file each: polling, evaluation, alerts, the
//! digest and weekly reports, the outbox worker and the metrics refresh. Each acts on
//! the shared state ([`crate::state`]) at the instant it is given; none reads the
//! system time or schedules itself — the daemon registers them.

pub mod alerts;
pub mod digest;
pub mod dispatch;
pub mod evaluate;
pub mod metrics;
pub mod poll;
pub mod weekly;

pub use alerts::*;
pub use digest::*;
pub use dispatch::*;
pub use evaluate::*;
pub use metrics::*;
pub use poll::*;
pub use weekly::*;
