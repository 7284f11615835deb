//! Deadlines and the SLA engine (SPEC §4): durations, the case model, evaluation,
//! the Decision 766 ratio and explain traces. Pure: no I/O, no clock; `now` is an
//! argument.

pub mod asof;
pub mod compare;
pub mod duration;
pub mod engine;
pub mod explain;
pub mod horizon;
pub mod model;
pub mod policy;
pub mod ratio;

pub use engine::{evaluate, DueBasis, Evaluation, Flags, Lifecycle, Outcome, State};
