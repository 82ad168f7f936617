//! Face crops for the crops message: an enlarged square around each face, cut from the frame,
//! scaled down to a modest size and encoded as JPEG.
//!
//! The server runs its landmark model and cuts its aligned chip inside the crop, so the crop
//! carries context around the detector's box (dlib's chip alone spans 1.5 face widths).

use image::RgbImage;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use serde::Serialize;

use ddfr_core::BoundingBox;
use ddfr_protocol::{CropEncoding, CropRegion, CropsMessage, FaceCrop, encode_crops_message};

use crate::WasmError;
use crate::detector::DetectedFace;

/// A crop's side is this many times the face box's longer side.
pub const CROP_SCALE: f32 = 1.6;
/// Crops are scaled down so that their longer side is at most this many pixels: enough for a
/// 150-pixel chip with its padding, and a few kilobytes of JPEG.
pub const MAX_CROP_OUTPUT_SIDE: u32 = 256;
/// JPEG quality of the crops: high enough that the embedding does not move measurably.
pub const CROP_JPEG_QUALITY: u8 = 90;

/// A whole-pixel rectangle of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct CropRect {
    /// Left edge.
    pub left: u32,
    /// Top edge.
    pub top: u32,
    /// Width (at least 1).
    pub width: u32,
    /// Height (at least 1).
    pub height: u32,
}

/// The square of side `CROP_SCALE` × the box's longer side, centred on the box, clamped to
/// the frame and rounded outwards to whole pixels. Never empty for a non-empty frame.
pub fn crop_rect_for(bbox: &BoundingBox, frame_width: u32, frame_height: u32) -> CropRect {
    let side = bbox.width().max(bbox.height()) * CROP_SCALE;
    let centre = bbox.center();
    let (frame_w, frame_h) = (frame_width as f32, frame_height as f32);
    let clamp = |v: f32, max: f32| if v.is_finite() { v.clamp(0.0, max) } else { 0.0 };
    let left = clamp((centre.x - side / 2.0).floor(), frame_w - 1.0);
    let top = clamp((centre.y - side / 2.0).floor(), frame_h - 1.0);
    let right = clamp((centre.x + side / 2.0).ceil(), frame_w).max(left + 1.0);
    let bottom = clamp((centre.y + side / 2.0).ceil(), frame_h).max(top + 1.0);
    CropRect {
        left: left as u32,
        top: top as u32,
        width: (right - left) as u32,
        height: (bottom - top) as u32,
    }
}

/// Cuts `rect` out of `frame`, scales it to at most [`MAX_CROP_OUTPUT_SIDE`] and encodes it.
pub fn encode_crop(frame: &RgbImage, rect: CropRect) -> Result<FaceCropPixels, WasmError> {
    let cut = imageops::crop_imm(frame, rect.left, rect.top, rect.width, rect.height).to_image();
    let longer = rect.width.max(rect.height);
    let scaled = if longer > MAX_CROP_OUTPUT_SIDE {
        let scale = MAX_CROP_OUTPUT_SIDE as f32 / longer as f32;
        let width = ((rect.width as f32 * scale).round() as u32).max(1);
        let height = ((rect.height as f32 * scale).round() as u32).max(1);
        imageops::resize(&cut, width, height, FilterType::Triangle)
    } else {
        cut
    };
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, CROP_JPEG_QUALITY)
        .encode_image(&scaled)
        .map_err(|source| WasmError::CropEncode { source })?;
    Ok(FaceCropPixels { width: scaled.width(), height: scaled.height(), jpeg })
}

/// One encoded crop.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceCropPixels {
    /// Width in pixels after scaling.
    pub width: u32,
    /// Height in pixels after scaling.
    pub height: u32,
    /// The JPEG file.
    pub jpeg: Vec<u8>,
}

/// The crops message for `faces` of `frame` (at most the protocol's face limit, best first),
/// with BlazeFace's keypoints as `blaze_face6` landmarks in frame pixels.
pub fn build_crops_message(frame: &RgbImage, faces: &[DetectedFace]) -> Result<Vec<u8>, WasmError> {
    let mut crops = Vec::with_capacity(faces.len().min(ddfr_protocol::MAX_CROPS_FACES));
    for face in faces.iter().take(ddfr_protocol::MAX_CROPS_FACES) {
        let pixels = encode_crop(frame, face.crop)?;
        crops.push(FaceCrop {
            bbox: face.face.bbox,
            landmarks: Some(face.face.landmarks.clone()),
            score: Some(face.face.score.clamp(0.0, 1.0)),
            region: CropRegion {
                left: face.crop.left as f32,
                top: face.crop.top as f32,
                width: face.crop.width as f32,
                height: face.crop.height as f32,
            },
            width: pixels.width,
            height: pixels.height,
            encoding: CropEncoding::Jpeg,
            data: pixels.jpeg,
        });
    }
    Ok(encode_crops_message(&CropsMessage {
        frame_width: frame.width(),
        frame_height: frame.height(),
        faces: crops,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_is_an_enlarged_square_inside_the_frame() {
        let rect = crop_rect_for(&BoundingBox::new(200.0, 100.0, 300.0, 200.0), 640, 480);
        assert_eq!(rect, CropRect { left: 170, top: 70, width: 160, height: 160 });
        // Near the corner the square is clamped to the frame.
        let rect = crop_rect_for(&BoundingBox::new(-10.0, -10.0, 50.0, 50.0), 640, 480);
        assert_eq!((rect.left, rect.top), (0, 0));
        assert!(rect.width <= 68 && rect.height <= 68);
        let rect = crop_rect_for(&BoundingBox::new(600.0, 440.0, 700.0, 540.0), 640, 480);
        assert!(rect.left + rect.width <= 640 && rect.top + rect.height <= 480);
        // A degenerate box still gives a one-pixel crop.
        let rect = crop_rect_for(&BoundingBox::new(f32::NAN, 0.0, 1.0, 1.0), 10, 10);
        assert!(rect.width >= 1 && rect.height >= 1);
    }

    #[test]
    fn large_crops_are_scaled_down_and_small_ones_kept() {
        let frame = RgbImage::from_pixel(1280, 720, image::Rgb([90, 120, 200]));
        let big = encode_crop(&frame, CropRect { left: 100, top: 0, width: 640, height: 640 });
        let big = big.expect("encodes");
        assert_eq!((big.width, big.height), (MAX_CROP_OUTPUT_SIDE, MAX_CROP_OUTPUT_SIDE));
        assert!(big.jpeg.starts_with(&[0xFF, 0xD8, 0xFF]));
        let small = encode_crop(&frame, CropRect { left: 0, top: 0, width: 100, height: 80 });
        let small = small.expect("encodes");
        assert_eq!((small.width, small.height), (100, 80));
    }
}
