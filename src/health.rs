//! Live health and counters shared between the pipeline and whoever reports on it.
//!
//! Sources, the processing thread and the sinks write plain atomics here (no locks, nothing
//! that can block a capture thread); the HTTP server (`/metrics`, `/healthz`, `/status`), the
//! systemd watchdog and the final log line read them. One [`Health`] per run, shared by `Arc`.
//! Replay fills it too, so every reader can be tested with recorded media.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// One capture source (camera, microphone, file, pipe).
#[derive(Debug)]
pub struct SourceHealth {
    /// Short name: "video" or "audio".
    pub name: &'static str,
    /// Open and delivering (false while reconnecting).
    online: AtomicBool,
    /// Frames (video) or samples (audio) delivered to the pipeline.
    pub delivered: AtomicU64,
    /// Frames or samples lost because a queue or ring was full (drop-oldest policy).
    pub dropped: AtomicU64,
    /// Audio ring overruns counted by the capture callback (audio only).
    pub overruns: AtomicU64,
    /// Times the source was reopened after a fault.
    pub reconnects: AtomicU64,
    /// Errors seen (stream errors, decode errors), whether or not they led to a reconnect.
    pub errors: AtomicU64,
    /// Monotonic time (ns since the run's start) of the last delivery; 0 = never.
    last_delivery_ns: AtomicU64,
    /// Audio level of the last block in dBFS, as f32 bits (audio only; NaN = unknown).
    level_dbfs: AtomicU32,
}

impl SourceHealth {
    fn new(name: &'static str) -> Self {
        SourceHealth {
            name,
            online: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_delivery_ns: AtomicU64::new(0),
            level_dbfs: AtomicU32::new(f32::NAN.to_bits()),
        }
    }

    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }

    pub fn online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Records `n` frames or samples delivered at `now_ns` (ns since the run's start).
    pub fn delivered(&self, n: u64, now_ns: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
        self.last_delivery_ns
            .store(now_ns.max(1), Ordering::Relaxed);
    }

    /// Nanoseconds since the run's start of the last delivery, if any.
    pub fn last_delivery_ns(&self) -> Option<u64> {
        match self.last_delivery_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(ns),
        }
    }

    pub fn set_level_dbfs(&self, dbfs: f32) {
        self.level_dbfs.store(dbfs.to_bits(), Ordering::Relaxed);
    }

    /// Last audio level in dBFS, `None` when unknown.
    pub fn level_dbfs(&self) -> Option<f32> {
        let v = f32::from_bits(self.level_dbfs.load(Ordering::Relaxed));
        (!v.is_nan()).then_some(v)
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// A copy of the counters, for reports.
    pub fn snapshot(&self) -> SourceSnapshot {
        SourceSnapshot {
            name: self.name,
            online: self.online(),
            delivered: Self::get(&self.delivered),
            dropped: Self::get(&self.dropped),
            overruns: Self::get(&self.overruns),
            reconnects: Self::get(&self.reconnects),
            errors: Self::get(&self.errors),
            last_delivery_ns: self.last_delivery_ns(),
            level_dbfs: self.level_dbfs(),
        }
    }
}

/// A point-in-time copy of a [`SourceHealth`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceSnapshot {
    pub name: &'static str,
    pub online: bool,
    pub delivered: u64,
    pub dropped: u64,
    pub overruns: u64,
    pub reconnects: u64,
    pub errors: u64,
    pub last_delivery_ns: Option<u64>,
    pub level_dbfs: Option<f32>,
}

/// Health of one run: both sources, the processing thread and the event counts.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    pub video: SourceHealth,
    pub audio: SourceHealth,
    /// 12-fps grid frames processed by the engine.
    pub frames_processed: AtomicU64,
    /// Grid frames dropped before processing because processing fell behind (drop oldest).
    pub frames_dropped_behind: AtomicU64,
    /// Model windows run, and those skipped for bad output.
    pub windows: AtomicU64,
    pub bad_windows: AtomicU64,
    /// Events emitted, by kind: impact, unseen_sound, silent_impact.
    pub events: [AtomicU64; 3],
    /// Monotonic time (ns since start) the engine last finished a frame; 0 = never.
    last_processed_ns: AtomicU64,
    /// Wall time of each model window (preprocessing of its frames excluded).
    pub inference: LatencyHistogram,
}

/// Upper bounds (s) of the inference latency histogram's buckets (`/metrics`).
pub const LATENCY_BUCKETS_S: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// A lock-free latency histogram: one atomic per bucket (not cumulative; `+Inf` is the count).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS_S.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// (sum in s, count, (upper bound, observations in that bucket alone) per bucket; those
    /// above the last bound are in the count only).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets = LATENCY_BUCKETS_S
            .iter()
            .zip(&self.buckets)
            .map(|(&b, c)| (b, c.load(Ordering::Relaxed)))
            .collect();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, self.count.load(Ordering::Relaxed), buckets)
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub fn new() -> Self {
        Health {
            started: Instant::now(),
            video: SourceHealth::new("video"),
            audio: SourceHealth::new("audio"),
            frames_processed: AtomicU64::new(0),
            frames_dropped_behind: AtomicU64::new(0),
            windows: AtomicU64::new(0),
            bad_windows: AtomicU64::new(0),
            events: Default::default(),
            last_processed_ns: AtomicU64::new(0),
            inference: LatencyHistogram::default(),
        }
    }

    /// Nanoseconds since this run started (monotonic).
    pub fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The engine finished one grid frame.
    pub fn frame_processed(&self) {
        self.frames_processed.fetch_add(1, Ordering::Relaxed);
        self.last_processed_ns
            .store(self.now_ns().max(1), Ordering::Relaxed);
    }

    /// Copies the engine's window and event counters (replay and run alike).
    pub fn set_engine_counters(&self, s: &crate::engine::Stats) {
        self.windows.store(s.windows, Ordering::Relaxed);
        self.bad_windows.store(s.bad_windows, Ordering::Relaxed);
        self.events[0].store(s.events_impact, Ordering::Relaxed);
        self.events[1].store(s.events_unseen_sound, Ordering::Relaxed);
        self.events[2].store(s.events_silent_impact, Ordering::Relaxed);
    }

    /// Records the inference latency of the windows the engine ran since `before` (its window
    /// count and model time then), each at their mean.
    pub fn observe_windows(&self, before: (u64, std::time::Duration), s: &crate::engine::Stats) {
        if s.windows > before.0 {
            let per = (s.time_model - before.1) / (s.windows - before.0) as u32;
            for _ in before.0..s.windows {
                self.inference.observe(per);
            }
        }
    }

    pub fn last_processed_ns(&self) -> Option<u64> {
        match self.last_processed_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(ns),
        }
    }

    /// Why the pipeline is unhealthy, or `None` when both sources are online, have delivered
    /// within `stall` and the engine has processed a frame within `stall`.
    pub fn problem(&self, stall: std::time::Duration) -> Option<String> {
        let now = self.now_ns();
        let stall_ns = stall.as_nanos() as u64;
        for s in [&self.video, &self.audio] {
            if !s.online() {
                return Some(format!("{} source is offline", s.name));
            }
            match s.last_delivery_ns() {
                Some(t) if now.saturating_sub(t) <= stall_ns => {}
                Some(t) => {
                    return Some(format!(
                        "{} source has delivered nothing for {:.1} s",
                        s.name,
                        (now - t) as f64 / 1e9
                    ));
                }
                None => return Some(format!("{} source has not delivered yet", s.name)),
            }
        }
        match self.last_processed_ns() {
            Some(t) if now.saturating_sub(t) <= stall_ns => None,
            Some(t) => Some(format!(
                "processing has stalled for {:.1} s",
                (now - t) as f64 / 1e9
            )),
            None => Some("processing has not started yet".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn healthy_only_when_both_sources_flow_and_frames_are_processed() {
        let h = Health::new();
        assert_eq!(
            h.problem(Duration::from_secs(1)).unwrap(),
            "video source is offline"
        );
        h.video.set_online(true);
        h.audio.set_online(true);
        assert!(
            h.problem(Duration::from_secs(1))
                .unwrap()
                .contains("not delivered")
        );
        h.video.delivered(1, h.now_ns());
        h.audio.delivered(480, h.now_ns());
        assert!(
            h.problem(Duration::from_secs(1))
                .unwrap()
                .contains("processing")
        );
        h.frame_processed();
        assert_eq!(h.problem(Duration::from_secs(1)), None);
        std::thread::sleep(Duration::from_millis(20));
        let p = h.problem(Duration::from_millis(5)).unwrap();
        assert!(p.contains("video source has delivered nothing"), "{p}");
    }

    #[test]
    fn latency_histogram_buckets_each_observation_once() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(1500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let (sum, count, b) = h.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 60.0315).abs() < 1e-9, "{sum}");
        assert_eq!(b[0], (0.001, 0));
        assert_eq!(b[1], (0.002, 1));
        assert_eq!(b[5], (0.05, 1));
        assert_eq!(
            b.iter().map(|x| x.1).sum::<u64>(),
            2,
            "60 s is only in the count"
        );
    }

    #[test]
    fn level_is_unknown_until_set() {
        let h = Health::new();
        assert_eq!(h.audio.level_dbfs(), None);
        h.audio.set_level_dbfs(-23.5);
        assert_eq!(h.audio.snapshot().level_dbfs, Some(-23.5));
    }
}
