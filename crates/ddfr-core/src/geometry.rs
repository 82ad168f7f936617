//! Boxes, points and detected faces, in frame pixel coordinates (x right, y down).

use serde::{Deserialize, Serialize};

/// A point in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Point {
    /// Horizontal coordinate, pixels from the left edge.
    pub x: f32,
    /// Vertical coordinate, pixels from the top edge.
    pub y: f32,
}

impl Point {
    /// A point at `(x, y)`.
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
}

/// An axis-aligned box in frame pixels with sub-pixel precision.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BoundingBox {
    /// Left edge.
    pub left: f32,
    /// Top edge.
    pub top: f32,
    /// Right edge (exclusive).
    pub right: f32,
    /// Bottom edge (exclusive).
    pub bottom: f32,
}

/// A box rounded to whole pixels and clamped to the frame, as the wire format wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PixelBox {
    /// Top edge.
    pub top: i32,
    /// Right edge.
    pub right: i32,
    /// Bottom edge.
    pub bottom: i32,
    /// Left edge.
    pub left: i32,
}

impl BoundingBox {
    /// A box from its edges.
    pub const fn new(left: f32, top: f32, right: f32, bottom: f32) -> Self {
        Self { left, top, right, bottom }
    }

    /// Width in pixels (0 for an inverted box).
    pub fn width(&self) -> f32 {
        (self.right - self.left).max(0.0)
    }

    /// Height in pixels (0 for an inverted box).
    pub fn height(&self) -> f32 {
        (self.bottom - self.top).max(0.0)
    }

    /// Area in square pixels.
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// The centre of the box.
    pub fn center(&self) -> Point {
        Point::new((self.left + self.right) / 2.0, (self.top + self.bottom) / 2.0)
    }

    /// Intersection over union with `other`, in `[0, 1]`.
    pub fn iou(&self, other: &BoundingBox) -> f32 {
        let inter = BoundingBox::new(
            self.left.max(other.left),
            self.top.max(other.top),
            self.right.min(other.right),
            self.bottom.min(other.bottom),
        )
        .area();
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// The box clipped to a `width` × `height` frame.
    pub fn clamp_to(&self, width: u32, height: u32) -> BoundingBox {
        let (w, h) = (width as f32, height as f32);
        BoundingBox::new(
            self.left.clamp(0.0, w),
            self.top.clamp(0.0, h),
            self.right.clamp(0.0, w),
            self.bottom.clamp(0.0, h),
        )
    }

    /// Rounds to whole pixels inside a `width` × `height` frame.
    pub fn to_pixels(&self, width: u32, height: u32) -> PixelBox {
        let clamped = self.clamp_to(width, height);
        PixelBox {
            top: clamped.top.round() as i32,
            right: clamped.right.round() as i32,
            bottom: clamped.bottom.round() as i32,
            left: clamped.left.round() as i32,
        }
    }
}

/// Which points a detector or landmark model returns, in which order.
///
/// "Left" and "right" are as seen in the image (image-left first), not the subject's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LandmarkScheme {
    /// InsightFace / ArcFace order: left eye, right eye, nose tip, left mouth corner,
    /// right mouth corner. SCRFD and YuNet produce it.
    ArcFace5,
    /// MediaPipe BlazeFace order: left eye, right eye, nose tip, mouth centre, left ear
    /// tragion, right ear tragion.
    BlazeFace6,
    /// dlib's 5-point shape predictor order: right eye outer corner, right eye inner corner,
    /// left eye outer corner, left eye inner corner, base of the nose (dlib's own indices).
    Dlib5,
}

impl LandmarkScheme {
    /// How many points the scheme has.
    pub const fn len(self) -> usize {
        match self {
            LandmarkScheme::ArcFace5 | LandmarkScheme::Dlib5 => 5,
            LandmarkScheme::BlazeFace6 => 6,
        }
    }

    /// Always false: every scheme has points. Present for symmetry with `len`.
    pub const fn is_empty(self) -> bool {
        false
    }
}

/// Facial landmarks in frame pixels, tagged with their scheme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Landmarks {
    /// The scheme that gives each point its meaning.
    pub scheme: LandmarkScheme,
    /// `scheme.len()` points.
    pub points: Vec<Point>,
}

/// One detected face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// The face box in frame pixels.
    pub bbox: BoundingBox,
    /// Detector confidence in `[0, 1]`.
    pub score: f32,
    /// The detector's landmarks.
    pub landmarks: Landmarks,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_boxes_is_one_and_of_disjoint_is_zero() {
        let a = BoundingBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BoundingBox::new(20.0, 20.0, 30.0, 30.0);
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        assert_eq!(a.iou(&b), 0.0);
        let c = BoundingBox::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&c) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn pixels_are_clamped_and_rounded() {
        let b = BoundingBox::new(-3.2, 4.6, 700.0, 99.4);
        assert_eq!(b.to_pixels(640, 480), PixelBox { top: 5, right: 640, bottom: 99, left: 0 });
    }
}
