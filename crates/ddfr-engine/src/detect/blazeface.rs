//! MediaPipe BlazeFace (short range 128², full range 192²): SSD anchors and box decoding.

use image::RgbImage;

use ddfr_core::{BoundingBox, Face, LandmarkScheme, Landmarks, Point};

use super::{DetectorConfig, FaceDetector, finish, sigmoid};
use crate::EngineError;
use crate::preprocess::{Normalization, centered_letterbox, sample_to_tensor};
use crate::runner::{ModelRunner, Tensor};

/// Values per anchor in the regressor output: box (cx, cy, w, h) then 6 keypoints (x, y).
const REGRESSOR_VALUES: usize = 16;
/// BlazeFace predicts six keypoints.
const KEYPOINTS: usize = 6;

/// One SSD anchor centre in normalised input coordinates (MediaPipe uses fixed unit anchors).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Anchor {
    cx: f32,
    cy: f32,
}

/// MediaPipe's `SsdAnchorsCalculator` with `fixed_anchor_size: true`, for one input size.
/// `anchors_per_layer` is 2 when the graph uses an interpolated scale (short range), else 1.
fn ssd_anchors(input_size: usize, strides: &[usize], anchors_per_layer: usize) -> Vec<Anchor> {
    let mut anchors = Vec::new();
    let mut layer = 0;
    while layer < strides.len() {
        let stride = strides[layer];
        let same = strides[layer..].iter().take_while(|&&s| s == stride).count();
        let per_cell = same * anchors_per_layer;
        let cells = input_size.div_ceil(stride);
        for y in 0..cells {
            for x in 0..cells {
                let anchor = Anchor {
                    cx: (x as f32 + 0.5) / cells as f32,
                    cy: (y as f32 + 0.5) / cells as f32,
                };
                anchors.extend(std::iter::repeat_n(anchor, per_cell));
            }
        }
        layer += same;
    }
    anchors
}

/// The anchor layout of the two published BlazeFace graphs, chosen by input size.
fn anchors_for(input_size: usize) -> Option<Vec<Anchor>> {
    match input_size {
        // face_detection_short_range: 4 layers, strides 8/16/16/16, interpolated scale.
        128 => Some(ssd_anchors(128, &[8, 16, 16, 16], 2)),
        // face_detection_full_range: 1 layer, stride 4, no interpolated scale.
        192 => Some(ssd_anchors(192, &[4], 1)),
        _ => None,
    }
}

/// A BlazeFace detector over any [`ModelRunner`].
#[derive(Debug)]
pub struct BlazeFaceDetector {
    model_id: String,
    runner: Box<dyn ModelRunner>,
    input_size: usize,
    norm: Normalization,
    anchors: Vec<Anchor>,
    config: DetectorConfig,
}

impl BlazeFaceDetector {
    /// Wraps a loaded BlazeFace graph with a square `input_size` input (128 or 192).
    pub fn new(
        model_id: &str,
        runner: Box<dyn ModelRunner>,
        input_size: usize,
        norm: Normalization,
        config: DetectorConfig,
    ) -> Result<Self, EngineError> {
        let anchors = anchors_for(input_size).ok_or_else(|| EngineError::ManifestMismatch {
            model: model_id.to_owned(),
            expected: "BlazeFace input 128x128 (short range) or 192x192 (full range)".to_owned(),
            found: format!("{input_size}x{input_size}"),
        })?;
        Ok(Self { model_id: model_id.to_owned(), runner, input_size, norm, anchors, config })
    }

    fn bad_output(&self, found: &Tensor) -> EngineError {
        EngineError::BadOutput {
            model: self.model_id.clone(),
            expected: format!(
                "[1, {}, 16] regressors and [1, {}, 1] scores",
                self.anchors.len(),
                self.anchors.len()
            ),
            found: found.shape.clone(),
        }
    }
}

impl FaceDetector for BlazeFaceDetector {
    fn detect(&self, frame: &RgbImage) -> Result<Vec<Face>, EngineError> {
        let size = self.input_size;
        let (rect, mapping) = centered_letterbox(frame.width(), frame.height(), size, size);
        let input = Tensor::new(
            vec![1, 3, size, size],
            sample_to_tensor(frame, rect, size, size, &self.norm),
        );
        let outputs = self.runner.run(&input)?;
        let n = self.anchors.len();
        let (regressors, scores) = match outputs.as_slice() {
            [r, s, ..] if r.data.len() == n * REGRESSOR_VALUES && s.data.len() == n => (r, s),
            [first, ..] => return Err(self.bad_output(first)),
            [] => return Err(self.bad_output(&Tensor::new(vec![], vec![]))),
        };
        let scale = size as f32;
        let mut faces = Vec::new();
        for (i, anchor) in self.anchors.iter().enumerate() {
            let score = sigmoid(scores.data[i]);
            if score < self.config.min_score {
                continue;
            }
            let raw = &regressors.data[i * REGRESSOR_VALUES..(i + 1) * REGRESSOR_VALUES];
            // Offsets are in input pixels relative to the anchor centre.
            let cx = raw[0] + anchor.cx * scale;
            let cy = raw[1] + anchor.cy * scale;
            let (w, h) = (raw[2], raw[3]);
            let (left, top) = mapping.to_frame(cx - w / 2.0, cy - h / 2.0);
            let (right, bottom) = mapping.to_frame(cx + w / 2.0, cy + h / 2.0);
            let points = (0..KEYPOINTS)
                .map(|k| {
                    let (x, y) = mapping.to_frame(
                        raw[4 + 2 * k] + anchor.cx * scale,
                        raw[5 + 2 * k] + anchor.cy * scale,
                    );
                    Point::new(x, y)
                })
                .collect();
            faces.push(Face {
                bbox: BoundingBox::new(left, top, right, bottom),
                score,
                landmarks: Landmarks { scheme: LandmarkScheme::BlazeFace6, points },
            });
        }
        Ok(finish(faces, &self.config, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_counts_match_the_published_graphs() {
        assert_eq!(anchors_for(128).unwrap().len(), 896);
        assert_eq!(anchors_for(192).unwrap().len(), 2304);
        assert!(anchors_for(256).is_none());
        let full = anchors_for(192).unwrap();
        assert_eq!(full[0], Anchor { cx: 0.5 / 48.0, cy: 0.5 / 48.0 });
        let short = anchors_for(128).unwrap();
        // The first 512 anchors are the 16x16 stride-8 grid, two per cell.
        assert_eq!(short[0], short[1]);
        assert_eq!(short[512], Anchor { cx: 0.5 / 8.0, cy: 0.5 / 8.0 });
    }
}
