//! The approximate index for large galleries: 256-bit SimHash sketches scanned with popcount,
//! then exact re-ranking of a short list of the closest sketches.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use ddfr_core::{Embedding, FaceId, PersonId};

use crate::flat::{check_dim, usable_queries};
use crate::kmeans::SplitMix64;
use crate::rows::RowStore;
use crate::simd::{Kernel, SKETCH_WORDS, Sketch};
use crate::topk::TopK;
use crate::{EmbeddingIndex, Hit, IndexError};

/// Random projections per sketch (bits). Two bits per dimension of a 128-D embedding: the
/// Hamming distance then separates a probe at cosine 0.6 (expected 76 differing bits, sd 7)
/// from a million impostors at cosine ≈ 0 (128 bits, sd 11) well enough for a short list of
/// about a thousand rows to hold the true match.
const SKETCH_BITS: usize = SKETCH_WORDS * 64;

/// Rows re-ranked exactly per query unless configured. At 1e6 random 128-D faces, short lists
/// of 512 to 4096 all gave recall@1 1.0 on 300 noisy probes (`bench_report` example, `sketch`
/// mode); 1024 keeps a 2× margin over the smallest while re-ranking stays ≈ 0.1 ms.
pub const DEFAULT_SHORTLIST: usize = 1024;

/// Seed of the random projections, fixed so that the same embeddings give the same index.
const PROJECTION_SEED: u64 = 0x0DDF_5EED_0256;

/// Sketch rows scored per tile: 16 Ki sketches are 512 KiB, which stays in L2 while every
/// query of a frame is compared with them.
const TILE_SKETCHES: usize = 16 * 1024;

thread_local! {
    /// Per-thread Hamming distance buffer of [`SketchIndex::search`] (one byte per face and
    /// query), kept between searches.
    static DISTANCES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Approximate search by binary sketches.
///
/// Each embedding gets a 256-bit sketch: the signs of its dot products with 256 fixed random
/// Gaussian directions (SimHash), so the fraction of differing bits estimates the angle
/// between two embeddings. A query computes its sketch, scans every stored sketch with
/// XOR + POPCNT (32 bytes per face instead of 512 for 128-D f32), keeps the `shortlist`
/// closest, and re-ranks those exactly with the f32 vectors. The only error is a true best
/// match whose sketch falls outside the short list; a close match (cosine ≥ 0.6) almost
/// never does, while impostors near cosine 0 may be swapped among themselves.
///
/// Insert and removal are O(1) (removal swaps the last row in), with no training: the
/// projections are fixed by a seed, so the index never degrades as the gallery grows.
#[derive(Clone)]
pub struct SketchIndex {
    rows: RowStore,
    sketches: Vec<Sketch>,
    row_of: HashMap<FaceId, usize>,
    projections: Vec<f32>,
    shortlist: usize,
    kernel: Kernel,
}

impl SketchIndex {
    /// An empty index for `dim`-dimensional embeddings re-ranking `shortlist` rows per query
    /// ([`DEFAULT_SHORTLIST`] when `None`). Fails on a zero shortlist.
    pub fn new(dim: usize, shortlist: Option<usize>) -> Result<Self, IndexError> {
        let shortlist = shortlist.unwrap_or(DEFAULT_SHORTLIST);
        if shortlist == 0 {
            return Err(IndexError::InvalidParameter { name: "shortlist", value: 0 });
        }
        let mut rng = SplitMix64::new(PROJECTION_SEED);
        let projections = (0..SKETCH_BITS * dim).map(|_| gaussian(&mut rng)).collect();
        Ok(Self {
            rows: RowStore::new(dim),
            sketches: Vec::new(),
            row_of: HashMap::new(),
            projections,
            shortlist,
            kernel: Kernel::detect(),
        })
    }

    /// An index holding `items`, or the first error.
    pub fn from_items(
        dim: usize,
        shortlist: Option<usize>,
        items: impl IntoIterator<Item = (FaceId, PersonId, Embedding)>,
    ) -> Result<Self, IndexError> {
        let items = items.into_iter();
        let mut index = Self::new(dim, shortlist)?;
        index.rows.reserve(items.size_hint().0);
        index.sketches.reserve(items.size_hint().0);
        index.row_of.reserve(items.size_hint().0);
        for (face, person, embedding) in items {
            index.insert(face, person, &embedding)?;
        }
        Ok(index)
    }

    /// Rows re-ranked exactly per query.
    pub fn shortlist(&self) -> usize {
        self.shortlist
    }

    fn sketch(&self, vector: &[f32], scratch: &mut Vec<f32>) -> Sketch {
        scratch.resize(SKETCH_BITS, 0.0);
        self.kernel.dots(&self.projections, vector, scratch);
        let mut sketch = [0u64; SKETCH_WORDS];
        for (bit, &projection) in scratch.iter().enumerate() {
            if projection >= 0.0 {
                sketch[bit / 64] |= 1 << (bit % 64);
            }
        }
        sketch
    }
}

/// A standard normal sample (Box-Muller) for the projection directions.
fn gaussian(rng: &mut SplitMix64) -> f32 {
    /// 2^-53: turns the top 53 random bits into a uniform f64 in [0, 1).
    const UNIT: f64 = 1.0 / (1u64 << 53) as f64;
    let u = (rng.next_u64() >> 11) as f64 * UNIT;
    let v = (rng.next_u64() >> 11) as f64 * UNIT;
    ((-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}

impl fmt::Debug for SketchIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SketchIndex")
            .field("dim", &self.rows.dim())
            .field("len", &self.len())
            .field("bits", &SKETCH_BITS)
            .field("shortlist", &self.shortlist)
            .field("kernel", &self.kernel.name())
            .finish()
    }
}

impl EmbeddingIndex for SketchIndex {
    fn dim(&self) -> usize {
        self.rows.dim()
    }

    fn insert(
        &mut self,
        face: FaceId,
        person: PersonId,
        embedding: &Embedding,
    ) -> Result<(), IndexError> {
        check_dim(self.dim(), embedding)?;
        if self.row_of.contains_key(&face) {
            return Err(IndexError::DuplicateFace(face));
        }
        let sketch = self.sketch(embedding.as_slice(), &mut Vec::new());
        let row = self.rows.push(face, person, embedding.as_slice());
        self.sketches.push(sketch);
        self.row_of.insert(face, row);
        Ok(())
    }

    fn remove_face(&mut self, face: FaceId) -> bool {
        let Some(row) = self.row_of.remove(&face) else { return false };
        self.sketches.swap_remove(row);
        if let Some(moved) = self.rows.swap_remove(row) {
            self.row_of.insert(moved, row);
        }
        true
    }

    fn remove_person(&mut self, person: PersonId) -> usize {
        let faces: Vec<FaceId> = (0..self.rows.len())
            .filter(|&row| self.rows.person(row) == person)
            .map(|row| self.rows.face(row))
            .collect();
        faces.iter().filter(|&&face| self.remove_face(face)).count()
    }

    fn search(&self, queries: &[Embedding], k: usize) -> Vec<Vec<Hit>> {
        let mut results = vec![Vec::new(); queries.len()];
        let (vectors, selected) = usable_queries(queries, self.dim());
        let n = self.rows.len();
        if k == 0 || n == 0 || selected.is_empty() {
            return results;
        }
        // Pass 1: Hamming distance of every stored sketch to every query, tile by tile so the
        // sketches stream from memory once per frame, with a histogram per query. The distance
        // buffer is reused per thread: a fresh megabyte per search would cost page faults.
        let mut scratch = Vec::new();
        let query_sketches: Vec<Sketch> =
            selected.iter().map(|&i| self.sketch(vectors[i], &mut scratch)).collect();
        let mut histograms = vec![[0usize; 256]; selected.len()];
        DISTANCES.with_borrow_mut(|distances| {
            distances.clear();
            distances.resize(n * selected.len(), 0);
            for (tile_index, tile) in self.sketches.chunks(TILE_SKETCHES).enumerate() {
                let first = tile_index * TILE_SKETCHES;
                for (slot, query_sketch) in query_sketches.iter().enumerate() {
                    let out = &mut distances[slot * n + first..slot * n + first + tile.len()];
                    self.kernel.hamming(tile, query_sketch, out);
                    let histogram = &mut histograms[slot];
                    for &distance in out.iter() {
                        histogram[usize::from(distance)] += 1;
                    }
                }
            }
            // Pass 2: per query, the distance cut that keeps about `shortlist` rows, then exact
            // re-ranking of the rows under it.
            let wanted = self.shortlist.max(k).min(n);
            let mut score = [0.0f32];
            for (slot, &query_index) in selected.iter().enumerate() {
                let query_distances = &distances[slot * n..(slot + 1) * n];
                let histogram = &histograms[slot];
                let (mut cut, mut below) = (0usize, 0usize);
                while cut < histogram.len() && below + histogram[cut] < wanted {
                    below += histogram[cut];
                    cut += 1;
                }
                // Rows strictly under the cut are all kept; rows at the cut fill the remainder.
                let mut at_cut_left = wanted - below;
                let mut top = TopK::new(k);
                let query = vectors[query_index];
                for (row, &distance) in query_distances.iter().enumerate() {
                    let keep = usize::from(distance) < cut
                        || (usize::from(distance) == cut && at_cut_left > 0 && {
                            at_cut_left -= 1;
                            true
                        });
                    if keep {
                        self.kernel.dots(self.rows.vector(row), query, &mut score);
                        if score[0] >= top.floor() {
                            top.offer(score[0], self.rows.face(row), self.rows.person(row));
                        }
                    }
                }
                results[query_index] = top.into_hits();
            }
        });
        results
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn memory_bytes(&self) -> usize {
        self.rows.memory_bytes()
            + self.sketches.capacity() * size_of::<Sketch>()
            + self.projections.capacity() * size_of::<f32>()
            + self.row_of.capacity() * (size_of::<FaceId>() + size_of::<usize>())
    }
}
