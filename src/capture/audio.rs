//! Live audio: the capture ring, the cpal (ALSA) microphone, a paced file "microphone", and the
//! [`Aligner`] that puts captured samples on the run's clock.
//!
//! The data path: the device callback ([`RingWriter::write`]) copies the first channel into a
//! lock-free SPSC ring (`ringbuf`) and stores the capture time of the callback's first frame in
//! a seqlock ([`Anchor`]); when the ring is full the rest of the callback's frames are lost and
//! counted (`Health.audio.overruns`). Nothing else happens there: no allocation, no lock, no log,
//! nothing that blocks. A pump thread ([`crate::live`]) drains the ring every few milliseconds,
//! dates the drained samples from the anchor ([`RingReader::read`]), and the [`Aligner`] turns
//! them into one gapless stream whose sample n is at `n / rate` s on the run's clock.
//!
//! Alignment budget: the stream is kept within [`ALIGN_TOLERANCE_NS`] (4 ms) of the earliest
//! capture timestamps of each second (plus the drift of one second between corrections); the
//! first chunk of a (re)opened device is placed at once. With the
//! frames' timestamps (taken when each frame is read) this keeps audio and video within the
//! 10-ms budget of ARCHITECTURE.md ("Live capture") apart from the camera's own latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use ringbuf::HeapRb;
use ringbuf::traits::{Consumer, Observer, Producer, Split};

use crate::health::Health;

/// The aligner corrects once the smallest offset of a window passes this (ns).
pub const ALIGN_TOLERANCE_NS: i64 = 4_000_000;
/// A chunk this far (ns) ahead of the stream is corrected at once (the stream was overfilled
/// with silence while the device was slow to deliver).
pub const ALIGN_JUMP_NS: i64 = 50_000_000;

/// The capture time of one frame index, written by the callback and read by the pump: a seqlock
/// of plain atomics, so the writer never waits.
#[derive(Debug, Default)]
pub struct Anchor {
    seq: AtomicU64,
    index: AtomicU64,
    ns: AtomicI64,
}

impl Anchor {
    /// Frame `index` (counted from the stream's first frame) was captured at `ns` (run clock).
    pub fn store(&self, index: u64, ns: i64) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Release);
        std::sync::atomic::fence(Ordering::Release);
        self.index.store(index, Ordering::Relaxed);
        self.ns.store(ns, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// The latest (index, ns), or `None` before the first store.
    pub fn load(&self) -> Option<(u64, i64)> {
        for _ in 0..64 {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let index = self.index.load(Ordering::Relaxed);
            let ns = self.ns.load(Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return (s1 > 0).then_some((index, ns));
            }
        }
        None
    }
}

/// State shared by the two ends of one capture ring.
#[derive(Debug, Default)]
struct Shared {
    anchor: Anchor,
    /// Frames the callback was given.
    captured: AtomicU64,
    /// Frames lost because the ring was full.
    lost: AtomicU64,
    /// Set by the stream's error callback: the pump reopens the device.
    failed: AtomicBool,
}

/// The producer end of a capture ring, owned by the device callback.
pub struct RingWriter {
    prod: ringbuf::HeapProd<f32>,
    shared: Arc<Shared>,
    health: Arc<Health>,
}

/// The consumer end, owned by the pump thread.
pub struct RingReader {
    cons: ringbuf::HeapCons<f32>,
    shared: Arc<Shared>,
    rate: u32,
    popped: u64,
    /// The loss count at the previous read: losses happen at the end of a callback, so the
    /// samples still in the ring come after these losses and before any newer ones.
    lost_seen: u64,
}

/// A ring of `capacity` mono samples at `rate` Hz.
pub fn ring(capacity: usize, rate: u32, health: Arc<Health>) -> (RingWriter, RingReader) {
    let (prod, cons) = HeapRb::<f32>::new(capacity.max(1)).split();
    let shared = Arc::new(Shared::default());
    (
        RingWriter {
            prod,
            shared: Arc::clone(&shared),
            health,
        },
        RingReader {
            cons,
            shared,
            rate,
            popped: 0,
            lost_seen: 0,
        },
    )
}

impl RingWriter {
    /// Called once per device callback: `data` holds interleaved frames of `channels` channels,
    /// the first of which was captured at `first_ns` (run clock). Copies channel 0 through
    /// `conv`; what does not fit is counted as overrun. Never allocates, locks or blocks.
    #[inline]
    pub fn write<T: Copy>(
        &mut self,
        data: &[T],
        channels: usize,
        first_ns: i64,
        conv: impl Fn(T) -> f32,
    ) {
        let channels = channels.max(1);
        let frames = data.len() / channels;
        let index = self.shared.captured.load(Ordering::Relaxed);
        self.shared.anchor.store(index, first_ns);
        let mut pushed = 0;
        for frame in data.chunks_exact(channels) {
            if self.prod.try_push(conv(frame[0])).is_err() {
                break;
            }
            pushed += 1;
        }
        let lost = (frames - pushed) as u64;
        if lost > 0 {
            self.shared.lost.fetch_add(lost, Ordering::Relaxed);
            self.health
                .audio
                .overruns
                .fetch_add(lost, Ordering::Relaxed);
        }
        self.shared
            .captured
            .store(index + frames as u64, Ordering::Release);
    }

    /// Marks the stream as failed (from the device's error callback): the pump reopens it.
    pub fn fail(&self) {
        self.shared.failed.store(true, Ordering::Relaxed);
    }

    /// A handle that can mark the stream failed from another closure (cpal's error callback).
    pub fn fail_handle(&self) -> FailHandle {
        FailHandle(Arc::clone(&self.shared))
    }
}

/// Marks a capture stream as failed; see [`RingWriter::fail_handle`].
#[derive(Clone)]
pub struct FailHandle(Arc<Shared>);

impl FailHandle {
    /// The device reported an error: the pump will reopen it.
    pub fn fail(&self) {
        self.0.failed.store(true, Ordering::Relaxed);
    }
}

impl RingReader {
    /// Sample rate of the ring's samples.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Whether the device reported an error since it was opened.
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Frames the callback has been given so far.
    pub fn captured(&self) -> u64 {
        self.shared.captured.load(Ordering::Acquire)
    }

    /// Moves what the ring holds into `buf` (cleared first) and returns the capture time (run
    /// clock, ns) of its first sample, or `None` when nothing was there. The time is
    /// extrapolated from the newest callback's anchor at the nominal rate; samples lost to an
    /// overrun show up as a gap before the next chunk, which the aligner fills with silence.
    pub fn read(&mut self, buf: &mut Vec<f32>) -> Option<i64> {
        buf.clear();
        let n = self.cons.occupied_len();
        if n == 0 {
            return None;
        }
        buf.resize(n, 0.0);
        let got = self.cons.pop_slice(buf);
        buf.truncate(got);
        let first_index = self.popped + self.lost_seen;
        self.lost_seen = self.shared.lost.load(Ordering::Relaxed);
        self.popped += got as u64;
        let (ai, ans) = self.shared.anchor.load()?;
        let offset = (first_index as i128 - ai as i128) * 1_000_000_000 / self.rate as i128;
        Some(ans + offset as i64)
    }
}

/// Turns dated chunks into one gapless stream on the run's clock: sample n of the output is at
/// `n / rate` s. Late chunks get silence before them, early ones lose their first samples.
///
/// Chunk timestamps come late by scheduling jitter (a callback runs after its data is there,
/// never before), so the offset of the stream is estimated as the *smallest* offset seen over
/// [`ALIGN_WINDOW_NS`], and corrected once that passes [`ALIGN_TOLERANCE_NS`] either way. The
/// first chunk after [`Aligner::restart`] (a device opened or reopened) is placed at once.
#[derive(Debug, Clone)]
pub struct Aligner {
    rate: u32,
    fed: u64,
    primed: bool,
    window_start: i64,
    window_min: i64,
    /// Samples of silence inserted and samples dropped so far.
    pub inserted: u64,
    pub dropped: u64,
}

/// The aligner's estimation window (ns): corrections come at most this often.
pub const ALIGN_WINDOW_NS: i64 = 1_000_000_000;

const ZEROS: [f32; 4096] = [0.0; 4096];

impl Aligner {
    /// An empty stream at `rate` Hz starting at the run's time 0.
    pub fn new(rate: u32) -> Aligner {
        Aligner {
            rate,
            fed: 0,
            primed: false,
            window_start: 0,
            window_min: i64::MAX,
            inserted: 0,
            dropped: 0,
        }
    }

    /// The stream's sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// A device was (re)opened: its first chunk is placed by its timestamp at once.
    pub fn restart(&mut self) {
        self.primed = false;
    }

    /// Run time (ns) of the next sample of the output.
    pub fn position_ns(&self) -> i64 {
        (self.fed as i128 * 1_000_000_000 / self.rate as i128) as i64
    }

    fn samples_for(&self, ns: i64) -> u64 {
        (ns.max(0) as i128 * self.rate as i128 / 1_000_000_000) as u64
    }

    fn silence(&mut self, mut n: u64, emit: &mut dyn FnMut(&[f32])) {
        self.inserted += n;
        self.fed += n;
        while n > 0 {
            let k = n.min(ZEROS.len() as u64) as usize;
            emit(&ZEROS[..k]);
            n -= k as u64;
        }
    }

    /// A chunk whose first sample was captured at `pts_ns` (run clock): passes it to `emit`,
    /// after silence if the stream is behind, or without its first samples if it is ahead.
    pub fn push(&mut self, pts_ns: i64, samples: &[f32], emit: &mut dyn FnMut(&[f32])) {
        let offset = pts_ns - self.position_ns();
        let correct = if !self.primed || offset < -ALIGN_JUMP_NS {
            self.primed = true;
            self.window_start = pts_ns;
            self.window_min = i64::MAX;
            offset
        } else {
            self.window_min = self.window_min.min(offset);
            if pts_ns - self.window_start >= ALIGN_WINDOW_NS {
                let m = self.window_min;
                self.window_start = pts_ns;
                self.window_min = i64::MAX;
                if m.abs() > ALIGN_TOLERANCE_NS { m } else { 0 }
            } else {
                0
            }
        };
        if correct != 0 {
            log::debug!("audio alignment: correcting {:.1} ms", correct as f64 / 1e6);
        }
        let mut samples = samples;
        if correct > 0 {
            let n = self.samples_for(correct);
            self.silence(n, emit);
        } else if correct < 0 {
            let n = (self.samples_for(-correct) as usize).min(samples.len());
            self.dropped += n as u64;
            samples = &samples[n..];
        }
        if !samples.is_empty() {
            self.fed += samples.len() as u64;
            emit(samples);
        }
    }

    /// No audio arrived: silence up to run time `until_ns` (used while the microphone is away).
    pub fn fill_to(&mut self, until_ns: i64, emit: &mut dyn FnMut(&[f32])) {
        let target = self.samples_for(until_ns);
        if target > self.fed {
            self.silence(target - self.fed, emit);
        }
    }
}

/// Linear resampling from the device's rate to the stream's, for a device that cannot give the
/// requested rate. Stateful across chunks.
#[derive(Debug, Clone)]
pub struct Resampler {
    step: f64,
    pos: f64,
    prev: f32,
}

impl Resampler {
    /// From `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Resampler {
        Resampler {
            step: from as f64 / to as f64,
            pos: 0.0,
            prev: 0.0,
        }
    }

    /// Appends the resampled `input` to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        // pos is relative to `prev` (index -1 of this chunk): sample i of input is at i + 1.
        let n = input.len() as f64;
        while self.pos < n {
            let i = self.pos.floor();
            let frac = (self.pos - i) as f32;
            let a = if i == 0.0 {
                self.prev
            } else {
                input[i as usize - 1]
            };
            let b = input[i as usize];
            out.push(a + (b - a) * frac);
            self.pos += self.step;
        }
        self.pos -= n;
        if let Some(&last) = input.last() {
            self.prev = last;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(a: &mut Aligner, pts: i64, s: &[f32], out: &mut Vec<f32>) {
        a.push(pts, s, &mut |x| out.extend_from_slice(x));
    }

    #[test]
    fn a_late_first_chunk_is_preceded_by_silence() {
        let mut a = Aligner::new(1000);
        let mut out = Vec::new();
        collect(&mut a, 300_000_000, &[1.0; 10], &mut out);
        assert_eq!(out.len(), 310);
        assert!(out[..300].iter().all(|&v| v == 0.0));
        assert_eq!(out[300], 1.0);
    }

    #[test]
    fn an_early_first_chunk_loses_its_head() {
        let mut a = Aligner::new(1000);
        let mut out = Vec::new();
        collect(
            &mut a,
            -5_000_000,
            &(0..10).map(|i| i as f32).collect::<Vec<_>>(),
            &mut out,
        );
        assert_eq!(out, [5.0, 6.0, 7.0, 8.0, 9.0]);
    }

    #[test]
    fn jitter_below_the_tolerance_changes_nothing_and_a_gap_is_filled() {
        let rate = 48_000;
        let mut a = Aligner::new(rate);
        let mut out = Vec::new();
        // 10-ms chunks whose timestamps jitter by +-2 ms around the truth.
        for k in 0..100i64 {
            let jitter = if k % 2 == 0 { 2_000_000 } else { -2_000_000 };
            collect(
                &mut a,
                k * 10_000_000 + jitter * (k > 0) as i64,
                &[0.5; 480],
                &mut out,
            );
        }
        assert_eq!(a.inserted + a.dropped, 0);
        assert_eq!(out.len(), 48_000);
        // A 200-ms gap (lost samples): once a window shows it, silence fills it exactly.
        for k in 0..110i64 {
            collect(
                &mut a,
                1_200_000_000 + k * 10_000_000,
                &[0.5; 480],
                &mut out,
            );
        }
        assert_eq!(a.inserted, 9600);
        assert_eq!(a.position_ns(), 2_300_000_000);
        // A reopened device is placed by its first chunk at once.
        a.restart();
        collect(&mut a, 2_500_000_000, &[0.5; 480], &mut out);
        assert_eq!(a.inserted, 9600 + 9600);
    }

    #[test]
    fn a_slow_device_clock_is_followed_within_the_budget() {
        // The device's clock runs 0.1 % slow: its 48000 samples span 1.001 s of monotonic time.
        let rate = 48_000;
        let mut a = Aligner::new(rate);
        let mut fed = 0u64;
        let mut worst = 0i64;
        for k in 0..6000i64 {
            let pts = (k as f64 * 0.010 * 1.001 * 1e9) as i64;
            let before = a.position_ns();
            a.push(pts, &[0.1; 480], &mut |x| fed += x.len() as u64);
            // Where this chunk's first sample landed vs where it belongs.
            let landed = before.max(pts);
            worst = worst.max((landed - pts).abs());
            assert!(
                (a.position_ns() - (pts + 10_010_000)).abs() < 10_000_000,
                "chunk {k}: stream at {} ns, chunk ends at {} ns",
                a.position_ns(),
                pts + 10_010_000
            );
        }
        assert!(a.inserted > 0);
        assert_eq!(fed, a.fed);
    }

    #[test]
    fn fill_to_adds_silence_up_to_a_time() {
        let mut a = Aligner::new(100);
        let mut n = 0;
        a.fill_to(1_000_000_000, &mut |x| n += x.len());
        assert_eq!(n, 100);
        a.fill_to(500_000_000, &mut |x| n += x.len());
        assert_eq!(n, 100);
    }

    #[test]
    fn the_ring_dates_samples_from_the_callback_anchor_and_counts_overruns() {
        let health = Arc::new(Health::new());
        let (mut w, mut r) = ring(8, 1000, Arc::clone(&health));
        w.write(&[1i16, 9, 2, 9, 3, 9], 2, 7_000_000, |s| s as f32);
        let mut buf = Vec::new();
        assert_eq!(r.read(&mut buf), Some(7_000_000));
        assert_eq!(buf, [1.0, 2.0, 3.0]);
        // 3 frames later (3 ms at 1 kHz), 10 frames arrive: 8 fit, 2 are lost.
        w.write(&[5i16; 10], 1, 10_000_000, |s| s as f32);
        assert_eq!(r.read(&mut buf), Some(10_000_000));
        assert_eq!(buf.len(), 8);
        assert_eq!(health.audio.overruns.load(Ordering::Relaxed), 2);
        assert_eq!(r.read(&mut buf), None);
    }

    #[test]
    fn resampling_keeps_the_duration() {
        let mut rs = Resampler::new(48_000, 44_100);
        let mut out = Vec::new();
        for _ in 0..100 {
            rs.process(&[0.25; 480], &mut out);
        }
        assert!((out.len() as i64 - 44_100).abs() <= 1, "{}", out.len());
        assert!(out[10..].iter().all(|&v| (v - 0.25).abs() < 1e-6));
    }
}
