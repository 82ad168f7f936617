//! Reproducible benchmark of the index kinds on random unit vectors: build time, single-query
//! latency (p50/p99), recall@1 against exact search, and memory. The CLI prints
//! [`bench_report`]; `benches/search.rs` runs the criterion version.
//!
//! Recall is reported for two query sets. *Noisy* queries are gallery vectors mixed with
//! noise to a cosine drawn from 0.6–0.9, like a new photo of an enrolled person; that is the
//! figure the IVF is tuned for. *Random* queries are fresh random vectors: on random data they
//! have no meaningful nearest neighbour (everything is at cosine ≈ 0), so their recall only
//! shows how often noise-level ties are broken the same way.

use std::time::{Duration, Instant};

use ddfr_core::{Embedding, FaceId, PersonId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{EmbeddingIndex, FlatIndex, IndexError, IvfIndex, IvfParams, SketchIndex};

/// Lowest cosine of a noisy query to the gallery vector it was made from.
pub const NOISY_MIN_COSINE: f32 = 0.6;
/// Highest cosine of a noisy query to the gallery vector it was made from.
pub const NOISY_MAX_COSINE: f32 = 0.9;
/// Untimed searches before timing, so caches and branch predictors settle.
const WARMUP_QUERIES: usize = 10;
/// Queries per exact ground-truth search call: they share one pass over the matrix.
const GROUND_TRUTH_BATCH: usize = 64;
/// Similarities closer than this count as a tie when comparing with exact search.
const TIE_TOLERANCE: f32 = 1e-6;

/// One measured configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// `flat` or `ivf`.
    pub kind: &'static str,
    /// Gallery size.
    pub n: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// IVF lists (None for flat).
    pub n_lists: Option<usize>,
    /// IVF lists probed per query (None for flat).
    pub nprobe: Option<usize>,
    /// Time to build the index from the stored embeddings, in milliseconds.
    pub build_ms: f64,
    /// Median latency of a one-query search, in microseconds.
    pub p50_us: f64,
    /// 99th-percentile latency of a one-query search, in microseconds.
    pub p99_us: f64,
    /// Mean on-CPU time of a one-query search in microseconds, from the thread's scheduler
    /// statistics (Linux only). Unlike wall-clock percentiles it does not grow when other
    /// processes compete for the cores, so it shows the index's own cost on a shared machine.
    /// The kernel updates the figure at scheduler ticks, so it is only meaningful when all
    /// queries together take well over a few milliseconds.
    pub cpu_mean_us: Option<f64>,
    /// Fraction of noisy queries whose top hit equals exact search's.
    pub recall_noisy: f64,
    /// Fraction of random queries whose top hit equals exact search's.
    pub recall_random: f64,
    /// Heap bytes held by the index.
    pub memory_bytes: usize,
}

/// A seeded gallery with its queries and their exact answers.
#[derive(Debug)]
pub struct Dataset {
    /// Embedding dimension.
    pub dim: usize,
    /// Gallery items; person ids are face ids here.
    pub items: Vec<(FaceId, PersonId, Embedding)>,
    /// Noisy copies of random gallery vectors.
    pub noisy_queries: Vec<Embedding>,
    /// Fresh random vectors.
    pub random_queries: Vec<Embedding>,
    noisy_truth: Vec<Option<crate::Hit>>,
    random_truth: Vec<Option<crate::Hit>>,
}

impl Dataset {
    /// `n` random unit vectors plus `n_queries` noisy and `n_queries` random queries, all from
    /// `seed`, with exact top-1 answers computed by [`FlatIndex`].
    pub fn generate(n: usize, dim: usize, n_queries: usize, seed: u64) -> Result<Self, IndexError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let items: Vec<_> = (0..n)
            .map(|i| {
                let id = i as i64;
                (FaceId(id), PersonId(id), random_unit(&mut rng, dim))
            })
            .collect();
        let noisy_queries: Vec<Embedding> = if n == 0 {
            Vec::new()
        } else {
            (0..n_queries)
                .map(|_| {
                    let source = &items[rng.random_range(0..n)].2;
                    let cosine = rng.random_range(NOISY_MIN_COSINE..=NOISY_MAX_COSINE);
                    noisy_copy(&mut rng, source, cosine)
                })
                .collect()
        };
        let random_queries: Vec<Embedding> =
            (0..n_queries).map(|_| random_unit(&mut rng, dim)).collect();
        let exact = FlatIndex::from_items(dim, items.iter().cloned())?;
        let top1 = |queries: &[Embedding]| -> Vec<Option<crate::Hit>> {
            queries
                .chunks(GROUND_TRUTH_BATCH)
                .flat_map(|batch| exact.search(batch, 1))
                .map(|hits| hits.first().copied())
                .collect()
        };
        let noisy_truth = top1(&noisy_queries);
        let random_truth = top1(&random_queries);
        Ok(Self { dim, items, noisy_queries, random_queries, noisy_truth, random_truth })
    }

    /// Times one-query searches of `index` and measures its recall@1 against exact search.
    /// `built` describes how it was made (kind, IVF shape, build time).
    pub fn measure(&self, index: &dyn EmbeddingIndex, built: Built) -> BenchRow {
        for query in self.noisy_queries.iter().cycle().take(WARMUP_QUERIES) {
            std::hint::black_box(index.search(std::slice::from_ref(query), 1));
        }
        let mut latencies = Vec::with_capacity(self.noisy_queries.len());
        let mut noisy_hits = Vec::with_capacity(self.noisy_queries.len());
        let cpu_before = thread_cpu_time();
        for query in &self.noisy_queries {
            let started = Instant::now();
            let hits = index.search(std::slice::from_ref(query), 1);
            latencies.push(started.elapsed());
            noisy_hits.push(hits.first().and_then(|hits| hits.first().copied()));
        }
        let cpu_mean_us = match (cpu_before, thread_cpu_time()) {
            (Some(before), Some(after)) if !self.noisy_queries.is_empty() => Some(
                after.saturating_sub(before).as_secs_f64() * 1e6 / self.noisy_queries.len() as f64,
            ),
            _ => None,
        };
        let random_hits: Vec<_> = self
            .random_queries
            .iter()
            .map(|query| {
                index
                    .search(std::slice::from_ref(query), 1)
                    .first()
                    .and_then(|h| h.first().copied())
            })
            .collect();
        latencies.sort_unstable();
        BenchRow {
            kind: built.kind,
            n: self.items.len(),
            dim: self.dim,
            n_lists: built.n_lists,
            nprobe: built.nprobe,
            build_ms: built.build_time.as_secs_f64() * 1e3,
            p50_us: percentile_us(&latencies, 0.50),
            p99_us: percentile_us(&latencies, 0.99),
            cpu_mean_us,
            recall_noisy: recall(&noisy_hits, &self.noisy_truth),
            recall_random: recall(&random_hits, &self.random_truth),
            memory_bytes: index.memory_bytes(),
        }
    }

    /// Builds the exact index and measures it.
    pub fn measure_flat(&self) -> Result<BenchRow, IndexError> {
        let started = Instant::now();
        let index = FlatIndex::from_items(self.dim, self.items.iter().cloned())?;
        let built =
            Built { kind: "flat", n_lists: None, nprobe: None, build_time: started.elapsed() };
        Ok(self.measure(&index, built))
    }

    /// Builds a sketch index re-ranking `shortlist` rows and measures it.
    pub fn measure_sketch(&self, shortlist: Option<usize>) -> Result<BenchRow, IndexError> {
        let started = Instant::now();
        let index = SketchIndex::from_items(self.dim, shortlist, self.items.iter().cloned())?;
        let built = Built {
            kind: "sketch",
            n_lists: None,
            nprobe: Some(index.shortlist()),
            build_time: started.elapsed(),
        };
        Ok(self.measure(&index, built))
    }

    /// Builds an IVF index with `params` and measures it.
    pub fn measure_ivf(&self, params: IvfParams) -> Result<BenchRow, IndexError> {
        let started = Instant::now();
        let index = IvfIndex::build(self.dim, params, self.items.iter().cloned())?;
        let built = Built::ivf(&index, started.elapsed());
        Ok(self.measure(&index, built))
    }
}

/// How a measured index was made.
#[derive(Debug, Clone, Copy)]
pub struct Built {
    /// `flat`, `ivf` or `faiss`.
    pub kind: &'static str,
    /// IVF lists, if any.
    pub n_lists: Option<usize>,
    /// IVF lists probed per query, if any.
    pub nprobe: Option<usize>,
    /// Time the build took.
    pub build_time: Duration,
}

impl Built {
    /// Describes an IVF index built in `build_time`.
    pub fn ivf(index: &IvfIndex, build_time: Duration) -> Self {
        Self {
            kind: "ivf",
            n_lists: Some(index.n_lists()),
            nprobe: Some(index.nprobe()),
            build_time,
        }
    }
}

/// Flat and IVF (automatic parameters) at each gallery size, with `n_queries` noisy and
/// `n_queries` random queries, all generated from `seed`.
pub fn bench_report(
    sizes: &[usize],
    dim: usize,
    n_queries: usize,
    seed: u64,
) -> Result<Vec<BenchRow>, IndexError> {
    let mut rows = Vec::new();
    for &n in sizes {
        let data = Dataset::generate(n, dim, n_queries, seed)?;
        rows.push(data.measure_flat()?);
        rows.push(data.measure_ivf(IvfParams::default())?);
        rows.push(data.measure_sketch(None)?);
    }
    Ok(rows)
}

/// IVF at one gallery size for every combination of `n_lists` and `nprobe`: the measurement
/// behind the automatic parameters.
pub fn ivf_sweep(
    n: usize,
    dim: usize,
    n_queries: usize,
    seed: u64,
    n_lists: &[usize],
    nprobes: &[usize],
) -> Result<Vec<BenchRow>, IndexError> {
    let data = Dataset::generate(n, dim, n_queries, seed)?;
    let mut rows = Vec::new();
    for &lists in n_lists {
        let started = Instant::now();
        let params = IvfParams { n_lists: Some(lists), nprobe: None };
        let mut index = IvfIndex::build(dim, params, data.items.iter().cloned())?;
        let build_time = started.elapsed();
        for &nprobe in nprobes {
            index.set_nprobe(nprobe);
            rows.push(data.measure(&index, Built::ivf(&index, build_time)));
        }
    }
    Ok(rows)
}

/// CPU time consumed so far by the calling thread: the first field of
/// `/proc/thread-self/schedstat`, in nanoseconds. `None` where that file does not exist.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn percentile_us(sorted: &[Duration], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e6
}

fn recall(found: &[Option<crate::Hit>], truth: &[Option<crate::Hit>]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let agree = found
        .iter()
        .zip(truth)
        .filter(|(found, truth)| match (found, truth) {
            (Some(found), Some(truth)) => {
                found.face == truth.face
                    || (found.similarity - truth.similarity).abs() <= TIE_TOLERANCE
            }
            (None, None) => true,
            _ => false,
        })
        .count();
    agree as f64 / truth.len() as f64
}

/// A uniformly random direction: normalised i.i.d. Gaussians (Box-Muller).
pub fn random_unit(rng: &mut StdRng, dim: usize) -> Embedding {
    loop {
        let raw: Vec<f32> = (0..dim).map(|_| gaussian(rng)).collect();
        if let Ok(embedding) = Embedding::from_raw(raw) {
            return embedding;
        }
    }
}

/// A unit vector at cosine `cosine` to `source`: `cosine·source + sin·u` with `u` a random
/// unit vector orthogonal to `source`.
pub fn noisy_copy(rng: &mut StdRng, source: &Embedding, cosine: f32) -> Embedding {
    let source = source.as_slice();
    let sine = (1.0 - cosine * cosine).max(0.0).sqrt();
    loop {
        let mut noise: Vec<f32> = (0..source.len()).map(|_| gaussian(rng)).collect();
        let along: f32 = noise.iter().zip(source).map(|(n, s)| n * s).sum();
        noise.iter_mut().zip(source).for_each(|(n, s)| *n -= along * s);
        let norm = noise.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm <= f32::EPSILON {
            continue;
        }
        let mixed = source.iter().zip(&noise).map(|(s, n)| cosine * s + sine * n / norm).collect();
        if let Ok(embedding) = Embedding::from_raw(mixed) {
            return embedding;
        }
    }
}

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box-Muller; `1 - u` keeps the logarithm's argument in (0, 1].
    let u: f64 = rng.random();
    let v: f64 = rng.random();
    ((-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}
