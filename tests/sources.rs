//! Media sources through the public API: Y4M, WAV, ffmpeg, and the 12-fps grid.
//!
//! Media are generated at run time into temporary directories: Y4M and WAV bytes are written
//! directly, everything else with the ffmpeg CLI (lavfi `testsrc`, `sine`, `color`).

mod common;
use common::ffmpeg;
use impactd::media::{GRID_FPS, Image, NS_PER_S, PixelFormat, VideoFrame, grid_time_ns};
use impactd::sources::ffmpeg::{FFMPEG_ENV, FFPROBE_ENV, FfmpegAudio, FfmpegTools, FfmpegVideo};
use impactd::sources::grid::{GridFrame, GridResampler, TIE_TOLERANCE_NS, ticks_to_ns};
use impactd::sources::{AudioSource, SourceError, VideoSource, open_audio, open_video};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// helpers

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A Y4M file from a header and raw frame payloads.
fn write_y4m(path: &Path, header: &str, frames: &[Vec<u8>]) {
    let mut b = format!("YUV4MPEG2 {header}\n").into_bytes();
    for f in frames {
        b.extend_from_slice(b"FRAME\n");
        b.extend_from_slice(f);
    }
    std::fs::write(path, b).expect("write y4m");
}

/// A mono C420jpeg Y4M whose frame i has Y = i everywhere (U = V = 128): the frame number can be
/// read back from any decoded pixel.
fn numbered_y4m(path: &Path, fps: &str, frames: usize, w: usize, h: usize) {
    let chroma = w.div_ceil(2) * h.div_ceil(2);
    let frames: Vec<Vec<u8>> = (0..frames)
        .map(|i| {
            let mut f = vec![i as u8; w * h];
            f.resize(w * h + 2 * chroma, 128);
            f
        })
        .collect();
    write_y4m(path, &format!("W{w} H{h} F{fps} Ip A1:1 C420jpeg"), &frames);
}

fn read_all_frames(src: &mut dyn VideoSource) -> Vec<VideoFrame> {
    let mut frames = Vec::new();
    while let Some(f) = src.next_frame().expect("frame") {
        frames.push(f);
    }
    frames
}

fn read_all_samples(src: &mut dyn AudioSource) -> Result<Vec<f32>, SourceError> {
    let mut samples = Vec::new();
    while let Some(b) = src.next_block()? {
        assert_eq!(b.rate, src.info().rate);
        assert_eq!(
            b.pts_ns,
            (samples.len() as i128 * NS_PER_S as i128 / b.rate as i128) as i64
        );
        samples.extend_from_slice(&b.samples);
    }
    Ok(samples)
}

fn grid(frames: Vec<VideoFrame>) -> Vec<GridFrame> {
    let mut g = GridResampler::new(0);
    let mut out = Vec::new();
    for f in frames {
        g.push(f, &mut out);
    }
    g.finish(&mut out);
    out
}

/// The frame number (Y value of the first pixel) of each grid frame.
fn picks(grid: &[GridFrame]) -> Vec<u8> {
    grid.iter().map(|g| g.image.data[0]).collect()
}

/// A WAV file from raw data bytes: format tag 1 (PCM) or 3 (float).
fn wav_bytes(format_tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&format_tag.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * block as u32).to_le_bytes());
    b.extend_from_slice(&block.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    b
}

fn wav_samples(dir: &Path, name: &str, bytes: Vec<u8>) -> (PathBuf, Result<Vec<f32>, SourceError>) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write wav");
    let samples = open_audio(&path).and_then(|mut s| read_all_samples(s.as_mut()));
    (path, samples)
}

/// The error of opening `path` as Gray8 video (the sources themselves are not `Debug`).
fn video_err(path: &Path) -> SourceError {
    match open_video(path, PixelFormat::Gray8) {
        Ok(_) => panic!("{} opened as video", path.display()),
        Err(e) => e,
    }
}

fn audio_err(path: &Path) -> SourceError {
    match open_audio(path) {
        Ok(_) => panic!("{} opened as audio", path.display()),
        Err(e) => e,
    }
}

fn corrupt_reason(e: &SourceError) -> &str {
    match e {
        SourceError::Corrupt { reason, .. } => reason,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Y4M

#[test]
fn y4m_gray_and_rgb_pixels_round_trip() {
    let dir = tempdir();
    let path = dir.path().join("pattern.y4m");
    // 4x2 4:2:0: chroma 2x1, one (U, V) per 2x2 block.
    let y = vec![16u8, 235, 126, 81, 50, 100, 150, 200];
    let u = vec![128u8, 90];
    let v = vec![128u8, 240];
    write_y4m(
        &path,
        "W4 H2 F25:1 C420mpeg2",
        &[[y.clone(), u.clone(), v.clone()].concat()],
    );

    let mut gray = open_video(&path, PixelFormat::Gray8).unwrap();
    let frame = gray.next_frame().unwrap().unwrap();
    assert_eq!(
        (frame.image.width, frame.image.height, frame.image.format),
        (4, 2, PixelFormat::Gray8)
    );
    assert_eq!(frame.image.data, y);
    assert!(gray.next_frame().unwrap().is_none());

    let mut rgb = open_video(&path, PixelFormat::Rgb8).unwrap();
    let img = rgb.next_frame().unwrap().unwrap().image;
    for py in 0..2 {
        for px in 0..4 {
            let (yy, cb, cr) = (
                y[py * 4 + px] as f64,
                u[px / 2] as f64 - 128.0,
                v[px / 2] as f64 - 128.0,
            );
            let l = 1.164 * (yy - 16.0);
            let want = [l + 1.596 * cr, l - 0.392 * cb - 0.813 * cr, l + 2.017 * cb];
            for (c, want) in want.iter().enumerate() {
                let got = img.data[(py * 4 + px) * 3 + c] as f64;
                assert!(
                    (got - want.clamp(0.0, 255.0)).abs() <= 1.0,
                    "pixel {px},{py} ch {c}: {got} vs {want}"
                );
            }
        }
    }
    // Pure BT.601 red (Y 81, U 90, V 240) in the right half.
    assert_eq!(&img.data[9..12], &[255, 0, 0]);
}

#[test]
fn y4m_ntsc_timestamps_are_exact() {
    let dir = tempdir();
    let path = dir.path().join("ntsc.y4m");
    numbered_y4m(&path, "30000:1001", 5, 4, 4);
    let mut src = open_video(&path, PixelFormat::Gray8).unwrap();
    let info = src.info().clone();
    assert_eq!(
        (info.width, info.height, info.format),
        (4, 4, PixelFormat::Gray8)
    );
    assert!((info.fps - 29.97002997).abs() < 1e-6);
    assert_eq!(info.description, "y4m 4x4 30000/1001 fps C420jpeg");
    let pts: Vec<i64> = read_all_frames(src.as_mut())
        .iter()
        .map(|f| f.pts_ns)
        .collect();
    // i * 1001/30000 s, to the nearest ns.
    assert_eq!(
        pts,
        vec![0, 33_366_667, 66_733_333, 100_100_000, 133_466_667]
    );
}

#[test]
fn y4m_truncated_last_frame_is_corrupt_naming_the_frame() {
    let dir = tempdir();
    let path = dir.path().join("cut.y4m");
    numbered_y4m(&path, "30:1", 3, 8, 8);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);
    let mut src = open_video(&path, PixelFormat::Gray8).unwrap();
    assert_eq!(src.next_frame().unwrap().unwrap().image.data[0], 0);
    assert_eq!(src.next_frame().unwrap().unwrap().image.data[0], 1);
    let err = src.next_frame().unwrap_err();
    assert!(corrupt_reason(&err).contains("frame 2"), "{err}");
    assert!(err.to_string().contains("cut.y4m"), "{err}");
    assert!(src.next_frame().unwrap().is_none());
}

#[test]
fn y4m_zero_frames_is_an_empty_stream() {
    let dir = tempdir();
    let path = dir.path().join("none.y4m");
    write_y4m(&path, "W8 H8 F30:1 C420jpeg", &[]);
    let mut src = open_video(&path, PixelFormat::Rgb8).unwrap();
    assert!(src.next_frame().unwrap().is_none());
}

#[test]
fn not_a_y4m_empty_and_missing_files() {
    let dir = tempdir();
    let text = dir.path().join("text.y4m");
    std::fs::write(&text, "hello, this is not video\n").unwrap();
    let err = video_err(&text);
    assert!(corrupt_reason(&err).contains("not a Y4M"), "{err}");
    assert!(err.to_string().contains("text.y4m"));

    let empty = dir.path().join("empty.y4m");
    std::fs::write(&empty, b"").unwrap();
    let err = video_err(&empty);
    assert!(corrupt_reason(&err).contains("empty"), "{err}");

    let missing = dir.path().join("missing.y4m");
    assert!(
        matches!(open_video(&missing, PixelFormat::Gray8), Err(SourceError::NotFound { path }) if path == missing)
    );
    assert!(matches!(
        open_audio(&dir.path().join("missing.wav")),
        Err(SourceError::NotFound { .. })
    ));
}

#[test]
fn y4m_from_stdin() {
    let dir = tempdir();
    let path = dir.path().join("piped.y4m");
    numbered_y4m(&path, "15:1", 7, 6, 4);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_reads_y4m_from_stdin",
            "--ignored",
            "--test-threads=1",
        ])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Only meaningful in the child process started by `y4m_from_stdin`.
#[test]
#[ignore = "run by y4m_from_stdin in a child process"]
fn child_reads_y4m_from_stdin() {
    let mut src = open_video(Path::new("-"), PixelFormat::Gray8).unwrap();
    assert_eq!(src.info().description, "y4m 6x4 15/1 fps C420jpeg");
    let frames = read_all_frames(src.as_mut());
    assert_eq!(frames.len(), 7);
    assert_eq!(frames[6].pts_ns, 400_000_000);
    assert!(
        frames
            .iter()
            .enumerate()
            .all(|(i, f)| f.image.data == vec![i as u8; 6 * 4])
    );
}

#[test]
fn y4m_unsupported_colorspace_names_it() {
    let dir = tempdir();
    let path = dir.path().join("c411.y4m");
    write_y4m(&path, "W8 H8 F30:1 C411", &[]);
    match video_err(&path) {
        SourceError::Unsupported { reason, .. } => assert!(reason.contains("C411"), "{reason}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// WAV

#[test]
fn wav_integer_and_float_formats_scale_exactly() {
    let dir = tempdir();
    // 8-bit WAV stores unsigned bytes: 0xC0 = +64 -> 0.5, 0x00 = -128 -> -1.0, 0x80 -> 0.0.
    let (_, s) = wav_samples(
        dir.path(),
        "u8.wav",
        wav_bytes(1, 1, 8000, 8, &[0xC0, 0x00, 0x80, 0xFF]),
    );
    assert_eq!(s.unwrap(), vec![0.5, -1.0, 0.0, 127.0 / 128.0]);

    let data: Vec<u8> = [16384i16, -32768, 0, 32767]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let (_, s) = wav_samples(dir.path(), "s16.wav", wav_bytes(1, 1, 44100, 16, &data));
    assert_eq!(s.unwrap(), vec![0.5, -1.0, 0.0, 32767.0 / 32768.0]);

    let data: Vec<u8> = [1i32 << 22, -(1 << 23), -(1 << 21)]
        .iter()
        .flat_map(|v| v.to_le_bytes()[..3].to_vec())
        .collect();
    let (_, s) = wav_samples(dir.path(), "s24.wav", wav_bytes(1, 1, 48000, 24, &data));
    assert_eq!(s.unwrap(), vec![0.5, -1.0, -0.25]);

    let data: Vec<u8> = [1i32 << 30, i32::MIN, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let (_, s) = wav_samples(dir.path(), "s32.wav", wav_bytes(1, 1, 48000, 32, &data));
    assert_eq!(s.unwrap(), vec![0.5, -1.0, 0.0]);

    let data: Vec<u8> = [0.25f32, -0.75, 1.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let (_, s) = wav_samples(dir.path(), "f32.wav", wav_bytes(3, 1, 22050, 32, &data));
    assert_eq!(s.unwrap(), vec![0.25, -0.75, 1.5]);
}

#[test]
fn wav_stereo_delivers_the_first_channel_in_timed_blocks() {
    let dir = tempdir();
    let n = 3000;
    let data: Vec<u8> = (0..n)
        .flat_map(|i| [i as i16, -(i as i16) - 1])
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let path = dir.path().join("stereo.wav");
    std::fs::write(&path, wav_bytes(1, 2, 44100, 16, &data)).unwrap();
    let mut src = open_audio(&path).unwrap();
    assert_eq!((src.info().rate, src.info().channels), (44100, 2));
    let mut blocks = Vec::new();
    while let Some(b) = src.next_block().unwrap() {
        blocks.push(b);
    }
    assert_eq!(
        blocks.iter().map(|b| b.samples.len()).collect::<Vec<_>>(),
        vec![1024, 1024, 952]
    );
    assert_eq!(
        blocks.iter().map(|b| b.pts_ns).collect::<Vec<_>>(),
        vec![0, 23_219_954, 46_439_909]
    );
    let all: Vec<f32> = blocks
        .iter()
        .flat_map(|b| b.samples.iter().copied())
        .collect();
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, &s)| s == i as f32 / 32768.0)
    );
}

#[test]
fn wav_zero_length_is_an_empty_stream() {
    let dir = tempdir();
    let (_, s) = wav_samples(dir.path(), "zero.wav", wav_bytes(1, 2, 44100, 16, &[]));
    assert!(s.unwrap().is_empty());
}

#[test]
fn wav_truncated_data_chunk_reads_what_is_there_then_corrupt() {
    let dir = tempdir();
    let n = 5000usize;
    let data: Vec<u8> = (0..n).flat_map(|i| (i as i16).to_le_bytes()).collect();
    let full = wav_bytes(1, 1, 16000, 16, &data);
    for (name, keep, complete) in [
        ("cut3.wav", full.len() - 3, n - 2),
        ("half.wav", 44 + n, n / 2),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &full[..keep]).unwrap();
        let mut src = open_audio(&path).unwrap();
        let mut got = Vec::new();
        let err = loop {
            match src.next_block() {
                Ok(Some(b)) => got.extend(b.samples),
                Ok(None) => panic!("{name}: truncation not reported"),
                Err(e) => break e,
            }
        };
        assert_eq!(got.len(), complete, "{name}");
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, &s)| s == i as f32 / 32768.0)
        );
        assert!(
            corrupt_reason(&err).contains("shorter than its header"),
            "{err}"
        );
        assert!(err.to_string().contains(name), "{err}");
        assert!(src.next_block().unwrap().is_none());
    }
}

#[test]
fn wav_garbage_is_corrupt_naming_the_path() {
    let dir = tempdir();
    let path = dir.path().join("noise.wav");
    std::fs::write(&path, b"this is certainly not a RIFF file").unwrap();
    let err = audio_err(&path);
    corrupt_reason(&err);
    assert!(err.to_string().contains("noise.wav"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// ffmpeg

#[test]
fn mp4_h264_aac_decodes_every_frame_and_all_samples() {
    let dir = tempdir();
    let path = dir.path().join("clip.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=30:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        path_str(&path),
    ]);
    for format in [PixelFormat::Gray8, PixelFormat::Rgb8] {
        let mut video = open_video(&path, format).unwrap();
        let info = video.info().clone();
        assert_eq!((info.width, info.height, info.format), (160, 120, format));
        assert_eq!(info.fps, 30.0);
        assert!(
            info.description.contains("h264") && info.description.contains("160x120"),
            "{}",
            info.description
        );
        let frames = read_all_frames(video.as_mut());
        assert_eq!(frames.len(), 60);
        assert!(
            frames
                .iter()
                .enumerate()
                .all(|(i, f)| f.pts_ns == ticks_to_ns(i as i64, 1, 30))
        );
        assert!(
            frames
                .iter()
                .all(|f| f.image.data.len() == 160 * 120 * format.bytes_per_pixel())
        );
        assert_eq!(grid(frames).len(), 24);
    }
    let mut audio = open_audio(&path).unwrap();
    assert_eq!((audio.info().rate, audio.info().channels), (44100, 1));
    let samples = read_all_samples(audio.as_mut()).unwrap();
    // AAC: priming is removed by the mp4 edit list; the last frame's padding is kept, so up to one
    // AAC frame (1024 samples) more than the source.
    assert!(
        (88200..=88200 + 1024).contains(&samples.len()),
        "{} samples",
        samples.len()
    );
    let peak = samples.iter().fold(0f32, |m, s| m.max(s.abs()));
    assert!((0.05..1.0).contains(&peak), "sine peak {peak}");
}

#[test]
fn missing_tracks_are_no_track() {
    let dir = tempdir();
    let silent = dir.path().join("silent.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=10:duration=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        path_str(&silent),
    ]);
    assert!(matches!(
        open_audio(&silent),
        Err(SourceError::NoTrack { what: "audio", .. })
    ));

    let sound = dir.path().join("sound.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        "-c:a",
        "aac",
        path_str(&sound),
    ]);
    assert!(matches!(
        open_video(&sound, PixelFormat::Gray8),
        Err(SourceError::NoTrack { what: "video", .. })
    ));
    assert!(open_audio(&sound).is_ok());

    // An mp3 with cover art has a "video" stream that is a still picture, not video.
    let cover = dir.path().join("cover.mp3");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        "-f",
        "lavfi",
        "-i",
        "color=c=red:size=16x16:duration=0.1",
        "-map",
        "0:a",
        "-map",
        "1:v",
        "-frames:v",
        "1",
        "-c:a",
        "libmp3lame",
        "-c:v",
        "mjpeg",
        "-disposition:v",
        "attached_pic",
        path_str(&cover),
    ]);
    assert!(matches!(
        open_video(&cover, PixelFormat::Gray8),
        Err(SourceError::NoTrack { what: "video", .. })
    ));
}

#[test]
fn garbage_and_truncated_containers_are_corrupt() {
    let dir = tempdir();
    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(
        &garbage,
        (0..5000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let err = video_err(&garbage);
    assert!(corrupt_reason(&err).contains("ffprobe"), "{err}");
    assert!(err.to_string().contains("garbage.mp4"));
    corrupt_reason(&audio_err(&garbage));

    // An mp4 with its index at the end, cut in half: unreadable from the start.
    let clip = dir.path().join("clip.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=25:duration=4",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        path_str(&clip),
    ]);
    let bytes = std::fs::read(&clip).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    corrupt_reason(&video_err(&cut));
    corrupt_reason(&audio_err(&cut));

    // With the index first ("faststart"), ffmpeg decodes up to the cut: the frames before it
    // come, then Corrupt with ffmpeg's "partial file" message.
    let fast = dir.path().join("fast.mp4");
    ffmpeg(&[
        "-i",
        path_str(&clip),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        path_str(&fast),
    ]);
    let bytes = std::fs::read(&fast).unwrap();
    let cut = dir.path().join("fastcut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let mut video = open_video(&cut, PixelFormat::Gray8).unwrap();
    let mut frames = 0;
    let err = loop {
        match video.next_frame() {
            Ok(Some(_)) => frames += 1,
            Ok(None) => panic!("truncation not reported after {frames} frames"),
            Err(e) => break e,
        }
    };
    assert!(frames > 0 && frames < 100, "{frames} frames");
    assert!(corrupt_reason(&err).contains("partial file"), "{err}");
    let mut audio = open_audio(&cut).unwrap();
    corrupt_reason(&read_all_samples(audio.as_mut()).unwrap_err());
}

#[test]
fn missing_ffmpeg_is_ffmpeg_missing() {
    let dir = tempdir();
    let clip = dir.path().join("x.mp4");
    std::fs::write(&clip, b"not looked at").unwrap();
    let none = FfmpegTools {
        ffmpeg: "/nonexistent/ffmpeg".into(),
        ffprobe: "/nonexistent/ffprobe".into(),
    };
    assert!(matches!(
        FfmpegVideo::open_with(&clip, PixelFormat::Gray8, &none),
        Err(SourceError::FfmpegMissing { .. })
    ));
    assert!(matches!(
        FfmpegAudio::open_with(&clip, &none),
        Err(SourceError::FfmpegMissing { .. })
    ));
    // ffprobe present, ffmpeg missing: found when ffmpeg is started.
    let wav = dir.path().join("a.flac");
    ffmpeg(&["-f", "lavfi", "-i", "sine=duration=0.2", path_str(&wav)]);
    let half = FfmpegTools {
        ffmpeg: "/nonexistent/ffmpeg".into(),
        ffprobe: "ffprobe".into(),
    };
    let err = FfmpegAudio::open_with(&wav, &half).unwrap_err();
    assert!(matches!(err, SourceError::FfmpegMissing { .. }));
    assert!(
        err.to_string().contains("a.flac") && err.to_string().contains("install"),
        "{err}"
    );
}

/// Runs `child_open_with_env` in a fresh test process with `env` set: environment variables are
/// process-wide, so they are not changed in this (multi-threaded) one.
fn run_child_with_env(env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "child_open_with_env",
            "--ignored",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .env("IMPACTD_SOURCES_TEST_CHILD", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ffmpeg_env_override_and_empty_path_give_ffmpeg_missing() {
    run_child_with_env(&[
        (FFMPEG_ENV, "/nonexistent/ffmpeg"),
        (FFPROBE_ENV, "/nonexistent/ffprobe"),
    ]);
    run_child_with_env(&[("PATH", "/nonexistent")]);
}

/// Only meaningful in the child process started by the test above.
#[test]
#[ignore = "run by ffmpeg_env_override_and_empty_path_give_ffmpeg_missing in a child process"]
fn child_open_with_env() {
    assert_eq!(
        std::env::var("IMPACTD_SOURCES_TEST_CHILD").as_deref(),
        Ok("1")
    );
    let dir = tempdir();
    let clip = dir.path().join("clip.mkv");
    std::fs::write(&clip, b"not looked at").unwrap();
    assert!(matches!(
        open_video(&clip, PixelFormat::Gray8),
        Err(SourceError::FfmpegMissing { .. })
    ));
    assert!(matches!(
        open_audio(&clip),
        Err(SourceError::FfmpegMissing { .. })
    ));
}

#[test]
fn ffmpeg_failures_are_reported_with_its_messages() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_fake_ffmpeg",
            "--ignored",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Error paths against scripted stand-ins for ffmpeg and ffprobe. Run by
/// `ffmpeg_failures_are_reported_with_its_messages` in a single-threaded child process: executing
/// a script just written can fail with "text file busy" while other threads fork.
#[test]
#[ignore = "run by ffmpeg_failures_are_reported_with_its_messages in a child process"]
fn child_fake_ffmpeg() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let script = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.into_os_string()
    };
    let ffprobe = script(
        "ffprobe",
        r#"echo '{"streams": [{"index": 0, "codec_name": "fake", "width": 2, "height": 2, "avg_frame_rate": "10/1", "sample_rate": "8000", "channels": 1}]}'"#,
    );
    let clip = dir.path().join("clip.mp4");
    std::fs::write(&clip, b"x").unwrap();
    let tools = |ffmpeg_body: &str| FfmpegTools {
        ffmpeg: script("ffmpeg", ffmpeg_body),
        ffprobe: ffprobe.clone(),
    };
    // The listing goes to fd 0 (`>&0`), pixels to stdout, messages to stderr.
    let listing =
        r"printf '#tb 0: 1/10\n#dimensions 0: 2x2\n0, 0, 0, 1, 1, 0x0\n0, 3, 3, 1, 1, 0x0\n' >&0";
    let video = |body: &str| FfmpegVideo::open_with(&clip, PixelFormat::Gray8, &tools(body));

    // A frame, then one cut short and a failed exit: the frame, then Corrupt with both facts.
    let mut v = video(&format!(
        r"{listing}; printf '\001\002\003\004\005'; echo 'decoder exploded' >&2; exit 1"
    ))
    .unwrap();
    assert_eq!(
        v.info().description,
        "ffmpeg fake 2x2 10 fps -> 12 fps grid by timestamp"
    );
    let f = v.next_frame().unwrap().unwrap();
    assert_eq!((f.pts_ns, f.image.data), (0, vec![1, 2, 3, 4]));
    let reason = corrupt_reason(&v.next_frame().unwrap_err()).to_string();
    assert!(
        reason.contains("frame 1 is cut short") && reason.contains("1 of 4 bytes"),
        "{reason}"
    );
    assert!(
        reason.contains("exit status: 1") && reason.contains("decoder exploded"),
        "{reason}"
    );
    assert!(v.next_frame().unwrap().is_none());

    // All frames delivered, exit 0, but ffmpeg reported an error: Corrupt at the end.
    let mut v = video(&format!(
        r"{listing}; printf '\001\002\003\004\005\006\007\010'; echo 'partial file' >&2"
    ))
    .unwrap();
    assert_eq!(v.next_frame().unwrap().unwrap().pts_ns, 0);
    assert_eq!(v.next_frame().unwrap().unwrap().pts_ns, 300_000_000);
    let reason = corrupt_reason(&v.next_frame().unwrap_err()).to_string();
    assert!(
        reason.contains("after 2 frames") && reason.contains("partial file"),
        "{reason}"
    );

    // More pixels than listed frames.
    let mut v = video(&format!(r"{listing}; printf '123456789'")).unwrap();
    v.next_frame().unwrap().unwrap();
    v.next_frame().unwrap().unwrap();
    assert!(corrupt_reason(&v.next_frame().unwrap_err()).contains("more than the 2 listed frames"));

    // Failure before the first frame: open fails with the message.
    let err = video("echo 'No such filter: extractplanes' >&2; exit 8").unwrap_err();
    assert!(corrupt_reason(&err).contains("No such filter"), "{err}");
    // A successful run with no frames is an empty stream.
    assert!(
        video(r"printf '#tb 0: 1/10\n#dimensions 0: 2x2\n' >&0")
            .unwrap()
            .next_frame()
            .unwrap()
            .is_none()
    );

    // A listing line that is not one.
    let err = video(r"printf '#tb 0: 1/10\nwhat is this\n' >&0").unwrap_err();
    assert!(corrupt_reason(&err).contains("what is this"), "{err}");

    // A flood on stderr (200 kB, more than a pipe holds) neither blocks ffmpeg nor the reader;
    // the message keeps the last lines.
    let flood =
        r#"i=0; while [ $i -lt 10000 ]; do echo "complaint number $i" >&2; i=$((i+1)); done"#;
    let mut v = video(&format!(r"{flood}; {listing}; printf '12345678'")).unwrap();
    let (frames, err) = frames_then_error(&mut v);
    assert_eq!(frames, 2);
    let reason = corrupt_reason(&err.expect("the complaints are reported")).to_string();
    assert!(
        reason.contains("complaint number 9999") && reason.contains("earlier lines not shown"),
        "{reason}"
    );

    // Audio: 1025 samples in two blocks; a cut sample; a failed exit after samples.
    let audio = |body: &str| FfmpegAudio::open_with(&clip, &tools(body));
    let mut a = audio(r"head -c 4100 /dev/zero").unwrap();
    let b1 = a.next_block().unwrap().unwrap();
    let b2 = a.next_block().unwrap().unwrap();
    assert_eq!(
        (b1.samples.len(), b2.samples.len(), b2.pts_ns, b2.rate),
        (1024, 1, 128_000_000, 8000)
    );
    assert!(a.next_block().unwrap().is_none());
    let mut a = audio(r"printf '123456'").unwrap();
    assert!(corrupt_reason(&a.next_block().unwrap_err()).contains("inside a sample"));
    let mut a = audio(r"head -c 400 /dev/zero; echo 'Invalid data found' >&2; exit 1").unwrap();
    assert_eq!(a.next_block().unwrap().unwrap().samples.len(), 100);
    let reason = corrupt_reason(&a.next_block().unwrap_err()).to_string();
    assert!(
        reason.contains("after 100 samples") && reason.contains("Invalid data found"),
        "{reason}"
    );
}

/// Reads frames until the end or the first error: how many came, and the error if any.
fn frames_then_error(v: &mut dyn VideoSource) -> (usize, Option<SourceError>) {
    let mut n = 0;
    loop {
        match v.next_frame() {
            Ok(Some(_)) => n += 1,
            Ok(None) => return (n, None),
            Err(e) => return (n, Some(e)),
        }
    }
}

#[test]
fn rotated_phone_video_is_delivered_upright() {
    let dir = tempdir();
    let plain = dir.path().join("plain.mp4");
    let rotated = dir.path().join("rotated.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=10:duration=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        path_str(&plain),
    ]);
    ffmpeg(&[
        "-i",
        path_str(&plain),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        path_str(&rotated),
    ]);
    let mut video = open_video(&rotated, PixelFormat::Rgb8).unwrap();
    assert_eq!((video.info().width, video.info().height), (48, 64));
    let frames = read_all_frames(video.as_mut());
    assert_eq!(frames.len(), 10);
    assert!(
        frames
            .iter()
            .all(|f| (f.image.width, f.image.height) == (48, 64)
                && f.image.data.len() == 48 * 64 * 3)
    );
}

#[test]
fn variable_frame_rate_keeps_each_frames_timestamp() {
    let dir = tempdir();
    let path = dir.path().join("vfr.mp4");
    // Frame n at n/30 s + 11 ms * (n mod 3), in a 1/90000 time base.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=30:duration=2",
        "-vf",
        "settb=1/90000,setpts='(N/30+0.011*mod(N,3))/TB'",
        "-fps_mode",
        "passthrough",
        "-enc_time_base",
        "1:90000",
        "-video_track_timescale",
        "90000",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        path_str(&path),
    ]);
    let mut video = open_video(&path, PixelFormat::Gray8).unwrap();
    let frames = read_all_frames(video.as_mut());
    assert_eq!(frames.len(), 60);
    for (n, f) in frames.iter().enumerate() {
        let want = n as f64 / 30.0 + 0.011 * (n % 3) as f64;
        assert!(
            (f.pts_ns as f64 / 1e9 - want).abs() <= 1.0 / 90000.0 + 1e-9,
            "frame {n}: {} vs {want}",
            f.pts_ns
        );
    }
    // The grid picks by these timestamps (not by counting): compare with the nearest-frame rule.
    let pts: Vec<i64> = frames.iter().map(|f| f.pts_ns).collect();
    let out = grid(frames);
    assert_eq!(
        out.iter().map(|g| g.source_pts_ns).collect::<Vec<_>>(),
        reference_grid(&pts)
    );
}

#[test]
fn flac_through_ffmpeg_matches_the_native_wav_reader() {
    let dir = tempdir();
    let wav = dir.path().join("tone.wav");
    let n = 4000;
    let data: Vec<u8> = (0..n)
        .flat_map(|i| {
            let l = ((i as f64 * 0.05).sin() * 20000.0) as i16;
            [l, l / 3 + 7]
        })
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&wav, wav_bytes(1, 2, 32000, 16, &data)).unwrap();
    let flac = dir.path().join("tone.flac");
    ffmpeg(&["-i", path_str(&wav), path_str(&flac)]);
    let native = read_all_samples(open_audio(&wav).unwrap().as_mut()).unwrap();
    let mut via = open_audio(&flac).unwrap();
    assert_eq!((via.info().rate, via.info().channels), (32000, 2));
    let via = read_all_samples(via.as_mut()).unwrap();
    assert_eq!(native.len(), n);
    assert_eq!(native, via);
}

#[test]
fn dropping_an_ffmpeg_source_kills_its_process() {
    let dir = tempdir();
    let path = dir.path().join("long-for-drop-test.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30:duration=20",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        path_str(&path),
    ]);
    let running = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|cmd| String::from_utf8_lossy(cmd).contains("long-for-drop-test.mp4"))
            .count()
    };
    let mut video = open_video(&path, PixelFormat::Rgb8).unwrap();
    video.next_frame().unwrap().unwrap();
    assert_eq!(running(), 1);
    drop(video);
    assert_eq!(running(), 0);
}

#[test]
fn large_frames_stream_without_deadlock() {
    let dir = tempdir();
    let path = dir.path().join("hd.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=1280x720:rate=25:duration=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        path_str(&path),
    ]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut video = FfmpegVideo::open(&path, PixelFormat::Rgb8).unwrap();
        let _ = tx.send(read_all_frames(&mut video).len());
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(120))
            .expect("decoding hung"),
        25
    );
}

// ---------------------------------------------------------------------------------------------
// The 12-fps grid: native Y4M and ffmpeg agree

/// Frame rates (Y4M `F` values) and clip lengths for the consistency tests.
const RATES: [(&str, usize); 6] = [
    ("30:1", 90),
    ("30000:1001", 90),
    ("25:1", 75),
    ("24:1", 72),
    ("15:1", 45),
    ("10:1", 30),
];

#[test]
fn native_y4m_and_ffmpeg_place_the_same_frames_on_the_grid() {
    let dir = tempdir();
    for (fps, n) in RATES {
        let y4m = dir.path().join(format!("n{}.y4m", fps.replace(':', "_")));
        numbered_y4m(&y4m, fps, n, 32, 32);
        let mut native = open_video(&y4m, PixelFormat::Gray8).unwrap();
        let native_frames = read_all_frames(native.as_mut());
        let native_grid = grid(native_frames.clone());

        // The same file through ffmpeg: same timestamps, same pixels, same grid.
        let mut via = FfmpegVideo::open(&y4m, PixelFormat::Gray8).unwrap();
        let via_frames = read_all_frames(&mut via);
        assert_eq!(via_frames, native_frames, "{fps}");

        // Losslessly re-encoded as H.264 in mp4 (B-frames, edit list): same picks.
        let mp4 = y4m.with_extension("mp4");
        ffmpeg(&[
            "-i",
            path_str(&y4m),
            "-c:v",
            "libx264",
            "-qp",
            "0",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            path_str(&mp4),
        ]);
        let mp4_grid = grid(read_all_frames(
            open_video(&mp4, PixelFormat::Gray8).unwrap().as_mut(),
        ));
        assert_eq!(picks(&mp4_grid), picks(&native_grid), "{fps}");
        assert_eq!(
            mp4_grid.iter().map(|g| g.source_pts_ns).collect::<Vec<_>>(),
            native_grid
                .iter()
                .map(|g| g.source_pts_ns)
                .collect::<Vec<_>>(),
            "{fps}"
        );
        let (num, den) = fps.split_once(':').unwrap();
        let seconds = n as f64 * den.parse::<f64>().unwrap() / num.parse::<f64>().unwrap();
        assert_eq!(
            native_grid.len(),
            (seconds * 12.0).round() as usize,
            "{fps}"
        );
    }
}

#[test]
fn native_rgb_matches_ffmpegs_conversion_closely() {
    let dir = tempdir();
    let y4m = dir.path().join("testsrc.y4m");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=5:duration=1",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "yuv4mpegpipe",
        path_str(&y4m),
    ]);
    let native = read_all_frames(open_video(&y4m, PixelFormat::Rgb8).unwrap().as_mut());
    let via = read_all_frames(&mut FfmpegVideo::open(&y4m, PixelFormat::Rgb8).unwrap());
    assert_eq!(native.len(), 5);
    assert_eq!(native.len(), via.len());
    for (a, b) in native.iter().zip(&via) {
        assert_eq!(a.pts_ns, b.pts_ns);
        let worst = a
            .image
            .data
            .iter()
            .zip(&b.image.data)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap();
        assert!(worst <= 3, "largest difference {worst}");
    }
}

/// ffmpeg's `fps=12:round=near` filter is not a nearest-frame resampler: for grid point k it
/// outputs the latest frame j whose time rounds to k or earlier, `round_half_up(12 t_j) <= k`.
/// That is why the ffmpeg source passes every frame through and leaves the grid to
/// `GridResampler`.
#[test]
fn ffmpeg_fps_filter_is_not_nearest() {
    let dir = tempdir();
    for (fps, n) in [("30:1", 90usize), ("15:1", 45)] {
        let y4m = dir.path().join("f.y4m");
        numbered_y4m(&y4m, fps, n, 16, 16);
        let out = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-i",
                path_str(&y4m),
                "-vf",
                "fps=12:round=near,extractplanes=y",
            ])
            .args(["-f", "rawvideo", "-"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let filter: Vec<u8> = out.stdout.chunks_exact(256).map(|f| f[0]).collect();
        let rate: i64 = fps.split_once(':').unwrap().0.parse().unwrap();
        // Documented rule: latest j with floor(12 j / rate + 1/2) <= k, i.e. 24 j + rate <= (2k + 1) rate.
        let documented: Vec<u8> = (0..filter.len() as i64)
            .map(|k| {
                (0..n as i64)
                    .filter(|j| 24 * j + rate < (2 * k + 1) * rate + rate)
                    .max()
                    .unwrap() as u8
            })
            .collect();
        assert_eq!(filter, documented, "{fps}");
        let nearest = picks(&grid(read_all_frames(
            open_video(&y4m, PixelFormat::Gray8).unwrap().as_mut(),
        )));
        assert_eq!(filter.len(), nearest.len());
        assert_ne!(filter, nearest, "{fps}");
        if rate == 30 {
            // At 30 fps the filter is always exactly one source frame late.
            assert!(filter.iter().zip(&nearest).all(|(f, g)| *f == g + 1));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GridResampler properties

/// The grid as a pure function of increasing timestamps: for each grid time t, the latest frame
/// before t or the first at/after it, the earlier on a tie (within the tolerance); then the
/// end-of-stream rule.
fn reference_grid(pts: &[i64]) -> Vec<i64> {
    let mut out = Vec::new();
    let Some(&last) = pts.last() else { return out };
    let interval = if pts.len() > 1 {
        last - pts[pts.len() - 2]
    } else {
        NS_PER_S / GRID_FPS as i64
    } as i128;
    for k in 0u64.. {
        let t = grid_time_ns(k) as i128;
        let after = pts.iter().position(|&p| p as i128 >= t);
        let choice = match after {
            Some(0) => pts[0],
            Some(b) => {
                let (a, b) = (pts[b - 1] as i128, pts[b] as i128);
                if t - a <= b - t + TIE_TOLERANCE_NS as i128 {
                    a as i64
                } else {
                    b as i64
                }
            }
            None if 2 * (t - last as i128) <= interval + 3 => last,
            None => break,
        };
        out.push(choice);
    }
    out
}

fn frames_from(pts: &[i64]) -> Vec<VideoFrame> {
    pts.iter()
        .enumerate()
        .map(|(i, &p)| VideoFrame {
            pts_ns: p,
            image: Image::filled(1, 1, PixelFormat::Gray8, (i % 256) as u8),
        })
        .collect()
}

prop_compose! {
    /// Timestamps of a camera at 5..60 fps with jitter up to 45 % of the interval, starting
    /// anywhere in [-0.2, 0.2) s.
    fn camera()(fps in 5.0f64..60.0, n in 1usize..150, jitter in 0.0f64..0.45, start in -0.2f64..0.2,
                seed in proptest::collection::vec(-1.0f64..1.0, 150))
        -> Vec<i64> {
        let step = 1e9 / fps;
        (0..n).map(|i| (start * 1e9 + step * (i as f64 + jitter * seed[i])).round() as i64).collect()
    }
}

proptest! {
    #[test]
    fn grid_picks_nearest_frames_in_order(pts in camera()) {
        let out = grid(frames_from(&pts));
        // Consecutive indices from 0.
        for (i, g) in out.iter().enumerate() {
            prop_assert_eq!(g.index, i as u64);
        }
        // Each chosen frame is a nearest one (within the tie tolerance), and the right picture.
        for g in &out {
            let t = grid_time_ns(g.index);
            let best = pts.iter().map(|&p| (p - t).abs()).min().unwrap();
            prop_assert!((g.source_pts_ns - t).abs() <= best + TIE_TOLERANCE_NS);
            let i = pts.iter().position(|&p| p == g.source_pts_ns).unwrap();
            prop_assert_eq!(g.image.data[0], (i % 256) as u8);
        }
        // The grid covers the clip up to half an interval after the last frame.
        let last = *pts.last().unwrap();
        let interval = if pts.len() > 1 { last - pts[pts.len() - 2] } else { NS_PER_S / 12 };
        let end = grid_time_ns(out.len() as u64);
        prop_assert!(2 * (end - last) > interval + 3);
        // A pure function of the timestamps.
        prop_assert_eq!(out.iter().map(|g| g.source_pts_ns).collect::<Vec<_>>(), reference_grid(&pts));
    }

    #[test]
    fn grid_is_the_same_however_frames_arrive(pts in camera(), drain_every in 1usize..10,
                                              bad in proptest::collection::vec((0usize..150, -50_000_000i64..=0), 0..10)) {
        let clean: Vec<i64> = grid(frames_from(&pts)).iter().map(|g| g.source_pts_ns).collect();
        // Same frames, output drained at random points, with stale or repeated timestamps mixed
        // in (each dropped and counted).
        let mut feed = frames_from(&pts);
        let mut inserted = 0;
        for &(at, back) in bad.iter().rev() {
            let at = at.min(feed.len() - 1) + 1;
            let stale = VideoFrame { pts_ns: feed[at - 1].pts_ns + back, image: Image::filled(1, 1, PixelFormat::Gray8, 255) };
            feed.insert(at, stale);
            inserted += 1;
        }
        let mut g = GridResampler::new(0);
        let (mut out, mut pending) = (Vec::new(), Vec::new());
        for (i, f) in feed.into_iter().enumerate() {
            let before = pending.len();
            let pts_now = f.pts_ns;
            g.push(f, &mut pending);
            // Emitted as soon as decided: every grid time up to this frame, none beyond.
            prop_assert!(pending[before..].iter().all(|x| grid_time_ns(x.index) <= pts_now));
            if i % drain_every == 0 {
                out.append(&mut pending);
            }
        }
        g.finish(&mut pending);
        out.append(&mut pending);
        prop_assert_eq!(g.dropped_non_monotonic(), inserted);
        prop_assert_eq!(out.iter().map(|g| g.source_pts_ns).collect::<Vec<_>>(), clean);
        prop_assert_eq!(g.next_index(), out.len() as u64);
    }

    #[test]
    fn grid_follows_its_origin(pts in camera(), origin in -1_000_000_000i64..1_000_000_000) {
        // Shifting every timestamp and the origin together changes nothing.
        let shifted: Vec<i64> = pts.iter().map(|p| p + origin).collect();
        let mut g = GridResampler::new(origin);
        let mut out = Vec::new();
        for f in frames_from(&shifted) {
            g.push(f, &mut out);
        }
        g.finish(&mut out);
        let base: Vec<i64> = grid(frames_from(&pts)).iter().map(|g| g.source_pts_ns + origin).collect();
        prop_assert_eq!(out.iter().map(|g| g.source_pts_ns).collect::<Vec<_>>(), base);
    }
}

#[test]
fn sources_are_send() {
    fn send<T: Send>() {}
    send::<FfmpegVideo>();
    send::<FfmpegAudio>();
    send::<impactd::sources::y4m::Y4mSource>();
    send::<impactd::sources::wav::WavSource>();
    send::<GridResampler>();
}

/// Y4M read speed at 640x480, 30 fps (the replay target is 200x real time, 6000 frames/s).
/// Run with `cargo test --release --test sources -- --ignored y4m_read_speed --nocapture`.
#[test]
#[ignore = "timing; run in release"]
fn y4m_read_speed() {
    let dir = tempdir();
    let path = dir.path().join("vga.y4m");
    let (w, h, n) = (640usize, 480usize, 120usize);
    let frame: Vec<u8> = (0..w * h * 3 / 2).map(|i| (i * 31 % 251) as u8).collect();
    write_y4m(&path, "W640 H480 F30:1 C420jpeg", &vec![frame; n]);
    for format in [PixelFormat::Gray8, PixelFormat::Rgb8] {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let start = std::time::Instant::now();
            let mut src = open_video(&path, format).unwrap();
            let mut frames = 0;
            while let Some(f) = src.next_frame().unwrap() {
                assert_eq!(f.image.data.len(), w * h * format.bytes_per_pixel());
                frames += 1;
            }
            assert_eq!(frames, n);
            best = best.min(start.elapsed().as_secs_f64());
        }
        let fps = n as f64 / best;
        println!(
            "y4m 640x480 {format:?}: {fps:.0} frames/s = {:.0}x real time at 30 fps",
            fps / 30.0
        );
    }
}
