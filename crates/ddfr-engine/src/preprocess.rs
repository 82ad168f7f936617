//! Image → tensor: antialiased resampling of a frame region into a normalised NCHW tensor.
//!
//! One routine serves every model: it samples a source rectangle (which may extend past the
//! frame; outside pixels are black) into a `width`×`height` grid with a triangle filter whose
//! support widens when downscaling, so small inputs do not alias. Normalisation and channel
//! order are fused into the same pass.

use image::RgbImage;

use crate::manifest::ColorOrder;

/// Per-channel normalisation: `(pixel - mean) / std` with pixel in 0..=255, in RGB order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    /// Per-channel mean (R, G, B).
    pub mean: [f32; 3],
    /// Per-channel divisor (R, G, B).
    pub std: [f32; 3],
    /// Channel order of the output tensor.
    pub color: ColorOrder,
}

/// A source rectangle in frame pixels (may extend outside the frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceRect {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width (> 0).
    pub width: f32,
    /// Height (> 0).
    pub height: f32,
}

/// Where the model input sits in the frame: `frame = input * scale + offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputMapping {
    /// Frame pixels per input pixel, horizontally.
    pub scale_x: f32,
    /// Frame pixels per input pixel, vertically.
    pub scale_y: f32,
    /// Frame x of input x = 0.
    pub offset_x: f32,
    /// Frame y of input y = 0.
    pub offset_y: f32,
}

impl InputMapping {
    /// Maps an input-space point to frame pixels.
    pub fn to_frame(&self, x: f32, y: f32) -> (f32, f32) {
        (x * self.scale_x + self.offset_x, y * self.scale_y + self.offset_y)
    }
}

/// One axis' resampling weights: for each output index, `(first source index, weights)`.
struct AxisWeights {
    starts: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

/// Triangle-filter weights mapping `out_len` outputs onto `[origin, origin + extent)` of an axis
/// that has `in_len` valid pixels. Taps outside the valid range are dropped but still count in
/// the normalisation, so padding contributes black.
fn axis_weights(in_len: usize, origin: f32, extent: f32, out_len: usize) -> AxisWeights {
    let scale = extent / out_len as f32;
    let support = scale.max(1.0);
    let mut starts = Vec::with_capacity(out_len);
    let mut weights = Vec::with_capacity(out_len);
    for i in 0..out_len {
        let center = origin + (i as f32 + 0.5) * scale - 0.5;
        let lo = (center - support).floor() as i64 + 1;
        let hi = (center + support).ceil() as i64 - 1;
        let mut total = 0.0f32;
        let mut taps = Vec::new();
        let mut first = None;
        for src in lo..=hi {
            let w = (1.0 - ((src as f32 - center) / support).abs()).max(0.0);
            if w <= 0.0 {
                continue;
            }
            total += w;
            if src >= 0 && (src as usize) < in_len {
                if first.is_none() {
                    first = Some(src as usize);
                }
                taps.push(w);
            } else if first.is_some() {
                // Past the right edge: nothing more to read.
                continue;
            }
        }
        if total > 0.0 {
            taps.iter_mut().for_each(|w| *w /= total);
        }
        starts.push(first.unwrap_or(0));
        weights.push(taps);
    }
    AxisWeights { starts, weights }
}

/// Samples `source` of `frame` into a `width`×`height` NCHW tensor (batch 1), normalised.
pub fn sample_to_tensor(
    frame: &RgbImage,
    source: SourceRect,
    width: usize,
    height: usize,
    norm: &Normalization,
) -> Vec<f32> {
    let mut out = vec![0.0f32; 3 * width * height];
    sample_into(frame, source, width, height, norm, &mut out);
    out
}

/// Like [`sample_to_tensor`], writing into `out` (length `3 * width * height`), so a batch can be
/// filled in place.
pub fn sample_into(
    frame: &RgbImage,
    source: SourceRect,
    width: usize,
    height: usize,
    norm: &Normalization,
    out: &mut [f32],
) {
    let (fw, fh) = (frame.width() as usize, frame.height() as usize);
    let xw = axis_weights(fw, source.x, source.width, width);
    let yw = axis_weights(fh, source.y, source.height, height);
    let pixels = frame.as_raw();
    // Horizontal pass over only the rows the vertical pass will read.
    let row_lo = yw.starts.iter().copied().min().unwrap_or(0);
    let row_hi =
        yw.starts.iter().zip(&yw.weights).map(|(s, w)| s + w.len()).max().unwrap_or(0).min(fh);
    let rows = row_hi.saturating_sub(row_lo);
    let mut horizontal = vec![0.0f32; rows * width * 3];
    for r in 0..rows {
        let src_row = &pixels[(row_lo + r) * fw * 3..(row_lo + r + 1) * fw * 3];
        let dst_row = &mut horizontal[r * width * 3..(r + 1) * width * 3];
        for (x, (start, taps)) in xw.starts.iter().zip(&xw.weights).enumerate() {
            let mut acc = [0.0f32; 3];
            for (k, w) in taps.iter().enumerate() {
                let p = (start + k) * 3;
                acc[0] += w * f32::from(src_row[p]);
                acc[1] += w * f32::from(src_row[p + 1]);
                acc[2] += w * f32::from(src_row[p + 2]);
            }
            dst_row[x * 3..x * 3 + 3].copy_from_slice(&acc);
        }
    }
    let plane = width * height;
    let channel_of = |c: usize| match norm.color {
        ColorOrder::Rgb => c,
        ColorOrder::Bgr => 2 - c,
    };
    for (y, (start, taps)) in yw.starts.iter().zip(&yw.weights).enumerate() {
        for x in 0..width {
            let mut acc = [0.0f32; 3];
            for (k, w) in taps.iter().enumerate() {
                let r = start + k - row_lo;
                let p = (r * width + x) * 3;
                acc[0] += w * horizontal[p];
                acc[1] += w * horizontal[p + 1];
                acc[2] += w * horizontal[p + 2];
            }
            for (c, value) in acc.iter().enumerate() {
                let dst = channel_of(c);
                out[dst * plane + y * width + x] = (value - norm.mean[c]) / norm.std[c];
            }
        }
    }
}

/// The square (or `aspect`-shaped) letterbox around the whole frame, centred, as MediaPipe pads.
pub fn centered_letterbox(
    frame_w: u32,
    frame_h: u32,
    input_w: usize,
    input_h: usize,
) -> (SourceRect, InputMapping) {
    let scale = (frame_w as f32 / input_w as f32).max(frame_h as f32 / input_h as f32);
    let width = input_w as f32 * scale;
    let height = input_h as f32 * scale;
    let x = (frame_w as f32 - width) / 2.0;
    let y = (frame_h as f32 - height) / 2.0;
    (
        SourceRect { x, y, width, height },
        InputMapping { scale_x: scale, scale_y: scale, offset_x: x, offset_y: y },
    )
}

/// The letterbox InsightFace uses: scaled to fit, anchored top-left, padded right and bottom.
pub fn top_left_letterbox(
    frame_w: u32,
    frame_h: u32,
    input_w: usize,
    input_h: usize,
) -> (SourceRect, InputMapping) {
    let scale = (frame_w as f32 / input_w as f32).max(frame_h as f32 / input_h as f32);
    (
        SourceRect {
            x: 0.0,
            y: 0.0,
            width: input_w as f32 * scale,
            height: input_h as f32 * scale,
        },
        InputMapping { scale_x: scale, scale_y: scale, offset_x: 0.0, offset_y: 0.0 },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    const IDENTITY: Normalization =
        Normalization { mean: [0.0; 3], std: [1.0; 3], color: ColorOrder::Rgb };

    #[test]
    fn identity_resample_copies_pixels() {
        let frame = RgbImage::from_fn(5, 4, |x, y| Rgb([(x * 10) as u8, (y * 20) as u8, 3]));
        let t = sample_to_tensor(
            &frame,
            SourceRect { x: 0.0, y: 0.0, width: 5.0, height: 4.0 },
            5,
            4,
            &IDENTITY,
        );
        for y in 0..4 {
            for x in 0..5 {
                assert!((t[y * 5 + x] - (x * 10) as f32).abs() < 1e-4);
                assert!((t[20 + y * 5 + x] - (y * 20) as f32).abs() < 1e-4);
                assert!((t[40 + y * 5 + x] - 3.0).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn downscale_of_flat_image_stays_flat_and_padding_is_black() {
        let frame = RgbImage::from_pixel(64, 32, Rgb([200, 100, 50]));
        let (rect, map) = centered_letterbox(64, 32, 16, 16);
        let t = sample_to_tensor(&frame, rect, 16, 16, &IDENTITY);
        // Middle rows come from the image, top and bottom rows from the padding.
        assert!((t[8 * 16 + 8] - 200.0).abs() < 1e-3);
        assert!(t[8].abs() < 1e-3);
        assert_eq!(map.to_frame(0.0, 0.0), (0.0, -16.0));
        let bgr = Normalization { color: ColorOrder::Bgr, ..IDENTITY };
        let t = sample_to_tensor(&frame, rect, 16, 16, &bgr);
        assert!((t[8 * 16 + 8] - 50.0).abs() < 1e-3);
    }
}
