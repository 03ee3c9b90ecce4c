//! Models: the sidecar contract, inference backends and the window predictor.
//!
//! A model is an ONNX file plus a sidecar `NAME.toml` beside it (DESIGN.md, "The model
//! contract"). [`Sidecar`] is that file; [`ModelSpec`] is the checked form the engine uses.
//!
//! Two axes are kept apart so each can grow without a rewrite:
//! - the **backend** ([`Backend`], [`Session`]) runs one ONNX graph on one f32 input: tract, the
//!   default ([`tract::TractBackend`]), or ONNX Runtime with the cargo feature `ort` (`ort.rs`);
//! - the **form** ([`predictor::Predictor`]) decides what graphs a model has and how frames reach
//!   them: `clip` (one graph on the whole window, `predictor.rs`) and `streaming` (per-frame
//!   encoder + temporal head, `streaming.rs`), two implementations of the same trait.

#[cfg(feature = "ort")]
pub mod ort;
pub mod predictor;
pub mod streaming;
pub mod tract;

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::envelope::EnvelopeMode;

/// Errors of loading or running a model. `Load`/`Shape`/`Sidecar` are fatal for that model;
/// `BadOutput` is about one window (the caller skips it, counts it and goes on).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: model file not found")]
    NotFound { path: PathBuf },
    #[error("{path}: no sidecar: a model needs its NAME.toml beside it (expected {sidecar})")]
    NoSidecar { path: PathBuf, sidecar: PathBuf },
    #[error("{path}: {reason}")]
    Sidecar { path: PathBuf, reason: String },
    #[error("{path}: cannot load the ONNX model: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Shape { path: PathBuf, reason: String },
    #[error("model run failed: {0}")]
    Run(String),
    #[error("model output {output:?} is invalid: {reason}")]
    BadOutput { output: String, reason: String },
}

/// Input colour of a model (sidecar `input.colour`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Colour {
    /// Three channels R, G, B.
    Rgb,
    /// One channel: luma.
    Gray,
    /// One channel: luma of this frame minus luma of the previous one (0 for the first).
    GrayDiff,
}

impl Colour {
    pub fn channels(self) -> usize {
        match self {
            Colour::Rgb => 3,
            Colour::Gray | Colour::GrayDiff => 1,
        }
    }
}

/// Axis order of the window tensor (sidecar `input.layout`); batch N = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Layout {
    NCTHW,
    NTCHW,
    NTHWC,
}

/// Model form (sidecar `model.form`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// One graph: window in, envelope out.
    Clip,
    /// A per-frame encoder and a temporal head (DESIGN.md): the sidecar's `[encoder]` names the
    /// encoder graph; `NAME.onnx` is the head.
    Streaming,
}

/// The sidecar file as written (`NAME.toml` beside `NAME.onnx`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    pub model: SidecarModel,
    pub input: SidecarInput,
    pub output: SidecarOutput,
    /// The per-frame encoder of a `streaming` model (absent for `clip`).
    #[serde(default)]
    pub encoder: Option<SidecarEncoder>,
}

/// `[encoder]`: the per-frame graph of a `streaming` model. It takes one preprocessed frame
/// (`[input] name`, shape `[1, C, H, W]`, or `[1, H, W, C]` for layout `NTHWC`) and returns one
/// feature vector `[1, features]`; the head (`NAME.onnx`) takes the last `frames` of them as
/// `[1, frames, features]` and returns the `[output]`s.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarEncoder {
    /// The encoder's ONNX file, relative to the sidecar's folder.
    pub file: PathBuf,
    /// Name of the encoder's `[1, features]` output.
    pub output: String,
    /// Length of the feature vector.
    pub features: usize,
    /// Name of the head's `[1, frames, features]` input.
    pub head_input: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarModel {
    pub name: String,
    #[serde(default)]
    pub version: String,
    pub form: Form,
    /// Frames per window (48 for every model so far).
    pub frames: usize,
    /// Frame rate of the window (must be 12: the engine's grid).
    pub fps: u32,
    /// The audio envelope mode of the training target.
    pub envelope_mode: EnvelopeMode,
    /// How many later frames a frame's predicted value depends on: 1 (the default) for a
    /// model that looks one frame ahead, whose frame k is taken from a window that reaches
    /// k + 1; 0 for a causal model, whose frame k is final in the window that ends on it (one
    /// frame less of event latency).
    #[serde(default = "one")]
    pub lookahead_frames: usize,
    #[serde(default)]
    pub description: String,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarInput {
    pub name: String,
    pub layout: Layout,
    pub width: u32,
    pub height: u32,
    pub colour: Colour,
    /// Pixel values are divided by this first (255 maps to 1).
    pub scale: f32,
    /// Then `(x - mean[c]) / std[c]` per channel.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarOutput {
    /// Name of the `[1, frames]` envelope output, values in [0, 1].
    pub envelope: String,
    /// Name of the optional class-logits output, `[1, classes]` (one per window) or, with
    /// `class_per_frame`, `[1, frames, classes]`; empty for none.
    #[serde(default)]
    pub class_logits: String,
    #[serde(default)]
    pub classes: Vec<String>,
    /// The class logits are per frame (`[1, frames, classes]`): an impact takes its frame's.
    #[serde(default)]
    pub class_per_frame: bool,
}

/// A checked model description: the sidecar plus where the files are.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub onnx_path: PathBuf,
    pub sidecar_path: PathBuf,
    pub sidecar: Sidecar,
}

impl ModelSpec {
    /// Reads and checks the sidecar beside `onnx_path` (`x.onnx` -> `x.toml`).
    pub fn load(onnx_path: &Path) -> Result<ModelSpec, ModelError> {
        if !onnx_path.is_file() {
            return Err(ModelError::NotFound {
                path: onnx_path.into(),
            });
        }
        let sidecar_path = onnx_path.with_extension("toml");
        let text = match std::fs::read_to_string(&sidecar_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModelError::NoSidecar {
                    path: onnx_path.into(),
                    sidecar: sidecar_path,
                });
            }
            Err(e) => {
                return Err(ModelError::Sidecar {
                    path: sidecar_path,
                    reason: e.to_string(),
                });
            }
        };
        let sidecar: Sidecar = toml::from_str(&text).map_err(|e| ModelError::Sidecar {
            path: sidecar_path.clone(),
            reason: e.to_string().trim_end().to_string(),
        })?;
        let spec = ModelSpec {
            onnx_path: onnx_path.into(),
            sidecar_path,
            sidecar,
        };
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> Result<(), ModelError> {
        let s = &self.sidecar;
        let bad = |reason: String| {
            Err(ModelError::Sidecar {
                path: self.sidecar_path.clone(),
                reason,
            })
        };
        if s.model.frames == 0 {
            return bad("model.frames must be at least 1".into());
        }
        if s.model.lookahead_frames > 1 {
            return bad(format!(
                "model.lookahead_frames = {}: the engine supports 0 (causal) or 1",
                s.model.lookahead_frames
            ));
        }
        if s.model.fps != crate::media::GRID_FPS {
            return bad(format!(
                "model.fps is {} but the engine's grid is {} fps",
                s.model.fps,
                crate::media::GRID_FPS
            ));
        }
        if s.input.width == 0
            || s.input.height == 0
            || s.input.width > 4096
            || s.input.height > 4096
        {
            return bad(format!(
                "input size {}x{} is out of range (1..=4096)",
                s.input.width, s.input.height
            ));
        }
        let c = s.input.colour.channels();
        if s.input.mean.len() != c || s.input.std.len() != c {
            return bad(format!(
                "input.mean and input.std need {c} value(s) for colour {:?}, got {} and {}",
                s.input.colour,
                s.input.mean.len(),
                s.input.std.len()
            ));
        }
        if !(s.input.scale.is_finite() && s.input.scale > 0.0)
            || s.input.std.iter().any(|v| !(v.is_finite() && *v > 0.0))
        {
            return bad("input.scale and input.std must be finite and positive".into());
        }
        if s.output.class_logits.is_empty() != s.output.classes.is_empty() {
            return bad(
                "output.class_logits and output.classes go together: name both or neither".into(),
            );
        }
        if s.output.class_per_frame && s.output.classes.is_empty() {
            return bad(
                "output.class_per_frame needs output.class_logits and output.classes".into(),
            );
        }
        match (s.model.form, &s.encoder) {
            (Form::Streaming, None) => {
                return bad(
                    "form \"streaming\" needs an [encoder] section (file, output, features, head_input)"
                        .into(),
                );
            }
            (Form::Clip, Some(_)) => {
                return bad(
                    "[encoder] is only for form \"streaming\"; this model is \"clip\"".into(),
                );
            }
            (Form::Streaming, Some(e)) => {
                if e.features == 0 {
                    return bad("encoder.features must be at least 1".into());
                }
                if !self.encoder_path().is_some_and(|p| p.is_file()) {
                    return bad(format!(
                        "encoder.file {} not found (expected {})",
                        e.file.display(),
                        self.encoder_path().unwrap_or_default().display()
                    ));
                }
            }
            (Form::Clip, None) => {}
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.sidecar.model.name
    }

    pub fn frames(&self) -> usize {
        self.sidecar.model.frames
    }

    /// Later frames a frame's prediction depends on (sidecar `model.lookahead_frames`, 0 or 1).
    pub fn lookahead(&self) -> usize {
        self.sidecar.model.lookahead_frames
    }

    /// The window tensor's shape in the sidecar's layout.
    pub fn input_shape(&self) -> Vec<usize> {
        let i = &self.sidecar.input;
        let (t, c, h, w) = (
            self.frames(),
            i.colour.channels(),
            i.height as usize,
            i.width as usize,
        );
        match i.layout {
            Layout::NCTHW => vec![1, c, t, h, w],
            Layout::NTCHW => vec![1, t, c, h, w],
            Layout::NTHWC => vec![1, t, h, w, c],
        }
    }

    /// The encoder's ONNX path (streaming form): `encoder.file` beside the sidecar.
    pub fn encoder_path(&self) -> Option<PathBuf> {
        let e = self.sidecar.encoder.as_ref()?;
        let dir = self.sidecar_path.parent().unwrap_or(Path::new(""));
        Some(dir.join(&e.file))
    }

    /// One frame's tensor shape (streaming encoder input): `[1, C, H, W]`, or `[1, H, W, C]`
    /// for layout `NTHWC`.
    pub fn frame_shape(&self) -> Vec<usize> {
        let i = &self.sidecar.input;
        let (c, h, w) = (i.colour.channels(), i.height as usize, i.width as usize);
        match i.layout {
            Layout::NCTHW | Layout::NTCHW => vec![1, c, h, w],
            Layout::NTHWC => vec![1, h, w, c],
        }
    }

    /// The class-logits output's shape, if the model has one.
    pub fn class_shape(&self) -> Option<Vec<usize>> {
        let o = &self.sidecar.output;
        if o.class_logits.is_empty() {
            None
        } else if o.class_per_frame {
            Some(vec![1, self.frames(), o.classes.len()])
        } else {
            Some(vec![1, o.classes.len()])
        }
    }

    /// The envelope output's shape.
    pub fn envelope_shape(&self) -> Vec<usize> {
        vec![1, self.frames()]
    }

    /// Names of the outputs the engine reads, envelope first.
    pub fn output_names(&self) -> Vec<String> {
        let mut v = vec![self.sidecar.output.envelope.clone()];
        if !self.sidecar.output.class_logits.is_empty() {
            v.push(self.sidecar.output.class_logits.clone());
        }
        v
    }

    /// A one-line description for logs and `model-info`.
    pub fn summary(&self) -> String {
        let i = &self.sidecar.input;
        format!(
            "{} v{} ({:?}, {} frames at {} fps, input {:?} {:?} {}x{}, envelope {}{})",
            self.name(),
            if self.sidecar.model.version.is_empty() {
                "?"
            } else {
                &self.sidecar.model.version
            },
            self.sidecar.model.form,
            self.frames(),
            self.sidecar.model.fps,
            i.layout,
            i.colour,
            i.width,
            i.height,
            self.sidecar.model.envelope_mode,
            if self.sidecar.output.classes.is_empty() {
                String::new()
            } else {
                format!(", classes {}", self.sidecar.output.classes.join("/"))
            }
        )
    }
}

/// One output of a graph run, flattened, with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// What to open: one graph with one f32 input of a fixed shape and named outputs, each of a
/// fixed shape. A backend checks the graph against it at load and refuses a mismatch.
#[derive(Debug, Clone)]
pub struct GraphSpec {
    pub path: PathBuf,
    pub input_name: String,
    pub input_shape: Vec<usize>,
    /// Output names and their expected shapes, in the order `run` returns them.
    pub outputs: Vec<(String, Vec<usize>)>,
    /// Where the expectations come from, for error messages (e.g. the sidecar's path).
    pub expected_by: String,
}

/// An inference runtime (tract, ONNX Runtime, ...).
pub trait Backend {
    /// Short name for logs and status ("tract").
    fn name(&self) -> &'static str;
    /// Loads and prepares one graph, checking its shapes against `spec`.
    fn open(&self, spec: &GraphSpec) -> Result<Box<dyn Session>, ModelError>;
}

/// A loaded graph, ready to run again and again.
pub trait Session: Send {
    /// Runs on one input of the shape given at open (row-major), returns the outputs in the order
    /// of [`GraphSpec::outputs`].
    fn run(&mut self, input: &[f32]) -> Result<Vec<Output>, ModelError>;
    /// Where the graph runs, for logs and `/status`: the default is tract's `["cpu"]`.
    fn providers(&self) -> ProviderReport {
        ProviderReport {
            providers_active: vec!["cpu".into()],
            providers_refused: Vec::new(),
        }
    }
}

/// Which execution providers a session runs on, and which of those the config asked for could
/// not be had (`on_provider_failure = "fallback"`): data for `/status`, so a fallback is never
/// silent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProviderReport {
    /// Registered providers in priority order, as named in the config (`"tensorrt"`, `"cuda"`,
    /// `"cpu"`). ONNX Runtime places each node on the first of them that supports it.
    pub providers_active: Vec<String>,
    /// Requested providers that were refused, each with the reason.
    pub providers_refused: Vec<ProviderRefusal>,
}

/// A requested execution provider that could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderRefusal {
    /// The provider as named in the config.
    pub provider: String,
    /// ONNX Runtime's reason.
    pub reason: String,
}

/// An ONNX Runtime execution provider (`[model] providers`), for backend `ort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// NVIDIA TensorRT (Jetson: JetPack's onnxruntime-gpu build).
    Tensorrt,
    /// NVIDIA CUDA.
    Cuda,
    /// ONNX Runtime's own CPU kernels.
    Cpu,
}

impl Provider {
    /// The name used in the config and in `/status`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Tensorrt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
        }
    }
}

/// What happens when a requested execution provider cannot be registered
/// (`[model] on_provider_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnProviderFailure {
    /// Refuse to load the model, naming the provider and ONNX Runtime's reason.
    #[default]
    Fail,
    /// Warn, record it in [`ProviderReport::providers_refused`] and try the next provider.
    Fallback,
}

/// The execution-provider part of `[model]` that backend `ort` needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrtProviders {
    /// Providers in order of preference; empty means `["cpu"]`.
    pub providers: Vec<Provider>,
    /// Fail or fall back when one cannot be registered.
    pub on_failure: OnProviderFailure,
    /// `[model.tensorrt]`.
    pub tensorrt: crate::config::TensorRtConfig,
}

/// Which backend the configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    #[default]
    Tract,
    Ort,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tract" => Ok(BackendKind::Tract),
            "ort" => Ok(BackendKind::Ort),
            o => Err(format!(
                "unknown backend {o:?} (expected \"tract\" or \"ort\")"
            )),
        }
    }
}

/// `[model] ort_dylib`: where the `ort` backend loads ONNX Runtime from. Process-wide, as ONNX
/// Runtime itself is: it is loaded once, on the first `ort` model, from the path set then.
static ORT_DYLIB: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Sets `[model] ort_dylib` (empty: `ORT_DYLIB_PATH`, else the system library). Harmless in a
/// build without the `ort` feature.
pub fn set_ort_dylib(path: &Path) {
    let value = (!path.as_os_str().is_empty()).then(|| path.to_path_buf());
    match ORT_DYLIB.lock() {
        Ok(mut g) => *g = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

/// `[model] providers`, `on_provider_failure` and `[model.tensorrt]`, for backend `ort`.
/// Process-wide like [`set_ort_dylib`]; read whenever an `ort` model is opened.
static ORT_PROVIDERS: Mutex<Option<OrtProviders>> = Mutex::new(None);

/// Sets the execution providers backend `ort` asks for. Harmless without the `ort` feature.
pub fn set_ort_providers(p: OrtProviders) {
    match ORT_PROVIDERS.lock() {
        Ok(mut g) => *g = Some(p),
        Err(poisoned) => *poisoned.into_inner() = Some(p),
    }
}

/// The providers set by [`set_ort_providers`] (default: the CPU provider only).
pub fn ort_providers() -> OrtProviders {
    let g = match ORT_PROVIDERS.lock() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    g.unwrap_or_default()
}

/// The ONNX Runtime library path set by [`set_ort_dylib`], if any.
pub fn ort_dylib() -> Option<PathBuf> {
    match ORT_DYLIB.lock() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// The backend for `kind`, or an error that says how to get it.
pub fn backend(kind: BackendKind) -> Result<Box<dyn Backend>, ModelError> {
    match kind {
        BackendKind::Tract => Ok(Box::new(tract::TractBackend)),
        #[cfg(feature = "ort")]
        BackendKind::Ort => Ok(Box::new(self::ort::OrtBackend)),
        #[cfg(not(feature = "ort"))]
        BackendKind::Ort => Err(ModelError::Load {
            path: PathBuf::from("(backend)"),
            reason: "backend \"ort\" (ONNX Runtime / TensorRT) is not in this build: rebuild with `cargo build --release --features ort`".into(),
        }),
    }
}
