//! dlib's shape predictor (an ensemble of regression trees, Kazemi & Sullivan 2014), read from
//! dlib's own `.dat` file and run exactly as `dlib::shape_predictor::operator()` does.
//!
//! The model is a cascade. Each level samples a few hundred pixel intensities at positions
//! defined relative to the current shape estimate, then every tree of the level compares pairs
//! of those intensities to pick a leaf and adds the leaf's shape offset. Shapes live in a
//! normalised space where the detection rectangle's top-left corner is `(0, 0)` and its
//! bottom-right corner `(1, 1)`.
//!
//! Faithfulness notes, each matching dlib: intensities are `(r + g + b) / 3` with integer
//! division; sample positions are rounded to the nearest pixel and samples outside the frame
//! read 0; the shape-to-shape similarity transform is applied in `f32`; and the returned
//! landmarks are rounded to whole pixels (dlib's `full_object_detection` holds integer points).

use std::path::Path;

use ddfr_core::{BoundingBox, LandmarkScheme, Landmarks, Point};
use image::RgbImage;

use super::dlib_stream::{DlibStream, MIN_FLOAT_BYTES, MIN_SCALAR_BYTES};
use crate::EngineError;

/// The only `shape_predictor` serialization version dlib writes.
const SERIALIZATION_VERSION: i32 = 1;
/// Smallest serialized split: three scalars (two indices and a threshold float).
const MIN_SPLIT_BYTES: usize = 2 * MIN_SCALAR_BYTES + MIN_FLOAT_BYTES;
/// Smallest serialized matrix: its two dimension integers.
const MIN_MATRIX_BYTES: usize = 2 * MIN_SCALAR_BYTES;
/// Smallest serialized tree: two empty vectors (a count each).
const MIN_TREE_BYTES: usize = 2 * MIN_SCALAR_BYTES;

/// One comparison in a regression tree: go left when `f[idx1] - f[idx2] > thresh`.
#[derive(Debug, Clone, Copy)]
struct Split {
    idx1: u32,
    idx2: u32,
    thresh: f32,
}

/// A complete binary tree stored breadth-first, with its leaves' shape offsets.
#[derive(Debug, Clone)]
struct RegressionTree {
    splits: Vec<Split>,
    /// `splits.len() + 1` leaves, each a shape offset of `2 * num_parts` values, flattened.
    leaf_values: Vec<f32>,
}

/// One level of the cascade: its trees and the pixels its features sample.
#[derive(Debug, Clone)]
struct Cascade {
    trees: Vec<RegressionTree>,
    /// For each feature pixel, the initial-shape part it is anchored to.
    anchor_idx: Vec<usize>,
    /// For each feature pixel, its offset from the anchor part in the initial shape.
    deltas: Vec<[f32; 2]>,
}

/// A dlib shape predictor (for example `shape_predictor_5_face_landmarks.dat`).
#[derive(Debug, Clone)]
pub struct ShapePredictor {
    /// The mean shape, as interleaved `x, y` pairs in rectangle-normalised coordinates.
    initial_shape: Vec<f32>,
    cascades: Vec<Cascade>,
}

/// An affine map `p -> m * p + b` in `f64`, as dlib's `point_transform_affine`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Affine {
    /// Row-major 2×2 linear part.
    pub(crate) m: [[f64; 2]; 2],
    /// Translation.
    pub(crate) b: [f64; 2],
}

impl Affine {
    /// The identity map.
    pub(crate) const IDENTITY: Affine = Affine { m: [[1.0, 0.0], [0.0, 1.0]], b: [0.0, 0.0] };

    /// Applies the map to `(x, y)`.
    pub(crate) fn apply(&self, [x, y]: [f64; 2]) -> [f64; 2] {
        [
            self.m[0][0] * x + self.m[0][1] * y + self.b[0],
            self.m[1][0] * x + self.m[1][1] * y + self.b[1],
        ]
    }
}

/// The least-squares similarity transform (rotation, uniform scale, translation) taking
/// `from[i]` to `to[i]`, as dlib's `find_similarity_transform`.
///
/// dlib follows Umeyama's SVD formulation; in two dimensions its optimum has the closed form
/// used here (`c·R = [[a, -b], [b, a]] / σ²` with `a = Σ p·q`, `b = Σ p×q` over centred
/// points), which agrees with dlib's up to floating-point rounding, including dlib's choice of
/// a proper rotation when the covariance has a negative determinant.
pub(crate) fn find_similarity_transform(from: &[[f64; 2]], to: &[[f64; 2]]) -> Affine {
    let n = from.len().min(to.len());
    if n == 0 {
        return Affine::IDENTITY;
    }
    let mean = |pts: &[[f64; 2]]| {
        let (sx, sy) = pts[..n].iter().fold((0.0, 0.0), |(sx, sy), p| (sx + p[0], sy + p[1]));
        [sx / n as f64, sy / n as f64]
    };
    let (mf, mt) = (mean(from), mean(to));
    let (mut dot, mut cross, mut sigma_from) = (0.0, 0.0, 0.0);
    for (f, t) in from[..n].iter().zip(&to[..n]) {
        let (px, py) = (f[0] - mf[0], f[1] - mf[1]);
        let (qx, qy) = (t[0] - mt[0], t[1] - mt[1]);
        dot += px * qx + py * qy;
        cross += px * qy - py * qx;
        sigma_from += px * px + py * py;
    }
    // dlib keeps a unit scale (and, with a zero covariance, no rotation) when every source
    // point coincides.
    let (a, b) =
        if sigma_from == 0.0 { (1.0, 0.0) } else { (dot / sigma_from, cross / sigma_from) };
    let m = [[a, -b], [b, a]];
    let b_vec =
        [mt[0] - (m[0][0] * mf[0] + m[0][1] * mf[1]), mt[1] - (m[1][0] * mf[0] + m[1][1] * mf[1])];
    Affine { m, b: b_vec }
}

/// A dlib `rectangle` (inclusive integer-or-fractional edges) as used by the predictor.
#[derive(Debug, Clone, Copy)]
struct DlibRect {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl DlibRect {
    /// dlib's `unnormalizing_tform(rect)`: `(0,0)` to the top-left corner and `(1,1)` to the
    /// bottom-right one. dlib solves it with a pseudo-inverse; the exact solution is written
    /// out here.
    fn unnormalize(&self, [x, y]: [f64; 2]) -> [f64; 2] {
        [self.left + x * (self.right - self.left), self.top + y * (self.bottom - self.top)]
    }
}

/// The ddfr box for a dlib rectangle `(left, top, right, bottom)`, whose right and bottom
/// edges are inclusive (a dlib rectangle's width is `right - left + 1`).
pub fn bounding_box_from_dlib_rect(left: f32, top: f32, right: f32, bottom: f32) -> BoundingBox {
    BoundingBox::new(left, top, right + 1.0, bottom + 1.0)
}

/// dlib's rounding of a real point to a pixel: `floor(v + 0.5)`.
fn round_half_up(v: f64) -> f64 {
    (v + 0.5).floor()
}

impl ShapePredictor {
    /// Reads a model from the bytes of a dlib `.dat` file.
    pub fn from_dat_bytes(bytes: &[u8]) -> Result<Self, EngineError> {
        let mut s = DlibStream::new(bytes);
        let start = s.offset();
        if s.read_i32()? != SERIALIZATION_VERSION {
            return Err(DlibStream::error_at(start, "unsupported shape_predictor version"));
        }
        let shape_at = s.offset();
        let initial_shape = s.read_column_f32()?;
        if initial_shape.is_empty() || initial_shape.len() % 2 != 0 {
            return Err(DlibStream::error_at(shape_at, "initial shape must hold x, y pairs"));
        }
        let num_parts = initial_shape.len() / 2;

        let forests = s.read_vec(MIN_SCALAR_BYTES, |s| {
            s.read_vec(MIN_TREE_BYTES, |s| read_tree(s, initial_shape.len()))
        })?;
        let anchors_at = s.offset();
        let anchor_idx = s.read_vec(MIN_SCALAR_BYTES, |s| {
            s.read_vec(MIN_SCALAR_BYTES, |s| {
                let at = s.offset();
                usize::try_from(s.read_u64()?)
                    .ok()
                    .filter(|&a| a < num_parts)
                    .ok_or_else(|| DlibStream::error_at(at, "anchor index is not a shape part"))
            })
        })?;
        let deltas_at = s.offset();
        let deltas = s.read_vec(MIN_SCALAR_BYTES, |s| {
            s.read_vec(2 * MIN_FLOAT_BYTES, DlibStream::read_point_f32)
        })?;

        if anchor_idx.len() != forests.len() {
            return Err(DlibStream::error_at(
                anchors_at,
                "one anchor set per cascade level expected",
            ));
        }
        if deltas.len() != forests.len() {
            return Err(DlibStream::error_at(
                deltas_at,
                "one delta set per cascade level expected",
            ));
        }
        let mut cascades = Vec::with_capacity(forests.len());
        for ((trees, anchor_idx), deltas) in forests.into_iter().zip(anchor_idx).zip(deltas) {
            if anchor_idx.len() != deltas.len() {
                return Err(DlibStream::error_at(deltas_at, "anchor and delta counts differ"));
            }
            let num_features = deltas.len();
            let in_range = |i: u32| (i as usize) < num_features;
            if trees
                .iter()
                .flat_map(|t| &t.splits)
                .any(|sp| !in_range(sp.idx1) || !in_range(sp.idx2))
            {
                return Err(DlibStream::error_at(
                    anchors_at,
                    "a split reads a feature that does not exist",
                ));
            }
            cascades.push(Cascade { trees, anchor_idx, deltas });
        }
        Ok(Self { initial_shape, cascades })
    }

    /// Reads a model from a dlib `.dat` file.
    pub fn open(path: &Path) -> Result<Self, EngineError> {
        let bytes = std::fs::read(path)
            .map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
        Self::from_dat_bytes(&bytes)
    }

    /// How many landmarks the model predicts.
    pub fn num_parts(&self) -> usize {
        self.initial_shape.len() / 2
    }

    /// dlib's `shape_predictor::operator()(img, rect)`: the landmarks in frame pixels,
    /// rounded to whole pixels as dlib returns them.
    ///
    /// `rect` is the face box from a detector trained like dlib's (HOG or MMOD); its right and
    /// bottom edges are exclusive, so dlib's inclusive rectangle is
    /// `(left, top, right - 1, bottom - 1)` (see [`bounding_box_from_dlib_rect`]). The scheme is
    /// [`LandmarkScheme::Dlib5`]; a model with another number of parts is still run, and its
    /// points are returned under that tag with `num_parts()` points.
    pub fn predict(&self, frame: &RgbImage, rect: &BoundingBox) -> Landmarks {
        let points = self
            .predict_unrounded(frame, rect)
            .into_iter()
            .map(|[x, y]| Point::new(round_half_up(x) as f32, round_half_up(y) as f32))
            .collect();
        Landmarks { scheme: LandmarkScheme::Dlib5, points }
    }

    /// The cascade's output in frame pixels before dlib's final rounding to whole pixels.
    pub fn predict_unrounded(&self, frame: &RgbImage, rect: &BoundingBox) -> Vec<[f64; 2]> {
        let rect = DlibRect {
            left: f64::from(rect.left),
            top: f64::from(rect.top),
            right: f64::from(rect.right) - 1.0,
            bottom: f64::from(rect.bottom) - 1.0,
        };
        let mut shape = self.initial_shape.clone();
        let mut features = Vec::new();
        for cascade in &self.cascades {
            self.sample_features(frame, &rect, &shape, cascade, &mut features);
            for tree in &cascade.trees {
                let leaf = tree.leaf(&features);
                for (s, v) in shape.iter_mut().zip(leaf) {
                    *s += v;
                }
            }
        }
        shape
            .chunks_exact(2)
            .map(|p| rect.unnormalize([f64::from(p[0]), f64::from(p[1])]))
            .collect()
    }

    /// dlib's `extract_feature_pixel_values`: the intensity at each of the cascade's feature
    /// pixels, placed relative to the current shape.
    fn sample_features(
        &self,
        frame: &RgbImage,
        rect: &DlibRect,
        shape: &[f32],
        cascade: &Cascade,
        out: &mut Vec<f32>,
    ) {
        let tform = if self.num_parts() == 1 {
            Affine::IDENTITY
        } else {
            let pairs = |s: &[f32]| -> Vec<[f64; 2]> {
                s.chunks_exact(2).map(|p| [f64::from(p[0]), f64::from(p[1])]).collect()
            };
            find_similarity_transform(&pairs(&self.initial_shape), &pairs(shape))
        };
        // dlib casts the transform's linear part to float and applies it in float.
        let m = tform.m.map(|row| row.map(|v| v as f32));
        let (width, height) = (i64::from(frame.width()), i64::from(frame.height()));
        out.clear();
        out.extend(cascade.anchor_idx.iter().zip(&cascade.deltas).map(|(&anchor, &[dx, dy])| {
            let x = m[0][0] * dx + m[0][1] * dy + shape[2 * anchor];
            let y = m[1][0] * dx + m[1][1] * dy + shape[2 * anchor + 1];
            let [px, py] = rect.unnormalize([f64::from(x), f64::from(y)]);
            // `as` saturates (and maps NaN to 0), so a wild coordinate lands outside the frame.
            let (px, py) = (round_half_up(px) as i64, round_half_up(py) as i64);
            if (0..width).contains(&px) && (0..height).contains(&py) {
                let [r, g, b] = frame.get_pixel(px as u32, py as u32).0;
                ((u32::from(r) + u32::from(g) + u32::from(b)) / 3) as f32
            } else {
                0.0
            }
        }));
    }
}

impl RegressionTree {
    /// Walks the tree on `features` and returns the chosen leaf's shape offset.
    fn leaf(&self, features: &[f32]) -> &[f32] {
        let n = self.splits.len();
        let mut i = 0;
        while i < n {
            let split = self.splits[i];
            let diff = features[split.idx1 as usize] - features[split.idx2 as usize];
            i = if diff > split.thresh { 2 * i + 1 } else { 2 * i + 2 };
        }
        let shape_len = self.leaf_values.len() / (n + 1);
        let leaf = i - n;
        &self.leaf_values[leaf * shape_len..(leaf + 1) * shape_len]
    }
}

/// Reads one `impl::regression_tree` and checks it can be walked safely: a complete tree has
/// one more leaf than splits, and every leaf offsets the whole shape.
fn read_tree(s: &mut DlibStream<'_>, shape_len: usize) -> Result<RegressionTree, EngineError> {
    let start = s.offset();
    let splits = s.read_vec(MIN_SPLIT_BYTES, |s| {
        let at = s.offset();
        let idx1 = u32::try_from(s.read_u64()?);
        let idx2 = u32::try_from(s.read_u64()?);
        let thresh = s.read_f32()?;
        match (idx1, idx2) {
            (Ok(idx1), Ok(idx2)) => Ok(Split { idx1, idx2, thresh }),
            _ => Err(DlibStream::error_at(at, "split feature index out of range")),
        }
    })?;
    let leaves_at = s.offset();
    let leaves = s.read_vec(MIN_MATRIX_BYTES, DlibStream::read_column_f32)?;
    if leaves.len() != splits.len() + 1 {
        return Err(DlibStream::error_at(start, "tree must have one more leaf than splits"));
    }
    if leaves.iter().any(|l| l.len() != shape_len) {
        return Err(DlibStream::error_at(leaves_at, "leaf size differs from the shape size"));
    }
    Ok(RegressionTree { splits, leaf_values: leaves.concat() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approx(a: [f64; 2], b: [f64; 2]) -> bool {
        (a[0] - b[0]).abs() < 1e-9 && (a[1] - b[1]).abs() < 1e-9
    }

    #[test]
    fn similarity_recovers_a_known_transform() {
        let (scale, angle, t) = (1.7f64, 0.4f64, [3.0, -5.0]);
        let (c, s) = (scale * angle.cos(), scale * angle.sin());
        let from = [[0.0, 0.0], [10.0, 1.0], [4.0, 7.0], [-2.0, 3.0]];
        let to: Vec<_> =
            from.iter().map(|p| [c * p[0] - s * p[1] + t[0], s * p[0] + c * p[1] + t[1]]).collect();
        let tf = find_similarity_transform(&from, &to);
        for (f, t) in from.iter().zip(&to) {
            assert!(approx(tf.apply(*f), *t));
        }
    }

    #[test]
    fn similarity_of_coincident_points_is_a_translation() {
        let tf = find_similarity_transform(&[[1.0, 1.0], [1.0, 1.0]], &[[4.0, 6.0], [2.0, 2.0]]);
        assert!(approx(tf.apply([1.0, 1.0]), [3.0, 4.0]));
    }

    #[test]
    fn a_tree_picks_the_leaf_dlib_does() {
        // Depth-2 tree: root compares f0 - f1 > 0, then f1 - f2 > 0 (left) / f2 - f0 > 0.5 (right).
        let tree = RegressionTree {
            splits: vec![
                Split { idx1: 0, idx2: 1, thresh: 0.0 },
                Split { idx1: 1, idx2: 2, thresh: 0.0 },
                Split { idx1: 2, idx2: 0, thresh: 0.5 },
            ],
            leaf_values: vec![0.0, 1.0, 2.0, 3.0],
        };
        assert_eq!(tree.leaf(&[2.0, 1.0, 0.0]), &[0.0]);
        assert_eq!(tree.leaf(&[2.0, 1.0, 5.0]), &[1.0]);
        assert_eq!(tree.leaf(&[0.0, 1.0, 5.0]), &[2.0]);
        assert_eq!(tree.leaf(&[0.0, 1.0, 0.0]), &[3.0]);
    }
}
