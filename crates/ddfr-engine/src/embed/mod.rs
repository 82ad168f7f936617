//! Embedding: aligned face chips in, unit-norm embeddings out, all faces of a frame in one call.

use image::RgbImage;

use ddfr_core::{Embedding, ModelId};

use crate::EngineError;
use crate::preprocess::{Normalization, SourceRect, sample_into};
use crate::runner::{ModelRunner, Tensor};

/// Turns aligned chips into embeddings.
pub trait FaceEmbedder: Send + Sync + std::fmt::Debug {
    /// The model whose embeddings these are; embeddings of different models are never compared.
    fn model(&self) -> &ModelId;
    /// The embedding size.
    fn dim(&self) -> usize;
    /// The chip side this embedder expects (150 for dlib, 112 for ArcFace).
    fn chip_size(&self) -> u32;
    /// One unit-norm embedding per chip, in the same order.
    fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Embedding>, EngineError>;
}

/// Any ONNX embedder that maps a normalised NCHW chip batch to `[N, dim]` raw vectors
/// (dlib's converted ResNet, ArcFace MobileFaceNet, InsightFace `w600k_*`).
#[derive(Debug)]
pub struct OnnxEmbedder {
    model: ModelId,
    runner: Box<dyn ModelRunner>,
    chip_size: u32,
    dim: usize,
    norm: Normalization,
    /// `Some(n)` when the graph's batch dimension is fixed (then chips run `n` at a time).
    fixed_batch: Option<usize>,
}

impl OnnxEmbedder {
    /// Wraps a loaded embedding graph.
    pub fn new(
        model: ModelId,
        runner: Box<dyn ModelRunner>,
        chip_size: u32,
        dim: usize,
        norm: Normalization,
        fixed_batch: Option<usize>,
    ) -> Self {
        Self { model, runner, chip_size, dim, norm, fixed_batch }
    }

    fn run_batch(&self, chips: &[RgbImage]) -> Result<Vec<Embedding>, EngineError> {
        let side = self.chip_size as usize;
        let per_chip = 3 * side * side;
        let mut data = vec![0.0f32; per_chip * chips.len()];
        for (chip, out) in chips.iter().zip(data.chunks_exact_mut(per_chip)) {
            let rect = SourceRect {
                x: 0.0,
                y: 0.0,
                width: chip.width() as f32,
                height: chip.height() as f32,
            };
            sample_into(chip, rect, side, side, &self.norm, out);
        }
        let outputs = self.runner.run(&Tensor::new(vec![chips.len(), 3, side, side], data))?;
        let raw = outputs.first().ok_or_else(|| EngineError::BadOutput {
            model: self.model.to_string(),
            expected: format!("[{}, {}]", chips.len(), self.dim),
            found: vec![],
        })?;
        if raw.data.len() != chips.len() * self.dim {
            return Err(EngineError::BadOutput {
                model: self.model.to_string(),
                expected: format!("[{}, {}]", chips.len(), self.dim),
                found: raw.shape.clone(),
            });
        }
        raw.data
            .chunks_exact(self.dim)
            .map(|v| {
                Embedding::from_raw(v.to_vec()).map_err(|source| EngineError::BadEmbedding {
                    model: self.model.to_string(),
                    source,
                })
            })
            .collect()
    }
}

impl FaceEmbedder for OnnxEmbedder {
    fn model(&self) -> &ModelId {
        &self.model
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn chip_size(&self) -> u32 {
        self.chip_size
    }

    fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Embedding>, EngineError> {
        if chips.is_empty() {
            return Ok(Vec::new());
        }
        match self.fixed_batch {
            Some(n) if n != chips.len() => {
                // A graph with a fixed batch runs `n` chips at a time; the last chunk is padded
                // with copies of its first chip and the padding's results are dropped.
                let n = n.max(1);
                let mut out = Vec::with_capacity(chips.len());
                for chunk in chips.chunks(n) {
                    let mut batch = chunk.to_vec();
                    batch.resize(n, chunk[0].clone());
                    let mut embeddings = self.run_batch(&batch)?;
                    embeddings.truncate(chunk.len());
                    out.extend(embeddings);
                }
                Ok(out)
            }
            _ => self.run_batch(chips),
        }
    }
}
