//! Face detection: the [`FaceDetector`] seam and the BlazeFace, SCRFD and YuNet decoders.
//!
//! Each decoder turns raw model outputs into [`Face`]s in frame pixels with a score and
//! landmarks, then [`nms`] keeps one box per face and small faces are dropped.

mod blazeface;
pub mod nms;
mod scrfd;
mod yunet;

use image::RgbImage;

use ddfr_core::Face;

pub use blazeface::BlazeFaceDetector;
pub use scrfd::ScrfdDetector;
pub use yunet::YunetDetector;

use crate::EngineError;

/// Finds faces in a frame.
pub trait FaceDetector: Send + Sync + std::fmt::Debug {
    /// Faces in frame pixel coordinates, best score first. A frame without faces gives an
    /// empty list, not an error.
    fn detect(&self, frame: &RgbImage) -> Result<Vec<Face>, EngineError>;
}

/// Tunables shared by every detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// Minimum detector score in `[0, 1]`.
    pub min_score: f32,
    /// Boxes overlapping a better one by more than this IoU are merged or dropped.
    pub nms_iou: f32,
    /// Faces whose shorter box side is below this many pixels are dropped: too small to
    /// recognise reliably.
    pub min_face_px: f32,
    /// At most this many faces per frame (best first).
    pub max_faces: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self { min_score: 0.5, nms_iou: 0.3, min_face_px: 16.0, max_faces: 32 }
    }
}

/// Keeps the best faces after NMS, above the size floor, best first.
pub(crate) fn finish(mut faces: Vec<Face>, config: &DetectorConfig, weighted: bool) -> Vec<Face> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept = if weighted {
        nms::weighted_nms(&faces, config.nms_iou)
    } else {
        nms::hard_nms(faces, config.nms_iou)
    };
    kept.retain(|f| f.bbox.width().min(f.bbox.height()) >= config.min_face_px);
    kept.truncate(config.max_faces);
    kept
}

/// The logistic function, clipped as MediaPipe clips raw scores.
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-100.0, 100.0)).exp())
}
