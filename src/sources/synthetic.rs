//! The built-in scene: a deterministic clip with exact ground truth, so impactd runs with no
//! camera, microphone or media file (`impactd replay` with no MEDIA), and tests know what the
//! answer must be.
//!
//! Blocks drop onto a shelf in front of a textured wall (16.5 s, 30 fps, 160x120, a little sensor
//! noise).
//! Each landing makes a modal "knock" (three damped partials, loudness from impact speed), except
//! one block that lands on a cushion without a sound (a silent impact). A hand clap with nothing
//! moving is a sound with no visible cause. A faint noise floor runs throughout (-60 dBFS).

use super::{AudioInfo, AudioSource, SourceError, VideoInfo, VideoSource};
use crate::media::{AudioBlock, Image, NS_PER_S, PixelFormat, VideoFrame};

/// What happens when in the scene, for tests and the README.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Truth {
    /// A block lands with a knock at this time (s).
    Impact(f64),
    /// A block lands silently.
    SilentImpact(f64),
    /// A sound with nothing moving.
    UnseenSound(f64),
}

#[derive(Debug, Clone, Copy)]
struct Drop {
    start: f64,
    x: f64,
    size: f64,
    shade: u8,
    silent: bool,
}

const GRAVITY: f64 = 1000.0; // px / s^2
const TOP: f64 = 10.0;
const FLOOR: f64 = 96.0;

/// The scene's parameters.
#[derive(Debug, Clone)]
pub struct Scene {
    pub duration: f64,
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    pub rate: u32,
    drops: Vec<Drop>,
    claps: Vec<f64>,
}

impl Default for Scene {
    fn default() -> Self {
        Scene {
            duration: 16.5,
            fps: 30.0,
            width: 160,
            height: 120,
            rate: 44_100,
            // Each event gets a 4-s model window of its own, so the baseline's per-window
            // normalisation sees it as the strongest motion there.
            drops: vec![
                Drop {
                    start: 1.0,
                    x: 30.0,
                    size: 18.0,
                    shade: 235,
                    silent: false,
                },
                Drop {
                    start: 5.2,
                    x: 80.0,
                    size: 18.0,
                    shade: 10,
                    silent: false,
                },
                Drop {
                    start: 10.6,
                    x: 50.0,
                    size: 44.0,
                    shade: 250,
                    silent: true,
                },
                Drop {
                    start: 14.8,
                    x: 120.0,
                    size: 18.0,
                    shade: 230,
                    silent: false,
                },
            ],
            claps: vec![8.0],
        }
    }
}

impl Drop {
    fn fall_time(&self) -> f64 {
        (2.0 * (FLOOR - self.size - TOP) / GRAVITY).sqrt()
    }
    fn landing(&self) -> f64 {
        self.start + self.fall_time()
    }
    /// Top edge at time t: held still at the top until it is let go.
    fn y(&self, t: f64) -> f64 {
        let dt = (t - self.start).clamp(0.0, self.fall_time());
        TOP + 0.5 * GRAVITY * dt * dt
    }
}

impl Scene {
    /// Ground truth in time order.
    pub fn truth(&self) -> Vec<Truth> {
        let mut v: Vec<Truth> = self
            .drops
            .iter()
            .map(|d| {
                if d.silent {
                    Truth::SilentImpact(d.landing())
                } else {
                    Truth::Impact(d.landing())
                }
            })
            .chain(self.claps.iter().map(|&c| Truth::UnseenSound(c)))
            .collect();
        v.sort_by(|a, b| time(a).total_cmp(&time(b)));
        v
    }

    pub fn video(&self, format: PixelFormat) -> SceneVideo {
        self.video_looped(format, 1)
    }

    /// The video played `loops` times back to back (for endurance benchmarks); frames are
    /// rendered once and reused.
    pub fn video_looped(&self, format: PixelFormat, loops: u32) -> SceneVideo {
        let per_loop = (self.duration * self.fps).round() as u64;
        SceneVideo {
            scene: self.clone(),
            format,
            next: 0,
            per_loop,
            frames: per_loop * loops as u64,
            cache: Vec::new(),
            info: VideoInfo {
                width: self.width,
                height: self.height,
                fps: self.fps,
                format,
                description: format!(
                    "built-in scene {}x{} {} fps, {} s",
                    self.width, self.height, self.fps, self.duration
                ),
            },
        }
    }

    pub fn audio(&self) -> SceneAudio {
        self.audio_looped(1)
    }

    /// The soundtrack played `loops` times back to back.
    pub fn audio_looped(&self, loops: u32) -> SceneAudio {
        let samples = self.render_audio();
        SceneAudio {
            total: samples.len() as u64 * loops as u64,
            samples,
            pos: 0,
            rate: self.rate,
            info: AudioInfo {
                rate: self.rate,
                channels: 1,
                description: format!("built-in scene {} Hz mono", self.rate),
            },
        }
    }

    /// The whole soundtrack.
    pub fn render_audio(&self) -> Vec<f32> {
        let n = (self.duration * self.rate as f64) as usize;
        let r = self.rate as f64;
        let mut rng = Lcg(0x5eed);
        let mut x: Vec<f32> = (0..n)
            .map(|_| (rng.next_f64() - 0.5) as f32 * 0.002)
            .collect();
        for d in self.drops.iter().filter(|d| !d.silent) {
            let speed = GRAVITY * d.fall_time();
            let amp = (speed / 500.0).min(0.9);
            let start = (d.landing() * r).round() as usize;
            // Three damped partials; the pitch depends on the block's size.
            let base = 3000.0 / d.size * 20.0;
            for (k, v) in x
                .iter_mut()
                .skip(start)
                .take((0.4 * r) as usize)
                .enumerate()
            {
                let t = k as f64 / r;
                let s = [(1.0, 1.0, 0.05), (2.76, 0.5, 0.03), (5.4, 0.25, 0.015)]
                    .iter()
                    .map(|(f, a, tau)| {
                        a * (-t / tau).exp() * (2.0 * std::f64::consts::PI * base * f * t).sin()
                    })
                    .sum::<f64>();
                *v += (amp * s / 1.75) as f32;
            }
        }
        for &c in &self.claps {
            let start = (c * r).round() as usize;
            for (k, v) in x
                .iter_mut()
                .skip(start)
                .take((0.05 * r) as usize)
                .enumerate()
            {
                let t = k as f64 / r;
                *v += ((rng.next_f64() - 0.5) * 1.2 * (-t / 0.008).exp()) as f32;
            }
        }
        x
    }

    /// Frame `i` at time `t`.
    pub fn render_frame(&self, t: f64, i: u64, format: PixelFormat) -> Image {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut gray = vec![0u8; w * h];
        let mut rng = Lcg(i.wrapping_mul(7919) + 1);
        for y in 0..h {
            for x in 0..w {
                // a wall with a fixed texture, a shelf below the floor line
                let wall = if y as f64 >= FLOOR {
                    70.0
                } else {
                    120.0 + 30.0 * ((x as f64 * 0.21).sin() * (y as f64 * 0.17).cos())
                };
                let noise = (rng.next_f64() - 0.5) * 3.0;
                gray[y * w + x] = (wall + noise).clamp(0.0, 255.0) as u8;
            }
        }
        for d in &self.drops {
            let (x0, y0) = (d.x as usize, d.y(t).round() as usize);
            let s = d.size as usize;
            for y in y0..(y0 + s).min(h) {
                for x in x0..(x0 + s).min(w) {
                    gray[y * w + x] = d.shade;
                }
            }
        }
        match format {
            PixelFormat::Gray8 => Image::new(self.width, self.height, format, gray),
            PixelFormat::Rgb8 => Image::new(
                self.width,
                self.height,
                format,
                gray.iter()
                    .flat_map(|&g| [g, g, g.saturating_add(10)])
                    .collect(),
            ),
        }
    }
}

fn time(t: &Truth) -> f64 {
    match *t {
        Truth::Impact(t) | Truth::SilentImpact(t) | Truth::UnseenSound(t) => t,
    }
}

/// A tiny deterministic generator (no dependency for a test scene).
struct Lcg(u64);
impl Lcg {
    fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The scene's video as a source.
pub struct SceneVideo {
    scene: Scene,
    format: PixelFormat,
    next: u64,
    per_loop: u64,
    frames: u64,
    /// Frames of the first loop, reused by later loops.
    cache: Vec<Image>,
    info: VideoInfo,
}

impl VideoSource for SceneVideo {
    fn info(&self) -> &VideoInfo {
        &self.info
    }
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        if self.next >= self.frames {
            return Ok(None);
        }
        let t = self.next as f64 / self.scene.fps;
        let i = (self.next % self.per_loop) as usize;
        let image = match self.cache.get(i) {
            Some(img) => img.clone(),
            None => {
                let img = self
                    .scene
                    .render_frame(i as f64 / self.scene.fps, i as u64, self.format);
                if self.frames > self.per_loop {
                    self.cache.push(img.clone());
                }
                img
            }
        };
        self.next += 1;
        Ok(Some(VideoFrame {
            pts_ns: (t * NS_PER_S as f64).round() as i64,
            image,
        }))
    }
}

/// The scene's audio as a source.
pub struct SceneAudio {
    samples: Vec<f32>,
    /// Samples to deliver in all (several loops of `samples`).
    total: u64,
    /// Samples delivered so far.
    pos: u64,
    rate: u32,
    info: AudioInfo,
}

impl AudioSource for SceneAudio {
    fn info(&self) -> &AudioInfo {
        &self.info
    }
    fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError> {
        if self.pos >= self.total {
            return Ok(None);
        }
        let n = self.samples.len() as u64;
        let i = (self.pos % n) as usize;
        let end = (i + 1024)
            .min(self.samples.len())
            .min(i + (self.total - self.pos) as usize);
        let block = AudioBlock {
            pts_ns: (self.pos as i128 * NS_PER_S as i128 / self.rate as i128) as i64,
            rate: self.rate,
            samples: self.samples[i..end].to_vec(),
        };
        self.pos += (end - i) as u64;
        Ok(Some(block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_is_ordered_and_inside_the_clip() {
        let s = Scene::default();
        let t = s.truth();
        assert_eq!(t.len(), 5);
        assert!(t.windows(2).all(|w| time(&w[0]) <= time(&w[1])));
        assert!(
            t.iter()
                .all(|x| time(x) > 0.5 && time(x) < s.duration - 0.5)
        );
    }

    #[test]
    fn knocks_are_loud_where_the_truth_says() {
        let s = Scene::default();
        let x = s.render_audio();
        let r = s.rate as f64;
        for tr in s.truth() {
            let t = time(&tr);
            let i = (t * r) as usize;
            let peak = x[i..i + 400].iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let before = x[i - 2000..i - 100]
                .iter()
                .fold(0.0f32, |m, v| m.max(v.abs()));
            match tr {
                Truth::SilentImpact(_) => assert!(peak < 0.01, "{tr:?}: {peak}"),
                _ => assert!(peak > 0.1 && before < 0.01, "{tr:?}: {peak} {before}"),
            }
        }
    }
}
