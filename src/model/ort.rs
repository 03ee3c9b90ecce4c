//! The ONNX Runtime backend (cargo feature `ort`), through the `ort` crate with `load-dynamic`:
//! nothing is linked or downloaded at build time; the shared library is loaded at run time from
//! `[model] ort_dylib` ([`super::set_ort_dylib`]), else `ORT_DYLIB_PATH`, else the system's
//! `libonnxruntime.so`. One intra-op thread (the engine gives the model one processing thread,
//! like tract).
//!
//! Execution providers come from `[model] providers` ([`super::set_ort_providers`]), registered
//! one by one in that order, each logged as registered or refused. A refused one either fails the
//! load (`on_provider_failure = "fail"`, the default) or is skipped with a warning and recorded in
//! the session's [`ProviderReport`] (`"fallback"`). Without `"cpu"` in the list, ONNX Runtime's
//! implicit CPU fallback for unsupported nodes is switched off too: nothing runs on the CPU unless
//! asked for.
//!
//! `ort` panics when it cannot load the library or finds one older than the API it was built for
//! (1.22 for ort 2.0.0-rc.10), so [`init`] opens the library itself first (libloading) and checks
//! its version; only then does ort load the same file. The result is kept for the process: ort's
//! environment and library are process-wide and load once.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::execution_providers::{
    CPUExecutionProvider, CUDAExecutionProvider, ExecutionProvider, TensorRTExecutionProvider,
};
use ort::session::Session as OrtSession;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::tensor::TensorElementType;
use ort::value::{TensorRef, ValueType};

use super::{
    Backend, GraphSpec, ModelError, OnProviderFailure, OrtProviders, Output, Provider,
    ProviderRefusal, ProviderReport, Session,
};

/// The oldest ONNX Runtime minor version (1.x) this build of ort can drive.
const MIN_MINOR: u32 = ort::MINOR_VERSION;

/// Runs ONNX graphs with ONNX Runtime (CPU).
pub struct OrtBackend;

struct OrtRun {
    session: OrtSession,
    providers: ProviderReport,
    input_name: String,
    input_shape: Vec<i64>,
    outputs: Vec<(String, Vec<usize>)>,
}

static INIT: OnceLock<Result<String, String>> = OnceLock::new();

/// Where to load ONNX Runtime from, and where that choice came from (for messages).
fn dylib_choice() -> (PathBuf, String) {
    if let Some(p) = super::ort_dylib() {
        return (p, "[model] ort_dylib".into());
    }
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), "ORT_DYLIB_PATH".into()),
        _ => (
            PathBuf::from("libonnxruntime.so"),
            "the system library search ([model] ort_dylib empty, ORT_DYLIB_PATH unset)".into(),
        ),
    }
}

/// The file to hand to both libloading and ort. A bare file name is searched by the dynamic
/// loader, except that ort first tries it beside the executable, so we do the same; a path with a
/// directory must exist and is made absolute (ort would resolve a relative one against the
/// executable's directory, dlopen against the working directory).
fn resolve(path: &Path, from: &str) -> Result<PathBuf, String> {
    let bare = path.parent().is_none_or(|p| p.as_os_str().is_empty());
    if bare {
        let beside_exe = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join(path)));
        return Ok(beside_exe
            .filter(|p| p.is_file())
            .unwrap_or_else(|| path.to_path_buf()));
    }
    if !path.is_file() {
        return Err(format!(
            "ONNX Runtime library {} (from {from}) does not exist",
            path.display()
        ));
    }
    std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The library's version string ("1.32.0"), read through `OrtGetApiBase` without ort.
fn library_version(path: &Path) -> Result<String, String> {
    // SAFETY: loading ONNX Runtime runs its initialisers, which is what ort does next anyway; the
    // symbol has the C signature of onnxruntime_c_api.h (`ort::sys::OrtGetApiBase`).
    unsafe {
        let lib = libloading::Library::new(path).map_err(|e| e.to_string())?;
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase\0")
                .map_err(|e| format!("{e} (not an ONNX Runtime library: no OrtGetApiBase)"))?;
        let base = get_base();
        if base.is_null() {
            return Err("OrtGetApiBase returned null".into());
        }
        let v = ((*base).GetVersionString)();
        if v.is_null() {
            return Err("GetVersionString returned null".into());
        }
        let version = std::ffi::CStr::from_ptr(v).to_string_lossy().into_owned();
        // Keep it loaded: ort opens the same file next, and unloading ONNX Runtime is not safe.
        std::mem::forget(lib);
        Ok(version)
    }
}

fn init_once() -> Result<String, String> {
    let (path, from) = dylib_choice();
    let help = "set [model] ort_dylib in the config or ORT_DYLIB_PATH to the libonnxruntime.so \
                of ONNX Runtime 1.22 or newer (e.g. the PyPI wheel's onnxruntime/capi/libonnxruntime.so.*)";
    let fail = |what: String| format!("{what}; {help}");
    let file = resolve(&path, &from).map_err(fail)?;
    let version = library_version(&file).map_err(|e| {
        fail(format!(
            "cannot load the ONNX Runtime library {} (from {from}): {e}",
            file.display()
        ))
    })?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().flatten(), parts.next().flatten());
    if major != Some(1) || minor.is_none_or(|m| m < MIN_MINOR) {
        return Err(fail(format!(
            "the ONNX Runtime library {} (from {from}) is version {version}, but this build \
             needs 1.{MIN_MINOR} or newer",
            file.display()
        )));
    }
    let file_str = file.to_string_lossy().into_owned();
    let committed = std::panic::catch_unwind(|| {
        // No `with_logger`: in ort 2.0.0-rc.10 it hands ONNX Runtime a dangling pointer (a
        // segfault on the first log line). ONNX Runtime's own logger prints errors to stderr
        // (ORT_LOG=warning|info|verbose shows more).
        ort::init_from(file_str)
            .with_name("impactd")
            .with_telemetry(false)
            .commit()
    });
    match committed {
        Ok(Ok(_)) => Ok(format!("ONNX Runtime {version} from {}", file.display())),
        Ok(Err(e)) => Err(fail(format!(
            "ONNX Runtime {version} at {} (from {from}) failed to start: {e}",
            file.display()
        ))),
        Err(_) => Err(fail(format!(
            "ONNX Runtime {version} at {} (from {from}) could not be initialised",
            file.display()
        ))),
    }
}

/// Loads ONNX Runtime and creates ort's environment, once per process.
fn init() -> Result<&'static str, String> {
    match INIT.get_or_init(init_once) {
        Ok(s) => Ok(s),
        Err(e) => Err(e.clone()),
    }
}

fn fmt_dims(dims: &[i64]) -> String {
    let shown: Vec<String> = dims
        .iter()
        .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", shown.join(", "))
}

fn fmt_shape(s: &[usize]) -> String {
    let shown: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", shown.join(", "))
}

/// A declared shape (dynamic dimensions are -1) agrees with a wanted one.
fn agrees(declared: &[i64], want: &[usize]) -> bool {
    declared.len() == want.len()
        && declared
            .iter()
            .zip(want)
            .all(|(d, w)| *d < 0 || *d as usize == *w)
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn open(&self, spec: &GraphSpec) -> Result<Box<dyn Session>, ModelError> {
        let load_err = |reason: String| ModelError::Load {
            path: spec.path.clone(),
            reason,
        };
        let shape_err = |reason: String| ModelError::Shape {
            path: spec.path.clone(),
            reason,
        };
        let runtime = init().map_err(load_err)?;
        log::debug!("ort backend: {runtime}");
        let ort_err = |e: ort::Error| load_err(e.to_string());
        let mut builder = OrtSession::builder()
            .map_err(ort_err)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(ort_err)?
            .with_intra_threads(1)
            .map_err(ort_err)?
            .with_inter_threads(1)
            .map_err(ort_err)?;
        let choice = super::ort_providers();
        let providers = register_providers(&mut builder, &choice).map_err(load_err)?;
        if !providers.providers_active.iter().any(|p| p == "cpu") {
            // ONNX Runtime would quietly run the nodes the GPU providers lack on its CPU.
            builder = builder
                .with_config_entry("session.disable_cpu_ep_fallback", "1")
                .map_err(ort_err)?;
        }
        let session = builder.commit_from_file(&spec.path).map_err(|e| {
            load_err(format!(
                "{e} (execution providers: {})",
                providers.providers_active.join(", ")
            ))
        })?;
        log::info!(
            "ort: {} runs on {}",
            spec.path.display(),
            providers.providers_active.join(", ")
        );

        // The graph's own input: one, named as the sidecar says, float32, shape compatible.
        if session.inputs.len() != 1 {
            return Err(shape_err(format!(
                "the graph has {} inputs; impactd feeds exactly one",
                session.inputs.len()
            )));
        }
        let input = &session.inputs[0];
        if input.name != spec.input_name {
            return Err(shape_err(format!(
                "the graph's input is named {:?} but {} says {:?}",
                input.name, spec.expected_by, spec.input_name
            )));
        }
        match &input.input_type {
            ValueType::Tensor { ty, shape, .. } => {
                if !agrees(shape, &spec.input_shape) {
                    return Err(shape_err(format!(
                        "input {:?} has shape {} in the ONNX graph but {} expects {}",
                        spec.input_name,
                        fmt_dims(shape),
                        spec.expected_by,
                        fmt_shape(&spec.input_shape)
                    )));
                }
                if *ty != TensorElementType::Float32 {
                    return Err(shape_err(format!(
                        "input {:?} is {ty:?}, not float32",
                        spec.input_name
                    )));
                }
            }
            other => {
                return Err(shape_err(format!(
                    "input {:?} is {other:?}, not a float32 tensor",
                    spec.input_name
                )));
            }
        }

        // Outputs: each requested one by name, float32, shape compatible (dynamic dimensions are
        // checked on every run).
        let names: Vec<String> = session.outputs.iter().map(|o| o.name.clone()).collect();
        for (want_name, want_shape) in &spec.outputs {
            let Some(out) = session.outputs.iter().find(|o| &o.name == want_name) else {
                return Err(shape_err(format!(
                    "{} names output {want_name:?}, but the graph's outputs are {names:?}",
                    spec.expected_by
                )));
            };
            match &out.output_type {
                ValueType::Tensor { ty, shape, .. } => {
                    if !agrees(shape, want_shape) {
                        return Err(shape_err(format!(
                            "output {want_name:?} has shape {} in the ONNX graph but {} expects {}",
                            fmt_dims(shape),
                            spec.expected_by,
                            fmt_shape(want_shape)
                        )));
                    }
                    if *ty != TensorElementType::Float32 {
                        return Err(shape_err(format!(
                            "output {want_name:?} is {ty:?}, not float32"
                        )));
                    }
                }
                other => {
                    return Err(shape_err(format!(
                        "output {want_name:?} is {other:?}, not a float32 tensor"
                    )));
                }
            }
        }
        Ok(Box::new(OrtRun {
            session,
            providers,
            input_name: spec.input_name.clone(),
            input_shape: spec.input_shape.iter().map(|&d| d as i64).collect(),
            outputs: spec.outputs.clone(),
        }))
    }
}

/// The TensorRT engine cache: the configured directory, else systemd's CacheDirectory, else the
/// user's cache directory.
fn engine_cache_dir(configured: &Path) -> Option<PathBuf> {
    if !configured.as_os_str().is_empty() {
        return Some(configured.to_path_buf());
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env("CACHE_DIRECTORY") {
        // systemd may pass several, colon-separated: the first is ours.
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        return Some(PathBuf::from(first).join("tensorrt"));
    }
    env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("impactd").join("tensorrt"))
}

/// Registers one provider on the builder, or says why not.
fn register_one(
    builder: &mut SessionBuilder,
    provider: Provider,
    choice: &OrtProviders,
) -> Result<String, String> {
    fn try_register(
        ep: &dyn ExecutionProvider,
        builder: &mut SessionBuilder,
    ) -> Result<(), String> {
        match ep.is_available() {
            Ok(true) => {}
            Ok(false) => {
                return Err(format!(
                    "this ONNX Runtime library was built without {} (the CPU-only onnxruntime \
                     wheel has only the CPU provider; on a Jetson use JetPack's onnxruntime-gpu)",
                    ep.name()
                ));
            }
            Err(e) => return Err(format!("cannot list ONNX Runtime's providers: {e}")),
        }
        ep.register(builder).map_err(|e| e.to_string())
    }
    match provider {
        Provider::Cpu => {
            try_register(&CPUExecutionProvider::default(), builder)?;
            Ok(String::new())
        }
        Provider::Cuda => {
            try_register(&CUDAExecutionProvider::default(), builder)?;
            Ok(String::new())
        }
        Provider::Tensorrt => {
            let t = &choice.tensorrt;
            let mut ep = TensorRTExecutionProvider::default()
                .with_fp16(t.fp16)
                .with_int8(t.int8);
            let mut notes = vec![];
            if t.fp16 {
                notes.push("fp16".to_string());
            }
            if t.int8 {
                notes.push("int8".to_string());
            }
            if let Some(core) = t.dla_core {
                ep = ep.with_dla(true).with_dla_core(core);
                notes.push(format!("DLA core {core}"));
            }
            match engine_cache_dir(&t.engine_cache) {
                Some(dir) => {
                    std::fs::create_dir_all(&dir).map_err(|e| {
                        format!(
                            "cannot create the TensorRT engine cache {} ([model.tensorrt] \
                             engine_cache): {e}",
                            dir.display()
                        )
                    })?;
                    let d = dir.to_string_lossy().into_owned();
                    ep = ep
                        .with_engine_cache(true)
                        .with_engine_cache_path(&d)
                        .with_timing_cache(true)
                        .with_timing_cache_path(&d);
                    notes.push(format!("engine cache {d}"));
                }
                None => notes.push(
                    "no engine cache (set [model.tensorrt] engine_cache): engines are rebuilt \
                     at every start"
                        .into(),
                ),
            }
            try_register(&ep, builder)?;
            Ok(notes.join(", "))
        }
    }
}

/// Registers the configured providers in order, applying `on_provider_failure`.
fn register_providers(
    builder: &mut SessionBuilder,
    choice: &OrtProviders,
) -> Result<ProviderReport, String> {
    let wanted: Vec<Provider> = if choice.providers.is_empty() {
        vec![Provider::Cpu]
    } else {
        choice.providers.clone()
    };
    let mut report = ProviderReport::default();
    for &p in &wanted {
        match register_one(builder, p, choice) {
            Ok(notes) => {
                if notes.is_empty() {
                    log::info!("ort: execution provider \"{}\" registered", p.name());
                } else {
                    log::info!(
                        "ort: execution provider \"{}\" registered ({notes})",
                        p.name()
                    );
                }
                report.providers_active.push(p.name().into());
            }
            Err(reason) => match choice.on_failure {
                OnProviderFailure::Fail => {
                    return Err(format!(
                        "execution provider \"{}\" could not be registered: {reason} \
                         ([model] on_provider_failure = \"fail\"; \"fallback\" would try the \
                         next provider of [model] providers)",
                        p.name()
                    ));
                }
                OnProviderFailure::Fallback => {
                    log::warn!(
                        "ort: execution provider \"{}\" refused, falling back to the next one: {reason}",
                        p.name()
                    );
                    report.providers_refused.push(ProviderRefusal {
                        provider: p.name().into(),
                        reason,
                    });
                }
            },
        }
    }
    if report.providers_active.is_empty() {
        let names: Vec<&str> = wanted.iter().map(|p| p.name()).collect();
        return Err(format!(
            "none of the execution providers in [model] providers ({}) could be registered \
             (see the warnings above); add \"cpu\" to run on the CPU",
            names.join(", ")
        ));
    }
    Ok(report)
}

impl Session for OrtRun {
    fn providers(&self) -> ProviderReport {
        self.providers.clone()
    }

    fn run(&mut self, input: &[f32]) -> Result<Vec<Output>, ModelError> {
        let run_err = |e: ort::Error| ModelError::Run(e.to_string());
        let tensor =
            TensorRef::from_array_view((self.input_shape.clone(), input)).map_err(run_err)?;
        let results = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(run_err)?;
        self.outputs
            .iter()
            .map(|(name, want)| {
                let value = results.get(name.as_str()).ok_or_else(|| {
                    ModelError::Run(format!("ONNX Runtime returned no output {name:?}"))
                })?;
                let (shape, data) = value.try_extract_tensor::<f32>().map_err(run_err)?;
                let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
                if &shape != want {
                    return Err(ModelError::BadOutput {
                        output: name.clone(),
                        reason: format!(
                            "shape {} at run time, expected {}",
                            fmt_shape(&shape),
                            fmt_shape(want)
                        ),
                    });
                }
                Ok(Output {
                    shape,
                    data: data.to_vec(),
                })
            })
            .collect()
    }
}
