//! The soundtrack at 44.1 kHz: impact sounds by modal synthesis (each material's damped modes,
//! pitch scaled by the object's size, amplitude by the impact speed, a short contact-noise burst
//! at the onset), background noise (white, pink or brown), and sounds with no visible cause
//! (camera clicks, speech-like babble of formant-filtered syllables, mains hum with harmonics,
//! plucked-note music).

use fastrand::Rng;

use super::material::{self, MaterialId};

/// Sample rate of every generated WAV.
pub const RATE: u32 = 44_100;

/// A sound placed at a sample offset.
#[derive(Debug, Clone)]
pub struct Placed {
    pub start: usize,
    pub samples: Vec<f32>,
}

impl Placed {
    /// Adds `gain` times this sound into `out` (clipped to its length).
    pub fn add_to(&self, out: &mut [f32], gain: f32) {
        if self.start >= out.len() {
            return;
        }
        for (o, s) in out[self.start..].iter_mut().zip(&self.samples) {
            *o += s * gain;
        }
    }
    /// Largest |sample|.
    pub fn peak(&self) -> f32 {
        self.samples.iter().fold(0.0f32, |m, v| m.max(v.abs()))
    }
}

/// Sum of damped sinusoids, by a rotating phasor per mode (no `sin` per sample).
fn add_modes(out: &mut [f32], modes: &[(f64, f64, f64)], r: &mut Rng) {
    let rate = RATE as f64;
    for &(hz, amp, tau) in modes {
        if hz >= 0.45 * rate || amp == 0.0 {
            continue;
        }
        let w = std::f64::consts::TAU * hz / rate;
        let (cw, sw) = (w.cos(), w.sin());
        let decay = (-1.0 / (tau * rate)).exp();
        let ph = r.f64() * std::f64::consts::TAU;
        let (mut c, mut s) = (ph.cos() * amp, ph.sin() * amp);
        for o in out.iter_mut() {
            *o += s as f32;
            let (nc, ns) = (c * cw - s * sw, c * sw + s * cw);
            c = nc * decay;
            s = ns * decay;
        }
    }
}

/// The sound of an impact between materials `a` (the object) and `b` (what it hit) at `speed`
/// (m/s); `size` (m) sets the pitch of `a`'s modes.
pub fn impact(r: &mut Rng, a: MaterialId, b: MaterialId, size: f64, speed: f64) -> Vec<f32> {
    let (ma, mb) = (material::get(a), material::get(b));
    let loud = ma.loudness.min(mb.loudness) * (speed / 2.0).min(2.5);
    let pitch = (0.1 / size.max(0.01)).powf(0.7) * (0.92 + 0.16 * r.f64());
    let mut modes: Vec<(f64, f64, f64)> = Vec::new();
    for &(ratio, amp, tau) in ma.modes {
        modes.push((
            ma.base_hz * pitch * ratio,
            loud * amp,
            tau * (0.8 + 0.4 * r.f64()),
        ));
    }
    let surface_pitch = 0.85 + 0.3 * r.f64();
    for &(ratio, amp, tau) in mb.modes {
        modes.push((
            mb.base_hz * surface_pitch * ratio * 0.8,
            0.5 * loud * amp,
            tau * 0.8,
        ));
    }
    let longest = modes.iter().map(|m| m.2).fold(0.0, f64::max);
    let n = ((5.0 * longest).clamp(0.05, 1.5) * RATE as f64) as usize;
    let mut out = vec![0.0f32; n];
    add_modes(&mut out, &modes, r);
    // Contact noise: a few milliseconds of decaying white noise.
    let click = (loud * (ma.noise + mb.noise) * 0.6) as f32;
    let tau = 0.0015 * RATE as f64;
    for (i, o) in out
        .iter_mut()
        .take((0.012 * RATE as f64) as usize)
        .enumerate()
    {
        *o += click * (r.f32() * 2.0 - 1.0) * (-(i as f64) / tau).exp() as f32;
    }
    // A 0.3-ms attack so the onset is not a discontinuity.
    let attack = (0.0003 * RATE as f64) as usize;
    for (i, o) in out.iter_mut().take(attack).enumerate() {
        *o *= i as f32 / attack as f32;
    }
    out
}

/// Background noise of `colour` (0 white, 1 pink, 2 brown) at RMS `rms`, `n` samples.
pub fn noise(r: &mut Rng, colour: u8, rms: f64, n: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; n];
    let (mut b0, mut b1, mut b2, mut brown) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for o in out.iter_mut() {
        let w = r.f64() * 2.0 - 1.0;
        *o = match colour {
            0 => w,
            1 => {
                // Paul Kellet's economy pink filter.
                b0 = 0.99765 * b0 + w * 0.0990460;
                b1 = 0.96300 * b1 + w * 0.2965164;
                b2 = 0.57000 * b2 + w * 1.0526913;
                b0 + b1 + b2 + w * 0.1848
            }
            _ => {
                brown = 0.995 * brown + 0.05 * w;
                brown
            }
        } as f32;
    }
    let now = (out.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n.max(1) as f64).sqrt();
    if now > 0.0 {
        let k = (rms / now) as f32;
        out.iter_mut().for_each(|v| *v *= k);
    }
    out
}

/// A two-pole resonator (band-pass) at `hz` with bandwidth `bw`.
struct Resonator {
    a1: f64,
    a2: f64,
    g: f64,
    y1: f64,
    y2: f64,
}

impl Resonator {
    fn new(hz: f64, bw: f64) -> Resonator {
        let rate = RATE as f64;
        let rr = (-std::f64::consts::PI * bw / rate).exp();
        let th = std::f64::consts::TAU * hz / rate;
        Resonator {
            a1: 2.0 * rr * th.cos(),
            a2: -rr * rr,
            g: 1.0 - rr,
            y1: 0.0,
            y2: 0.0,
        }
    }
    fn step(&mut self, x: f64) -> f64 {
        let y = self.g * x + self.a1 * self.y1 + self.a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// A sound with no visible cause: `kind` is click, babble, hum or music.
pub fn unseen(r: &mut Rng, kind: &str, duration: f64) -> Vec<f32> {
    let rate = RATE as f64;
    let n = (duration.max(0.01) * rate) as usize;
    let mut out = vec![0.0f32; n.max((0.06 * rate) as usize)];
    match kind {
        "click" => {
            // A camera shutter: two short bursts 15-40 ms apart.
            let amp = 0.2 + 0.6 * r.f64();
            let gap = ((0.015 + 0.025 * r.f64()) * rate) as usize;
            for start in [0, gap] {
                for i in 0..(0.01 * rate) as usize {
                    if let Some(o) = out.get_mut(start + i) {
                        *o += (amp * (r.f64() * 2.0 - 1.0) * (-(i as f64) / (0.002 * rate)).exp())
                            as f32;
                    }
                }
            }
        }
        "babble" => {
            let amp = 0.05 + 0.3 * r.f64();
            let pitch = 100.0 + 150.0 * r.f64();
            let mut t = 0usize;
            while t < n {
                let syl = ((0.08 + 0.14 * r.f64()) * rate) as usize;
                let (f1, f2) = (300.0 + 600.0 * r.f64(), 900.0 + 1600.0 * r.f64());
                let (mut r1, mut r2) = (Resonator::new(f1, 120.0), Resonator::new(f2, 180.0));
                let voiced = r.f64() < 0.7;
                let period = (rate / pitch) as usize;
                for i in 0..syl.min(n - t) {
                    let src = if voiced {
                        if i % period == 0 { 30.0 } else { 0.0 }
                    } else {
                        (r.f64() * 2.0 - 1.0) * 3.0
                    };
                    let env = (std::f64::consts::PI * i as f64 / syl as f64).sin();
                    out[t + i] += (amp * env * (r1.step(src) + 0.6 * r2.step(src))) as f32;
                }
                t += syl + ((0.03 + 0.12 * r.f64()) * rate) as usize;
            }
        }
        "hum" => {
            let f0 = if r.bool() { 50.0 } else { 60.0 };
            let amp = 0.01 + 0.05 * r.f64();
            let fade = 0.05 * rate;
            for (i, o) in out.iter_mut().take(n).enumerate() {
                let t = i as f64 / rate;
                let env = (i as f64 / fade).min((n - i) as f64 / fade).min(1.0);
                let s: f64 = [(1.0, 1.0), (2.0, 0.5), (3.0, 0.35), (5.0, 0.15)]
                    .iter()
                    .map(|(h, a)| a * (std::f64::consts::TAU * f0 * h * t).sin())
                    .sum();
                *o += (amp * env * s) as f32;
            }
        }
        _ => {
            // Music: plucked notes of a pentatonic scale.
            let amp = 0.05 + 0.25 * r.f64();
            let base = 196.0 * 2f64.powf(r.f64());
            let steps = [0, 2, 4, 7, 9, 12, 14];
            let mut t = 0usize;
            while t < n {
                let hz = base * 2f64.powf(steps[r.usize(..steps.len())] as f64 / 12.0);
                let len = ((0.4 + 0.5 * r.f64()) * rate) as usize;
                let modes: Vec<(f64, f64, f64)> = (1..5)
                    .map(|h| (hz * h as f64, amp / h as f64, 0.3 / h as f64))
                    .collect();
                let end = (t + len).min(n);
                add_modes(&mut out[t..end], &modes, r);
                t += ((0.15 + 0.35 * r.f64()) * rate) as usize;
            }
        }
    }
    out
}
