//! The face gallery index of ddfr: given the embeddings of the faces in a frame, find the most
//! similar enrolled faces.
//!
//! Architecture invariant: the index is a cache. The store holds every embedding; an index
//! can always be rebuilt from them (at startup, after a model change, or to retrain), so no
//! index type persists anything. Without the `faiss` feature this crate is pure Rust, spawns
//! no threads on wasm32 and compiles to `wasm32-unknown-unknown`.
//!
//! # Similarity
//! Embeddings are unit-norm, so similarity is their dot product, the cosine: 1.0 is
//! identical and greater is closer. Thresholds such as `min_similarity` compare against it.
//!
//! # Choosing an index
//! Every index implements [`EmbeddingIndex`]; [`build_index`] picks one from an
//! [`IndexConfig`]. Figures are from `bench::bench_report` (the `bench_report` example) with
//! 128-D random unit vectors, one query per search, on the 2-core x86-64 development machine
//! (AVX2): "CPU" is the mean on-CPU time per search, which does not depend on how busy the
//! machine is; wall-clock percentiles are in `docs/benchmarks.md`.
//!
//! | kind | results | CPU per search at 1e5 / 1e6 | use it when |
//! | --- | --- | --- | --- |
//! | [`FlatIndex`] (`flat`) | exact | 1.5 ms / 16 ms (reads all `n × dim` floats) | up to ~1e5 faces; `auto` below [`AUTO_SKETCH_MIN_LEN`] |
//! | [`SketchIndex`] (`sketch`) | approximate; recall@1 1.0 on noisy probes at 1e6 | 0.43 ms / 2.5 ms (reads 32 bytes per face, re-ranks 1024 exactly) | large galleries; `auto` from [`AUTO_SKETCH_MIN_LEN`] faces |
//! | [`IvfIndex`] (`ivf`) | approximate; recall@1 0.99 on noisy probes with the automatic `nprobe` (40 % of lists) | 0.72 ms / 6.4 ms | clustered real embeddings, where a small `nprobe` suffices; measure recall before lowering it |
//! | `FaissIndex` (`faiss`, feature) | exact (`IndexIDMap` over `IndexFlatIP`) | FAISS' flat scan | to compare with FAISS; needs a C++ build of FAISS |
//!
//! On random data an IVF coarse quantiser is weak (every cluster is about as far from a
//! query), so the IVF must scan a large share of the gallery to keep recall; binary sketches
//! rank each face individually and stay accurate at a fraction of the memory traffic, which is
//! why `auto` uses them for large galleries. `auto` decides once, when the index is built from
//! the store; inserts never switch kinds. An IVF trained on few vectors degrades towards a
//! flat scan of one list, and [`IvfIndex::needs_retrain`] says when a rebuild would help.
//!
//! Recall is measured for *noisy probes* (a new photo of an enrolled person, cosine 0.6–0.9 to
//! its gallery vector), which is what a recogniser searches for. Pure random queries against
//! random data are also reported, but they have no meaningful nearest neighbour: every
//! candidate sits at cosine ≈ 0 ± 0.1, so the "best" is noise and an IVF misses it often. Such
//! a query is an unknown face, and it falls below `min_similarity` whichever candidate wins.

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
mod config;
#[cfg(feature = "faiss")]
mod faiss_index;
mod flat;
mod ivf;
mod kmeans;
mod rows;
mod simd;
mod sketch;
mod topk;

use ddfr_core::{FaceId, PersonId};

pub use config::{AUTO_SKETCH_MIN_LEN, IndexConfig, IndexKind, ParseIndexKindError, build_index};
#[cfg(feature = "faiss")]
pub use faiss_index::FaissIndex;
pub use flat::FlatIndex;
pub use ivf::{IvfIndex, IvfParams, MIN_POINTS_PER_LIST, auto_n_lists, auto_nprobe};
pub use sketch::{DEFAULT_SHORTLIST, SketchIndex};

/// A searchable set of enrolled face embeddings.
///
/// Similarity is cosine on unit-norm vectors: 1.0 is identical, greater is closer.
/// Implementations are plain data behind `&self` for search, so a snapshot can be shared by
/// inference workers (`Arc<dyn EmbeddingIndex>`) while a writer prepares the next one.
pub trait EmbeddingIndex: Send + Sync + std::fmt::Debug {
    /// Dimension of the embeddings this index holds.
    fn dim(&self) -> usize;

    /// Adds one face of `person`. Fails if the dimension differs from [`EmbeddingIndex::dim`]
    /// or the face is already present; the index is unchanged then.
    fn insert(
        &mut self,
        face: FaceId,
        person: PersonId,
        embedding: &ddfr_core::Embedding,
    ) -> Result<(), IndexError>;

    /// Removes one face; false if it was not present.
    fn remove_face(&mut self, face: FaceId) -> bool;

    /// Removes every face of `person`, returning how many were removed.
    fn remove_person(&mut self, person: PersonId) -> usize;

    /// The best `k` hits for each query (highest similarity first, ties to the smaller face
    /// id), in query order: `result[i]` answers `queries[i]`. One pass over the index serves
    /// all queries of a frame. A query whose dimension differs from the index's gets no hits,
    /// as does every query when `k` is 0 or the index is empty.
    fn search(&self, queries: &[ddfr_core::Embedding], k: usize) -> Vec<Vec<Hit>>;

    /// Number of faces held.
    fn len(&self) -> usize;

    /// True when no face is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap bytes held by the index, for metrics and capacity planning.
    fn memory_bytes(&self) -> usize;
}

/// One search result: an enrolled face and how similar it is to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The matching enrolled face.
    pub face: FaceId,
    /// The person that face belongs to.
    pub person: PersonId,
    /// Cosine similarity to the query: 1.0 identical, greater is closer.
    pub similarity: f32,
}

/// Why an index operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The embedding's dimension differs from the index's (a different model's embedding).
    #[error("embedding has {found} dimensions but the index holds {expected}-dimensional ones")]
    DimensionMismatch {
        /// The index's dimension.
        expected: usize,
        /// The embedding's dimension.
        found: usize,
    },
    /// The face is already in the index; remove it first to replace its embedding.
    #[error("face {0} is already in the index")]
    DuplicateFace(FaceId),
    /// A configuration value is out of range (for example `nprobe = 0`).
    #[error("index parameter `{name}` cannot be {value}")]
    InvalidParameter {
        /// The parameter's name as in [`IndexConfig`].
        name: &'static str,
        /// The rejected value.
        value: usize,
    },
    /// The configured index kind was not compiled into this build.
    #[error("this index kind needs the `{feature}` cargo feature, which this build lacks")]
    NotCompiled {
        /// The cargo feature to enable.
        feature: &'static str,
    },
    /// FAISS cannot store this face id (FAISS ids are non-negative 63-bit integers).
    #[error("face id {0} cannot be stored by FAISS, which needs non-negative ids")]
    UnsupportedFaceId(FaceId),
    /// FAISS reported an error.
    #[cfg(feature = "faiss")]
    #[error("faiss failed")]
    Faiss(#[source] faiss::error::Error),
}
