//! Index configuration and the one constructor that turns it into an index.

use std::fmt;
use std::str::FromStr;

use ddfr_core::{Embedding, FaceId, PersonId};

use crate::{EmbeddingIndex, FlatIndex, IndexError, IvfIndex, IvfParams, SketchIndex};

/// With `IndexKind::Auto`, galleries of at least this many faces get a [`SketchIndex`] and
/// smaller ones the exact [`FlatIndex`]. Measured with 128-D embeddings on 2 cores
/// (`bench_report`): a flat scan of 5e4 faces takes under 1 ms per query, inside the frame
/// budget and exact, while from there on the sketch scan is several times faster.
pub const AUTO_SKETCH_MIN_LEN: usize = 50_000;

/// Which index implementation to build. Every variant exists in every build; choosing
/// `Faiss` in a build without the `faiss` feature is an error at construction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IndexKind {
    /// Flat below [`AUTO_SKETCH_MIN_LEN`] faces, sketch from there on.
    #[default]
    Auto,
    /// Exact full scan ([`FlatIndex`]).
    Flat,
    /// Inverted file with k-means lists ([`IvfIndex`]).
    Ivf,
    /// Binary sketches with exact re-ranking ([`SketchIndex`]).
    Sketch,
    /// FAISS (`FaissIndex`), only with the `faiss` feature.
    Faiss,
}

impl IndexKind {
    /// The lower-case name used in configuration (`auto`, `flat`, `ivf`, `sketch`, `faiss`).
    pub fn as_str(self) -> &'static str {
        match self {
            IndexKind::Auto => "auto",
            IndexKind::Flat => "flat",
            IndexKind::Ivf => "ivf",
            IndexKind::Sketch => "sketch",
            IndexKind::Faiss => "faiss",
        }
    }
}

impl fmt::Display for IndexKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no index kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown index kind `{0}`; expected auto, flat, ivf, sketch or faiss")]
pub struct ParseIndexKindError(pub String);

impl FromStr for IndexKind {
    type Err = ParseIndexKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(IndexKind::Auto),
            "flat" => Ok(IndexKind::Flat),
            "ivf" => Ok(IndexKind::Ivf),
            "sketch" => Ok(IndexKind::Sketch),
            "faiss" => Ok(IndexKind::Faiss),
            _ => Err(ParseIndexKindError(s.to_owned())),
        }
    }
}

/// How to build the gallery index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexConfig {
    /// Which implementation.
    pub kind: IndexKind,
    /// IVF lists; `None` is automatic (≈ √n / 2). Ignored by other indexes.
    pub n_lists: Option<usize>,
    /// IVF lists scanned per query; `None` is automatic ([`crate::auto_nprobe`]).
    /// Ignored by other indexes.
    pub nprobe: Option<usize>,
    /// Rows re-ranked exactly per query by the sketch index; `None` is
    /// [`crate::DEFAULT_SHORTLIST`]. Ignored by other indexes.
    pub shortlist: Option<usize>,
}

/// Builds the configured index holding `items` (typically every stored embedding of the
/// current model). Fails on a wrong dimension, a repeated face, a zero `n_lists`/`nprobe`, or
/// a kind this build does not include ([`IndexError::NotCompiled`]). Settings of other kinds
/// are ignored, so one config can be switched between kinds.
pub fn build_index(
    config: IndexConfig,
    dim: usize,
    items: impl IntoIterator<Item = (FaceId, PersonId, Embedding)>,
) -> Result<Box<dyn EmbeddingIndex>, IndexError> {
    if dim == 0 {
        return Err(IndexError::InvalidParameter { name: "dim", value: 0 });
    }
    let params = IvfParams { n_lists: config.n_lists, nprobe: config.nprobe };
    match config.kind {
        IndexKind::Flat => Ok(Box::new(FlatIndex::from_items(dim, items)?)),
        IndexKind::Ivf => Ok(Box::new(IvfIndex::build(dim, params, items)?)),
        IndexKind::Sketch => Ok(Box::new(SketchIndex::from_items(dim, config.shortlist, items)?)),
        IndexKind::Auto => {
            let items: Vec<_> = items.into_iter().collect();
            if items.len() >= AUTO_SKETCH_MIN_LEN {
                Ok(Box::new(SketchIndex::from_items(dim, config.shortlist, items)?))
            } else {
                Ok(Box::new(FlatIndex::from_items(dim, items)?))
            }
        }
        IndexKind::Faiss => build_faiss(dim, items),
    }
}

#[cfg(feature = "faiss")]
fn build_faiss(
    dim: usize,
    items: impl IntoIterator<Item = (FaceId, PersonId, Embedding)>,
) -> Result<Box<dyn EmbeddingIndex>, IndexError> {
    Ok(Box::new(crate::FaissIndex::from_items(dim, items)?))
}

#[cfg(not(feature = "faiss"))]
fn build_faiss(
    _dim: usize,
    _items: impl IntoIterator<Item = (FaceId, PersonId, Embedding)>,
) -> Result<Box<dyn EmbeddingIndex>, IndexError> {
    Err(IndexError::NotCompiled { feature: "faiss" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_strings() {
        for kind in
            [IndexKind::Auto, IndexKind::Flat, IndexKind::Ivf, IndexKind::Sketch, IndexKind::Faiss]
        {
            assert_eq!(kind.to_string().parse::<IndexKind>(), Ok(kind));
        }
        assert_eq!(" IVF ".parse::<IndexKind>(), Ok(IndexKind::Ivf));
        assert!("hnsw".parse::<IndexKind>().is_err());
    }

    #[test]
    fn rejects_zero_parameters() {
        let config =
            IndexConfig { kind: IndexKind::Ivf, nprobe: Some(0), ..IndexConfig::default() };
        assert!(matches!(
            build_index(config, 4, []),
            Err(IndexError::InvalidParameter { name: "nprobe", value: 0 })
        ));
        assert!(matches!(
            build_index(IndexConfig::default(), 0, []),
            Err(IndexError::InvalidParameter { name: "dim", value: 0 })
        ));
    }

    #[cfg(not(feature = "faiss"))]
    #[test]
    fn faiss_without_the_feature_is_an_error() {
        let config = IndexConfig { kind: IndexKind::Faiss, ..IndexConfig::default() };
        assert!(matches!(
            build_index(config, 4, []),
            Err(IndexError::NotCompiled { feature: "faiss" })
        ));
    }
}
