//! impactd: reports physical impacts by comparing the loudness envelope a model predicts from
//! video with the envelope heard by the microphone. See ARCHITECTURE.md for the map of the code
//! and DESIGN.md's contracts it implements.

pub mod bench;
pub mod capture;
pub mod config;
pub mod cputime;
pub mod detector;
pub mod engine;
pub mod envelope;
pub mod eval;
pub mod events;
pub mod health;
pub mod media;
pub mod model;
pub mod preprocess;
pub mod replay;
pub mod rotate;
pub mod sources;
pub mod synth;
