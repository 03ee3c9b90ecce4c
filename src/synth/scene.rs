//! The scene menu: from one seeded RNG, a room (floor, maybe a table, a shelf, walls,
//! containers), a handful of scenarios at random times (drop onto / into / behind / in front of,
//! bounce, throws, a stick hitting, collisions, a stack poked over, and silent motions), the
//! look (background, occluders, distractors, camera and lighting effects) and the sound set-up
//! (microphone state, noise, sounds with no visible cause).
//!
//! Scenarios only set up bodies and scripted paths; what happens (and so every label) comes
//! from the physics.

use fastrand::Rng;

use super::material::{
    self, CARDBOARD, CLOTH, MaterialId, OBJECT_MATERIALS, RUBBER, SURFACE_MATERIALS, WOOD,
};
use super::physics::{Body, Impact, Other, Path, Role, Shape, Static, Surface, World};

/// Every scenario kind, as written in the labels' `scenario` field.
pub const KINDS: &[&str] = &[
    "drop_onto",
    "drop_into",
    "drop_behind",
    "drop_in_front",
    "drop_soft",
    "bounce",
    "throw_wall",
    "throw_onto",
    "stick_hit",
    "collide",
    "collide_halt",
    "push_together",
    "deflect",
    "stack_poke",
    "slide",
    "place",
];

/// The seed's twelve sound classes (shared/seed writeup), the labels' `sound` field.
pub const SOUNDS: [&str; 12] = [
    "Hitting [something] with [something]",
    "Throwing [something] against [something]",
    "Throwing [something] onto a surface",
    "Dropping [something] onto [something]",
    "Dropping [something] into [something]",
    "Dropping [something] behind [something]",
    "Dropping [something] in front of [something]",
    "[Something] colliding with [something] and both are being deflected",
    "[Something] being deflected from [something]",
    "[Something] colliding with [something] and both come to a halt",
    "Poking a stack of [something] so the stack collapses",
    "Moving [something] and [something] so they collide with each other",
];

/// The sound class of a scenario kind.
pub fn sound_of(kind: &str) -> &'static str {
    match kind {
        "stick_hit" => SOUNDS[0],
        "throw_wall" => SOUNDS[1],
        "throw_onto" | "bounce" => SOUNDS[2],
        "drop_into" => SOUNDS[4],
        "drop_behind" => SOUNDS[5],
        "drop_in_front" => SOUNDS[6],
        "collide" => SOUNDS[7],
        "deflect" => SOUNDS[8],
        "collide_halt" => SOUNDS[9],
        "stack_poke" => SOUNDS[10],
        "push_together" => SOUNDS[11],
        _ => SOUNDS[3],
    }
}

/// A scenario placed in the scene.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub kind: &'static str,
    /// When its action happens (release, first strike, push), s.
    pub t: f64,
}

/// A flat panel drawn in front of (occluder) or behind (backdrop) the moving things.
#[derive(Debug, Clone, Copy)]
pub struct Panel {
    /// World rectangle (m): x0, y0, x1, y1.
    pub rect: [f64; 4],
    pub colour: [f32; 3],
    pub colour2: [f32; 3],
    /// 0 plain, 1 stripes, 2 checker, 3 noise-like dots.
    pub pattern: u8,
    /// Drawn over the moving things (hides impacts behind it).
    pub front: bool,
}

/// Something that moves without colliding (render only).
#[derive(Debug, Clone, Copy)]
pub enum Distractor {
    /// A hand waving around `centre` with amplitude `amp` (m) at `hz`.
    Wave {
        centre: [f64; 2],
        amp: [f64; 2],
        hz: f64,
        phase: f64,
        skin: [f32; 3],
    },
    /// A disc rolling along height `y` from `x0` at `speed` (m/s), radius `r`.
    Roll {
        y: f64,
        x0: f64,
        speed: f64,
        r: f64,
        colour: [f32; 3],
    },
    /// A pendulum hanging from `pivot`: length, amplitude (rad), period (s), bob radius.
    Swing {
        pivot: [f64; 2],
        len: f64,
        amp: f64,
        period: f64,
        r: f64,
        colour: [f32; 3],
    },
}

/// How a body looks.
#[derive(Debug, Clone, Copy)]
pub struct BodyLook {
    pub colour: [f32; 3],
    pub colour2: [f32; 3],
    /// 0 plain, 1 stripes, 2 checker, 3 dots, 4 ring.
    pub pattern: u8,
    /// Pattern frequency (cycles per m).
    pub freq: f32,
    /// How a stick is drawn (a [`Role::Tool`] circle is its tip); `None` for everything else.
    pub stick: Option<StickLook>,
}

/// How a held stick looks: it runs from its tip towards `handle` (m, relative to the tip) and on
/// out of the frame, held by a hand with an arm behind it.
///
/// The tip is the physics body (8 mm); the drawn stick is wider. Real footage of sticks is often
/// close up (a drumstick 5-10 px wide at 160x120) and shows the hand and arm that swing it; a
/// stick that is a faint 1-2 px line with its hand out of the frame taught the model nothing
/// about them.
#[derive(Debug, Clone, Copy)]
pub struct StickLook {
    /// Drawn radius (m).
    pub radius: f64,
    /// Where the stick points from the tip (m).
    pub handle: [f64; 2],
    /// Where the hand grips it, as a share of the way from the tip to `handle`.
    pub grip: f64,
    pub skin: [f32; 3],
}

/// Background kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackgroundKind {
    Gradient,
    Noise,
    Stripes,
    Wood,
    Tiles,
    Photo,
}

/// The look of a scene.
#[derive(Debug, Clone)]
pub struct Look {
    pub background: BackgroundKind,
    pub wall: [[f32; 3]; 2],
    pub floor: [[f32; 3]; 2],
    pub furniture: [f32; 3],
    pub bodies: Vec<BodyLook>,
    pub panels: Vec<Panel>,
    pub distractors: Vec<Distractor>,
    /// Containers drawn as open U shapes: x0, x1, bottom y, top y (m), colour.
    pub containers: Vec<([f64; 4], [f32; 3])>,
    /// Table legs and shelf brackets: rectangles (m).
    pub supports: Vec<[f64; 4]>,
    /// Camera shake amplitude (px).
    pub shake_px: f64,
    /// Lighting gain at the start and end of the scene.
    pub gain: [f64; 2],
    /// Flicker depth (0..0.1) and frequency (Hz).
    pub flicker: (f64, f64),
    /// Sensor noise standard deviation (0..255 scale).
    pub noise: f64,
    /// Motion-blur sub-frames (1: none) and exposure as a share of the frame interval.
    pub blur: (usize, f64),
    /// JPEG-like 8x8 DCT quantisation step (0: none).
    pub quant: f64,
    /// Seed of the procedural textures.
    pub texture_seed: u64,
}

/// Microphone state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mic {
    Ok,
    Dead,
    Muted,
}

impl Mic {
    pub fn as_str(self) -> &'static str {
        match self {
            Mic::Ok => "ok",
            Mic::Dead => "dead",
            Mic::Muted => "muted",
        }
    }
}

/// A sound with no visible cause.
#[derive(Debug, Clone, Copy)]
pub struct Unseen {
    pub t: f64,
    pub kind: &'static str,
    pub duration: f64,
}

/// The sound set-up.
#[derive(Debug, Clone)]
pub struct SoundSpec {
    pub mic: Mic,
    /// 0 white, 1 pink, 2 brown.
    pub noise_colour: u8,
    /// Background noise RMS (linear, before the gain).
    pub noise_rms: f64,
    /// Peak level the mix is normalised to (linear).
    pub peak: f64,
    pub unseen: Vec<Unseen>,
}

/// The view onto the world: world x0, y0 at the bottom-left, pixels per metre.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub x0: f64,
    pub y0: f64,
    pub w: f64,
    pub h: f64,
}

impl View {
    /// Whether a world point is inside the view (with a margin in m).
    pub fn contains(&self, p: [f64; 2], margin: f64) -> bool {
        p[0] >= self.x0 + margin
            && p[0] <= self.x0 + self.w - margin
            && p[1] >= self.y0 + margin
            && p[1] <= self.y0 + self.h - margin
    }
}

/// Everything random about one scene, drawn from its seed.
#[derive(Debug, Clone)]
pub struct SceneSpec {
    pub seed: u64,
    pub duration: f64,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub view: View,
    pub world: World,
    pub scenarios: Vec<Scenario>,
    /// Impacts the physics does not see: a tool striking a static surface by script.
    pub scripted: Vec<Impact>,
    pub look: Look,
    pub sound: SoundSpec,
}

/// Options that shape the scene menu.
#[derive(Debug, Clone)]
pub struct MenuOptions {
    pub duration: f64,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// Scenario kinds to draw from (empty: all).
    pub kinds: Vec<&'static str>,
}

fn uni(r: &mut Rng, a: f64, b: f64) -> f64 {
    a + (b - a) * r.f64()
}

fn pick<T: Copy>(r: &mut Rng, v: &[T]) -> T {
    v[r.usize(..v.len())]
}

fn colour(r: &mut Rng) -> [f32; 3] {
    [r.f32(), r.f32(), r.f32()]
}

fn pal_colour(r: &mut Rng, pal: &[[f32; 3]], amount: f32) -> [f32; 3] {
    let c = pick(r, pal);
    jitter(r, c, amount)
}

fn jitter(r: &mut Rng, c: [f32; 3], amount: f32) -> [f32; 3] {
    c.map(|v| (v + (r.f32() - 0.5) * amount).clamp(0.0, 1.0))
}

/// A surface something can land on: static index, height, usable x range.
#[derive(Debug, Clone, Copy)]
struct Landing {
    idx: usize,
    y: f64,
    x0: f64,
    x1: f64,
}

struct Builder<'a> {
    r: &'a mut Rng,
    spec: SceneSpec,
    landings: Vec<Landing>,
    /// Walls: static index, x, the side things come from (+1: from the right).
    walls: Vec<(usize, f64, f64)>,
    counter: usize,
}

fn object_noun(shape: Shape, m: MaterialId) -> &'static str {
    match (shape, material::get(m).name) {
        (Shape::Circle { .. }, "rubber") => "ball",
        (Shape::Circle { .. }, "glass") => "marble",
        (Shape::Circle { .. }, "metal") => "coin",
        (Shape::Circle { .. }, "wood") => "bead",
        (Shape::Circle { .. }, "stone") => "pebble",
        (Shape::Circle { .. }, "cloth") => "sock",
        (Shape::Circle { .. }, _) => "ball",
        (Shape::Rect { .. }, "metal") => "can",
        (Shape::Rect { .. }, "wood") => "block",
        (Shape::Rect { .. }, "glass") => "jar",
        (Shape::Rect { .. }, "ceramic") => "mug",
        (Shape::Rect { .. }, "cardboard") => "box",
        (Shape::Rect { .. }, "cloth") => "towel",
        (Shape::Rect { .. }, "stone") => "brick",
        (Shape::Rect { .. }, _) => "box",
    }
}

impl Builder<'_> {
    fn view(&self) -> View {
        self.spec.view
    }

    /// A circle or a box between 2.5 % and `max` (a share of the view's width) in radius or
    /// half side.
    fn random_shape(&mut self, max: f64) -> Shape {
        let s = self.view().w;
        if self.r.bool() {
            Shape::Circle {
                r: uni(self.r, 0.025 * s, max * s),
            }
        } else {
            Shape::Rect {
                hw: uni(self.r, 0.025 * s, max * s),
                hh: uni(self.r, 0.025 * s, max * s),
            }
        }
    }

    /// Adds a body with a fresh name and look; returns its index.
    fn add_body(&mut self, shape: Shape, m: MaterialId, pos: [f64; 2], owner: usize) -> usize {
        self.counter += 1;
        let name = format!("{}#{}", object_noun(shape, m), self.counter);
        let b = Body::new(name, shape, m, pos, owner);
        self.spec.world.bodies.push(b);
        let pal = material::get(m).palette;
        let base = pal_colour(self.r, pal, 0.15);
        let pattern = if self.r.f64() < 0.5 {
            0
        } else {
            self.r.u8(1..5)
        };
        let look = BodyLook {
            colour: base,
            colour2: if self.r.bool() {
                jitter(self.r, base.map(|v| v * 0.5), 0.1)
            } else {
                colour(self.r)
            },
            pattern,
            freq: uni(self.r, 30.0, 120.0) as f32,
            stick: None,
        };
        self.spec.look.bodies.push(look);
        self.spec.world.bodies.len() - 1
    }

    fn add_static(&mut self, name: &str, surface: Surface, m: MaterialId) -> usize {
        self.spec.world.statics.push(Static {
            name: name.into(),
            surface,
            material: m,
        });
        self.spec.world.statics.len() - 1
    }

    fn landing(&mut self) -> Landing {
        pick(self.r, &self.landings)
    }

    /// A held object: brought in from above the view by a hand, held still at `hold` until
    /// `t`, then let go with `release_vel`.
    fn hold(&mut self, i: usize, hold: [f64; 2], t: f64, release_vel: [f64; 2]) {
        let v = self.view();
        let above = [hold[0], v.y0 + v.h + 0.3];
        let arrive = (t - uni(self.r, 0.3, 0.8)).max(0.05);
        let enter = (arrive - 0.6).max(0.0);
        let mut keys = Vec::new();
        if enter > 0.0 {
            keys.push((0.0, above));
            keys.push((enter, above));
        } else {
            keys.push((0.0, hold));
        }
        if arrive > keys.last().unwrap().0 {
            keys.push((arrive, hold));
        }
        keys.push((t, hold));
        let b = &mut self.spec.world.bodies[i];
        b.pos = keys[0].1;
        b.path = Some(Path::new(keys));
        b.release_vel = release_vel;
    }

    fn scenario(&mut self, kind: &'static str, t: f64) -> usize {
        self.spec.scenarios.push(Scenario { kind, t });
        self.spec.scenarios.len() - 1
    }

    fn drop_onto(&mut self, kind: &'static str, t: f64) {
        let s = self.scenario(kind, t);
        let l = self.landing();
        let soft = kind == "drop_soft";
        let m = if soft && self.r.bool() {
            CLOTH
        } else {
            pick(self.r, OBJECT_MATERIALS)
        };
        let shape = self.random_shape(0.08);
        let (hw, hh) = shape.half();
        let x = uni(self.r, l.x0 + hw, (l.x1 - hw).max(l.x0 + hw));
        let top = self.view().y0 + self.view().h;
        let h = uni(self.r, 0.08, (top - l.y - 2.0 * hh - 0.05).max(0.1));
        let mut x = x;
        let mut l = l;
        if soft && m != CLOTH {
            // Onto a cushion lying on the landing surface.
            let cw = uni(self.r, 0.08, 0.16);
            let ch = 0.03;
            let cx0 = (x - cw / 2.0).max(l.x0);
            let idx = self.add_static(
                "cushion",
                Surface::Top {
                    y: l.y + ch,
                    x0: cx0,
                    x1: cx0 + cw,
                },
                CLOTH,
            );
            let c = pal_colour(self.r, material::get(CLOTH).palette, 0.2);
            self.spec.look.panels.push(Panel {
                rect: [cx0, l.y, cx0 + cw, l.y + ch],
                colour: c,
                colour2: c,
                pattern: 0,
                front: false,
            });
            x = cx0 + cw / 2.0;
            l = Landing {
                idx,
                y: l.y + ch,
                x0: cx0,
                x1: cx0 + cw,
            };
        }
        if kind == "drop_behind" || kind == "drop_in_front" {
            let pw = 2.0 * hw + uni(self.r, 0.06, 0.2);
            let ph = uni(self.r, 0.08, h.min(0.3));
            let px0 = x - pw * uni(self.r, 0.3, 0.7);
            let c = colour(self.r);
            let front = kind == "drop_behind";
            let pattern = self.r.u8(0..4);
            let c2 = jitter(self.r, c, 0.4);
            self.spec.look.panels.push(Panel {
                rect: [px0, l.y, px0 + pw, l.y + ph],
                colour: c,
                colour2: c2,
                pattern,
                front,
            });
        }
        let i = self.add_body(shape, m, [x, l.y + hh + h], s);
        self.hold(i, [x, l.y + hh + h], t, [0.0, 0.0]);
    }

    fn drop_into(&mut self, t: f64) {
        let s = self.scenario("drop_into", t);
        let l = self.landing();
        let w = uni(self.r, 0.14, 0.3).min(l.x1 - l.x0 - 0.02);
        let depth = uni(self.r, 0.05, 0.14);
        let x0 = uni(self.r, l.x0, l.x1 - w);
        let m = pick(self.r, &[WOOD, 1, 5, CARDBOARD, 3]);
        let name = match material::get(m).name {
            "metal" => "pot",
            "ceramic" => "bowl",
            "cardboard" => "box",
            "plastic" => "bucket",
            _ => "crate",
        };
        let bottom = l.y + 0.008;
        self.add_static(
            name,
            Surface::Top {
                y: bottom,
                x0,
                x1: x0 + w,
            },
            m,
        );
        self.add_static(
            name,
            Surface::Side {
                x: x0,
                y0: l.y,
                y1: l.y + depth,
            },
            m,
        );
        self.add_static(
            name,
            Surface::Side {
                x: x0 + w,
                y0: l.y,
                y1: l.y + depth,
            },
            m,
        );
        let c = pal_colour(self.r, material::get(m).palette, 0.2);
        self.spec
            .look
            .containers
            .push(([x0, x0 + w, l.y, l.y + depth], c));
        let rmax = (w / 2.0 - 0.01).min(0.05);
        let shape = if self.r.bool() {
            Shape::Circle {
                r: uni(self.r, 0.02, rmax.max(0.021)),
            }
        } else {
            Shape::Rect {
                hw: uni(self.r, 0.02, rmax.max(0.021)),
                hh: uni(self.r, 0.02, 0.05),
            }
        };
        let (hw, hh) = shape.half();
        let x = uni(
            self.r,
            x0 + hw + 0.005,
            (x0 + w - hw - 0.005).max(x0 + hw + 0.006),
        );
        let h = uni(self.r, depth + 0.05, depth + 0.4);
        let mo = pick(self.r, OBJECT_MATERIALS);
        let i = self.add_body(shape, mo, [x, bottom + hh + h], s);
        self.hold(i, [x, bottom + hh + h], t, [0.0, 0.0]);
    }

    fn bounce(&mut self, t: f64) {
        let s = self.scenario("bounce", t);
        let l = self.landing();
        let r = uni(self.r, 0.025, 0.055);
        let x = uni(self.r, l.x0 + r, l.x1 - r);
        let h = uni(self.r, 0.2, 0.7);
        let i = self.add_body(Shape::Circle { r }, RUBBER, [x, l.y + r + h], s);
        let vx = uni(self.r, -0.3, 0.3);
        let vy = uni(self.r, -1.5, 0.0);
        self.hold(i, [x, l.y + r + h], t, [vx, vy]);
    }

    fn throw(&mut self, kind: &'static str, t: f64) {
        let kind = if self.walls.is_empty() {
            "throw_onto"
        } else {
            kind
        };
        let s = self.scenario(kind, t);
        let v = self.view();
        let shape = self.random_shape(0.065);
        let m = pick(self.r, OBJECT_MATERIALS);
        let (hold, vel) = if kind == "throw_wall" && !self.walls.is_empty() {
            let (_, wx, side) = pick(self.r, &self.walls);
            let dist = uni(self.r, 0.25, 0.7 * v.w);
            let x = (wx + side * dist).clamp(v.x0 + 0.05, v.x0 + v.w - 0.05);
            let y = uni(self.r, 0.3, 0.7 * v.h);
            let speed = uni(self.r, 1.0, 3.0);
            ([x, y], [-side * speed, uni(self.r, 0.0, 1.5)])
        } else {
            let l = self.landing();
            let x = uni(self.r, l.x0, l.x1);
            let y = l.y + uni(self.r, 0.25, 0.6);
            let dir = if x > v.x0 + v.w / 2.0 { -1.0 } else { 1.0 };
            (
                [x, y],
                [dir * uni(self.r, 0.3, 1.5), uni(self.r, -2.5, 0.3)],
            )
        };
        let i = self.add_body(shape, m, hold, s);
        // The throwing hand moves with the object for 0.15 s before letting go.
        let back = [hold[0] - vel[0] * 0.15, hold[1] - vel[1] * 0.15];
        self.hold(i, back, t - 0.15, [0.0, 0.0]);
        let b = &mut self.spec.world.bodies[i];
        if let Some(p) = &mut b.path {
            p.keys.push((t, hold));
        }
        b.release_vel = vel;
    }

    fn stick_hit(&mut self, t: f64) {
        let s = self.scenario("stick_hit", t);
        let l = self.landing();
        let tip_r = 0.008;
        let x = uni(self.r, l.x0 + 0.03, l.x1 - 0.03);
        let v = self.view();
        let off = [x + 0.4, v.y0 + v.h + 0.3];
        let on_object = self.r.f64() < 0.35;
        let mut keys = vec![(0.0, off)];
        self.counter += 1;
        let mut stick = Body::new(
            format!("stick#{}", self.counter),
            Shape::Circle { r: tip_r },
            WOOD,
            off,
            s,
        );
        stick.role = Role::Tool;
        self.spec.world.bodies.push(stick);
        // Mostly wooden sticks, some painted or metal ones; held from either side, at any
        // thickness from a pencil's to a mallet's handle.
        let c = if self.r.f64() < 0.6 {
            pal_colour(self.r, material::get(WOOD).palette, 0.2)
        } else {
            colour(self.r)
        };
        let side = if self.r.bool() { 1.0 } else { -1.0 };
        let look = StickLook {
            radius: uni(self.r, 0.006, 0.02),
            handle: [side * uni(self.r, 0.1, 0.45), uni(self.r, 0.45, 0.65)],
            grip: uni(self.r, 0.3, 0.8),
            skin: skin(self.r),
        };
        self.spec.look.bodies.push(BodyLook {
            colour: c,
            colour2: c,
            pattern: 0,
            freq: 0.0,
            stick: Some(look),
        });
        let ti = self.spec.world.bodies.len() - 1;
        if on_object {
            // Strike an object resting on the surface from the side.
            let shape = self.random_shape(0.065);
            let (hw, hh) = shape.half();
            let m = pick(self.r, OBJECT_MATERIALS);
            let ox = x.clamp(l.x0 + hw, l.x1 - hw);
            self.add_body(shape, m, [ox, l.y + hh], s);
            let speed = uni(self.r, 0.6, 2.0);
            let dir = if self.r.bool() { 1.0 } else { -1.0 };
            // Swung from behind: the stick trails the way it moves.
            if let Some(st) = self.spec.look.bodies[ti].stick.as_mut() {
                st.handle[0] = -dir * st.handle[0].abs();
            }
            let y = l.y + hh;
            let contact = [ox - dir * (hw + tip_r), y];
            let start = [contact[0] - dir * 0.15, y];
            let ta = (t - 0.15 / speed - 0.5).max(0.01);
            keys.push((ta, start));
            keys.push((t - 0.15 / speed, start));
            keys.push((t, contact));
            keys.push((t + 0.3 / speed, [contact[0] + dir * 0.3, y]));
            keys.push((t + 0.3 / speed + 0.6, off));
        } else {
            let n = 1 + self.r.usize(..4);
            let mut tk = t;
            let lift = uni(self.r, 0.08, 0.25);
            let rest = [x, l.y + tip_r + lift];
            keys.push(((t - 0.8).max(0.01), rest));
            for _ in 0..n {
                let speed = uni(self.r, 0.8, 3.0);
                let down = lift / speed;
                let up = lift / (0.5 * speed);
                if tk - down <= keys.last().unwrap().0 || tk + up > self.spec.duration - 0.2 {
                    break;
                }
                keys.push((tk - down, rest));
                keys.push((tk, [x, l.y + tip_r]));
                keys.push((tk + up, rest));
                self.spec.scripted.push(Impact {
                    t: tk,
                    speed,
                    a: ti,
                    b: Other::Static(l.idx),
                    point: [x, l.y],
                });
                tk += up + down + uni(self.r, 0.05, 0.4);
            }
            let last = keys.last().unwrap().0;
            keys.push((last + 0.6, off));
        }
        self.spec.world.bodies[ti].path = Some(Path::new(keys));
    }

    fn collide(&mut self, kind: &'static str, t: f64) {
        let l = self.landing();
        if l.x1 - l.x0 < 0.3 {
            return self.drop_onto("drop_onto", t);
        }
        let s = self.scenario(kind, t);
        let halt = kind == "collide_halt";
        let shape = self.random_shape(0.065);
        let (hw, hh) = shape.half();
        let shape_b = if halt {
            shape
        } else {
            self.random_shape(0.065)
        };
        let (hwb, hhb) = shape_b.half();
        let mid = uni(self.r, l.x0 + 0.15, l.x1 - 0.15);
        let gap = if kind == "push_together" {
            0.004
        } else {
            uni(self.r, 0.04, 0.12)
        };
        let speed = if kind == "push_together" {
            uni(self.r, 0.4, 1.0)
        } else {
            uni(self.r, 0.8, 2.0)
        };
        let ma = pick(self.r, OBJECT_MATERIALS);
        let mb = if halt {
            ma
        } else {
            pick(self.r, OBJECT_MATERIALS)
        };
        let ya = l.y + hh + 0.0005;
        let yb = l.y + hhb + 0.0005;
        let a = self.add_body(shape, ma, [mid - hw - gap, ya], s);
        let b = self.add_body(shape_b, mb, [mid + hwb + gap, yb], s);
        let push = 0.12;
        for (i, x, dir, y) in [(a, mid - hw - gap, 1.0, ya), (b, mid + hwb + gap, -1.0, yb)] {
            let start = [x - dir * push, y];
            let body = &mut self.spec.world.bodies[i];
            body.pos = start;
            body.path = Some(Path::new(vec![(t - push / speed, start), (t, [x, y])]));
            body.release_vel = [dir * speed, 0.0];
            if halt {
                body.restitution = 0.0;
            }
        }
    }

    fn deflect(&mut self, t: f64) {
        if self.walls.is_empty() {
            return self.throw("throw_onto", t);
        }
        let s = self.scenario("deflect", t);
        let (_, wx, side) = pick(self.r, &self.walls);
        let r = uni(self.r, 0.025, 0.055);
        let l = self.landings[0];
        let x = wx + side * uni(self.r, 0.15, 0.4);
        let m = pick(self.r, &[RUBBER, 3, 2, 7]);
        let i = self.add_body(Shape::Circle { r }, m, [x, l.y + r + 0.0005], s);
        let speed = uni(self.r, 0.8, 2.5);
        let start = [x + side * 0.1, l.y + r + 0.0005];
        let b = &mut self.spec.world.bodies[i];
        b.pos = start;
        b.path = Some(Path::new(vec![
            ((t - 0.4).max(0.0), start),
            (t, [x, start[1]]),
        ]));
        b.release_vel = [-side * speed, 0.0];
    }

    fn stack_poke(&mut self, t: f64) {
        let s = self.scenario("stack_poke", t);
        let l = self.landing();
        let n = 2 + self.r.usize(..3);
        let hw = uni(self.r, 0.025, 0.05);
        let hh = uni(self.r, 0.02, 0.04);
        let dir = if self.r.bool() { 1.0 } else { -1.0 };
        // Near the edge the push goes towards, so the boxes fall off it (on the floor they topple
        // over each other instead).
        let edge = if dir > 0.0 { l.x1 } else { l.x0 };
        let x = (edge - dir * uni(self.r, hw + 0.01, hw + 0.08)).clamp(l.x0 + hw, l.x1 - hw);
        let m = pick(self.r, &[CARDBOARD, WOOD, 3]);
        let mut top = l.y;
        for k in 0..n {
            let bx = x + uni(self.r, -0.3, 0.3) * hw * (k > 0) as i32 as f64;
            self.add_body(Shape::Rect { hw, hh }, m, [bx, top + hh], s);
            top += 2.0 * hh;
        }
        // The poking hand: a kinematic block sweeping the stack's upper part.
        let hand_h = (top - l.y) * uni(self.r, 0.3, 0.6);
        let speed = uni(self.r, 0.5, 1.5);
        let hx = x - dir * (hw + 0.012);
        let y = top - hand_h / 2.0;
        self.counter += 1;
        let mut hand = Body::new(
            format!("hand#{}", self.counter),
            Shape::Rect {
                hw: 0.012,
                hh: hand_h / 2.0,
            },
            CLOTH,
            [hx, y],
            s,
        );
        hand.role = Role::Tool;
        let v = self.view();
        let off = [hx - dir * 0.5, v.y0 + v.h + 0.3];
        let start = [hx - dir * 0.1, y];
        let end = [hx + dir * (2.0 * hw + 0.15), y];
        let hand_keys = vec![
            (0.0, off),
            ((t - 0.1 / speed - 0.6).max(0.001), start),
            (t, [hx - 0.0001 * dir, y]),
            (t + (2.0 * hw + 0.15) / speed, end),
            (t + (2.0 * hw + 0.15) / speed + 0.5, off),
        ];
        hand.path = Some(Path::new(hand_keys));
        self.spec.world.bodies.push(hand);
        let skin = skin(self.r);
        self.spec.look.bodies.push(BodyLook {
            colour: skin,
            colour2: skin,
            pattern: 0,
            freq: 0.0,
            stick: None,
        });
    }

    fn slide(&mut self, t: f64) {
        let s = self.scenario("slide", t);
        let l = self.landing();
        let shape = Shape::Rect {
            hw: uni(self.r, 0.025, 0.06),
            hh: uni(self.r, 0.02, 0.05),
        };
        let (hw, hh) = shape.half();
        let m = pick(self.r, OBJECT_MATERIALS);
        let x = uni(self.r, l.x0 + hw, l.x1 - hw);
        let y = l.y + hh + 0.0002;
        let i = self.add_body(shape, m, [x, y], s);
        let dist = uni(self.r, 0.05, 0.2).min((l.x1 - hw - x).abs().max(0.01));
        let speed = uni(self.r, 0.08, 0.25);
        let b = &mut self.spec.world.bodies[i];
        b.path = Some(Path::new(vec![
            (t, [x, y]),
            (t + dist / speed, [x + dist, y]),
        ]));
        b.release_vel = [speed * 0.5, 0.0];
    }

    fn place(&mut self, t: f64) {
        let s = self.scenario("place", t);
        let l = self.landing();
        let shape = self.random_shape(0.08);
        let (hw, hh) = shape.half();
        let m = pick(self.r, OBJECT_MATERIALS);
        let x = uni(self.r, l.x0 + hw, l.x1 - hw);
        let rest = [x, l.y + hh + 0.001];
        let i = self.add_body(shape, m, rest, s);
        let v = self.view();
        let above = [x, v.y0 + v.h + 0.3];
        let h = above[1] - rest[1];
        let speed = uni(self.r, 0.3, 0.8);
        let slow = uni(self.r, 0.05, 0.15);
        let near = [x, rest[1] + 0.04];
        let b = &mut self.spec.world.bodies[i];
        b.path = Some(Path::new(vec![
            ((t - (h - 0.04) / speed).max(0.0), above),
            (t, near),
            (t + 0.04 / slow, rest),
        ]));
        b.pos = above;
    }
}

fn skin(r: &mut Rng) -> [f32; 3] {
    let k = r.f32();
    [0.45 + 0.5 * k, 0.3 + 0.4 * k, 0.22 + 0.33 * k]
}

/// Draws the scene of `seed`.
pub fn build(seed: u64, opts: &MenuOptions) -> SceneSpec {
    let mut r = Rng::with_seed(seed);
    let r = &mut r;
    let aspect = opts.height as f64 / opts.width as f64;
    let vw = uni(r, 0.5, 1.0);
    let vh = vw * aspect;
    let view = View {
        x0: 0.0,
        y0: -uni(r, 0.04, 0.12) * vh,
        w: vw,
        h: vh,
    };
    let look = Look {
        background: pick(
            r,
            &[
                BackgroundKind::Gradient,
                BackgroundKind::Noise,
                BackgroundKind::Stripes,
                BackgroundKind::Wood,
                BackgroundKind::Tiles,
                BackgroundKind::Photo,
            ],
        ),
        wall: [colour(r), colour(r)],
        floor: [colour(r), colour(r)],
        furniture: colour(r),
        bodies: Vec::new(),
        panels: Vec::new(),
        distractors: Vec::new(),
        containers: Vec::new(),
        supports: Vec::new(),
        shake_px: if r.f64() < 0.4 { uni(r, 0.3, 2.0) } else { 0.0 },
        gain: [uni(r, 0.6, 1.2), uni(r, 0.6, 1.2)],
        flicker: if r.f64() < 0.2 {
            (uni(r, 0.01, 0.08), pick(r, &[50.0, 60.0, 7.3, 100.0]))
        } else {
            (0.0, 0.0)
        },
        noise: uni(r, 0.0, 6.0),
        blur: if r.f64() < 0.6 {
            (r.usize(2..5), uni(r, 0.3, 1.0))
        } else {
            (1, 0.0)
        },
        quant: if r.f64() < 0.5 {
            uni(r, 4.0, 24.0)
        } else {
            0.0
        },
        texture_seed: r.u64(..),
    };
    let mic = match r.f64() {
        x if x < 0.025 => Mic::Dead,
        x if x < 0.05 => Mic::Muted,
        _ => Mic::Ok,
    };
    let sound = SoundSpec {
        mic,
        noise_colour: r.u8(0..3),
        noise_rms: 10f64.powf(uni(r, -4.0, -2.3)),
        peak: 10f64.powf(uni(r, -18.0, -1.0) / 20.0),
        unseen: Vec::new(),
    };
    let spec = SceneSpec {
        seed,
        duration: opts.duration,
        width: opts.width,
        height: opts.height,
        fps: opts.fps,
        view,
        world: World::default(),
        scenarios: Vec::new(),
        scripted: Vec::new(),
        look,
        sound,
    };
    let mut b = Builder {
        r,
        spec,
        landings: Vec::new(),
        walls: Vec::new(),
        counter: 0,
    };
    // The room.
    let floor_m = pick(b.r, SURFACE_MATERIALS);
    let floor = b.add_static(
        "floor",
        Surface::Top {
            y: 0.0,
            x0: -10.0,
            x1: 10.0,
        },
        floor_m,
    );
    b.landings.push(Landing {
        idx: floor,
        y: 0.0,
        x0: 0.05 * vw,
        x1: 0.95 * vw,
    });
    if b.r.f64() < 0.6 {
        let y = uni(b.r, 0.25, 0.5 * vh);
        let x0 = uni(b.r, 0.05, 0.45) * vw;
        let x1 = (x0 + uni(b.r, 0.35, 0.6) * vw).min(0.97 * vw);
        let m = pick(b.r, &[WOOD, WOOD, 1, 7, 3]);
        let idx = b.add_static("table", Surface::Top { y, x0, x1 }, m);
        b.landings.push(Landing {
            idx,
            y,
            x0: x0 + 0.02,
            x1: x1 - 0.02,
        });
        b.spec.look.supports.push([x0, y - 0.025, x1, y]);
        b.spec.look.supports.push([x0 + 0.02, 0.0, x0 + 0.045, y]);
        b.spec.look.supports.push([x1 - 0.045, 0.0, x1 - 0.02, y]);
    }
    for side in [1.0, -1.0] {
        if b.r.f64() < 0.45 {
            let x = if side > 0.0 {
                uni(b.r, 0.0, 0.1) * vw
            } else {
                uni(b.r, 0.9, 1.0) * vw
            };
            let m = pick(b.r, SURFACE_MATERIALS);
            let idx = b.add_static(
                "wall",
                Surface::Side {
                    x,
                    y0: -1.0,
                    y1: 10.0,
                },
                m,
            );
            b.walls.push((idx, x, side));
            let rect = if side > 0.0 {
                [-1.0, -1.0, x, 10.0]
            } else {
                [x, -1.0, vw + 1.0, 10.0]
            };
            b.spec.look.supports.push(rect);
            // Landing spots stay off the wall.
            for l in &mut b.landings {
                if side > 0.0 {
                    l.x0 = l.x0.max(x + 0.06);
                } else {
                    l.x1 = l.x1.min(x - 0.06);
                }
            }
        }
    }
    if b.r.f64() < 0.3 {
        let y = uni(b.r, 0.55, 0.8) * vh;
        let x0 = uni(b.r, 0.1, 0.6) * vw;
        let x1 = x0 + uni(b.r, 0.2, 0.35) * vw;
        let idx = b.add_static("shelf", Surface::Top { y, x0, x1 }, WOOD);
        b.landings.push(Landing {
            idx,
            y,
            x0: x0 + 0.02,
            x1: x1 - 0.02,
        });
        b.spec.look.supports.push([x0, y - 0.015, x1, y]);
    }
    b.landings.retain(|l| l.x1 - l.x0 > 0.12);
    if b.landings.is_empty() {
        b.landings.push(Landing {
            idx: floor,
            y: 0.0,
            x0: 0.1 * vw,
            x1: 0.9 * vw,
        });
    }
    // The action: 0 to 4 scenarios at random times.
    let kinds: Vec<&'static str> = if opts.kinds.is_empty() {
        KINDS.to_vec()
    } else {
        opts.kinds.clone()
    };
    let count = match b.r.f64() {
        x if x < 0.08 => 0,
        x if x < 0.3 => 1,
        x if x < 0.6 => 2,
        x if x < 0.85 => 3,
        _ => 4,
    };
    let dur = opts.duration;
    for _ in 0..count {
        let kind = pick(b.r, &kinds);
        let t = uni(b.r, 0.8_f64.min(dur * 0.3), (dur - 1.2).max(dur * 0.5));
        match kind {
            "drop_onto" | "drop_behind" | "drop_in_front" | "drop_soft" => b.drop_onto(kind, t),
            "drop_into" => b.drop_into(t),
            "bounce" => b.bounce(t),
            "throw_wall" | "throw_onto" => b.throw(kind, t),
            "stick_hit" => b.stick_hit(t),
            "collide" | "collide_halt" | "push_together" => b.collide(kind, t),
            "deflect" => b.deflect(t),
            "stack_poke" => b.stack_poke(t),
            "slide" => b.slide(t),
            _ => b.place(t),
        }
    }
    // Occluders that are not part of a scenario.
    for _ in 0..b.r.usize(..3) {
        if b.r.f64() < 0.5 {
            continue;
        }
        let w = uni(b.r, 0.08, 0.3);
        let h = uni(b.r, 0.1, 0.5) * vh;
        let x0 = uni(b.r, -0.05, vw - w * 0.5);
        let c = colour(b.r);
        let c2 = jitter(b.r, c, 0.4);
        let pattern = b.r.u8(0..4);
        let front = b.r.bool();
        b.spec.look.panels.push(Panel {
            rect: [x0, 0.0, x0 + w, h],
            colour: c,
            colour2: c2,
            pattern,
            front,
        });
    }
    // Distractors.
    for _ in 0..b.r.usize(..3) {
        let d = match b.r.u8(0..3) {
            0 => Distractor::Wave {
                centre: [uni(b.r, 0.1, 0.9) * vw, uni(b.r, 0.4, 0.9) * vh],
                amp: [uni(b.r, 0.02, 0.15), uni(b.r, 0.0, 0.08)],
                hz: uni(b.r, 0.5, 3.0),
                phase: uni(b.r, 0.0, 6.3),
                skin: skin(b.r),
            },
            1 => Distractor::Roll {
                y: uni(b.r, 0.3, 0.8) * vh,
                x0: if b.r.bool() { -0.1 } else { vw + 0.1 },
                speed: uni(b.r, 0.05, 0.3) * if b.r.bool() { 1.0 } else { -1.0 },
                r: uni(b.r, 0.01, 0.04),
                colour: colour(b.r),
            },
            _ => Distractor::Swing {
                pivot: [uni(b.r, 0.1, 0.9) * vw, view.y0 + vh + 0.02],
                len: uni(b.r, 0.15, 0.5) * vh,
                amp: uni(b.r, 0.1, 0.6),
                period: uni(b.r, 0.8, 2.5),
                r: uni(b.r, 0.01, 0.04),
                colour: colour(b.r),
            },
        };
        b.spec.look.distractors.push(d);
    }
    // Fix rolling distractors' direction so they cross the view.
    for d in &mut b.spec.look.distractors {
        if let Distractor::Roll { x0, speed, .. } = d {
            if (*x0 < 0.0) != (*speed > 0.0) {
                *speed = -*speed;
            }
        }
    }
    // Sounds with no visible cause.
    let n_unseen = match b.r.f64() {
        x if x < 0.5 => 0,
        x if x < 0.85 => 1,
        _ => 2,
    };
    for _ in 0..n_unseen {
        let kind = pick(b.r, &["click", "babble", "hum", "music"]);
        let duration = match kind {
            "click" => 0.04,
            "babble" => uni(b.r, 0.5, 2.5),
            "hum" => uni(b.r, 1.0, dur),
            _ => uni(b.r, 1.0, 4.0),
        };
        let t = uni(b.r, 0.1, (dur - duration.min(dur * 0.5)).max(0.2));
        let duration = duration.min(dur - t);
        b.spec.sound.unseen.push(Unseen { t, kind, duration });
    }
    b.spec.sound.unseen.sort_by(|a, c| a.t.total_cmp(&c.t));
    b.spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn menu(kinds: &[&'static str]) -> MenuOptions {
        MenuOptions {
            duration: 8.0,
            width: 64,
            height: 48,
            fps: 12.0,
            kinds: kinds.to_vec(),
        }
    }

    #[test]
    fn throws_against_a_wall_only_where_there_is_one() {
        let mut walls = 0;
        for seed in 0..300 {
            let s = build(seed, &menu(&["throw_wall"]));
            let has_wall = s.world.statics.iter().any(|x| x.name == "wall");
            for sc in &s.scenarios {
                assert!(has_wall || sc.kind != "throw_wall", "seed {seed}");
                walls += (sc.kind == "throw_wall") as usize;
            }
        }
        assert!(walls > 50, "{walls}");
    }

    #[test]
    fn sticks_are_drawn_wider_than_their_tip_and_held_from_either_side() {
        let (mut left, mut right, mut sticks) = (0, 0, 0);
        for seed in 0..100 {
            let s = build(seed, &menu(&["stick_hit"]));
            for (b, l) in s.world.bodies.iter().zip(&s.look.bodies) {
                let is_stick = b.role == Role::Tool && matches!(b.shape, Shape::Circle { .. });
                assert_eq!(is_stick, l.stick.is_some(), "seed {seed}: {}", b.name);
                let (Shape::Circle { r }, Some(st)) = (b.shape, l.stick) else {
                    continue;
                };
                sticks += 1;
                assert!(
                    (0.75 * r..=0.02).contains(&st.radius),
                    "seed {seed}: {st:?}"
                );
                assert!(
                    st.handle[1] > 0.4,
                    "seed {seed}: the stick leaves the frame upwards"
                );
                assert!((0.3..=0.8).contains(&st.grip), "seed {seed}: {st:?}");
                if st.handle[0] < 0.0 {
                    left += 1;
                } else {
                    right += 1;
                }
            }
        }
        assert!(sticks >= 100, "{sticks} sticks");
        assert!(
            left > sticks / 4 && right > sticks / 4,
            "{left} from the left, {right} from the right"
        );
    }

    #[test]
    fn the_same_seed_builds_the_same_scene_at_any_size() {
        let a = build(9, &menu(&[]));
        let b = build(
            9,
            &MenuOptions {
                width: 320,
                height: 240,
                fps: 30.0,
                ..menu(&[])
            },
        );
        assert_eq!(format!("{:?}", a.scenarios), format!("{:?}", b.scenarios));
        assert_eq!(a.world.bodies.len(), b.world.bodies.len());
        assert_eq!(a.sound.mic, b.sound.mic);
    }
}
