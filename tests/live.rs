//! `impactd run` end to end on sources that need no hardware: the built-in scene as a paced
//! camera and microphone (a source whose true A/V offset is known: 0), and bad configs.

mod live_common;

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use live_common::*;

/// Live and replay share one pipeline: the scene played live (video and sound paced on the
/// monotonic clock, opened a few ms apart) must give replay's events, with times within the
/// 10-ms A/V alignment budget.
#[test]
fn live_scene_matches_replay_within_the_alignment_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_run(
        dir.path(),
        &["--video", "scene", "--audio-device", "scene"],
        &[],
    );
    let out = collect_stdout(&mut child);
    // The second impact lands at 5.57 s; the detector decides within a window hop after that.
    thread::sleep(Duration::from_millis(7500));
    let (status, took) = sigterm(&mut child);
    let stderr = stderr_of(dir.path());
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");
    let live = events(&out.join().unwrap());
    let reference: Vec<_> = replay_scene_events()
        .into_iter()
        .filter(|e| e["t"].as_f64().unwrap() < 6.0)
        .collect();
    assert_eq!(reference.len(), 2, "the scene's first two impacts");
    let live: Vec<_> = live
        .into_iter()
        .filter(|e| e["t"].as_f64().unwrap() < 6.0)
        .collect();
    assert_eq!(
        live.len(),
        reference.len(),
        "live {live:?}\nreplay {reference:?}\n{stderr}"
    );
    for (l, r) in live.iter().zip(&reference) {
        assert_eq!(l["kind"], r["kind"], "{l} vs {r}");
        assert_eq!(l["frame"], r["frame"], "{l} vs {r}");
        let dt = (l["t"].as_f64().unwrap() - r["t"].as_f64().unwrap()).abs();
        assert!(dt <= 0.010, "event time off by {dt} s: {l} vs {r}");
    }
    assert!(stderr.contains("ready"), "{stderr}");
}

fn run_with_config(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_config_with_errors_exits_2_naming_file_and_key() {
    for (text, key) in [
        ("[video]\nfps = 5\n", "video.fps"),
        ("[audio]\ndevise = \"default\"\n", "devise"),
        ("[service]\nstall_s = -1\n", "service.stall_s"),
        ("[video]\nformats = [\"H264\"]\n", "video.formats"),
    ] {
        let (code, err) = run_with_config(text);
        assert_eq!(code, 2, "{text:?}: {err}");
        assert!(
            err.contains("bad.toml") && err.contains(key),
            "{text:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = Command::new(bin())
        .args(["run", "--config", "/nonexistent/impactd.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/impactd.toml"));
}

#[test]
fn the_units_default_config_passes_check_config() {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/impactd.toml");
    let out = Command::new(bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `systemd-analyze verify` on the unit, with the binary path pointing at this build (verify
/// checks that the ExecStart programs exist). CI installs the `systemd` package for it.
#[test]
fn systemd_analyze_verifies_the_unit() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/impactd.service"),
    )
    .unwrap();
    assert!(unit.contains("/usr/local/bin/impactd"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("impactd.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/impactd", bin())).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze must be installed (Debian: apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("impactd.service"))
        .collect();
    assert!(complaints.is_empty(), "{complaints:?}");
}

/// A camera device that is not there (unplugged before the start): the daemon says which device
/// and why, retries with backoff, keeps the microphone going, and stops cleanly.
#[test]
fn an_absent_camera_is_retried_while_the_audio_flows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[service]\nbackoff_min_s = 0.2\nbackoff_max_s = 0.4\n",
    )
    .unwrap();
    let mut child = spawn_run(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--video",
            "/dev/video-impactd-test-absent",
            "--audio-device",
            "scene",
        ],
        &[],
    );
    let out = collect_stdout(&mut child);
    thread::sleep(Duration::from_millis(7000));
    let (status, took) = sigterm(&mut child);
    let stderr = stderr_of(dir.path());
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(
        stderr.contains("/dev/video-impactd-test-absent: file not found; retrying with backoff"),
        "{stderr}"
    );
    let reconnects: u64 = stderr
        .split("reconnects ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no final line: {stderr}"));
    assert!(reconnects >= 5, "{reconnects} reconnects in 7 s: {stderr}");
    // The soundtrack alone still gives its sounds (unseen_sound: nothing visible moves).
    let ev = events(&out.join().unwrap());
    assert!(
        ev.iter().any(|e| e["kind"] == "unseen_sound"),
        "{ev:?}\n{stderr}"
    );
}
