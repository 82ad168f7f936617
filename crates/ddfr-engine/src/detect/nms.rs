//! Non-maximum suppression: hard (SCRFD, YuNet) and weighted (BlazeFace, as MediaPipe does).

use ddfr_core::{BoundingBox, Face, Point};

/// Keeps each face unless it overlaps an already kept, better face by more than `iou`.
/// `faces` must be sorted best first.
pub fn hard_nms(faces: Vec<Face>, iou: f32) -> Vec<Face> {
    let mut kept: Vec<Face> = Vec::new();
    for face in faces {
        if kept.iter().all(|k| k.bbox.iou(&face.bbox) <= iou) {
            kept.push(face);
        }
    }
    kept
}

/// MediaPipe's weighted NMS: every cluster of boxes overlapping the best remaining one by more
/// than `iou` is replaced by their score-weighted average (box and landmarks), keeping the best
/// score. Averaging many anchors' votes steadies boxes from frame to frame. `faces` must be
/// sorted best first.
pub fn weighted_nms(faces: &[Face], iou: f32) -> Vec<Face> {
    let mut remaining: Vec<&Face> = faces.iter().collect();
    let mut kept = Vec::new();
    while let Some(best) = remaining.first().copied() {
        let (cluster, rest): (Vec<&Face>, Vec<&Face>) =
            remaining.into_iter().partition(|f| f.bbox.iou(&best.bbox) > iou);
        remaining = rest;
        // `best` overlaps itself fully, so the cluster is never empty; guard anyway.
        let cluster = if cluster.is_empty() { vec![best] } else { cluster };
        let total: f32 = cluster.iter().map(|f| f.score).sum();
        let mut bbox = BoundingBox::default();
        let mut points = vec![Point::default(); best.landmarks.points.len()];
        for f in &cluster {
            let w = f.score / total;
            bbox.left += f.bbox.left * w;
            bbox.top += f.bbox.top * w;
            bbox.right += f.bbox.right * w;
            bbox.bottom += f.bbox.bottom * w;
            for (acc, p) in points.iter_mut().zip(&f.landmarks.points) {
                acc.x += p.x * w;
                acc.y += p.y * w;
            }
        }
        let mut merged = best.clone();
        merged.bbox = bbox;
        merged.landmarks.points = points;
        kept.push(merged);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddfr_core::{LandmarkScheme, Landmarks};

    fn face(l: f32, t: f32, size: f32, score: f32) -> Face {
        Face {
            bbox: BoundingBox::new(l, t, l + size, t + size),
            score,
            landmarks: Landmarks {
                scheme: LandmarkScheme::ArcFace5,
                points: vec![Point::new(l, t); 5],
            },
        }
    }

    #[test]
    fn hard_nms_drops_overlaps_keeps_separate_faces() {
        let faces =
            vec![face(0.0, 0.0, 10.0, 0.9), face(1.0, 0.0, 10.0, 0.8), face(50.0, 50.0, 10.0, 0.7)];
        let kept = hard_nms(faces, 0.4);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].bbox.left, 50.0);
    }

    #[test]
    fn weighted_nms_averages_a_cluster() {
        let faces =
            vec![face(0.0, 0.0, 10.0, 0.5), face(2.0, 0.0, 10.0, 0.5), face(80.0, 0.0, 10.0, 0.4)];
        let kept = weighted_nms(&faces, 0.3);
        assert_eq!(kept.len(), 2);
        assert!((kept[0].bbox.left - 1.0).abs() < 1e-5);
        assert!((kept[0].landmarks.points[0].x - 1.0).abs() < 1e-5);
        assert_eq!(kept[0].score, 0.5);
    }
}
