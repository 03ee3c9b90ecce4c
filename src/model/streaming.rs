//! The `streaming` form: a per-frame encoder and a temporal head (DESIGN.md, "The model
//! contract").
//!
//! The sidecar's `[encoder]` section names the encoder graph (one preprocessed frame in, one
//! feature vector `[1, features]` out); `NAME.onnx` itself is the head (`[1, frames, features]`
//! in, the `[output]`s out). Each grid frame runs the encoder once and its features go into a
//! ring of the last `frames`; each window runs only the head. Padding is the clip form's: a
//! window that starts before the stream repeats the first frame's features at the front (the
//! encoder is per frame, so this equals a clip window padded with copies of the first frame),
//! and the padded positions' outputs are dropped.

use std::collections::VecDeque;

use super::predictor::{Predictor, WindowOutput, output_specs, window_output};
use super::{Backend, GraphSpec, Layout, ModelError, ModelSpec, Session};
use crate::media::Image;
use crate::preprocess::Preprocessor;

/// The `streaming` form: encoder once per frame, head once per window.
pub struct StreamingPredictor {
    spec: ModelSpec,
    encoder: Box<dyn Session>,
    head: Box<dyn Session>,
    pre: Preprocessor,
    features: usize,
    /// Feature vectors of the last frames, oldest first, at most `frames` of them.
    ring: VecDeque<Vec<f32>>,
    last_index: Option<u64>,
    /// The preprocessed frame (CHW) and, for `NTHWC`, its HWC copy.
    frame: Vec<f32>,
    frame_hwc: Vec<f32>,
    /// The head's input window.
    input: Vec<f32>,
}

impl StreamingPredictor {
    /// Loads both graphs with `backend`, checking each one's shapes against the sidecar.
    pub fn new(spec: ModelSpec, backend: &dyn Backend) -> Result<StreamingPredictor, ModelError> {
        let enc = spec
            .sidecar
            .encoder
            .clone()
            .ok_or_else(|| ModelError::Sidecar {
                path: spec.sidecar_path.clone(),
                reason: "form \"streaming\" needs an [encoder] section".into(),
            })?;
        let encoder_path = spec.encoder_path().unwrap_or_default();
        let encoder = backend.open(&GraphSpec {
            path: encoder_path,
            input_name: spec.sidecar.input.name.clone(),
            input_shape: spec.frame_shape(),
            outputs: vec![(enc.output.clone(), vec![1, enc.features])],
            expected_by: format!(
                "the sidecar {} ([input] and [encoder], streaming encoder)",
                spec.sidecar_path.display()
            ),
        })?;
        let head = backend.open(&GraphSpec {
            path: spec.onnx_path.clone(),
            input_name: enc.head_input.clone(),
            input_shape: vec![1, spec.frames(), enc.features],
            outputs: output_specs(&spec),
            expected_by: format!(
                "the sidecar {} (streaming head: [encoder] head_input and features, [output])",
                spec.sidecar_path.display()
            ),
        })?;
        let pre = Preprocessor::new(&spec.sidecar.input);
        Ok(StreamingPredictor {
            encoder,
            head,
            pre,
            features: enc.features,
            ring: VecDeque::with_capacity(spec.frames()),
            last_index: None,
            frame: Vec::new(),
            frame_hwc: Vec::new(),
            input: Vec::with_capacity(spec.frames() * enc.features),
            spec,
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }
}

impl Predictor for StreamingPredictor {
    fn frames(&self) -> usize {
        self.spec.frames()
    }

    fn lookahead(&self) -> usize {
        self.spec.lookahead()
    }

    /// A window costs only the head (the encoder ran once per frame): predict at every frame,
    /// so a frame is final, and an impact reported, as early as the model allows.
    fn default_hop(&self) -> usize {
        1
    }

    fn classes(&self) -> &[String] {
        &self.spec.sidecar.output.classes
    }

    fn push_frame(&mut self, index: u64, image: &Image) -> Result<(), ModelError> {
        let expected = self.last_index.map_or(0, |i| i + 1);
        if index != expected {
            return Err(ModelError::Run(format!(
                "grid frame {index} pushed, expected {expected}"
            )));
        }
        self.pre.process(image, &mut self.frame);
        let input: &[f32] = match self.spec.sidecar.input.layout {
            Layout::NTHWC if self.spec.sidecar.input.colour.channels() > 1 => {
                let c_len = self.spec.sidecar.input.colour.channels();
                let plane = self.frame.len() / c_len;
                self.frame_hwc.clear();
                self.frame_hwc.resize(self.frame.len(), 0.0);
                for p in 0..plane {
                    for c in 0..c_len {
                        self.frame_hwc[p * c_len + c] = self.frame[c * plane + p];
                    }
                }
                &self.frame_hwc
            }
            _ => &self.frame,
        };
        let out = self.encoder.run(input)?;
        let feats = &out[0].data;
        if feats.len() != self.features {
            return Err(ModelError::BadOutput {
                output: self
                    .spec
                    .sidecar
                    .encoder
                    .as_ref()
                    .map_or_else(String::new, |e| e.output.clone()),
                reason: format!("{} values, expected {}", feats.len(), self.features),
            });
        }
        let mut buf = if self.ring.len() == self.spec.frames() {
            self.ring.pop_front().unwrap_or_default()
        } else {
            Vec::with_capacity(self.features)
        };
        buf.clear();
        buf.extend_from_slice(feats);
        self.ring.push_back(buf);
        self.last_index = Some(index);
        Ok(())
    }

    fn predict(&mut self) -> Result<WindowOutput, ModelError> {
        let end = self
            .last_index
            .ok_or_else(|| ModelError::Run("predict before any frame".into()))?;
        let t_len = self.spec.frames();
        let pad = t_len - self.ring.len();
        self.input.clear();
        for _ in 0..pad {
            self.input.extend_from_slice(&self.ring[0]);
        }
        for f in &self.ring {
            self.input.extend_from_slice(f);
        }
        let outputs = self.head.run(&self.input)?;
        window_output(&self.spec, &outputs, end, self.ring.len())
    }
}
