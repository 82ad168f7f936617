//! Alignment: from a detected face to the chip an embedder was trained on.

pub mod dlib_chip;
pub(crate) mod dlib_stream;
pub mod shape_predictor;
pub mod similarity;

use std::sync::Arc;

use image::RgbImage;

use ddfr_core::{BoundingBox, Face, LandmarkScheme, Landmarks, Point};

use crate::EngineError;
use shape_predictor::ShapePredictor;
use similarity::{Similarity, warp_to_chip};

/// InsightFace's ArcFace template for a 112×112 chip: left eye, right eye, nose tip, left and
/// right mouth corners (image left first).
pub const ARCFACE_TEMPLATE_112: [Point; 5] = [
    Point::new(38.2946, 51.6963),
    Point::new(73.5318, 51.5014),
    Point::new(56.0252, 71.7366),
    Point::new(41.5493, 92.3655),
    Point::new(70.7299, 92.2041),
];

/// dlib's face chip for its ResNet: 150 pixels with 25 % padding around the landmark template.
pub const DLIB_CHIP_SIZE: u32 = 150;
/// See [`DLIB_CHIP_SIZE`].
pub const DLIB_CHIP_PADDING: f32 = 0.25;

/// Where dlib's frontal-face detector would put its square box, relative to the eyes: its
/// centre lies `DLIB_RECT_DOWN` interocular distances below the eye midpoint (perpendicular to
/// the eye axis) and its side is `DLIB_RECT_SIDE` interocular distances. dlib's shape predictor
/// was trained on that detector's boxes, so it is started from the same kind of box. Measured on
/// the identity photos of the developer test set with dlib 20.0 and BlazeFace full range (see
/// docs/models.md).
pub const DLIB_RECT_DOWN: f32 = 0.514;
/// See [`DLIB_RECT_DOWN`].
pub const DLIB_RECT_SIDE: f32 = 2.400;

/// A face cut out and normalised for an embedder.
#[derive(Debug, Clone)]
pub struct AlignedFace {
    /// The chip, `chip_size`×`chip_size` RGB.
    pub chip: RgbImage,
    /// The landmarks the alignment used, in frame pixels.
    pub landmarks: Landmarks,
}

/// How faces are aligned for the pack's embedder.
#[derive(Debug, Clone)]
pub enum Aligner {
    /// Five-point similarity to the ArcFace template, scaled to `size` (112 for ArcFace).
    ArcFace {
        /// Chip side in pixels.
        size: u32,
    },
    /// dlib's 5-point shape predictor started from a dlib-style box, then dlib's face chip.
    Dlib {
        /// The shape predictor.
        predictor: Arc<ShapePredictor>,
        /// Chip side in pixels.
        size: u32,
        /// Padding around the landmark template, as a fraction of the chip.
        padding: f32,
    },
}

impl Aligner {
    /// The chip side this aligner produces.
    pub fn chip_size(&self) -> u32 {
        match self {
            Aligner::ArcFace { size } | Aligner::Dlib { size, .. } => *size,
        }
    }

    /// Whether faces from a detector with `scheme` landmarks can be aligned.
    pub fn supports(&self, scheme: LandmarkScheme) -> bool {
        match self {
            Aligner::ArcFace { .. } => scheme == LandmarkScheme::ArcFace5,
            Aligner::Dlib { .. } => eye_indices(scheme).is_some(),
        }
    }

    /// Cuts the chip for one face out of `frame`.
    pub fn align(&self, frame: &RgbImage, face: &Face) -> Result<AlignedFace, EngineError> {
        match self {
            Aligner::ArcFace { size } => {
                if face.landmarks.scheme != LandmarkScheme::ArcFace5
                    || face.landmarks.points.len() != 5
                {
                    return Err(EngineError::UnsupportedLandmarks {
                        scheme: face.landmarks.scheme,
                        aligner: "arcface",
                    });
                }
                let k = *size as f32 / 112.0;
                let template: Vec<Point> =
                    ARCFACE_TEMPLATE_112.iter().map(|p| Point::new(p.x * k, p.y * k)).collect();
                let to_chip = Similarity::estimate(&face.landmarks.points, &template)
                    .ok_or(EngineError::DegenerateLandmarks)?;
                let to_frame = to_chip.inverse().ok_or(EngineError::DegenerateLandmarks)?;
                Ok(AlignedFace {
                    chip: warp_to_chip(frame, &to_frame, *size),
                    landmarks: face.landmarks.clone(),
                })
            }
            Aligner::Dlib { predictor, size, padding } => {
                let rect = dlib_rect_for(face).ok_or(EngineError::UnsupportedLandmarks {
                    scheme: face.landmarks.scheme,
                    aligner: "dlib",
                })?;
                let landmarks = predictor.predict(frame, &rect);
                let chip = dlib_chip::extract_dlib_chip(frame, &landmarks, *size, *padding);
                Ok(AlignedFace { chip, landmarks })
            }
        }
    }
}

/// Indices of the image-left and image-right eye centres in a scheme, when it has them.
fn eye_indices(scheme: LandmarkScheme) -> Option<(usize, usize)> {
    match scheme {
        LandmarkScheme::ArcFace5 | LandmarkScheme::BlazeFace6 => Some((0, 1)),
        LandmarkScheme::Dlib5 => None,
    }
}

/// The dlib-detector-style square box for a face, from its eye centres (see [`DLIB_RECT_DOWN`]).
pub fn dlib_rect_for(face: &Face) -> Option<BoundingBox> {
    let (l, r) = eye_indices(face.landmarks.scheme)?;
    let (left, right) = (*face.landmarks.points.get(l)?, *face.landmarks.points.get(r)?);
    let (dx, dy) = (right.x - left.x, right.y - left.y);
    let d = (dx * dx + dy * dy).sqrt();
    if !d.is_finite() || d < 1.0 {
        return None;
    }
    // Unit vector along the eye axis and its perpendicular pointing down the face.
    let (ux, uy) = (dx / d, dy / d);
    let (px, py) = (-uy, ux);
    let cx = (left.x + right.x) / 2.0 + px * DLIB_RECT_DOWN * d;
    let cy = (left.y + right.y) / 2.0 + py * DLIB_RECT_DOWN * d;
    let half = DLIB_RECT_SIDE * d / 2.0;
    Some(BoundingBox::new(cx - half, cy - half, cx + half, cy + half))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlib_rect_sits_below_the_eyes() {
        let face = Face {
            bbox: BoundingBox::new(0.0, 0.0, 100.0, 100.0),
            score: 1.0,
            landmarks: Landmarks {
                scheme: LandmarkScheme::BlazeFace6,
                points: vec![
                    Point::new(40.0, 50.0),
                    Point::new(60.0, 50.0),
                    Point::default(),
                    Point::default(),
                    Point::default(),
                    Point::default(),
                ],
            },
        };
        let rect = dlib_rect_for(&face).unwrap();
        assert!((rect.center().x - 50.0).abs() < 1e-4);
        assert!(rect.center().y > 50.0);
        assert!((rect.width() - DLIB_RECT_SIDE * 20.0).abs() < 1e-3);
    }

    #[test]
    fn arcface_alignment_maps_template_points_onto_themselves() {
        let frame = RgbImage::from_pixel(112, 112, image::Rgb([10, 20, 30]));
        let face = Face {
            bbox: BoundingBox::new(0.0, 0.0, 112.0, 112.0),
            score: 1.0,
            landmarks: Landmarks {
                scheme: LandmarkScheme::ArcFace5,
                points: ARCFACE_TEMPLATE_112.to_vec(),
            },
        };
        let aligned = Aligner::ArcFace { size: 112 }.align(&frame, &face).unwrap();
        assert_eq!(aligned.chip, frame);
        let blaze = Face {
            landmarks: Landmarks {
                scheme: LandmarkScheme::BlazeFace6,
                points: vec![Point::default(); 6],
            },
            ..face
        };
        assert!(Aligner::ArcFace { size: 112 }.align(&frame, &blaze).is_err());
    }
}
