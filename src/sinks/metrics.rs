//! `GET /metrics`: the Prometheus text format, encoded by `prometheus-client` (the official Rust
//! client). Nothing is copied into a registry as it happens: one [`Collector`] reads the lock-free
//! counters of [`Health`] and [`SinkStats`] at scrape time, so the pipeline pays nothing for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::SinkStats;
use crate::health::{Health, SourceHealth};

/// The metric families of one run.
#[derive(Debug)]
struct Families {
    health: Arc<Health>,
    sinks: Arc<SinkStats>,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: f64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

/// A family with one `label` whose values are the given pairs.
fn labelled<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    label: &'static str,
    values: impl IntoIterator<Item = (&'a str, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (value, v) in values {
        let labels = [(label, value)];
        let mut f = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => f.encode_counter::<NoLabelSet, _, f64>(&(v as u64), None)?,
            _ => f.encode_gauge(&v)?,
        }
    }
    Ok(())
}

fn sources<'a>(
    h: &'a Health,
    f: impl Fn(&'a SourceHealth) -> f64 + 'a,
) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    [&h.video, &h.audio]
        .into_iter()
        .map(move |s| (s.name, f(s)))
}

impl Collector for Families {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let h = &self.health;
        let s = &self.sinks;
        let e = &mut enc;
        {
            let mut m = e.encode_descriptor(
                "impactd_build",
                "Build of this daemon",
                None,
                MetricType::Info,
            )?;
            m.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        }
        gauge(
            e,
            "impactd_uptime_seconds",
            "Seconds since this run started",
            h.uptime().as_secs_f64(),
        )?;
        labelled(
            e,
            "impactd_source_up",
            "1 while the source is open and delivering",
            MetricType::Gauge,
            "source",
            sources(h, |s| s.online() as u8 as f64),
        )?;
        counter(
            e,
            "impactd_video_frames_captured",
            "Video frames delivered to the pipeline",
            get(&h.video.delivered),
        )?;
        counter(
            e,
            "impactd_video_frames_dropped",
            "Video frames lost to a full queue (drop oldest)",
            get(&h.video.dropped),
        )?;
        counter(
            e,
            "impactd_audio_samples_captured",
            "Audio samples delivered to the pipeline",
            get(&h.audio.delivered),
        )?;
        counter(
            e,
            "impactd_audio_samples_dropped",
            "Audio samples lost to a full ring",
            get(&h.audio.dropped),
        )?;
        counter(
            e,
            "impactd_audio_overruns",
            "Audio ring overruns counted by the capture callback",
            get(&h.audio.overruns),
        )?;
        labelled(
            e,
            "impactd_source_reconnects",
            "Times a source was reopened after a fault",
            MetricType::Counter,
            "source",
            sources(h, |s| get(&s.reconnects) as f64),
        )?;
        labelled(
            e,
            "impactd_source_errors",
            "Stream or decode errors per source",
            MetricType::Counter,
            "source",
            sources(h, |s| get(&s.errors) as f64),
        )?;
        if let Some(db) = h.audio.level_dbfs() {
            gauge(
                e,
                "impactd_audio_level_dbfs",
                "RMS level of the last audio block (dBFS)",
                db as f64,
            )?;
        }
        counter(
            e,
            "impactd_frames_processed",
            "12-fps grid frames processed by the engine",
            get(&h.frames_processed),
        )?;
        counter(
            e,
            "impactd_frames_dropped_behind",
            "Grid frames dropped because processing fell behind",
            get(&h.frames_dropped_behind),
        )?;
        counter(e, "impactd_windows", "Model windows run", get(&h.windows))?;
        counter(
            e,
            "impactd_bad_windows",
            "Model windows skipped for bad output",
            get(&h.bad_windows),
        )?;
        labelled(
            e,
            "impactd_events",
            "Events emitted, by kind",
            MetricType::Counter,
            "kind",
            [
                ("impact", get(&h.events[0]) as f64),
                ("unseen_sound", get(&h.events[1]) as f64),
                ("silent_impact", get(&h.events[2]) as f64),
            ],
        )?;
        {
            let (sum, count, buckets) = h.inference.snapshot();
            let mut m = e.encode_descriptor(
                "impactd_inference_seconds",
                "Wall time of one model window",
                None,
                MetricType::Histogram,
            )?;
            m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        labelled(
            e,
            "impactd_sink_dropped",
            "Messages discarded from a full sink queue (drop oldest)",
            MetricType::Counter,
            "sink",
            [
                ("http", get(&s.dropped_http) as f64),
                ("mqtt", get(&s.dropped_mqtt) as f64),
                ("evidence", get(&s.dropped_evidence) as f64),
            ],
        )?;
        gauge(
            e,
            "impactd_sse_clients",
            "SSE clients connected",
            get(&s.sse_clients) as f64,
        )?;
        counter(
            e,
            "impactd_sse_clients_dropped",
            "SSE clients disconnected for falling behind",
            get(&s.sse_clients_dropped),
        )?;
        counter(
            e,
            "impactd_sse_history_overflows",
            "SSE resumes that asked for events older than the history",
            get(&s.sse_history_overflows),
        )?;
        gauge(
            e,
            "impactd_mqtt_connected",
            "1 while connected to the MQTT broker",
            get(&s.mqtt_connected) as f64,
        )?;
        counter(
            e,
            "impactd_mqtt_reconnects",
            "MQTT connection attempts after a failure",
            get(&s.mqtt_reconnects),
        )?;
        counter(
            e,
            "impactd_mqtt_published",
            "Events published to MQTT",
            get(&s.mqtt_published),
        )?;
        counter(
            e,
            "impactd_evidence_written",
            "Evidence PNGs written",
            get(&s.evidence_written),
        )?;
        counter(
            e,
            "impactd_evidence_skipped",
            "Evidence PNGs skipped (write failed, frames no longer held)",
            get(&s.evidence_skipped),
        )?;
        Ok(())
    }
}

/// The `/metrics` page.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new(health: Arc<Health>, sinks: Arc<SinkStats>) -> Metrics {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Families { health, sinks }));
        Metrics { registry }
    }

    /// Content type of [`Metrics::render`]'s text.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}
