//! Evidence: for each event of the configured kinds, a PNG in `evidence.dir` that shows the
//! predicted and heard loudness around the event, the event marked, and the video frame at the
//! event beside it. Drawn with `plotters` (bitmap backend, text through `ab_glyph` with the
//! committed DejaVu Sans in assets/fonts/, so no fontconfig or system font is needed), encoded
//! with `png`.
//!
//! The thread keeps the last [`FRAMES_KEPT`] grid frames as thumbnails and the last
//! [`ROWS_KEPT`] envelope rows. An event is drawn once the rows [`AFTER_S`] after it are final
//! (or at the end of the stream). Files are written to `.writing.png` and renamed, so a reader
//! never sees half a file. After each file the directory is trimmed to `evidence.max_bytes` and
//! `evidence.max_age` (oldest first). A failed write (full disk, no permission) skips that PNG,
//! is logged and counted (`impactd_evidence_skipped_total`); events flow on regardless.
//!
//! With `evidence.clips`, the thread also keeps the last 10 s of audio and writes, beside each
//! PNG, the seconds around the event as Y4M (the thumbnails, 4:4:4) + WAV (16-bit), then asks
//! ffmpeg for an MP4 in their place; without ffmpeg the Y4M and WAV stay.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, SystemTime};

use crossbeam_channel::Receiver;
use plotters::prelude::*;

use super::{Msg, SinkStats};
use crate::config::EvidenceConfig;
use crate::detector::Kind;
use crate::events::{Event, FrameRow};
use crate::media::{GRID_FPS, Image, PixelFormat};

/// Queue between the pipeline and this thread (rows and thumbnails at 12 fps each: ~20 s).
pub const QUEUE: usize = 512;
/// Grid frames kept (thumbnails): 6 s, longer than an event can take to be decided.
pub const FRAMES_KEPT: usize = 72;
/// Envelope rows kept: 20 s.
pub const ROWS_KEPT: usize = 240;
/// Seconds of envelope shown before and after the event.
pub const BEFORE_S: f64 = 3.0;
pub const AFTER_S: f64 = 1.5;
/// Seconds of clip before the event (after: [`AFTER_S`]).
pub const CLIP_BEFORE_S: f64 = 2.0;
/// Audio kept for clips (s).
const AUDIO_KEPT_S: f64 = 10.0;
/// Thumbnails are at most this wide.
pub const THUMB_WIDTH: u32 = 320;
/// Top of the y axis: headroom above loudness 1 keeps the legend off the curves.
const Y_TOP: f64 = 1.45;
/// Size of the PNG.
pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 520;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Event id -> its PNG, for `GET /events/{id}/plot.png` (the newest 10 000).
#[derive(Debug, Clone, Default)]
pub struct PlotIndex(Arc<Mutex<BTreeMap<u64, PathBuf>>>);

impl PlotIndex {
    fn insert(&self, id: u64, path: PathBuf) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(id, path);
        while m.len() > 10_000 {
            m.pop_first();
        }
    }

    /// The PNG of event `id`, if one was written.
    pub fn get(&self, id: u64) -> Option<PathBuf> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }
}

/// An RGB copy of `img`, at most [`THUMB_WIDTH`] wide (every n-th pixel: cheap enough for the
/// pipeline thread, which makes it).
pub fn thumbnail(img: &Image) -> Image {
    let step = img.width.div_ceil(THUMB_WIDTH).max(1) as usize;
    let (w, h) = (img.width as usize / step, img.height as usize / step);
    let bpp = img.format.bytes_per_pixel();
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        let row = &img.data[y * step * img.width as usize * bpp..];
        for x in 0..w {
            let p = &row[x * step * bpp..];
            match img.format {
                PixelFormat::Rgb8 => data.extend_from_slice(&p[..3]),
                PixelFormat::Gray8 => data.extend_from_slice(&[p[0]; 3]),
            }
        }
    }
    Image::new(w as u32, h as u32, PixelFormat::Rgb8, data)
}

/// Where the chart's data lands in the PNG (for tests and anyone who annotates it).
#[derive(Debug, Clone, PartialEq)]
pub struct PlotGeometry {
    /// Pixel columns and rows of the plotting area.
    pub x_px: Range<i32>,
    pub y_px: Range<i32>,
    /// Seconds shown on the x axis, and the loudness range on the y axis.
    pub t: Range<f64>,
    pub v: Range<f64>,
}

impl PlotGeometry {
    /// The pixel of (t seconds, loudness v), as plotters maps it.
    pub fn pixel(&self, t: f64, v: f64) -> (i32, i32) {
        let fx = (t - self.t.start) / (self.t.end - self.t.start);
        let fy = (v - self.v.start) / (self.v.end - self.v.start);
        let x = self.x_px.start as f64 + fx * (self.x_px.end - self.x_px.start) as f64;
        let y = self.y_px.end as f64 - fy * (self.y_px.end - self.y_px.start) as f64;
        (x.round() as i32, y.round() as i32)
    }
}

/// Colours of the chart, public so tests can look for them.
pub const PREDICTED: RGBColor = RGBColor(31, 119, 180);
pub const OBSERVED: RGBColor = RGBColor(255, 127, 14);
pub const MARKER: RGBColor = RGBColor(214, 39, 40);

fn kind_title(k: Kind) -> &'static str {
    match k {
        Kind::Impact => "Impact (seen and heard)",
        Kind::UnseenSound => "Unseen sound (heard, nothing visible)",
        Kind::SilentImpact => "Silent impact (seen, not heard)",
    }
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            log::error!("evidence: the built-in font did not load: PNGs will have no text");
        }
    });
}

/// Draws the evidence PNG of `event` from the envelope `rows` around it and the video `frame`
/// at the event (if still held). Returns the PNG and where the chart's data is.
pub fn render(
    event: &Event,
    rows: &[FrameRow],
    frame: Option<&Image>,
) -> Result<(Vec<u8>, PlotGeometry), String> {
    register_font();
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    let geometry;
    {
        let err = |e: DrawingAreaErrorKind<_>| e.to_string();
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        let conf = (event.confidence * 100.0).round();
        let when = event.ts.replace('T', " ").replace('Z', " UTC");
        let title = format!(
            "{} at {:.2} s into the stream ({when}), confidence {conf}%",
            kind_title(event.kind),
            event.t
        );
        let root = root
            .titled(&title, ("sans-serif", 22).into_font().color(&BLACK))
            .map_err(err)?;
        let (left, right) = root.split_horizontally(WIDTH - 430);

        let t0 = (event.t - BEFORE_S).max(0.0);
        let t1 = event.t + AFTER_S;
        let shown: Vec<&FrameRow> = rows.iter().filter(|r| r.t >= t0 && r.t <= t1).collect();
        let mut chart = ChartBuilder::on(&left)
            .margin(12)
            .x_label_area_size(46)
            .y_label_area_size(64)
            .build_cartesian_2d(t0..t1, 0.0..Y_TOP)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time since the stream started (seconds)")
            .y_desc("loudness (0 = silent, 1 = loudest of the last 4 s)")
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 14))
            .x_label_formatter(&|t| format!("{t:.1}"))
            // The headroom above 1 is for the legend: no ticks there.
            .y_label_formatter(&|v| {
                if *v <= 1.0 + 1e-9 {
                    format!("{v:.1}")
                } else {
                    String::new()
                }
            })
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(event.t, 0.0), (event.t, 1.0)],
                MARKER.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("the event, at {:.2} s", event.t))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], MARKER.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                shown.iter().map(|r| (r.t, r.predicted as f64)),
                PREDICTED.stroke_width(3),
            ))
            .map_err(err)?
            .label("expected from the video (the model's prediction)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], PREDICTED.stroke_width(3)));
        chart
            .draw_series(LineSeries::new(
                shown.iter().map(|r| (r.t, r.observed as f64)),
                OBSERVED.stroke_width(3),
            ))
            .map_err(err)?
            .label("heard by the microphone")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], OBSERVED.stroke_width(3)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(err)?;
        let (x_px, y_px) = chart.plotting_area().get_pixel_range();
        geometry = PlotGeometry {
            x_px,
            y_px,
            t: t0..t1,
            v: 0.0..Y_TOP,
        };

        let right = right.margin(40, 12, 12, 12);
        let ft = event.frame as f64 / GRID_FPS as f64;
        let caption = format!("camera at the event (frame {}, {ft:.2} s)", event.frame);
        right
            .draw(&Text::new(caption, (0, 0), ("sans-serif", 16).into_font()))
            .map_err(err)?;
        match frame {
            Some(img) => {
                let (pw, ph) = right.dim_in_pixel();
                let (w, h, buf) = fit(img, pw, ph.saturating_sub(60));
                if let Some(bm) = BitMapElement::<_, plotters::backend::RGBPixel>::with_owned_buffer(
                    (0, 30),
                    (w, h),
                    buf,
                ) {
                    right.draw(&bm).map_err(err)?;
                }
            }
            None => right
                .draw(&Text::new(
                    "(the frame was no longer held)",
                    (0, 40),
                    ("sans-serif", 15).into_font(),
                ))
                .map_err(err)?,
        }
        root.present().map_err(err)?;
    }
    let mut png = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png, WIDTH, HEIGHT);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(&rgb).map_err(|e| e.to_string())?;
    }
    Ok((png, geometry))
}

/// `img` (RGB) scaled (nearest) to fit `max_w` x `max_h`, aspect kept.
fn fit(img: &Image, max_w: u32, max_h: u32) -> (u32, u32, Vec<u8>) {
    let s = (max_w as f64 / img.width as f64).min(max_h as f64 / img.height as f64);
    let (w, h) = (
        ((img.width as f64 * s) as u32).max(1),
        ((img.height as f64 * s) as u32).max(1),
    );
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        let sy = ((y as f64 / s) as u32).min(img.height - 1) as usize;
        for x in 0..w {
            let sx = ((x as f64 / s) as u32).min(img.width - 1) as usize;
            let i = (sy * img.width as usize + sx) * 3;
            out.extend_from_slice(&img.data[i..i + 3]);
        }
    }
    (w, h, out)
}

/// The evidence thread's state.
pub struct Writer {
    dir: PathBuf,
    kinds: Vec<Kind>,
    max_bytes: u64,
    max_age: Duration,
    stats: Arc<SinkStats>,
    plots: PlotIndex,
    frames: VecDeque<(u64, Arc<Image>)>,
    rows: VecDeque<FrameRow>,
    pending: Vec<(Arc<Event>, Option<Arc<Image>>)>,
    clips: bool,
    /// The last [`AUDIO_KEPT_S`] of audio, its rate, and how many samples came before its end.
    audio: VecDeque<f32>,
    rate: u32,
    audio_end: u64,
    ffmpeg: std::ffi::OsString,
    /// ffmpeg could not be run: clips stay Y4M + WAV (logged once).
    no_ffmpeg: bool,
}

impl Writer {
    /// Creates `cfg.dir` if needed.
    pub fn new(
        cfg: &EvidenceConfig,
        stats: Arc<SinkStats>,
        plots: PlotIndex,
    ) -> io::Result<Writer> {
        std::fs::create_dir_all(&cfg.dir)?;
        Ok(Writer {
            dir: cfg.dir.clone(),
            kinds: cfg.kinds.clone(),
            max_bytes: cfg.max_bytes,
            max_age: cfg.max_age,
            stats,
            plots,
            frames: VecDeque::with_capacity(FRAMES_KEPT),
            rows: VecDeque::with_capacity(ROWS_KEPT),
            pending: Vec::new(),
            clips: cfg.clips,
            audio: VecDeque::new(),
            rate: 0,
            audio_end: 0,
            ffmpeg: crate::sources::ffmpeg::FfmpegTools::from_env().ffmpeg,
            no_ffmpeg: false,
        })
    }

    /// Runs until the queue closes, then writes what is pending.
    pub fn run(mut self, rx: Receiver<Msg>) {
        for m in rx {
            match m {
                Msg::Image(i, img) => {
                    if self.frames.len() == FRAMES_KEPT {
                        self.frames.pop_front();
                    }
                    self.frames.push_back((i, img));
                }
                Msg::Row(r) => {
                    if self.rows.len() == ROWS_KEPT {
                        self.rows.pop_front();
                    }
                    self.rows.push_back(r);
                    self.write_ready(r.t);
                }
                Msg::Event(e) if self.kinds.contains(&e.kind) => {
                    let frame = self
                        .frames
                        .iter()
                        .rev()
                        .find(|(i, _)| *i <= e.frame)
                        .map(|(_, f)| f.clone());
                    self.pending.push((e, frame));
                }
                Msg::Event(_) => {}
                Msg::Audio(rate, samples) => {
                    self.rate = rate;
                    self.audio.extend(samples.iter());
                    self.audio_end += samples.len() as u64;
                    let keep = (AUDIO_KEPT_S * rate as f64) as usize;
                    if self.audio.len() > keep {
                        self.audio.drain(..self.audio.len() - keep);
                    }
                }
                Msg::Flush => self.write_ready(f64::INFINITY),
            }
        }
        self.write_ready(f64::INFINITY);
    }

    fn write_ready(&mut self, now_t: f64) {
        let ready: Vec<_> = {
            let (ready, wait) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|(e, _)| e.t + AFTER_S <= now_t);
            self.pending = wait;
            ready
        };
        for (e, frame) in ready {
            match self.write(&e, frame.as_deref()) {
                Ok(path) => {
                    self.stats.evidence_written.fetch_add(1, Ordering::Relaxed);
                    log::debug!("evidence: event {} -> {}", e.id, path.display());
                    if self.clips {
                        // Not with_extension: the time in the name has a '.' of its own.
                        let base = path.to_string_lossy();
                        let base = Path::new(base.strip_suffix(".png").unwrap_or(&base));
                        if let Err(err) = self.write_clip(&e, base) {
                            log::warn!("evidence: no clip for event {}: {err}", e.id);
                        }
                    }
                    self.plots.insert(e.id, path);
                    self.trim();
                }
                Err(err) => {
                    let n = self.stats.evidence_skipped.fetch_add(1, Ordering::Relaxed);
                    if n < 10 || n % 100 == 0 {
                        log::warn!(
                            "evidence: skipped the PNG of event {} ({} skipped so far): {err}",
                            e.id,
                            n + 1
                        );
                    }
                }
            }
        }
    }

    fn write(&self, e: &Event, frame: Option<&Image>) -> Result<PathBuf, String> {
        let rows: Vec<FrameRow> = self.rows.iter().copied().collect();
        let (png, _) = render(e, &rows, frame)?;
        let stamp: String =
            e.ts.chars()
                .map(|c| if c == ':' { '-' } else { c })
                .collect();
        let name = format!("{stamp}-event{:05}-{}.png", e.id, e.kind.as_str());
        let path = self.dir.join(name);
        let tmp = self.dir.join(".writing.png");
        let io = |what: &str, p: &Path, err: io::Error| format!("{what} {}: {err}", p.display());
        std::fs::write(&tmp, &png).map_err(|err| {
            let _ = std::fs::remove_file(&tmp);
            io("writing", &tmp, err)
        })?;
        std::fs::rename(&tmp, &path).map_err(|err| io("renaming to", &path, err))?;
        Ok(path)
    }

    /// Writes `BASE.y4m` and `BASE.wav` (2 s before to 1.5 s after the event, from the
    /// thumbnails and audio held), then, if ffmpeg runs, `BASE.mp4` in their place.
    fn write_clip(&mut self, e: &Event, base: &Path) -> Result<(), String> {
        let t0 = (e.t - CLIP_BEFORE_S).max(0.0);
        let t1 = e.t + AFTER_S;
        let frames: Vec<&Arc<Image>> = self
            .frames
            .iter()
            .filter(|(i, _)| {
                let t = *i as f64 / GRID_FPS as f64;
                t >= t0 && t < t1
            })
            .map(|(_, f)| f)
            .collect();
        let Some(first) = frames.first() else {
            return Err("its frames are no longer held".into());
        };
        let (w, h) = (first.width as usize, first.height as usize);
        let named = |ext: &str| {
            let mut p = base.as_os_str().to_owned();
            p.push(ext);
            PathBuf::from(p)
        };
        let (y4m, wav, mp4) = (named(".y4m"), named(".wav"), named(".mp4"));
        let io = |p: &Path, err: &dyn std::fmt::Display| format!("{}: {err}", p.display());
        {
            let f = std::fs::File::create(&y4m).map_err(|err| io(&y4m, &err))?;
            let mut enc = y4m::EncoderBuilder::new(w, h, y4m::Ratio::new(GRID_FPS as usize, 1))
                .with_colorspace(y4m::Colorspace::C444)
                .write_header(io::BufWriter::new(f))
                .map_err(|err| io(&y4m, &err))?;
            let (mut yp, mut up, mut vp) = (vec![0u8; w * h], vec![0u8; w * h], vec![0u8; w * h]);
            for img in frames
                .iter()
                .filter(|f| f.width as usize == w && f.height as usize == h)
            {
                for (i, px) in img.data.chunks_exact(3).enumerate() {
                    let (r, g, b) = (px[0] as f32, px[1] as f32, px[2] as f32);
                    // BT.601, full range.
                    yp[i] = (0.299 * r + 0.587 * g + 0.114 * b).round() as u8;
                    up[i] = (128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b)
                        .round()
                        .clamp(0.0, 255.0) as u8;
                    vp[i] = (128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b)
                        .round()
                        .clamp(0.0, 255.0) as u8;
                }
                enc.write_frame(&y4m::Frame::new([&yp, &up, &vp], None))
                    .map_err(|err| io(&y4m, &err))?;
            }
        }
        {
            let rate = self.rate.max(1);
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut out = hound::WavWriter::create(&wav, spec).map_err(|err| io(&wav, &err))?;
            let held_from = self.audio_end - self.audio.len() as u64;
            let from = ((t0 * rate as f64) as u64).max(held_from);
            let to = ((t1 * rate as f64) as u64).min(self.audio_end);
            for k in from..to {
                let x = self.audio[(k - held_from) as usize];
                out.write_sample((x.clamp(-1.0, 1.0) * 32767.0).round() as i16)
                    .map_err(|err| io(&wav, &err))?;
            }
            out.finalize().map_err(|err| io(&wav, &err))?;
        }
        if self.no_ffmpeg {
            return Ok(());
        }
        let run = std::process::Command::new(&self.ffmpeg)
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(&y4m)
            .arg("-i")
            .arg(&wav)
            .args([
                "-vf",
                "scale=trunc(iw/2)*2:trunc(ih/2)*2",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
            ])
            .arg(&mp4)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output();
        match run {
            Ok(o) if o.status.success() => {
                let _ = std::fs::remove_file(&y4m);
                let _ = std::fs::remove_file(&wav);
            }
            Ok(o) => {
                let _ = std::fs::remove_file(&mp4);
                log::warn!(
                    "evidence: ffmpeg could not make {} (Y4M + WAV kept): {}",
                    mp4.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            Err(err) => {
                self.no_ffmpeg = true;
                log::info!(
                    "evidence: clips stay Y4M + WAV: {:?} cannot be run ({err}; {} names another)",
                    self.ffmpeg,
                    crate::sources::ffmpeg::FFMPEG_ENV
                );
            }
        }
        Ok(())
    }

    /// Deletes evidence files older than `max_age`, then the oldest until the total fits
    /// `max_bytes`.
    fn trim(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut files: Vec<(SystemTime, u64, PathBuf)> = dir
            .filter_map(Result::ok)
            .filter(|d| {
                let n = d.file_name();
                let n = n.to_string_lossy();
                n.contains("-event")
                    && [".png", ".mp4", ".y4m", ".wav"]
                        .iter()
                        .any(|x| n.ends_with(x))
            })
            .filter_map(|d| {
                let m = d.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), d.path()))
            })
            .collect();
        files.sort();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        for (mtime, len, path) in files {
            let old = now.duration_since(mtime).unwrap_or_default() > self.max_age;
            if !(old || total > self.max_bytes) {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}
