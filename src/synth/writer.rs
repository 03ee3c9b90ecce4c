//! Writing scenes: `scene-NNNNNN.y4m` (4:2:0, C420jpeg), `scene-NNNNNN.wav` (44.1 kHz mono
//! 16-bit), `scene-NNNNNN.json` (labels) per scene and `manifest.toml` for `impactd eval`,
//! generated in parallel on std threads. Scene i uses seed S + i, so the files do not depend on
//! the number of scenes or threads.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use super::audio::RATE;
use super::{GeneratedScene, SynthError, SynthOptions, generate};

/// A run of the generator.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub out: PathBuf,
    pub count: usize,
    pub seed: u64,
    pub jobs: usize,
    pub scene: SynthOptions,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub scenes: usize,
    pub impacts: usize,
    pub seconds: f64,
}

/// The frame rate as a Y4M ratio: integers exactly, NTSC-style rates over 1001, else over 1000.
pub fn fps_ratio(fps: f64) -> (usize, usize) {
    if (fps - fps.round()).abs() < 1e-9 {
        (fps.round() as usize, 1)
    } else if (fps * 1.001 - (fps * 1.001).round()).abs() < 1e-3 {
        // 29.97 -> 30000/1001, 23.976 -> 24000/1001
        ((fps * 1.001).round() as usize * 1000, 1001)
    } else {
        ((fps * 1000.0).round() as usize, 1000)
    }
}

/// The file stem of scene `i`.
pub fn stem(i: usize) -> String {
    format!("scene-{i:06}")
}

/// Writes the Y4M of a scene to `w`.
pub fn write_y4m(
    w: impl Write,
    scene: &GeneratedScene,
    opts: &SynthOptions,
) -> Result<(), y4m::Error> {
    let (num, den) = fps_ratio(opts.fps);
    let mut enc = y4m::encode(
        opts.width as usize,
        opts.height as usize,
        y4m::Ratio::new(num, den),
    )
    .with_colorspace(y4m::Colorspace::C420jpeg)
    .write_header(w)?;
    for f in &scene.frames {
        enc.write_frame(&y4m::Frame::new([&f.y, &f.u, &f.v], None))?;
    }
    Ok(())
}

/// Writes the WAV of a scene to `w`.
pub fn write_wav<W: Write + std::io::Seek>(
    w: W,
    scene: &GeneratedScene,
) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wr = hound::WavWriter::new(w, spec)?;
    {
        let mut s = wr.get_i16_writer(scene.audio.len() as u32);
        for &v in &scene.audio {
            s.write_sample(v);
        }
        s.flush()?;
    }
    wr.finalize()
}

fn io_err(path: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SynthError {
    SynthError::Write {
        path: path.into(),
        source: std::io::Error::other(e),
    }
}

/// Writes the three files of scene `i`; returns its eval hits.
pub fn write_scene(
    dir: &Path,
    i: usize,
    scene: &GeneratedScene,
    opts: &SynthOptions,
) -> Result<(), SynthError> {
    let s = stem(i);
    let y4m_path = dir.join(format!("{s}.y4m"));
    let f = std::fs::File::create(&y4m_path).map_err(|e| io_err(&y4m_path, e))?;
    let mut bw = BufWriter::with_capacity(1 << 16, f);
    write_y4m(&mut bw, scene, opts).map_err(|e| io_err(&y4m_path, format!("{e:?}")))?;
    bw.flush().map_err(|e| io_err(&y4m_path, e))?;
    let wav_path = dir.join(format!("{s}.wav"));
    let f = std::fs::File::create(&wav_path).map_err(|e| io_err(&wav_path, e))?;
    write_wav(BufWriter::new(f), scene).map_err(|e| io_err(&wav_path, e))?;
    let json_path = dir.join(format!("{s}.json"));
    let text = serde_json::to_string(&scene.labels).map_err(|e| io_err(&json_path, e))?;
    std::fs::write(&json_path, text + "\n").map_err(|e| io_err(&json_path, e))?;
    Ok(())
}

/// The manifest text for scenes `0..hits.len()`.
pub fn manifest(hits: &[Vec<f64>]) -> String {
    let mut m =
        String::from("# Written by `impactd synth`: hits are the visible and audible impacts.\n");
    for (i, h) in hits.iter().enumerate() {
        let s = stem(i);
        let list: Vec<String> = h.iter().map(|t| format!("{t}")).collect();
        m.push_str(&format!(
            "\n[[clip]]\nname = \"{s}\"\nmedia = \"{s}.y4m\"\naudio = \"{s}.wav\"\nhits = [{}]\n",
            list.join(", ")
        ));
    }
    m
}

/// Generates and writes `count` scenes on `jobs` threads, then the manifest.
pub fn run(opts: &RunOptions) -> Result<RunReport, SynthError> {
    opts.scene.check()?;
    if opts.count == 0 {
        return Err(SynthError::BadArg {
            arg: "count",
            reason: "must be at least 1".into(),
        });
    }
    if opts.jobs == 0 {
        return Err(SynthError::BadArg {
            arg: "jobs",
            reason: "must be at least 1".into(),
        });
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| SynthError::OutDir {
        path: opts.out.clone(),
        source: e,
    })?;
    // Fail on an unwritable folder before any work.
    let probe = opts.out.join(".impactd-synth-probe");
    std::fs::write(&probe, b"").map_err(|e| SynthError::OutDir {
        path: opts.out.clone(),
        source: e,
    })?;
    let _ = std::fs::remove_file(&probe);
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let hits: Mutex<Vec<Option<Vec<f64>>>> = Mutex::new(vec![None; opts.count]);
    let impacts = AtomicUsize::new(0);
    let first_error: Mutex<Option<SynthError>> = Mutex::new(None);
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.min(opts.count) {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= opts.count {
                        break;
                    }
                    let result =
                        generate(opts.seed.wrapping_add(i as u64), &opts.scene).and_then(|scene| {
                            write_scene(&opts.out, i, &scene, &opts.scene).map(|_| scene)
                        });
                    match result {
                        Ok(scene) => {
                            impacts.fetch_add(scene.labels.impacts.len(), Ordering::Relaxed);
                            hits.lock().unwrap()[i] = Some(scene.labels.hits());
                            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                            if d % 1000 == 0 {
                                log::info!("{d} of {} scenes", opts.count);
                            }
                        }
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            first_error.lock().unwrap().get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }
    let hits: Vec<Vec<f64>> = hits
        .into_inner()
        .unwrap()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let mpath = opts.out.join("manifest.toml");
    std::fs::write(&mpath, manifest(&hits)).map_err(|e| io_err(&mpath, e))?;
    Ok(RunReport {
        scenes: opts.count,
        impacts: impacts.into_inner(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
