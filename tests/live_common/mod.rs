//! Helpers for the tests of `impactd run` (tests/live.rs, tests/service.rs, tests/alsa.rs): the
//! real binary, a real NOTIFY_SOCKET, the built-in scene written as a live Y4M pipe or a WAV.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use impactd::media::PixelFormat;
use impactd::sources::synthetic::Scene;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_impactd")
}

/// A datagram socket standing in for systemd's notify socket; collects what the daemon sends,
/// with the time it arrived.
pub struct NotifySocket {
    pub path: PathBuf,
    pub messages: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let m = Arc::clone(&messages);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                m.lock().unwrap().push((Instant::now(), text));
            }
        });
        NotifySocket { path, messages }
    }

    /// Lines received between `from` and `to` (each datagram may hold several lines).
    pub fn lines_between(&self, from: Instant, to: Instant) -> Vec<String> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .flat_map(|(_, m)| m.lines().map(String::from).collect::<Vec<_>>())
            .collect()
    }

    pub fn all_lines(&self) -> Vec<String> {
        self.lines_between(
            Instant::now() - Duration::from_secs(3600),
            Instant::now() + Duration::from_secs(1),
        )
    }

    /// Waits up to `timeout` for a line equal to `line`; returns when it came.
    pub fn wait_for(&self, line: &str, timeout: Duration) -> Option<Instant> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some((t, _)) = self
                .messages
                .lock()
                .unwrap()
                .iter()
                .find(|(_, m)| m.lines().any(|l| l == line))
            {
                return Some(*t);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

#[path = "../common/mod.rs"]
mod common;
use common::BASELINE;

/// `impactd run ARGS` with stdin piped, stdout piped, stderr into `dir/stderr.log`.
pub fn spawn_run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("run")
        .env("IMPACTD_MODEL", BASELINE)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start impactd run")
}

pub fn stderr_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
}

/// Sends SIGTERM and waits up to 10 s; returns the status and how long the exit took.
pub fn sigterm(child: &mut Child) -> (ExitStatus, Duration) {
    let t0 = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return (s, t0.elapsed());
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("impactd did not exit within 10 s of SIGTERM");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Reads the child's stdout to the end on a thread; join it after the child exits.
pub fn collect_stdout(child: &mut Child) -> thread::JoinHandle<String> {
    let mut out = child.stdout.take().unwrap();
    thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    })
}

/// Parsed event lines.
pub fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect()
}

/// The scene's soundtrack as a 16-bit WAV, its first `seconds`.
pub fn scene_wav(path: &Path, seconds: f64) {
    let scene = Scene::default();
    let audio = scene.render_audio();
    let n = ((seconds * scene.rate as f64) as usize).min(audio.len());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: scene.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in &audio[..n] {
        w.write_sample((s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// The scene's soundtrack as raw s16le mono (for ALSA's file plugin), its first `seconds`.
pub fn scene_raw(path: &Path, seconds: f64) -> Vec<f32> {
    let scene = Scene::default();
    let audio = scene.render_audio();
    let n = ((seconds * scene.rate as f64) as usize).min(audio.len());
    let mut bytes = Vec::with_capacity(n * 2);
    let mut used = Vec::with_capacity(n);
    for &s in &audio[..n] {
        let v = (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16;
        bytes.extend_from_slice(&v.to_le_bytes());
        used.push(v as f32 / 32768.0);
    }
    std::fs::write(path, bytes).unwrap();
    used
}

/// Writes the Y4M header of the scene (mono 4:2:0 as C420jpeg with neutral chroma).
pub fn y4m_header(out: &mut impl Write) -> std::io::Result<()> {
    let s = Scene::default();
    writeln!(
        out,
        "YUV4MPEG2 W{} H{} F30:1 Ip A1:1 C420jpeg",
        s.width, s.height
    )?;
    out.flush()
}

/// Writes scene frames `from..to` (30 fps) to a live pipe, each at its time after `start`.
pub fn y4m_frames_paced(
    out: &mut ChildStdin,
    from: u64,
    to: u64,
    start: Instant,
) -> std::io::Result<()> {
    let s = Scene::default();
    let chroma = vec![128u8; (s.width as usize / 2) * (s.height as usize / 2) * 2];
    for i in from..to {
        let t = i as f64 / s.fps;
        let due = start + Duration::from_secs_f64(t);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            thread::sleep(w);
        }
        let img = s.render_frame(t, i, PixelFormat::Gray8);
        out.write_all(b"FRAME\n")?;
        out.write_all(&img.data)?;
        out.write_all(&chroma)?;
        out.flush()?;
    }
    Ok(())
}

/// The events of `impactd replay` of the built-in scene (the reference).
pub fn replay_scene_events() -> Vec<serde_json::Value> {
    let out = Command::new(bin())
        .arg("replay")
        .env("IMPACTD_MODEL", BASELINE)
        .output()
        .unwrap();
    assert!(out.status.success());
    events(&String::from_utf8(out.stdout).unwrap())
}
