//! The exact index: one contiguous matrix scanned in full by the SIMD kernel.

use std::collections::HashMap;
use std::fmt;

use ddfr_core::{Embedding, FaceId, PersonId};

use crate::rows::RowStore;
use crate::simd::Kernel;
use crate::topk::TopK;
use crate::{EmbeddingIndex, Hit, IndexError};

/// Exact search by a full scan of a contiguous row-major `n × dim` matrix of unit vectors.
///
/// Every query of a frame is scored in the same pass, so the matrix is read from memory once
/// per frame. Insert appends a row; removal moves the last row into the hole (O(1)). Results
/// are exact: this is the reference every other index is measured against.
#[derive(Clone)]
pub struct FlatIndex {
    rows: RowStore,
    row_of: HashMap<FaceId, usize>,
    kernel: Kernel,
}

impl FlatIndex {
    /// An empty index for `dim`-dimensional embeddings, using the fastest kernel of this CPU.
    pub fn new(dim: usize) -> Self {
        Self { rows: RowStore::new(dim), row_of: HashMap::new(), kernel: Kernel::detect() }
    }

    /// An index holding `items`, or the first error (a wrong dimension or a repeated face).
    pub fn from_items(
        dim: usize,
        items: impl IntoIterator<Item = (FaceId, PersonId, Embedding)>,
    ) -> Result<Self, IndexError> {
        let items = items.into_iter();
        let mut index = Self::new(dim);
        index.rows.reserve(items.size_hint().0);
        index.row_of.reserve(items.size_hint().0);
        for (face, person, embedding) in items {
            index.insert(face, person, &embedding)?;
        }
        Ok(index)
    }

    /// The same index scored by the portable kernel only; tests compare it with the SIMD one.
    pub fn with_portable_kernel(mut self) -> Self {
        self.kernel = Kernel::portable();
        self
    }

    /// The name of the dot-product kernel in use (`"avx2+fma"` or `"portable"`).
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.name()
    }
}

impl fmt::Debug for FlatIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlatIndex")
            .field("dim", &self.dim())
            .field("len", &self.len())
            .field("kernel", &self.kernel.name())
            .finish()
    }
}

/// Splits queries into the ones of the right dimension (scored) and the rest (no hits).
pub(crate) fn usable_queries(queries: &[Embedding], dim: usize) -> (Vec<&[f32]>, Vec<usize>) {
    let vectors: Vec<&[f32]> = queries.iter().map(Embedding::as_slice).collect();
    let selected = (0..queries.len()).filter(|&i| vectors[i].len() == dim).collect();
    (vectors, selected)
}

impl EmbeddingIndex for FlatIndex {
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
        let row = self.rows.push(face, person, embedding.as_slice());
        self.row_of.insert(face, row);
        Ok(())
    }

    fn remove_face(&mut self, face: FaceId) -> bool {
        let Some(row) = self.row_of.remove(&face) else { return false };
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
        let (vectors, selected) = usable_queries(queries, self.dim());
        let mut tops: Vec<TopK> = selected.iter().map(|_| TopK::new(k)).collect();
        if k > 0 {
            let mut jobs: Vec<(&[f32], &mut TopK)> =
                selected.iter().map(|&i| vectors[i]).zip(tops.iter_mut()).collect();
            self.rows.scan(self.kernel, &mut jobs, &mut Vec::new());
        }
        let mut results = vec![Vec::new(); queries.len()];
        for (query_index, top) in selected.into_iter().zip(tops) {
            results[query_index] = top.into_hits();
        }
        results
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn memory_bytes(&self) -> usize {
        self.rows.memory_bytes()
            + self.row_of.capacity() * (size_of::<FaceId>() + size_of::<usize>())
    }
}

/// Fails unless `embedding` has `dim` values.
pub(crate) fn check_dim(dim: usize, embedding: &Embedding) -> Result<(), IndexError> {
    if embedding.dim() == dim {
        Ok(())
    } else {
        Err(IndexError::DimensionMismatch { expected: dim, found: embedding.dim() })
    }
}
