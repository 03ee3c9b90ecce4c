//! Camera formats and their negotiation.
//!
//! A camera lists pixel formats (four-character codes), for each the frame sizes it delivers
//! (discrete sizes, or a stepwise / continuous range), and for each discrete size the frame
//! rates (V4L2 lists frame *intervals*; they are kept here as rates in frames per second).
//! [`parse_list_formats_ext`] reads that list from the text of `v4l2-ctl --list-formats-ext`, in
//! the older layout (`Index : 0` / `Pixel Format: 'YUYV'` / `Name : ...`) and the newer one
//! (`[0]: 'YUYV' (YUYV 4:2:2)`). [`negotiate`] picks what to ask the camera for.
//!
//! Negotiation considers only the formats impactd decodes (MJPEG and YUYV, in the order of
//! [`Request::prefer`]) and ranks every size they offer:
//!
//! 1. the size nearest the requested one: smallest area ratio (larger / smaller), then the
//!    nearest aspect ratio, then the larger of two equally near sizes (downscaling keeps detail);
//!    a stepwise or continuous range offers the requested size clamped into it and snapped to
//!    its step;
//! 2. at that size, the rate: the requested one if offered, else the nearest rate above it (the
//!    12-fps grid needs at least 12 frames a second), else the highest rate below it; a size
//!    whose rates are not listed comes after one that reaches the requested rate and before one
//!    that cannot (impactd then asks for the requested rate and the driver picks);
//! 3. the format preference, then the order the camera listed them in.

use std::cmp::Ordering;
use std::fmt;

/// A V4L2 pixel format code (fourcc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FourCc {
    /// Motion-JPEG (`'MJPG'`): each frame a JPEG, often without Huffman tables.
    Mjpg,
    /// Packed YUV 4:2:2 (`'YUYV'`, bytes Y0 U Y1 V).
    Yuyv,
    /// Any other code, kept as its four characters (e.g. `*b"RG10"`, `*b"Y10 "`).
    Other([u8; 4]),
}

impl FourCc {
    /// The code for four characters as V4L2 writes them (`b"MJPG"`, `b"YUYV"`, ...).
    pub fn from_bytes(b: [u8; 4]) -> FourCc {
        match &b {
            b"MJPG" => FourCc::Mjpg,
            b"YUYV" => FourCc::Yuyv,
            _ => FourCc::Other(b),
        }
    }

    /// Parses exactly four ASCII characters (`"MJPG"`, `"Y10 "`); `None` otherwise.
    pub fn parse(s: &str) -> Option<FourCc> {
        let b: [u8; 4] = s.as_bytes().try_into().ok()?;
        b.iter()
            .all(|c| c.is_ascii() && !c.is_ascii_control())
            .then(|| FourCc::from_bytes(b))
    }

    /// The four characters.
    pub fn to_bytes(self) -> [u8; 4] {
        match self {
            FourCc::Mjpg => *b"MJPG",
            FourCc::Yuyv => *b"YUYV",
            FourCc::Other(b) => b,
        }
    }

    /// Whether impactd can decode frames in this format ([`crate::capture::decode`]).
    pub fn is_decodable(self) -> bool {
        matches!(self, FourCc::Mjpg | FourCc::Yuyv)
    }

    /// Whether this is a raw Bayer (colour filter array) format: a sensor whose frames need an
    /// ISP (demosaicing, white balance, ...) before they are a picture.
    pub fn is_bayer(self) -> bool {
        const BAYER: &[&[u8; 4]] = &[
            b"BA81", b"GBRG", b"GRBG", b"RGGB", // 8-bit
            b"BG10", b"GB10", b"BA10", b"RG10", // 10-bit
            b"pBAA", b"pGAA", b"pgAA", b"pRAA", // 10-bit packed
            b"bBA8", b"bGA8", b"BD10", b"bRA8", // 10-bit DPCM
            b"BG12", b"GB12", b"BA12", b"RG12", // 12-bit
            b"pBCC", b"pGCC", b"pgCC", b"pRCC", // 12-bit packed
            b"BG14", b"GB14", b"GR14", b"RG14", // 14-bit
            b"pBEE", b"pGEE", b"pgEE", b"pREE", // 14-bit packed
            b"BYR2", b"GB16", b"GR16", b"RG16", // 16-bit
        ];
        let b = self.to_bytes();
        BAYER.iter().any(|x| **x == b)
    }
}

impl fmt::Display for FourCc {
    /// The four characters, trailing spaces dropped (`Y10 ` shows as `Y10`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.to_bytes();
        let s: String = b.iter().map(|&c| c as char).collect();
        f.write_str(s.trim_end())
    }
}

/// A frame rate in frames per second, as an exact fraction (`30000/1001` for NTSC 29.97).
///
/// Always in lowest terms with a positive denominator, so `==` is numeric equality. A zero rate
/// can be built (`from_int(0)`) but negotiation refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fraction {
    num: u32,
    den: u32,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Fraction {
    /// `num / den` frames per second in lowest terms; `None` when `den` is 0.
    pub fn new(num: u32, den: u32) -> Option<Fraction> {
        if den == 0 {
            return None;
        }
        let g = gcd(num as u64, den as u64).max(1) as u32;
        Some(Fraction {
            num: num / g,
            den: den / g,
        })
    }

    /// A whole number of frames per second.
    pub const fn from_int(fps: u32) -> Fraction {
        Fraction { num: fps, den: 1 }
    }

    /// The numerator (frames).
    pub fn num(self) -> u32 {
        self.num
    }

    /// The denominator (seconds).
    pub fn den(self) -> u32 {
        self.den
    }

    /// The rate as a float.
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Parses a rate as v4l2-ctl prints it, `"30.000"` or `"7.5"` (at most three decimals):
    /// `30.000` gives 30/1, `7.500` 15/2, and a value that is an NTSC rate rounded to three
    /// decimals (`29.970`, `59.940`, `14.985`) gives the exact n*1000/1001.
    pub fn from_fps_text(s: &str) -> Option<Fraction> {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() || frac.len() > 3 {
            return None;
        }
        if !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()) {
            return None;
        }
        let int: u64 = int.parse().ok()?;
        let frac_val: u64 = if frac.is_empty() {
            0
        } else {
            frac.parse::<u64>().ok()? * 10u64.pow(3 - frac.len() as u32)
        };
        let milli = int.checked_mul(1000)?.checked_add(frac_val)?;
        if milli > u32::MAX as u64 {
            return None;
        }
        if milli % 1000 != 0 {
            // n*1000/1001 printed with three decimals?
            let n = (milli * 1001 + 500_000) / 1_000_000;
            if n > 0 && (n * 1_000_000 + 500) / 1001 == milli {
                return Fraction::new(u32::try_from(n * 1000).ok()?, 1001);
            }
        }
        Fraction::new(u32::try_from(milli).ok()?, 1000)
    }

    /// `|self - other|` as an exact ratio, for ranking.
    fn distance(self, other: Fraction) -> Ratio {
        let a = self.num as u128 * other.den as u128;
        let b = other.num as u128 * self.den as u128;
        Ratio::new(a.abs_diff(b), self.den as u128 * other.den as u128)
    }
}

impl Ord for Fraction {
    fn cmp(&self, other: &Fraction) -> Ordering {
        (self.num as u64 * other.den as u64).cmp(&(other.num as u64 * self.den as u64))
    }
}

impl PartialOrd for Fraction {
    fn partial_cmp(&self, other: &Fraction) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Fraction {
    /// `15`, `7.5`, `29.97`: whole rates as integers, others with up to three decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            return write!(f, "{}", self.num);
        }
        let s = format!("{:.3}", self.as_f64());
        f.write_str(s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// A non-negative exact ratio, compared by cross-multiplication (private: ranking only).
#[derive(Debug, Clone, Copy)]
struct Ratio {
    num: u128,
    den: u128,
}

impl Ratio {
    fn new(num: u128, den: u128) -> Ratio {
        Ratio {
            num,
            den: den.max(1),
        }
    }

    /// `max(a, b) / min(a, b)`: how far apart two positive quantities are, 1 when equal.
    fn spread(a: u128, b: u128) -> Ratio {
        Ratio::new(a.max(b), a.min(b))
    }
}

impl PartialEq for Ratio {
    fn eq(&self, other: &Ratio) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ratio {}
impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Ratio) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ratio {
    fn cmp(&self, other: &Ratio) -> Ordering {
        // Exact while the cross products fit in u128 (always, for sizes below 2^32 / 2^16
        // pixels and u32 rates); otherwise, with absurd sizes from a bad listing, as floats.
        match (
            self.num.checked_mul(other.den),
            other.num.checked_mul(self.den),
        ) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => (self.num as f64 / self.den as f64)
                .total_cmp(&(other.num as f64 / other.den as f64)),
        }
    }
}

/// A frame size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl FrameSize {
    /// A `width` x `height` size.
    pub const fn new(width: u32, height: u32) -> FrameSize {
        FrameSize { width, height }
    }

    fn area(self) -> u128 {
        self.width as u128 * self.height as u128
    }
}

impl fmt::Display for FrameSize {
    /// `640x480`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// The sizes of a stepwise or continuous frame-size entry: every `min + k * step` up to `max`,
/// in each dimension (a continuous range has step 1x1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SizeRange {
    /// Smallest size.
    pub min: FrameSize,
    /// Largest size.
    pub max: FrameSize,
    /// Step in each dimension (0 is read as 1).
    pub step: FrameSize,
}

impl SizeRange {
    /// The stand-in for a format whose sizes the camera does not list (a bare `Size: Continuous`
    /// line, or no `Size:` line at all): any size; the driver adjusts it when it is set.
    pub const UNLISTED: SizeRange = SizeRange {
        min: FrameSize::new(1, 1),
        max: FrameSize::new(u16::MAX as u32, u16::MAX as u32),
        step: FrameSize::new(1, 1),
    };

    /// The size in the range nearest `want`, dimension by dimension: clamped to `min..=max`
    /// and snapped to the step grid (halfway goes to the larger).
    pub fn nearest_to(&self, want: FrameSize) -> FrameSize {
        fn snap(want: u32, min: u32, max: u32, step: u32) -> u32 {
            let (lo, hi) = (min.min(max), min.max(max));
            let step = step.max(1) as u64;
            let w = want.clamp(lo, hi) as u64;
            let k = (w - lo as u64 + step / 2) / step;
            let v = lo as u64 + k * step;
            // Snapping up may pass `hi` when (hi - lo) is not a multiple of the step.
            let v = if v > hi as u64 { v - step } else { v };
            v.max(lo as u64) as u32
        }
        FrameSize::new(
            snap(want.width, self.min.width, self.max.width, self.step.width),
            snap(
                want.height,
                self.min.height,
                self.max.height,
                self.step.height,
            ),
        )
    }
}

impl fmt::Display for SizeRange {
    /// `16x16-16376x16376 step 1x1`, or `sizes not listed` for [`SizeRange::UNLISTED`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == SizeRange::UNLISTED {
            return f.write_str("sizes not listed");
        }
        write!(f, "{}-{} step {}", self.min, self.max, self.step)
    }
}

/// The rates of a stepwise or continuous frame-interval entry, from `min` to `max` frames/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FpsRange {
    /// Lowest rate.
    pub min: Fraction,
    /// Highest rate.
    pub max: Fraction,
}

/// One frame size of one pixel format, with the rates the camera offers at that size.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraFormat {
    /// The pixel format.
    pub fourcc: FourCc,
    /// The driver's name for the format (`YUYV 4:2:2`, `Motion-JPEG`); may be empty.
    pub description: String,
    /// Width in pixels (the largest of `size_range` when that is set).
    pub width: u32,
    /// Height in pixels (the largest of `size_range` when that is set).
    pub height: u32,
    /// Discrete rates in frames per second, in the camera's order (V4L2 frame intervals
    /// inverted). Empty when the camera lists none for this size.
    pub fps: Vec<Fraction>,
    /// A stepwise or continuous range of rates, when the camera gives one instead of (or
    /// besides) discrete rates.
    pub fps_range: Option<FpsRange>,
    /// For a stepwise or continuous size entry: the sizes it covers. `None` for a discrete size.
    pub size_range: Option<SizeRange>,
}

impl CameraFormat {
    /// A discrete size with whole-number rates, e.g. `CameraFormat::discrete(FourCc::Mjpg, 640,
    /// 480, &[30, 15])`.
    pub fn discrete(fourcc: FourCc, width: u32, height: u32, fps: &[u32]) -> CameraFormat {
        CameraFormat {
            fourcc,
            description: String::new(),
            width,
            height,
            fps: fps.iter().map(|&f| Fraction::from_int(f)).collect(),
            fps_range: None,
            size_range: None,
        }
    }

    /// The (largest) size of this entry.
    pub fn size(&self) -> FrameSize {
        FrameSize::new(self.width, self.height)
    }

    /// The sizes and rates for a log or error message: `640x480@30/15`,
    /// `16x16-16376x16376 step 1x1`, `1280x720@1-30`.
    fn sizes_and_rates(&self) -> String {
        let mut s = match &self.size_range {
            Some(r) => r.to_string(),
            None => self.size().to_string(),
        };
        let mut rates: Vec<String> = self.fps.iter().map(|f| f.to_string()).collect();
        if let Some(r) = &self.fps_range {
            rates.push(format!("{}-{}", r.min, r.max));
        }
        if !rates.is_empty() {
            s.push('@');
            s.push_str(&rates.join("/"));
        }
        s
    }
}

/// What impactd asks the camera for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Wanted width in pixels.
    pub width: u32,
    /// Wanted height in pixels.
    pub height: u32,
    /// Wanted rate in frames per second (the engine's grid is 12 fps: at least that).
    pub fps: Fraction,
    /// Formats to use, most preferred first. Only MJPEG and YUYV can be decoded; other codes
    /// are ignored, and a list without either means the default `[Mjpg, Yuyv]`.
    pub prefer: Vec<FourCc>,
}

impl Request {
    /// A request for `width` x `height` at `fps`, preferring MJPEG, then YUYV (MJPEG fits
    /// high rates through USB 2 bandwidth; YUYV needs no decoding).
    pub fn new(width: u32, height: u32, fps: Fraction) -> Request {
        Request {
            width,
            height,
            fps,
            prefer: vec![FourCc::Mjpg, FourCc::Yuyv],
        }
    }

    fn size(&self) -> FrameSize {
        FrameSize::new(self.width, self.height)
    }

    /// The decodable formats of `prefer`, in order, without repeats (default when none).
    fn effective_prefer(&self) -> Vec<FourCc> {
        let mut out: Vec<FourCc> = Vec::new();
        for f in &self.prefer {
            if f.is_decodable() && !out.contains(f) {
                out.push(*f);
            }
        }
        if out.is_empty() {
            out = vec![FourCc::Mjpg, FourCc::Yuyv];
        }
        out
    }
}

/// How the chosen size relates to the requested one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeMatch {
    /// The requested size (listed, or inside a stepwise / continuous range).
    Exact,
    /// The nearest size the camera offers.
    Nearest,
    /// The camera lists no sizes for the format: the requested size is asked for as is.
    Unlisted,
}

/// How the chosen rate relates to the requested one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateMatch {
    /// The requested rate (listed, or inside a listed range).
    Exact,
    /// The lowest offered rate above the requested one.
    NearestAbove,
    /// No rate reaches the requested one: the highest offered.
    HighestBelow,
    /// The camera lists no rates at this size: the requested rate is asked for as is.
    Unlisted,
}

/// The outcome of [`negotiate`]: what to ask the camera for, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The pixel format (MJPEG or YUYV).
    pub fourcc: FourCc,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Rate in frames per second.
    pub fps: Fraction,
    /// How the size relates to the request.
    pub size_match: SizeMatch,
    /// How the rate relates to the request.
    pub rate_match: RateMatch,
    /// One line for the log: `asked 640x480@12, chose MJPG 640x480@15 (nearest rate)`.
    pub summary: String,
}

impl fmt::Display for Choice {
    /// The [`summary`](Choice::summary) line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary)
    }
}

/// Why negotiation found nothing to ask for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NegotiationError {
    /// The request itself is unusable (a zero width, height or rate).
    #[error("bad capture request {width}x{height}@{fps}: width, height and rate must be positive")]
    BadRequest {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Requested rate.
        fps: Fraction,
    },
    /// The camera lists no formats at all.
    #[error(
        "the camera lists no video capture formats (is this the output of `v4l2-ctl --list-formats-ext` for a capture device?)"
    )]
    NoFormats,
    /// None of the formats is one impactd decodes; `supported` lists every one the camera
    /// offers, with its sizes and rates, and `hint` says what to do instead.
    #[error(
        "the camera offers neither MJPG nor YUYV, the formats impactd decodes; it supports: {}. {hint}",
        supported.join("; ")
    )]
    NoUsableFormat {
        /// Every format the camera offers: `RG10 (10-bit Bayer RGRG/GBGB): 3264x2464@21, ...`.
        supported: Vec<String>,
        /// What to do instead.
        hint: String,
    },
}

/// Every format in `available` with its sizes and rates, one string per format, in the camera's
/// order: `YUYV (YUYV 4:2:2): 640x480@30/15, 320x240@30`.
pub fn describe_formats(available: &[CameraFormat]) -> Vec<String> {
    let mut out: Vec<(FourCc, String, Vec<String>)> = Vec::new();
    for f in available {
        match out.last_mut() {
            Some((fcc, desc, sizes)) if *fcc == f.fourcc && *desc == f.description => {
                sizes.push(f.sizes_and_rates())
            }
            _ => out.push((f.fourcc, f.description.clone(), vec![f.sizes_and_rates()])),
        }
    }
    out.into_iter()
        .map(|(fcc, desc, sizes)| {
            let name = if desc.is_empty() {
                fcc.to_string()
            } else {
                format!("{fcc} ({desc})")
            };
            format!("{name}: {}", sizes.join(", "))
        })
        .collect()
}

/// The hint of [`NegotiationError::NoUsableFormat`] for a camera that offers these formats.
fn no_usable_hint(available: &[CameraFormat]) -> String {
    if available.iter().any(|f| f.fourcc.is_bayer()) {
        "These are raw Bayer sensor formats (e.g. a Jetson CSI camera through the tegra-video \
         driver): the frames need the ISP, which V4L2 capture bypasses. Capture through \
         GStreamer instead and pass the video to impactd as Y4M on stdin with `--video -`, e.g. \
         `gst-launch-1.0 -q nvarguscamerasrc ! 'video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1' \
         ! nvvidconv ! 'video/x-raw,format=I420' ! y4menc ! fdsink fd=1 | impactd ... --video -`."
            .to_string()
    } else {
        "Convert the stream with a GStreamer or ffmpeg pipeline and pass it to impactd as Y4M on \
         stdin with `--video -`, or use another /dev/video node of the same camera."
            .to_string()
    }
}

/// Rate class for ranking: reaching the request beats not knowing, which beats falling short.
fn rate_class(m: RateMatch) -> u8 {
    match m {
        RateMatch::Exact | RateMatch::NearestAbove => 0,
        RateMatch::Unlisted => 1,
        RateMatch::HighestBelow => 2,
    }
}

/// The best rate of one entry for the requested rate.
fn choose_rate(f: &CameraFormat, want: Fraction) -> (Fraction, RateMatch) {
    let listed = f.fps.iter().copied().filter(|r| r.num() > 0);
    let range = f.fps_range.filter(|r| r.max.num() > 0);
    if listed.clone().any(|r| r == want) || range.is_some_and(|r| r.min <= want && want <= r.max) {
        return (want, RateMatch::Exact);
    }
    let above = listed
        .clone()
        .filter(|&r| r > want)
        .chain(range.map(|r| r.min).filter(|&r| r > want))
        .min();
    if let Some(r) = above {
        return (r, RateMatch::NearestAbove);
    }
    let below = listed
        .filter(|&r| r < want)
        .chain(range.map(|r| r.max).filter(|&r| r < want))
        .max();
    match below {
        Some(r) => (r, RateMatch::HighestBelow),
        None => (want, RateMatch::Unlisted),
    }
}

/// A ranked candidate; smaller keys are better.
struct Candidate {
    fourcc: FourCc,
    size: FrameSize,
    size_match: SizeMatch,
    fps: Fraction,
    rate_match: RateMatch,
    /// Area spread, aspect spread, larger area first.
    size_key: (Ratio, Ratio, std::cmp::Reverse<u128>),
    /// Rate class, distance from the request.
    rate_key: (u8, Ratio),
    pref: usize,
    order: usize,
}

impl Candidate {
    fn cmp_rank(&self, other: &Candidate) -> Ordering {
        self.size_key
            .cmp(&other.size_key)
            .then_with(|| self.rate_key.cmp(&other.rate_key))
            .then(self.pref.cmp(&other.pref))
            .then(self.order.cmp(&other.order))
    }
}

/// Picks a format, size and rate from what the camera offers (see the module docs for the
/// ranking). Fails when the request is unusable, the list is empty, or the camera offers no
/// format impactd decodes (the error lists every format it does offer).
pub fn negotiate(available: &[CameraFormat], req: &Request) -> Result<Choice, NegotiationError> {
    if req.width == 0 || req.height == 0 || req.fps.num() == 0 {
        return Err(NegotiationError::BadRequest {
            width: req.width,
            height: req.height,
            fps: req.fps,
        });
    }
    if available.is_empty() {
        return Err(NegotiationError::NoFormats);
    }
    let prefer = req.effective_prefer();
    let want = req.size();
    let mut best: Option<Candidate> = None;
    for (order, f) in available.iter().enumerate() {
        let Some(pref) = prefer.iter().position(|p| *p == f.fourcc) else {
            continue;
        };
        let (size, size_match) = match &f.size_range {
            Some(r) if *r == SizeRange::UNLISTED => (want, SizeMatch::Unlisted),
            Some(r) => {
                let s = r.nearest_to(want);
                (
                    s,
                    if s == want {
                        SizeMatch::Exact
                    } else {
                        SizeMatch::Nearest
                    },
                )
            }
            None => {
                let s = f.size();
                (
                    s,
                    if s == want {
                        SizeMatch::Exact
                    } else {
                        SizeMatch::Nearest
                    },
                )
            }
        };
        if size.width == 0 || size.height == 0 {
            continue;
        }
        let (fps, rate_match) = choose_rate(f, req.fps);
        let aspect = Ratio::spread(
            size.width as u128 * want.height as u128,
            want.width as u128 * size.height as u128,
        );
        let cand = Candidate {
            fourcc: f.fourcc,
            size,
            size_match,
            fps,
            rate_match,
            size_key: (
                Ratio::spread(size.area(), want.area()),
                aspect,
                std::cmp::Reverse(size.area()),
            ),
            rate_key: (rate_class(rate_match), fps.distance(req.fps)),
            pref,
            order,
        };
        if best
            .as_ref()
            .is_none_or(|b| cand.cmp_rank(b) == Ordering::Less)
        {
            best = Some(cand);
        }
    }
    let Some(c) = best else {
        return Err(NegotiationError::NoUsableFormat {
            supported: describe_formats(available),
            hint: no_usable_hint(available),
        });
    };

    let mut why: Vec<String> = Vec::new();
    match c.size_match {
        SizeMatch::Exact => {}
        SizeMatch::Nearest => why.push("nearest size".into()),
        SizeMatch::Unlisted => why.push("sizes not listed".into()),
    }
    match c.rate_match {
        RateMatch::Exact => {}
        RateMatch::NearestAbove => why.push("nearest rate".into()),
        RateMatch::HighestBelow => why.push(format!("highest rate, below {}", req.fps)),
        RateMatch::Unlisted => why.push("rates not listed".into()),
    }
    let first = prefer[0];
    if c.fourcc != first {
        if available.iter().any(|f| f.fourcc == first) {
            why.push(format!("better match than {first}"));
        } else {
            why.push(format!("no {first}"));
        }
    }
    if why.is_empty() {
        why.push("exact".into());
    }
    let summary = format!(
        "asked {want}@{}, chose {} {}@{} ({})",
        req.fps,
        c.fourcc,
        c.size,
        c.fps,
        why.join(", ")
    );
    Ok(Choice {
        fourcc: c.fourcc,
        width: c.size.width,
        height: c.size.height,
        fps: c.fps,
        size_match: c.size_match,
        rate_match: c.rate_match,
        summary,
    })
}

/// A line of `v4l2-ctl --list-formats-ext` output that could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("v4l2-ctl --list-formats-ext output, line {line}: {reason}: {text:?}")]
pub struct ParseError {
    /// 1-based line number in the text.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
    /// The line, trimmed.
    pub text: String,
}

/// The format whose `Size:` and `Interval:` lines are being read.
struct Current {
    fourcc: FourCc,
    description: String,
    /// Index in the output of this format's first entry, once it has one.
    first_entry: Option<usize>,
}

/// Known flag words v4l2-ctl appends to a format description in the newer layout
/// (`'MJPG' (Motion-JPEG, compressed)`).
const FMT_FLAGS: &[&str] = &[
    "compressed",
    "emulated",
    "continuous-bytestream",
    "dyn-resolution",
    "enc-cap-frame-interval",
    "csc-colorspace",
    "csc-ycbcr",
    "csc-hsv",
    "csc-quantization",
    "csc-xfer-func",
    "meta-line-based",
];

/// Parses the text of `v4l2-ctl --list-formats-ext` (also with `--all` or `-D` output around
/// it: reading starts after the `ioctl: VIDIOC_ENUM_FMT` line when there is one) into one
/// [`CameraFormat`] per format and size, in the camera's order. A format listed without sizes
/// gets one entry with [`SizeRange::UNLISTED`]. Lines it does not know are skipped; a `Size:`
/// or `Interval:` line it cannot read, or one outside a format, is an error naming the line.
pub fn parse_list_formats_ext(text: &str) -> Result<Vec<CameraFormat>, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with("ioctl: VIDIOC_ENUM_FMT"))
        .map_or(0, |i| i + 1);
    let mut out: Vec<CameraFormat> = Vec::new();
    let mut cur: Option<Current> = None;
    // In the older layout a format starts with `Index : N`; a `Pixel Format :` line without one
    // is the current format of `--all` output, not a listed one.
    let mut saw_index = false;
    for (i, raw) in lines.iter().enumerate().skip(start) {
        let line = raw.trim();
        let err = |reason: &str| ParseError {
            line: i + 1,
            reason: reason.to_string(),
            text: line.to_string(),
        };
        if old_layout_field(line, "Index").is_some() {
            saw_index = true;
        } else if let Some((fourcc, description)) =
            parse_format_header(line, saw_index).map_err(|r| err(&r))?
        {
            saw_index = false;
            finish_format(&mut out, cur.take());
            cur = Some(Current {
                fourcc,
                description,
                first_entry: None,
            });
        } else if let Some(name) = old_layout_field(line, "Name") {
            if let Some(c) = cur.as_mut() {
                c.description = name.to_string();
                if let Some(first) = c.first_entry {
                    for e in &mut out[first..] {
                        e.description = name.to_string();
                    }
                }
            }
        } else if let Some(rest) = line.strip_prefix("Size:") {
            let c = cur
                .as_mut()
                .ok_or_else(|| err("a frame size before any pixel format"))?;
            let (size, range) = parse_size(rest.trim()).map_err(|r| err(&r))?;
            c.first_entry.get_or_insert(out.len());
            out.push(CameraFormat {
                fourcc: c.fourcc,
                description: c.description.clone(),
                width: size.width,
                height: size.height,
                fps: Vec::new(),
                fps_range: None,
                size_range: range,
            });
        } else if let Some(rest) = line.strip_prefix("Interval:") {
            let entry = match cur.as_ref().and_then(|c| c.first_entry) {
                Some(_) => out.last_mut(),
                None => None,
            }
            .ok_or_else(|| err("a frame interval before any frame size"))?;
            match parse_interval(rest.trim()).map_err(|r| err(&r))? {
                Interval::Discrete(f) => entry.fps.push(f),
                Interval::Range(r) => entry.fps_range = Some(r),
            }
        }
        // Anything else (Index, Type, blank lines, a second ioctl header, prompts) is skipped.
    }
    finish_format(&mut out, cur.take());
    Ok(out)
}

/// Adds the "sizes not listed" entry for a format that had no `Size:` line.
fn finish_format(out: &mut Vec<CameraFormat>, cur: Option<Current>) {
    if let Some(c) = cur.filter(|c| c.first_entry.is_none()) {
        let max = SizeRange::UNLISTED.max;
        out.push(CameraFormat {
            fourcc: c.fourcc,
            description: c.description,
            width: max.width,
            height: max.height,
            fps: Vec::new(),
            fps_range: None,
            size_range: Some(SizeRange::UNLISTED),
        });
    }
}

/// `Key   : value` of the older layout (any spaces before the colon); the value, trimmed.
fn old_layout_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?;
    let rest = rest.trim_start().strip_prefix(':')?;
    Some(rest.trim())
}

/// Reads `'XXXX'` (or `'XXXX-BE'`) at the start of `s`: the code and what follows.
fn quoted_fourcc(s: &str) -> Result<(FourCc, &str), String> {
    let inner = s
        .strip_prefix('\'')
        .ok_or_else(|| "expected a quoted pixel format".to_string())?;
    let end = inner
        .find('\'')
        .ok_or_else(|| "unterminated pixel format quote".to_string())?;
    let code = &inner[..end];
    let code = code.strip_suffix("-BE").unwrap_or(code);
    let fcc = FourCc::parse(code)
        .ok_or_else(|| format!("pixel format {code:?} is not four characters"))?;
    Ok((fcc, &inner[end + 1..]))
}

/// A format header line: `[0]: 'YUYV' (YUYV 4:2:2)` (newer layout) or `Pixel Format: 'MJPG'
/// (compressed)` after an `Index` line (older layout, the name follows on a `Name` line).
/// `Ok(None)` for other lines.
fn parse_format_header(line: &str, saw_index: bool) -> Result<Option<(FourCc, String)>, String> {
    if let Some(rest) = line.strip_prefix('[') {
        let Some((idx, rest)) = rest.split_once("]:") else {
            return Ok(None);
        };
        if idx.is_empty() || !idx.bytes().all(|c| c.is_ascii_digit()) {
            return Ok(None);
        }
        let (fcc, rest) = quoted_fourcc(rest.trim())?;
        let rest = rest.trim();
        let mut desc = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or(rest)
            .to_string();
        // Drop the flags v4l2-ctl appends: "Motion-JPEG, compressed" -> "Motion-JPEG".
        while let Some((head, tail)) = desc.rsplit_once(", ") {
            if FMT_FLAGS.contains(&tail.trim()) {
                desc = head.to_string();
            } else {
                break;
            }
        }
        return Ok(Some((fcc, desc)));
    }
    if let Some(value) = old_layout_field(line, "Pixel Format").filter(|_| saw_index) {
        let (fcc, _flags) = quoted_fourcc(value)?;
        return Ok(Some((fcc, String::new())));
    }
    Ok(None)
}

/// `640x480` -> the size.
fn parse_wxh(s: &str) -> Result<FrameSize, String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, found {s:?}"))?;
    let num = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("expected WIDTHxHEIGHT, found {s:?}"))
    };
    Ok(FrameSize::new(num(w)?, num(h)?))
}

/// The part after `Size:`: `Discrete 640x480`, `Stepwise 16x16 - 16376x16376 with step 1/1`,
/// `Continuous 16x16 - 4096x4096` or a bare `Continuous`.
fn parse_size(rest: &str) -> Result<(FrameSize, Option<SizeRange>), String> {
    let (kind, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let args = args.trim();
    match kind {
        "Discrete" => {
            let s = parse_wxh(args)?;
            if s.width == 0 || s.height == 0 {
                return Err("a zero frame size".into());
            }
            Ok((s, None))
        }
        "Stepwise" | "Continuous" => {
            if args.is_empty() {
                return Ok((SizeRange::UNLISTED.max, Some(SizeRange::UNLISTED)));
            }
            let (span, step) = match args.split_once("with step") {
                Some((span, step)) => (span.trim(), Some(step.trim())),
                None => (args, None),
            };
            let (lo, hi) = span
                .split_once(" - ")
                .ok_or_else(|| format!("expected MIN - MAX, found {span:?}"))?;
            let (min, max) = (parse_wxh(lo)?, parse_wxh(hi)?);
            let step = match step {
                Some(st) => {
                    let (sw, sh) = st
                        .split_once('/')
                        .ok_or_else(|| format!("expected STEPW/STEPH, found {st:?}"))?;
                    let n = |t: &str| {
                        t.trim()
                            .parse::<u32>()
                            .map_err(|_| format!("expected STEPW/STEPH, found {st:?}"))
                    };
                    FrameSize::new(n(sw)?, n(sh)?)
                }
                None => FrameSize::new(1, 1),
            };
            if max.width == 0 || max.height == 0 {
                return Err("a zero frame size".into());
            }
            Ok((max, Some(SizeRange { min, max, step })))
        }
        _ => Err(format!("unknown frame size type {kind:?}")),
    }
}

/// One `Interval:` line.
enum Interval {
    Discrete(Fraction),
    Range(FpsRange),
}

/// The part after `Interval:`: `Discrete 0.033s (30.000 fps)`, `Stepwise 0.033s - 1.000s with
/// step 0.033s (1.000-30.000 fps)` or `Continuous 0.033s - 1.000s (1.000-30.000 fps)`. The rates
/// are read from the parenthesis (v4l2-ctl prints them with three decimals).
fn parse_interval(rest: &str) -> Result<Interval, String> {
    let (kind, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let open = args
        .rfind('(')
        .ok_or_else(|| "expected the rate in parentheses, e.g. (30.000 fps)".to_string())?;
    let inner = args[open + 1..]
        .strip_suffix(')')
        .and_then(|s| s.trim().strip_suffix("fps"))
        .ok_or_else(|| "expected the rate in parentheses, e.g. (30.000 fps)".to_string())?
        .trim();
    let rate = |t: &str| {
        let f = Fraction::from_fps_text(t.trim()).ok_or_else(|| format!("bad rate {t:?}"))?;
        if f.num() == 0 {
            return Err(format!("zero rate {t:?}"));
        }
        Ok(f)
    };
    match kind {
        "Discrete" => Ok(Interval::Discrete(rate(inner)?)),
        "Stepwise" | "Continuous" => {
            let (a, b) = inner
                .split_once('-')
                .ok_or_else(|| format!("expected MIN-MAX rates, found {inner:?}"))?;
            let (a, b) = (rate(a)?, rate(b)?);
            Ok(Interval::Range(FpsRange {
                min: a.min(b),
                max: a.max(b),
            }))
        }
        _ => Err(format!("unknown frame interval type {kind:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr(n: u32, d: u32) -> Fraction {
        Fraction::new(n, d).expect("nonzero denominator")
    }

    #[test]
    fn fractions_from_v4l2_ctl_text() {
        assert_eq!(Fraction::from_fps_text("30.000"), Some(fr(30, 1)));
        assert_eq!(Fraction::from_fps_text("7.500"), Some(fr(15, 2)));
        assert_eq!(Fraction::from_fps_text("29.970"), Some(fr(30000, 1001)));
        assert_eq!(Fraction::from_fps_text("59.940"), Some(fr(60000, 1001)));
        assert_eq!(Fraction::from_fps_text("23.976"), Some(fr(24000, 1001)));
        assert_eq!(Fraction::from_fps_text("12.500"), Some(fr(25, 2)));
        assert_eq!(Fraction::from_fps_text("5"), Some(fr(5, 1)));
        assert_eq!(Fraction::from_fps_text("inf"), None);
        assert_eq!(Fraction::from_fps_text("1.2345"), None);
        assert_eq!(Fraction::from_fps_text(""), None);
        assert_eq!(Fraction::from_fps_text("-5.000"), None);
        assert_eq!(Fraction::from_fps_text("99999999999999999999.5"), None);
        assert_eq!(Fraction::from_fps_text("4294967.296"), None);
        assert_eq!(fr(30000, 1001).to_string(), "29.97");
        assert_eq!(fr(15, 2).to_string(), "7.5");
        assert_eq!(fr(60, 2).to_string(), "30");
        assert!(fr(15, 2) < fr(8, 1));
        assert_eq!(Fraction::new(1, 0), None);
    }

    #[test]
    fn fourcc_round_trip_and_kinds() {
        assert_eq!(FourCc::parse("MJPG"), Some(FourCc::Mjpg));
        assert_eq!(FourCc::parse("YUYV"), Some(FourCc::Yuyv));
        assert_eq!(FourCc::parse("Y10 "), Some(FourCc::Other(*b"Y10 ")));
        assert_eq!(FourCc::parse("Y10"), None);
        assert_eq!(FourCc::Other(*b"Y10 ").to_string(), "Y10");
        assert!(FourCc::Other(*b"RG10").is_bayer());
        assert!(!FourCc::Other(*b"GREY").is_bayer());
        assert!(!FourCc::Other(*b"H264").is_decodable());
    }

    #[test]
    fn size_range_snaps_into_range_and_step() {
        let r = SizeRange {
            min: FrameSize::new(16, 16),
            max: FrameSize::new(1000, 1000),
            step: FrameSize::new(8, 2),
        };
        assert_eq!(
            r.nearest_to(FrameSize::new(640, 480)),
            FrameSize::new(640, 480)
        );
        assert_eq!(
            r.nearest_to(FrameSize::new(643, 481)),
            FrameSize::new(640, 482)
        );
        assert_eq!(
            r.nearest_to(FrameSize::new(5000, 1)),
            FrameSize::new(1000, 16)
        );
        // (1000 - 16) is a multiple of 8; a range whose max is off the grid stays inside.
        let odd = SizeRange {
            min: FrameSize::new(10, 10),
            max: FrameSize::new(21, 21),
            step: FrameSize::new(4, 4),
        };
        assert_eq!(
            odd.nearest_to(FrameSize::new(21, 21)),
            FrameSize::new(18, 18)
        );
    }

    #[test]
    fn synthetic_stepwise_and_continuous_lines() {
        // Written for this test (no real camera output with these interval types at hand):
        // the line formats are those of v4l2-ctl's print_frmsize / print_frmival.
        let text = "ioctl: VIDIOC_ENUM_FMT\n\tType: Video Capture\n\n\
            \t[0]: 'YUYV' (YUYV 4:2:2)\n\
            \t\tSize: Discrete 640x480\n\
            \t\t\tInterval: Continuous 0.033s - 1.000s (1.000-30.000 fps)\n\
            \t\tSize: Discrete 1280x720\n\
            \t\t\tInterval: Stepwise 0.100s - 1.000s with step 0.100s (1.000-10.000 fps)\n\
            \t[1]: 'MJPG' (Motion-JPEG, compressed)\n\
            \t\tSize: Continuous 16x16 - 1920x1080\n\
            \t[2]: 'GREY' (8-bit Greyscale)\n\
            \t\tSize: Continuous\n\
            \t[3]: 'AR15-BE' (16-bit ARGB 1-5-5-5 BE)\n";
        let f = parse_list_formats_ext(text).expect("parses");
        assert_eq!(f.len(), 5);
        assert_eq!(
            f[0].fps_range,
            Some(FpsRange {
                min: fr(1, 1),
                max: fr(30, 1)
            })
        );
        assert_eq!(f[1].fps_range.map(|r| r.max), Some(fr(10, 1)));
        assert_eq!(
            f[2].size_range,
            Some(SizeRange {
                min: FrameSize::new(16, 16),
                max: FrameSize::new(1920, 1080),
                step: FrameSize::new(1, 1)
            })
        );
        assert_eq!(f[2].description, "Motion-JPEG");
        assert_eq!(f[3].size_range, Some(SizeRange::UNLISTED));
        assert_eq!(f[4].fourcc, FourCc::Other(*b"AR15"));
        assert_eq!(f[4].size_range, Some(SizeRange::UNLISTED));

        // 640x480@12 lies inside the continuous interval range: exact.
        let c = negotiate(&f[..2], &Request::new(640, 480, fr(12, 1))).expect("usable");
        assert_eq!((c.fps, c.rate_match), (fr(12, 1), RateMatch::Exact));
        // MJPEG's continuous size range covers 800x600 exactly; its rates are not listed, so
        // YUYV 640x480@12 (nearest size, rate reached) and MJPG 800x600 (exact size, rate
        // unknown) compete: size comes first.
        let c = negotiate(&f, &Request::new(800, 600, fr(12, 1))).expect("usable");
        assert_eq!(
            c.summary,
            "asked 800x600@12, chose MJPG 800x600@12 (rates not listed)"
        );
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = parse_list_formats_ext("\t[0]: 'YUYV' (YUYV 4:2:2)\n\t\tSize: Discrete 640by480\n")
            .expect_err("bad size");
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("640by480"), "{e}");
        let e = parse_list_formats_ext("\t\tSize: Discrete 640x480\n").expect_err("orphan size");
        assert!(e.reason.contains("before any pixel format"), "{e}");
        let e = parse_list_formats_ext("\t[0]: 'YUYV' (x)\n\t\t\tInterval: Discrete 0.033s\n")
            .expect_err("orphan interval");
        assert!(e.reason.contains("before any frame size"), "{e}");
        let e = parse_list_formats_ext(
            "\t[0]: 'YUYV' (x)\n\t\tSize: Discrete 1x1\n\t\t\tInterval: Discrete 0s (inf fps)\n",
        )
        .expect_err("inf");
        assert!(e.reason.contains("bad rate"), "{e}");
        let e = parse_list_formats_ext("\t[0]: 'YUYVX' (x)\n").expect_err("5 chars");
        assert!(e.reason.contains("not four characters"), "{e}");
        assert_eq!(parse_list_formats_ext("").map(|v| v.len()), Ok(0));
        assert_eq!(
            parse_list_formats_ext("garbage\nmore\n").map(|v| v.len()),
            Ok(0)
        );
    }

    #[test]
    fn bad_requests_and_empty_lists() {
        let f = vec![CameraFormat::discrete(FourCc::Yuyv, 640, 480, &[30])];
        assert!(matches!(
            negotiate(&f, &Request::new(0, 480, fr(12, 1))),
            Err(NegotiationError::BadRequest { .. })
        ));
        assert!(matches!(
            negotiate(&f, &Request::new(640, 480, Fraction::from_int(0))),
            Err(NegotiationError::BadRequest { .. })
        ));
        assert_eq!(
            negotiate(&[], &Request::new(640, 480, fr(12, 1))),
            Err(NegotiationError::NoFormats)
        );
    }

    #[test]
    fn rate_beats_format_preference_and_preference_breaks_ties() {
        let mj = |fps: &[u32]| CameraFormat::discrete(FourCc::Mjpg, 640, 480, fps);
        let yu = |fps: &[u32]| CameraFormat::discrete(FourCc::Yuyv, 640, 480, fps);
        let req = Request::new(640, 480, fr(12, 1));
        // MJPEG only below 12 fps, YUYV reaches it: the rate wins.
        let c = negotiate(&[mj(&[5]), yu(&[30])], &req).expect("usable");
        assert_eq!((c.fourcc, c.fps), (FourCc::Yuyv, fr(30, 1)));
        assert_eq!(
            c.summary,
            "asked 640x480@12, chose YUYV 640x480@30 (nearest rate, better match than MJPG)"
        );
        // Same rates: MJPEG, as preferred; YUYV when the request prefers it.
        let both = [yu(&[30, 15]), mj(&[30, 15])];
        assert_eq!(negotiate(&both, &req).map(|c| c.fourcc), Ok(FourCc::Mjpg));
        let mut yuyv_first = req.clone();
        yuyv_first.prefer = vec![FourCc::Other(*b"H264"), FourCc::Yuyv, FourCc::Mjpg];
        assert_eq!(
            negotiate(&both, &yuyv_first).map(|c| c.fourcc),
            Ok(FourCc::Yuyv)
        );
        // Nothing reaches the rate: the highest below.
        let c = negotiate(&[yu(&[5, 10, 7])], &req).expect("usable");
        assert_eq!((c.fps, c.rate_match), (fr(10, 1), RateMatch::HighestBelow));
        assert_eq!(
            c.summary,
            "asked 640x480@12, chose YUYV 640x480@10 (highest rate, below 12, no MJPG)"
        );
    }

    #[test]
    fn size_ranks_by_area_then_aspect_then_larger() {
        let s = |w, h| CameraFormat::discrete(FourCc::Yuyv, w, h, &[30]);
        let req = Request::new(640, 480, fr(12, 1));
        // 800x600 (1.5625x the area) beats 320x240 (4x smaller).
        let c = negotiate(&[s(320, 240), s(800, 600)], &req).expect("usable");
        assert_eq!((c.width, c.height), (800, 600));
        // Same area (307200): 4:3 beats 16:9.
        let c = negotiate(&[s(768, 400), s(640, 480)], &req).expect("usable");
        assert_eq!((c.width, c.height), (640, 480));
        // 1280x960 (4x) and 320x240 (1/4x) are equally far: the larger wins.
        let c = negotiate(&[s(320, 240), s(1280, 960)], &req).expect("usable");
        assert_eq!(
            (c.width, c.height, c.size_match),
            (1280, 960, SizeMatch::Nearest)
        );
        // Absurd sizes and rates from a bad listing rank without overflowing.
        let mut huge = s(u32::MAX, u32::MAX);
        huge.fps = vec![fr(u32::MAX, 1), fr(1, u32::MAX)];
        let req = Request::new(u32::MAX, 1, fr(1, u32::MAX - 1));
        let c = negotiate(&[huge, s(1, u32::MAX)], &req).expect("usable");
        // Same area as the request (2^32 pixels) beats 2^32 times larger.
        assert_eq!((c.width, c.height), (1, u32::MAX));
    }
}
