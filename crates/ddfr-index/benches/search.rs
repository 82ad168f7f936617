//! Criterion benchmarks of index search on seeded random unit vectors.
//!
//! Names are engine-agnostic apart from `kind`, e.g.
//! `index_search[kind=flat,n=100000,dim=128,queries=5]`, so a backend change shows as a step.
//! Sizes default to 1e3, 1e5 and 1e6; `DDFR_BENCH_SIZES=1000,100000` picks others. The
//! one-query latency percentiles and recall live in `ddfr_index::bench::bench_report`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ddfr_core::Embedding;
use ddfr_index::bench::Dataset;
use ddfr_index::{EmbeddingIndex, FlatIndex, IvfIndex, IvfParams, SketchIndex};

/// The default embedder's dimension.
const DIM: usize = 128;
/// Gallery sizes benchmarked unless `DDFR_BENCH_SIZES` says otherwise.
const DEFAULT_SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
/// Queries per search: one face, and a frame with several faces.
const QUERY_COUNTS: [usize; 2] = [1, 5];
/// Seed of the generated gallery and queries.
const SEED: u64 = 42;

fn sizes() -> Vec<usize> {
    std::env::var("DDFR_BENCH_SIZES")
        .ok()
        .map(|list| list.split(',').filter_map(|size| size.trim().parse().ok()).collect())
        .filter(|sizes: &Vec<usize>| !sizes.is_empty())
        .unwrap_or_else(|| DEFAULT_SIZES.to_vec())
}

fn bench_kind(c: &mut Criterion, kind: &str, index: &dyn EmbeddingIndex, queries: &[Embedding]) {
    for count in QUERY_COUNTS {
        let frame = &queries[..count.min(queries.len())];
        let name = format!("index_search[kind={kind},n={},dim={DIM},queries={count}]", index.len());
        c.bench_function(&name, |b| b.iter(|| std::hint::black_box(index.search(frame, 1))));
    }
}

fn index_search(c: &mut Criterion) {
    for n in sizes() {
        let data = Dataset::generate(n, DIM, *QUERY_COUNTS.iter().max().unwrap_or(&1), SEED)
            .expect("generated data is valid");
        let flat = FlatIndex::from_items(DIM, data.items.iter().cloned()).expect("valid items");
        bench_kind(c, "flat", &flat, &data.noisy_queries);
        drop(flat);
        let ivf = IvfIndex::build(DIM, IvfParams::default(), data.items.iter().cloned())
            .expect("valid items");
        bench_kind(c, "ivf", &ivf, &data.noisy_queries);
        drop(ivf);
        let sketch =
            SketchIndex::from_items(DIM, None, data.items.iter().cloned()).expect("valid items");
        bench_kind(c, "sketch", &sketch, &data.noisy_queries);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = index_search
}
criterion_main!(benches);
