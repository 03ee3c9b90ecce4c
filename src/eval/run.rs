//! `impactd eval`: replays every clip of a manifest, then the mismatched pairs (each clip's
//! audio under the next clip's video), and summarises with [`super::metrics`].
//!
//! Manifest format (TOML; paths relative to the manifest):
//! ```toml
//! [[clip]]
//! name = "drumstick-metal"                 # optional; default: the file stem
//! media = "clips/drumstick-metal.mp4"      # video (and audio unless `audio` is given)
//! audio = "clips/drumstick-metal.wav"      # optional
//! hits = [0.52, 1.21, 1.93]                # annotated hit times, seconds
//! hits_source = "annotated"                # or "audio-proxy": times taken from the audio itself
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

use super::metrics::{self, ClipInput, Summary};
use crate::config::RawConfig;
use crate::detector::Kind;
use crate::envelope::EnvelopeMode;
use crate::events::Collect;
use crate::media::GRID_FPS;
use crate::replay::{self, Input, ReplayError, ReplayOptions};

/// Eval failures.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("clip {clip:?}: {source}")]
    Replay {
        clip: String,
        #[source]
        source: ReplayError,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The manifest file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "clip", default)]
    pub clips: Vec<ManifestClip>,
}

/// One `[[clip]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestClip {
    #[serde(default)]
    pub name: String,
    pub media: PathBuf,
    #[serde(default)]
    pub audio: Option<PathBuf>,
    pub hits: Vec<f64>,
    #[serde(default = "default_source")]
    pub hits_source: String,
}

fn default_source() -> String {
    "annotated".into()
}

impl Manifest {
    /// Reads a manifest and resolves its paths against its folder.
    pub fn load(path: &Path) -> Result<Manifest, EvalError> {
        let bad = |reason: String| EvalError::Manifest {
            path: path.into(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut m: Manifest = toml::from_str(&text)
            .map_err(|e| bad(e.to_string().trim_end().replace('\n', " | ")))?;
        if m.clips.is_empty() {
            return Err(bad("no [[clip]] entries".into()));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        for (i, c) in m.clips.iter_mut().enumerate() {
            if c.media.is_relative() {
                c.media = dir.join(&c.media);
            }
            if let Some(a) = &mut c.audio {
                if a.is_relative() {
                    *a = dir.join(&*a);
                }
            }
            if c.name.is_empty() {
                c.name = c
                    .media
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("clip{i}"));
            }
            if c.hits.iter().any(|h| !h.is_finite() || *h < 0.0) {
                return Err(bad(format!(
                    "clip {:?}: hits must be finite, non-negative seconds",
                    c.name
                )));
            }
            if !["annotated", "audio-proxy"].contains(&c.hits_source.as_str()) {
                return Err(bad(format!(
                    "clip {:?}: hits_source {:?} must be \"annotated\" or \"audio-proxy\"",
                    c.name, c.hits_source
                )));
            }
        }
        Ok(m)
    }
}

struct Run {
    predicted: Vec<f32>,
    observed_raw: Vec<f32>,
    impacts: Vec<f64>,
}

fn run_one(opts: &ReplayOptions, input: Input, name: &str) -> Result<Run, EvalError> {
    let mut sink = Collect::default();
    let o = ReplayOptions {
        input,
        ..opts.clone()
    };
    replay::replay(&o, &mut sink).map_err(|source| EvalError::Replay {
        clip: name.into(),
        source,
    })?;
    Ok(Run {
        predicted: sink.frames.iter().map(|f| f.predicted).collect(),
        observed_raw: sink.frames.iter().map(|f| f.observed_raw).collect(),
        impacts: sink
            .events
            .iter()
            .filter(|e| e.kind == Kind::Impact)
            .map(|e| e.t)
            .collect(),
    })
}

/// Evaluates a manifest: genuine runs, then mismatched pairs when there are two clips or more.
pub fn evaluate(
    manifest: &Manifest,
    model: &Path,
    cfg: &RawConfig,
    mode: Option<EnvelopeMode>,
) -> Result<Summary, EvalError> {
    let opts = ReplayOptions {
        input: Input::BuiltIn { loops: 1 },
        model: model.into(),
        backend: cfg.model.backend,
        hop: cfg.model.hop,
        envelope_mode: mode.or(cfg.envelope.mode),
        detector: cfg.detector.clone(),
        realtime: false,
    };
    let n = manifest.clips.len();
    let mut inputs = Vec::with_capacity(n);
    for (i, c) in manifest.clips.iter().enumerate() {
        log::info!("eval {}/{}: {}", i + 1, n, c.name);
        let run = run_one(
            &opts,
            Input::Files {
                media: c.media.clone(),
                audio: c.audio.clone(),
            },
            &c.name,
        )?;
        // This clip's audio under the next clip's video.
        let mismatched = if n >= 2 {
            let other = &manifest.clips[(i + 1) % n];
            let audio = c.audio.clone().unwrap_or_else(|| c.media.clone());
            let name = format!("{} audio under {} video", c.name, other.name);
            Some(
                run_one(
                    &opts,
                    Input::Files {
                        media: other.media.clone(),
                        audio: Some(audio),
                    },
                    &name,
                )?
                .impacts,
            )
        } else {
            None
        };
        inputs.push(ClipInput {
            name: c.name.clone(),
            fps: GRID_FPS as f64,
            predicted: run.predicted,
            observed_raw: run.observed_raw,
            hits: c.hits.clone(),
            impact_times: run.impacts,
            mismatched_impact_times: mismatched,
        });
    }
    Ok(metrics::summarize(&inputs))
}

/// The CLI's eval: prints the table (and JSON where asked).
pub fn run_cli(
    manifest: &Path,
    model: &Path,
    cfg: &RawConfig,
    mode: Option<EnvelopeMode>,
    json: Option<&str>,
) -> Result<(), EvalError> {
    let m = Manifest::load(manifest)?;
    let proxies: Vec<&str> = m
        .clips
        .iter()
        .filter(|c| c.hits_source == "audio-proxy")
        .map(|c| c.name.as_str())
        .collect();
    let summary = evaluate(&m, model, cfg, mode)?;
    let text = serde_json::to_string_pretty(&summary).expect("summary serialises");
    match json {
        Some("-") => println!("{text}"),
        Some(path) => {
            std::fs::write(path, text + "\n").map_err(|source| EvalError::Write {
                path: path.into(),
                source,
            })?;
            print!("{}", metrics::format_table(&summary));
        }
        None => print!("{}", metrics::format_table(&summary)),
    }
    if !proxies.is_empty() && json != Some("-") {
        println!(
            "note: hit times of {} come from the audio itself (audio-proxy), not from annotation",
            proxies.join(", ")
        );
    }
    Ok(())
}
