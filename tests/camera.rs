//! The camera source's device-free parts: `v4l2-ctl --list-formats-ext` parsing and format
//! negotiation against listings of real cameras, and MJPEG / YUYV decoding of real frames.
//! Fixtures and their sources: tests/fixtures/camera/README.md.

use impactd::capture::decode::{DecodeError, decode_mjpeg, decode_yuyv, with_huffman_tables};
use impactd::capture::formats::{
    CameraFormat, FourCc, Fraction, FrameSize, NegotiationError, RateMatch, Request, SizeMatch,
    SizeRange, negotiate, parse_list_formats_ext,
};
use impactd::media::PixelFormat;
use std::path::PathBuf;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/camera")
        .join(name)
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    let p = fixture_path(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn listing(name: &str) -> Vec<CameraFormat> {
    let text = String::from_utf8(fixture_bytes(name)).expect("fixture is UTF-8");
    parse_list_formats_ext(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn fps(n: u32) -> Fraction {
    Fraction::from_int(n)
}

fn half(n: u32) -> Fraction {
    Fraction::new(n, 2).expect("nonzero denominator")
}

fn ask(w: u32, h: u32, rate: u32) -> Request {
    Request::new(w, h, fps(rate))
}

/// (fourcc, width, height, rates) of every entry, for comparing listings.
fn shape(f: &[CameraFormat]) -> Vec<(FourCc, u32, u32, Vec<Fraction>)> {
    f.iter()
        .map(|e| (e.fourcc, e.width, e.height, e.fps.clone()))
        .collect()
}

fn entry(f: &[CameraFormat], fourcc: FourCc, w: u32, h: u32) -> &CameraFormat {
    f.iter()
        .find(|e| e.fourcc == fourcc && e.width == w && e.height == h)
        .unwrap_or_else(|| panic!("no {fourcc} {w}x{h}"))
}

/// The seven rates a C920 offers at small sizes: 30, 24, 20, 15, 10, 7.5, 5.
fn c920_rates() -> Vec<Fraction> {
    vec![
        fps(30),
        fps(24),
        fps(20),
        fps(15),
        fps(10),
        half(15),
        fps(5),
    ]
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[test]
fn parses_logitech_c920_newer_layout() {
    let f = listing("logitech-c920.txt");
    let count = |fcc| f.iter().filter(|e| e.fourcc == fcc).count();
    assert_eq!(count(FourCc::Yuyv), 19);
    assert_eq!(count(FourCc::Other(*b"H264")), 17);
    assert_eq!(count(FourCc::Mjpg), 17);
    assert_eq!(f.len(), 53);
    let first = &f[0];
    assert_eq!(
        (first.fourcc, first.width, first.height),
        (FourCc::Yuyv, 640, 480)
    );
    assert_eq!(first.description, "YUYV 4:2:2");
    let want = c920_rates();
    assert_eq!(first.fps, want);
    assert_eq!(
        entry(&f, FourCc::Yuyv, 1280, 720).fps,
        vec![fps(10), half(15), fps(5)]
    );
    assert_eq!(entry(&f, FourCc::Yuyv, 2304, 1536).fps, vec![fps(2)]);
    let mj = entry(&f, FourCc::Mjpg, 1920, 1080);
    assert_eq!(mj.description, "Motion-JPEG");
    assert_eq!(mj.fps, want);
    assert_eq!(
        entry(&f, FourCc::Other(*b"H264"), 160, 90).description,
        "H.264"
    );
    assert!(
        f.iter()
            .all(|e| e.size_range.is_none() && e.fps_range.is_none())
    );
}

#[test]
fn both_layouts_of_the_c920_give_the_same_formats() {
    let new = listing("logitech-c920.txt");
    let old = listing("logitech-c920-old-layout.txt");
    assert_eq!(shape(&new), shape(&old));
    // Only the driver's names differ between the two v4l2-ctl versions.
    assert_eq!(old[0].description, "YUV 4:2:2 (YUYV)");
    assert_eq!(entry(&old, FourCc::Mjpg, 640, 480).description, "MJPEG");
}

#[test]
fn parses_logitech_c270_and_a_generic_uvc_camera() {
    let c270 = listing("logitech-c270.txt");
    assert_eq!(c270.len(), 38);
    assert_eq!(
        entry(&c270, FourCc::Yuyv, 1280, 960).fps,
        vec![half(15), fps(5)]
    );
    assert_eq!(
        entry(&c270, FourCc::Mjpg, 1184, 656).fps,
        [30, 25, 20, 15, 10, 5].map(fps).to_vec()
    );
    let elp = listing("elp-4k-uvc.txt");
    assert_eq!(elp.len(), 22);
    assert_eq!(elp[0].fourcc, FourCc::Mjpg);
    assert_eq!(elp[0].size(), FrameSize::new(3840, 2160));
    assert_eq!(entry(&elp, FourCc::Yuyv, 3840, 2160).fps, vec![fps(1)]);
}

#[test]
fn parses_jetson_csi_cameras_in_both_layouts() {
    let nano = listing("jetson-nano-imx219-tegra-video.txt");
    let rg10 = FourCc::Other(*b"RG10");
    assert_eq!(
        shape(&nano),
        vec![
            (rg10, 3264, 2464, vec![fps(21)]),
            (rg10, 3264, 1848, vec![fps(28)]),
            (rg10, 1920, 1080, vec![fps(30)]),
            (rg10, 1640, 1232, vec![fps(30)]),
            (rg10, 1280, 720, vec![fps(60)]),
        ]
    );
    assert_eq!(nano[0].description, "10-bit Bayer RGRG/GBGB");
    let orin = listing("jetson-orin-nano-imx477.txt");
    assert_eq!(
        shape(&orin),
        vec![
            (rg10, 4032, 3040, vec![fps(21)]),
            (rg10, 3840, 2160, vec![fps(30)]),
            (rg10, 1920, 1080, vec![fps(60)]),
        ]
    );
}

#[test]
fn parses_stepwise_sizes_without_intervals() {
    let f = listing("rpi-unicam-imx708.txt");
    assert_eq!(f.len(), 51);
    let range = SizeRange {
        min: FrameSize::new(16, 16),
        max: FrameSize::new(16376, 16376),
        step: FrameSize::new(1, 1),
    };
    assert!(
        f.iter()
            .all(|e| e.size_range == Some(range) && e.fps.is_empty())
    );
    assert_eq!(f[0].fourcc, FourCc::Yuyv);
    assert_eq!(f[45].fourcc, FourCc::Other(*b"Y10 "));
    assert_eq!(f[45].description, "10-bit Greyscale");
    assert_eq!(f[44].description, "10-bit Greyscale (MIPI Packed)");
}

#[test]
fn parses_with_all_output_around_the_listing() {
    // `v4l2-ctl --all --list-formats-ext` prints the current format ("Pixel Format : 'YUYV'")
    // before the listing; only the listing counts.
    let text = format!(
        "Format Video Capture:\n\tWidth/Height      : 640/480\n\tPixel Format      : 'YUYV' (YUYV 4:2:2)\n{}",
        String::from_utf8(fixture_bytes("jetson-nano-imx219-tegra-video.txt")).expect("utf-8")
    );
    let f = parse_list_formats_ext(&text).expect("parses");
    assert!(f.iter().all(|e| e.fourcc == FourCc::Other(*b"RG10")));
    // And `--all` alone lists no formats, which negotiation reports.
    let all_only = "Format Video Capture:\n\tPixel Format      : 'YUYV' (YUYV 4:2:2)\n";
    let f = parse_list_formats_ext(all_only).expect("parses");
    assert_eq!(
        negotiate(&f, &ask(640, 480, 12)),
        Err(NegotiationError::NoFormats)
    );
}

// ---------------------------------------------------------------------------------------------
// Negotiation

#[test]
fn c920_asked_12_fps_gets_mjpeg_at_15() {
    let f = listing("logitech-c920.txt");
    let c = negotiate(&f, &ask(640, 480, 12)).expect("usable");
    assert_eq!(
        (c.fourcc, c.width, c.height, c.fps),
        (FourCc::Mjpg, 640, 480, fps(15))
    );
    assert_eq!(
        (c.size_match, c.rate_match),
        (SizeMatch::Exact, RateMatch::NearestAbove)
    );
    assert_eq!(
        c.summary,
        "asked 640x480@12, chose MJPG 640x480@15 (nearest rate)"
    );
    // The older layout of the same camera negotiates the same.
    let old = listing("logitech-c920-old-layout.txt");
    assert_eq!(negotiate(&old, &ask(640, 480, 12)), Ok(c));
}

#[test]
fn c920_exact_request_and_rate_before_preference() {
    let f = listing("logitech-c920.txt");
    let c = negotiate(&f, &ask(1280, 720, 30)).expect("usable");
    assert_eq!(
        c.summary,
        "asked 1280x720@30, chose MJPG 1280x720@30 (exact)"
    );
    // Preferring YUYV: at 1920x1080 it only reaches 5 fps, MJPEG reaches 15, so MJPEG.
    let mut req = ask(1920, 1080, 12);
    req.prefer = vec![FourCc::Yuyv, FourCc::Mjpg];
    let c = negotiate(&f, &req).expect("usable");
    assert_eq!(
        c.summary,
        "asked 1920x1080@12, chose MJPG 1920x1080@15 (nearest rate, better match than YUYV)"
    );
    // YUYV alone: the highest rate it has at that size.
    req.prefer = vec![FourCc::Yuyv];
    let c = negotiate(&f, &req).expect("usable");
    assert_eq!(
        c.summary,
        "asked 1920x1080@12, chose YUYV 1920x1080@5 (highest rate, below 12)"
    );
    assert_eq!(c.rate_match, RateMatch::HighestBelow);
}

#[test]
fn c270_nearest_size_and_rate() {
    let f = listing("logitech-c270.txt");
    let c = negotiate(&f, &ask(1280, 720, 12)).expect("usable");
    assert_eq!(
        c.summary,
        "asked 1280x720@12, chose MJPG 1280x720@15 (nearest rate)"
    );
    // No 1080p: the nearest area is 1280x960 (1.69x smaller) before 1280x720 (2.25x).
    let c = negotiate(&f, &ask(1920, 1080, 12)).expect("usable");
    assert_eq!(
        c.summary,
        "asked 1920x1080@12, chose MJPG 1280x960@15 (nearest size, nearest rate)"
    );
    assert_eq!(c.size_match, SizeMatch::Nearest);
    // Between 320x176 and 320x240 for 320x180: the area decides (1.02x vs 1.33x).
    let c = negotiate(&f, &ask(320, 180, 30)).expect("usable");
    assert_eq!(
        c.summary,
        "asked 320x180@30, chose MJPG 320x176@30 (nearest size)"
    );
    // YUYV only at 1280x720: 7.5 fps is all it has.
    let mut req = ask(1280, 720, 12);
    req.prefer = vec![FourCc::Yuyv];
    let c = negotiate(&f, &req).expect("usable");
    assert_eq!((c.fourcc, c.fps), (FourCc::Yuyv, half(15)));
    assert_eq!(
        c.summary,
        "asked 1280x720@12, chose YUYV 1280x720@7.5 (highest rate, below 12)"
    );
}

#[test]
fn generic_uvc_camera() {
    let f = listing("elp-4k-uvc.txt");
    let c = negotiate(&f, &ask(640, 480, 12)).expect("usable");
    assert_eq!(
        c.summary,
        "asked 640x480@12, chose MJPG 640x480@15 (nearest rate)"
    );
    // 960x720 is not listed: 1024x768 (1.14x) is nearer than 800x600 (1.44x).
    let c = negotiate(&f, &ask(960, 720, 30)).expect("usable");
    assert_eq!(
        c.summary,
        "asked 960x720@30, chose MJPG 1024x768@30 (nearest size)"
    );
}

#[test]
fn jetson_csi_camera_is_refused_with_the_list_and_the_pipeline_hint() {
    let f = listing("jetson-nano-imx219-tegra-video.txt");
    let e = negotiate(&f, &ask(1280, 720, 12)).expect_err("RG10 only");
    let NegotiationError::NoUsableFormat { supported, hint } = &e else {
        panic!("wrong error: {e}");
    };
    assert_eq!(
        supported,
        &vec![
            "RG10 (10-bit Bayer RGRG/GBGB): 3264x2464@21, 3264x1848@28, 1920x1080@30, \
             1640x1232@30, 1280x720@60"
                .to_string()
        ]
    );
    let msg = e.to_string();
    for needle in [
        "neither MJPG nor YUYV",
        "RG10 (10-bit Bayer RGRG/GBGB): 3264x2464@21",
        "tegra-video",
        "GStreamer",
        "nvarguscamerasrc",
        "--video -",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
    assert!(hint.contains("Bayer"));
    let orin = listing("jetson-orin-nano-imx477.txt");
    let e = negotiate(&orin, &ask(1280, 720, 12)).expect_err("RG10 only");
    assert!(
        e.to_string()
            .contains("RG10 (10-bit Bayer RGRG/GBGB): 4032x3040@21, 3840x2160@30, 1920x1080@60"),
        "{e}"
    );
}

#[test]
fn h264_or_grey_only_cameras_are_refused_with_every_format() {
    let c920 = listing("logitech-c920.txt");
    let h264: Vec<CameraFormat> = c920
        .into_iter()
        .filter(|e| e.fourcc == FourCc::Other(*b"H264"))
        .collect();
    let e = negotiate(&h264, &ask(640, 480, 12)).expect_err("H264 only");
    let msg = e.to_string();
    assert!(
        msg.contains("H264 (H.264): 640x480@30/24/20/15/10/7.5/5, 160x90@30/24/20/15/10/7.5/5"),
        "{msg}"
    );
    assert!(msg.contains("--video -") && !msg.contains("Bayer"), "{msg}");
    let grey = vec![
        CameraFormat::discrete(FourCc::Other(*b"GREY"), 752, 480, &[60]),
        CameraFormat::discrete(FourCc::Other(*b"Y16 "), 752, 480, &[30]),
    ];
    let e = negotiate(&grey, &ask(640, 480, 12)).expect_err("grey only");
    assert!(
        e.to_string()
            .contains("it supports: GREY: 752x480@60; Y16: 752x480@30."),
        "{e}"
    );
}

#[test]
fn stepwise_yuyv_gets_the_requested_size() {
    let f = listing("rpi-unicam-imx708.txt");
    let c = negotiate(&f, &ask(640, 480, 12)).expect("YUYV offered");
    assert_eq!(
        (c.fourcc, c.width, c.height, c.fps),
        (FourCc::Yuyv, 640, 480, fps(12))
    );
    assert_eq!(
        c.summary,
        "asked 640x480@12, chose YUYV 640x480@12 (rates not listed, no MJPG)"
    );
    // Outside the range: clamped.
    let c = negotiate(&f, &ask(8, 8, 12)).expect("YUYV offered");
    assert_eq!(
        (c.width, c.height, c.size_match),
        (16, 16, SizeMatch::Nearest)
    );
}

// ---------------------------------------------------------------------------------------------
// MJPEG decoding

const MJPEG: &str = "mjpeg-960x720.jpg";

/// The reference decode (RGB8, 960x720), read with the `png` crate.
fn reference_rgb() -> Vec<u8> {
    let file = std::fs::File::open(fixture_path("mjpeg-960x720.reference.png")).expect("open");
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!((info.width, info.height), (960, 720));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    buf
}

/// (mean, max) absolute difference of two equally long byte buffers.
fn diff(a: &[u8], b: &[u8]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let mut sum = 0u64;
    let mut max = 0u8;
    for (x, y) in a.iter().zip(b) {
        let d = x.abs_diff(*y);
        sum += d as u64;
        max = max.max(d);
    }
    (sum as f64 / a.len() as f64, max)
}

/// The frame without its `AVI1` APP0 segment (bytes 2..37): what most UVC cameras send, no
/// AVI1 and no Huffman tables.
fn without_avi1(jpeg: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[2..4], &[0xFF, 0xE0]);
    assert_eq!(&jpeg[6..11], b"AVI1\0");
    let len = u16::from_be_bytes([jpeg[4], jpeg[5]]) as usize;
    let mut v = jpeg[..2].to_vec();
    v.extend_from_slice(&jpeg[4 + len..]);
    v
}

#[test]
fn mjpeg_frame_matches_the_reference_decode() {
    let img = decode_mjpeg(&fixture_bytes(MJPEG), 960, 720, PixelFormat::Rgb8).expect("decodes");
    assert_eq!(
        (img.width, img.height, img.format),
        (960, 720, PixelFormat::Rgb8)
    );
    let (mean, max) = diff(&img.data, &reference_rgb());
    // Measured with zune-jpeg 0.5.15: mean 0.008, max 3 (IDCT rounding differences); the
    // bound leaves one level of headroom.
    assert!(mean < 2.0, "mean absolute difference {mean}");
    assert!(max <= 4, "max absolute difference {max}");
}

#[test]
fn mjpeg_gray8_is_the_luma_of_the_reference() {
    let img = decode_mjpeg(&fixture_bytes(MJPEG), 960, 720, PixelFormat::Gray8).expect("decodes");
    assert_eq!(img.data.len(), 960 * 720);
    let luma: Vec<u8> = reference_rgb()
        .chunks_exact(3)
        .map(|p| {
            let y = 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
            y.round().clamp(0.0, 255.0) as u8
        })
        .collect();
    let (mean, max) = diff(&img.data, &luma);
    // Measured with zune-jpeg 0.5.15: mean 0.009, max 5 (the reference's RGB is rounded and
    // clamped before its luma is taken here); one level of headroom.
    assert!(mean < 2.0, "mean absolute difference {mean}");
    assert!(max <= 6, "max absolute difference {max}");
}

#[test]
fn mjpeg_without_avi1_or_huffman_tables_gets_the_standard_tables() {
    let original = fixture_bytes(MJPEG);
    let bare = without_avi1(&original);
    // The decoder alone cannot: it only fills in tables for frames marked AVI1.
    let alone = zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(
        bare.as_slice(),
    ))
    .decode();
    assert!(alone.is_err(), "zune-jpeg decoded a frame without tables");
    // With the inserted tables, the same picture as the AVI1 frame.
    let a = decode_mjpeg(&original, 960, 720, PixelFormat::Rgb8).expect("decodes");
    let b = decode_mjpeg(&bare, 960, 720, PixelFormat::Rgb8).expect("decodes");
    assert_eq!(a, b);
    // The patched frame is a standalone JPEG: it now has a DHT, so it is not patched again,
    // and a plain decoder reads it.
    let patched = with_huffman_tables(&bare).expect("framing ok").into_owned();
    assert_eq!(patched.len(), bare.len() + 420);
    let again = with_huffman_tables(&patched).expect("framing ok");
    assert!(matches!(again, std::borrow::Cow::Borrowed(_)));
    assert_eq!(&*again, patched.as_slice());
    let plain = zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(
        patched.as_slice(),
    ))
    .decode()
    .expect("a plain decoder reads the patched frame");
    assert_eq!(plain, b.data);
    assert_eq!(
        decode_mjpeg(&patched, 960, 720, PixelFormat::Rgb8).expect("decodes"),
        b
    );
}

#[test]
fn mjpeg_zero_padding_after_the_end_is_accepted() {
    let mut padded = fixture_bytes(MJPEG);
    let clean = decode_mjpeg(&padded, 960, 720, PixelFormat::Gray8).expect("decodes");
    padded.extend_from_slice(&[0; 4096]);
    assert_eq!(
        decode_mjpeg(&padded, 960, 720, PixelFormat::Gray8).expect("decodes"),
        clean
    );
}

#[test]
fn mjpeg_fill_bytes_before_restart_markers_are_accepted() {
    // A marker may be preceded by 0xFF fill bytes (T.81 B.1.1.2), restart markers included.
    let full = fixture_bytes(MJPEG);
    let clean = decode_mjpeg(&full, 960, 720, PixelFormat::Gray8).expect("decodes");
    let scan = 220; // entropy-coded data starts after the SOS segment
    let rst = (scan..full.len() - 1)
        .find(|&k| full[k] == 0xFF && (0xD0..=0xD7).contains(&full[k + 1]))
        .expect("the frame uses restart markers");
    let mut filled = full[..rst].to_vec();
    filled.extend_from_slice(&[0xFF, 0xFF]);
    filled.extend_from_slice(&full[rst..]);
    assert_eq!(
        decode_mjpeg(&filled, 960, 720, PixelFormat::Gray8).map(|i| i.data == clean.data),
        Ok(true)
    );
}

#[test]
fn mjpeg_truncated_frames_are_errors() {
    let full = fixture_bytes(MJPEG);
    for cut in [
        1,
        3,
        20,
        100,
        200,
        210,
        218,
        1000,
        full.len() / 2,
        full.len() - 100,
        full.len() - 2,
        full.len() - 1,
    ] {
        for format in [PixelFormat::Gray8, PixelFormat::Rgb8] {
            match decode_mjpeg(&full[..cut], 960, 720, format).map(|i| (i.width, i.height)) {
                Err(DecodeError::Truncated { len, .. }) => assert_eq!(len, cut),
                Err(DecodeError::NotJpeg { .. }) if cut < 2 => {}
                other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
            }
        }
    }
    let e =
        decode_mjpeg(&full[..full.len() / 2], 960, 720, PixelFormat::Rgb8).expect_err("truncated");
    assert!(
        e.to_string()
            .contains("does not end with the end-of-image marker (FF D9)"),
        "{e}"
    );
    // Data lost from the middle of a frame that still ends with EOI (dropped USB packets):
    // the decoder would fill the rest with grey; the missing restart markers give it away.
    for (from, to) in [(5000, 9000), (60_000, 60_300), (1000, full.len() - 2)] {
        let mut holed = full[..from].to_vec();
        holed.extend_from_slice(&full[to..]);
        let e = decode_mjpeg(&holed, 960, 720, PixelFormat::Rgb8)
            .map(|i| (i.width, i.height))
            .expect_err("hole");
        assert!(
            matches!(&e, DecodeError::Truncated { reason, .. } if reason.contains("restart markers")),
            "{from}..{to}: {e}"
        );
    }
}

#[test]
fn mjpeg_corrupt_and_wrong_frames_are_errors() {
    let full = fixture_bytes(MJPEG);
    // Not a JPEG at all.
    let e = decode_mjpeg(
        &fixture_bytes("yuyv-1280x720.yuyv"),
        960,
        720,
        PixelFormat::Rgb8,
    )
    .expect_err("raw bytes");
    assert!(matches!(e, DecodeError::NotJpeg { .. }), "{e}");
    // A broken marker in the headers (the DQT at byte 37 no longer starts with FF).
    let mut bad = full.clone();
    bad[37] = 0x12;
    let e = decode_mjpeg(&bad, 960, 720, PixelFormat::Rgb8).expect_err("bad marker");
    assert!(
        e.to_string().contains("expected a marker at byte 37"),
        "{e}"
    );
    // A segment length running past the end.
    let mut bad = full.clone();
    bad[39] = 0xFF;
    bad[40] = 0xFF;
    let e = decode_mjpeg(&bad[..2000], 960, 720, PixelFormat::Rgb8).expect_err("long segment");
    assert!(matches!(e, DecodeError::Truncated { .. }), "{e}");
    // Garbage after SOI.
    let mut garbage = vec![0xFF, 0xD8];
    garbage.extend((0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
    assert!(decode_mjpeg(&garbage, 960, 720, PixelFormat::Rgb8).is_err());
    // The wrong negotiated size.
    let e = decode_mjpeg(&full, 640, 480, PixelFormat::Rgb8).expect_err("size");
    assert_eq!(
        e,
        DecodeError::SizeMismatch {
            width: 640,
            height: 480,
            actual_width: 960,
            actual_height: 720
        }
    );
    assert_eq!(
        e.to_string(),
        "MJPEG frame is 960x720, expected the negotiated 640x480"
    );
    assert!(matches!(
        decode_mjpeg(&full, 0, 720, PixelFormat::Rgb8),
        Err(DecodeError::BadDimensions { .. })
    ));
}

#[test]
fn mjpeg_mutated_frames_never_panic() {
    let full = fixture_bytes(MJPEG);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let (mut ok, mut err) = (0, 0);
    for round in 0..120 {
        let mut m = full.clone();
        let n = 1 + (next() % 8) as usize;
        for _ in 0..n {
            // Mostly the headers and the start of the scan, where damage matters most.
            let limit = if round % 2 == 0 { 400 } else { m.len() };
            let i = (next() as usize) % limit;
            m[i] = next() as u8;
        }
        match decode_mjpeg(&m, 960, 720, PixelFormat::Gray8) {
            Ok(img) => {
                assert_eq!(img.data.len(), 960 * 720);
                ok += 1;
            }
            Err(_) => err += 1,
        }
    }
    assert_eq!(ok + err, 120);
}

// ---------------------------------------------------------------------------------------------
// YUYV decoding

const YUYV: &str = "yuyv-1280x720.yuyv";

#[test]
fn yuyv_gray8_is_the_y_samples() {
    let raw = fixture_bytes(YUYV);
    assert_eq!(raw.len(), 1280 * 720 * 2);
    let img = decode_yuyv(&raw, 1280, 720, PixelFormat::Gray8).expect("decodes");
    assert_eq!(
        (img.width, img.height, img.format),
        (1280, 720, PixelFormat::Gray8)
    );
    let y: Vec<u8> = raw.iter().step_by(2).copied().collect();
    assert_eq!(img.data, y);
}

/// BT.601 limited range to full-range RGB, in floating point, rounded.
fn reference_yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let (y, u, v) = (y as f64 - 16.0, u as f64 - 128.0, v as f64 - 128.0);
    let c = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    [
        c(1.164383 * y + 1.596027 * v),
        c(1.164383 * y - 0.391762 * u - 0.812968 * v),
        c(1.164383 * y + 2.017232 * u),
    ]
}

#[test]
fn yuyv_rgb8_follows_bt601_limited_range() {
    let raw = fixture_bytes(YUYV);
    let img = decode_yuyv(&raw, 1280, 720, PixelFormat::Rgb8).expect("decodes");
    assert_eq!(img.data.len(), 1280 * 720 * 3);
    let (w, h) = (1280usize, 720usize);
    let mut checked = 0;
    let mut max_err = 0u8;
    // Spot checks: the corners, the centre, and a spread of pixels across the frame.
    let mut points = vec![
        (0, 0),
        (w - 1, 0),
        (0, h - 1),
        (w - 1, h - 1),
        (w / 2, h / 2),
    ];
    points.extend((0..2000).map(|k| ((k * 7919) % w, (k * 104_729) % h)));
    for (x, y) in points {
        let pair = (y * w + x) / 2 * 4;
        let luma = raw[(y * w + x) * 2];
        let want = reference_yuv_to_rgb(luma, raw[pair + 1], raw[pair + 3]);
        let got = &img.data[(y * w + x) * 3..][..3];
        for k in 0..3 {
            max_err = max_err.max(got[k].abs_diff(want[k]));
        }
        checked += 1;
    }
    assert_eq!(checked, 2005);
    // Fixed point (16 fractional bits) against f64: identical but for values within about
    // 1e-4 of a rounding boundary (measured: 0 at all 2005 points of this frame).
    assert!(max_err <= 1, "max difference {max_err}");
    // The frame is a real one: not uniform.
    let (lo, hi) = img
        .data
        .iter()
        .fold((255u8, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(hi - lo > 100, "range {lo}..{hi}");
}

#[test]
fn yuyv_wrong_buffer_sizes_are_errors() {
    let raw = fixture_bytes(YUYV);
    for (len, what) in [
        (raw.len() - 1, "one byte short"),
        (raw.len() - 1280 * 2, "one row short"),
        (0, "empty"),
    ] {
        let e = decode_yuyv(&raw[..len], 1280, 720, PixelFormat::Rgb8).expect_err(what);
        assert_eq!(
            e,
            DecodeError::WrongBufferSize {
                format: "YUYV",
                width: 1280,
                height: 720,
                bytes_per_pixel: 2,
                expected: 1_843_200,
                actual: len
            },
            "{what}"
        );
    }
    let mut long = raw.clone();
    long.push(0);
    let e = decode_yuyv(&long, 1280, 720, PixelFormat::Gray8).expect_err("too long");
    assert_eq!(
        e.to_string(),
        "YUYV 1280x720 needs 1843200 bytes (2 per pixel), the buffer has 1843201"
    );
    // The right length for another size is still the wrong size.
    let e = decode_yuyv(&raw, 1281, 719, PixelFormat::Gray8).expect_err("odd width");
    assert!(matches!(e, DecodeError::BadDimensions { .. }), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Timing (no assertions): cargo test --release --test camera -- --ignored --nocapture

#[test]
#[ignore = "timing only; run in release with --nocapture"]
fn decode_timings() {
    let mjpeg = fixture_bytes(MJPEG);
    let yuyv = fixture_bytes(YUYV);
    let time = |name: &str, f: &dyn Fn()| {
        f(); // warm up
        let mut ms: Vec<f64> = (0..50)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "{name}: median {:.2} ms, min {:.2} ms per frame",
            ms[ms.len() / 2],
            ms[0]
        );
    };
    for format in [PixelFormat::Rgb8, PixelFormat::Gray8] {
        time(&format!("MJPEG 960x720 -> {format:?}"), &|| {
            std::hint::black_box(decode_mjpeg(&mjpeg, 960, 720, format).expect("decodes"));
        });
        let bare = without_avi1(&mjpeg);
        time(&format!("MJPEG 960x720 no DHT -> {format:?}"), &|| {
            std::hint::black_box(decode_mjpeg(&bare, 960, 720, format).expect("decodes"));
        });
        time(&format!("YUYV 1280x720 -> {format:?}"), &|| {
            std::hint::black_box(decode_yuyv(&yuyv, 1280, 720, format).expect("decodes"));
        });
    }
}
