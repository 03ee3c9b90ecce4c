//! The ONNX Runtime backend (`--features ort`) against tract, through the real binary.
//!
//! Needs ONNX Runtime's shared library: set ORT_DYLIB_PATH to it, e.g. the PyPI wheel's
//! (`.ci/ort-tests` does all of this):
//!
//! ```sh
//! pip install onnxruntime
//! export ORT_DYLIB_PATH=$(python3 -c "import onnxruntime, os, glob; print(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so*'))[0])")
//! cargo test --locked --features ort --test ort
//! ```
//!
//! Without it these tests fail (they never skip silently).
#![cfg(feature = "ort")]

use std::path::PathBuf;
use std::process::{Command, Output};

mod common;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// ORT_DYLIB_PATH, which must name an existing file.
fn dylib() -> PathBuf {
    let how = "set ORT_DYLIB_PATH to ONNX Runtime's libonnxruntime.so (1.22 or newer), e.g. \
               `pip install onnxruntime` and the libonnxruntime.so.* in its onnxruntime/capi/ \
               folder, or run .ci/ort-tests, which does that in a venv under target/";
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "ORT_DYLIB_PATH={} does not exist: {how}",
                p.display()
            );
            p
        }
        _ => panic!("ORT_DYLIB_PATH is not set: {how}"),
    }
}

/// Runs without `--model` take the motion baseline, not the trained default: the provider tests
/// compare events with tract's, which only the float model gives exactly (the int8 model's
/// QDQ kernels differ between the runtimes; ort_runs_the_int8_model_close_to_tract).
fn impactd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_impactd"));
    c.current_dir(root())
        .env("RUST_LOG", "warn")
        .env("IMPACTD_MODEL", common::BASELINE);
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One replay of the built-in scene with the motion baseline on `backend`: (events as JSON,
/// per-frame `predicted`).
fn replay(backend: &str, dir: &std::path::Path) -> (Vec<serde_json::Value>, Vec<f64>) {
    replay_model(backend, "models/motion-baseline.onnx", dir)
}

/// One replay of the built-in scene with `model` on `backend`.
fn replay_model(
    backend: &str,
    model: &str,
    dir: &std::path::Path,
) -> (Vec<serde_json::Value>, Vec<f64>) {
    let stem = std::path::Path::new(model)
        .file_stem()
        .unwrap()
        .to_string_lossy();
    let csv = dir.join(format!("{stem}-{backend}.csv"));
    let out = impactd()
        .env("ORT_DYLIB_PATH", dylib())
        .args([
            "replay",
            "--backend",
            backend,
            "--model",
            model,
            "--envelopes",
        ])
        .arg(&csv)
        .output()
        .expect("run impactd");
    assert!(out.status.success(), "{backend}: {}", stderr(&out));
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "predicted").unwrap();
    let predicted = lines
        .map(|l| l.split(',').nth(col).unwrap().parse::<f64>().unwrap())
        .collect();
    (events, predicted)
}

#[test]
fn ort_gives_the_envelopes_and_events_of_tract() {
    let dir = tempfile::tempdir().unwrap();
    let (ev_tract, p_tract) = replay("tract", dir.path());
    let (ev_ort, p_ort) = replay("ort", dir.path());
    assert_eq!(p_ort.len(), p_tract.len(), "frame counts differ");
    assert!(p_tract.len() > 100, "{} frames", p_tract.len());
    let (worst, at) = p_ort
        .iter()
        .zip(&p_tract)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold(
            (0.0f64, 0),
            |(m, mi), (i, d)| if d > m { (d, i) } else { (m, mi) },
        );
    assert!(
        worst <= 1e-3,
        "predicted differs by {worst} at frame {at}: ort {} tract {}",
        p_ort[at],
        p_tract[at]
    );
    let key = |ev: &[serde_json::Value]| -> Vec<(String, u64)> {
        ev.iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_string(),
                    e["frame"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert!(!ev_tract.is_empty());
    assert_eq!(key(&ev_ort), key(&ev_tract));
}

/// Largest |ort - tract| of `predicted` for `model` on the built-in scene, and both event lists.
fn streaming_gap(model: &str) -> (f64, Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let (ev_t, p_t) = replay_model("tract", model, dir.path());
    let (ev_o, p_o) = replay_model("ort", model, dir.path());
    assert_eq!(p_t.len(), p_o.len(), "{model}: frame counts differ");
    let worst = p_t
        .iter()
        .zip(&p_o)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    (worst, ev_t, ev_o)
}

#[test]
fn ort_runs_the_streaming_form_like_tract() {
    let (worst, _, _) = streaming_gap("tests/fixtures/models/tiny-stream.onnx");
    assert!(worst <= 1e-4, "tiny-stream: predicted differs by {worst}");
    let (worst, ev_t, ev_o) = streaming_gap("models/impact-s1-float.onnx");
    assert!(
        worst <= 1e-3,
        "impact-s1-float: predicted differs by {worst}"
    );
    let classes = |ev: &[serde_json::Value]| -> Vec<(u64, String)> {
        ev.iter()
            .filter(|e| e["kind"] == "impact")
            .map(|e| (e["frame"].as_u64().unwrap(), e["class"].to_string()))
            .collect()
    };
    assert_eq!(classes(&ev_t), classes(&ev_o));
}

/// int8 kernels may round differently in the two runtimes, and a rounding step inside the
/// network can move one frame's output a lot where the sigmoid is steep (on the built-in scene
/// one frame of an earlier impact-s1 differed by 0.21; the int8 files of 2026-12-06, ReLUs
/// folded, agree to the printed digit there, both at r 0.89 of the float model): the envelopes
/// must agree frame by frame to a few hundredths and as curves to r >= 0.95. How far they
/// differ depends on the CPU: ONNX Runtime picks its int8 kernels by instruction set. On an AMD
/// EPYC with AVX2 and no AVX-512 or VNNI (2026-12-07) 5 % of the built-in scene's 198 frames
/// differ by more than 0.05 (95th percentile 0.056, mean 0.008, r 0.987), where the machines
/// before had kept them under 0.05; the bound on the 95th percentile is 0.08.
#[test]
fn ort_runs_the_int8_model_close_to_tract() {
    let dir = tempfile::tempdir().unwrap();
    let model = "models/impact-s1.onnx";
    let (ev_t, p_t) = replay_model("tract", model, dir.path());
    let (_, p_o) = replay_model("ort", model, dir.path());
    assert_eq!(p_t.len(), p_o.len(), "frame counts differ");
    assert!(!ev_t.is_empty());
    let n = p_t.len() as f64;
    let mut d: Vec<f64> = p_t.iter().zip(&p_o).map(|(a, b)| (a - b).abs()).collect();
    let mean = d.iter().sum::<f64>() / n;
    d.sort_by(f64::total_cmp);
    let p95 = d[((0.95 * n) as usize).min(d.len() - 1)];
    let (mt, mo) = (p_t.iter().sum::<f64>() / n, p_o.iter().sum::<f64>() / n);
    let cov: f64 = p_t.iter().zip(&p_o).map(|(a, b)| (a - mt) * (b - mo)).sum();
    let var = |p: &[f64], m: f64| p.iter().map(|a| (a - m) * (a - m)).sum::<f64>();
    let r = cov / (var(&p_t, mt) * var(&p_o, mo)).sqrt();
    assert!(mean <= 0.02, "impact-s1 (int8): mean |difference| {mean}");
    assert!(
        p95 <= 0.08,
        "impact-s1 (int8): 95th percentile |difference| {p95}"
    );
    assert!(r >= 0.95, "impact-s1 (int8): r {r} between the runtimes");
}

#[test]
fn ort_refuses_a_wrong_shape_with_both_sides_named() {
    let out = impactd()
        .env("ORT_DYLIB_PATH", dylib())
        .args([
            "replay",
            "--backend",
            "ort",
            "--model",
            "tests/fixtures/models/wrong-frames.onnx",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    for needle in [
        "[1, 1, 24, 16, 16]",
        "[1, 1, 48, 16, 16]",
        "wrong-frames.toml",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn config_ort_dylib_is_used_without_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\nbackend = \"ort\"\nort_dylib = {:?}\n",
            dylib().to_string_lossy()
        ),
    )
    .unwrap();
    let out = impactd()
        .env_remove("ORT_DYLIB_PATH")
        .args(["replay", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!out.stdout.is_empty());
}

#[test]
fn a_missing_library_is_a_model_error_naming_the_path() {
    let out = impactd()
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .args(["replay", "--backend", "ort"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("/nonexistent/libonnxruntime.so") && err.contains("ORT_DYLIB_PATH"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Writes a config choosing backend "ort" with `model` lines appended to `[model]`.
fn ort_config(dir: &std::path::Path, model_lines: &str) -> PathBuf {
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\nbackend = \"ort\"\n{model_lines}\n[model.tensorrt]\nengine_cache = \"trt\"\n"
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn tensorrt_on_the_cpu_only_library_fails_by_default_naming_provider_and_policy() {
    // The PyPI onnxruntime wheel has no TensorRT: "fail" (the default) must refuse the model.
    let dir = tempfile::tempdir().unwrap();
    let cfg = ort_config(dir.path(), "providers = [\"tensorrt\", \"cpu\"]");
    let out = impactd()
        .env("ORT_DYLIB_PATH", dylib())
        .args(["replay", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    for needle in [
        "execution provider \"tensorrt\" could not be registered",
        "TensorrtExecutionProvider",
        "on_provider_failure = \"fail\"",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    assert!(out.stdout.is_empty(), "no events on failure");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn fallback_logs_each_refused_provider_and_runs_on_the_cpu_like_tract() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ort_config(
        dir.path(),
        "providers = [\"tensorrt\", \"cuda\", \"cpu\"]\non_provider_failure = \"fallback\"",
    );
    let csv = dir.path().join("fallback.csv");
    let out = impactd()
        .env("ORT_DYLIB_PATH", dylib())
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg("--envelopes")
        .arg(&csv)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for needle in [
        "execution provider \"tensorrt\" refused, falling back",
        "execution provider \"cuda\" refused, falling back",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    // Same events as tract, so the CPU provider really ran the model.
    let (ev_tract, _) = replay("tract", dir.path());
    let kinds = |text: &str| -> Vec<(String, u64)> {
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().into(),
                    e["frame"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let tract_kinds: Vec<(String, u64)> = ev_tract
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().into(),
                e["frame"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds(&String::from_utf8_lossy(&out.stdout)), tract_kinds);
}

#[test]
fn fallback_without_cpu_in_the_list_is_not_a_silent_cpu_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ort_config(
        dir.path(),
        "providers = [\"tensorrt\", \"cuda\"]\non_provider_failure = \"fallback\"",
    );
    let out = impactd()
        .env("ORT_DYLIB_PATH", dylib())
        .args(["replay", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("none of the execution providers in [model] providers (tensorrt, cuda)")
            && err.contains("add \"cpu\""),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn the_provider_report_says_what_runs_and_what_was_refused() {
    // The data /status reports: through the library, as the daemon holds it.
    use impactd::model::{OnProviderFailure, OrtProviders, Provider};
    let dir = tempfile::tempdir().unwrap();
    impactd::model::set_ort_dylib(&dylib());
    impactd::model::set_ort_providers(OrtProviders {
        providers: vec![Provider::Tensorrt, Provider::Cpu],
        on_failure: OnProviderFailure::Fallback,
        tensorrt: impactd::config::TensorRtConfig {
            engine_cache: dir.path().join("trt"),
            ..Default::default()
        },
    });
    let (pred, _) = impactd::replay::load_model(
        &root().join("models/motion-baseline.onnx"),
        impactd::model::BackendKind::Ort,
    )
    .unwrap();
    let report = pred.providers();
    assert_eq!(report.providers_active, ["cpu"]);
    assert_eq!(report.providers_refused.len(), 1, "{report:?}");
    assert_eq!(report.providers_refused[0].provider, "tensorrt");
    assert!(
        report.providers_refused[0]
            .reason
            .contains("TensorrtExecutionProvider"),
        "{report:?}"
    );
    // The engine cache was prepared before TensorRT was tried.
    assert!(dir.path().join("trt").is_dir());
    // And it serialises for /status.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["providers_active"][0], "cpu");
    assert_eq!(json["providers_refused"][0]["provider"], "tensorrt");
}

#[test]
fn bench_compares_both_backends_on_the_same_window() {
    let out = impactd()
        .env("ORT_DYLIB_PATH", dylib())
        .args(["bench", "--compare-backends", "--windows", "20"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    let row = |name: &str| -> Vec<f64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && l.split_whitespace().count() == 4)
            .unwrap_or_else(|| panic!("no {name} row in {text}"));
        line.split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let (t, o) = (row("tract"), row("ort"));
    assert!(t[0] > 0.0 && o[0] > 0.0, "{text}");
    // per frame = per window / 48
    assert!((t[2] * 48.0 - t[0]).abs() < 0.01, "{text}");
    let ratio: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ratio tract/ort (median): "))
        .unwrap_or_else(|| panic!("no ratio in {text}"))
        .parse()
        .unwrap();
    assert!((ratio - t[0] / o[0]).abs() < 0.02 * ratio + 0.01, "{text}");
    let diff: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("envelopes of the same window differ by at most "))
        .unwrap_or_else(|| panic!("no difference line in {text}"))
        .parse()
        .unwrap();
    assert!(diff <= 1e-3, "{text}");
}
