//! Face quality measures for the enrollment gate: sharpness of the aligned chip and head pose
//! from landmarks. Both are cheap (microseconds) and model-independent.

use ddfr_core::{LandmarkScheme, Landmarks, Point};
use image::RgbImage;

/// Head pose read off the landmarks, in units of the distance between the eyes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoseRatios {
    /// Sideways offset of the nose from the midpoint between the eyes, along the eye line,
    /// divided by the eye distance: 0 for a frontal face, about 0.35 at 30° of yaw and 0.6 at
    /// 45° (the nose sits about 0.6 eye distances in front of the eyes), unbounded in profile
    /// as the far eye disappears behind the nose. Always ≥ 0.
    pub yaw: f32,
    /// Offset of the nose from the eye line, perpendicular to it, divided by the eye distance:
    /// about 0.4–0.9 for a level face depending on the scheme's nose point; small or negative
    /// when the head tilts far back, large when it bows forward.
    pub pitch: f32,
}

/// The two eye centres and the nose point of a landmark set.
fn eyes_and_nose(landmarks: &Landmarks) -> Option<(Point, Point, Point)> {
    let p = &landmarks.points;
    if p.len() != landmarks.scheme.len() {
        return None;
    }
    let mid = |a: Point, b: Point| Point::new((a.x + b.x) / 2.0, (a.y + b.y) / 2.0);
    Some(match landmarks.scheme {
        LandmarkScheme::ArcFace5 | LandmarkScheme::BlazeFace6 => (p[0], p[1], p[2]),
        LandmarkScheme::Dlib5 => (mid(p[0], p[1]), mid(p[2], p[3]), p[4]),
    })
}

/// Yaw and pitch ratios of a face (see [`PoseRatios`]); `None` when the eyes coincide or the
/// landmarks are incomplete.
pub fn pose_ratios(landmarks: &Landmarks) -> Option<PoseRatios> {
    let (a, b, nose) = eyes_and_nose(landmarks)?;
    // Orient the eye line left to right in the image so "below the eyes" is positive.
    let (a, b) = if a.x <= b.x { (a, b) } else { (b, a) };
    let (ex, ey) = (b.x - a.x, b.y - a.y);
    let norm2 = ex * ex + ey * ey;
    if norm2.is_nan() || norm2 <= 1e-6 {
        return None;
    }
    let (nx, ny) = (nose.x - (a.x + b.x) / 2.0, nose.y - (a.y + b.y) / 2.0);
    let along = (nx * ex + ny * ey) / norm2;
    let across = (ex * ny - ey * nx) / norm2;
    Some(PoseRatios { yaw: along.abs(), pitch: across })
}

/// Sharpness of an aligned chip: the variance of the 3×3 Laplacian of its luma over the
/// central region (the face, without the chip's padding), divided by the variance of the luma
/// there. Dividing by the contrast makes it independent of exposure; blur removes the fine
/// detail the Laplacian sees, so it falls steeply as a face gets blurrier. Chips of one
/// aligner have one size, so values are comparable within a pack.
pub fn sharpness(chip: &RgbImage) -> f32 {
    let (w, h) = chip.dimensions();
    if w < 8 || h < 8 {
        return 0.0;
    }
    let luma: Vec<f32> = chip
        .pixels()
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect();
    let at = |x: u32, y: u32| luma[(y * w + x) as usize];
    // The central 60 %: eyes, nose and mouth of an aligned face.
    let (x0, x1) = (w / 5, w - w / 5);
    let (y0, y1) = (h / 5, h - h / 5);
    let (mut lap_sum, mut lap_sq, mut lum_sum, mut lum_sq, mut n) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for y in y0.max(1)..y1.min(h - 1) {
        for x in x0.max(1)..x1.min(w - 1) {
            let c = at(x, y);
            let lap = at(x - 1, y) + at(x + 1, y) + at(x, y - 1) + at(x, y + 1) - 4.0 * c;
            lap_sum += f64::from(lap);
            lap_sq += f64::from(lap) * f64::from(lap);
            lum_sum += f64::from(c);
            lum_sq += f64::from(c) * f64::from(c);
            n += 1.0;
        }
    }
    if n < 1.0 {
        return 0.0;
    }
    let lap_var = lap_sq / n - (lap_sum / n).powi(2);
    let lum_var = lum_sq / n - (lum_sum / n).powi(2);
    if lum_var < 1.0 {
        return 0.0; // a flat patch: nothing to recognise
    }
    (lap_var / lum_var) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn landmarks(scheme: LandmarkScheme, points: &[(f32, f32)]) -> Landmarks {
        Landmarks { scheme, points: points.iter().map(|&(x, y)| Point::new(x, y)).collect() }
    }

    #[test]
    fn frontal_face_has_no_yaw_and_a_turned_one_has() {
        let frontal = landmarks(
            LandmarkScheme::ArcFace5,
            &[(30.0, 40.0), (70.0, 40.0), (50.0, 62.0), (35.0, 80.0), (65.0, 80.0)],
        );
        let pose = pose_ratios(&frontal).unwrap();
        assert!(pose.yaw.abs() < 1e-6);
        assert!((pose.pitch - 0.55).abs() < 1e-6);
        let turned = landmarks(
            LandmarkScheme::ArcFace5,
            &[(30.0, 40.0), (70.0, 40.0), (74.0, 62.0), (35.0, 80.0), (65.0, 80.0)],
        );
        assert!((pose_ratios(&turned).unwrap().yaw - 0.6).abs() < 1e-6);
    }

    #[test]
    fn pose_is_invariant_to_roll_scale_and_eye_order() {
        let base = [(30.0f32, 40.0f32), (70.0, 40.0), (58.0, 62.0)];
        let roll = 0.7f32;
        let rotated: Vec<(f32, f32)> = base
            .iter()
            .map(|&(x, y)| {
                (3.0 * (x * roll.cos() - y * roll.sin()), 3.0 * (x * roll.sin() + y * roll.cos()))
            })
            .collect();
        let mut swapped = rotated.clone();
        swapped.swap(0, 1);
        let a = pose_ratios(&landmarks(
            LandmarkScheme::ArcFace5,
            &[base[0], base[1], base[2], (0.0, 0.0), (0.0, 0.0)],
        ))
        .unwrap();
        let b = pose_ratios(&landmarks(
            LandmarkScheme::ArcFace5,
            &[rotated[0], rotated[1], rotated[2], (0.0, 0.0), (0.0, 0.0)],
        ))
        .unwrap();
        let c = pose_ratios(&landmarks(
            LandmarkScheme::ArcFace5,
            &[swapped[0], swapped[1], swapped[2], (0.0, 0.0), (0.0, 0.0)],
        ))
        .unwrap();
        assert!((a.yaw - b.yaw).abs() < 1e-4 && (a.yaw - c.yaw).abs() < 1e-4);
        assert!((a.pitch - b.pitch).abs() < 1e-4 && (a.pitch - c.pitch).abs() < 1e-4);
    }

    #[test]
    fn dlib_points_use_eye_centres() {
        let dlib = landmarks(
            LandmarkScheme::Dlib5,
            &[(20.0, 40.0), (40.0, 40.0), (80.0, 40.0), (60.0, 40.0), (50.0, 70.0)],
        );
        let pose = pose_ratios(&dlib).unwrap();
        assert!(pose.yaw.abs() < 1e-6 && (pose.pitch - 0.75).abs() < 1e-6);
        let degenerate = landmarks(LandmarkScheme::ArcFace5, &[(1.0, 1.0); 5]);
        assert!(pose_ratios(&degenerate).is_none());
        let short = landmarks(LandmarkScheme::ArcFace5, &[(1.0, 1.0); 3]);
        assert!(pose_ratios(&short).is_none());
    }

    #[test]
    fn blur_lowers_sharpness_and_contrast_does_not_matter() {
        // A high-frequency pattern, then blurred, then at a quarter of the contrast.
        let sharp = RgbImage::from_fn(150, 150, |x, y| {
            let v = if (x / 2 + y / 2) % 2 == 0 { 200 } else { 40 };
            image::Rgb([v, v, v])
        });
        let blurred = image::imageops::blur(&sharp, 2.0);
        let faint = RgbImage::from_fn(150, 150, |x, y| {
            let v = sharp.get_pixel(x, y)[0] / 4 + 100;
            image::Rgb([v, v, v])
        });
        let (s, b, f) = (sharpness(&sharp), sharpness(&blurred), sharpness(&faint));
        assert!(b < s / 5.0, "sharp {s}, blurred {b}");
        assert!((f - s).abs() / s < 0.05, "sharp {s}, faint {f}");
        assert_eq!(sharpness(&RgbImage::from_pixel(150, 150, image::Rgb([9, 9, 9]))), 0.0);
    }
}
