//! `impactd synth`: a synthetic audio-visual world with exact labels, for training and testing.
//!
//! A scene is drawn from one seed: [`scene`] picks a room, scenarios, a look and a sound set-up;
//! [`physics`] runs it at 1 ms and records every impact with its exact time; [`render`] draws
//! the video at any frame rate; [`audio`] synthesises the soundtrack; [`labels`] is the JSON
//! contract; [`writer`] writes Y4M + WAV + JSON per scene and a manifest `impactd eval` reads,
//! in parallel over scenes. Same seed, same bytes: nothing depends on the number of scenes, the
//! number of threads or a global RNG.

pub mod audio;
pub mod demo;
pub mod labels;
pub mod material;
pub mod physics;
pub mod render;
pub mod scene;
pub mod writer;

use fastrand::Rng;

use crate::envelope::{EnvelopeMode, envelope_batch};
use crate::media::GRID_FPS;
use audio::{Placed, RATE};
use labels::{EnvelopePair, Envelopes, ImpactLabel, Labels, ScenarioLabel, UnseenLabel};
use physics::{Impact, Other, Role, Surface};
use render::{Renderer, Yuv};
use scene::{MenuOptions, Mic, SceneSpec};

/// Bad synth options; each names the option.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("--{arg}: {reason}")]
    BadArg { arg: &'static str, reason: String },
    #[error("cannot create the output folder {path}: {source}")]
    OutDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What every scene of a run shares.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    /// Seconds.
    pub duration: f64,
    /// Scenario kinds to draw from (empty: all of [`scene::KINDS`]).
    pub kinds: Vec<String>,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            fps: 12.0,
            width: 160,
            height: 120,
            duration: 8.0,
            kinds: Vec::new(),
        }
    }
}

impl SynthOptions {
    /// Checks the ranges, naming the option at fault.
    pub fn check(&self) -> Result<MenuOptions, SynthError> {
        let bad = |arg, reason: String| Err(SynthError::BadArg { arg, reason });
        if !(self.fps.is_finite() && self.fps >= 1.0 && self.fps <= 240.0) {
            return bad(
                "fps",
                format!("{} is not a frame rate between 1 and 240", self.fps),
            );
        }
        for (arg, v) in [("width", self.width), ("height", self.height)] {
            if !(16..=4096).contains(&v) {
                return bad(arg, format!("{v} pixels is outside 16..=4096"));
            }
        }
        if !(self.duration.is_finite() && self.duration >= 0.5 && self.duration <= 600.0) {
            return bad(
                "duration",
                format!("{} s is outside 0.5..=600 s", self.duration),
            );
        }
        let mut kinds = Vec::new();
        for k in &self.kinds {
            match scene::KINDS.iter().find(|&&x| x == k) {
                Some(&x) => kinds.push(x),
                None => {
                    return bad(
                        "kinds",
                        format!(
                            "unknown scenario {k:?} (known: {})",
                            scene::KINDS.join(", ")
                        ),
                    );
                }
            }
        }
        Ok(MenuOptions {
            duration: self.duration,
            width: self.width,
            height: self.height,
            fps: self.fps,
            kinds,
        })
    }

    /// Frames in the video at `fps`: every frame time j / fps before the end.
    pub fn video_frames(&self) -> usize {
        (self.duration * self.fps - 1e-9).ceil() as usize
    }

    /// Frames on the 12-fps grid: ceil(duration * 12).
    pub fn grid_frames(&self) -> usize {
        (self.duration * GRID_FPS as f64 - 1e-9).ceil() as usize
    }
}

/// A generated scene in memory.
pub struct GeneratedScene {
    pub labels: Labels,
    pub frames: Vec<Yuv>,
    /// 16-bit mono PCM at [`RATE`].
    pub audio: Vec<i16>,
}

fn envelope_pair(samples: &[f32], frames: usize) -> EnvelopePair {
    let mut seed = envelope_batch(EnvelopeMode::Seed, RATE, samples);
    let mut frame_mean = envelope_batch(EnvelopeMode::FrameMean, RATE, samples);
    seed.resize(frames, 0.0);
    frame_mean.resize(frames, 0.0);
    EnvelopePair { seed, frame_mean }
}

/// Samples per 12-fps frame: frame spans shift by exactly this many samples per frame.
const FRAME_SAMPLES: usize = (RATE / GRID_FPS) as usize;
const _: () = assert!(RATE % GRID_FPS == 0);

/// The frame-mean envelope of one sound alone (times `gain`, in a signal of `n` samples) at
/// frames `f - 1`, `f`, `f + 1` (index 0, 1, 2; frames before 0 read as 0).
///
/// Only a stretch of a few frames around the sound is computed: it starts a whole number of
/// frames before (so local frames are global frames shifted, and the stretch starts in silence
/// more than a kernel radius before the sound) and ends a kernel radius after frame f + 1 (or
/// at the signal's end, where the reflection is then the same).
fn own_envelope(sound: &Placed, gain: f32, n: usize, f: usize) -> [f32; 3] {
    let radius = crate::envelope::gaussian_kernel(RATE).len() / 2;
    let first = f.saturating_sub(3);
    let o = first * FRAME_SAMPLES;
    let e = n.min((f + 3) * FRAME_SAMPLES + radius);
    let mut buf = vec![0.0f32; e.saturating_sub(o)];
    if sound.start >= o {
        let local = Placed {
            start: sound.start - o,
            samples: sound.samples.clone(),
        };
        local.add_to(&mut buf, gain);
    }
    let env = envelope_batch(EnvelopeMode::FrameMean, RATE, &buf);
    let mut out = [0.0f32; 3];
    for (i, k) in (f as i64 - 1..=f as i64 + 1).enumerate() {
        if k >= first as i64 {
            out[i] = env.get(k as usize - first).copied().unwrap_or(0.0);
        }
    }
    out
}

fn class_of(spec: &SceneSpec, imp: &Impact, first_of_body: bool) -> &'static str {
    let bodies = &spec.world.bodies;
    let tool = bodies[imp.a].role == Role::Tool
        || matches!(imp.b, Other::Body(j) if bodies[j].role == Role::Tool);
    if tool {
        return "hit";
    }
    match imp.b {
        Other::Body(_) => "collision",
        Other::Static(s) => match spec.world.statics[s].surface {
            Surface::Side { .. } => "collision",
            Surface::Top { .. } => {
                let kind = spec
                    .scenarios
                    .get(bodies[imp.a].owner)
                    .map_or("", |s| s.kind);
                if first_of_body && kind.starts_with("throw") {
                    "collision"
                } else {
                    "drop"
                }
            }
        },
    }
}

/// Generates scene `seed`: physics, video, audio and labels.
pub fn generate(seed: u64, opts: &SynthOptions) -> Result<GeneratedScene, SynthError> {
    let menu = opts.check()?;
    let spec = scene::build(seed, &menu);
    Ok(generate_spec(spec, opts))
}

fn generate_spec(spec: SceneSpec, opts: &SynthOptions) -> GeneratedScene {
    let mut world = spec.world.clone();
    let traj = world.run(opts.duration);
    let mut impacts: Vec<Impact> = world
        .impacts
        .iter()
        .chain(&spec.scripted)
        .filter(|i| i.t < opts.duration)
        .cloned()
        .collect();
    impacts.sort_by(|a, b| a.t.total_cmp(&b.t));

    // Sounds.
    let mut ar = Rng::with_seed(spec.seed ^ 0x6175_6469_6f00);
    let n = (opts.duration * RATE as f64).round() as usize;
    let bodies = &spec.world.bodies;
    let statics = &spec.world.statics;
    let scale = spec.width as f64 / spec.view.w;
    let mut seen_body = vec![false; bodies.len()];
    struct Pending {
        imp: Impact,
        sound: Placed,
        visible: bool,
        class: &'static str,
    }
    let mut pending = Vec::new();
    for imp in impacts {
        let (mat_b, size) = match imp.b {
            Other::Static(s) => (statics[s].material, bodies[imp.a].shape.size()),
            Other::Body(j) => (
                bodies[j].material,
                if bodies[imp.a].role == Role::Tool {
                    bodies[j].shape.size()
                } else {
                    bodies[imp.a].shape.size()
                },
            ),
        };
        let first = !seen_body[imp.a];
        seen_body[imp.a] = true;
        let class = class_of(&spec, &imp, first);
        let samples = audio::impact(&mut ar, bodies[imp.a].material, mat_b, size, imp.speed);
        let sound = Placed {
            start: (imp.t * RATE as f64).round() as usize,
            samples,
        };
        let hidden = spec.look.panels.iter().any(|p| {
            p.front
                && imp.point[0] > p.rect[0] + 0.003
                && imp.point[0] < p.rect[2] - 0.003
                && imp.point[1] > p.rect[1] - 0.01
                && imp.point[1] < p.rect[3] - 0.003
        });
        let visible = spec.view.contains(imp.point, 0.0) && !hidden;
        pending.push(Pending {
            imp,
            sound,
            visible,
            class,
        });
    }
    let unseen: Vec<Placed> = spec
        .sound
        .unseen
        .iter()
        .map(|u| Placed {
            start: (u.t * RATE as f64).round() as usize,
            samples: audio::unseen(&mut ar, u.kind, u.duration),
        })
        .collect();
    let mut mix = audio::noise(&mut ar, spec.sound.noise_colour, spec.sound.noise_rms, n);
    for p in &pending {
        p.sound.add_to(&mut mix, 1.0);
    }
    for u in &unseen {
        u.add_to(&mut mix, 1.0);
    }
    let peak = mix.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    let gain = spec.sound.peak / peak.max(0.3);
    let written: Vec<f32> = match spec.sound.mic {
        Mic::Ok => mix.iter().map(|v| v * gain as f32).collect(),
        Mic::Dead => vec![0.0; n],
        Mic::Muted => audio::noise(&mut ar, 0, 3e-5, n),
    };
    let mut clipped = 0;
    let pcm: Vec<i16> = written
        .iter()
        .map(|v| {
            let q = (v * 32768.0).round();
            if !(-32768.0..=32767.0).contains(&q) {
                clipped += 1;
            }
            q.clamp(-32768.0, 32767.0) as i16
        })
        .collect();
    let heard: Vec<f32> = pcm.iter().map(|&s| s as f32 / 32768.0).collect();
    let frames = opts.grid_frames();
    let full = envelope_pair(&heard, frames);
    let mut clean = vec![0.0f32; n];
    for p in pending.iter().filter(|p| p.visible) {
        p.sound.add_to(&mut clean, gain as f32);
    }
    let impacts_env = envelope_pair(&clean, frames);

    // Audible: the heard envelope peaks within a frame of the impact, and the impact's own sound
    // makes at least 30 % of that peak.
    let mut labels_impacts = Vec::new();
    for p in &pending {
        let peak = p.sound.peak() as f64 * gain;
        let f = (p.imp.t * GRID_FPS as f64).round() as usize;
        let audible = spec.sound.mic == Mic::Ok && {
            let own = own_envelope(&p.sound, gain as f32, n, f);
            let e = &full.frame_mean;
            (f.saturating_sub(1)..=f + 1).any(|k| {
                k >= 1
                    && k + 1 < e.len()
                    && e[k] >= e[k - 1]
                    && e[k] >= e[k + 1]
                    && e[k] > 0.0
                    && own[k + 1 - f] >= 0.3 * e[k]
            })
        };
        let a = &bodies[p.imp.a];
        let (b_name, b_mat) = match p.imp.b {
            Other::Static(s) => (statics[s].name.clone(), statics[s].material),
            Other::Body(j) => (bodies[j].name.clone(), bodies[j].material),
        };
        let owner = spec.scenarios.get(a.owner);
        let kind = owner.map_or("drop_onto", |s| s.kind);
        let mat_name = |m| material::get(m).name.to_string();
        let struck = if a.role == Role::Tool {
            b_mat
        } else {
            a.material
        };
        labels_impacts.push(ImpactLabel {
            t: p.imp.t,
            class: p.class.into(),
            scenario: kind.into(),
            sound: scene::sound_of(kind).into(),
            objects: [a.name.clone(), b_name],
            material: mat_name(struck),
            materials: [mat_name(a.material), mat_name(b_mat)],
            speed: p.imp.speed,
            pixel: [
                (p.imp.point[0] - spec.view.x0) * scale,
                (spec.view.y0 + spec.view.h - p.imp.point[1]) * scale,
            ],
            visible: p.visible,
            audible,
            peak_dbfs: if peak > 0.0 {
                20.0 * peak.log10()
            } else {
                -200.0
            },
        });
    }
    let labels = Labels {
        version: labels::VERSION,
        seed: spec.seed,
        fps: opts.fps,
        width: opts.width,
        height: opts.height,
        frames,
        video_frames: opts.video_frames(),
        duration_s: opts.duration,
        sample_rate: RATE,
        mic: spec.sound.mic.as_str().into(),
        impacts: labels_impacts,
        unseen_sounds: spec
            .sound
            .unseen
            .iter()
            .map(|u| UnseenLabel {
                t: u.t,
                kind: u.kind.into(),
                duration: u.duration,
            })
            .collect(),
        envelope: Envelopes {
            full,
            impacts: impacts_env,
        },
        scenarios: spec
            .scenarios
            .iter()
            .map(|s| ScenarioLabel {
                kind: s.kind.into(),
                t: s.t,
            })
            .collect(),
        clipped_samples: clipped,
        gain,
    };
    let mut renderer = Renderer::new(&spec, &traj);
    let frames = (0..opts.video_frames())
        .map(|j| renderer.frame(j))
        .collect();
    GeneratedScene {
        labels,
        frames,
        audio: pcm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_envelope_matches_the_whole_signal() {
        let mut r = Rng::with_seed(1);
        let n = 5 * RATE as usize;
        for t in [0.01, 0.2, 0.26, 1.234, 3.0, 4.95] {
            let s = Placed {
                start: (t * RATE as f64) as usize,
                samples: audio::impact(&mut r, 0, 1, 0.05, 2.0),
            };
            let mut whole = vec![0.0; n];
            s.add_to(&mut whole, 0.5);
            let e = envelope_batch(EnvelopeMode::FrameMean, RATE, &whole);
            let f = (t * 12.0).round() as usize;
            let own = own_envelope(&s, 0.5, n, f);
            for (i, v) in own.iter().enumerate() {
                let k = f as i64 - 1 + i as i64;
                if k < 0 || k as usize >= e.len() {
                    continue;
                }
                let want = e[k as usize];
                assert!(
                    (v - want).abs() <= 1e-5 * want.abs().max(1e-6),
                    "t {t} frame {k}: {v} vs {want}"
                );
            }
        }
    }
}
