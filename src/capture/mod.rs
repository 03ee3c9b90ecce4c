//! Live capture from a V4L2 camera: the parts that need no device.
//!
//! What is here:
//!
//! - [`formats`]: the formats a camera offers (parsed from `v4l2-ctl --list-formats-ext`, the
//!   same facts the `VIDIOC_ENUM_FMT` / `VIDIOC_ENUM_FRAMESIZES` / `VIDIOC_ENUM_FRAMEINTERVALS`
//!   ioctls report) and [`formats::negotiate`], which picks MJPEG or YUYV at the requested size
//!   and rate, or the nearest the camera offers, and says why in one log line. A camera that
//!   offers neither (a raw Bayer CSI sensor behind `tegra-video`, an H.264-only node) is refused
//!   with the full list of what it does offer and how to feed it through a pipeline instead.
//! - [`decode`]: one captured buffer to an [`Image`](crate::media::Image): MJPEG (with the
//!   standard Huffman tables inserted when a UVC camera leaves them out, and frames that lost
//!   data in the middle caught by their restart markers) and packed YUYV 4:2:2 (luma as is, or
//!   BT.601 limited-range RGB). Bad buffers are typed errors, never panics.
//!
//! - [`video`]: live video sources stamped on the run's clock: Y4M on stdin (on arrival), files
//!   and the built-in scene paced in real time, and [`v4l2`]: a V4L2 camera through the `v4l`
//!   crate (format list from the ioctls, [`formats::negotiate`], mmap streaming with the stream
//!   timeout, driver timestamps when they are on CLOCK_MONOTONIC).
//! - [`audio`] and [`mic`]: the microphone: cpal (ALSA) input into a lock-free ring, dated and
//!   aligned on the same clock; files and the scene through the same ring.

pub mod audio;
pub mod decode;
pub mod formats;
pub mod mic;
pub mod v4l2;
pub mod video;
