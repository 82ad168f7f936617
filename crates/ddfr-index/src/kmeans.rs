//! Spherical k-means for the IVF coarse quantiser, and the blocked nearest-centroid assignment.

use crate::simd::Kernel;

/// Lloyd iterations. Centroids of an IVF only need to spread the data over lists; assignment
/// stops changing much after a handful of rounds, and each round costs a full assignment.
const ITERATIONS: usize = 10;

/// Points scored per block against each centroid tile. 64 points of 128-D f32 are 32 KiB.
const POINT_BLOCK: usize = 64;

/// Centroids per tile. 64 centroids of 128-D f32 are 32 KiB, so a tile stays in L1/L2 while a
/// block of points is scored against it.
const CENTROID_TILE: usize = 64;

/// Norms below this are treated as empty clusters and reseeded.
const MIN_CENTROID_NORM: f32 = 1e-6;

/// A small, fast and reproducible generator (SplitMix64). The index is a cache, so it only
/// needs a deterministic spread, not statistical quality, and it keeps `rand` (whose OS entropy
/// source does not build for wasm32) out of the library.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound > 0`); the modulo bias is irrelevant for sampling.
    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// `count` distinct row indices out of `0..n` (all of them when `count >= n`), in random order.
pub(crate) fn sample_rows(n: usize, count: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..n).collect();
    let count = count.min(n);
    // A partial Fisher-Yates shuffle: the first `count` slots end up a uniform sample.
    for slot in 0..count {
        let pick = slot + rng.below(n - slot);
        rows.swap(slot, pick);
    }
    rows.truncate(count);
    rows
}

/// Trains `n_lists` unit-norm centroids on the row-major `points` (`dim` wide) by spherical
/// k-means: assign each point to its most similar centroid, then set each centroid to the
/// normalised mean of its points. Empty clusters are reseeded with a random point.
pub(crate) fn train(
    kernel: Kernel,
    dim: usize,
    points: &[f32],
    n_lists: usize,
    rng: &mut SplitMix64,
) -> Vec<f32> {
    let n_points = points.len() / dim.max(1);
    if n_points == 0 || n_lists == 0 {
        return vec![0.0; n_lists * dim];
    }
    let mut centroids = Vec::with_capacity(n_lists * dim);
    for row in sample_rows(n_points, n_lists, rng) {
        centroids.extend_from_slice(&points[row * dim..(row + 1) * dim]);
    }
    // With fewer points than lists, the remaining centroids start at random points.
    while centroids.len() < n_lists * dim {
        let row = rng.below(n_points);
        centroids.extend_from_slice(&points[row * dim..(row + 1) * dim]);
    }
    let mut labels = vec![0u32; n_points];
    for _ in 0..ITERATIONS {
        assign(kernel, dim, &centroids, points, &mut labels);
        let mut sums = vec![0.0f64; n_lists * dim];
        for (point, &label) in points.chunks_exact(dim).zip(&labels) {
            let sum = &mut sums[label as usize * dim..(label as usize + 1) * dim];
            for (s, &v) in sum.iter_mut().zip(point) {
                *s += f64::from(v);
            }
        }
        for (centroid, sum) in centroids.chunks_exact_mut(dim).zip(sums.chunks_exact(dim)) {
            let norm = sum.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm as f32 > MIN_CENTROID_NORM {
                for (c, s) in centroid.iter_mut().zip(sum) {
                    *c = (s / norm) as f32;
                }
            } else {
                let row = rng.below(n_points);
                centroid.copy_from_slice(&points[row * dim..(row + 1) * dim]);
            }
        }
    }
    centroids
}

/// Writes into `labels[i]` the index of the centroid most similar to point `i`. Points are
/// processed in blocks against tiles of centroids so both stay in cache; on native targets
/// the points are split across the available cores.
pub(crate) fn assign(
    kernel: Kernel,
    dim: usize,
    centroids: &[f32],
    points: &[f32],
    labels: &mut [u32],
) {
    if dim == 0 {
        return;
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let per_thread = labels.len().div_ceil(threads).max(POINT_BLOCK);
        if threads > 1 && labels.len() > per_thread {
            std::thread::scope(|scope| {
                for (point_chunk, label_chunk) in
                    points.chunks(per_thread * dim).zip(labels.chunks_mut(per_thread))
                {
                    scope.spawn(move || {
                        assign_serial(kernel, dim, centroids, point_chunk, label_chunk)
                    });
                }
            });
            return;
        }
    }
    assign_serial(kernel, dim, centroids, points, labels);
}

fn assign_serial(
    kernel: Kernel,
    dim: usize,
    centroids: &[f32],
    points: &[f32],
    labels: &mut [u32],
) {
    let mut best = vec![f32::NEG_INFINITY; POINT_BLOCK];
    let mut scores = vec![0.0f32; CENTROID_TILE];
    for (point_block, label_block) in
        points.chunks(POINT_BLOCK * dim).zip(labels.chunks_mut(POINT_BLOCK))
    {
        best.fill(f32::NEG_INFINITY);
        for (tile_index, tile) in centroids.chunks(CENTROID_TILE * dim).enumerate() {
            let scores = &mut scores[..tile.len() / dim];
            for ((point, label), best) in
                point_block.chunks_exact(dim).zip(label_block.iter_mut()).zip(best.iter_mut())
            {
                kernel.dots(tile, point, scores);
                for (offset, &score) in scores.iter().enumerate() {
                    if score > *best {
                        *best = score;
                        *label = (tile_index * CENTROID_TILE + offset) as u32;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_obvious_clusters() {
        // Two tight groups around the x and y axes.
        let points = [1.0, 0.01, 0.99, -0.02, 0.02, 1.0, -0.01, 0.98];
        let mut rng = SplitMix64::new(7);
        let centroids = train(Kernel::detect(), 2, &points, 2, &mut rng);
        let mut labels = [0u32; 4];
        assign(Kernel::detect(), 2, &centroids, &points, &mut labels);
        assert_eq!(labels[0], labels[1]);
        assert_eq!(labels[2], labels[3]);
        assert_ne!(labels[0], labels[2]);
    }

    #[test]
    fn sample_is_distinct_and_bounded() {
        let mut rng = SplitMix64::new(1);
        let mut rows = sample_rows(10, 4, &mut rng);
        rows.sort_unstable();
        rows.dedup();
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|&r| r < 10));
        assert_eq!(sample_rows(3, 10, &mut rng).len(), 3);
    }
}
