//! Audio through the real ALSA path with no sound card: ALSA's `file` plugin serves a raw PCM
//! file as the capture device `testmic`, paced in real time by a PulseAudio null source that this
//! test starts (`pulseaudio`, `libasound2-plugins`; CI installs both). ALSA -> cpal -> ring ->
//! aligner -> envelope must give the batch envelope of the file, and its impacts, paired with
//! the matching video on `--video -`, must come out as `impact` events.
//!
//! This test fails (it does not skip) when pulseaudio is missing.

mod live_common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use impactd::envelope::{EnvelopeMode, envelope_batch};
use live_common::*;

struct Pulse {
    child: Child,
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user-mode PulseAudio with only a 44.1-kHz mono null source, its socket under `dir`.
fn start_pulseaudio(dir: &Path) -> Pulse {
    let run = dir.join("pulse");
    std::fs::create_dir_all(&run).unwrap();
    let child = Command::new("pulseaudio")
        .args([
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "-L",
            "module-native-protocol-unix",
            "-L",
            "module-null-source source_name=silence rate=44100 channels=1 format=s16le max_latency_msec=20",
        ])
        .env("PULSE_RUNTIME_PATH", &run)
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("pulseaudio.log")).unwrap())
        .spawn()
        .expect("pulseaudio must be installed for this test (Debian: apt-get install pulseaudio libasound2-plugins)");
    let pulse = Pulse { child };
    let socket = run.join("native");
    let t0 = Instant::now();
    while !socket.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "pulseaudio did not start: {}",
            std::fs::read_to_string(dir.join("pulseaudio.log")).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let st = Command::new("pactl")
        .args(["set-default-source", "silence"])
        .env("PULSE_RUNTIME_PATH", &run)
        .env("HOME", dir)
        .status()
        .expect("pactl (pulseaudio-utils) must be installed");
    assert!(st.success(), "pactl set-default-source failed");
    pulse
}

fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let ma = a.iter().map(|&x| x as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&x| x as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt().max(1e-30)
}

#[test]
fn the_scene_through_alsa_gives_the_batch_envelope_and_its_impacts() {
    let dir = tempfile::tempdir().unwrap();
    let _pulse = start_pulseaudio(dir.path());
    let raw = dir.path().join("scene.raw");
    let samples = scene_raw(&raw, 7.0);
    let conf = dir.path().join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            "pcm.testmic {{\n  type file\n  slave.pcm \"pulse\"\n  file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n  hint {{ show on description \"Test mic\" }}\n}}\n",
            raw.display()
        ),
    )
    .unwrap();
    let alsa_path = format!("/usr/share/alsa/alsa.conf:{}", conf.display());
    let pulse_run = dir.path().join("pulse");
    let sock = NotifySocket::bind(dir.path());
    let csv = dir.path().join("env.csv");
    let mut child = spawn_run(
        dir.path(),
        &[
            "--video",
            "-",
            "--audio-device",
            "testmic",
            "--envelopes",
            csv.to_str().unwrap(),
        ],
        &[
            ("NOTIFY_SOCKET", sock.path.to_str().unwrap()),
            ("ALSA_CONFIG_PATH", &alsa_path),
            ("PULSE_RUNTIME_PATH", pulse_run.to_str().unwrap()),
            ("HOME", dir.path().to_str().unwrap()),
        ],
    );
    let out = collect_stdout(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    y4m_header(&mut stdin).unwrap();
    sock.wait_for("READY=1", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no READY=1: {}", stderr_of(dir.path())));
    y4m_frames_paced(&mut stdin, 0, 7 * 30, Instant::now()).unwrap();
    thread::sleep(Duration::from_millis(700));
    let (status, _) = sigterm(&mut child);
    drop(stdin);
    let stderr = stderr_of(dir.path());
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(
        stderr.contains("audio: alsa:testmic 44100 Hz i16"),
        "{stderr}"
    );

    // The live observed_raw column against the batch envelope of the file delayed by d, for
    // the d (1-ms steps) that fits best: the capture latency, which must be plausible.
    let text = std::fs::read_to_string(&csv).unwrap();
    let live: Vec<f32> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap().parse().unwrap())
        .collect();
    assert!(live.len() >= 84, "{} frames in the CSV", live.len());
    let rate = 44_100usize;
    let frames = 80;
    let (best_d, best_r) = (0..300usize)
        .map(|ms| {
            let mut delayed = vec![0.0f32; ms * rate / 1000];
            delayed.extend_from_slice(&samples);
            let batch = envelope_batch(EnvelopeMode::FrameMean, rate as u32, &delayed);
            (ms, pearson(&live[..frames], &batch[..frames]))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    eprintln!("capture latency fit: {best_d} ms, r = {best_r:.4}");
    assert!(best_r >= 0.98, "envelope r = {best_r} at {best_d} ms");
    assert!(best_d < 250, "capture offset {best_d} ms");

    // The two impacts of the first 7 s, as replay finds them, shifted by the capture offset.
    let ev = events(&out.join().unwrap());
    let impacts: Vec<f64> = ev
        .iter()
        .filter(|e| e["kind"] == "impact")
        .map(|e| e["t"].as_f64().unwrap())
        .collect();
    let d = best_d as f64 / 1000.0;
    for truth in [1.369, 5.569] {
        assert!(
            impacts.iter().any(|t| (t - truth - d).abs() < 0.1),
            "no impact at {truth} + {d} s: {ev:?}\n{stderr}"
        );
    }
}
