//! Evidence PNGs: drawn where the data says (pixels checked), written by a replay of the
//! built-in scene, served over HTTP, trimmed to the size limit, and skipped (counted, events
//! still flowing) when the disk is full.

mod sinks_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use impactd::detector::Kind;
use impactd::events::{Event, FrameRow};
use impactd::media::{Image, PixelFormat};
use impactd::sinks::evidence::{self, HEIGHT, MARKER, OBSERVED, PREDICTED, WIDTH};
use sinks_common::{Daemon, SCENE_EVENTS, events};

/// Decodes an RGB PNG: (width, height, pixels).
fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; dec.output_buffer_size().unwrap()];
    let info = dec.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn pixel(img: &(u32, u32, Vec<u8>), x: i32, y: i32) -> [u8; 3] {
    let i = (y as usize * img.0 as usize + x as usize) * 3;
    [img.2[i], img.2[i + 1], img.2[i + 2]]
}

/// Whether a pixel within `r` of (x, y) is `want` (to within anti-aliasing).
fn near(img: &(u32, u32, Vec<u8>), (x, y): (i32, i32), r: i32, want: [u8; 3]) -> bool {
    (-r..=r).any(|dy| {
        (-r..=r).any(|dx| {
            let p = pixel(img, x + dx, y + dy);
            p.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 40)
        })
    })
}

fn rgb(c: plotters::style::RGBColor) -> [u8; 3] {
    [c.0, c.1, c.2]
}

#[test]
fn the_curves_the_marker_and_the_frame_are_where_the_data_says() {
    // 10 s of rows: predicted a slow ramp, observed a single spike at frame 60 (5 s).
    let rows: Vec<FrameRow> = (0..120u64)
        .map(|k| FrameRow {
            frame: k,
            t: k as f64 / 12.0,
            predicted: (k as f32 / 120.0),
            observed: if k == 60 { 1.0 } else { 0.1 },
            observed_raw: 0.0,
        })
        .collect();
    let event = Event {
        id: 7,
        kind: Kind::Impact,
        t: 5.0,
        frame: 60,
        confidence: 0.9,
        predicted: 0.5,
        observed: 1.0,
        ts: "2026-01-01T00:00:05.000Z".into(),
        class: None,
        class_confidence: None,
        visual_frame: Some(60),
        audio_frame: Some(60),
        observed_raw: 0.1,
        attack: None,
    };
    let green = Image::new(64, 48, PixelFormat::Rgb8, [20u8, 200, 20].repeat(64 * 48));
    let (png, g) = evidence::render(&event, &rows, Some(&green)).unwrap();
    let img = decode(&png);
    assert_eq!((img.0, img.1), (WIDTH, HEIGHT));

    // Shown: 3 s before to 1.5 s after the event.
    assert_eq!(g.t, 2.0..6.5);
    for k in [30u64, 45, 55, 70, 75] {
        let r = &rows[k as usize];
        let at = g.pixel(r.t, r.predicted as f64);
        assert!(
            near(&img, at, 2, rgb(PREDICTED)),
            "predicted curve at frame {k}, pixel {at:?}"
        );
    }
    // The observed spike's top, and its flat part away from the event.
    assert!(
        near(&img, g.pixel(5.0, 1.0), 2, rgb(OBSERVED)),
        "observed peak"
    );
    assert!(
        near(&img, g.pixel(3.0, 0.1), 2, rgb(OBSERVED)),
        "observed floor"
    );
    // The event marker: a red vertical line at t = 5 s from 0 to 1 (where no curve crosses it).
    for v in [0.05, 0.3, 0.7] {
        assert!(near(&img, g.pixel(5.0, v), 1, rgb(MARKER)), "marker at {v}");
    }
    // Where no curve runs, the chart is background.
    assert!(!near(&img, g.pixel(3.0, 0.9), 2, rgb(PREDICTED)));
    // The frame sits in the right-hand panel.
    let greens = (g.x_px.end + 30..WIDTH as i32)
        .step_by(10)
        .flat_map(|x| (0..HEIGHT as i32).step_by(10).map(move |y| (x, y)))
        .filter(|&(x, y)| pixel(&img, x, y) == [20, 200, 20])
        .count();
    assert!(
        greens > 100,
        "the frame is drawn beside the chart ({greens} samples)"
    );
}

fn pngs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png") && !p.ends_with(".writing.png"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_replay_writes_one_png_per_impact_and_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("evidence");
    let mut d = Daemon::start(&[
        "replay",
        "--evidence",
        ev.to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--linger",
        "30s",
    ]);
    let addr = d.http_addr();
    d.wait_for("lingering", Duration::from_secs(60));
    let files = pngs(&ev);
    assert_eq!(
        files.len(),
        3,
        "one per impact (the default kinds): {files:?}"
    );
    for f in &files {
        let img = decode(&std::fs::read(f).unwrap());
        assert_eq!((img.0, img.1), (WIDTH, HEIGHT));
        // A real drawing: both curve colours appear.
        let has = |c: [u8; 3]| img.2.chunks(3).any(|p| p == c);
        assert!(
            has(rgb(PREDICTED)) && has(rgb(OBSERVED)) && has(rgb(MARKER)),
            "{f:?}"
        );
    }
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.ends_with("-event00001-impact.png"), "{name}");
    let r = minreq::get(format!("http://{addr}/events/1/plot.png"))
        .send()
        .unwrap();
    assert_eq!(r.status_code, 200);
    assert_eq!(r.headers["content-type"], "image/png");
    assert_eq!(r.as_bytes(), std::fs::read(&files[0]).unwrap());
    let r = minreq::get(format!("http://{addr}/events/3/plot.png"))
        .send()
        .unwrap();
    assert_eq!(
        r.status_code, 404,
        "event 3 is an unseen_sound: not in evidence.kinds"
    );
}

#[test]
fn every_kind_when_configured_and_the_size_limit_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[evidence]\ndir = \"ev\"\nkinds = [\"impact\", \"unseen_sound\", \"silent_impact\"]\n",
    )
    .unwrap();
    let d = Daemon::start(&["replay", "--config", cfg.to_str().unwrap()]);
    let (code, _, err) = d.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
    let files = pngs(&dir.path().join("ev"));
    let kinds: Vec<String> = files
        .iter()
        .map(|f| f.to_string_lossy().rsplit("-").next().unwrap().to_string())
        .collect();
    assert_eq!(kinds.len(), SCENE_EVENTS, "{files:?}");
    assert!(
        kinds.contains(&"unseen_sound.png".into()) && kinds.contains(&"silent_impact.png".into())
    );

    // A limit that holds about one file: only the newest stays.
    let one = std::fs::metadata(&files[0]).unwrap().len();
    std::fs::write(
        &cfg,
        format!("[evidence]\ndir = \"ev2\"\nmax_bytes = {}\n", one * 3 / 2),
    )
    .unwrap();
    let d = Daemon::start(&["replay", "--config", cfg.to_str().unwrap()]);
    let (code, _, err) = d.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
    let files = pngs(&dir.path().join("ev2"));
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0]
            .to_string_lossy()
            .ends_with("-event00005-impact.png"),
        "{files:?}"
    );
}

#[test]
fn a_full_disk_skips_evidence_and_events_still_flow() {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("ev");
    std::fs::create_dir(&ev).unwrap();
    // Every PNG is written to .writing.png first: make that the kernel's always-full device.
    std::os::unix::fs::symlink("/dev/full", ev.join(".writing.png")).unwrap();
    let mut d = Daemon::start(&[
        "replay",
        "--evidence",
        ev.to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--linger",
        "30s",
    ]);
    let addr = d.http_addr();
    d.wait_for("lingering", Duration::from_secs(60));
    let metrics = minreq::get(format!("http://{addr}/metrics"))
        .send()
        .unwrap();
    let text = metrics.as_str().unwrap();
    // The first PNG hits the full device; the writer then removes its partial file (here: the
    // link), as it would on a real disk, so the next two are written: space came back.
    assert!(
        text.contains("impactd_evidence_skipped_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("impactd_evidence_written_total 2\n"),
        "{text}"
    );
    d.child.kill().unwrap();
    let (_, out, err) = d.finish(Duration::from_secs(30));
    assert_eq!(events(&out).len(), SCENE_EVENTS, "events flowed: {err}");
    assert!(
        err.contains("evidence: skipped the PNG of event 1") && err.contains("No space left"),
        "{err}"
    );
    let names: Vec<String> = pngs(&ev)
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.iter().any(|n| n.contains("event00001")), "{names:?}");
}

/// Files in `dir` ending with `suffix`, sorted.
fn with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

#[test]
fn clips_are_mp4_through_ffmpeg_else_y4m_and_wav() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[evidence]\ndir = \"ev\"\nclips = true\n").unwrap();
    let d = Daemon::start(&["replay", "--config", cfg.to_str().unwrap()]);
    let (code, _, err) = d.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
    let ev = dir.path().join("ev");
    let mp4 = with_suffix(&ev, "-event00002-impact.mp4");
    assert_eq!(mp4.len(), 1, "{:?}", with_suffix(&ev, ""));
    assert!(with_suffix(&ev, ".y4m").is_empty(), "replaced by the MP4");
    // Event 2 is at 5.57 s: 2 s before to 1.5 s after, video and sound.
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_type",
            "-of",
            "compact",
        ])
        .arg(&mp4[0])
        .output()
        .expect("ffprobe (package ffmpeg)");
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(
        text.contains("codec_type=video") && text.contains("codec_type=audio"),
        "{text}"
    );
    let dur: f64 = text
        .split("duration=")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((3.3..3.7).contains(&dur), "duration {dur}");

    // Without ffmpeg: the Y4M and the WAV stay, and say so once.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[evidence]\ndir = \"ev\"\nclips = true\n").unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_impactd"));
    c.args(["replay", "--config", cfg.to_str().unwrap()]);
    c.env("IMPACTD_FFMPEG", dir.path().join("no-such-ffmpeg"));
    let (code, _, err) = Daemon::from_command(c).finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("clips stay Y4M + WAV").count(), 1, "{err}");
    let ev = dir.path().join("ev");
    let wav = with_suffix(&ev, "-event00002-impact.wav");
    let y4m = with_suffix(&ev, "-event00002-impact.y4m");
    assert_eq!((wav.len(), y4m.len()), (1, 1), "{:?}", with_suffix(&ev, ""));
    let r = hound::WavReader::open(&wav[0]).unwrap();
    assert_eq!((r.spec().sample_rate, r.spec().channels), (44100, 1));
    let secs = r.duration() as f64 / 44100.0;
    assert!((secs - 3.5).abs() < 0.01, "{secs} s of audio");
    let mut dec = y4m::Decoder::new(std::fs::File::open(&y4m[0]).unwrap()).unwrap();
    assert!(dec.get_width() <= evidence::THUMB_WIDTH as usize);
    let mut frames = 0;
    while dec.read_frame().is_ok() {
        frames += 1;
    }
    assert_eq!(frames, 42, "3.5 s at 12 fps");
}
