//! 2-D similarity transforms: least-squares fit between point sets and bilinear warping.

use image::{Rgb, RgbImage};

use ddfr_core::Point;

/// `p' = [a -b; b a] p + [tx ty]`: rotation, uniform scale and translation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// `scale * cos(angle)`.
    pub a: f32,
    /// `scale * sin(angle)`.
    pub b: f32,
    /// Translation x.
    pub tx: f32,
    /// Translation y.
    pub ty: f32,
}

impl Similarity {
    /// Applies the transform to a point.
    pub fn apply(&self, p: Point) -> Point {
        Point::new(self.a * p.x - self.b * p.y + self.tx, self.b * p.x + self.a * p.y + self.ty)
    }

    /// The inverse transform (`None` for a degenerate, zero-scale transform).
    pub fn inverse(&self) -> Option<Similarity> {
        let det = self.a * self.a + self.b * self.b;
        if det <= f32::EPSILON {
            return None;
        }
        let (a, b) = (self.a / det, -self.b / det);
        Some(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }

    /// The uniform scale factor.
    pub fn scale(&self) -> f32 {
        (self.a * self.a + self.b * self.b).sqrt()
    }

    /// The least-squares similarity mapping `from[i]` onto `to[i]` (Umeyama, no reflection).
    /// `None` when fewer than two points are given or `from` is degenerate.
    pub fn estimate(from: &[Point], to: &[Point]) -> Option<Similarity> {
        let n = from.len().min(to.len());
        if n < 2 {
            return None;
        }
        let nf = n as f64;
        let mean = |pts: &[Point]| {
            let (sx, sy) = pts[..n]
                .iter()
                .fold((0.0f64, 0.0f64), |(x, y), p| (x + f64::from(p.x), y + f64::from(p.y)));
            (sx / nf, sy / nf)
        };
        let (fx, fy) = mean(from);
        let (tx, ty) = mean(to);
        let (mut sxx, mut sxy, mut var) = (0.0f64, 0.0f64, 0.0f64);
        for (f, t) in from[..n].iter().zip(&to[..n]) {
            let (ux, uy) = (f64::from(f.x) - fx, f64::from(f.y) - fy);
            let (vx, vy) = (f64::from(t.x) - tx, f64::from(t.y) - ty);
            // For a similarity the optimal [a, b] is the complex ratio sum(v * conj(u)) / |u|^2.
            sxx += ux * vx + uy * vy;
            sxy += ux * vy - uy * vx;
            var += ux * ux + uy * uy;
        }
        if var <= f64::EPSILON {
            return None;
        }
        let a = sxx / var;
        let b = sxy / var;
        Some(Similarity {
            a: a as f32,
            b: b as f32,
            tx: (tx - (a * fx - b * fy)) as f32,
            ty: (ty - (b * fx + a * fy)) as f32,
        })
    }
}

/// Builds a `size`×`size` chip whose pixel `(x, y)` is the frame sampled bilinearly at
/// `chip_to_frame(x, y)` (pixel centres at integer coordinates, as OpenCV's `warpAffine`).
/// Samples outside the frame are black.
pub fn warp_to_chip(frame: &RgbImage, chip_to_frame: &Similarity, size: u32) -> RgbImage {
    let (w, h) = (frame.width() as i64, frame.height() as i64);
    let raw = frame.as_raw();
    let pixel = |x: i64, y: i64| -> [f32; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            return [0.0; 3];
        }
        let i = ((y * w + x) * 3) as usize;
        [f32::from(raw[i]), f32::from(raw[i + 1]), f32::from(raw[i + 2])]
    };
    RgbImage::from_fn(size, size, |x, y| {
        let p = chip_to_frame.apply(Point::new(x as f32, y as f32));
        let (x0, y0) = (p.x.floor(), p.y.floor());
        let (fx, fy) = (p.x - x0, p.y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let (p00, p10, p01, p11) =
            (pixel(x0, y0), pixel(x0 + 1, y0), pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1));
        let mut out = [0u8; 3];
        for c in 0..3 {
            let top = p00[c] * (1.0 - fx) + p10[c] * fx;
            let bottom = p01[c] * (1.0 - fx) + p11[c] * fx;
            out[c] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
        }
        Rgb(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn estimate_recovers_a_known_transform(angle in -3.0f32..3.0, scale in 0.2f32..5.0, tx in -100.0f32..100.0, ty in -100.0f32..100.0) {
            let truth = Similarity { a: scale * angle.cos(), b: scale * angle.sin(), tx, ty };
            let from = [Point::new(10.0, 20.0), Point::new(50.0, 22.0), Point::new(30.0, 45.0), Point::new(15.0, 60.0), Point::new(45.0, 61.0)];
            let to: Vec<Point> = from.iter().map(|p| truth.apply(*p)).collect();
            let fit = Similarity::estimate(&from, &to).unwrap();
            prop_assert!((fit.a - truth.a).abs() < 1e-3 && (fit.b - truth.b).abs() < 1e-3);
            prop_assert!((fit.tx - truth.tx).abs() < 1e-2 && (fit.ty - truth.ty).abs() < 1e-2);
            let back = fit.inverse().unwrap().apply(to[2]);
            prop_assert!((back.x - from[2].x).abs() < 1e-2 && (back.y - from[2].y).abs() < 1e-2);
        }
    }

    #[test]
    fn degenerate_inputs_give_none() {
        assert!(Similarity::estimate(&[Point::new(1.0, 1.0)], &[Point::new(2.0, 2.0)]).is_none());
        let same = [Point::new(1.0, 1.0); 3];
        assert!(Similarity::estimate(&same, &same).is_none());
    }

    #[test]
    fn identity_warp_copies_the_frame() {
        let frame = RgbImage::from_fn(8, 8, |x, y| Rgb([(x * 30) as u8, (y * 30) as u8, 9]));
        let chip = warp_to_chip(&frame, &Similarity { a: 1.0, b: 0.0, tx: 0.0, ty: 0.0 }, 8);
        assert_eq!(chip, frame);
    }
}
