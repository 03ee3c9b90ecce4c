//! Offline evaluation: the quality numbers of DESIGN.md, "Measuring quality".
//!
//! [`metrics`] holds pure functions (no I/O) that turn predicted envelopes, detected events and
//! annotated hit times into those numbers, plus a per-clip / overall summary and its table.

pub mod metrics;
pub mod run;
