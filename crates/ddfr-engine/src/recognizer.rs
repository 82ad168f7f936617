//! Identification: analysed faces searched against the gallery index, threshold applied.
//!
//! Runs on an inference worker thread; takes milliseconds; touches no database.

use image::RgbImage;

use ddfr_index::{EmbeddingIndex, Hit};

use crate::EngineError;
use crate::pack::{AnalyzedFace, ModelPack};

/// One face of a frame and who it is, if anyone.
#[derive(Debug, Clone)]
pub struct Identification {
    /// The face, its chip and embedding.
    pub analyzed: AnalyzedFace,
    /// The closest enrolled face, whatever its similarity.
    pub nearest: Option<Hit>,
    /// `nearest` when its similarity reaches the threshold.
    pub matched: Option<Hit>,
}

/// Searches every face of the frame in `index` with one call and applies `min_similarity`.
/// An empty index (nobody enrolled) yields detection-only results: every face unmatched.
pub fn identify_faces(
    faces: Vec<AnalyzedFace>,
    index: &dyn EmbeddingIndex,
    min_similarity: f32,
) -> Vec<Identification> {
    let hits = if index.is_empty() {
        vec![Vec::new(); faces.len()]
    } else {
        let queries: Vec<_> = faces.iter().map(|f| f.embedding.clone()).collect();
        index.search(&queries, 1)
    };
    faces
        .into_iter()
        .zip(hits)
        .map(|(analyzed, hits)| {
            let nearest = hits.into_iter().next();
            let matched = nearest.filter(|h| h.similarity >= min_similarity);
            Identification { analyzed, nearest, matched }
        })
        .collect()
}

/// Detect, align, embed and identify every face of a frame.
pub fn identify(
    pack: &ModelPack,
    frame: &RgbImage,
    index: &dyn EmbeddingIndex,
    min_similarity: f32,
) -> Result<Vec<Identification>, EngineError> {
    Ok(identify_faces(pack.analyze(frame)?, index, min_similarity))
}
