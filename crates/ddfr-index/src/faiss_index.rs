//! The FAISS-backed index (feature `faiss`): `IndexIDMap` over an exact inner-product
//! `IndexFlatIP`, keyed by face id, with the person of each face kept on the Rust side.

use std::collections::HashMap;
use std::fmt;

use ddfr_core::{Embedding, FaceId, PersonId};
use faiss::index::flat::FlatIndexImpl;
use faiss::index::id_map::IdMap;
use faiss::selector::IdSelector;
use faiss::{ConcurrentIndex, Idx, Index};

use crate::flat::{check_dim, usable_queries};
use crate::topk::TopK;
use crate::{EmbeddingIndex, Hit, IndexError};

/// Exact search by FAISS (`IndexIDMap` over `IndexFlatIP`). Results match [`crate::FlatIndex`]
/// up to float rounding; it exists to compare against FAISS and as a starting point for FAISS'
/// approximate indexes. Face ids must be non-negative (FAISS reserves -1).
pub struct FaissIndex {
    dim: usize,
    index: IdMap<FlatIndexImpl>,
    persons: HashMap<FaceId, PersonId>,
}

impl FaissIndex {
    /// An empty index for `dim`-dimensional embeddings.
    pub fn new(dim: usize) -> Result<Self, IndexError> {
        let width = u32::try_from(dim)
            .map_err(|_| IndexError::InvalidParameter { name: "dim", value: dim })?;
        let flat = FlatIndexImpl::new_ip(width).map_err(IndexError::Faiss)?;
        let index = IdMap::new(flat).map_err(IndexError::Faiss)?;
        Ok(Self { dim, index, persons: HashMap::new() })
    }

    /// An index holding `items`, or the first error.
    pub fn from_items(
        dim: usize,
        items: impl IntoIterator<Item = (FaceId, PersonId, Embedding)>,
    ) -> Result<Self, IndexError> {
        let mut index = Self::new(dim)?;
        let mut values = Vec::new();
        let mut ids = Vec::new();
        for (face, person, embedding) in items {
            check_dim(dim, &embedding)?;
            let id = faiss_id(face)?;
            if index.persons.insert(face, person).is_some() {
                return Err(IndexError::DuplicateFace(face));
            }
            values.extend_from_slice(embedding.as_slice());
            ids.push(id);
        }
        if !ids.is_empty() {
            index.index.add_with_ids(&values, &ids).map_err(IndexError::Faiss)?;
        }
        Ok(index)
    }
}

/// The FAISS id of a face: its non-negative value.
fn faiss_id(face: FaceId) -> Result<Idx, IndexError> {
    u64::try_from(face.0).map(Idx::new).map_err(|_| IndexError::UnsupportedFaceId(face))
}

impl fmt::Debug for FaissIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaissIndex").field("dim", &self.dim).field("len", &self.len()).finish()
    }
}

impl EmbeddingIndex for FaissIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn insert(
        &mut self,
        face: FaceId,
        person: PersonId,
        embedding: &Embedding,
    ) -> Result<(), IndexError> {
        check_dim(self.dim, embedding)?;
        let id = faiss_id(face)?;
        if self.persons.contains_key(&face) {
            return Err(IndexError::DuplicateFace(face));
        }
        self.index.add_with_ids(embedding.as_slice(), &[id]).map_err(IndexError::Faiss)?;
        self.persons.insert(face, person);
        Ok(())
    }

    fn remove_face(&mut self, face: FaceId) -> bool {
        let Ok(id) = faiss_id(face) else { return false };
        if !self.persons.contains_key(&face) {
            return false;
        }
        let removed = IdSelector::batch(&[id])
            .and_then(|selector| self.index.remove_ids(&selector))
            .is_ok_and(|count| count > 0);
        if removed {
            self.persons.remove(&face);
        }
        removed
    }

    fn remove_person(&mut self, person: PersonId) -> usize {
        let faces: Vec<FaceId> = self
            .persons
            .iter()
            .filter(|(_, owner)| **owner == person)
            .map(|(face, _)| *face)
            .collect();
        faces.iter().filter(|&&face| self.remove_face(face)).count()
    }

    fn search(&self, queries: &[Embedding], k: usize) -> Vec<Vec<Hit>> {
        let mut results = vec![Vec::new(); queries.len()];
        let k = k.min(self.len());
        if k == 0 {
            return results;
        }
        let (vectors, selected) = usable_queries(queries, self.dim);
        let batch: Vec<f32> = selected.iter().flat_map(|&i| vectors[i].iter().copied()).collect();
        // A FAISS failure here (out of memory) leaves the queries without hits: search is
        // infallible by contract, and an empty answer reads as "unknown face".
        let Ok(found) = ConcurrentIndex::search(&self.index, &batch, k) else { return results };
        for (slot, &query_index) in selected.iter().enumerate() {
            // FAISS breaks ties arbitrarily; re-rank through TopK for the trait's tie order.
            let mut top = TopK::new(k);
            let start = slot * k;
            for (label, &similarity) in
                found.labels[start..start + k].iter().zip(&found.distances[start..start + k])
            {
                let Some(id) = label.get() else { continue };
                let face = FaceId(id as i64);
                if let Some(&person) = self.persons.get(&face) {
                    top.offer(similarity, face, person);
                }
            }
            results[query_index] = top.into_hits();
        }
        results
    }

    fn len(&self) -> usize {
        self.persons.len()
    }

    fn memory_bytes(&self) -> usize {
        // FAISS holds the vectors and an id per row; the map holds a person per face.
        self.len() * (self.dim * size_of::<f32>() + size_of::<i64>())
            + self.persons.capacity() * (size_of::<FaceId>() + size_of::<PersonId>())
    }
}
