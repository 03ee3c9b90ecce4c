//! Materials: how things bounce, slide, look and sound.
//!
//! Each material has a restitution and a friction coefficient for the physics, a palette for the
//! renderer, and a set of damped modes for the modal synthesis of its impact sound (frequency
//! ratios to a base frequency, relative amplitudes, decay times). The numbers are plausible,
//! not measured: the point is variety with the right ordering (metal rings long and high, wood
//! knocks short, cloth is almost silent).

/// One damped mode: frequency as a ratio of the base, relative amplitude, decay time (s).
pub type Mode = (f64, f64, f64);

/// A material of the synthetic world.
#[derive(Debug, Clone, Copy)]
pub struct Material {
    /// Label name (`"wood"`, `"metal"`, ...).
    pub name: &'static str,
    /// Coefficient of restitution against a hard surface.
    pub restitution: f64,
    /// Coulomb friction coefficient.
    pub friction: f64,
    /// Base frequency (Hz) of a 10-cm object; smaller objects sound higher.
    pub base_hz: f64,
    /// The damped modes of its impact sound.
    pub modes: &'static [Mode],
    /// Loudness of an impact at 1 m/s, linear (before the scene's gain).
    pub loudness: f64,
    /// Share of contact noise (the click at the onset) relative to the modes.
    pub noise: f64,
    /// Typical colours (sRGB, 0..1).
    pub palette: &'static [[f32; 3]],
}

/// Every material, indexable by [`MaterialId`].
pub const MATERIALS: &[Material] = &[
    Material {
        name: "wood",
        restitution: 0.45,
        friction: 0.45,
        base_hz: 520.0,
        modes: &[
            (1.0, 1.0, 0.035),
            (2.62, 0.55, 0.02),
            (4.9, 0.3, 0.012),
            (7.3, 0.15, 0.008),
        ],
        loudness: 0.35,
        noise: 0.35,
        palette: &[
            [0.55, 0.36, 0.2],
            [0.72, 0.52, 0.3],
            [0.4, 0.25, 0.14],
            [0.82, 0.66, 0.45],
        ],
    },
    Material {
        name: "metal",
        restitution: 0.55,
        friction: 0.3,
        base_hz: 900.0,
        modes: &[
            (1.0, 1.0, 0.35),
            (2.76, 0.6, 0.25),
            (5.4, 0.4, 0.15),
            (8.93, 0.25, 0.1),
        ],
        loudness: 0.45,
        noise: 0.2,
        palette: &[
            [0.7, 0.72, 0.75],
            [0.5, 0.52, 0.55],
            [0.85, 0.75, 0.4],
            [0.3, 0.32, 0.35],
        ],
    },
    Material {
        name: "glass",
        restitution: 0.6,
        friction: 0.2,
        base_hz: 1500.0,
        modes: &[
            (1.0, 1.0, 0.2),
            (2.3, 0.7, 0.15),
            (4.1, 0.5, 0.1),
            (6.6, 0.3, 0.06),
        ],
        loudness: 0.35,
        noise: 0.15,
        palette: &[[0.75, 0.85, 0.9], [0.55, 0.75, 0.7], [0.85, 0.9, 0.95]],
    },
    Material {
        name: "plastic",
        restitution: 0.5,
        friction: 0.35,
        base_hz: 700.0,
        modes: &[(1.0, 1.0, 0.03), (2.1, 0.5, 0.02), (3.9, 0.3, 0.01)],
        loudness: 0.3,
        noise: 0.5,
        palette: &[
            [0.9, 0.2, 0.15],
            [0.15, 0.4, 0.9],
            [0.95, 0.85, 0.1],
            [0.2, 0.75, 0.3],
            [0.95, 0.95, 0.95],
        ],
    },
    Material {
        name: "rubber",
        restitution: 0.82,
        friction: 0.8,
        base_hz: 260.0,
        modes: &[(1.0, 1.0, 0.015), (1.9, 0.4, 0.01)],
        loudness: 0.25,
        noise: 0.6,
        palette: &[
            [0.85, 0.1, 0.1],
            [0.1, 0.6, 0.2],
            [0.95, 0.5, 0.1],
            [0.2, 0.2, 0.8],
        ],
    },
    Material {
        name: "ceramic",
        restitution: 0.4,
        friction: 0.4,
        base_hz: 1100.0,
        modes: &[(1.0, 1.0, 0.09), (2.4, 0.6, 0.06), (4.6, 0.4, 0.04)],
        loudness: 0.4,
        noise: 0.3,
        palette: &[[0.95, 0.95, 0.92], [0.3, 0.45, 0.7], [0.8, 0.4, 0.3]],
    },
    Material {
        name: "cardboard",
        restitution: 0.15,
        friction: 0.55,
        base_hz: 220.0,
        modes: &[(1.0, 1.0, 0.012), (2.3, 0.4, 0.008)],
        loudness: 0.22,
        noise: 0.8,
        palette: &[[0.7, 0.55, 0.35], [0.62, 0.48, 0.3]],
    },
    Material {
        name: "stone",
        restitution: 0.3,
        friction: 0.6,
        base_hz: 800.0,
        modes: &[(1.0, 1.0, 0.02), (2.9, 0.5, 0.012), (5.3, 0.3, 0.007)],
        loudness: 0.4,
        noise: 0.6,
        palette: &[[0.5, 0.5, 0.48], [0.62, 0.6, 0.56], [0.35, 0.34, 0.33]],
    },
    Material {
        name: "cloth",
        restitution: 0.05,
        friction: 0.9,
        base_hz: 150.0,
        modes: &[(1.0, 1.0, 0.006)],
        loudness: 0.004,
        noise: 0.5,
        palette: &[
            [0.6, 0.2, 0.5],
            [0.2, 0.3, 0.6],
            [0.85, 0.8, 0.7],
            [0.3, 0.55, 0.35],
        ],
    },
];

/// Index into [`MATERIALS`].
pub type MaterialId = usize;

/// Materials a thrown or dropped object may be made of (everything but cloth, which is kept for
/// the deliberately silent scenes).
pub const OBJECT_MATERIALS: &[MaterialId] = &[0, 1, 2, 3, 4, 5, 6, 7];
/// Materials of surfaces (floor, table, shelf, walls).
pub const SURFACE_MATERIALS: &[MaterialId] = &[0, 1, 5, 7, 3];
/// The soft material: impacts on or of it are silent.
pub const CLOTH: MaterialId = 8;
/// Rubber, for bouncing balls.
pub const RUBBER: MaterialId = 4;
/// Wood, for sticks.
pub const WOOD: MaterialId = 0;
/// Cardboard, for stacks.
pub const CARDBOARD: MaterialId = 6;

/// The material with this id.
pub fn get(id: MaterialId) -> &'static Material {
    &MATERIALS[id]
}
