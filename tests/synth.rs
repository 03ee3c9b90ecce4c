//! `impactd synth`: determinism, labels that agree with the media, the crate's own readers on the
//! files, `impactd eval` and `replay --envelopes` on generated scenes, and bad arguments.
//! Scenes are small and short: the crate's own code is not optimised in test builds.

use std::path::Path;
use std::process::{Command, Output};

use impactd::envelope::{EnvelopeMode, envelope_batch};
use impactd::media::PixelFormat;
use impactd::sources::wav::WavSource;
use impactd::sources::y4m::Y4mSource;
use impactd::sources::{AudioSource, VideoSource};
use impactd::synth::labels::Labels;
use impactd::synth::scene::{self, Mic};
use impactd::synth::{SynthOptions, generate};

fn impactd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_impactd"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .unwrap()
}

fn synth(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["synth", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    impactd(&args)
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn read_wav(path: &Path) -> Vec<f32> {
    let mut src = WavSource::open(path).unwrap();
    assert_eq!(src.info().rate, 44_100);
    let mut v = Vec::new();
    while let Some(b) = src.next_block().unwrap() {
        v.extend_from_slice(&b.samples);
    }
    v
}

fn labels(path: &Path) -> Labels {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn same_seed_same_bytes_whatever_the_jobs_and_count() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let small = [
        "--width",
        "32",
        "--height",
        "24",
        "--duration",
        "2",
        "--seed",
        "41",
    ];
    ok(&synth(
        a.path(),
        &[&small[..], &["--count", "4", "--jobs", "1"]].concat(),
    ));
    ok(&synth(
        b.path(),
        &[&small[..], &["--count", "4", "--jobs", "2"]].concat(),
    ));
    let fa = files(a.path());
    assert_eq!(
        fa.len(),
        4 * 3 + 1,
        "{:?}",
        fa.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(
        fa == files(b.path()),
        "--jobs 1 and --jobs 2 wrote different bytes"
    );
    // Scene 2 of a run from seed 41 is scene 0 of a run from seed 43.
    ok(&synth(
        c.path(),
        &[
            "--width",
            "32",
            "--height",
            "24",
            "--duration",
            "2",
            "--seed",
            "43",
            "--count",
            "1",
        ],
    ));
    for ext in ["y4m", "wav"] {
        let x = std::fs::read(a.path().join(format!("scene-000002.{ext}"))).unwrap();
        let y = std::fs::read(c.path().join(format!("scene-000000.{ext}"))).unwrap();
        assert!(x == y, "{ext} differs");
    }
}

#[test]
fn labels_agree_with_the_media() {
    let dir = tempfile::tempdir().unwrap();
    ok(&synth(
        dir.path(),
        &[
            "--width",
            "32",
            "--height",
            "24",
            "--duration",
            "4",
            "--count",
            "12",
            "--seed",
            "100",
        ],
    ));
    let mut checked = 0;
    for i in 0..12 {
        let stem = format!("scene-{i:06}");
        let l = labels(&dir.path().join(format!("{stem}.json")));
        assert_eq!(l.version, 1);
        assert_eq!(l.seed, 100 + i);
        assert_eq!(l.frames, 48);
        assert_eq!(l.envelope.full.seed.len(), 48);
        assert_eq!(l.envelope.impacts.frame_mean.len(), 48);
        let wav = read_wav(&dir.path().join(format!("{stem}.wav")));
        assert_eq!(wav.len(), 4 * 44_100);
        // The label's envelope is the WAV's, as the crate's reader and envelope compute it.
        for (mode, ours) in [
            (EnvelopeMode::Seed, &l.envelope.full.seed),
            (EnvelopeMode::FrameMean, &l.envelope.full.frame_mean),
        ] {
            let e = envelope_batch(mode, 44_100, &wav);
            assert_eq!(&e[..48], &ours[..], "{stem} {mode}");
        }
        let e = &l.envelope.full.frame_mean;
        for imp in l.impacts.iter().filter(|i| i.visible && i.audible) {
            let f = (imp.t * 12.0).round() as usize;
            let peak = (f.saturating_sub(1)..=f + 1)
                .filter(|&k| k >= 1 && k + 1 < e.len())
                .any(|k| e[k] >= e[k - 1] && e[k] >= e[k + 1]);
            assert!(
                peak,
                "{stem}: no envelope peak near the audible impact at {} (frame {f}): {:?}",
                imp.t,
                &e[f.saturating_sub(3)..(f + 3).min(e.len())]
            );
            checked += 1;
        }
        for imp in &l.impacts {
            assert!(imp.t >= 0.0 && imp.t < 4.0);
            assert!(
                ["drop", "hit", "collision"].contains(&imp.class.as_str()),
                "{}",
                imp.class
            );
            assert!(scene::SOUNDS.contains(&imp.sound.as_str()), "{}", imp.sound);
            assert!(
                scene::KINDS.contains(&imp.scenario.as_str()),
                "{}",
                imp.scenario
            );
            assert!(imp.speed > impactd::synth::physics::IMPACT_SPEED);
        }
        if l.mic != "ok" {
            assert!(l.impacts.iter().all(|i| !i.audible));
        }
        // The clean target holds only visible impact sounds: zero without them.
        if !l.impacts.iter().any(|i| i.visible) {
            assert!(l.envelope.impacts.frame_mean.iter().all(|&v| v == 0.0));
        }
    }
    assert!(
        checked >= 5,
        "only {checked} audible visible impacts in 12 scenes"
    );
}

#[test]
fn a_dead_mic_writes_silence_and_hears_nothing() {
    let menu = SynthOptions {
        width: 32,
        height: 24,
        duration: 3.0,
        ..SynthOptions::default()
    }
    .check()
    .unwrap();
    let seed = (0..5000u64)
        .find(|&s| scene::build(s, &menu).sound.mic == Mic::Dead)
        .expect("about 2.5 % of scenes have a dead mic");
    let opts = SynthOptions {
        width: 32,
        height: 24,
        duration: 3.0,
        ..SynthOptions::default()
    };
    let s = generate(seed, &opts).unwrap();
    assert_eq!(s.labels.mic, "dead");
    assert!(s.audio.iter().all(|&v| v == 0));
    assert!(s.labels.envelope.full.frame_mean.iter().all(|&v| v == 0.0));
    assert!(s.labels.impacts.iter().all(|i| !i.audible));
    assert!(s.labels.hits().is_empty());
}

#[test]
fn y4m_reads_back_with_the_right_frame_count_at_any_rate() {
    for (fps, frames, header) in [
        ("12", 24, "F12:1"),
        ("15", 30, "F15:1"),
        ("25", 50, "F25:1"),
        ("30", 60, "F30:1"),
        ("29.97", 60, "F30000:1001"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        ok(&synth(
            dir.path(),
            &[
                "--width",
                "32",
                "--height",
                "24",
                "--duration",
                "2",
                "--count",
                "1",
                "--fps",
                fps,
            ],
        ));
        let path = dir.path().join("scene-000000.y4m");
        let head = std::fs::read(&path).unwrap();
        let line = String::from_utf8_lossy(&head[..head.iter().position(|&b| b == b'\n').unwrap()])
            .into_owned();
        assert!(
            line.contains(header) && line.contains("C420jpeg") && line.contains("W32 H24"),
            "{line}"
        );
        let mut src = Y4mSource::open(&path, PixelFormat::Gray8).unwrap();
        let mut n = 0;
        let mut last = -1;
        while let Some(f) = src.next_frame().unwrap() {
            assert!(f.pts_ns > last);
            last = f.pts_ns;
            assert_eq!((f.image.width, f.image.height), (32, 24));
            n += 1;
        }
        assert_eq!(n, frames, "{fps} fps");
        assert_eq!(
            labels(&dir.path().join("scene-000000.json")).video_frames,
            frames
        );
    }
}

#[test]
fn replay_reports_the_labels_envelope_and_eval_runs() {
    let dir = tempfile::tempdir().unwrap();
    ok(&synth(
        dir.path(),
        &[
            "--width",
            "64",
            "--height",
            "48",
            "--duration",
            "4",
            "--count",
            "3",
            "--seed",
            "7",
        ],
    ));
    let l = labels(&dir.path().join("scene-000000.json"));
    for (mode, ours) in [
        ("frame-mean", &l.envelope.full.frame_mean),
        ("seed", &l.envelope.full.seed),
    ] {
        let csv = dir.path().join(format!("env-{mode}.csv"));
        let o = impactd(&[
            "replay",
            dir.path().join("scene-000000.y4m").to_str().unwrap(),
            "--audio",
            dir.path().join("scene-000000.wav").to_str().unwrap(),
            "--envelope",
            mode,
            "--envelopes",
            csv.to_str().unwrap(),
        ]);
        ok(&o);
        let text = std::fs::read_to_string(&csv).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("frame,t,predicted,observed,observed_raw")
        );
        let raw: Vec<f32> = lines
            .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(raw.len(), ours.len(), "{mode}");
        for (k, (a, b)) in raw.iter().zip(ours.iter()).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
                "{mode} frame {k}: replay {a}, label {b}"
            );
        }
    }
    let o = impactd(&[
        "eval",
        dir.path().join("manifest.toml").to_str().unwrap(),
        "--json",
        "-",
    ]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["clips"].as_array().unwrap().len(), 3, "{v}");
}

#[test]
fn bad_arguments_are_named_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("scenes");
    let cases: [(Vec<&str>, &str); 6] = [
        (vec!["--count", "0"], "--count"),
        (vec!["--count", "1", "--fps", "0"], "--fps"),
        (vec!["--count", "1", "--width", "8"], "--width"),
        (vec!["--count", "1", "--duration=0"], "--duration"),
        (vec!["--count", "1", "--jobs", "0"], "--jobs"),
        (
            vec!["--count", "1", "--kinds", "drop_onto,juggle"],
            "juggle",
        ),
    ];
    for (args, needle) in cases {
        let o = synth(&dir.path().join("out"), &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let o = synth(&under_file, &["--count", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("output folder") && err.contains("a-file"),
        "{err}"
    );
    assert!(
        !dir.path().join("out").exists()
            || std::fs::read_dir(dir.path().join("out"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn kinds_restrict_the_scenarios() {
    let opts = SynthOptions {
        width: 32,
        height: 24,
        duration: 3.0,
        kinds: vec!["stick_hit".into()],
        ..SynthOptions::default()
    };
    let mut hits = 0;
    for seed in 0..6 {
        let s = generate(seed, &opts).unwrap();
        assert!(s.labels.scenarios.iter().all(|x| x.kind == "stick_hit"));
        hits += s.labels.impacts.iter().filter(|i| i.class == "hit").count();
    }
    assert!(hits > 0);
}

#[test]
fn demo_plays_scenes_in_real_time_and_saves_them() {
    // A seed whose scene has a visible, audible impact, so the pipeline has something to report.
    let opts = SynthOptions {
        duration: 3.0,
        fps: 30.0,
        ..SynthOptions::default()
    };
    let seed = (0..50u64)
        .find(|&s| !generate(s, &opts).unwrap().labels.hits().is_empty())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("saved");
    let started = std::time::Instant::now();
    let o = impactd(&[
        "demo",
        "--scenes",
        "1",
        "--duration",
        "3",
        "--seed",
        &seed.to_string(),
        "--save",
        save.to_str().unwrap(),
    ]);
    let elapsed = started.elapsed().as_secs_f64();
    ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        !events.is_empty(),
        "no events; stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for line in stdout.lines() {
        // The event's own line, `scene` appended: field order and rounded values as replay
        // prints them (not 0.5299999713897705 for an f32 0.53).
        assert!(line.ends_with(",\"scene\":1}"), "{line}");
        let conf = line.split("\"confidence\":").nth(1).unwrap();
        let conf = &conf[..conf.find([',', '}']).unwrap()];
        assert!(conf.len() <= 5, "confidence printed as {conf}: {line}");
    }
    for e in &events {
        assert_eq!(e["scene"], 1, "{e}");
        assert!(
            ["impact", "unseen_sound", "silent_impact"].contains(&e["kind"].as_str().unwrap()),
            "{e}"
        );
    }
    // Paced like a live stream: not faster than the media.
    assert!(elapsed >= 2.5, "3 s of media played in {elapsed:.2} s");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("scene 1/1 (seed {seed}")),
        "{stderr}"
    );
    // The saved scene is the one generate() makes (compared as text: serde_json's float parsing
    // may differ from the printed value in the last bit).
    let saved = std::fs::read_to_string(save.join("scene-000000.json")).unwrap();
    let made = serde_json::to_string(&generate(seed, &opts).unwrap().labels).unwrap();
    assert_eq!(saved.trim_end(), made);
    assert!(save.join("scene-000000.y4m").exists() && save.join("scene-000000.wav").exists());
}

#[test]
fn sliding_and_placing_gently_make_no_impact() {
    let opts = SynthOptions {
        width: 16,
        height: 16,
        duration: 6.0,
        kinds: vec!["slide".into(), "place".into()],
        ..SynthOptions::default()
    };
    let mut scenarios = 0;
    for seed in 0..10 {
        let s = generate(seed, &opts).unwrap();
        scenarios += s.labels.scenarios.len();
        assert!(
            s.labels.impacts.is_empty(),
            "seed {seed}: {:?}",
            s.labels.impacts
        );
        assert!(
            s.labels
                .envelope
                .impacts
                .frame_mean
                .iter()
                .all(|&v| v == 0.0)
        );
    }
    assert!(scenarios >= 10, "{scenarios}");
}
