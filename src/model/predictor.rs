//! Predictors: turn grid frames into envelope predictions, one window at a time.
//!
//! [`ClipPredictor`] is the `clip` form: it keeps the last `frames` preprocessed frames and runs
//! the whole window through one graph. A window that starts before the stream does (the first
//! 4 s, or a clip shorter than a window) is padded at the front with copies of the first frame: a
//! still picture, so the padding carries no motion and never creates an event; the padded
//! positions' outputs are dropped.

use std::collections::VecDeque;

use super::{Backend, GraphSpec, ModelError, ModelSpec, Session};
use crate::media::Image;
use crate::model::Layout;
use crate::preprocess::Preprocessor;

/// The result of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowOutput {
    /// Grid index of the window's first real (unpadded) frame.
    pub start: u64,
    /// Grid index of the window's last frame.
    pub end: u64,
    /// Predicted envelope for frames `start..=end`, each in [0, 1].
    pub envelope: Vec<f32>,
    /// Class probabilities (softmax of the logits), when the model has a class head: one set of
    /// `classes` values for the window, or with `class_per_frame` one set per frame of
    /// `start..=end`, frame after frame.
    pub classes: Option<Vec<f32>>,
}

/// A model form: frames in, window predictions out.
pub trait Predictor: Send {
    /// Frames per window.
    fn frames(&self) -> usize;
    /// Frames between windows when the config does not say: 6 (0.5 s) for a model whose
    /// window is the whole graph.
    fn default_hop(&self) -> usize {
        6
    }
    /// Later frames a frame's predicted value depends on (0: causal, 1: one frame ahead).
    fn lookahead(&self) -> usize {
        1
    }
    /// Adds grid frame `index` (indices must be consecutive from 0).
    fn push_frame(&mut self, index: u64, image: &Image) -> Result<(), ModelError>;
    /// Predicts the window that ends at the last pushed frame.
    fn predict(&mut self) -> Result<WindowOutput, ModelError>;
    /// The model's class names (empty without a class head).
    fn classes(&self) -> &[String];
    /// Where the model's graphs run (execution providers, fallbacks), for logs and `/status`.
    /// The default, an empty report, means "not reported" (a form that runs several graphs
    /// should report its sessions').
    fn providers(&self) -> super::ProviderReport {
        super::ProviderReport::default()
    }
}

/// The `clip` form: one graph over the whole window.
pub struct ClipPredictor {
    spec: ModelSpec,
    session: Box<dyn Session>,
    pre: Preprocessor,
    /// Preprocessed frames, oldest first, at most `frames` of them.
    ring: VecDeque<Vec<f32>>,
    /// Recycled frame buffers.
    spare: Vec<Vec<f32>>,
    last_index: Option<u64>,
    input: Vec<f32>,
}

impl ClipPredictor {
    /// Loads the model's graph with `backend`, checking its shapes against the sidecar.
    pub fn new(spec: ModelSpec, backend: &dyn Backend) -> Result<ClipPredictor, ModelError> {
        let graph = GraphSpec {
            path: spec.onnx_path.clone(),
            input_name: spec.sidecar.input.name.clone(),
            input_shape: spec.input_shape(),
            outputs: output_specs(&spec),
            expected_by: format!("the sidecar {}", spec.sidecar_path.display()),
        };
        let session = backend.open(&graph)?;
        let pre = Preprocessor::new(&spec.sidecar.input);
        Ok(ClipPredictor {
            spec,
            session,
            pre,
            ring: VecDeque::new(),
            spare: Vec::new(),
            last_index: None,
            input: Vec::new(),
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn assemble(&mut self) {
        let t_len = self.spec.frames();
        let pad = t_len - self.ring.len();
        let i = &self.spec.sidecar.input;
        let (c_len, h, w) = (i.colour.channels(), i.height as usize, i.width as usize);
        let plane = h * w;
        self.input.clear();
        self.input.resize(t_len * c_len * plane, 0.0);
        let frame_at = |t: usize| -> &Vec<f32> { &self.ring[t.saturating_sub(pad)] };
        match i.layout {
            Layout::NCTHW => {
                for c in 0..c_len {
                    for t in 0..t_len {
                        let dst = (c * t_len + t) * plane;
                        self.input[dst..dst + plane]
                            .copy_from_slice(&frame_at(t)[c * plane..(c + 1) * plane]);
                    }
                }
            }
            Layout::NTCHW => {
                for t in 0..t_len {
                    let n = c_len * plane;
                    self.input[t * n..(t + 1) * n].copy_from_slice(frame_at(t));
                }
            }
            Layout::NTHWC => {
                for t in 0..t_len {
                    let f = frame_at(t);
                    let base = t * plane * c_len;
                    for p in 0..plane {
                        for c in 0..c_len {
                            self.input[base + p * c_len + c] = f[c * plane + p];
                        }
                    }
                }
            }
        }
    }
}

impl Predictor for ClipPredictor {
    fn frames(&self) -> usize {
        self.spec.frames()
    }

    fn lookahead(&self) -> usize {
        self.spec.lookahead()
    }

    fn classes(&self) -> &[String] {
        &self.spec.sidecar.output.classes
    }

    fn providers(&self) -> super::ProviderReport {
        self.session.providers()
    }

    fn push_frame(&mut self, index: u64, image: &Image) -> Result<(), ModelError> {
        let expected = self.last_index.map_or(0, |i| i + 1);
        if index != expected {
            return Err(ModelError::Run(format!(
                "grid frame {index} pushed, expected {expected}"
            )));
        }
        self.last_index = Some(index);
        let mut buf = if self.ring.len() == self.spec.frames() {
            self.ring.pop_front().unwrap_or_default()
        } else {
            self.spare.pop().unwrap_or_default()
        };
        self.pre.process(image, &mut buf);
        self.ring.push_back(buf);
        Ok(())
    }

    fn predict(&mut self) -> Result<WindowOutput, ModelError> {
        let end = self
            .last_index
            .ok_or_else(|| ModelError::Run("predict before any frame".into()))?;
        self.assemble();
        let outputs = self.session.run(&self.input)?;
        window_output(&self.spec, &outputs, end, self.ring.len())
    }
}

/// The outputs a model's head graph must have: the envelope, then the class logits if any.
pub(crate) fn output_specs(spec: &ModelSpec) -> Vec<(String, Vec<usize>)> {
    let mut outputs = vec![(spec.sidecar.output.envelope.clone(), spec.envelope_shape())];
    if let Some(shape) = spec.class_shape() {
        outputs.push((spec.sidecar.output.class_logits.clone(), shape));
    }
    outputs
}

/// Checks a window's graph outputs and keeps the `real` unpadded frames that end at `end`.
pub(crate) fn window_output(
    spec: &ModelSpec,
    outputs: &[super::Output],
    end: u64,
    real: usize,
) -> Result<WindowOutput, ModelError> {
    let t_len = spec.frames();
    let pad = t_len - real;
    let env_name = &spec.sidecar.output.envelope;
    let env = &outputs[0].data;
    if env.len() != t_len {
        return Err(ModelError::BadOutput {
            output: env_name.clone(),
            reason: format!("{} values, expected {t_len}", env.len()),
        });
    }
    if let Some((i, v)) = env.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ModelError::BadOutput {
            output: env_name.clone(),
            reason: format!("value {i} is {v}"),
        });
    }
    // A little float slack; anything further out means the graph does not end in [0, 1].
    if let Some((i, v)) = env
        .iter()
        .enumerate()
        .find(|(_, v)| **v < -1e-3 || **v > 1.0 + 1e-3)
    {
        return Err(ModelError::BadOutput {
            output: env_name.clone(),
            reason: format!("value {i} is {v}, outside [0, 1]"),
        });
    }
    let envelope: Vec<f32> = env[pad..].iter().map(|v| v.clamp(0.0, 1.0)).collect();
    let classes = match outputs.get(1) {
        Some(logits) => {
            if let Some(v) = logits.data.iter().find(|v| !v.is_finite()) {
                return Err(ModelError::BadOutput {
                    output: spec.sidecar.output.class_logits.clone(),
                    reason: format!("logit is {v}"),
                });
            }
            let n = spec.sidecar.output.classes.len();
            if spec.sidecar.output.class_per_frame {
                let mut probs = Vec::with_capacity(real * n);
                for frame in logits.data.chunks_exact(n).skip(pad) {
                    probs.extend(softmax(frame));
                }
                Some(probs)
            } else {
                Some(softmax(&logits.data))
            }
        }
        None => None,
    };
    Ok(WindowOutput {
        start: end + 1 - real as u64,
        end,
        envelope,
        classes,
    })
}

/// Softmax of logits (numerically stable).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|v| v / sum).collect()
}

/// Loads the model at `onnx_path` (with its sidecar) on `backend`, in the form the sidecar names.
pub fn load(
    onnx_path: &std::path::Path,
    backend: &dyn Backend,
) -> Result<Box<dyn Predictor>, ModelError> {
    let spec = ModelSpec::load(onnx_path)?;
    match spec.sidecar.model.form {
        super::Form::Clip => Ok(Box::new(ClipPredictor::new(spec, backend)?)),
        super::Form::Streaming => Ok(Box::new(super::streaming::StreamingPredictor::new(
            spec, backend,
        )?)),
    }
}
