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
//! What is not here yet (later work of the live-capture milestone): opening the device and
//! streaming buffers through the `v4l` crate (`S_FMT`, `S_PARM`, mmap queue), the per-buffer
//! timestamps on CLOCK_MONOTONIC, stream timeouts, reconnection after the camera is unplugged,
//! and the `VideoSource` that ties it together. Negotiation takes `&[CameraFormat]`, so the
//! device code only has to fill that list from the ioctls.

pub mod audio;
pub mod decode;
pub mod formats;
pub mod mic;
pub mod video;
