//! Puts video of any frame rate on the 12-fps analysis grid by timestamps.
//!
//! DESIGN.md ("Time"): grid frame k is at `t = k / 12 s` from the stream's start, and it is filled
//! from timestamps, never by counting frames. [`GridResampler`] implements exactly one rule, used
//! for every source (Y4M, ffmpeg, live cameras):
//!
//! * Grid point k is at `origin_ns + grid_time_ns(k)`.
//! * It shows the source frame whose timestamp is **nearest** to it; on a tie the **earlier**
//!   frame wins. Distances are compared in integer nanoseconds, and two distances that differ by
//!   at most [`TIE_TOLERANCE_NS`] count as a tie: grid times and frame timestamps are each rounded
//!   to the nanosecond, so an exact tie in rational time (at 30 fps every odd grid point lies
//!   exactly between two frames) can show up to 2 ns off, and must not be decided by rounding.
//! * It is emitted as soon as a frame with `pts >= its time` has arrived: from then on no later
//!   frame can be nearer, so the choice needs no further lookahead.
//! * Frames before the origin only serve as candidates for the first grid points.
//! * At [`GridResampler::finish`], the grid points after the last frame are emitted while their time
//!   is `<= last_pts + interval / 2`, where `interval` is the distance between the last two frames
//!   (1/12 s when only one frame was seen). So a 10.0-s clip at 30 fps (last frame at 9.9667 s)
//!   gives exactly 120 grid frames and a 6.0-s clip at 15 fps gives 72. The comparison allows
//!   [`END_TOLERANCE_NS`] for the rounding of the timestamps involved, so that a clip whose last
//!   half interval ends exactly on a grid point (6 fps, 1 s) keeps that grid point.
//! * A frame whose timestamp is not greater than the previous frame's is dropped and counted
//!   ([`GridResampler::dropped_non_monotonic`]); the first such drop is logged.
//!
//! The output is therefore a pure function of the list of (increasing) timestamps: it does not
//! depend on how the pushes are batched or when the output vector is drained.
//!
//! When one source frame fills several grid points (a camera slower than 12 fps), the grid frames
//! share its picture through an [`Arc`]; nothing is copied.

use crate::media::{GRID_FPS, Image, NS_PER_S, VideoFrame, grid_time_ns};
use std::sync::Arc;

/// Two distances to a grid point that differ by at most this many ns are a tie (the earlier frame
/// wins): `2 * t_grid - t_a - t_b` carries up to 2 ns of rounding.
pub const TIE_TOLERANCE_NS: i64 = 2;

/// Slack (ns) allowed by the end-of-stream rule of [`GridResampler::finish`] for rounding: grid
/// times and frame timestamps are each rounded to whole nanoseconds, so an exact rational tie can
/// appear up to 3 ns off.
pub const END_TOLERANCE_NS: i64 = 3;

/// A frame of the 12-fps grid.
#[derive(Debug, Clone)]
pub struct GridFrame {
    /// Grid index k: the frame at t = k / 12 s after the origin.
    pub index: u64,
    /// Timestamp of the source frame chosen for this grid point (ns, source clock).
    pub source_pts_ns: i64,
    /// The picture (shared when one source frame fills several grid points).
    pub image: Arc<Image>,
}

/// Converts `ticks` of a time base `tb_num / tb_den` seconds into nanoseconds, rounded to the
/// nearest nanosecond (halves round up), with exact integer arithmetic.
///
/// Every source uses this one conversion, so the same media time read through different paths
/// (a Y4M file natively, or through ffmpeg) gets the same nanosecond timestamp. Saturates at the
/// `i64` range; returns 0 when `tb_den` is 0.
pub fn ticks_to_ns(ticks: i64, tb_num: u64, tb_den: u64) -> i64 {
    if tb_den == 0 {
        return 0;
    }
    let num = ticks as i128 * NS_PER_S as i128 * tb_num as i128;
    let den = tb_den as i128;
    let ns = (2 * num + den).div_euclid(2 * den);
    ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// The latest accepted source frame.
#[derive(Debug)]
struct Candidate {
    pts_ns: i64,
    image: Arc<Image>,
}

/// Streams frames with arbitrary timestamps onto the 12-fps grid (nearest frame by timestamp).
/// See the module documentation for the exact rule.
#[derive(Debug)]
pub struct GridResampler {
    origin_ns: i64,
    next_index: u64,
    last: Option<Candidate>,
    /// `last.pts - previous.pts` once two frames were accepted.
    last_interval_ns: Option<i64>,
    dropped_non_monotonic: u64,
}

impl GridResampler {
    /// A resampler whose grid point 0 is at `origin_ns` (ns, on the frames' clock; 0 for replayed
    /// media time).
    pub fn new(origin_ns: i64) -> GridResampler {
        GridResampler {
            origin_ns,
            next_index: 0,
            last: None,
            last_interval_ns: None,
            dropped_non_monotonic: 0,
        }
    }

    /// The time of grid point `k` on the frames' clock (ns), widened so it cannot overflow.
    fn grid_point_ns(&self, k: u64) -> i128 {
        self.origin_ns as i128 + grid_time_ns(k) as i128
    }

    /// Offers the next source frame. Appends to `out` every grid point that this frame decides
    /// (those with time `<= frame.pts_ns` not yet emitted), in index order. A frame whose
    /// timestamp is not greater than the previous accepted one is dropped and counted.
    pub fn push(&mut self, frame: VideoFrame, out: &mut Vec<GridFrame>) {
        let pts = frame.pts_ns;
        let previous = self.last.as_ref().map(|last| last.pts_ns);
        if let Some(previous) = previous.filter(|&previous| pts <= previous) {
            if self.dropped_non_monotonic == 0 {
                log::warn!(
                    "video frame at {pts} ns does not come after the previous one ({previous} ns): dropped \
                     (further drops are only counted)"
                );
            }
            self.dropped_non_monotonic += 1;
            return;
        }
        let image = Arc::new(frame.image);
        loop {
            let t = self.grid_point_ns(self.next_index);
            if t > pts as i128 {
                break;
            }
            // `last`, if any, lies before t: otherwise this grid point would have been emitted
            // when `last` arrived. So the nearest frame is `last` or this one.
            let (chosen_pts, chosen_image) = match &self.last {
                Some(prev)
                    if t - prev.pts_ns as i128 <= pts as i128 - t + TIE_TOLERANCE_NS as i128 =>
                {
                    (prev.pts_ns, &prev.image)
                }
                _ => (pts, &image),
            };
            out.push(GridFrame {
                index: self.next_index,
                source_pts_ns: chosen_pts,
                image: Arc::clone(chosen_image),
            });
            self.next_index += 1;
        }
        if let Some(prev) = &self.last {
            self.last_interval_ns = Some(pts - prev.pts_ns);
        }
        self.last = Some(Candidate { pts_ns: pts, image });
    }

    /// Ends the stream: appends the grid points after the last frame whose time is within half a
    /// frame interval of it (see the module documentation). Calling it again adds nothing.
    pub fn finish(&mut self, out: &mut Vec<GridFrame>) {
        let Some(last) = &self.last else { return };
        let interval = self.last_interval_ns.unwrap_or(NS_PER_S / GRID_FPS as i64) as i128;
        loop {
            let t = self.grid_point_ns(self.next_index);
            // t > last.pts here (earlier grid points were emitted by `push`).
            if 2 * (t - last.pts_ns as i128) > interval + END_TOLERANCE_NS as i128 {
                break;
            }
            out.push(GridFrame {
                index: self.next_index,
                source_pts_ns: last.pts_ns,
                image: Arc::clone(&last.image),
            });
            self.next_index += 1;
        }
    }

    /// How many frames were dropped because their timestamp did not increase.
    pub fn dropped_non_monotonic(&self) -> u64 {
        self.dropped_non_monotonic
    }

    /// The index of the next grid point to be emitted (= the number emitted so far).
    pub fn next_index(&self) -> u64 {
        self.next_index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::PixelFormat;

    fn frame(pts_ns: i64, value: u8) -> VideoFrame {
        VideoFrame {
            pts_ns,
            image: Image::filled(2, 2, PixelFormat::Gray8, value),
        }
    }

    /// Feeds frames at `i * num / den` seconds (via the shared tick conversion).
    fn run_cfr(num: u64, den: u64, n: i64) -> Vec<GridFrame> {
        let mut g = GridResampler::new(0);
        let mut out = Vec::new();
        for i in 0..n {
            g.push(frame(ticks_to_ns(i, den, num), (i % 256) as u8), &mut out);
        }
        g.finish(&mut out);
        out
    }

    #[test]
    fn ticks_to_ns_rounds_to_nearest() {
        assert_eq!(ticks_to_ns(1, 1, 30), 33_333_333);
        assert_eq!(ticks_to_ns(2, 1, 30), 66_666_667);
        assert_eq!(ticks_to_ns(1, 1001, 30000), 33_366_667);
        assert_eq!(ticks_to_ns(3, 1, 2_000_000_000), 2); // 1.5 ns rounds up
        assert_eq!(ticks_to_ns(-1, 1, 30), -33_333_333);
        assert_eq!(ticks_to_ns(5, 1, 0), 0);
        assert_eq!(ticks_to_ns(i64::MAX, 1, 1), i64::MAX);
    }

    #[test]
    fn clip_lengths_give_the_documented_frame_counts() {
        assert_eq!(run_cfr(30, 1, 300).len(), 120); // 10.0 s at 30 fps
        assert_eq!(run_cfr(15, 1, 90).len(), 72); // 6.0 s at 15 fps
        assert_eq!(run_cfr(30000, 1001, 300).len(), 120); // 10.01 s at 29.97 fps: grid 120 (10.0 s) is after 9.9766 + 0.0167
        assert_eq!(run_cfr(12, 1, 24).len(), 24);
        assert_eq!(run_cfr(6, 1, 6).len(), 12); // last half interval ends exactly on grid point 11
        assert_eq!(run_cfr(24, 1, 24).len(), 12);
    }

    #[test]
    fn thirty_fps_picks_nearest_with_ties_to_the_earlier_frame() {
        let out = run_cfr(30, 1, 30);
        let picked: Vec<u8> = out.iter().map(|g| g.image.data[0]).collect();
        // Grid k at k/12 s = frame 2.5 k; odd k is an exact tie between two frames -> the earlier.
        assert_eq!(picked, vec![0, 2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27]);
        assert!(out.iter().enumerate().all(|(i, g)| g.index == i as u64));
    }

    #[test]
    fn slow_source_shares_images() {
        // 5 fps: each source frame fills 2 or 3 grid points, without copies. Grid 11 (0.917 s)
        // is more than half an interval after the last frame (0.8 s): 11 grid frames.
        let out = run_cfr(5, 1, 5);
        assert_eq!(out.len(), 11);
        assert!(Arc::ptr_eq(&out[0].image, &out[1].image));
        assert_eq!(out[0].source_pts_ns, 0);
        assert_eq!(out[2].source_pts_ns, 200_000_000); // 166.7 ms: 200 ms is nearer than 0
    }

    #[test]
    fn emission_is_immediate_and_needs_no_lookahead() {
        let mut g = GridResampler::new(0);
        let mut out = Vec::new();
        g.push(frame(0, 0), &mut out);
        assert_eq!(out.len(), 1); // grid 0 at exactly the frame's time
        g.push(frame(50_000_000, 1), &mut out);
        assert_eq!(out.len(), 1); // grid 1 (83.3 ms) not decided yet
        g.push(frame(83_333_333, 2), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].source_pts_ns, 83_333_333);
    }

    #[test]
    fn origin_and_frames_before_it() {
        let mut g = GridResampler::new(1_000_000_000);
        let mut out = Vec::new();
        g.push(frame(900_000_000, 0), &mut out);
        g.push(frame(990_000_000, 1), &mut out);
        assert!(out.is_empty());
        g.push(frame(1_020_000_000, 2), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].index, out[0].source_pts_ns), (0, 990_000_000));
    }

    #[test]
    fn non_monotonic_frames_are_dropped_and_counted() {
        let mut g = GridResampler::new(0);
        let mut out = Vec::new();
        g.push(frame(0, 0), &mut out);
        g.push(frame(100_000_000, 1), &mut out);
        g.push(frame(100_000_000, 9), &mut out);
        g.push(frame(50_000_000, 9), &mut out);
        g.push(frame(160_000_000, 2), &mut out);
        g.finish(&mut out);
        assert_eq!(g.dropped_non_monotonic(), 2);
        assert!(out.iter().all(|f| f.image.data[0] != 9));
        assert_eq!(
            out.iter().map(|f| f.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn single_frame_and_empty_stream() {
        let mut g = GridResampler::new(0);
        let mut out = Vec::new();
        g.finish(&mut out);
        assert!(out.is_empty());
        g.push(frame(0, 0), &mut out);
        g.finish(&mut out);
        g.finish(&mut out);
        // One frame counts as 1/12 s long: grid 0 only (grid 1 is a full interval away).
        assert_eq!(out.len(), 1);
    }
}
