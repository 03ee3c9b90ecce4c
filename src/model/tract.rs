//! The tract-onnx backend: pure Rust, no system libraries, the default everywhere.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use super::{Backend, GraphSpec, ModelError, Output, Session};

/// Runs ONNX graphs with tract (`tract-onnx`), optimised for the fixed input shape.
pub struct TractBackend;

type Plan = TypedSimplePlan;

struct TractSession {
    plan: Arc<Plan>,
    state: TypedSimpleState,
    input_shape: Vec<usize>,
    /// For each requested output, its index among the plan's outputs.
    output_index: Vec<usize>,
}

fn fmt_shape(s: &[usize]) -> String {
    format!(
        "[{}]",
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn open(&self, spec: &GraphSpec) -> Result<Box<dyn Session>, ModelError> {
        let load_err = |e: TractError| ModelError::Load {
            path: spec.path.clone(),
            reason: format!("{e:#}"),
        };
        let shape_err = |reason: String| ModelError::Shape {
            path: spec.path.clone(),
            reason,
        };
        let mut model = tract_onnx::onnx()
            .model_for_path(&spec.path)
            .map_err(load_err)?;

        // The graph's own input: one input, named as the sidecar says, shape compatible.
        let inputs = model.input_outlets().map_err(load_err)?.to_vec();
        if inputs.len() != 1 {
            return Err(shape_err(format!(
                "the graph has {} inputs; impactd feeds exactly one",
                inputs.len()
            )));
        }
        let in_name = model.node(inputs[0].node).name.clone();
        if in_name != spec.input_name {
            return Err(shape_err(format!(
                "the graph's input is named {in_name:?} but {} says {:?}",
                spec.expected_by, spec.input_name
            )));
        }
        let fact = model.input_fact(0).map_err(load_err)?.clone();
        let declared: Vec<Option<usize>> = fact
            .shape
            .dims()
            .map(|d| {
                d.concretize()
                    .and_then(|d| d.to_i64().ok())
                    .map(|d| d as usize)
            })
            .collect();
        let compatible = !fact.shape.is_open() && declared.len() == spec.input_shape.len()
            || fact.shape.is_open() && declared.len() <= spec.input_shape.len();
        let dims_agree = declared
            .iter()
            .zip(&spec.input_shape)
            .all(|(d, want)| d.is_none_or(|d| d == *want));
        if !(compatible && dims_agree) {
            let shown: Vec<String> = declared
                .iter()
                .map(|d| d.map_or("?".into(), |d| d.to_string()))
                .collect();
            return Err(shape_err(format!(
                "input {:?} has shape [{}] in the ONNX graph but {} expects {}",
                spec.input_name,
                shown.join(", "),
                spec.expected_by,
                fmt_shape(&spec.input_shape)
            )));
        }
        model = model
            .with_input_fact(0, f32::fact(spec.input_shape.clone()).into())
            .map_err(load_err)?;

        // Outputs: find each requested one by name.
        let outlets = model.output_outlets().map_err(load_err)?.to_vec();
        let names: Vec<String> = outlets
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map(String::from)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect();
        let mut output_index = Vec::new();
        for (want, _) in &spec.outputs {
            match names.iter().position(|n| n == want) {
                Some(i) => output_index.push(i),
                None => {
                    return Err(shape_err(format!(
                        "{} names output {want:?}, but the graph's outputs are {names:?}",
                        spec.expected_by
                    )));
                }
            }
        }
        let typed = model.into_typed().map_err(load_err)?;
        for ((want_name, want_shape), &i) in spec.outputs.iter().zip(&output_index) {
            let f = typed.output_fact(i).map_err(load_err)?;
            let got: Option<Vec<usize>> = f.shape.as_concrete().map(|s| s.to_vec());
            if got.as_deref() != Some(want_shape.as_slice()) {
                return Err(shape_err(format!(
                    "output {want_name:?} has shape {} in the ONNX graph but {} expects {}",
                    got.map_or_else(|| format!("{:?}", f.shape), |s| fmt_shape(&s)),
                    spec.expected_by,
                    fmt_shape(want_shape)
                )));
            }
            if f.datum_type != f32::datum_type() {
                return Err(shape_err(format!(
                    "output {want_name:?} is {:?}, not float32",
                    f.datum_type
                )));
            }
        }
        let plan = typed
            .into_optimized()
            .map_err(load_err)?
            .into_runnable()
            .map_err(load_err)?;
        let state = TypedSimpleState::new(&plan).map_err(load_err)?;
        Ok(Box::new(TractSession {
            plan,
            state,
            input_shape: spec.input_shape.clone(),
            output_index,
        }))
    }
}

impl Session for TractSession {
    fn run(&mut self, input: &[f32]) -> Result<Vec<Output>, ModelError> {
        let tensor = Tensor::from_shape(&self.input_shape, input)
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        let outputs = self
            .state
            .run(tvec!(tensor.into_tvalue()))
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        let _ = &self.plan;
        self.output_index
            .iter()
            .map(|&i| {
                let t = &outputs[i];
                let plain = t
                    .try_as_plain_ram()
                    .map_err(|e| ModelError::Run(format!("{e:#}")))?;
                let view = plain
                    .as_slice::<f32>()
                    .map_err(|e| ModelError::Run(format!("{e:#}")))?;
                Ok(Output {
                    shape: t.shape().to_vec(),
                    data: view.to_vec(),
                })
            })
            .collect()
    }
}
