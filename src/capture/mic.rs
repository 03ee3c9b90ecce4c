//! Opening a microphone: an ALSA capture device through cpal, or a file played at its own pace
//! into the same ring (for tests, benchmarks and demos). Either way the pipeline sees a
//! [`RingReader`] whose samples are dated on the run's clock.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, Sample, SampleFormat, SizedSample};

use super::audio::{RingReader, RingWriter, ring};
use crate::health::Health;
use crate::sources::{self, AudioSource, SourceError};

/// Where the sound comes from (`[audio] device`).
#[derive(Debug, Clone, PartialEq)]
pub enum MicSpec {
    /// A cpal input device: `default`, a cpal id (`alsa:hw:1,0`) or a device name.
    Device(String),
    /// A WAV file (or any file ffmpeg reads) played at its own pace, looped.
    File(PathBuf),
    /// The built-in synthetic scene's sound, looped.
    Scene,
}

impl MicSpec {
    /// Parses `[audio] device`: `wav:PATH`, `scene`, else a device.
    pub fn parse(s: &str) -> MicSpec {
        if let Some(p) = s.strip_prefix("wav:") {
            MicSpec::File(PathBuf::from(p))
        } else if s == "scene" {
            MicSpec::Scene
        } else {
            MicSpec::Device(s.to_string())
        }
    }
}

/// Why a microphone could not be opened. All kinds are retried by the pipeline (a device can
/// appear later); the message names the device and, where it helps, what exists instead.
#[derive(Debug, thiserror::Error)]
pub enum MicError {
    #[error("audio device {name:?} not found; input devices: {}", if available.is_empty() { "none".to_string() } else { available.join(", ") })]
    NotFound {
        name: String,
        available: Vec<String>,
    },
    #[error("audio device {name:?}: {reason}")]
    Unsupported { name: String, reason: String },
    #[error("audio device {name:?}: {source}")]
    Backend {
        name: String,
        #[source]
        source: cpal::Error,
    },
    #[error(transparent)]
    File(#[from] SourceError),
}

/// An open microphone: read from `reader`; dropping it closes the device.
pub struct Mic {
    /// The ring the device writes into.
    pub reader: RingReader,
    /// One line for the log: device, rate, format, channels.
    pub description: String,
    _keep: Box<dyn Any>,
}

/// Opens `spec` asking for `rate` Hz, with a ring of `ring_ms` milliseconds. A file or the scene
/// starts playing at run time `start_ns` (catching up at once if that is past), or now when
/// `None`: the first open of a run passes `Some(0)`, so a file camera and a file microphone
/// opened a few milliseconds apart still play in step (a source whose A/V offset is known: 0).
pub fn open(
    spec: &MicSpec,
    rate: u32,
    ring_ms: u32,
    health: &Arc<Health>,
    start_ns: Option<i64>,
) -> Result<Mic, MicError> {
    match spec {
        MicSpec::Device(name) => open_device(name, rate, ring_ms, health),
        MicSpec::File(path) => {
            let path = path.clone();
            open_paced(
                move || sources::open_audio(&path),
                ring_ms,
                health,
                spec_name(spec),
                start_ns,
            )
        }
        MicSpec::Scene => open_paced(
            || {
                Ok(
                    Box::new(crate::sources::synthetic::Scene::default().audio())
                        as Box<dyn AudioSource>,
                )
            },
            ring_ms,
            health,
            spec_name(spec),
            start_ns,
        ),
    }
}

fn spec_name(spec: &MicSpec) -> String {
    match spec {
        MicSpec::Device(n) => n.clone(),
        MicSpec::File(p) => format!("wav:{}", p.display()),
        MicSpec::Scene => "scene".into(),
    }
}

fn find_device(host: &cpal::Host, name: &str) -> Result<cpal::Device, MicError> {
    if name == "default" {
        return host
            .default_input_device()
            .ok_or_else(|| MicError::NotFound {
                name: name.into(),
                available: list_inputs(host),
            });
    }
    if let Ok(id) = name.parse::<cpal::DeviceId>() {
        if let Some(d) = host.device_by_id(&id) {
            return Ok(d);
        }
    }
    let devices = host.input_devices().map_err(|source| MicError::Backend {
        name: name.into(),
        source,
    })?;
    for d in devices {
        let id = d.id().map(|i| i.to_string()).unwrap_or_default();
        let id_tail = id.split_once(':').map(|(_, t)| t.to_string());
        let desc = d.description().map(|x| x.name().to_string()).ok();
        if id == name || id_tail.as_deref() == Some(name) || desc.as_deref() == Some(name) {
            return Ok(d);
        }
    }
    Err(MicError::NotFound {
        name: name.into(),
        available: list_inputs(host),
    })
}

fn list_inputs(host: &cpal::Host) -> Vec<String> {
    host.input_devices()
        .map(|it| {
            it.filter_map(|d| d.id().ok().map(|i| i.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn format_rank(f: SampleFormat) -> u32 {
    match f {
        // 16-bit first: what most microphones (and ALSA's file plugin over a raw test file)
        // deliver natively; float only where that is all there is.
        SampleFormat::I16 => 0,
        SampleFormat::F32 => 1,
        SampleFormat::I32 => 2,
        SampleFormat::I24 => 3,
        SampleFormat::U16 => 4,
        SampleFormat::I8 => 5,
        SampleFormat::U8 => 6,
        SampleFormat::F64 => 7,
        _ => 100,
    }
}

fn open_device(name: &str, rate: u32, ring_ms: u32, health: &Arc<Health>) -> Result<Mic, MicError> {
    let host = cpal::default_host();
    let device = find_device(&host, name)?;
    let backend = |source| MicError::Backend {
        name: name.into(),
        source,
    };
    let ranges: Vec<_> = device
        .supported_input_configs()
        .map_err(backend)?
        .filter(|r| format_rank(r.sample_format()) < 100)
        .collect();
    // The requested rate if a range has it, else the nearest; then the fewest channels and the
    // simplest sample format.
    let best = ranges
        .iter()
        .min_by_key(|r| {
            let nearest = rate.clamp(r.min_sample_rate(), r.max_sample_rate());
            (
                nearest.abs_diff(rate),
                r.channels(),
                format_rank(r.sample_format()),
            )
        })
        .cloned()
        .ok_or_else(|| MicError::Unsupported {
            name: name.into(),
            reason: "offers no input configuration with a sample format impactd reads".into(),
        })?;
    let chosen_rate = rate.clamp(best.min_sample_rate(), best.max_sample_rate());
    let supported = best.with_sample_rate(chosen_rate);
    let format = supported.sample_format();
    let channels = supported.channels() as usize;
    let config: cpal::StreamConfig = supported.into();
    let capacity = (chosen_rate as u64 * ring_ms as u64 / 1000) as usize;
    let (writer, reader) = ring(capacity, chosen_rate, Arc::clone(health));
    let stream = match format {
        SampleFormat::F32 => build::<f32>(&device, config, channels, writer, health, chosen_rate),
        SampleFormat::I16 => build::<i16>(&device, config, channels, writer, health, chosen_rate),
        SampleFormat::I32 => build::<i32>(&device, config, channels, writer, health, chosen_rate),
        SampleFormat::I24 => {
            build::<cpal::I24>(&device, config, channels, writer, health, chosen_rate)
        }
        SampleFormat::U16 => build::<u16>(&device, config, channels, writer, health, chosen_rate),
        SampleFormat::I8 => build::<i8>(&device, config, channels, writer, health, chosen_rate),
        SampleFormat::U8 => build::<u8>(&device, config, channels, writer, health, chosen_rate),
        SampleFormat::F64 => build::<f64>(&device, config, channels, writer, health, chosen_rate),
        other => {
            return Err(MicError::Unsupported {
                name: name.into(),
                reason: format!("sample format {other} is not read"),
            });
        }
    }
    .map_err(backend)?;
    stream.play().map_err(backend)?;
    let id = device.id().map(|i| i.to_string()).unwrap_or(name.into());
    Ok(Mic {
        reader,
        description: format!("{id} {chosen_rate} Hz {format} {channels} ch (first channel used)"),
        _keep: Box::new(stream),
    })
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    channels: usize,
    mut writer: RingWriter,
    health: &Arc<Health>,
    rate: u32,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    let failed = writer.fail_handle();
    let h = Arc::clone(health);
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], info: &cpal::InputCallbackInfo| {
            // The capture time of the first frame: now, less how long ago the device says it
            // captured it. A clock read (vDSO) and arithmetic only.
            let _ = info;
            let frames = (data.len() / channels.max(1)) as i64;
            let first_ns = h.now_ns() as i64 - frames * 1_000_000_000 / rate as i64;
            writer.write(data, channels, first_ns, |s| f32::from_sample(s));
        },
        move |_err| {
            // Not logged here (this may run on the audio thread): the pump sees the flag, logs
            // and reconnects.
            failed.fail();
        },
        Some(Duration::from_secs(5)),
    )
}

/// Guard of a paced-file thread: stops it when dropped.
struct PacedGuard(Arc<AtomicBool>);

impl Drop for PacedGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Plays an audio source into a ring at its own pace, looping at its end, as a sound card would:
/// each 10-ms block is written once its last sample has "happened" (like a device period) and is
/// stamped with the time of its first sample. A source that cannot be reopened marks the ring
/// failed.
fn open_paced(
    mut reopen: impl FnMut() -> Result<Box<dyn AudioSource>, SourceError> + Send + 'static,
    ring_ms: u32,
    health: &Arc<Health>,
    name: String,
    start_ns: Option<i64>,
) -> Result<Mic, MicError> {
    let first = reopen()?;
    let rate = first.info().rate;
    let description = format!(
        "{name}: {} (paced in real time, looped)",
        first.info().description
    );
    let capacity = (rate as u64 * ring_ms as u64 / 1000) as usize;
    let (mut writer, reader) = ring(capacity, rate, Arc::clone(health));
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let h = Arc::clone(health);
    std::thread::Builder::new()
        .name("audio-file".into())
        .spawn(move || {
            let block = (rate / 100).max(1) as usize;
            let mut src = first;
            let mut pending: Vec<f32> = Vec::new();
            let start = start_ns.unwrap_or_else(|| h.now_ns() as i64);
            let mut written: u64 = 0;
            while !stop2.load(Ordering::Relaxed) {
                while pending.len() < block {
                    match src.next_block() {
                        Ok(Some(b)) if b.rate == rate => pending.extend_from_slice(&b.samples),
                        Ok(Some(_)) | Err(_) => {
                            writer.fail();
                            return;
                        }
                        Ok(None) => match reopen() {
                            Ok(s) => src = s,
                            Err(e) => {
                                log::error!("{e}");
                                writer.fail();
                                return;
                            }
                        },
                    }
                }
                let at = |n: u64| start + (n as i128 * 1_000_000_000 / rate as i128) as i64;
                let due = at(written);
                let captured = at(written + block as u64);
                let now = h.now_ns() as i64;
                if captured > now {
                    std::thread::sleep(Duration::from_nanos((captured - now) as u64));
                }
                writer.write(&pending[..block], 1, due, |s| s);
                pending.drain(..block);
                written += block as u64;
            }
        })
        .map_err(|e| MicError::Unsupported {
            name,
            reason: format!("cannot start its thread: {e}"),
        })?;
    Ok(Mic {
        reader,
        description,
        _keep: Box::new(PacedGuard(stop)),
    })
}
