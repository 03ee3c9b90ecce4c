//! Configuration: TOML parsed with `deny_unknown_fields` ([`RawConfig`]), then checked
//! ([`RawConfig::check`]) before anything starts. `impactd check-config` does only that.
//!
//! Every key, its default and its meaning are in `impactd.example.toml` at the repository root;
//! a test keeps that file and these defaults in agreement.

use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::detector::DetectorConfig;
use crate::envelope::EnvelopeMode;
use crate::model::BackendKind;

/// A config problem, naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The whole file as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub model: ModelConfig,
    pub envelope: EnvelopeConfig,
    pub detector: DetectorConfig,
    pub events: EventsConfig,
    pub http: HttpConfig,
    pub mqtt: MqttConfig,
    pub evidence: EvidenceConfig,
    /// `[video]`, `[audio]`, `[service]`: live capture and the daemon (`impactd run`).
    pub video: VideoConfig,
    pub audio: AudioConfig,
    pub service: ServiceConfig,
}

/// `[model]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// ONNX file (its sidecar .toml beside it). Empty: the built-in default model.
    pub path: PathBuf,
    /// Inference backend.
    pub backend: BackendKind,
    /// Frames between window predictions (1..=frames per window). Unset: the model's own
    /// choice ([`crate::model::predictor::Predictor::default_hop`]): 1 for a streaming model,
    /// whose window costs only its small head, 6 for a clip model.
    pub hop: Option<usize>,
    /// ONNX Runtime shared library for backend "ort". Empty: `ORT_DYLIB_PATH`, else the system's
    /// libonnxruntime.so. A bare file name is searched by the dynamic loader.
    pub ort_dylib: PathBuf,
    /// ONNX Runtime execution providers for backend "ort", in order of preference.
    pub providers: Vec<crate::model::Provider>,
    /// When a requested provider cannot be registered: "fail" or "fallback" (to the next one).
    pub on_provider_failure: crate::model::OnProviderFailure,
    /// `[model.tensorrt]`: options of the TensorRT provider.
    pub tensorrt: TensorRtConfig,
}

/// `[model.tensorrt]`: options of ONNX Runtime's TensorRT execution provider (backend "ort").
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TensorRtConfig {
    /// Let TensorRT pick fp16 kernels where faster.
    pub fp16: bool,
    /// Let TensorRT pick int8 kernels (needs a model with Q/DQ nodes or a calibration table).
    pub int8: bool,
    /// Directory for built engines (and TensorRT's timing cache). Empty: `$CACHE_DIRECTORY/tensorrt`
    /// (systemd's CacheDirectory=), else `$XDG_CACHE_HOME/impactd/tensorrt`, else
    /// `~/.cache/impactd/tensorrt`. Relative paths are relative to the config file.
    pub engine_cache: PathBuf,
    /// Run on this DLA core (Jetson AGX/NX Orin: 0 or 1); unset: the GPU.
    pub dla_core: Option<u32>,
}

impl ModelConfig {
    /// The execution-provider settings backend "ort" reads ([`crate::model::set_ort_providers`]).
    pub fn ort_providers(&self) -> crate::model::OrtProviders {
        crate::model::OrtProviders {
            providers: self.providers.clone(),
            on_failure: self.on_provider_failure,
            tensorrt: self.tensorrt.clone(),
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: PathBuf::new(),
            backend: BackendKind::Tract,
            hop: None,
            ort_dylib: PathBuf::new(),
            providers: vec![crate::model::Provider::Cpu],
            on_provider_failure: crate::model::OnProviderFailure::Fail,
            tensorrt: TensorRtConfig::default(),
        }
    }
}

/// `[envelope]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvelopeConfig {
    /// `seed` or `frame-mean`; absent: the mode the model was trained on (its sidecar).
    pub mode: Option<EnvelopeMode>,
}

/// `[events]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// JSON Lines destination: `-` for stdout, or a file path (appended to).
    pub path: String,
    /// A file destination rotates when it would pass this size (bytes; 0: never).
    pub max_bytes: u64,
    /// Rotated files kept beside it (`PATH.1` newest .. `PATH.N` oldest).
    pub keep: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            path: "-".into(),
            max_bytes: 10 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// `[http]`: the HTTP server (SSE `/events`, `/metrics`, `/healthz`, `/status`); src/sinks/http.rs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve at all (`--http ADDR` turns it on).
    pub enabled: bool,
    /// Address and port to listen on (port 0: any free port, logged at start).
    pub bind: String,
    /// Events kept in memory for SSE clients that resume with `Last-Event-ID`.
    pub history: usize,
    /// Events queued per SSE client; a client that falls this far behind is disconnected.
    pub client_queue: usize,
    /// At most this many SSE clients at once (further ones get 503).
    pub max_clients: usize,
    /// `/healthz` answers 503 when a source or the processing delivered nothing for this long.
    #[serde(with = "humantime_serde_compat")]
    pub stall: std::time::Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: false,
            bind: "127.0.0.1:9464".into(),
            history: 1000,
            client_queue: 64,
            max_clients: 16,
            stall: std::time::Duration::from_secs(5),
        }
    }
}

/// `[mqtt]`: events and Home Assistant discovery over MQTT; src/sinks/mqtt.rs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Broker URL, `mqtt://HOST[:PORT]` (1883) or `mqtts://HOST[:PORT]` (8883, TLS). Empty: off.
    pub url: String,
    /// Topic and Home Assistant id of this board: `impactd/<device>/...`. Empty: the host name.
    pub device: String,
    /// Username; empty: connect anonymously.
    pub username: String,
    /// File whose first line is the password (preferred; never logged).
    pub password_file: PathBuf,
    /// Environment variable holding the password, when there is no `password_file`.
    pub password_env: String,
    /// CA certificate (PEM) for `mqtts://`; empty: the system's roots.
    pub tls_ca: PathBuf,
    /// Home Assistant discovery prefix; empty: no discovery messages.
    pub discovery_prefix: String,
    /// Messages queued for the broker; when full the oldest is dropped (counted).
    pub queue: usize,
    /// MQTT keep-alive; the broker publishes the last will (`offline`) after 1.5 times this
    /// without word from a board that vanished without closing its connection.
    #[serde(with = "humantime_serde_compat")]
    pub keep_alive: std::time::Duration,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: String::new(),
            device: String::new(),
            username: String::new(),
            password_file: PathBuf::new(),
            password_env: String::new(),
            tls_ca: PathBuf::new(),
            discovery_prefix: "homeassistant".into(),
            queue: 256,
            keep_alive: std::time::Duration::from_secs(30),
        }
    }
}

/// `[evidence]`: a PNG (envelopes and video frame) per event; src/sinks/evidence.rs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// Directory for the files; empty: no evidence. Relative paths are relative to this file.
    pub dir: PathBuf,
    /// Event kinds that get a PNG.
    pub kinds: Vec<crate::detector::Kind>,
    /// Oldest files are deleted beyond this total size (bytes).
    pub max_bytes: u64,
    /// Files older than this are deleted.
    #[serde(with = "humantime_serde_compat")]
    pub max_age: std::time::Duration,
    /// Also a clip of the seconds around each event: MP4 through ffmpeg when it is installed,
    /// else Y4M + WAV.
    pub clips: bool,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            dir: PathBuf::new(),
            kinds: vec![crate::detector::Kind::Impact],
            max_bytes: 100 * 1024 * 1024,
            max_age: std::time::Duration::from_secs(7 * 24 * 3600),
            clips: false,
        }
    }
}

/// Durations as humantime strings ("30s", "7days").
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "{s:?} is not a duration ({e}); write e.g. \"30s\" or \"7days\""
            ))
        })
    }
}

impl RawConfig {
    /// Reads, parses and checks a config file.
    pub fn load(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut cfg = RawConfig::parse(&text, path)?;
        // Relative model paths are relative to the config file.
        if !cfg.model.path.as_os_str().is_empty() && cfg.model.path.is_relative() {
            if let Some(dir) = path.parent() {
                cfg.model.path = dir.join(&cfg.model.path);
            }
        }
        // So is ort_dylib, unless it is a bare file name (left to the dynamic loader's search).
        let lib = &cfg.model.ort_dylib;
        if lib.is_relative() && lib.parent().is_some_and(|p| !p.as_os_str().is_empty()) {
            if let Some(dir) = path.parent() {
                cfg.model.ort_dylib = dir.join(&cfg.model.ort_dylib);
            }
        }
        // So are the evidence directory, the MQTT secrets and the TensorRT engine cache.
        if let Some(dir) = path.parent() {
            for p in [
                &mut cfg.evidence.dir,
                &mut cfg.mqtt.password_file,
                &mut cfg.mqtt.tls_ca,
                &mut cfg.model.tensorrt.engine_cache,
            ] {
                if !p.as_os_str().is_empty() && p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(cfg)
    }

    /// Parses and checks config text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
        let cfg: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            reason: e.to_string().trim_end().replace('\n', " | "),
        })?;
        cfg.check().map_err(|reason| ConfigError::Invalid {
            path: path.into(),
            reason,
        })?;
        Ok(cfg)
    }

    /// Range checks that serde cannot express. The message names the key.
    pub fn check(&self) -> Result<(), String> {
        self.detector.validate()?;
        if self.model.hop == Some(0) {
            return Err(
                "model.hop = 0: the window must move; use 1..=48 (frames per window)".into(),
            );
        }
        if let Some(h) = self.model.hop.filter(|h| *h > 48) {
            return Err(format!(
                "model.hop = {h} is larger than the 48-frame window: frames would be skipped"
            ));
        }
        check_providers(&self.model.providers)?;
        self.video.check()?;
        self.audio.check()?;
        self.service.check()?;
        if self.events.path.is_empty() {
            return Err("events.path is empty: use \"-\" for stdout or a file path".into());
        }
        crate::sinks::check_config(self)?;
        Ok(())
    }
}

/// `[model] providers`: at least one, none twice, and nothing after "cpu" (which always
/// registers, so a provider after it could never be used).
fn check_providers(list: &[crate::model::Provider]) -> Result<(), String> {
    use crate::model::Provider;
    if list.is_empty() {
        return Err(
            "model.providers is empty: list at least one of \"tensorrt\", \"cuda\", \"cpu\"".into(),
        );
    }
    for (i, p) in list.iter().enumerate() {
        if list[..i].contains(p) {
            return Err(format!("model.providers names \"{}\" twice", p.name()));
        }
    }
    if let Some(i) = list.iter().position(|p| *p == Provider::Cpu) {
        if i + 1 < list.len() {
            return Err(format!(
                "model.providers: \"{}\" after \"cpu\" would never be used (the CPU provider always registers); put \"cpu\" last",
                list[i + 1].name()
            ));
        }
    }
    Ok(())
}

// ---- live capture and the daemon (`impactd run`): src/live/, src/service.rs ----

/// `[video]`: where `impactd run` takes frames from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideoConfig {
    /// `/dev/videoN` (a V4L2 camera), `-` (Y4M on stdin, e.g. from GStreamer or ffmpeg), a
    /// `.y4m` file played at its own pace (looped), or `scene` (the built-in synthetic scene,
    /// looped, paced like a camera).
    pub device: String,
    /// Requested frame size and rate of a V4L2 camera (it gives the nearest it offers); the
    /// size also shapes the grey picture used before any frame has arrived.
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Pixel formats to ask a camera for, most preferred first: "MJPG", "YUYV".
    pub formats: Vec<String>,
    /// A V4L2 camera that delivers nothing for this long (s) is closed and reopened (pipes
    /// cannot time out a read; their stalls show in Health and the watchdog).
    pub timeout_s: f64,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            device: "/dev/video0".into(),
            width: 640,
            height: 480,
            fps: 15,
            formats: vec!["MJPG".into(), "YUYV".into()],
            timeout_s: 2.0,
        }
    }
}

impl VideoConfig {
    fn check(&self) -> Result<(), String> {
        if self.device.is_empty() {
            return Err(
                "video.device is empty: use /dev/videoN, \"-\" (Y4M on stdin), a .y4m file or \"scene\""
                    .into(),
            );
        }
        if self.width == 0 || self.height == 0 || self.width > 8192 || self.height > 8192 {
            return Err(format!(
                "video.width x video.height = {}x{}: each must be 1..=8192",
                self.width, self.height
            ));
        }
        if !(12..=240).contains(&self.fps) {
            return Err(format!(
                "video.fps = {}: use 12..=240 (the analysis grid is 12 fps)",
                self.fps
            ));
        }
        for f in &self.formats {
            if !matches!(f.as_str(), "MJPG" | "YUYV") {
                return Err(format!(
                    "video.formats: {f:?} cannot be decoded; use \"MJPG\" and/or \"YUYV\""
                ));
            }
        }
        if !(self.timeout_s > 0.0 && self.timeout_s <= 60.0) {
            return Err(format!(
                "video.timeout_s = {}: use more than 0 and at most 60 seconds",
                self.timeout_s
            ));
        }
        Ok(())
    }
}

/// `[audio]`: where `impactd run` takes sound from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    /// An ALSA capture device through cpal: `default`, a device id (`alsa:hw:1,0`) or name
    /// (`testmic`, as `arecord -L` lists it); or `wav:PATH` (a WAV file played at its own pace,
    /// looped) or `scene` (the built-in scene's sound).
    pub device: String,
    /// Requested sample rate (Hz); the device's nearest supported rate is used otherwise.
    pub rate: u32,
    /// Capture ring size in milliseconds of audio (the callback's only buffer).
    pub ring_ms: u32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            device: "default".into(),
            rate: 44_100,
            ring_ms: 2000,
        }
    }
}

impl AudioConfig {
    fn check(&self) -> Result<(), String> {
        if self.device.is_empty() {
            return Err(
                "audio.device is empty: use \"default\", an ALSA device name, \"wav:PATH\" or \"scene\""
                    .into(),
            );
        }
        if !(8_000..=192_000).contains(&self.rate) {
            return Err(format!("audio.rate = {}: use 8000..=192000 Hz", self.rate));
        }
        if !(100..=60_000).contains(&self.ring_ms) {
            return Err(format!(
                "audio.ring_ms = {}: use 100..=60000 ms",
                self.ring_ms
            ));
        }
        Ok(())
    }
}

/// `[service]`: supervision of the running daemon (systemd watchdog, reconnects).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// A source that has delivered nothing for this long (s) counts as stalled: the systemd
    /// watchdog is no longer fed and the status line says so.
    pub stall_s: f64,
    /// Reconnect backoff: first delay and cap (s); each failure doubles the delay, with up to
    /// 25 % random jitter.
    pub backoff_min_s: f64,
    pub backoff_max_s: f64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            stall_s: 3.0,
            backoff_min_s: 0.5,
            backoff_max_s: 30.0,
        }
    }
}

impl ServiceConfig {
    fn check(&self) -> Result<(), String> {
        if !(self.stall_s >= 0.5 && self.stall_s <= 600.0) {
            return Err(format!(
                "service.stall_s = {}: use 0.5..=600 seconds",
                self.stall_s
            ));
        }
        if !(self.backoff_min_s > 0.0 && self.backoff_min_s <= self.backoff_max_s) {
            return Err(format!(
                "service.backoff_min_s = {}: must be above 0 and at most service.backoff_max_s ({})",
                self.backoff_min_s, self.backoff_max_s
            ));
        }
        if self.backoff_max_s > 3600.0 {
            return Err(format!(
                "service.backoff_max_s = {}: at most 3600 seconds",
                self.backoff_max_s
            ));
        }
        Ok(())
    }
}

/// The built-in default model (impact-s1): `IMPACTD_MODEL` (unless empty), else the first of
/// `./models/`, the install's share directory and the source tree that exists.
pub fn default_model_path() -> PathBuf {
    const NAME: &str = "impact-s1.onnx";
    if let Some(p) = std::env::var_os("IMPACTD_MODEL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let mut candidates = vec![PathBuf::from("models").join(NAME)];
    if let Ok(exe) = std::env::current_exe() {
        if let Some(prefix) = exe.parent().and_then(Path::parent) {
            candidates.push(prefix.join("share/impactd/models").join(NAME));
        }
    }
    candidates.push(PathBuf::from("/usr/share/impactd/models").join(NAME));
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(NAME),
    );
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| candidates.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("impactd.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = RawConfig::parse(&text, &path).unwrap();
        // The example documents the defaults: apart from naming the model, it must equal them.
        let mut want = RawConfig::default();
        want.model.path = cfg.model.path.clone();
        assert_eq!(cfg, want);
    }

    #[test]
    fn empty_config_is_all_defaults() {
        let cfg = RawConfig::parse("", Path::new("x.toml")).unwrap();
        assert_eq!(cfg, RawConfig::default());
        assert_eq!(cfg.model.hop, None, "unset: the model chooses");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = RawConfig::parse("[detector]\nvisual_treshold = 0.4\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml") && e.contains("visual_treshold"), "{e}");
        let e = RawConfig::parse("[modle]\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("modle"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("[model]\nhop = 0\n", "model.hop"),
            ("[model]\nhop = 49\n", "model.hop"),
            (
                "[detector]\nsilent_threshold = 2.0\n",
                "detector.silent_threshold",
            ),
            ("[envelope]\nmode = \"loud\"\n", "loud"),
            ("[model]\nbackend = \"cuda\"\n", "cuda"),
            ("[model]\nhop = \"six\"\n", "hop"),
            ("[video]\nfps = 5\n", "video.fps"),
            ("[video]\nformats = [\"H264\"]\n", "video.formats"),
            ("[video]\ndevice = \"\"\n", "video.device"),
            ("[video]\ntimeout_s = 0\n", "video.timeout_s"),
            ("[audio]\nrate = 1000\n", "audio.rate"),
            ("[audio]\nring_ms = 5\n", "audio.ring_ms"),
            ("[audio]\nchannel = 2\n", "channel"),
            ("[service]\nstall_s = 0\n", "service.stall_s"),
            ("[service]\nbackoff_min_s = 60\n", "service.backoff_min_s"),
        ] {
            let e = RawConfig::parse(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{text:?}: {e}");
        }
    }

    #[test]
    fn providers_and_tensorrt_options_parse() {
        use crate::model::{OnProviderFailure, Provider};
        let text = "[model]\nproviders = [\"tensorrt\", \"cuda\", \"cpu\"]\n\
                    on_provider_failure = \"fallback\"\n\
                    [model.tensorrt]\nfp16 = true\nengine_cache = \"trt\"\ndla_core = 1\n";
        let cfg = RawConfig::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(
            cfg.model.providers,
            [Provider::Tensorrt, Provider::Cuda, Provider::Cpu]
        );
        assert_eq!(cfg.model.on_provider_failure, OnProviderFailure::Fallback);
        assert!(cfg.model.tensorrt.fp16 && !cfg.model.tensorrt.int8);
        assert_eq!(cfg.model.tensorrt.dla_core, Some(1));
        // load() makes the engine cache relative to the config file
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, text).unwrap();
        let cfg = RawConfig::load(&file).unwrap();
        assert_eq!(cfg.model.tensorrt.engine_cache, dir.path().join("trt"));
    }

    #[test]
    fn bad_provider_lists_name_the_key_and_the_provider() {
        for (text, needles) in [
            (
                "[model]\nproviders = []\n",
                &["model.providers", "empty"][..],
            ),
            (
                "[model]\nproviders = [\"cuda\", \"cuda\"]\n",
                &["model.providers", "\"cuda\" twice"][..],
            ),
            (
                "[model]\nproviders = [\"cpu\", \"tensorrt\"]\n",
                &["\"tensorrt\" after \"cpu\"", "put \"cpu\" last"][..],
            ),
            (
                "[model]\nproviders = [\"rocm\"]\n",
                &["rocm", "tensorrt"][..],
            ),
            ("[model]\non_provider_failure = \"retry\"\n", &["retry"][..]),
            ("[model.tensorrt]\nfp32 = true\n", &["fp32"][..]),
            ("[model.tensorrt]\ndla_core = -1\n", &["dla_core"][..]),
        ] {
            let e = RawConfig::parse(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            for n in needles {
                assert!(e.contains(n), "{text:?}: {n:?} not in {e}");
            }
        }
    }
}
