//! `impactd demo`: generated scenes played through the pipeline in real time, events on stdout
//! as they happen (each with the scene's number), one human line per scene on stderr saying
//! what really happened.
//!
//! A scene is played by [`play_scene`], which hands it to replay's machinery (`Input::Memory`,
//! `realtime` pacing); it is the one place to change to feed the live pipeline instead.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::audio::RATE;
use super::{GeneratedScene, SynthError, SynthOptions, generate, writer};
use crate::events::{Event, Sink};
use crate::replay::{self, Input, ReplayError, ReplayOptions, ReplayReport};

/// Demo failures.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Synth(#[from] SynthError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("writing the events: {0}")]
    Io(#[from] io::Error),
}

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub scenes: usize,
    pub seed: u64,
    /// Also write each scene (Y4M + WAV + JSON) here.
    pub save: Option<PathBuf>,
    pub scene: SynthOptions,
    /// Model, detector and pacing; `input` is replaced by each scene.
    pub replay: ReplayOptions,
}

/// Events as JSON lines with the scene's number added, flushed per line.
struct SceneEvents<'a> {
    out: &'a mut dyn Write,
    scene: usize,
    events: usize,
}

impl Sink for SceneEvents<'_> {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        // The event's own JSON with `"scene":N` appended: going through serde_json::Value would
        // widen its f32 fields (0.53 -> 0.5299999713897705) and sort its keys.
        let mut line = serde_json::to_vec(event)?;
        debug_assert_eq!(line.last(), Some(&b'}'));
        line.pop();
        line.extend_from_slice(format!(",\"scene\":{}}}\n", self.scene).as_bytes());
        self.out.write_all(&line)?;
        self.events += 1;
        self.out.flush()
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One line of ground truth for a person.
pub fn describe(i: usize, n: usize, scene: &GeneratedScene) -> String {
    let l = &scene.labels;
    let mut parts: Vec<String> = l
        .impacts
        .iter()
        .map(|x| {
            let how = match (x.visible, x.audible) {
                (true, true) => "seen and heard",
                (true, false) => "seen, silent",
                (false, true) => "hidden, heard",
                (false, false) => "hidden, silent",
            };
            format!(
                "{} {:.2} s ({}, {} on {}, {})",
                x.class, x.t, x.scenario, x.objects[0], x.objects[1], how
            )
        })
        .collect();
    parts.extend(
        l.unseen_sounds
            .iter()
            .map(|u| format!("{} {:.2} s (no visible cause)", u.kind, u.t)),
    );
    if parts.is_empty() {
        parts.push("nothing happens".into());
    }
    format!(
        "scene {}/{} (seed {}, mic {}): {}",
        i + 1,
        n,
        l.seed,
        l.mic,
        parts.join("; ")
    )
}

/// Plays one generated scene through the pipeline into `sink`.
pub fn play_scene(
    scene: &GeneratedScene,
    name: &str,
    template: &ReplayOptions,
    opts: &SynthOptions,
    sink: &mut dyn Sink,
) -> Result<ReplayReport, DemoError> {
    let mut y4m = Vec::new();
    writer::write_y4m(&mut y4m, scene, opts).map_err(|e| SynthError::Write {
        path: name.into(),
        source: io::Error::other(format!("{e:?}")),
    })?;
    let audio: Arc<[f32]> = scene.audio.iter().map(|&s| s as f32 / 32768.0).collect();
    let replay = ReplayOptions {
        input: Input::Memory {
            name: name.into(),
            y4m: y4m.into(),
            audio,
            rate: RATE,
        },
        ..template.clone()
    };
    Ok(replay::replay(&replay, sink)?)
}

/// Runs the demo: events to `events`, one line of truth per scene to `notes`.
pub fn run(
    opts: &DemoOptions,
    events: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<usize, DemoError> {
    opts.scene.check()?;
    if opts.scenes == 0 {
        return Err(SynthError::BadArg {
            arg: "scenes",
            reason: "must be at least 1".into(),
        }
        .into());
    }
    if let Some(dir) = &opts.save {
        std::fs::create_dir_all(dir).map_err(|e| SynthError::OutDir {
            path: dir.clone(),
            source: e,
        })?;
    }
    let mut total = 0;
    for i in 0..opts.scenes {
        let seed = opts.seed.wrapping_add(i as u64);
        let scene = generate(seed, &opts.scene)?;
        if let Some(dir) = &opts.save {
            writer::write_scene(dir, i, &scene, &opts.scene)?;
        }
        let _ = writeln!(notes, "{}", describe(i, opts.scenes, &scene));
        let mut sink = SceneEvents {
            out: events,
            scene: i + 1,
            events: 0,
        };
        play_scene(
            &scene,
            &writer::stem(i),
            &opts.replay,
            &opts.scene,
            &mut sink,
        )?;
        total += sink.events;
        let _ = writeln!(
            notes,
            "scene {}/{}: {} events",
            i + 1,
            opts.scenes,
            sink.events
        );
    }
    Ok(total)
}
