//! OpenCV YuNet (2023mar): anchor-free decoding at strides 8, 16 and 32, one prior per cell.

use image::RgbImage;

use ddfr_core::{BoundingBox, Face, LandmarkScheme, Landmarks, Point};

use super::{DetectorConfig, FaceDetector, finish};
use crate::EngineError;
use crate::preprocess::{Normalization, sample_to_tensor, top_left_letterbox};
use crate::runner::{ModelRunner, Tensor};

/// Feature-map strides, in output order.
const STRIDES: [usize; 3] = [8, 16, 32];

/// A YuNet detector over any [`ModelRunner`]; the published graph has a fixed input.
#[derive(Debug)]
pub struct YunetDetector {
    model_id: String,
    runner: Box<dyn ModelRunner>,
    input_hw: (usize, usize),
    norm: Normalization,
    config: DetectorConfig,
}

impl YunetDetector {
    /// Wraps a loaded YuNet graph with a fixed (height, width) input.
    pub fn new(
        model_id: &str,
        runner: Box<dyn ModelRunner>,
        input_hw: (usize, usize),
        norm: Normalization,
        config: DetectorConfig,
    ) -> Self {
        Self { model_id: model_id.to_owned(), runner, input_hw, norm, config }
    }
}

impl FaceDetector for YunetDetector {
    fn detect(&self, frame: &RgbImage) -> Result<Vec<Face>, EngineError> {
        let (in_h, in_w) = self.input_hw;
        let (rect, mapping) = top_left_letterbox(frame.width(), frame.height(), in_w, in_h);
        let input = Tensor::new(
            vec![1, 3, in_h, in_w],
            sample_to_tensor(frame, rect, in_w, in_h, &self.norm),
        );
        let outputs = self.runner.run(&input)?;
        if outputs.len() < 4 * STRIDES.len() {
            return Err(EngineError::BadOutput {
                model: self.model_id.clone(),
                expected: "12 outputs: cls, obj, bbox, kps at strides 8/16/32".to_owned(),
                found: vec![outputs.len()],
            });
        }
        let mut faces = Vec::new();
        for (level, &stride) in STRIDES.iter().enumerate() {
            let (cols, rows) = (in_w / stride, in_h / stride);
            let n = cols * rows;
            let cls = &outputs[level];
            let obj = &outputs[level + 3];
            let bbox = &outputs[level + 6];
            let kps = &outputs[level + 9];
            if cls.data.len() != n
                || obj.data.len() != n
                || bbox.data.len() != n * 4
                || kps.data.len() != n * 10
            {
                return Err(EngineError::BadOutput {
                    model: self.model_id.clone(),
                    expected: format!("{n} priors at stride {stride}"),
                    found: cls.shape.clone(),
                });
            }
            let s = stride as f32;
            for i in 0..n {
                let score = (cls.data[i].clamp(0.0, 1.0) * obj.data[i].clamp(0.0, 1.0)).sqrt();
                if score < self.config.min_score {
                    continue;
                }
                let (col, row) = ((i % cols) as f32, (i / cols) as f32);
                let b = &bbox.data[i * 4..i * 4 + 4];
                let cx = (col + b[0]) * s;
                let cy = (row + b[1]) * s;
                let w = b[2].exp() * s;
                let h = b[3].exp() * s;
                let (left, top) = mapping.to_frame(cx - w / 2.0, cy - h / 2.0);
                let (right, bottom) = mapping.to_frame(cx + w / 2.0, cy + h / 2.0);
                let k = &kps.data[i * 10..i * 10 + 10];
                let points = (0..5)
                    .map(|j| {
                        let (x, y) =
                            mapping.to_frame((col + k[2 * j]) * s, (row + k[2 * j + 1]) * s);
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
