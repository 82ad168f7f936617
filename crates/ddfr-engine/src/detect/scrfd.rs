//! InsightFace SCRFD with keypoints (`*_bnkps`): anchor-centre distance decoding at strides
//! 8, 16 and 32, two anchors per cell, ArcFace-order landmarks.

use image::RgbImage;

use ddfr_core::{BoundingBox, Face, LandmarkScheme, Landmarks, Point};

use super::{DetectorConfig, FaceDetector, finish};
use crate::EngineError;
use crate::preprocess::{Normalization, sample_to_tensor, top_left_letterbox};
use crate::runner::{ModelRunner, Tensor};

/// The feature-map strides of every SCRFD `_bnkps` model, in output order.
const STRIDES: [usize; 3] = [8, 16, 32];
/// Anchors per feature-map cell.
const ANCHORS_PER_CELL: usize = 2;
/// Input sides must be multiples of the largest stride.
const SIDE_MULTIPLE: usize = 32;

/// An SCRFD detector over any [`ModelRunner`].
#[derive(Debug)]
pub struct ScrfdDetector {
    model_id: String,
    runner: Box<dyn ModelRunner>,
    /// Fixed input (height, width), or `None` to size the input from each frame.
    fixed_input: Option<(usize, usize)>,
    /// For a dynamic input, the longer side the frame is scaled to (a multiple of 32).
    dynamic_side: usize,
    norm: Normalization,
    config: DetectorConfig,
}

impl ScrfdDetector {
    /// Wraps a loaded SCRFD graph. `fixed_input` is the declared (height, width) when the graph
    /// has one; otherwise frames are scaled so their longer side is `dynamic_side`.
    pub fn new(
        model_id: &str,
        runner: Box<dyn ModelRunner>,
        fixed_input: Option<(usize, usize)>,
        dynamic_side: usize,
        norm: Normalization,
        config: DetectorConfig,
    ) -> Self {
        let dynamic_side = dynamic_side.div_ceil(SIDE_MULTIPLE).max(1) * SIDE_MULTIPLE;
        Self { model_id: model_id.to_owned(), runner, fixed_input, dynamic_side, norm, config }
    }

    fn input_size(&self, frame_w: u32, frame_h: u32) -> (usize, usize) {
        if let Some(hw) = self.fixed_input {
            return hw;
        }
        let scale = self.dynamic_side as f32 / frame_w.max(frame_h) as f32;
        let round = |v: u32| {
            ((v as f32 * scale).round() as usize).div_ceil(SIDE_MULTIPLE).max(1) * SIDE_MULTIPLE
        };
        (round(frame_h), round(frame_w))
    }
}

impl FaceDetector for ScrfdDetector {
    fn detect(&self, frame: &RgbImage) -> Result<Vec<Face>, EngineError> {
        let (in_h, in_w) = self.input_size(frame.width(), frame.height());
        let (rect, mapping) = top_left_letterbox(frame.width(), frame.height(), in_w, in_h);
        let input = Tensor::new(
            vec![1, 3, in_h, in_w],
            sample_to_tensor(frame, rect, in_w, in_h, &self.norm),
        );
        let outputs = self.runner.run(&input)?;
        if outputs.len() < 3 * STRIDES.len() {
            return Err(EngineError::BadOutput {
                model: self.model_id.clone(),
                expected: "9 outputs: scores, boxes, keypoints at strides 8/16/32".to_owned(),
                found: vec![outputs.len()],
            });
        }
        let mut faces = Vec::new();
        for (level, &stride) in STRIDES.iter().enumerate() {
            let (cols, rows) = (in_w / stride, in_h / stride);
            let n = rows * cols * ANCHORS_PER_CELL;
            let (scores, boxes, kps) = (&outputs[level], &outputs[level + 3], &outputs[level + 6]);
            if scores.data.len() != n || boxes.data.len() != n * 4 || kps.data.len() != n * 10 {
                return Err(EngineError::BadOutput {
                    model: self.model_id.clone(),
                    expected: format!("{n} anchors at stride {stride}"),
                    found: scores.shape.clone(),
                });
            }
            for i in 0..n {
                let score = scores.data[i];
                if score < self.config.min_score {
                    continue;
                }
                let cell = i / ANCHORS_PER_CELL;
                let cx = (cell % cols * stride) as f32;
                let cy = (cell / cols * stride) as f32;
                let s = stride as f32;
                let d = &boxes.data[i * 4..i * 4 + 4];
                let (left, top) = mapping.to_frame(cx - d[0] * s, cy - d[1] * s);
                let (right, bottom) = mapping.to_frame(cx + d[2] * s, cy + d[3] * s);
                let k = &kps.data[i * 10..i * 10 + 10];
                let points = (0..5)
                    .map(|j| {
                        let (x, y) = mapping.to_frame(cx + k[2 * j] * s, cy + k[2 * j + 1] * s);
                        Point::new(x, y)
                    })
                    .collect();
                faces.push(Face {
                    bbox: BoundingBox::new(left, top, right, bottom),
                    score,
                    landmarks: Landmarks { scheme: LandmarkScheme::ArcFace5, points },
                });
            }
        }
        Ok(finish(faces, &self.config, false))
    }
}
