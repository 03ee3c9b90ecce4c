//! Events (DESIGN.md, "Events") and the per-frame envelope rows, and the sinks that write them.
//!
//! Events go out as JSON Lines, one object per line, flushed per line. `replay --envelopes`
//! writes one CSV row per 12-fps frame.

use serde::Serialize;
use std::io::{self, Write};

use crate::detector::Kind;

/// One reported event. Field order and names are the schema of DESIGN.md; `visual_frame`,
/// `audio_frame`, `observed_raw` and `attack` are extras.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Increasing from 1 within a run.
    pub id: u64,
    pub kind: Kind,
    /// Seconds from the stream's start, refined below the frame interval from the audio.
    pub t: f64,
    /// 12-fps frame index of the peak.
    pub frame: u64,
    pub confidence: f32,
    /// Predicted envelope at the visual peak (0..1).
    pub predicted: f32,
    /// Observed envelope at the audio peak, scaled over the model's window (0..1).
    pub observed: f32,
    /// RFC 3339 UTC wall-clock time of the impact.
    pub ts: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_confidence: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visual_frame: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_frame: Option<u64>,
    /// Smoothed |signal| at the audio peak before scaling.
    pub observed_raw: f32,
    /// How suddenly the sound arrived (impact, unseen_sound): the share of its rise that came
    /// within 20 ms, which `detector.audio_attack` is compared with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack: Option<f32>,
}

/// One 12-fps frame of both envelopes (`--envelopes` CSV row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameRow {
    pub frame: u64,
    /// Seconds from the stream start (k / 12).
    pub t: f64,
    pub predicted: f32,
    pub observed: f32,
    pub observed_raw: f32,
}

/// Where the engine's output goes.
pub trait Sink {
    fn event(&mut self, event: &Event) -> io::Result<()>;
    /// Called once per finalised frame; most sinks ignore it.
    fn frame(&mut self, _row: &FrameRow) -> io::Result<()> {
        Ok(())
    }
    /// Called with each 12-fps grid frame's picture before the engine gets it (evidence PNGs);
    /// most sinks ignore it. It must not block: copy what is needed and return.
    fn image(&mut self, _index: u64, _image: &crate::media::Image) -> io::Result<()> {
        Ok(())
    }
    /// Called with each block of audio (first channel, -1..1) before the engine gets it
    /// (evidence clips); most sinks ignore it. It must not block.
    fn audio(&mut self, _rate: u32, _samples: &[f32]) -> io::Result<()> {
        Ok(())
    }
    /// Called at the end of the stream.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// JSON Lines to any writer, one flushed line per event.
pub struct JsonLines<W: Write> {
    out: W,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines { out }
    }
}

impl<W: Write> Sink for JsonLines<W> {
    /// One `write_all` per line, so a writer that rotates between writes never splits a line.
    fn event(&mut self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        self.out.flush()
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The `frame,t,predicted,observed,observed_raw` CSV of DESIGN.md.
pub struct EnvelopeCsv<W: Write> {
    out: W,
}

impl<W: Write> EnvelopeCsv<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        writeln!(out, "frame,t,predicted,observed,observed_raw")?;
        Ok(EnvelopeCsv { out })
    }
}

impl<W: Write> Sink for EnvelopeCsv<W> {
    fn event(&mut self, _event: &Event) -> io::Result<()> {
        Ok(())
    }
    fn frame(&mut self, r: &FrameRow) -> io::Result<()> {
        writeln!(
            self.out,
            "{},{:.6},{:.6},{:.6},{:.9}",
            r.frame, r.t, r.predicted, r.observed, r.observed_raw
        )
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Collects everything in memory (eval, tests).
#[derive(Debug, Default, Clone)]
pub struct Collect {
    pub events: Vec<Event>,
    pub frames: Vec<FrameRow>,
}

impl Sink for Collect {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.events.push(event.clone());
        Ok(())
    }
    fn frame(&mut self, row: &FrameRow) -> io::Result<()> {
        self.frames.push(*row);
        Ok(())
    }
}

/// Several sinks as one.
pub struct Fanout<'a>(pub Vec<&'a mut dyn Sink>);

impl Sink for Fanout<'_> {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.event(event))
    }
    fn frame(&mut self, row: &FrameRow) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.frame(row))
    }
    fn image(&mut self, index: u64, image: &crate::media::Image) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.image(index, image))
    }
    fn audio(&mut self, rate: u32, samples: &[f32]) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.audio(rate, samples))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.flush())
    }
}

/// Rounds to `digits` decimals, for readable JSON.
pub(crate) fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_the_design_fields() {
        let e = Event {
            id: 1,
            kind: Kind::Impact,
            t: 1.2345,
            frame: 15,
            confidence: 0.5,
            predicted: 0.75,
            observed: 1.0,
            ts: "2026-01-01T00:00:01.234Z".into(),
            class: None,
            class_confidence: None,
            visual_frame: Some(15),
            audio_frame: Some(15),
            observed_raw: 0.01,
            attack: Some(0.9),
        };
        let mut s = JsonLines::new(Vec::new());
        s.event(&e).unwrap();
        let line = String::from_utf8(s.out).unwrap();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        for key in [
            "id",
            "kind",
            "t",
            "frame",
            "confidence",
            "predicted",
            "observed",
            "ts",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {line}");
        }
        assert_eq!(v["kind"], "impact");
        assert!(v.get("class").is_none());
    }
}
