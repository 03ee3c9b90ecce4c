//! 2-D rigid-body physics at a fixed 1-ms step: gravity, circles and axis-aligned boxes (boxes do
//! not rotate: "treated simply"), static surfaces (tops of floors, tables, shelves, container
//! bottoms, all one-sided from above) and two-sided vertical walls, restitution and friction per
//! material, and kinematic bodies that follow a scripted path (a held object until it is let go,
//! a stick or a hand for ever).
//!
//! Free flight is integrated exactly (`x += v dt - g dt^2 / 2`), so a dropped body lands at
//! `sqrt(2h/g)` up to the sub-step interpolation. Contacts are resolved with one restitution and
//! friction impulse each and a positional correction. Every contact whose normal approach speed
//! exceeds [`IMPACT_SPEED`] is recorded as an impact, its time interpolated inside the step from
//! the separation before and after it. Slower contacts (sliding, placing gently, resting) make
//! no impact.

use super::material::{self, MaterialId};

/// Simulation step (s).
pub const DT: f64 = 0.001;
/// Gravity (m/s^2).
pub const GRAVITY: f64 = 9.81;
/// Normal approach speed (m/s) above which a contact is an impact.
pub const IMPACT_SPEED: f64 = 0.3;
/// Below this approach speed a contact does not bounce (resting contact settles).
const SETTLE_SPEED: f64 = 0.3;
/// A pair that made an impact makes no new one for this long (s): one knock, not a buzz.
const DEBOUNCE_S: f64 = 0.025;

/// A body's outline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// A disc of radius `r` (m).
    Circle { r: f64 },
    /// An axis-aligned box of half width `hw` and half height `hh` (m).
    Rect { hw: f64, hh: f64 },
}

impl Shape {
    /// Half extents (x, y).
    pub fn half(&self) -> (f64, f64) {
        match *self {
            Shape::Circle { r } => (r, r),
            Shape::Rect { hw, hh } => (hw, hh),
        }
    }
    /// A size for pitch and mass: the diameter or the mean side (m).
    pub fn size(&self) -> f64 {
        match *self {
            Shape::Circle { r } => 2.0 * r,
            Shape::Rect { hw, hh } => hw + hh,
        }
    }
    fn area(&self) -> f64 {
        match *self {
            Shape::Circle { r } => std::f64::consts::PI * r * r,
            Shape::Rect { hw, hh } => 4.0 * hw * hh,
        }
    }
}

/// What a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A thing that can be held, thrown, dropped, pushed.
    Object,
    /// A stick or hand: kinematic for ever (infinite mass), strikes objects.
    Tool,
}

/// A piecewise-linear path in time: `(t, [x, y])` keys with increasing times.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Path {
    pub keys: Vec<(f64, [f64; 2])>,
}

impl Path {
    /// A path through these keys.
    pub fn new(keys: Vec<(f64, [f64; 2])>) -> Path {
        debug_assert!(keys.windows(2).all(|w| w[0].0 < w[1].0));
        Path { keys }
    }
    /// Time of the last key.
    pub fn end(&self) -> f64 {
        self.keys.last().map_or(f64::NEG_INFINITY, |k| k.0)
    }
    /// Position and velocity at `t` (held at the ends).
    pub fn at(&self, t: f64) -> ([f64; 2], [f64; 2]) {
        let k = &self.keys;
        if k.is_empty() {
            return ([0.0; 2], [0.0; 2]);
        }
        if t <= k[0].0 {
            return (k[0].1, [0.0; 2]);
        }
        for w in k.windows(2) {
            let ((t0, p0), (t1, p1)) = (w[0], w[1]);
            if t <= t1 {
                let s = (t - t0) / (t1 - t0);
                let v = [(p1[0] - p0[0]) / (t1 - t0), (p1[1] - p0[1]) / (t1 - t0)];
                return (
                    [p0[0] + s * (p1[0] - p0[0]), p0[1] + s * (p1[1] - p0[1])],
                    v,
                );
            }
        }
        (k[k.len() - 1].1, [0.0; 2])
    }
}

/// A moving thing.
#[derive(Debug, Clone)]
pub struct Body {
    /// Label name, e.g. `"ball#1"`.
    pub name: String,
    pub shape: Shape,
    pub material: MaterialId,
    pub restitution: f64,
    pub friction: f64,
    /// kg (tools: ignored, infinite).
    pub mass: f64,
    pub pos: [f64; 2],
    pub vel: [f64; 2],
    /// Rotation (rad) for drawing; circles roll.
    pub angle: f64,
    pub spin: f64,
    /// Followed while `t <= path.end()` (tools: always); then the body falls free.
    pub path: Option<Path>,
    /// Velocity given when the path ends (a throw); zero for a drop.
    pub release_vel: [f64; 2],
    pub role: Role,
    /// Index of the scenario that made it (labels).
    pub owner: usize,
    kinematic: bool,
}

impl Body {
    /// A body of `shape` and `material` at `pos`, mass from its area (2-D density).
    pub fn new(
        name: String,
        shape: Shape,
        material: MaterialId,
        pos: [f64; 2],
        owner: usize,
    ) -> Body {
        let m = material::get(material);
        Body {
            name,
            shape,
            material,
            restitution: m.restitution,
            friction: m.friction,
            mass: shape.area() * 400.0,
            pos,
            vel: [0.0; 2],
            angle: 0.0,
            spin: 0.0,
            path: None,
            release_vel: [0.0; 2],
            role: Role::Object,
            owner,
            kinematic: false,
        }
    }
    fn inv_mass(&self) -> f64 {
        if self.kinematic || self.role == Role::Tool {
            0.0
        } else {
            1.0 / self.mass
        }
    }
    /// Kinetic plus potential energy (J); 0 for kinematic bodies.
    pub fn energy(&self) -> f64 {
        if self.kinematic || self.role == Role::Tool {
            return 0.0;
        }
        0.5 * self.mass * (self.vel[0].powi(2) + self.vel[1].powi(2))
            + self.mass * GRAVITY * self.pos[1]
    }
    /// Whether the body is following its path now.
    pub fn is_kinematic(&self) -> bool {
        self.kinematic
    }
}

/// The geometry of a static surface.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Surface {
    /// A horizontal top at height `y` from `x0` to `x1`, hit from above (floor, table, shelf,
    /// container bottom).
    Top { y: f64, x0: f64, x1: f64 },
    /// A vertical wall at `x` from `y0` to `y1`, hit from either side.
    Side { x: f64, y0: f64, y1: f64 },
}

/// A fixed thing.
#[derive(Debug, Clone)]
pub struct Static {
    /// Label name, e.g. `"table"`.
    pub name: String,
    pub surface: Surface,
    pub material: MaterialId,
}

/// The other party of a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Other {
    Static(usize),
    Body(usize),
}

/// One impact: a contact faster than [`IMPACT_SPEED`].
#[derive(Debug, Clone, PartialEq)]
pub struct Impact {
    /// Contact time (s), interpolated inside the step.
    pub t: f64,
    /// Normal approach speed (m/s).
    pub speed: f64,
    /// The moving body (for a tool striking an object: the tool).
    pub a: usize,
    pub b: Other,
    /// Contact point (m).
    pub point: [f64; 2],
}

/// Positions of every body at every step, for rendering at any frame rate.
#[derive(Debug, Clone, Default)]
pub struct Trajectory {
    /// `[x, y, angle]` per body, per step: entry `k * bodies + i` is body i at `k * DT`.
    pub samples: Vec<[f32; 3]>,
    pub bodies: usize,
    pub steps: usize,
}

impl Trajectory {
    /// Body `i` at time `t` (linear between steps, held at the ends).
    pub fn at(&self, i: usize, t: f64) -> [f64; 3] {
        let x = (t / DT).clamp(0.0, (self.steps - 1) as f64);
        let k = (x.floor() as usize).min(self.steps - 1);
        let k1 = (k + 1).min(self.steps - 1);
        let s = (x - k as f64) as f32;
        let a = self.samples[k * self.bodies + i];
        let b = self.samples[k1 * self.bodies + i];
        [
            (a[0] + s * (b[0] - a[0])) as f64,
            (a[1] + s * (b[1] - a[1])) as f64,
            (a[2] + s * (b[2] - a[2])) as f64,
        ]
    }
}

/// The simulated world.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub bodies: Vec<Body>,
    pub statics: Vec<Static>,
    /// Current time (s).
    pub t: f64,
    /// Impacts so far, in time order of detection.
    pub impacts: Vec<Impact>,
    /// (pair, time) of each pair's last impact, for the debounce.
    recent: Vec<(usize, Other, f64)>,
}

fn dot(a: [f64; 2], b: [f64; 2]) -> f64 {
    a[0] * b[0] + a[1] * b[1]
}

/// Separation `d` (negative when overlapping), normal from b to a, contact point.
type Contact = (f64, [f64; 2], [f64; 2]);

fn contact_static(b: &Body, prev: [f64; 2], s: &Static) -> Option<Contact> {
    let (hw, hh) = b.shape.half();
    let [x, y] = b.pos;
    match s.surface {
        Surface::Top { y: top, x0, x1 } => {
            if x < x0 || x > x1 || prev[1] - hh < top - 0.5 * hh {
                return None;
            }
            Some((y - hh - top, [0.0, 1.0], [x, top]))
        }
        Surface::Side { x: wx, y0, y1 } => {
            if y < y0 || y > y1 {
                return None;
            }
            let side = if prev[0] >= wx { 1.0 } else { -1.0 };
            Some((side * (x - wx) - hw, [side, 0.0], [wx, y]))
        }
    }
}

fn contact_pair(a: &Body, b: &Body) -> Option<Contact> {
    let (pa, pb) = (a.pos, b.pos);
    let (ahw, ahh) = a.shape.half();
    let (bhw, bhh) = b.shape.half();
    let (dx, dy) = (pa[0] - pb[0], pa[1] - pb[1]);
    if dx.abs() > ahw + bhw + 0.01 || dy.abs() > ahh + bhh + 0.01 {
        return None;
    }
    match (a.shape, b.shape) {
        (Shape::Circle { r: ra }, Shape::Circle { r: rb }) => {
            let dist = (dx * dx + dy * dy).sqrt().max(1e-9);
            let n = [dx / dist, dy / dist];
            Some((dist - ra - rb, n, [pb[0] + n[0] * rb, pb[1] + n[1] * rb]))
        }
        (Shape::Rect { .. }, Shape::Rect { .. }) => {
            let ox = ahw + bhw - dx.abs();
            let oy = ahh + bhh - dy.abs();
            if ox < oy {
                let s = if dx >= 0.0 { 1.0 } else { -1.0 };
                Some((-ox, [s, 0.0], [pb[0] + s * bhw, pa[1]]))
            } else {
                let s = if dy >= 0.0 { 1.0 } else { -1.0 };
                Some((-oy, [0.0, s], [pa[0], pb[1] + s * bhh]))
            }
        }
        (Shape::Circle { r }, Shape::Rect { hw, hh }) => circle_rect(pa, r, pb, hw, hh),
        (Shape::Rect { hw, hh }, Shape::Circle { r }) => {
            circle_rect(pb, r, pa, hw, hh).map(|(d, n, p)| (d, [-n[0], -n[1]], p))
        }
    }
}

/// Circle at `c` against a box at `b`: normal from the box to the circle.
fn circle_rect(c: [f64; 2], r: f64, b: [f64; 2], hw: f64, hh: f64) -> Option<Contact> {
    let q = [
        c[0].clamp(b[0] - hw, b[0] + hw),
        c[1].clamp(b[1] - hh, b[1] + hh),
    ];
    let (dx, dy) = (c[0] - q[0], c[1] - q[1]);
    let dist = (dx * dx + dy * dy).sqrt();
    if dist > 1e-9 {
        return Some((dist - r, [dx / dist, dy / dist], q));
    }
    // The centre is inside the box: push out along the shallower axis.
    let ox = hw - (c[0] - b[0]).abs();
    let oy = hh - (c[1] - b[1]).abs();
    if ox < oy {
        let s = if c[0] >= b[0] { 1.0 } else { -1.0 };
        Some((-ox - r, [s, 0.0], [b[0] + s * hw, c[1]]))
    } else {
        let s = if c[1] >= b[1] { 1.0 } else { -1.0 };
        Some((-oy - r, [0.0, s], [c[0], b[1] + s * hh]))
    }
}

impl World {
    /// Total energy of the free (non-kinematic) bodies.
    pub fn energy(&self) -> f64 {
        self.bodies.iter().map(Body::energy).sum()
    }

    /// Runs until `t_end`, recording every body's position at every step (the first sample is
    /// the state at t = 0).
    pub fn run(&mut self, t_end: f64) -> Trajectory {
        let steps = (t_end / DT).ceil() as usize + 2;
        let n = self.bodies.len();
        let mut tr = Trajectory {
            samples: Vec::with_capacity(steps * n),
            bodies: n,
            steps,
        };
        self.place_kinematic(0.0);
        self.record(&mut tr);
        for _ in 1..steps {
            self.step();
            self.record(&mut tr);
        }
        tr
    }

    fn record(&self, tr: &mut Trajectory) {
        tr.samples.extend(
            self.bodies
                .iter()
                .map(|b| [b.pos[0] as f32, b.pos[1] as f32, b.angle as f32]),
        );
    }

    /// Puts bodies that follow a path at time `t`; returns nothing. Bodies whose path ended are
    /// released with their release velocity.
    fn place_kinematic(&mut self, t: f64) {
        for b in &mut self.bodies {
            let following = match &b.path {
                Some(p) => b.role == Role::Tool || t <= p.end(),
                None => false,
            };
            if following {
                let (pos, vel) = b.path.as_ref().map(|p| p.at(t)).unwrap_or_default();
                b.pos = pos;
                b.vel = vel;
                b.kinematic = true;
            } else if b.kinematic {
                b.kinematic = false;
                b.vel = b.release_vel;
            }
        }
    }

    /// One step of [`DT`].
    pub fn step(&mut self) {
        let t0 = self.t;
        let t1 = t0 + DT;
        let prev: Vec<[f64; 2]> = self.bodies.iter().map(|b| b.pos).collect();
        // Bodies released at t1 start their free flight from their path's end within this step.
        self.place_kinematic(t1);
        for b in &mut self.bodies {
            if b.kinematic || b.role == Role::Tool {
                continue;
            }
            b.pos[0] += b.vel[0] * DT;
            b.pos[1] += b.vel[1] * DT - 0.5 * GRAVITY * DT * DT;
            b.vel[1] -= GRAVITY * DT;
            b.angle += b.spin * DT;
        }
        for pass in 0..2 {
            let record = pass == 0;
            for i in 0..self.bodies.len() {
                if self.bodies[i].kinematic || self.bodies[i].role == Role::Tool {
                    continue;
                }
                for s in 0..self.statics.len() {
                    if let Some(c) = contact_static(&self.bodies[i], prev[i], &self.statics[s]) {
                        if c.0 < 0.0 {
                            self.resolve(i, Other::Static(s), c, &prev, t0, record);
                        }
                    }
                }
            }
            for i in 0..self.bodies.len() {
                for j in i + 1..self.bodies.len() {
                    let (a, b) = (&self.bodies[i], &self.bodies[j]);
                    if a.inv_mass() == 0.0 && b.inv_mass() == 0.0 {
                        continue;
                    }
                    if let Some(c) = contact_pair(a, b) {
                        if c.0 < 0.0 {
                            // The moving party first: a tool striking an object is "a".
                            self.resolve(i, Other::Body(j), c, &prev, t0, record);
                        }
                    }
                }
            }
        }
        self.t = t1;
    }

    fn resolve(
        &mut self,
        i: usize,
        other: Other,
        c: Contact,
        prev: &[[f64; 2]],
        t0: f64,
        record: bool,
    ) {
        let (d, n, point) = c;
        let a = &self.bodies[i];
        let (vb, pb, prevb, inv_b, e_b, mu_b) = match other {
            Other::Static(s) => {
                let m = material::get(self.statics[s].material);
                ([0.0; 2], [0.0; 2], [0.0; 2], 0.0, m.restitution, m.friction)
            }
            Other::Body(j) => {
                let b = &self.bodies[j];
                (
                    b.vel,
                    b.pos,
                    prev[j],
                    b.inv_mass(),
                    b.restitution,
                    b.friction,
                )
            }
        };
        let inv_a = a.inv_mass();
        let inv = inv_a + inv_b;
        if inv == 0.0 {
            return;
        }
        let vrel = [a.vel[0] - vb[0], a.vel[1] - vb[1]];
        let vn = dot(vrel, n);
        let rolling = matches!(a.shape, Shape::Circle { .. })
            && matches!(other, Other::Static(_))
            && n[1] > 0.5;
        if vn < 0.0 {
            if record && -vn > IMPACT_SPEED {
                let disp = [
                    (a.pos[0] - prev[i][0]) - (pb[0] - prevb[0]),
                    (a.pos[1] - prev[i][1]) - (pb[1] - prevb[1]),
                ];
                let d_prev = d - dot(disp, n);
                let frac = if d_prev > 0.0 {
                    (d_prev / (d_prev - d)).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let t = t0 + frac * DT;
                let recent = self
                    .recent
                    .iter()
                    .any(|&(ri, ro, rt)| ri == i && ro == other && t - rt < DEBOUNCE_S);
                if !recent {
                    // A tool striking is the moving party.
                    let (ia, ib) = match other {
                        Other::Body(j) if self.bodies[j].role == Role::Tool => (j, Other::Body(i)),
                        _ => (i, other),
                    };
                    self.impacts.push(Impact {
                        t,
                        speed: -vn,
                        a: ia,
                        b: ib,
                        point,
                    });
                    self.recent.retain(|&(_, _, rt)| t - rt < DEBOUNCE_S);
                    self.recent.push((i, other, t));
                }
            }
            let e = if -vn < SETTLE_SPEED {
                0.0
            } else {
                (a.restitution * e_b).sqrt()
            };
            let j = -(1.0 + e) * vn / inv;
            let tangent = [-n[1], n[0]];
            let vt = dot(vrel, tangent);
            let mu = (a.friction * mu_b).sqrt() * if rolling { 0.03 } else { 1.0 };
            let jt = (-vt / inv).clamp(-mu * j, mu * j);
            let imp = [j * n[0] + jt * tangent[0], j * n[1] + jt * tangent[1]];
            let a = &mut self.bodies[i];
            a.vel[0] += imp[0] * inv_a;
            a.vel[1] += imp[1] * inv_a;
            if let Other::Body(jb) = other {
                let b = &mut self.bodies[jb];
                b.vel[0] -= imp[0] * inv_b;
                b.vel[1] -= imp[1] * inv_b;
            }
        }
        // Positional correction, shared by inverse mass.
        let corr = -d;
        let a = &mut self.bodies[i];
        a.pos[0] += n[0] * corr * inv_a / inv;
        a.pos[1] += n[1] * corr * inv_a / inv;
        if rolling {
            if let Shape::Circle { r } = a.shape {
                a.spin = -a.vel[0] / r;
            }
        }
        if let Other::Body(jb) = other {
            let b = &mut self.bodies[jb];
            b.pos[0] -= n[0] * corr * inv_b / inv;
            b.pos[1] -= n[1] * corr * inv_b / inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::material::{RUBBER, WOOD};

    fn floor_world() -> World {
        World {
            statics: vec![Static {
                name: "floor".into(),
                surface: Surface::Top {
                    y: 0.0,
                    x0: -10.0,
                    x1: 10.0,
                },
                material: WOOD,
            }],
            ..World::default()
        }
    }

    #[test]
    fn a_dropped_ball_lands_at_the_free_fall_time() {
        for h in [0.1, 0.37, 0.8, 1.3] {
            let mut w = floor_world();
            let r = 0.03;
            w.bodies.push(Body::new(
                "ball#1".into(),
                Shape::Circle { r },
                WOOD,
                [0.0, h + r],
                0,
            ));
            w.run(1.0);
            let first = &w.impacts[0];
            let expect = (2.0 * h / GRAVITY).sqrt();
            assert!(
                (first.t - expect).abs() < DT,
                "h {h}: {} vs {expect}",
                first.t
            );
            assert!(
                (first.speed - (2.0 * GRAVITY * h).sqrt()).abs() < 0.02,
                "{}",
                first.speed
            );
        }
    }

    #[test]
    fn a_released_ball_lands_after_its_release() {
        let mut w = floor_world();
        let mut b = Body::new(
            "ball#1".into(),
            Shape::Circle { r: 0.02 },
            WOOD,
            [0.0, 0.52],
            0,
        );
        b.path = Some(Path::new(vec![(0.0, [0.0, 0.52]), (0.5, [0.0, 0.52])]));
        w.bodies.push(b);
        w.run(1.5);
        let expect = 0.5 + (2.0 * 0.5 / GRAVITY).sqrt();
        assert!(
            (w.impacts[0].t - expect).abs() < 1.5 * DT,
            "{} vs {expect}",
            w.impacts[0].t
        );
    }

    #[test]
    fn bounces_decay_and_energy_never_grows() {
        let mut w = floor_world();
        w.bodies.push(Body::new(
            "ball#1".into(),
            Shape::Circle { r: 0.03 },
            RUBBER,
            [0.0, 0.6],
            0,
        ));
        w.bodies.push(Body::new(
            "box#2".into(),
            Shape::Rect { hw: 0.04, hh: 0.03 },
            WOOD,
            [0.3, 0.4],
            0,
        ));
        let mut e = w.energy();
        let e0 = e;
        for _ in 0..4000 {
            w.step();
            let now = w.energy();
            assert!(
                now <= e + 1e-6 * e0,
                "energy grew from {e} to {now} at t {}",
                w.t
            );
            e = now;
        }
        let ball: Vec<&Impact> = w.impacts.iter().filter(|i| i.a == 0).collect();
        assert!(ball.len() >= 3, "a rubber ball bounces: {ball:?}");
        assert!(ball.windows(2).all(|p| p[1].speed < p[0].speed), "{ball:?}");
        assert!(ball.windows(2).all(|p| p[1].t > p[0].t));
    }

    #[test]
    fn placing_gently_makes_no_impact() {
        let mut w = floor_world();
        let mut b = Body::new(
            "cup#1".into(),
            Shape::Rect { hw: 0.03, hh: 0.04 },
            WOOD,
            [0.0, 0.3],
            0,
        );
        // Lowered at 0.1 m/s until 2 mm above the floor, then let go.
        b.path = Some(Path::new(vec![(0.0, [0.0, 0.3]), (2.58, [0.0, 0.042])]));
        b.release_vel = [0.1, -0.1];
        w.bodies.push(b);
        w.run(4.0);
        assert!(w.impacts.is_empty(), "{:?}", w.impacts);
    }

    #[test]
    fn head_on_collision_of_equal_inelastic_bodies_stops_both() {
        let mut w = World::default();
        let mut a = Body::new("a".into(), Shape::Circle { r: 0.03 }, WOOD, [-0.2, 1.0], 0);
        let mut b = Body::new("b".into(), Shape::Circle { r: 0.03 }, WOOD, [0.2, 1.0], 0);
        a.vel = [1.0, 0.0];
        b.vel = [-1.0, 0.0];
        a.restitution = 0.0;
        b.restitution = 0.0;
        w.bodies = vec![a, b];
        w.run(0.3);
        assert_eq!(w.impacts.len(), 1, "{:?}", w.impacts);
        let hit = &w.impacts[0];
        // 0.4 m apart, radii 0.03: 0.34 m to close at 2 m/s.
        assert!((hit.t - 0.34 / 2.0).abs() < DT, "{}", hit.t);
        assert!((hit.speed - 2.0).abs() < 0.05);
        assert!(w.bodies[0].vel[0].abs() < 1e-9 && w.bodies[1].vel[0].abs() < 1e-9);
    }
}
