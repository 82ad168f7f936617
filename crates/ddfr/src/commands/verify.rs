//! `ddfr verify A B`: cosine similarity of the largest face of each image.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde::Serialize;

use ddfr_engine::pack::ModelPack;

use crate::engine::EngineArgs;
use crate::output::emit_json;

#[derive(Debug, Serialize)]
struct VerifyOut {
    similarity: f32,
    #[serde(rename = "match")]
    is_match: bool,
    threshold: f32,
}

fn largest_face_embedding(pack: &ModelPack, path: &Path) -> Result<ddfr_core::Embedding> {
    let frame = super::read_photo(path)?;
    let mut faces = pack.detect(&frame)?;
    faces.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
    let largest =
        faces.into_iter().next().with_context(|| format!("no face found in {}", path.display()))?;
    let analyzed = pack.analyze_faces(&frame, vec![largest])?;
    analyzed
        .into_iter()
        .next()
        .map(|a| a.embedding)
        .with_context(|| format!("the face in {} could not be aligned", path.display()))
}

pub fn run(engine: &EngineArgs, a: &Path, b: &Path, threshold: Option<f32>) -> Result<()> {
    if let Some(t) = threshold {
        ensure!(
            (-1.0..=1.0).contains(&t),
            "threshold must be a cosine similarity in [-1, 1], got {t}"
        );
    }
    let pack = engine.load_pack(1)?;
    let threshold = threshold.unwrap_or(pack.min_similarity);
    let similarity =
        largest_face_embedding(&pack, a)?.similarity(&largest_face_embedding(&pack, b)?);
    emit_json(&VerifyOut { similarity, is_match: similarity >= threshold, threshold })
}
