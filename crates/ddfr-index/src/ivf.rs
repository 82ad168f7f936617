//! The approximate index for large galleries: an inverted file (IVF) over a k-means coarse
//! quantiser, scanning only the `nprobe` lists nearest to each query with exact f32 scores.

use std::collections::HashMap;
use std::fmt;

use ddfr_core::{Embedding, FaceId, PersonId};

use crate::flat::{check_dim, usable_queries};
use crate::kmeans::{self, SplitMix64};
use crate::rows::RowStore;
use crate::simd::Kernel;
use crate::topk::TopK;
use crate::{EmbeddingIndex, Hit, IndexError};

/// Fewer training points than this per centroid give centroids that mostly sit on single
/// points (FAISS warns below the same figure), so small galleries get fewer lists.
pub const MIN_POINTS_PER_LIST: usize = 39;

/// Training uses at most this many points per centroid: more barely moves the centroids of an
/// IVF but makes every k-means round proportionally slower.
const MAX_TRAIN_POINTS_PER_LIST: usize = 64;

/// Automatic list count is `LISTS_PER_SQRT_N × √n`. In the `ivf_sweep` on 1e5 random 128-D
/// vectors, √n/2 lists gave the best recall for the rows scanned (fewer, larger lists make the
/// coarse ranking less decisive than on clustered data) and the cheapest k-means.
const LISTS_PER_SQRT_N: f64 = 0.5;

/// Automatic nprobe is this fraction of the lists (rounded up), and at least [`MIN_AUTO_NPROBE`].
/// Measured on random data, the worst case for a coarse quantiser: 64 of 158 lists reached
/// recall@1 0.993 on noisy probes (cosine 0.6–0.9) at 1e5, and 1/16 of the lists only 0.83.
/// Clustered real embeddings need far fewer; lower it with `nprobe` after measuring.
const AUTO_PROBE_FRACTION: f64 = 0.4;

/// Lower bound of the automatic nprobe, so small lists counts still probe several lists.
const MIN_AUTO_NPROBE: usize = 8;

/// Seed of the k-means sampling, fixed so that the same stored embeddings give the same index.
const KMEANS_SEED: u64 = 0x0DDF_0000_1DE4;

/// A retrain is advised once the index holds this many times the vectors it was trained on.
const RETRAIN_GROWTH: usize = 4;

/// IVF parameters; `None` picks the measured automatic value for the gallery size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IvfParams {
    /// Number of inverted lists (k-means centroids).
    pub n_lists: Option<usize>,
    /// Lists scanned per query: more is slower and closer to exact.
    pub nprobe: Option<usize>,
}

/// The list count used when none is configured: about √n, and never so many that a list
/// has fewer than [`MIN_POINTS_PER_LIST`] training points.
pub fn auto_n_lists(n: usize) -> usize {
    let by_size = ((n as f64).sqrt() * LISTS_PER_SQRT_N).round() as usize;
    by_size.min(n / MIN_POINTS_PER_LIST).max(1)
}

/// The nprobe used when none is configured, for `n_lists` lists.
pub fn auto_nprobe(n_lists: usize) -> usize {
    let by_fraction = (n_lists as f64 * AUTO_PROBE_FRACTION).ceil() as usize;
    by_fraction.max(MIN_AUTO_NPROBE).min(n_lists).max(1)
}

/// Approximate search over an inverted file.
///
/// Training runs spherical k-means on (a sample of) the stored vectors; each vector is kept,
/// as exact f32, in the list of its most similar centroid. A query scores all centroids, then
/// scans the `nprobe` best lists exactly, so the only error is a true best match living in a
/// list that was not probed.
///
/// Insert puts the vector in the list of its nearest centroid and removal swaps within the
/// list: neither retrains. When the gallery has grown well past what it was trained on
/// ([`IvfIndex::needs_retrain`]), rebuild with [`IvfIndex::retrain`] or from the store, which
/// is allowed because the index is a cache.
///
/// A gallery too small to train (under 2 × [`MIN_POINTS_PER_LIST`]) gets a single list and
/// behaves like the flat index.
#[derive(Clone)]
pub struct IvfIndex {
    dim: usize,
    kernel: Kernel,
    centroids: Vec<f32>,
    lists: Vec<RowStore>,
    location: HashMap<FaceId, (usize, usize)>,
    nprobe: usize,
    nprobe_is_auto: bool,
    trained_on: usize,
}

impl IvfIndex {
    /// Trains on `items` and indexes them, or returns the first error (a wrong dimension, a
    /// repeated face, or a zero `n_lists`/`nprobe`).
    pub fn build(
        dim: usize,
        params: IvfParams,
        items: impl IntoIterator<Item = (FaceId, PersonId, Embedding)>,
    ) -> Result<Self, IndexError> {
        let items = items.into_iter();
        let mut staged = RowStore::new(dim);
        staged.reserve(items.size_hint().0);
        let mut seen = HashMap::with_capacity(items.size_hint().0);
        for (face, person, embedding) in items {
            check_dim(dim, &embedding)?;
            if seen.insert(face, ()).is_some() {
                return Err(IndexError::DuplicateFace(face));
            }
            staged.push(face, person, embedding.as_slice());
        }
        Self::train(dim, params, &staged)
    }

    /// Trains a fresh quantiser on `staged` and fills the lists.
    fn train(dim: usize, params: IvfParams, staged: &RowStore) -> Result<Self, IndexError> {
        if params.n_lists == Some(0) {
            return Err(IndexError::InvalidParameter { name: "n_lists", value: 0 });
        }
        if params.nprobe == Some(0) {
            return Err(IndexError::InvalidParameter { name: "nprobe", value: 0 });
        }
        let kernel = Kernel::detect();
        let n = staged.len();
        // More lists than trainable is never useful; a configured count is capped the same way.
        let n_lists = params.n_lists.unwrap_or_else(|| auto_n_lists(n)).min(auto_cap(n));
        let centroids = if n_lists > 1 {
            let mut rng = SplitMix64::new(KMEANS_SEED);
            let sample = kmeans::sample_rows(n, n_lists * MAX_TRAIN_POINTS_PER_LIST, &mut rng);
            let mut points = Vec::with_capacity(sample.len() * dim);
            for &row in &sample {
                points.extend_from_slice(staged.vector(row));
            }
            kmeans::train(kernel, dim, &points, n_lists, &mut rng)
        } else {
            vec![0.0; dim]
        };
        let mut index = Self {
            dim,
            kernel,
            centroids,
            lists: vec![RowStore::new(dim); n_lists],
            location: HashMap::with_capacity(n),
            nprobe: params.nprobe.unwrap_or_else(|| auto_nprobe(n_lists)).min(n_lists),
            nprobe_is_auto: params.nprobe.is_none(),
            trained_on: n,
        };
        let mut labels = vec![0u32; n];
        if n_lists > 1 {
            kmeans::assign(kernel, dim, &index.centroids, staged.values(), &mut labels);
        }
        let mut sizes = vec![0usize; n_lists];
        for &label in &labels {
            sizes[label as usize] += 1;
        }
        for (list, size) in index.lists.iter_mut().zip(sizes) {
            list.reserve(size);
        }
        for (row, &label) in labels.iter().enumerate() {
            let list = label as usize;
            let position =
                index.lists[list].push(staged.face(row), staged.person(row), staged.vector(row));
            index.location.insert(staged.face(row), (list, position));
        }
        Ok(index)
    }

    /// Retrains the quantiser on the vectors now stored, keeping a configured `nprobe` and
    /// picking automatic values again otherwise.
    pub fn retrain(&mut self) {
        let mut staged = RowStore::new(self.dim);
        staged.reserve(self.len());
        for list in &self.lists {
            for row in 0..list.len() {
                staged.push(list.face(row), list.person(row), list.vector(row));
            }
        }
        let params =
            IvfParams { n_lists: None, nprobe: (!self.nprobe_is_auto).then_some(self.nprobe) };
        if let Ok(retrained) = Self::train(self.dim, params, &staged) {
            *self = retrained;
        }
    }

    /// True once the gallery has grown to four times what the quantiser was
    /// trained on and would get more lists: searches are then slower than a fresh index's.
    pub fn needs_retrain(&self) -> bool {
        let grown = self.len() >= self.trained_on.max(1) * RETRAIN_GROWTH;
        grown && auto_n_lists(self.len()) > self.lists.len()
    }

    /// Number of inverted lists.
    pub fn n_lists(&self) -> usize {
        self.lists.len()
    }

    /// Lists scanned per query.
    pub fn nprobe(&self) -> usize {
        self.nprobe
    }

    /// Sets the lists scanned per query (clamped to `1..=n_lists`); takes effect at once.
    pub fn set_nprobe(&mut self, nprobe: usize) {
        self.nprobe = nprobe.clamp(1, self.lists.len());
        self.nprobe_is_auto = false;
    }

    /// The `nprobe` lists most similar to `query`, best first.
    fn probe_lists(&self, query: &[f32], scores: &mut Vec<f32>) -> Vec<usize> {
        if self.lists.len() == 1 {
            return vec![0];
        }
        scores.resize(self.lists.len(), 0.0);
        self.kernel.dots(&self.centroids, query, scores);
        let mut order: Vec<usize> = (0..self.lists.len()).collect();
        let by_score = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]);
        if self.nprobe < order.len() {
            order.select_nth_unstable_by(self.nprobe - 1, by_score);
            order.truncate(self.nprobe);
        }
        order
    }
}

/// The most lists `n` vectors can train: at least one, and [`MIN_POINTS_PER_LIST`] each.
fn auto_cap(n: usize) -> usize {
    (n / MIN_POINTS_PER_LIST).max(1)
}

impl fmt::Debug for IvfIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IvfIndex")
            .field("dim", &self.dim)
            .field("len", &self.len())
            .field("n_lists", &self.lists.len())
            .field("nprobe", &self.nprobe)
            .field("trained_on", &self.trained_on)
            .field("kernel", &self.kernel.name())
            .finish()
    }
}

impl EmbeddingIndex for IvfIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn insert(
        &mut self,
        face: FaceId,
        person: PersonId,
        embedding: &Embedding,
    ) -> Result<(), IndexError> {
        check_dim(self.dim, embedding)?;
        if self.location.contains_key(&face) {
            return Err(IndexError::DuplicateFace(face));
        }
        let mut scores = Vec::new();
        let list = if self.lists.len() == 1 {
            0
        } else {
            scores.resize(self.lists.len(), 0.0);
            self.kernel.dots(&self.centroids, embedding.as_slice(), &mut scores);
            scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(list, _)| list)
        };
        let position = self.lists[list].push(face, person, embedding.as_slice());
        self.location.insert(face, (list, position));
        Ok(())
    }

    fn remove_face(&mut self, face: FaceId) -> bool {
        let Some((list, position)) = self.location.remove(&face) else { return false };
        if let Some(moved) = self.lists[list].swap_remove(position) {
            self.location.insert(moved, (list, position));
        }
        true
    }

    fn remove_person(&mut self, person: PersonId) -> usize {
        let faces: Vec<FaceId> = self
            .lists
            .iter()
            .flat_map(|list| {
                list.persons()
                    .iter()
                    .enumerate()
                    .filter(|(_, owner)| **owner == person)
                    .map(|(row, _)| list.face(row))
            })
            .collect();
        faces.iter().filter(|&&face| self.remove_face(face)).count()
    }

    fn search(&self, queries: &[Embedding], k: usize) -> Vec<Vec<Hit>> {
        let (vectors, selected) = usable_queries(queries, self.dim);
        let mut tops: Vec<TopK> = selected.iter().map(|_| TopK::new(k)).collect();
        if k > 0 && !self.is_empty() {
            // Pair every probed list with the queries probing it, so a list shared by several
            // faces of a frame is read once for all of them.
            let mut scores = Vec::new();
            let mut probes: Vec<(usize, usize)> = Vec::with_capacity(selected.len() * self.nprobe);
            for (slot, &query_index) in selected.iter().enumerate() {
                for list in self.probe_lists(vectors[query_index], &mut scores) {
                    probes.push((list, slot));
                }
            }
            probes.sort_unstable();
            let mut scratch = Vec::new();
            for group in probes.chunk_by(|a, b| a.0 == b.0) {
                let list = &self.lists[group[0].0];
                if list.len() == 0 {
                    continue;
                }
                let mut jobs: Vec<(&[f32], &mut TopK)> = tops
                    .iter_mut()
                    .enumerate()
                    .filter(|(slot, _)| group.iter().any(|probe| probe.1 == *slot))
                    .map(|(slot, top)| (vectors[selected[slot]], top))
                    .collect();
                list.scan(self.kernel, &mut jobs, &mut scratch);
            }
        }
        let mut results = vec![Vec::new(); queries.len()];
        for (query_index, top) in selected.into_iter().zip(tops) {
            results[query_index] = top.into_hits();
        }
        results
    }

    fn len(&self) -> usize {
        self.location.len()
    }

    fn memory_bytes(&self) -> usize {
        self.centroids.capacity() * size_of::<f32>()
            + self.lists.iter().map(RowStore::memory_bytes).sum::<usize>()
            + self.lists.capacity() * size_of::<RowStore>()
            + self.location.capacity() * (size_of::<FaceId>() + 2 * size_of::<usize>())
    }
}
