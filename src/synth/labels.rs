//! The label file of a scene (`scene-NNNNNN.json`): the fixed contract the training pipeline
//! reads (version 1). Field meanings are in the README ("Synthetic scenes").

use serde::{Deserialize, Serialize};

/// Contract version.
pub const VERSION: u32 = 1;

/// One scene's labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    pub version: u32,
    pub seed: u64,
    /// Video frame rate of the Y4M.
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    /// Frames on the 12-fps grid: ceil(duration * 12), the length of every envelope.
    pub frames: usize,
    /// Frames in the Y4M at `fps` (equal to `frames` at 12 fps).
    pub video_frames: usize,
    pub duration_s: f64,
    pub sample_rate: u32,
    /// `ok`, `dead` (all zeros) or `muted` (a faint noise floor, impacts inaudible).
    pub mic: String,
    pub impacts: Vec<ImpactLabel>,
    pub unseen_sounds: Vec<UnseenLabel>,
    pub envelope: Envelopes,
    /// The scenarios placed in the scene, in placement order.
    pub scenarios: Vec<ScenarioLabel>,
    /// Audio samples that had to be clipped when quantising to 16 bits (0 by construction).
    pub clipped_samples: usize,
    /// The linear gain applied to every sound of the scene.
    pub gain: f64,
}

/// One impact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpactLabel {
    /// Exact contact time from the physics (s).
    pub t: f64,
    /// `drop`, `hit` or `collision`.
    pub class: String,
    pub scenario: String,
    /// One of the seed's twelve sound classes.
    pub sound: String,
    /// The two parties, the moving one (or the tool) first.
    pub objects: [String; 2],
    /// Material of the struck object (for a tool: what it struck; else the moving object).
    pub material: String,
    /// Materials of both parties, in `objects` order.
    pub materials: [String; 2],
    /// Normal approach speed (m/s).
    pub speed: f64,
    /// Contact point in the picture (pixels, x right, y down), may be outside the frame.
    pub pixel: [f64; 2],
    pub visible: bool,
    pub audible: bool,
    /// Peak level of this impact's own sound in the WAV's scale (dBFS), whatever the mic state.
    pub peak_dbfs: f64,
}

/// A sound with no visible cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnseenLabel {
    pub t: f64,
    pub kind: String,
    pub duration: f64,
}

/// A placed scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioLabel {
    pub kind: String,
    /// Time of its action (release, strike, push), s.
    pub t: f64,
}

/// Raw (unscaled) envelopes on the 12-fps grid in both modes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopePair {
    pub seed: Vec<f32>,
    #[serde(rename = "frame-mean")]
    pub frame_mean: Vec<f32>,
}

/// The envelopes of a scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelopes {
    /// Of the WAV as written (what a microphone hears).
    pub full: EnvelopePair,
    /// Of the visible impact sounds alone (the clean training target).
    pub impacts: EnvelopePair,
}

impl Labels {
    /// Times of the impacts that are both visible and audible, merged when closer than one
    /// 12-fps frame (the first of a cluster kept): the `hits` of an eval manifest.
    pub fn hits(&self) -> Vec<f64> {
        let mut hits: Vec<f64> = Vec::new();
        for i in self.impacts.iter().filter(|i| i.visible && i.audible) {
            if hits.last().is_none_or(|&h| i.t - h >= 1.0 / 12.0) {
                hits.push(i.t);
            }
        }
        hits
    }
}
