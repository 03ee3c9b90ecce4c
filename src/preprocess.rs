//! Frame preprocessing per the model sidecar: resize, colour, normalisation.
//!
//! Output is one frame as `f32` planes in CHW order at the model's size; the predictor arranges
//! frames into the sidecar's layout. Resizing uses `fast_image_resize` with a box filter (area
//! average), which is what a downscale to a small model input wants and what is easy to match in
//! numpy when training.

use fast_image_resize::{
    FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image as FirImage,
    images::ImageRef,
};

use crate::media::{Image, PixelFormat};
use crate::model::{Colour, SidecarInput};

/// The pixel format a model's colour needs from the sources.
pub fn source_format(colour: Colour) -> PixelFormat {
    match colour {
        Colour::Rgb => PixelFormat::Rgb8,
        Colour::Gray | Colour::GrayDiff => PixelFormat::Gray8,
    }
}

/// Turns decoded frames into normalised model input planes.
pub struct Preprocessor {
    width: u32,
    height: u32,
    colour: Colour,
    scale: f32,
    mean: Vec<f32>,
    std: Vec<f32>,
    resizer: Resizer,
    options: ResizeOptions,
    /// Resized 8-bit frame (reused).
    resized: FirImage<'static>,
    /// Converted source when its format differs from what the model needs.
    converted: Vec<u8>,
    /// Previous frame's gray values / scale, for `gray-diff`.
    previous: Option<Vec<f32>>,
}

impl Preprocessor {
    pub fn new(input: &SidecarInput) -> Preprocessor {
        let pixel = match input.colour {
            Colour::Rgb => PixelType::U8x3,
            _ => PixelType::U8,
        };
        Preprocessor {
            width: input.width,
            height: input.height,
            colour: input.colour,
            scale: input.scale,
            mean: input.mean.clone(),
            std: input.std.clone(),
            resizer: Resizer::new(),
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box)),
            resized: FirImage::new(input.width, input.height, pixel),
            converted: Vec::new(),
            previous: None,
        }
    }

    /// Values per frame: channels * height * width.
    pub fn frame_len(&self) -> usize {
        self.colour.channels() * self.width as usize * self.height as usize
    }

    /// Forgets the previous frame (`gray-diff` starts again from zero).
    pub fn reset(&mut self) {
        self.previous = None;
    }

    /// Preprocesses one frame into `out` (cleared first), CHW order.
    pub fn process(&mut self, image: &Image, out: &mut Vec<f32>) {
        let want = source_format(self.colour);
        let src: &[u8] = if image.format == want {
            &image.data
        } else {
            convert(image, want, &mut self.converted);
            &self.converted
        };
        let pixel = self.resized.pixel_type();
        let (w, h) = (self.width as usize, self.height as usize);
        if image.width == self.width && image.height == self.height {
            self.resized
                .buffer_mut()
                .copy_from_slice(&src[..w * h * pixel.size()]);
        } else {
            // Sizes are checked by the sources (non-zero, buffer length), so this cannot fail.
            let src_ref = ImageRef::new(image.width, image.height, src, pixel)
                .expect("image buffer matches its size");
            self.resizer
                .resize(&src_ref, &mut self.resized, &self.options)
                .expect("same pixel type");
        }
        let px = self.resized.buffer();
        out.clear();
        out.resize(self.frame_len(), 0.0);
        let inv = 1.0 / self.scale;
        match self.colour {
            Colour::Gray => {
                let (m, s) = (self.mean[0], 1.0 / self.std[0]);
                for (o, &p) in out.iter_mut().zip(px) {
                    *o = (p as f32 * inv - m) * s;
                }
            }
            Colour::GrayDiff => {
                let cur: Vec<f32> = px.iter().map(|&p| p as f32 * inv).collect();
                let (m, s) = (self.mean[0], 1.0 / self.std[0]);
                match &self.previous {
                    Some(prev) => {
                        for ((o, c), p) in out.iter_mut().zip(&cur).zip(prev) {
                            *o = (c - p - m) * s;
                        }
                    }
                    None => out.iter_mut().for_each(|o| *o = (0.0 - m) * s),
                }
                self.previous = Some(cur);
            }
            Colour::Rgb => {
                let plane = w * h;
                for c in 0..3 {
                    let (m, s) = (self.mean[c], 1.0 / self.std[c]);
                    let dst = &mut out[c * plane..(c + 1) * plane];
                    for (i, o) in dst.iter_mut().enumerate() {
                        *o = (px[i * 3 + c] as f32 * inv - m) * s;
                    }
                }
            }
        }
    }
}

/// Converts between gray and RGB (BT.601 luma; gray replicated to RGB).
fn convert(image: &Image, want: PixelFormat, out: &mut Vec<u8>) {
    out.clear();
    match (image.format, want) {
        (PixelFormat::Rgb8, PixelFormat::Gray8) => {
            out.extend(image.data.chunks_exact(3).map(|p| {
                ((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32 + 128) >> 8) as u8
            }))
        }
        (PixelFormat::Gray8, PixelFormat::Rgb8) => {
            image.data.iter().for_each(|&g| out.extend([g, g, g]))
        }
        _ => out.extend_from_slice(&image.data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Layout;

    fn input(colour: Colour, w: u32, h: u32) -> SidecarInput {
        let c = colour.channels();
        SidecarInput {
            name: "frames".into(),
            layout: Layout::NCTHW,
            width: w,
            height: h,
            colour,
            scale: 255.0,
            mean: vec![0.5; c],
            std: vec![0.25; c],
        }
    }

    #[test]
    fn gray_downscale_averages_areas() {
        // 4x2 gray: left half 0, right half 255 -> 2x1: [0, 255] -> normalised (0 - .5)/.25 = -2, (1 - .5)/.25 = 2
        let img = Image::new(
            4,
            2,
            PixelFormat::Gray8,
            vec![0, 0, 255, 255, 0, 0, 255, 255],
        );
        let mut p = Preprocessor::new(&input(Colour::Gray, 2, 1));
        let mut out = vec![];
        p.process(&img, &mut out);
        assert_eq!(out.len(), 2);
        assert!(
            (out[0] + 2.0).abs() < 1e-5 && (out[1] - 2.0).abs() < 1e-5,
            "{out:?}"
        );
    }

    #[test]
    fn rgb_is_planar_chw() {
        let img = Image::new(1, 2, PixelFormat::Rgb8, vec![255, 0, 51, 255, 0, 51]);
        let mut p = Preprocessor::new(&input(Colour::Rgb, 1, 2));
        let mut out = vec![];
        p.process(&img, &mut out);
        // R plane (2 px), G plane, B plane
        let want = [2.0, 2.0, -2.0, -2.0, -1.2, -1.2];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-5, "{out:?}");
        }
    }

    #[test]
    fn gray_diff_is_zero_first_then_the_difference() {
        let mut p = Preprocessor::new(&SidecarInput {
            mean: vec![0.0],
            std: vec![1.0],
            ..input(Colour::GrayDiff, 2, 2)
        });
        let mut out = vec![];
        p.process(&Image::filled(2, 2, PixelFormat::Gray8, 100), &mut out);
        assert!(out.iter().all(|v| *v == 0.0));
        p.process(&Image::filled(2, 2, PixelFormat::Gray8, 151), &mut out);
        assert!(out.iter().all(|v| (v - 0.2).abs() < 1e-6), "{out:?}");
    }

    #[test]
    fn rgb_source_for_gray_model_uses_luma() {
        let img = Image::new(1, 1, PixelFormat::Rgb8, vec![255, 255, 255]);
        let mut p = Preprocessor::new(&SidecarInput {
            mean: vec![0.0],
            std: vec![1.0],
            ..input(Colour::Gray, 1, 1)
        });
        let mut out = vec![];
        p.process(&img, &mut out);
        assert!((out[0] - 1.0).abs() < 1e-6);
    }
}
