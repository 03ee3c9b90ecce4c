//! The daemon under a (fake) service manager: a real NOTIFY_SOCKET bound by the test, video as a
//! live Y4M pipe on stdin, sound from a WAV played at its own pace. READY, WATCHDOG while both
//! flow, silence of the watchdog when the camera stalls, STATUS, STOPPING, SIGTERM within 2 s
//! with events flushed; a microphone that errors and a camera that goes away.

mod live_common;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use live_common::*;

const WATCHDOG_USEC: &str = "1000000"; // 1 s: fed every 0.5 s while healthy

fn config(dir: &std::path::Path) -> String {
    let path = dir.join("impactd.toml");
    std::fs::write(
        &path,
        "[service]\nstall_s = 1.0\nbackoff_min_s = 0.2\nbackoff_max_s = 1.0\n",
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn notify_watchdog_stall_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("scene.wav");
    scene_wav(&wav, 16.5);
    let sock = NotifySocket::bind(dir.path());
    let cfg = config(dir.path());
    let audio = format!("wav:{}", wav.display());
    let mut child = spawn_run(
        dir.path(),
        &["--config", &cfg, "--video", "-", "--audio-device", &audio],
        &[
            ("NOTIFY_SOCKET", sock.path.to_str().unwrap()),
            ("WATCHDOG_USEC", WATCHDOG_USEC),
        ],
    );
    let out = collect_stdout(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    // The header first: the daemon opens the pipe (reads it) before it says READY.
    y4m_header(&mut stdin).unwrap();
    let ready = sock
        .wait_for("READY=1", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no READY=1: {}", stderr_of(dir.path())));
    // 7 s of frames in real time (the scene's second impact lands at 5.57 s) ...
    y4m_frames_paced(&mut stdin, 0, 210, Instant::now()).unwrap();
    let stall_start = Instant::now();
    // ... then the camera stalls (the pipe stays open, nothing comes) for 3 s.
    thread::sleep(Duration::from_secs(3));
    let (status, took) = sigterm(&mut child);
    drop(stdin);
    let stderr = stderr_of(dir.path());
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(took <= Duration::from_secs(2), "stopped in {took:?}");

    let flowing = sock.lines_between(ready, stall_start);
    let watchdogs = flowing.iter().filter(|l| *l == "WATCHDOG=1").count();
    assert!(
        watchdogs >= 8,
        "WATCHDOG=1 {watchdogs} times in 7 s of flow: {flowing:?}"
    );
    assert!(
        flowing.iter().any(|l| l.starts_with("STATUS=ok; video ")),
        "{flowing:?}"
    );
    // stall_s = 1 s, then at most one 0.5-s period: from 1.6 s after the stall on, silence.
    let stalled = sock.lines_between(stall_start + Duration::from_millis(1600), Instant::now());
    assert!(
        !stalled.iter().any(|l| l == "WATCHDOG=1"),
        "the watchdog was fed while the camera stalled: {stalled:?}"
    );
    assert!(
        stalled
            .iter()
            .any(|l| l.starts_with("STATUS=degraded: video source has delivered nothing")),
        "{stalled:?}"
    );
    assert!(sock.all_lines().iter().any(|l| l == "STOPPING=1"));
    assert!(stderr.contains("watchdog not fed"), "{stderr}");

    // Events were flushed: both impacts of the first 7 s, as replay finds them.
    let ev = events(&out.join().unwrap());
    let impacts: Vec<f64> = ev
        .iter()
        .filter(|e| e["kind"] == "impact")
        .map(|e| e["t"].as_f64().unwrap())
        .collect();
    assert!(
        impacts.iter().any(|t| (t - 1.37).abs() < 0.15)
            && impacts.iter().any(|t| (t - 5.57).abs() < 0.15),
        "impacts at {impacts:?}; events {ev:?}\n{stderr}"
    );
}

/// A microphone that fails (its file vanishes; reopening fails): the daemon says so, keeps
/// processing video, retries with backoff, and still stops cleanly.
#[test]
fn a_microphone_that_errors_leaves_the_video_running() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("short.wav");
    scene_wav(&wav, 1.0);
    let sock = NotifySocket::bind(dir.path());
    let cfg = config(dir.path());
    let audio = format!("wav:{}", wav.display());
    let mut child = spawn_run(
        dir.path(),
        &[
            "--config",
            &cfg,
            "--video",
            "scene",
            "--audio-device",
            &audio,
        ],
        &[
            ("NOTIFY_SOCKET", sock.path.to_str().unwrap()),
            ("WATCHDOG_USEC", WATCHDOG_USEC),
        ],
    );
    let out = collect_stdout(&mut child);
    sock.wait_for("READY=1", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no READY=1: {}", stderr_of(dir.path())));
    // At its end (1 s) the file is reopened to loop: it is gone by then.
    std::fs::remove_file(&wav).unwrap();
    thread::sleep(Duration::from_secs(4));
    let late = sock.lines_between(Instant::now() - Duration::from_millis(1500), Instant::now());
    let (status, took) = sigterm(&mut child);
    let stderr = stderr_of(dir.path());
    let _ = out.join();
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(took <= Duration::from_secs(2), "stopped in {took:?}");
    assert!(
        stderr.contains("short.wav"),
        "the error names the file: {stderr}"
    );
    assert!(stderr.contains("retrying with backoff"), "{stderr}");
    assert!(
        late.iter()
            .any(|l| l.starts_with("STATUS=degraded: audio source is offline")),
        "{late:?}"
    );
    assert!(!late.iter().any(|l| l == "WATCHDOG=1"), "{late:?}");
    // Video went on being processed: about 12 grid frames per second for the whole ~4-s run.
    let frames: u64 = stderr
        .lines()
        .find_map(|l| l.split("stopped after ").nth(1))
        .and_then(|s| s.split(": ").nth(1))
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no final line: {stderr}"));
    assert!(frames >= 40, "{frames} frames in ~4 s: {stderr}");
}

/// A camera that goes away for good (the pipe closes): audio keeps flowing and being analysed
/// (the clap of the scene's soundtrack still becomes an unseen_sound); the status says why.
#[test]
fn a_camera_that_vanishes_leaves_the_audio_running() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("scene.wav");
    scene_wav(&wav, 16.5);
    let sock = NotifySocket::bind(dir.path());
    let cfg = config(dir.path());
    let audio = format!("wav:{}", wav.display());
    let mut child = spawn_run(
        dir.path(),
        &["--config", &cfg, "--video", "-", "--audio-device", &audio],
        &[("NOTIFY_SOCKET", sock.path.to_str().unwrap())],
    );
    let out = collect_stdout(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    y4m_header(&mut stdin).unwrap();
    sock.wait_for("READY=1", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no READY=1: {}", stderr_of(dir.path())));
    y4m_frames_paced(&mut stdin, 0, 30, Instant::now()).unwrap();
    stdin.flush().unwrap();
    drop(stdin); // unplugged
    // The clap is at 8.0 s of the soundtrack; decided about half a second later.
    thread::sleep(Duration::from_millis(8800));
    let late = sock.lines_between(Instant::now() - Duration::from_millis(1500), Instant::now());
    let (status, _) = sigterm(&mut child);
    let stderr = stderr_of(dir.path());
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(stderr.contains("video stays offline"), "{stderr}");
    assert!(
        late.iter()
            .any(|l| l.starts_with("STATUS=degraded: video source is offline")),
        "{late:?}"
    );
    let ev = events(&out.join().unwrap());
    assert!(
        ev.iter()
            .any(|e| e["kind"] == "unseen_sound" && (e["t"].as_f64().unwrap() - 8.0).abs() < 0.1),
        "no unseen_sound at 8 s: {ev:?}\n{stderr}"
    );
}
