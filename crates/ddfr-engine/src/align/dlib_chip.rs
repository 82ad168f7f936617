//! dlib's face chip: `get_face_chip_details(shape, size, padding)` followed by
//! `extract_image_chip`, the aligned crop dlib's face recognition ResNet was trained on.
//!
//! `get_face_chip_details` fits a similarity transform from a fixed 5-point template (scaled
//! into a `size`×`size` chip with `padding` around it) to the detected landmarks and expresses
//! it as a rotated rectangle in the frame. `extract_image_chip` then samples that rectangle
//! with bilinear interpolation; when the rectangle is much larger than the chip, it first
//! builds dlib's 2:1 Gaussian image pyramid (5-tap `[1 4 6 4 1]` filter, integer arithmetic)
//! over the region around the face and samples the level whose scale is just above the chip's,
//! so that the downscale does not alias. Samples whose 2×2 neighbourhood leaves the sampled
//! image are black. All of this is reproduced step for step, including dlib's truncation of
//! interpolated values and its pyramid's sub-pixel offsets, so chips match dlib's to within
//! floating-point rounding.

use ddfr_core::{Landmarks, Point};
use image::RgbImage;

use super::shape_predictor::{Affine, find_similarity_transform};

/// dlib's 5-point chip template in unit coordinates, in the shape predictor's part order
/// (image-right eye outer and inner corners, image-left eye outer and inner corners, base of
/// the nose), from `get_face_chip_details`.
const DLIB5_TEMPLATE: [[f64; 2]; 5] = [
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
];
/// The chip size dlib's face recognition ResNet takes.
pub const DLIB_RESNET_CHIP_SIZE: u32 = 150;
/// The padding dlib's face recognition ResNet was trained with.
pub const DLIB_RESNET_CHIP_PADDING: f32 = 0.25;
/// Images this small or smaller in either dimension have no pyramid level below them.
const PYRAMID_MIN_SIDE: usize = 8;
/// dlib's 2:1 pyramid maps a point `p` to `p / 2 - offset`.
const PYRAMID_OFFSET: [f64; 2] = [1.25, 0.75];
/// The crop around the face starts `GROW_INITIAL` pixels wider than the chip rectangle and
/// grows as `grow * 2 + 2` per pyramid level, so that filtering never sees the crop's edge.
const GROW_INITIAL: f64 = 2.0;
/// Bytes per RGB pixel.
const CHANNELS: usize = 3;

/// The map from chip pixels to frame pixels (`frame = m · chip + b`), so callers can carry
/// points between the two.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChipTransform {
    /// Row-major 2×2 linear part (a rotation and scale).
    pub m: [[f64; 2]; 2],
    /// Translation: where chip pixel `(0, 0)` lands in the frame.
    pub b: [f64; 2],
}

impl ChipTransform {
    /// The frame position of chip pixel `p`.
    pub fn chip_to_frame(&self, p: Point) -> Point {
        let [x, y] = self.affine().apply([f64::from(p.x), f64::from(p.y)]);
        Point::new(x as f32, y as f32)
    }

    /// The chip position of frame pixel `p`, or `None` when the transform is degenerate.
    pub fn frame_to_chip(&self, p: Point) -> Option<Point> {
        let [[a, b], [c, d]] = self.m;
        let det = a * d - b * c;
        if det == 0.0 || !det.is_finite() {
            return None;
        }
        let (x, y) = (f64::from(p.x) - self.b[0], f64::from(p.y) - self.b[1]);
        Some(Point::new(((d * x - b * y) / det) as f32, ((a * y - c * x) / det) as f32))
    }

    fn affine(&self) -> Affine {
        Affine { m: self.m, b: self.b }
    }
}

/// A real-valued rectangle with dlib's `drectangle` conventions (inclusive edges: the width
/// is `right - left + 1`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct DRect {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl DRect {
    const EMPTY: DRect = DRect { left: 0.0, top: 0.0, right: -1.0, bottom: -1.0 };

    fn is_empty(&self) -> bool {
        self.top > self.bottom || self.left > self.right
    }

    fn width(&self) -> f64 {
        if self.is_empty() { 0.0 } else { self.right - self.left + 1.0 }
    }

    fn height(&self) -> f64 {
        if self.is_empty() { 0.0 } else { self.bottom - self.top + 1.0 }
    }

    fn area(&self) -> f64 {
        self.width() * self.height()
    }

    fn center(&self) -> [f64; 2] {
        [(self.left + self.right) / 2.0, (self.top + self.bottom) / 2.0]
    }

    /// dlib's `centered_drect`: a `width`×`height` rectangle (inclusive) centred on `c`.
    fn centered(c: [f64; 2], width: f64, height: f64) -> DRect {
        let (w, h) = (width - 1.0, height - 1.0);
        DRect {
            left: c[0] - w / 2.0,
            top: c[1] - h / 2.0,
            right: c[0] + w / 2.0,
            bottom: c[1] + h / 2.0,
        }
    }

    /// The smallest rectangle holding every point (dlib's `drectangle += point`).
    fn bounding(points: &[[f64; 2]]) -> DRect {
        points.iter().fold(DRect::EMPTY, |r, p| {
            if r.is_empty() {
                DRect { left: p[0], top: p[1], right: p[0], bottom: p[1] }
            } else {
                DRect {
                    left: r.left.min(p[0]),
                    top: r.top.min(p[1]),
                    right: r.right.max(p[0]),
                    bottom: r.bottom.max(p[1]),
                }
            }
        })
    }

    fn grow(&self, by: f64) -> DRect {
        DRect {
            left: self.left - by,
            top: self.top - by,
            right: self.right + by,
            bottom: self.bottom + by,
        }
    }

    fn intersect(&self, o: &DRect) -> DRect {
        DRect {
            left: self.left.max(o.left),
            top: self.top.max(o.top),
            right: self.right.min(o.right),
            bottom: self.bottom.min(o.bottom),
        }
    }

    fn translate(&self, dx: f64, dy: f64) -> DRect {
        DRect {
            left: self.left + dx,
            top: self.top + dy,
            right: self.right + dx,
            bottom: self.bottom + dy,
        }
    }

    /// dlib's `pyramid_down<2>::rect_down`: both corners mapped one level down.
    fn down(&self) -> DRect {
        let d = |v: f64, o: f64| v / 2.0 - o;
        DRect {
            left: d(self.left, PYRAMID_OFFSET[0]),
            top: d(self.top, PYRAMID_OFFSET[1]),
            right: d(self.right, PYRAMID_OFFSET[0]),
            bottom: d(self.bottom, PYRAMID_OFFSET[1]),
        }
    }

    /// dlib's conversion to an integer `rectangle`: each edge rounded half away from zero.
    fn round(&self) -> IRect {
        IRect {
            left: self.left.round() as i64,
            top: self.top.round() as i64,
            right: self.right.round() as i64,
            bottom: self.bottom.round() as i64,
        }
    }
}

/// An integer rectangle with inclusive edges, dlib's `rectangle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IRect {
    left: i64,
    top: i64,
    right: i64,
    bottom: i64,
}

impl IRect {
    fn is_empty(&self) -> bool {
        self.top > self.bottom || self.left > self.right
    }
}

/// What `get_face_chip_details` computes: a rotated rectangle in the frame and a chip size.
#[derive(Debug, Clone, Copy)]
struct ChipDetails {
    rect: DRect,
    angle: f64,
    rows: usize,
    cols: usize,
}

impl ChipDetails {
    fn new(landmarks: &Landmarks, size: u32, padding: f32) -> Self {
        let (size_f, padding) = (f64::from(size), f64::from(padding));
        let chip_points: Vec<[f64; 2]> = DLIB5_TEMPLATE
            .iter()
            .map(|p| p.map(|v| (padding + v) / (2.0 * padding + 1.0) * size_f))
            .collect();
        let frame_points: Vec<[f64; 2]> =
            landmarks.points.iter().map(|p| [f64::from(p.x), f64::from(p.y)]).collect();
        let tform = find_similarity_transform(&chip_points, &frame_points);
        // A similarity is a rotation, a scale and a translation; dlib keeps the first two as
        // an angle and the size of the rectangle, and the translation as its centre.
        let (p0, p1) = (tform.m[0][0], tform.m[1][0]);
        let angle = p1.atan2(p0);
        let scale = p0.hypot(p1);
        let centre = tform.apply([size_f / 2.0, size_f / 2.0]);
        let rect = DRect::centered(centre, size_f * scale, size_f * scale);
        let side = size as usize;
        Self { rect, angle, rows: side, cols: side }
    }

    /// The rectangle's corners rotated about its centre by the chip angle, as dlib's
    /// `rotate_point(center(rect), corner, angle)`: top-left, top-right, bottom-left,
    /// bottom-right.
    fn rotated_corners(rect: &DRect, angle: f64) -> [[f64; 2]; 4] {
        let c = rect.center();
        let (sin, cos) = angle.sin_cos();
        let rot = |x: f64, y: f64| {
            let (dx, dy) = (x - c[0], y - c[1]);
            [cos * dx - sin * dy + c[0], sin * dx + cos * dy + c[1]]
        };
        [
            rot(rect.left, rect.top),
            rot(rect.right, rect.top),
            rot(rect.left, rect.bottom),
            rot(rect.right, rect.bottom),
        ]
    }

    /// The affine map taking chip pixel `(0,0)`, `(cols-1, 0)` and `(0, rows-1)` to the
    /// rotated corners of `rect` (dlib's `find_affine_transform` on those three pairs). A
    /// one-pixel side has no extent, so it maps to the corner's side midpoint, as dlib's
    /// pseudo-inverse would.
    fn chip_to_rect(&self, rect: &DRect) -> Affine {
        let [tl, tr, bl, _] = Self::rotated_corners(rect, self.angle);
        let step = |to: [f64; 2], n: usize| {
            if n > 1 {
                let n = (n - 1) as f64;
                ([(to[0] - tl[0]) / n, (to[1] - tl[1]) / n], [0.0, 0.0])
            } else {
                ([0.0, 0.0], [(to[0] - tl[0]) / 2.0, (to[1] - tl[1]) / 2.0])
            }
        };
        let (col_step, col_shift) = step(tr, self.cols);
        let (row_step, row_shift) = step(bl, self.rows);
        Affine {
            m: [[col_step[0], row_step[0]], [col_step[1], row_step[1]]],
            b: [tl[0] + col_shift[0] + row_shift[0], tl[1] + col_shift[1] + row_shift[1]],
        }
    }
}

/// The chip's similarity transform (chip pixel → frame pixel) for `extract_dlib_chip` with the
/// same arguments. This is the full-resolution map; when dlib samples from a pyramid level the
/// result differs from it only by that level's sub-pixel filtering offsets.
pub fn dlib_chip_transform(landmarks: &Landmarks, size: u32, padding: f32) -> ChipTransform {
    let details = ChipDetails::new(landmarks, size, padding);
    let affine = details.chip_to_rect(&details.rect);
    ChipTransform { m: affine.m, b: affine.b }
}

/// dlib's `get_face_chip_details(shape, size, padding)` followed by `extract_image_chip`: the
/// `size`×`size` RGB chip dlib's face recognition ResNet expects (size 150, padding 0.25).
///
/// `landmarks` must be dlib's 5 points ([`ddfr_core::LandmarkScheme::Dlib5`], as
/// [`super::shape_predictor::ShapePredictor::predict`] returns them); they are paired with the
/// template in order, so points of another scheme give a meaningless chip. With fewer than two
/// points there is no transform to fit and the chip is black. Parts of the chip that fall
/// outside the frame are black, as in dlib.
pub fn extract_dlib_chip(
    frame: &RgbImage,
    landmarks: &Landmarks,
    size: u32,
    padding: f32,
) -> RgbImage {
    let mut chip = RgbImage::new(size, size);
    if size == 0 || landmarks.points.len() < 2 {
        return chip;
    }
    let details = ChipDetails::new(landmarks, size, padding);
    // Non-finite landmarks give no rectangle to sample (and would never leave the pyramid
    // loop below).
    if !details.rect.area().is_finite() || !details.angle.is_finite() {
        return chip;
    }
    let target_area = (details.rows * details.cols) as f64;
    let frame_view = View::of_frame(frame);

    // dlib copies pixels directly when no rotation or scaling is needed.
    if details.angle == 0.0
        && details.rows as f64 == details.rect.height()
        && details.cols as f64 == details.rect.width()
    {
        copy_unscaled(&frame_view, details.rect.round(), &mut chip);
        return chip;
    }

    // How many pyramid levels the chip needs, and how much margin the crop needs for them.
    let mut depth = 0usize;
    let mut grow = GROW_INITIAL;
    let mut r = details.rect.down();
    while r.area() > target_area {
        r = r.down();
        depth += 1;
        grow = grow * 2.0 + 2.0;
    }
    let frame_rect = DRect {
        left: 0.0,
        top: 0.0,
        right: frame.width() as f64 - 1.0,
        bottom: frame.height() as f64 - 1.0,
    };
    let rotated = DRect::bounding(&ChipDetails::rotated_corners(&details.rect, details.angle));
    let crop = rotated.grow(grow).intersect(&frame_rect).round();
    let crop =
        if crop.is_empty() { IRect { left: 0, top: 0, right: -1, bottom: -1 } } else { crop };
    let base = frame_view.sub(crop);

    let mut levels: Vec<Level> = Vec::with_capacity(depth);
    for _ in 0..depth {
        let next = match levels.last() {
            Some(prev) => pyramid_down(&prev.view()),
            None => pyramid_down(&base),
        };
        levels.push(next);
    }

    // The level to sample: the smallest whose copy of the rectangle is still above chip size.
    let mut level: Option<usize> = None;
    let mut rect = details.rect.translate(-crop.left as f64, -crop.top as f64);
    while rect.down().area() > target_area {
        level = Some(level.map_or(0, |l| l + 1));
        rect = rect.down();
    }
    let source = match level.and_then(|l| levels.get(l)) {
        Some(l) => l.view(),
        None => base,
    };
    let map = details.chip_to_rect(&rect);
    let out = chip.as_flat_samples_mut().samples;
    for (r, row) in out.chunks_exact_mut(details.cols * CHANNELS).enumerate() {
        for (c, px) in row.chunks_exact_mut(CHANNELS).enumerate() {
            let p = map.apply([c as f64, r as f64]);
            if let Some(v) = source.bilinear(p) {
                px.copy_from_slice(&v);
            }
        }
    }
    chip
}

/// dlib's `basic_extract_image_chip`: a plain copy of `rect` with black outside the frame.
fn copy_unscaled(frame: &View<'_>, rect: IRect, chip: &mut RgbImage) {
    for (r, row) in chip.rows_mut().enumerate() {
        for (c, px) in row.enumerate() {
            let (x, y) = (rect.left + c as i64, rect.top + r as i64);
            if let Some(v) = frame.get(x, y) {
                px.0 = v;
            }
        }
    }
}

/// A read-only window onto RGB pixels: a frame, a crop of it, or a pyramid level.
#[derive(Debug, Clone, Copy)]
struct View<'a> {
    data: &'a [u8],
    /// Pixels per row of `data`.
    stride: usize,
    x0: usize,
    y0: usize,
    width: usize,
    height: usize,
}

impl<'a> View<'a> {
    fn of_frame(frame: &'a RgbImage) -> Self {
        let (width, height) = (frame.width() as usize, frame.height() as usize);
        View { data: frame.as_raw(), stride: width, x0: 0, y0: 0, width, height }
    }

    /// dlib's `sub_image`: the part of this view inside `rect` (already clipped to it).
    fn sub(&self, rect: IRect) -> Self {
        if rect.is_empty() {
            return View { width: 0, height: 0, ..*self };
        }
        let clamp = |v: i64, max: usize| v.clamp(0, max as i64) as usize;
        let (left, top) = (clamp(rect.left, self.width), clamp(rect.top, self.height));
        let (right, bottom) =
            (clamp(rect.right + 1, self.width), clamp(rect.bottom + 1, self.height));
        View {
            x0: self.x0 + left,
            y0: self.y0 + top,
            width: right.saturating_sub(left),
            height: bottom.saturating_sub(top),
            ..*self
        }
    }

    fn px(&self, x: usize, y: usize) -> [u8; 3] {
        let i = ((self.y0 + y) * self.stride + self.x0 + x) * CHANNELS;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    fn get(&self, x: i64, y: i64) -> Option<[u8; 3]> {
        let inside = (0..self.width as i64).contains(&x) && (0..self.height as i64).contains(&y);
        inside.then(|| self.px(x as usize, y as usize))
    }

    /// dlib's `interpolate_bilinear`: `None` when the 2×2 neighbourhood leaves the view;
    /// otherwise each channel interpolated in `f64` and truncated.
    fn bilinear(&self, [x, y]: [f64; 2]) -> Option<[u8; 3]> {
        let (fx, fy) = (x.floor(), y.floor());
        // Reject before converting: a NaN or huge coordinate is simply outside.
        if !(fx >= 0.0
            && fy >= 0.0
            && fx + 1.0 < self.width as f64
            && fy + 1.0 < self.height as f64)
        {
            return None;
        }
        let (left, top) = (fx as usize, fy as usize);
        let (lr, tb) = (x - fx, y - fy);
        let (tl, tr) = (self.px(left, top), self.px(left + 1, top));
        let (bl, br) = (self.px(left, top + 1), self.px(left + 1, top + 1));
        let mut out = [0u8; 3];
        for (k, o) in out.iter_mut().enumerate() {
            let [tl, tr, bl, br] = [tl[k], tr[k], bl[k], br[k]].map(f64::from);
            let v = (1.0 - tb) * ((1.0 - lr) * tl + lr * tr) + tb * ((1.0 - lr) * bl + lr * br);
            *o = v as u8;
        }
        Some(out)
    }
}

/// One owned pyramid level.
#[derive(Debug)]
struct Level {
    data: Vec<u8>,
    width: usize,
    height: usize,
}

impl Level {
    fn view(&self) -> View<'_> {
        View {
            data: &self.data,
            stride: self.width,
            x0: 0,
            y0: 0,
            width: self.width,
            height: self.height,
        }
    }
}

/// dlib's `pyramid_down<2>` for RGB: a separable `[1 4 6 4 1]` filter, every other row and
/// column kept, sums in 16-bit integers and the result truncated (`/ 256`). Output is
/// `((h - 3) / 2) × ((w - 3) / 2)`; images with a side of 8 or less have no level below.
fn pyramid_down(src: &View<'_>) -> Level {
    if src.width <= PYRAMID_MIN_SIDE || src.height <= PYRAMID_MIN_SIDE {
        return Level { data: Vec::new(), width: 0, height: 0 };
    }
    let (out_w, out_h) = ((src.width - 3) / 2, (src.height - 3) / 2);
    // Horizontal pass on every source row: column c is centred on source column 2c + 2.
    let mut rows = vec![0u16; src.height * out_w * CHANNELS];
    for y in 0..src.height {
        for c in 0..out_w {
            let p: [[u8; 3]; 5] = std::array::from_fn(|k| src.px(2 * c + k, y));
            for ch in 0..CHANNELS {
                let [a, b, m, d, e] = p.map(|v| u16::from(v[ch]));
                rows[(y * out_w + c) * CHANNELS + ch] = a + 4 * b + 6 * m + 4 * d + e;
            }
        }
    }
    // Vertical pass: output row r is centred on source row 2r + 2.
    let mut data = vec![0u8; out_w * out_h * CHANNELS];
    for r in 0..out_h {
        let y = 2 * r + 2;
        for c in 0..out_w {
            for ch in 0..CHANNELS {
                let at = |yy: usize| rows[(yy * out_w + c) * CHANNELS + ch];
                let sum = at(y - 2) + 4 * at(y - 1) + 6 * at(y) + 4 * at(y + 1) + at(y + 2);
                data[(r * out_w + c) * CHANNELS + ch] = (sum / 256) as u8;
            }
        }
    }
    Level { data, width: out_w, height: out_h }
}

#[cfg(test)]
mod tests {
    use ddfr_core::LandmarkScheme;

    use super::*;

    fn template_landmarks(size: f64, padding: f64, offset: [f64; 2]) -> Landmarks {
        Landmarks {
            scheme: LandmarkScheme::Dlib5,
            points: DLIB5_TEMPLATE
                .iter()
                .map(|p| {
                    let q = p.map(|v| (padding + v) / (2.0 * padding + 1.0) * size);
                    Point::new((q[0] + offset[0]) as f32, (q[1] + offset[1]) as f32)
                })
                .collect(),
        }
    }

    #[test]
    fn template_points_map_onto_the_template() {
        let lm = template_landmarks(300.0, 0.25, [40.0, 25.0]);
        let tf = dlib_chip_transform(&lm, 150, 0.25);
        let back = tf.frame_to_chip(lm.points[4]).unwrap();
        let expected = (0.25 + DLIB5_TEMPLATE[4][0]) / 1.5 * 150.0;
        // The chip spans `size * scale - 1` frame pixels over `size - 1` chip pixels, so the
        // map is within a pixel of the pure similarity.
        assert!((f64::from(back.x) - expected).abs() < 1.0, "{back:?} vs {expected}");
        let there = tf.chip_to_frame(back);
        assert!((there.x - lm.points[4].x).abs() < 1e-3);
    }

    #[test]
    fn pyramid_of_a_flat_image_is_flat_and_sized_like_dlibs() {
        let frame = RgbImage::from_pixel(21, 13, image::Rgb([200, 100, 50]));
        let level = pyramid_down(&View::of_frame(&frame));
        assert_eq!((level.width, level.height), (9, 5));
        assert!(level.data.chunks_exact(3).all(|p| p == [200, 100, 50]));
    }

    #[test]
    fn bilinear_truncates_and_rejects_the_last_row_and_column() {
        let mut frame = RgbImage::new(2, 2);
        frame.put_pixel(1, 0, image::Rgb([255, 255, 255]));
        let v = View::of_frame(&frame);
        assert_eq!(v.bilinear([0.5, 0.0]), Some([127, 127, 127]));
        assert_eq!(v.bilinear([1.0, 0.0]), None);
        assert_eq!(v.bilinear([f64::NAN, 0.0]), None);
    }
}
