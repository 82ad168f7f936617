//! Unit-norm face embeddings and cosine similarity.
//!
//! Similarity is cosine on unit-norm vectors: 1.0 is identical, greater is closer.

use std::fmt;

/// Why a raw vector cannot become an [`Embedding`].
#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingError {
    /// The vector has no elements.
    Empty,
    /// The vector has a NaN or infinite element.
    NotFinite,
    /// The vector's norm is zero (or too small to normalise).
    ZeroNorm,
}

impl fmt::Display for EmbeddingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmbeddingError::Empty => f.write_str("embedding has no elements"),
            EmbeddingError::NotFinite => f.write_str("embedding has a NaN or infinite element"),
            EmbeddingError::ZeroNorm => f.write_str("embedding has zero norm"),
        }
    }
}

impl std::error::Error for EmbeddingError {}

/// Norms below this cannot be normalised meaningfully.
const MIN_NORM: f32 = 1e-12;

/// An L2-normalised embedding vector. The constructor normalises, so every value of this
/// type has norm 1 (within float rounding) and a dot product is a cosine similarity.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(Vec<f32>);

impl Embedding {
    /// Normalises `raw` to unit length.
    pub fn from_raw(mut raw: Vec<f32>) -> Result<Self, EmbeddingError> {
        if raw.is_empty() {
            return Err(EmbeddingError::Empty);
        }
        if raw.iter().any(|v| !v.is_finite()) {
            return Err(EmbeddingError::NotFinite);
        }
        let norm = raw.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt() as f32;
        if norm < MIN_NORM {
            return Err(EmbeddingError::ZeroNorm);
        }
        raw.iter_mut().for_each(|v| *v /= norm);
        Ok(Self(raw))
    }

    /// The unit-norm values.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.0.len()
    }

    /// Consumes the embedding, returning its values.
    pub fn into_vec(self) -> Vec<f32> {
        self.0
    }

    /// Little-endian f32 bytes, the storage format.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Reads little-endian f32 bytes written by [`Embedding::to_le_bytes`] (re-normalising).
    pub fn from_le_bytes(bytes: &[u8]) -> Result<Self, EmbeddingError> {
        if !bytes.len().is_multiple_of(4) {
            return Err(EmbeddingError::Empty);
        }
        let raw =
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Self::from_raw(raw)
    }

    /// Cosine similarity with `other`: 1.0 identical, greater is closer.
    /// Embeddings of different dimensions have similarity 0.
    pub fn similarity(&self, other: &Embedding) -> f32 {
        cosine_similarity(&self.0, &other.0)
    }
}

/// Cosine similarity of two vectors already of unit norm (their dot product), or 0 when the
/// lengths differ.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_degenerate_vectors() {
        assert_eq!(Embedding::from_raw(vec![]), Err(EmbeddingError::Empty));
        assert_eq!(Embedding::from_raw(vec![0.0; 4]), Err(EmbeddingError::ZeroNorm));
        assert_eq!(Embedding::from_raw(vec![f32::NAN, 1.0]), Err(EmbeddingError::NotFinite));
    }

    proptest! {
        #[test]
        fn normalised_and_self_similar(raw in prop::collection::vec(-100.0f32..100.0, 1..256)) {
            prop_assume!(raw.iter().any(|v| v.abs() > 1e-3));
            let e = Embedding::from_raw(raw).unwrap();
            let norm: f32 = e.as_slice().iter().map(|v| v * v).sum::<f32>().sqrt();
            prop_assert!((norm - 1.0).abs() < 1e-4);
            prop_assert!((e.similarity(&e) - 1.0).abs() < 1e-4);
            let back = Embedding::from_le_bytes(&e.to_le_bytes()).unwrap();
            prop_assert!((back.similarity(&e) - 1.0).abs() < 1e-5);
        }
    }
}
