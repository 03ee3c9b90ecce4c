//! Helpers shared by the integration tests (also included by live_common and sinks_common).
#![allow(dead_code)] // each test crate uses a part

use std::process::Command;

/// The untrained motion baseline, pinned for the tests that check events against the built-in
/// scene's ground truth or a toy moving square: its envelope follows the picture exactly, so these
/// tests check the pipeline, not a trained model's judgement. (The daemon's default is the trained
/// impact-s1; tests/cli.rs checks that and replays the built-in scene with it, tests/ort.rs
/// compares it between the two runtimes, .ci/aarch64 between the two architectures.)
pub const BASELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/motion-baseline.onnx");

/// Runs the ffmpeg CLI (overwriting outputs) and panics with its stderr if it fails.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed for these tests");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
