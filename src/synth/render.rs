//! The rasteriser: a 2-D orthographic view of the world drawn into a float RGB buffer with
//! anti-aliased edges (exact box coverage for rectangles, a one-pixel ramp for discs and
//! sticks), then the camera: motion blur (the average of sub-frame renders over the exposure),
//! shake, lighting gain ramps and flicker, sensor noise, conversion to limited-range BT.601
//! Y'CbCr 4:2:0, and JPEG-like 8x8 DCT quantisation.
//!
//! The static part of the picture (wall, floor, furniture, containers, backdrops) is drawn once
//! per scene into a background larger than the frame by the shake margin.

use fastrand::Rng;

use super::physics::{Role, Shape, Trajectory};
use super::scene::{BackgroundKind, BodyLook, Distractor, Panel, SceneSpec, StickLook};

/// Shake margin of the background (px).
const MARGIN: usize = 4;

/// One Y'CbCr 4:2:0 frame: planes Y (w*h), Cb and Cr ((w+1)/2 * (h+1)/2).
#[derive(Debug, Clone, PartialEq)]
pub struct Yuv {
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

struct Canvas<'a> {
    w: usize,
    h: usize,
    px: &'a mut [[f32; 3]],
}

fn lerp3(a: [f32; 3], b: [f32; 3], s: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * s,
        a[1] + (b[1] - a[1]) * s,
        a[2] + (b[2] - a[2]) * s,
    ]
}

impl Canvas<'_> {
    #[inline]
    fn blend(&mut self, x: usize, y: usize, c: [f32; 3], a: f32) {
        let p = &mut self.px[y * self.w + x];
        *p = lerp3(*p, c, a);
    }

    /// Pixel bounds of a box in pixel coordinates, clipped.
    fn bounds(&self, x0: f32, y0: f32, x1: f32, y1: f32) -> Option<(usize, usize, usize, usize)> {
        let xa = x0.floor().max(0.0) as i64;
        let ya = y0.floor().max(0.0) as i64;
        let xb = (x1.ceil() as i64).min(self.w as i64);
        let yb = (y1.ceil() as i64).min(self.h as i64);
        (xa < xb && ya < yb).then_some((xa as usize, ya as usize, xb as usize, yb as usize))
    }

    /// A disc; `f` gives the colour at a pixel's offset from the centre (px).
    fn disc(&mut self, cx: f32, cy: f32, r: f32, f: impl Fn(f32, f32) -> [f32; 3]) {
        let Some((xa, ya, xb, yb)) =
            self.bounds(cx - r - 1.0, cy - r - 1.0, cx + r + 1.0, cy + r + 1.0)
        else {
            return;
        };
        for y in ya..yb {
            for x in xa..xb {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let a = (r - (dx * dx + dy * dy).sqrt() + 0.5).clamp(0.0, 1.0);
                if a > 0.0 {
                    self.blend(x, y, f(dx, dy), a);
                }
            }
        }
    }

    /// A rectangle; `f` gives the colour at a pixel's offset from the top-left corner (px).
    fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, f: impl Fn(f32, f32) -> [f32; 3]) {
        let Some((xa, ya, xb, yb)) = self.bounds(x0, y0, x1, y1) else {
            return;
        };
        for y in ya..yb {
            let cy = ((y as f32 + 1.0).min(y1) - (y as f32).max(y0)).clamp(0.0, 1.0);
            for x in xa..xb {
                let cx = ((x as f32 + 1.0).min(x1) - (x as f32).max(x0)).clamp(0.0, 1.0);
                let a = cx * cy;
                if a > 0.0 {
                    self.blend(x, y, f(x as f32 + 0.5 - x0, y as f32 + 0.5 - y0), a);
                }
            }
        }
    }

    /// A thick segment with round ends.
    fn capsule(&mut self, a: [f32; 2], b: [f32; 2], r: f32, c: [f32; 3]) {
        let Some((xa, ya, xb, yb)) = self.bounds(
            a[0].min(b[0]) - r - 1.0,
            a[1].min(b[1]) - r - 1.0,
            a[0].max(b[0]) + r + 1.0,
            a[1].max(b[1]) + r + 1.0,
        ) else {
            return;
        };
        let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
        let len2 = (ex * ex + ey * ey).max(1e-6);
        for y in ya..yb {
            for x in xa..xb {
                let (px, py) = (x as f32 + 0.5 - a[0], y as f32 + 0.5 - a[1]);
                let s = ((px * ex + py * ey) / len2).clamp(0.0, 1.0);
                let (dx, dy) = (px - s * ex, py - s * ey);
                let cov = (r - (dx * dx + dy * dy).sqrt() + 0.5).clamp(0.0, 1.0);
                if cov > 0.0 {
                    self.blend(x, y, c, cov);
                }
            }
        }
    }
}

/// Smooth value noise on a random lattice, in [0, 1].
struct ValueNoise {
    n: usize,
    lattice: Vec<f32>,
}

impl ValueNoise {
    fn new(r: &mut Rng, n: usize) -> ValueNoise {
        ValueNoise {
            n,
            lattice: (0..n * n).map(|_| r.f32()).collect(),
        }
    }
    fn at(&self, x: f32, y: f32) -> f32 {
        let n = self.n as i64;
        let (fx, fy) = (x.floor(), y.floor());
        let (sx, sy) = (x - fx, y - fy);
        let (sx, sy) = (sx * sx * (3.0 - 2.0 * sx), sy * sy * (3.0 - 2.0 * sy));
        let (ix, iy) = (fx as i64, fy as i64);
        let g = |i: i64, j: i64| self.lattice[(j.rem_euclid(n) * n + i.rem_euclid(n)) as usize];
        let a = g(ix, iy) + (g(ix + 1, iy) - g(ix, iy)) * sx;
        let b = g(ix, iy + 1) + (g(ix + 1, iy + 1) - g(ix, iy + 1)) * sx;
        a + (b - a) * sy
    }
    fn fractal(&self, x: f32, y: f32) -> f32 {
        (self.at(x, y) * 0.55
            + self.at(x * 2.1 + 5.3, y * 2.1 + 1.7) * 0.3
            + self.at(x * 4.3 + 9.1, y * 4.3 + 3.3) * 0.15)
            .clamp(0.0, 1.0)
    }
}

fn hash(a: i64, b: i64, seed: u64) -> f32 {
    let mut h = (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ seed;
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 29;
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Maps world metres to pixels.
#[derive(Debug, Clone, Copy)]
struct Map {
    scale: f64,
    x0: f64,
    top: f64,
    ox: f64,
    oy: f64,
}

impl Map {
    fn px(&self, p: [f64; 2]) -> [f32; 2] {
        [
            ((p[0] - self.x0) * self.scale + self.ox) as f32,
            ((self.top - p[1]) * self.scale + self.oy) as f32,
        ]
    }
    fn len(&self, l: f64) -> f32 {
        (l * self.scale) as f32
    }
    fn world(&self, x: f32, y: f32) -> [f64; 2] {
        [
            (x as f64 - self.ox) / self.scale + self.x0,
            self.top - (y as f64 - self.oy) / self.scale,
        ]
    }
}

fn pattern_colour(look: &BodyLook, u: f32, v: f32) -> [f32; 3] {
    let f = look.freq;
    let s = match look.pattern {
        1 => ((u * f).sin() > 0.0) as u8 as f32,
        2 => (((u * f * 0.5).floor() + (v * f * 0.5).floor()) as i64 & 1) as f32,
        3 => {
            let (a, b) = ((u * f * 0.3).fract() - 0.5, (v * f * 0.3).fract() - 0.5);
            (a * a + b * b < 0.08) as u8 as f32
        }
        4 => (((u * u + v * v).sqrt() * f).sin() > 0.3) as u8 as f32,
        _ => 0.0,
    };
    lerp3(look.colour, look.colour2, s)
}

fn panel_colour(p: &Panel, u: f32, v: f32, scale: f32) -> [f32; 3] {
    let (u, v) = (u / scale, v / scale);
    let s = match p.pattern {
        1 => ((u * 60.0).sin() > 0.0) as u8 as f32,
        2 => (((u * 20.0).floor() + (v * 20.0).floor()) as i64 & 1) as f32,
        3 => ((u * 37.0).sin() * (v * 41.0).sin() > 0.3) as u8 as f32,
        _ => 0.0,
    };
    lerp3(p.colour, p.colour2, s * 0.7)
}

/// The scene's static picture, `MARGIN` px larger than the frame on every side.
pub struct Background {
    w: usize,
    px: Vec<[f32; 3]>,
}

/// Draws the static part of the scene.
pub fn background(spec: &SceneSpec) -> Background {
    let (w, h) = (
        spec.width as usize + 2 * MARGIN,
        spec.height as usize + 2 * MARGIN,
    );
    let look = &spec.look;
    let mut r = Rng::with_seed(look.texture_seed);
    let noise = ValueNoise::new(&mut r, 16);
    let map = base_map(spec, MARGIN as f64, MARGIN as f64);
    let kind = look.background;
    let angle = r.f32() * std::f32::consts::PI;
    let (ca, sa) = (angle.cos(), angle.sin());
    let stripe_f = 10.0 + r.f32() * 40.0;
    let tile = 0.04 + r.f32() * 0.1;
    let floor_kind = r.u8(0..3);
    let plank = 0.05 + r.f32() * 0.1;
    let blobs: Vec<([f32; 2], f32, [f32; 3])> = (0..6)
        .map(|_| {
            (
                [r.f32() * spec.view.w as f32, r.f32() * spec.view.h as f32],
                0.05 + r.f32() * 0.3,
                [r.f32(), r.f32(), r.f32()],
            )
        })
        .collect();
    let seed = look.texture_seed;
    let mut px = vec![[0.0f32; 3]; w * h];
    for y in 0..h {
        for x in 0..w {
            let p = map.world(x as f32 + 0.5, y as f32 + 0.5);
            let (u, v) = (p[0] as f32, p[1] as f32);
            let n = noise.fractal(u * 6.0, v * 6.0);
            let c = if v < 0.0 {
                match floor_kind {
                    0 => {
                        // planks
                        let k = (u / plank).floor() as i64;
                        let shade = 0.75 + 0.5 * hash(k, 7, seed);
                        let grain = 0.9 + 0.1 * (v * 300.0 + n * 8.0).sin();
                        lerp3(look.floor[0], look.floor[1], n * 0.5).map(|c| c * shade * grain)
                    }
                    1 => {
                        let (i, j) = ((u / tile).floor() as i64, (v / tile).floor() as i64);
                        let grout = ((u / tile).fract() < 0.06) || ((v / tile).fract() < 0.06);
                        if grout {
                            [0.3, 0.3, 0.3]
                        } else {
                            lerp3(look.floor[0], look.floor[1], hash(i, j, seed) * 0.6)
                        }
                    }
                    _ => lerp3(
                        look.floor[0],
                        look.floor[1],
                        noise.fractal(u * 40.0, v * 40.0),
                    ),
                }
            } else {
                match kind {
                    BackgroundKind::Gradient => lerp3(
                        look.wall[0],
                        look.wall[1],
                        (v / spec.view.h as f32 * 0.8 + n * 0.2).clamp(0.0, 1.0),
                    ),
                    BackgroundKind::Noise => lerp3(look.wall[0], look.wall[1], n),
                    BackgroundKind::Stripes => {
                        let s = ((u * ca + v * sa) * stripe_f).sin() * 0.5 + 0.5;
                        lerp3(look.wall[0], look.wall[1], s)
                    }
                    BackgroundKind::Wood => {
                        let s = ((v + 0.03 * noise.at(u * 3.0, v * 30.0)) * 90.0).sin() * 0.5 + 0.5;
                        lerp3([0.55, 0.36, 0.2], [0.75, 0.55, 0.33], s * 0.7 + n * 0.3)
                    }
                    BackgroundKind::Tiles => {
                        let (i, j) = ((u / tile).floor() as i64, (v / tile).floor() as i64);
                        let grout = ((u / tile).fract() < 0.05) || ((v / tile).fract() < 0.05);
                        if grout {
                            [0.85, 0.85, 0.82]
                        } else {
                            lerp3(look.wall[0], look.wall[1], hash(i, j, seed))
                        }
                    }
                    BackgroundKind::Photo => {
                        let mut c = lerp3(look.wall[0], look.wall[1], v / spec.view.h as f32);
                        for (centre, rad, col) in &blobs {
                            let (dx, dy) = (u - centre[0], v - centre[1]);
                            let a = (-(dx * dx + dy * dy) / (rad * rad)).exp();
                            c = lerp3(c, *col, a * 0.8);
                        }
                        lerp3(c, [n, n, n], 0.15)
                    }
                }
            };
            px[y * w + x] = c;
        }
    }
    let mut canvas = Canvas { w, h, px: &mut px };
    let fur = look.furniture;
    for s in &look.supports {
        let a = map.px([s[0], s[3]]);
        let b = map.px([s[2], s[1]]);
        let f = fur;
        canvas.rect(a[0], a[1], b[0], b[1], |_, y| {
            f.map(|c| c * (0.85 + 0.15 * (y * 0.3).sin()))
        });
    }
    for &(c, col) in &look.containers {
        let t = 0.008;
        for r in [
            [c[0], c[2], c[1], c[2] + t],
            [c[0] - t, c[2], c[0], c[3]],
            [c[1], c[2], c[1] + t, c[3]],
        ] {
            let a = map.px([r[0], r[3]]);
            let b = map.px([r[2], r[1]]);
            canvas.rect(a[0], a[1], b[0], b[1], |_, _| col);
        }
    }
    let scale = map.scale as f32;
    for p in look.panels.iter().filter(|p| !p.front) {
        draw_panel(&mut canvas, &map, p, scale);
    }
    Background { w, px }
}

fn draw_panel(c: &mut Canvas, map: &Map, p: &Panel, scale: f32) {
    let a = map.px([p.rect[0], p.rect[3]]);
    let b = map.px([p.rect[2], p.rect[1]]);
    c.rect(a[0], a[1], b[0], b[1], |u, v| panel_colour(p, u, v, scale));
}

fn base_map(spec: &SceneSpec, ox: f64, oy: f64) -> Map {
    Map {
        scale: spec.width as f64 / spec.view.w,
        x0: spec.view.x0,
        top: spec.view.y0 + spec.view.h,
        ox,
        oy,
    }
}

/// Renders scene frames: holds the background and the scratch buffers.
pub struct Renderer<'a> {
    spec: &'a SceneSpec,
    traj: &'a Trajectory,
    bg: Background,
    sub: Vec<[f32; 3]>,
    acc: Vec<[f32; 3]>,
    noise: Rng,
}

impl<'a> Renderer<'a> {
    pub fn new(spec: &'a SceneSpec, traj: &'a Trajectory) -> Renderer<'a> {
        let n = spec.width as usize * spec.height as usize;
        Renderer {
            spec,
            traj,
            bg: background(spec),
            sub: vec![[0.0; 3]; n],
            acc: vec![[0.0; 3]; n],
            noise: Rng::with_seed(spec.seed ^ 0x6e6f_6973_6521),
        }
    }

    /// Frame `j` at the video rate.
    pub fn frame(&mut self, j: usize) -> Yuv {
        let spec = self.spec;
        let look = &spec.look;
        let t = j as f64 / spec.fps;
        let (w, h) = (spec.width as usize, spec.height as usize);
        // Shake: a smooth pseudo-random offset in whole pixels.
        let (sx, sy) = if look.shake_px > 0.0 {
            let a = look.shake_px;
            let ph = (spec.seed % 1000) as f64;
            (
                (a * ((t * 7.3 + ph).sin() * 0.7 + (t * 13.1 + ph * 1.3).sin() * 0.3)).round()
                    as i64,
                (a * ((t * 5.9 + ph * 0.7).sin() * 0.7 + (t * 11.7 + ph).sin() * 0.3)).round()
                    as i64,
            )
        } else {
            (0, 0)
        };
        let (sx, sy) = (
            sx.clamp(-(MARGIN as i64), MARGIN as i64),
            sy.clamp(-(MARGIN as i64), MARGIN as i64),
        );
        let (subs, exposure) = look.blur;
        for p in self.acc.iter_mut() {
            *p = [0.0; 3];
        }
        for s in 0..subs {
            let ts = if subs > 1 {
                t + (s as f64 / (subs - 1) as f64 - 0.5) * exposure / spec.fps
            } else {
                t
            };
            // Copy the background at the shake offset.
            let (ox, oy) = ((MARGIN as i64 - sx) as usize, (MARGIN as i64 - sy) as usize);
            for y in 0..h {
                let src = (y + oy) * self.bg.w + ox;
                self.sub[y * w..(y + 1) * w].copy_from_slice(&self.bg.px[src..src + w]);
            }
            let map = base_map(spec, sx as f64, sy as f64);
            let mut canvas = Canvas {
                w,
                h,
                px: &mut self.sub,
            };
            draw_dynamic(&mut canvas, &map, spec, self.traj, ts.max(0.0));
            for (a, p) in self.acc.iter_mut().zip(&self.sub) {
                a[0] += p[0];
                a[1] += p[1];
                a[2] += p[2];
            }
        }
        let frac = (t / spec.duration).clamp(0.0, 1.0);
        let mut gain = look.gain[0] + (look.gain[1] - look.gain[0]) * frac;
        if look.flicker.0 > 0.0 {
            gain *= 1.0 + look.flicker.0 * (std::f64::consts::TAU * look.flicker.1 * t).sin();
        }
        let k = (gain / subs as f64) as f32;
        let sigma = look.noise as f32;
        let mut yuv = to_yuv(&self.acc, w, h, k, sigma, &mut self.noise);
        if look.quant > 0.0 {
            quantise(&mut yuv.y, w, h, look.quant as f32);
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            quantise(&mut yuv.u, cw, ch, 2.0 * look.quant as f32);
            quantise(&mut yuv.v, cw, ch, 2.0 * look.quant as f32);
        }
        yuv
    }
}

fn skin_of(look: &BodyLook) -> [f32; 3] {
    look.colour
}

const SKIN: [f32; 3] = [0.86, 0.66, 0.52];

/// Draws everything that moves at time `t`.
fn draw_dynamic(c: &mut Canvas, map: &Map, spec: &SceneSpec, traj: &Trajectory, t: f64) {
    let look = &spec.look;
    let scale = map.scale as f32;
    for d in &look.distractors {
        match *d {
            Distractor::Wave {
                centre,
                amp,
                hz,
                phase,
                skin,
            } => {
                let a = std::f64::consts::TAU * hz * t + phase;
                let p = [
                    centre[0] + amp[0] * a.sin(),
                    centre[1] + amp[1] * (2.0 * a).sin(),
                ];
                let q = map.px(p);
                let top = map.px([p[0] + 0.1, spec.view.y0 + spec.view.h + 0.2]);
                c.capsule(q, top, map.len(0.018), skin.map(|v| v * 0.9));
                c.disc(q[0], q[1], map.len(0.03), |_, _| skin);
            }
            Distractor::Roll {
                y,
                x0,
                speed,
                r,
                colour,
            } => {
                let x = x0 + speed * t;
                let q = map.px([x, y]);
                let ang = (-(x / r)) as f32;
                let rp = map.len(r);
                c.disc(q[0], q[1], rp, |dx, dy| {
                    let u = dx * ang.cos() - dy * ang.sin();
                    if u > 0.0 {
                        colour
                    } else {
                        colour.map(|v| v * 0.5)
                    }
                });
            }
            Distractor::Swing {
                pivot,
                len,
                amp,
                period,
                r,
                colour,
            } => {
                let th = amp * (std::f64::consts::TAU * t / period).sin();
                let bob = [pivot[0] + len * th.sin(), pivot[1] - len * th.cos()];
                let (a, b) = (map.px(pivot), map.px(bob));
                c.capsule(a, b, map.len(0.003).max(0.6), [0.2, 0.2, 0.2]);
                c.disc(b[0], b[1], map.len(r), |_, _| colour);
            }
        }
    }
    for (i, b) in spec.world.bodies.iter().enumerate() {
        let [x, y, ang] = traj.at(i, t);
        let bl = &look.bodies[i];
        let q = map.px([x, y]);
        match (b.role, b.shape) {
            (Role::Tool, Shape::Circle { r }) => {
                // A stick: from the tip up and out of the frame, gripped by a hand whose arm
                // comes in from above.
                let st = bl.stick.unwrap_or(StickLook {
                    radius: r,
                    handle: [0.35, 0.6],
                    grip: 0.75,
                    skin: SKIN,
                });
                let [hx, hy] = st.handle;
                let grip = [x + hx * st.grip, y + hy * st.grip];
                let hand = map.px(grip);
                let shoulder = map.px([grip[0] + hx.signum() * 0.15, grip[1] + 0.6]);
                c.capsule(hand, shoulder, map.len(0.03), st.skin.map(|v| v * 0.85));
                c.capsule(
                    q,
                    map.px([x + hx, y + hy]),
                    map.len(st.radius).max(0.7),
                    bl.colour,
                );
                let fist = map.len(0.025).max(map.len(st.radius) * 1.6);
                c.disc(hand[0], hand[1], fist, |_, _| st.skin);
            }
            (Role::Tool, Shape::Rect { hw, hh }) => {
                let sk = skin_of(bl);
                let arm = map.px([x - 0.05, y + 0.8]);
                c.capsule(q, arm, map.len(0.02), sk.map(|v| v * 0.9));
                let a = map.px([x - hw, y + hh]);
                let e = map.px([x + hw, y - hh]);
                c.rect(a[0], a[1], e[0], e[1], |_, _| sk);
            }
            (Role::Object, Shape::Circle { r }) => {
                let rp = map.len(r);
                let (ca, sa) = ((ang as f32).cos(), (ang as f32).sin());
                c.disc(q[0], q[1], rp, |dx, dy| {
                    let (u, v) = ((dx * ca - dy * sa) / scale, (dx * sa + dy * ca) / scale);
                    let shade = 1.0 + 0.25 * (-dx - dy) / (rp + 1.0);
                    pattern_colour(bl, u, v).map(|v| (v * shade).min(1.0))
                });
            }
            (Role::Object, Shape::Rect { hw, hh }) => {
                let a = map.px([x - hw, y + hh]);
                let e = map.px([x + hw, y - hh]);
                let hpx = e[1] - a[1];
                c.rect(a[0], a[1], e[0], e[1], |u, v| {
                    let shade = 1.0 + 0.15 * (0.5 - v / hpx.max(1.0));
                    pattern_colour(bl, u / scale, v / scale).map(|v| (v * shade).min(1.0))
                });
            }
        }
        // The hand that holds, brings or throws an object, then withdraws.
        if let (Role::Object, Some(p)) = (b.role, &b.path) {
            let end = p.end();
            let (hx, hy) = if t <= end {
                (x, y)
            } else if t < end + 0.6 {
                let (e, _) = p.at(end);
                (e[0], e[1] + 1.2 * (t - end))
            } else {
                continue;
            };
            let (_, hh) = b.shape.half();
            let hp = map.px([hx, hy + hh + 0.012]);
            let arm = map.px([hx + 0.1, hy + 1.0]);
            c.capsule(
                hp,
                arm,
                map.len(0.018),
                [SKIN[0] * 0.9, SKIN[1] * 0.9, SKIN[2] * 0.9],
            );
            c.disc(hp[0], hp[1], map.len(0.022), |_, _| SKIN);
        }
    }
    for p in look.panels.iter().filter(|p| p.front) {
        draw_panel(c, map, p, scale);
    }
}

/// RGB (scaled by `k`) to limited-range Y'CbCr 4:2:0 with sensor noise of `sigma` (8-bit units).
fn to_yuv(rgb: &[[f32; 3]], w: usize, h: usize, k: f32, sigma: f32, r: &mut Rng) -> Yuv {
    let mut y = vec![0u8; w * h];
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut cb = vec![0f32; cw * ch];
    let mut cr = vec![0f32; cw * ch];
    let mut cnt = vec![0f32; cw * ch];
    for j in 0..h {
        for i in 0..w {
            let p = rgb[j * w + i];
            let (rr, gg, bb) = (
                (p[0] * k).clamp(0.0, 1.0),
                (p[1] * k).clamp(0.0, 1.0),
                (p[2] * k).clamp(0.0, 1.0),
            );
            let luma = 0.299 * rr + 0.587 * gg + 0.114 * bb;
            let n = if sigma > 0.0 {
                (r.f32() + r.f32() + r.f32() - 1.5) * 2.0 * sigma
            } else {
                0.0
            };
            y[j * w + i] = (16.0 + 219.0 * luma + n).round().clamp(0.0, 255.0) as u8;
            let c = (j / 2) * cw + i / 2;
            cb[c] += -0.168_736 * rr - 0.331_264 * gg + 0.5 * bb;
            cr[c] += 0.5 * rr - 0.418_688 * gg - 0.081_312 * bb;
            cnt[c] += 1.0;
        }
    }
    let u = cb
        .iter()
        .zip(&cnt)
        .map(|(v, n)| (128.0 + 224.0 * v / n).round().clamp(0.0, 255.0) as u8)
        .collect();
    let v = cr
        .iter()
        .zip(&cnt)
        .map(|(v, n)| (128.0 + 224.0 * v / n).round().clamp(0.0, 255.0) as u8)
        .collect();
    Yuv { y, u, v }
}

/// The 8-point DCT-II basis, orthonormal.
fn dct_basis() -> [[f32; 8]; 8] {
    let mut m = [[0.0f32; 8]; 8];
    for (u, row) in m.iter_mut().enumerate() {
        let a = if u == 0 {
            (1.0f32 / 8.0).sqrt()
        } else {
            (2.0f32 / 8.0).sqrt()
        };
        for (x, v) in row.iter_mut().enumerate() {
            *v = a * ((2 * x + 1) as f32 * u as f32 * std::f32::consts::PI / 16.0).cos();
        }
    }
    m
}

/// JPEG-like compression artefacts: every whole 8x8 block goes through a DCT, its coefficients
/// are quantised with a step growing with frequency, and back.
fn quantise(plane: &mut [u8], w: usize, h: usize, step: f32) {
    let c = dct_basis();
    let mut b = [[0.0f32; 8]; 8];
    let mut t = [[0.0f32; 8]; 8];
    for by in 0..h / 8 {
        for bx in 0..w / 8 {
            for (y, row) in b.iter_mut().enumerate() {
                for (x, v) in row.iter_mut().enumerate() {
                    *v = plane[(by * 8 + y) * w + bx * 8 + x] as f32 - 128.0;
                }
            }
            // t = C b, then F = t C^T
            for u in 0..8 {
                for x in 0..8 {
                    t[u][x] = (0..8).map(|y| c[u][y] * b[y][x]).sum();
                }
            }
            for u in 0..8 {
                for v in 0..8 {
                    let f: f32 = (0..8).map(|x| t[u][x] * c[v][x]).sum();
                    let q = step * (1.0 + 0.35 * (u + v) as f32);
                    b[u][v] = (f / q).round() * q;
                }
            }
            // back: t = C^T F, then block = t C
            for y in 0..8 {
                for v in 0..8 {
                    t[y][v] = (0..8).map(|u| c[u][y] * b[u][v]).sum();
                }
            }
            for y in 0..8 {
                for x in 0..8 {
                    let p: f32 = (0..8).map(|v| t[y][v] * c[v][x]).sum();
                    plane[(by * 8 + y) * w + bx * 8 + x] =
                        (p + 128.0).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantisation_keeps_a_flat_block_and_roughs_up_detail() {
        let mut flat = vec![100u8; 64];
        quantise(&mut flat, 8, 8, 16.0);
        assert!(
            flat.iter().all(|&v| (v as i32 - 100).abs() <= 8),
            "{flat:?}"
        );
        let fine: Vec<u8> = (0..64)
            .map(|i| if (i + i / 8) % 2 == 0 { 60 } else { 200 })
            .collect();
        let mut q = fine.clone();
        quantise(&mut q, 8, 8, 16.0);
        assert_ne!(q, fine);
    }

    #[test]
    fn discs_are_antialiased() {
        let mut px = vec![[0.0f32; 3]; 16 * 16];
        let mut c = Canvas {
            w: 16,
            h: 16,
            px: &mut px,
        };
        c.disc(8.0, 8.0, 4.3, |_, _| [1.0, 1.0, 1.0]);
        let partial = px.iter().filter(|p| p[0] > 0.05 && p[0] < 0.95).count();
        assert!(partial > 8, "{partial}");
        assert_eq!(px[8 * 16 + 8][0], 1.0);
    }
}
