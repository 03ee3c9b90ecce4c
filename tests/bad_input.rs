//! Bad input through the real binary: each bad input of the engine issue gets the right exit code
//! (README, "Exit codes": 2 usage/config, 3 media, 4 model), a message that names the file and
//! says what is wrong, and never a panic.
//!
//! Every input is generated inside the test into a temporary directory: Y4M and WAV bytes are
//! written directly, containers with the ffmpeg CLI (lavfi `testsrc`, `sine`). Sizes are tiny
//! (64x48, a few seconds) so each test takes a second or two.
//!
//! Unknown config keys and `--hop 0` / `--hop 49` are covered by `tests/cli.rs`.

mod common;
use common::{BASELINE, ffmpeg};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

// ---------------------------------------------------------------------------------------------
// helpers

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_impactd"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .env("IMPACTD_MODEL", BASELINE)
        .env_remove("IMPACTD_FFMPEG")
        .env_remove("IMPACTD_FFPROBE")
        .stdin(Stdio::null());
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run impactd")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn no_panic(out: &Output) {
    let err = stderr(out);
    // Shown with `--nocapture`: what a user would see.
    eprintln!("--- exit {:?}\n{err}", out.status.code());
    assert!(!err.contains("panicked"), "impactd panicked:\n{err}");
}

/// The run failed with `code`, did not panic, and its stderr contains every needle.
fn fails_with(out: &Output, code: i32, needles: &[&str]) -> String {
    no_panic(out);
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    assert!(
        err.contains("impactd: error:"),
        "the error line is printed:\n{err}"
    );
    err
}

/// The run succeeded and did not panic.
fn succeeds(out: &Output) -> String {
    no_panic(out);
    let err = stderr(out);
    assert!(out.status.success(), "{:?}; stderr:\n{err}", out.status);
    err
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn kinds(ev: &[serde_json::Value]) -> Vec<&str> {
    ev.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

/// The `--envelopes` CSV's rows (header checked), every value a finite number.
fn csv_rows(path: &Path) -> Vec<[f64; 5]> {
    let text = std::fs::read_to_string(path).expect("envelopes CSV written");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("frame,t,predicted,observed,observed_raw")
    );
    lines
        .map(|l| {
            let v: Vec<f64> = l
                .split(',')
                .map(|v| v.parse().unwrap_or_else(|e| panic!("{l}: {e}")))
                .collect();
            assert_eq!(v.len(), 5, "{l}");
            assert!(v.iter().all(|x| x.is_finite()), "not finite: {l}");
            [v[0], v[1], v[2], v[3], v[4]]
        })
        .collect()
}

const W: usize = 64;
const H: usize = 48;
const RATE: u32 = 16_000;

/// A C420jpeg Y4M at 12 fps: `luma(i)` gives frame i's Y plane (W*H), chroma is neutral.
fn y4m_bytes(frames: usize, luma: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let mut b = format!("YUV4MPEG2 W{W} H{H} F12:1 Ip A1:1 C420jpeg\n").into_bytes();
    for i in 0..frames {
        let y = luma(i);
        assert_eq!(y.len(), W * H);
        b.extend_from_slice(b"FRAME\n");
        b.extend_from_slice(&y);
        b.resize(b.len() + 2 * (W / 2) * (H / 2), 128);
    }
    b
}

/// A 12x12 bright square on black that moves right ever faster (1, 2, ... 9 pixels per frame)
/// until frame 9 (t = 0.75 s), then stays put: motion peaks at frame 9 and stops dead.
fn falling_square(i: usize) -> Vec<u8> {
    let k = i.min(9);
    let x = k * (k + 1) / 2; // 0, 1, 3, 6, ..., 45
    let mut y = vec![16u8; W * H];
    for row in 18..30 {
        y[row * W + x..row * W + x + 12].fill(235);
    }
    y
}

/// Writes a 12-fps Y4M of the falling square, `frames` frames long.
fn write_video(path: &Path, frames: usize) {
    std::fs::write(path, y4m_bytes(frames, falling_square)).expect("write y4m");
}

/// A 16-bit mono WAV at [`RATE`] Hz.
fn wav_bytes(samples: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|&x| ((x.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
        .collect();
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&RATE.to_le_bytes());
    b.extend_from_slice(&(RATE * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    b
}

/// `seconds` of faint noise (far below the detector's floor) with a sharp click at each of
/// `clicks` (s).
fn audio_with_clicks(seconds: f64, clicks: &[f64]) -> Vec<f32> {
    let n = (seconds * RATE as f64).round() as usize;
    let mut x: Vec<f32> = (0..n)
        .map(|i| 1e-4 * (((i * 7919) % 201) as f32 / 100.0 - 1.0))
        .collect();
    for &c in clicks {
        let start = (c * RATE as f64).round() as usize;
        for (j, v) in x
            .iter_mut()
            .skip(start)
            .take(RATE as usize / 50)
            .enumerate()
        {
            let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
            *v = 0.8 * (-(j as f32) / (RATE as f32 / 400.0)).exp() * sign;
        }
    }
    x
}

fn write_wav(path: &Path, samples: &[f32]) {
    std::fs::write(path, wav_bytes(samples)).expect("write wav");
}

/// Deterministic garbage bytes.
fn garbage(n: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// An mp4 (h264 + aac, index at the end) of `seconds`, with `audio` and `video` tracks as asked.
fn mp4(path: &Path, seconds: u32, video: bool, audio: bool) {
    let mut args: Vec<String> = Vec::new();
    if video {
        args.extend(
            [
                "-f",
                "lavfi",
                "-i",
                &format!("testsrc=size={W}x{H}:rate=12:duration={seconds}"),
            ]
            .map(String::from),
        );
    }
    if audio {
        args.extend(
            [
                "-f",
                "lavfi",
                "-i",
                &format!("sine=frequency=440:sample_rate={RATE}:duration={seconds}"),
            ]
            .map(String::from),
        );
    }
    if video {
        args.extend(["-c:v", "libx264", "-preset", "ultrafast"].map(String::from));
    }
    if audio {
        args.extend(["-c:a", "aac"].map(String::from));
    }
    args.push(s(path).to_string());
    ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// 1. missing media

#[test]
fn missing_media_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.mp4");
    let out = run(&["replay", s(&missing)]);
    fails_with(&out, 3, &[s(&missing), "not found"]);

    // A missing --audio file is named too, not the (valid) video.
    let video = dir.path().join("v.y4m");
    write_video(&video, 12);
    let missing = dir.path().join("nowhere.wav");
    let out = run(&["replay", s(&video), "--audio", s(&missing)]);
    fails_with(&out, 3, &[s(&missing), "not found"]);

    // And a missing Y4M with a valid --audio.
    let audio = dir.path().join("a.wav");
    write_wav(&audio, &audio_with_clicks(1.0, &[]));
    let missing = dir.path().join("nowhere.y4m");
    let out = run(&["replay", s(&missing), "--audio", s(&audio)]);
    fails_with(&out, 3, &[s(&missing), "not found"]);
}

// ---------------------------------------------------------------------------------------------
// 2. empty files

#[test]
fn empty_media_files_are_refused_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("a.wav");
    write_wav(&audio, &audio_with_clicks(1.0, &[]));
    for name in ["empty.mp4", "empty.y4m"] {
        let empty = dir.path().join(name);
        std::fs::write(&empty, b"").unwrap();
        // as the only input (its own audio track)
        let out = run(&["replay", s(&empty)]);
        fails_with(&out, 3, &[s(&empty), "empty"]);
        // as the video, with a valid --audio
        let out = run(&["replay", s(&empty), "--audio", s(&audio)]);
        fails_with(&out, 3, &[s(&empty), "empty"]);
    }
    // A Y4M with its header but no frame.
    let headless = dir.path().join("no-frames.y4m");
    std::fs::write(&headless, y4m_bytes(0, falling_square)).unwrap();
    let out = run(&["replay", s(&headless), "--audio", s(&audio)]);
    fails_with(&out, 3, &[s(&headless), "no video frames"]);
    // An empty WAV as --audio.
    let video = dir.path().join("v.y4m");
    write_video(&video, 12);
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let out = run(&["replay", s(&video), "--audio", s(&empty)]);
    fails_with(&out, 3, &[s(&empty), "empty"]);
}

// ---------------------------------------------------------------------------------------------
// 3. truncated media

#[test]
fn y4m_cut_mid_frame_is_corrupt_or_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("a.wav");
    write_wav(&audio, &audio_with_clicks(2.0, &[]));
    let bytes = y4m_bytes(24, falling_square);
    let frame = 6 + W * H * 3 / 2;
    let header = bytes.len() - 24 * frame;
    // Cut 100 bytes into frame 10's pixels.
    let cut = dir.path().join("cut.y4m");
    std::fs::write(&cut, &bytes[..header + 10 * frame + 6 + 100]).unwrap();
    let out = run(&["replay", s(&cut), "--audio", s(&audio)]);
    fails_with(
        &out,
        3,
        &[s(&cut), "corrupt or truncated", "frame 10 is cut short"],
    );
    // Cut inside the header line.
    std::fs::write(&cut, &bytes[..10]).unwrap();
    let out = run(&["replay", s(&cut), "--audio", s(&audio)]);
    fails_with(&out, 3, &[s(&cut), "corrupt or truncated", "header"]);
}

#[test]
fn mp4_cut_in_half_is_corrupt_or_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    mp4(&clip, 2, true, true);
    let bytes = std::fs::read(&clip).unwrap();
    // Index at the end: ffprobe cannot read it at all.
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&["replay", s(&cut)]);
    fails_with(&out, 3, &[s(&cut), "corrupt or truncated"]);

    // Index first: ffmpeg decodes up to the cut, then reports the damage.
    let fast = dir.path().join("fast.mp4");
    ffmpeg(&[
        "-i",
        s(&clip),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        s(&fast),
    ]);
    let bytes = std::fs::read(&fast).unwrap();
    let cut = dir.path().join("fastcut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&["replay", s(&cut)]);
    fails_with(&out, 3, &[s(&cut), "corrupt or truncated"]);
}

// ---------------------------------------------------------------------------------------------
// 4. corrupt media

#[test]
fn random_bytes_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("noise.mp4");
    std::fs::write(&bad, garbage(8000)).unwrap();
    let out = run(&["replay", s(&bad)]);
    fails_with(&out, 3, &[s(&bad), "corrupt or truncated"]);

    let video = dir.path().join("v.y4m");
    write_video(&video, 12);
    let bad = dir.path().join("noise.wav");
    std::fs::write(&bad, garbage(8000)).unwrap();
    let out = run(&["replay", s(&video), "--audio", s(&bad)]);
    fails_with(&out, 3, &[s(&bad), "corrupt or truncated", "WAV"]);

    // Random bytes named .y4m (read natively): not a Y4M file.
    let bad = dir.path().join("noise.y4m");
    std::fs::write(&bad, garbage(8000)).unwrap();
    let audio = dir.path().join("a.wav");
    write_wav(&audio, &audio_with_clicks(1.0, &[]));
    let out = run(&["replay", s(&bad), "--audio", s(&audio)]);
    fails_with(
        &out,
        3,
        &[s(&bad), "corrupt or truncated", "not a Y4M file"],
    );
}

// ---------------------------------------------------------------------------------------------
// 5. missing tracks

#[test]
fn missing_audio_or_video_track_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let silent = dir.path().join("video-only.mp4");
    mp4(&silent, 1, true, false);
    let out = run(&["replay", s(&silent)]);
    fails_with(&out, 3, &[s(&silent), "no audio track"]);

    for name in ["audio-only.m4a", "audio-only.mp4"] {
        let sound = dir.path().join(name);
        mp4(&sound, 1, false, true);
        let out = run(&["replay", s(&sound)]);
        fails_with(&out, 3, &[s(&sound), "no video track"]);
    }

    // A Y4M has no audio track: without --audio it is refused naming the file.
    let video = dir.path().join("v.y4m");
    write_video(&video, 12);
    let out = run(&["replay", s(&video)]);
    fails_with(&out, 3, &[s(&video), "no audio track"]);
}

// ---------------------------------------------------------------------------------------------
// 6. zero-length audio

#[test]
fn zero_length_audio_counts_as_silence_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("v.y4m");
    write_video(&video, 24);
    let audio = dir.path().join("empty-data.wav");
    write_wav(&audio, &[]);
    let csv = dir.path().join("env.csv");
    let out = run(&[
        "replay",
        s(&video),
        "--audio",
        s(&audio),
        "--envelopes",
        s(&csv),
    ]);
    let err = succeeds(&out);
    assert!(
        err.contains("the audio has no samples"),
        "the warning says the audio is empty:\n{err}"
    );
    assert_eq!(
        err.matches("WARN").count(),
        1,
        "warned once, nothing else:\n{err}"
    );
    let ev = events(&out);
    assert!(
        kinds(&ev).iter().all(|&k| k == "silent_impact"),
        "nothing was heard: {ev:#?}"
    );
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 24);
    assert!(rows.iter().all(|r| r[3] == 0.0 && r[4] == 0.0), "{rows:?}");
}

// ---------------------------------------------------------------------------------------------
// 7. digital silence

#[test]
fn all_zero_audio_gives_no_sound_events_and_no_nan() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("v.y4m");
    write_video(&video, 36);
    let audio = dir.path().join("zeros.wav");
    write_wav(&audio, &vec![0.0; 3 * RATE as usize]);
    let csv = dir.path().join("env.csv");
    let out = run(&[
        "replay",
        s(&video),
        "--audio",
        s(&audio),
        "--envelopes",
        s(&csv),
    ]);
    let err = succeeds(&out);
    assert!(
        !err.contains("audio ends"),
        "same length as the video:\n{err}"
    );
    let ev = events(&out);
    assert!(
        kinds(&ev).iter().all(|&k| k == "silent_impact"),
        "nothing was heard: {ev:#?}"
    );
    for e in &ev {
        let text = e.to_string();
        assert!(!text.contains("NaN") && !text.contains("null"), "{text}");
    }
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 36);
    for r in &rows {
        assert_eq!(r[3], 0.0, "observed is 0 in silence: {r:?}");
        assert_eq!(r[4], 0.0, "observed_raw is 0 in silence: {r:?}");
        assert!((0.0..=1.0).contains(&r[2]), "{r:?}");
    }
    // The square does move: the prediction is not all zero (the CSV is really the run's).
    assert!(rows.iter().any(|r| r[2] > 0.5), "{rows:?}");
}

// ---------------------------------------------------------------------------------------------
// 8. video shorter than one model window

#[test]
fn video_shorter_than_a_window_is_padded_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 1.5 s = 18 frames; the window is 48. The square stops dead at 0.75 s, when the click is.
    let video = dir.path().join("short.y4m");
    write_video(&video, 18);
    let audio = dir.path().join("click.wav");
    write_wav(&audio, &audio_with_clicks(1.5, &[0.75]));
    let csv = dir.path().join("env.csv");
    for hop in ["6", "48"] {
        let out = run(&[
            "replay",
            s(&video),
            "--audio",
            s(&audio),
            "--envelopes",
            s(&csv),
            "--hop",
            hop,
        ]);
        let err = succeeds(&out);
        assert!(!err.contains("audio ends"), "{err}");
        let rows = csv_rows(&csv);
        assert_eq!(rows.len(), 18, "hop {hop}");
        for (k, r) in rows.iter().enumerate() {
            assert_eq!(r[0], k as f64);
            assert!((r[1] - k as f64 / 12.0).abs() < 1e-6, "{r:?}");
            assert!((0.0..=1.0).contains(&r[2]) && (0.0..=1.0).contains(&r[3]));
        }
        // The click is the loudest frame, the stop the highest prediction.
        let argmax = |c: usize| {
            rows.iter()
                .max_by(|a, b| a[c].total_cmp(&b[c]))
                .map(|r| r[0] as u64)
                .unwrap()
        };
        assert_eq!(argmax(4), 9, "hop {hop}: {rows:?}");
        assert_eq!(argmax(2), 9, "hop {hop}: {rows:?}");

        let ev = events(&out);
        for e in &ev {
            let t = e["t"].as_f64().unwrap();
            let frame = e["frame"].as_u64().unwrap();
            assert!((0.0..1.5).contains(&t), "no event in the padding: {e}");
            assert!(frame <= 17, "{e}");
            for key in ["visual_frame", "audio_frame"] {
                if let Some(f) = e.get(key) {
                    assert!(f.as_u64().unwrap() <= 17, "{e}");
                }
            }
        }
        // The one impact: seen and heard at 0.75 s.
        assert_eq!(kinds(&ev), ["impact"], "hop {hop}: {ev:#?}");
        let t = ev[0]["t"].as_f64().unwrap();
        assert!((t - 0.75).abs() < 0.005, "hop {hop}: impact at {t}");
        assert_eq!(ev[0]["frame"], 9);
    }
}

// ---------------------------------------------------------------------------------------------
// 9. mismatched durations

#[test]
fn audio_shorter_than_video_is_silence_after_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("4s.y4m");
    write_video(&video, 48);
    let audio = dir.path().join("2s.wav");
    write_wav(&audio, &audio_with_clicks(2.0, &[]));
    let csv = dir.path().join("env.csv");
    let out = run(&[
        "replay",
        s(&video),
        "--audio",
        s(&audio),
        "--envelopes",
        s(&csv),
    ]);
    let err = succeeds(&out);
    assert!(
        err.contains("the audio ends before the video, at 2.00 s"),
        "warned where the audio ends:\n{err}"
    );
    assert_eq!(err.matches("audio ends").count(), 1, "warned once:\n{err}");
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 48);
    // Frame 24's interval (frame-mean: 1.96 to 2.04 s) is half heard; later ones are silent.
    assert!(rows[25..].iter().all(|r| r[4] == 0.0), "silent after 2 s");
    assert!(rows[..25].iter().all(|r| r[4] > 0.0), "the noise is heard");
    let ev = events(&out);
    assert!(
        !kinds(&ev).contains(&"unseen_sound"),
        "the audio's end is not a sound: {ev:#?}"
    );
}

#[test]
fn audio_longer_than_video_is_ignored_after_the_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("2s.y4m");
    write_video(&video, 24);
    let audio = dir.path().join("4s.wav");
    // A click after the video's end must not be reported.
    write_wav(&audio, &audio_with_clicks(4.0, &[3.0]));
    let csv = dir.path().join("env.csv");
    let out = run(&[
        "replay",
        s(&video),
        "--audio",
        s(&audio),
        "--envelopes",
        s(&csv),
    ]);
    let err = succeeds(&out);
    assert!(!err.contains("audio ends"), "{err}");
    assert_eq!(csv_rows(&csv).len(), 24);
    for e in events(&out) {
        assert!(e["t"].as_f64().unwrap() < 2.0, "after the video's end: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// 10. ffmpeg missing

#[test]
fn missing_ffmpeg_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    mp4(&clip, 1, true, true);
    let out = bin()
        .args(["replay", s(&clip)])
        .env("IMPACTD_FFMPEG", "/nonexistent/ffmpeg")
        .env("IMPACTD_FFPROBE", "/nonexistent/ffprobe")
        .output()
        .unwrap();
    fails_with(
        &out,
        3,
        // names the program it tried (ffprobe runs first) and the variables that choose it
        &[
            s(&clip),
            "/nonexistent/ffprobe",
            "not found",
            "IMPACTD_FFMPEG",
            "apt-get install ffmpeg",
        ],
    );
    // Y4M + WAV need no ffmpeg at all.
    let video = dir.path().join("v.y4m");
    write_video(&video, 12);
    let audio = dir.path().join("a.wav");
    write_wav(&audio, &audio_with_clicks(1.0, &[]));
    let out = bin()
        .args(["replay", s(&video), "--audio", s(&audio)])
        .env("IMPACTD_FFMPEG", "/nonexistent/ffmpeg")
        .env("IMPACTD_FFPROBE", "/nonexistent/ffprobe")
        .output()
        .unwrap();
    succeeds(&out);
}

// ---------------------------------------------------------------------------------------------
// 11. Y4M on stdin

#[test]
fn stdin_without_audio_is_refused() {
    let out = bin()
        .args(["replay", "-"])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    // a usage error: the command line lacks --audio
    fails_with(&out, 2, &["stdin", "--audio"]);
}

/// Runs impactd with `input` on its stdin (written by a thread, so a full pipe cannot deadlock).
fn run_with_stdin(args: &[&str], input: Vec<u8>) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // impactd may stop reading early on an error; a broken pipe here is not the test's concern.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn y4m_on_stdin_with_audio_replays() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("click.wav");
    write_wav(&audio, &audio_with_clicks(2.0, &[0.75]));
    let csv = dir.path().join("env.csv");
    let out = run_with_stdin(
        &["replay", "-", "--audio", s(&audio), "--envelopes", s(&csv)],
        y4m_bytes(24, falling_square),
    );
    succeeds(&out);
    assert_eq!(csv_rows(&csv).len(), 24);
    assert_eq!(kinds(&events(&out)), ["impact"]);

    // A stream cut mid-frame on stdin is named `-`.
    let bytes = y4m_bytes(24, falling_square);
    let out = run_with_stdin(
        &["replay", "-", "--audio", s(&audio)],
        bytes[..bytes.len() - 500].to_vec(),
    );
    fails_with(&out, 3, &["-: corrupt or truncated", "cut short"]);
}

// ---------------------------------------------------------------------------------------------
// 13. unwritable outputs

#[test]
fn events_or_envelopes_in_a_missing_directory_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("v.y4m");
    write_video(&video, 12);
    let audio = dir.path().join("a.wav");
    write_wav(&audio, &audio_with_clicks(1.0, &[]));
    let target = dir.path().join("no-such-dir").join("out.jsonl");
    for flag in ["--events", "--envelopes"] {
        let out = run(&["replay", s(&video), "--audio", s(&audio), flag, s(&target)]);
        no_panic(&out);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flag}: a usage error\n{err}");
        assert!(err.contains(s(&target)), "{flag}: names the path:\n{err}");
        assert!(
            err.contains("No such file or directory"),
            "{flag}: says why:\n{err}"
        );
        assert!(out.stdout.is_empty(), "{flag}: nothing replayed");
    }
}

// ---------------------------------------------------------------------------------------------
// 14. closed stdout

#[test]
fn closed_stdout_is_an_error_not_a_panic() {
    // The built-in scene has events from its first seconds on; the reader is gone before any.
    let mut child = bin()
        .args(["replay"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    eprintln!("--- exit {:?}\n{err}", status.code());
    assert!(!err.contains("panicked"), "impactd panicked:\n{err}");
    assert_eq!(status.code(), Some(1), "a runtime failure:\n{err}");
    assert!(err.contains("writing events"), "{err}");
    assert_eq!(err.matches("Broken pipe").count(), 1, "said once: {err}");
}

#[test]
fn closed_stderr_keeps_the_exit_code() {
    // The error message cannot be written, but the exit code still says what went wrong (a
    // panic in eprintln! would make it 101).
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.mp4");
    let mut child = bin()
        .args(["replay", s(&missing)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(3));
}

// ---------------------------------------------------------------------------------------------
// the helpers themselves

#[test]
fn generated_inputs_are_what_the_tests_assume() {
    // Through ffprobe: the Y4M is 64x48 at 12 fps with the frames asked for, the WAV 16 kHz mono.
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("v.y4m");
    write_video(&video, 18);
    let audio = dir.path().join("a.wav");
    write_wav(&audio, &audio_with_clicks(1.5, &[0.75]));
    let probe = |p: &PathBuf, entries: &str| {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-show_entries", entries])
            .args(["-of", "csv=p=0", s(p)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        probe(&video, "stream=width,height,r_frame_rate,nb_read_frames"),
        "64,48,12/1,18"
    );
    assert_eq!(
        probe(&audio, "stream=sample_rate,channels,duration"),
        "16000,1,1.500000"
    );
}
