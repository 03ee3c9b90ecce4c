//! The real binary on the built-in scene and the committed fixtures: events against the scene's
//! ground truth, exactly-once at any hop, the envelopes CSV, check-config and model-info.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use impactd::sources::synthetic::{Scene, Truth};

mod common;
use common::{BASELINE, write_wav, write_y4m};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_impactd"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .env("IMPACTD_MODEL", BASELINE);
    c
}

/// Without `--model`, `model.path` or `IMPACTD_MODEL` (or with it empty) the daemon runs the
/// trained impact-s1 (int8, streaming form, class head), found in the source tree's models/.
#[test]
fn the_default_model_is_the_trained_impact_s1() {
    let out = bin()
        .env("IMPACTD_MODEL", "")
        .env("RUST_LOG", "info")
        .arg("replay")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "an empty IMPACTD_MODEL is unset: {err}"
    );
    assert!(err.contains("model: impact-s1 v1 (Streaming"), "{err}");
    let out = bin()
        .env_remove("IMPACTD_MODEL")
        .env("RUST_LOG", "info")
        .arg("replay")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("model: impact-s1 v1 (Streaming"), "{err}");
    let ev = events(&out);
    let impacts: Vec<_> = ev.iter().filter(|e| e["kind"] == "impact").collect();
    assert!(!impacts.is_empty(), "{ev:#?}");
    for e in impacts {
        assert!(
            matches!(e["class"].as_str(), Some("hit" | "collision" | "drop")),
            "an impact of the default model carries its class: {e}"
        );
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run impactd")
}

fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn builtin_scene_gives_its_ground_truth() {
    let out = run(&["replay"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ev = events(&out);
    let truth = Scene::default().truth();
    assert_eq!(ev.len(), truth.len(), "events: {ev:#?}");
    for (e, t) in ev.iter().zip(&truth) {
        let (kind, time, tol) = match *t {
            // impacts and sounds: refined from the audio to a millisecond
            Truth::Impact(t) => ("impact", t, 0.002),
            Truth::UnseenSound(t) => ("unseen_sound", t, 0.002),
            // silent impacts: only the video knows, to a frame
            Truth::SilentImpact(t) => ("silent_impact", t, 1.0 / 12.0),
        };
        assert_eq!(e["kind"], kind, "{e}");
        let got = e["t"].as_f64().unwrap();
        assert!((got - time).abs() <= tol, "{kind} at {got}, truth {time}");
        let c = e["confidence"].as_f64().unwrap();
        assert!(c > 0.5 && c <= 1.0, "{e}");
    }
    // ids count from 1
    let ids: Vec<u64> = ev.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=ev.len() as u64).collect::<Vec<_>>());
}

#[test]
fn every_impact_once_whatever_the_hop() {
    let key = |out: &Output| -> Vec<(String, i64)> {
        events(out)
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_string(),
                    (e["t"].as_f64().unwrap() * 12.0).round() as i64,
                )
            })
            .collect()
    };
    let base = key(&run(&["replay", "--hop", "6"]));
    assert!(base.iter().filter(|(k, _)| k == "impact").count() >= 3);
    for hop in ["1", "5", "12", "48"] {
        let out = run(&["replay", "--hop", hop]);
        assert!(out.status.success(), "{}", stderr(&out));
        let got = key(&out);
        let impacts = |v: &Vec<(String, i64)>| {
            v.iter()
                .filter(|(k, _)| k == "impact")
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(impacts(&got), impacts(&base), "hop {hop}");
    }
}

#[test]
fn envelopes_csv_has_one_row_per_frame() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("env.csv");
    let out = run(&[
        "replay",
        "--envelopes",
        csv.to_str().unwrap(),
        "--events",
        dir.path().join("ev.jsonl").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "events went to the file, not stdout");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("frame,t,predicted,observed,observed_raw")
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    // 16.5 s at 12 fps
    assert_eq!(rows.len(), 198);
    for (k, r) in rows.iter().enumerate() {
        assert_eq!(r[0] as usize, k);
        assert!((r[1] - k as f64 / 12.0).abs() < 1e-6);
        assert!(
            (0.0..=1.0).contains(&r[2]) && (0.0..=1.0).contains(&r[3]) && r[4] >= 0.0,
            "{r:?}"
        );
    }
    let ev = std::fs::read_to_string(dir.path().join("ev.jsonl")).unwrap();
    assert_eq!(ev.lines().count(), Scene::default().truth().len());
}

#[test]
fn seed_envelope_mode_is_selectable() {
    let out = run(&["replay", "--envelope", "seed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("differs from the one"),
        "a mode other than the model's is warned about"
    );
    let out = run(&["replay", "--envelope", "loud"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("loud"));
}

/// The built-in scene's video as a Y4M file and its soundtrack with the first impact's strike
/// replaced by a sound that swells into the same instant (40 dB over 0.3 s, as a bark or a
/// voice) and dies away: (video, audio).
fn builtin_with_a_swell_at_the_first_impact(dir: &Path) -> (PathBuf, PathBuf) {
    let scene = Scene::default();
    let video = dir.join("scene.y4m");
    let frames = (0..(scene.duration * scene.fps).round() as u64).map(|i| {
        let gray = impactd::media::PixelFormat::Gray8;
        scene.render_frame(i as f64 / scene.fps, i, gray).data
    });
    write_y4m(&video, frames, scene.width, scene.height);
    let Truth::Impact(t1) = scene.truth()[0] else {
        panic!("the scene starts with an impact")
    };
    let r = scene.rate as f64;
    let mut x = scene.render_audio();
    let (from, to) = (((t1 - 0.35) * r) as usize, ((t1 + 0.45) * r) as usize);
    for (n, v) in x.iter_mut().enumerate().take(to).skip(from) {
        let t = n as f64 / r - t1;
        let gain = if t < 0.0 {
            0.3 * 10f64.powf((-40.0 * (-t / 0.3).min(1.0)) / 20.0)
        } else {
            0.3 * (-t / 0.05).exp()
        };
        // the strike's samples give way to the swell, the noise floor stays
        let noise = ((n as f64 * 12.9898).sin() * 43758.5453).fract().abs() * 0.002 - 0.001;
        *v = (gain * (2.0 * std::f64::consts::PI * 300.0 * t).sin() + noise) as f32;
    }
    let audio = dir.join("scene.wav");
    write_wav(&audio, &x, scene.rate);
    (video, audio)
}

#[test]
fn the_attack_test_turns_an_impact_whose_sound_swells_into_an_unseen_sound() {
    let dir = tempfile::tempdir().unwrap();
    let (video, audio) = builtin_with_a_swell_at_the_first_impact(dir.path());
    let cfg = dir.path().join("attack.toml");
    let with = |attack: f32| {
        std::fs::write(&cfg, format!("[detector]\naudio_attack = {attack}\n")).unwrap();
        let out = run(&[
            "replay",
            video.to_str().unwrap(),
            "--audio",
            audio.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        events(&out)
    };
    let kinds = |ev: &[serde_json::Value]| -> Vec<(String, i64)> {
        ev.iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_string(),
                    e["frame"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    // off: the swell, seen as the block lands, is an impact like the strikes; every event
    // with a sound carries its attack, the swell's well below the strikes' 1
    let off = with(0.0);
    let impacts: Vec<&serde_json::Value> = off.iter().filter(|e| e["kind"] == "impact").collect();
    assert_eq!(impacts.len(), 3, "{off:#?}");
    let swell = impacts[0]["attack"].as_f64().unwrap();
    assert!(swell < 0.5, "the swell's attack: {swell}");
    for e in &off {
        match e["kind"].as_str().unwrap() {
            "silent_impact" => assert!(e.get("attack").is_none(), "{e}"),
            _ => assert!((0.0..=1.0).contains(&e["attack"].as_f64().unwrap()), "{e}"),
        }
    }
    for e in &impacts[1..] {
        assert!(e["attack"].as_f64().unwrap() > 0.9, "a strike: {e}");
    }
    // at 0.6 the swell is a sound with no visible impact, and its visual peak, heard, is no
    // silent impact; everything else is as it was
    let on = with(0.6);
    let mut expected = kinds(&off);
    let first = expected.iter().position(|(k, _)| k == "impact").unwrap();
    expected[first].0 = "unseen_sound".into();
    assert_eq!(kinds(&on), expected);
    // just below the swell's attack nothing changes
    assert_eq!(kinds(&with(swell as f32 - 0.01)), kinds(&off));
}

#[test]
fn check_config_accepts_the_example_and_names_bad_keys() {
    let out = run(&["check-config", "impactd.example.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("[detector]\nvisual_treshold = 0.4\n", "visual_treshold"),
        ("[model]\nhop = 0\n", "model.hop"),
        ("[detector]\naudio_attack = 1.5\n", "detector.audio_attack"),
        ("[model]\nhop = 100\n", "model.hop"),
        ("[model]\npath = \"nowhere.onnx\"\n", "nowhere.onnx"),
        ("not toml at all = = =", "bad.toml"),
    ] {
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, text).unwrap();
        let out = run(&["check-config", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{text:?}");
        let err = stderr(&out);
        assert!(
            err.contains(needle) && err.contains("bad.toml"),
            "{text:?}: {err}"
        );
    }
    let out = run(&["check-config", "/nonexistent/impactd.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/impactd.toml"));
}

#[test]
fn hop_outside_the_window_is_refused() {
    for hop in ["0", "49"] {
        let out = run(&["replay", "--hop", hop]);
        assert_eq!(out.status.code(), Some(2), "hop {hop}");
        assert!(stderr(&out).contains("model.hop"), "{}", stderr(&out));
    }
}

#[test]
fn model_info_describes_the_baseline() {
    let out = run(&["model-info", "models/motion-baseline.onnx"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("motion-baseline") && text.contains("[1, 1, 48, 64, 64]"),
        "{text}"
    );
}

fn fixture(name: &str) -> String {
    Path::new("tests/fixtures/models")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn bad_models_are_refused_with_both_sides_named() {
    for (model, needles) in [
        (
            "wrong-frames.onnx",
            vec![
                "[1, 1, 24, 16, 16]",
                "[1, 1, 48, 16, 16]",
                "wrong-frames.toml",
            ],
        ),
        ("wrong-size.onnx", vec!["16", "[1, 1, 48, 16, 32]"]),
        ("wrong-output.onnx", vec!["[1, 24]", "[1, 48]"]),
        ("corrupt.onnx", vec!["corrupt.onnx", "cannot load"]),
        ("truncated.onnx", vec!["truncated.onnx", "cannot load"]),
        ("no-sidecar.onnx", vec!["no-sidecar.toml", "sidecar"]),
        ("missing.onnx", vec!["missing.onnx", "not found"]),
    ] {
        let out = run(&["model-info", &fixture(model)]);
        assert_eq!(out.status.code(), Some(4), "{model}: {}", stderr(&out));
        let err = stderr(&out);
        for n in needles {
            assert!(err.contains(n), "{model}: {n:?} not in {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        // replay refuses the same way
        let out = run(&["replay", "--model", &fixture(model)]);
        assert_eq!(out.status.code(), Some(4), "{model}");
    }
}

#[test]
fn nan_and_out_of_range_outputs_stop_the_run() {
    for model in ["nan-output.onnx", "out-of-range.onnx"] {
        let out = run(&["replay", "--model", &fixture(model)]);
        assert_eq!(out.status.code(), Some(4), "{model}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("envelope") && err.contains("unusable"),
            "{model}: {err}"
        );
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn class_head_labels_impacts() {
    let out = run(&["replay", "--model", &fixture("with-classes.onnx")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ev = events(&out);
    let impacts: Vec<_> = ev.iter().filter(|e| e["kind"] == "impact").collect();
    assert!(!impacts.is_empty());
    for e in impacts {
        // fixed logits [2.0, 0.5, -1.0]: softmax 0.786 for "hit"
        assert_eq!(e["class"], "hit");
        assert!(
            (e["class_confidence"].as_f64().unwrap() - 0.786).abs() < 0.002,
            "{e}"
        );
    }
    assert!(
        ev.iter()
            .filter(|e| e["kind"] != "impact")
            .all(|e| e.get("class").is_none())
    );
}

#[test]
fn help_explains_the_commands() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for c in ["replay", "eval", "check-config", "model-info", "Exit codes"] {
        assert!(text.contains(c), "{c} missing from --help");
    }
    let _ = root();
}

#[cfg(not(feature = "ort"))]
#[test]
fn backend_ort_without_the_feature_says_how_to_rebuild() {
    let out = run(&["replay", "--backend", "ort"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("--features ort"), "{}", stderr(&out));
    let out = run(&["replay", "--backend", "onnx"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown backend"), "{}", stderr(&out));
}

#[cfg(not(feature = "ort"))]
#[test]
fn bench_compare_backends_without_the_feature_says_how_to_rebuild() {
    let out = run(&["bench", "--compare-backends", "--windows", "5"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("--features ort"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn events_file_rotates_without_splitting_lines() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let cfg = dir.path().join("c.toml");
    // every event line is ~250 bytes: one per file
    std::fs::write(
        &cfg,
        format!(
            "[events]\npath = {:?}\nmax_bytes = 300\nkeep = 2\n",
            events.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = run(&["replay", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let ids = |p: &Path| -> Vec<u64> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    let n = Scene::default().truth().len() as u64;
    assert_eq!(ids(&events), vec![n]);
    assert_eq!(ids(&dir.path().join("events.jsonl.1")), vec![n - 1]);
    assert_eq!(ids(&dir.path().join("events.jsonl.2")), vec![n - 2]);
    assert!(!dir.path().join("events.jsonl.3").exists());
}
