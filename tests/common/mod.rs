//! Helpers shared by the integration tests (also included by live_common and sinks_common).
#![allow(dead_code)] // each test crate uses a part

use std::io::Write;
use std::path::Path;
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

/// Writes 8-bit luma planes as a 30-fps Y4M file (4:2:0, grey chroma).
pub fn write_y4m(path: &Path, frames: impl Iterator<Item = Vec<u8>>, w: u32, h: u32) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg").unwrap();
    let chroma = vec![128u8; (w as usize / 2) * (h as usize / 2) * 2];
    for y in frames {
        f.write_all(b"FRAME\n").unwrap();
        f.write_all(&y).unwrap();
        f.write_all(&chroma).unwrap();
    }
    f.flush().unwrap();
}

/// Writes mono samples in [-1, 1] as a 16-bit WAV file.
pub fn write_wav(path: &Path, samples: &[f32], rate: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}
