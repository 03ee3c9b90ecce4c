//! The `streaming` model form through the real binary: the same network as a streaming pair
//! (encoder per frame + head per window) and as one clip graph gives the same envelope at every
//! hop and on a clip shorter than a window; wrong encoder/head shapes are refused naming both;
//! per-frame class logits label each impact with its own frame's class.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures/models")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_impactd"))
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .expect("run impactd")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// `frame,t,predicted,observed,observed_raw` rows of an envelopes CSV.
fn csv(path: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

/// Replays `media` (None: the built-in scene) with `model` at `hop`; (events, CSV rows).
fn replay(
    model: &str,
    hop: usize,
    media: Option<&Path>,
    dir: &Path,
) -> (Vec<serde_json::Value>, Vec<Vec<f64>>) {
    let csv_path = dir.join(format!(
        "{}-{hop}.csv",
        Path::new(model).file_stem().unwrap().to_string_lossy()
    ));
    let hop = hop.to_string();
    let mut args = vec!["replay", "--model", model, "--hop", &hop, "--envelopes"];
    let csv_s = csv_path.to_string_lossy().into_owned();
    args.push(&csv_s);
    let media_s = media.map(|m| m.to_string_lossy().into_owned());
    let audio_s = media.map(|m| m.with_extension("wav").to_string_lossy().into_owned());
    if let (Some(m), Some(a)) = (&media_s, &audio_s) {
        args.extend([m.as_str(), "--audio", a.as_str()]);
    }
    let out = run(&args);
    assert!(out.status.success(), "{model}: {}", stderr(&out));
    (events(&out), csv(&csv_path))
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len(), "frame counts differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x[2] - y[2]).abs())
        .fold(0.0, f64::max)
}

#[test]
fn streaming_equals_clip_export_of_the_same_network_at_every_hop() {
    let dir = tempfile::tempdir().unwrap();
    for hop in [1, 6, 17, 48] {
        let (ev_s, rows_s) = replay(&fixture("tiny-stream.onnx"), hop, None, dir.path());
        let (ev_c, rows_c) = replay(&fixture("tiny-stream-clip.onnx"), hop, None, dir.path());
        let d = max_diff(&rows_s, &rows_c);
        assert!(d <= 1e-4, "hop {hop}: predicted differs by {d}");
        // the envelope is not trivially constant: the comparison means something
        let (lo, hi) = rows_s
            .iter()
            .map(|r| r[2])
            .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
        assert!(hi - lo > 0.01, "flat envelope {lo}..{hi}");
        let kinds = |ev: &[serde_json::Value]| -> Vec<(String, u64)> {
            ev.iter()
                .map(|e| (e["kind"].to_string(), e["frame"].as_u64().unwrap()))
                .collect()
        };
        assert_eq!(kinds(&ev_s), kinds(&ev_c), "hop {hop}");
    }
}

/// A 2-s clip (24 frames, shorter than a window): both forms pad the same way.
#[test]
fn streaming_pads_a_short_clip_like_the_clip_form() {
    let dir = tempfile::tempdir().unwrap();
    let y4m = dir.path().join("short.y4m");
    let mut bytes = b"YUV4MPEG2 W32 H32 F12:1 Ip A1:1 Cmono\n".to_vec();
    for i in 0..24usize {
        bytes.extend_from_slice(b"FRAME\n");
        // a bright square moving down 2 px per frame over a gradient
        for y in 0..32usize {
            for x in 0..32usize {
                let inside = (8..16).contains(&x) && y >= i && y < i + 8;
                bytes.push(if inside { 240 } else { (x * 4 + y) as u8 });
            }
        }
    }
    std::fs::write(&y4m, bytes).unwrap();
    write_wav(&y4m.with_extension("wav"), 2.0);
    let (_, rows_s) = replay(&fixture("tiny-stream.onnx"), 6, Some(&y4m), dir.path());
    let (_, rows_c) = replay(&fixture("tiny-stream-clip.onnx"), 6, Some(&y4m), dir.path());
    assert_eq!(rows_s.len(), 24);
    let d = max_diff(&rows_s, &rows_c);
    assert!(d <= 1e-4, "predicted differs by {d}");
}

/// A mono 16-bit 44.1-kHz WAV of `seconds`: faint noise and a knock every half second.
fn write_wav(path: &Path, seconds: f64) {
    let rate = 44_100u32;
    let n = (seconds * rate as f64) as usize;
    let mut data = Vec::with_capacity(n * 2);
    for i in 0..n {
        let t = i as f64 / rate as f64;
        let since = t % 0.5;
        let v = 0.5 * (-since / 0.02).exp() * (2.0 * std::f64::consts::PI * 800.0 * t).sin()
            + 0.001 * ((i * 7919 % 200) as f64 / 100.0 - 1.0);
        data.extend_from_slice(&((v * 32767.0) as i16).to_le_bytes());
    }
    let mut b = Vec::with_capacity(44 + data.len());
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    std::fs::write(path, b).unwrap();
}

fn refused(model: &str, needles: &[&str]) -> String {
    let out = run(&["replay", "--model", &fixture(model)]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{model}: exit code; stderr:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{model}: {n:?} missing from:\n{err}");
    }
    err
}

#[test]
fn encoder_with_the_wrong_feature_size_is_refused_naming_both() {
    // the encoder returns [1, 4]; the sidecar says features = 2
    refused(
        "stream-wrong-encoder.onnx",
        &[
            "stream-wide-encoder.onnx",
            "stream-wrong-encoder.toml",
            "[1, 4]",
            "[1, 2]",
            "encoder",
        ],
    );
}

#[test]
fn head_with_the_wrong_window_is_refused_naming_both() {
    // the head takes [1, 24, 2]; the sidecar says 48 frames of 2 features
    refused(
        "stream-short-head.onnx",
        &[
            "stream-short-head.onnx",
            "stream-short-head.toml",
            "[1, 24, 2]",
            "[1, 48, 2]",
            "head",
        ],
    );
}

#[test]
fn missing_encoder_file_is_named() {
    refused(
        "stream-no-encoder.onnx",
        &[
            "stream-no-encoder.toml",
            "missing-encoder.onnx",
            "not found",
        ],
    );
}

#[test]
fn model_info_describes_the_streaming_form() {
    let out = run(&["model-info", &fixture("tiny-stream.onnx")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Streaming"), "{text}");
    assert!(text.contains("tiny-stream-encoder.onnx"), "{text}");
}

/// stream-motion: the motion baseline's envelope with per-frame class logits
/// [3 * envelope, 1, 0]: `hit` only where the envelope passes 1/3, `collision` elsewhere. An
/// impact must carry its own visual frame's class and softmax confidence.
#[test]
fn impacts_carry_their_own_frames_class() {
    let dir = tempfile::tempdir().unwrap();
    let (ev, rows) = replay(&fixture("stream-motion.onnx"), 6, None, dir.path());
    let impacts: Vec<_> = ev.iter().filter(|e| e["kind"] == "impact").collect();
    assert!(!impacts.is_empty(), "{ev:#?}");
    // most frames are quiet: a window-level or wrong-frame lookup would say "collision"
    let quiet = rows.iter().filter(|r| r[2] < 1.0 / 3.0).count();
    assert!(quiet * 2 > rows.len());
    for e in impacts {
        let v = e["visual_frame"]
            .as_u64()
            .expect("impact has a visual frame") as usize;
        let p = rows[v][2];
        let z = [3.0 * p, 1.0, 0.0].map(f64::exp);
        let want = z[0] / z.iter().sum::<f64>();
        assert_eq!(e["class"], "hit", "{e}");
        let got = e["class_confidence"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 0.002,
            "{e}: confidence {got}, softmax {want}"
        );
    }
    assert!(
        ev.iter()
            .filter(|e| e["kind"] != "impact")
            .all(|e| e.get("class").is_none())
    );
}

/// A copy of the tiny-stream model in `dir` whose sidecar declares `lookahead_frames`.
fn tiny_stream_with_lookahead(dir: &Path, lookahead: usize) -> PathBuf {
    for f in ["tiny-stream.onnx", "tiny-stream-encoder.onnx"] {
        std::fs::copy(fixture(f), dir.join(f)).unwrap();
    }
    let sidecar = std::fs::read_to_string(fixture("tiny-stream.toml")).unwrap();
    let sidecar = sidecar.replace(
        "fps = 12 ",
        &format!("fps = 12\nlookahead_frames = {lookahead} "),
    );
    assert!(sidecar.contains(&format!("lookahead_frames = {lookahead}")));
    std::fs::write(dir.join("tiny-stream.toml"), sidecar).unwrap();
    dir.join("tiny-stream.onnx")
}

#[test]
fn a_lookahead_the_engine_cannot_serve_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_stream_with_lookahead(dir.path(), 2);
    let out = run(&["replay", "--model", model.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("model.lookahead_frames = 2"), "{err}");
    assert!(err.contains("tiny-stream.toml"), "{err}");
}

#[test]
fn a_causal_model_runs_every_frame_by_default() {
    // lookahead_frames = 0 and no --hop: a window per frame, and every frame final
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_stream_with_lookahead(dir.path(), 0);
    let csv_path = dir.path().join("env.csv");
    let out = run(&[
        "replay",
        "--model",
        model.to_str().unwrap(),
        "--envelopes",
        csv_path.to_str().unwrap(),
        "--stats",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let rows = csv(&csv_path);
    assert!(!rows.is_empty());
    assert!(
        rows.iter().enumerate().all(|(i, r)| r[0] as usize == i),
        "every frame once, in order"
    );
    // --stats reports the windows run: one per frame
    let frames = rows.len();
    assert!(
        err.contains(&format!("{frames} windows")) || err.contains(&format!("windows: {frames}")),
        "expected {frames} windows in:\n{err}"
    );
}
