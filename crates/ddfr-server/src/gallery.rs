//! The in-memory gallery: the face index and the person table the frame path reads.
//!
//! The store is the truth; the gallery is a cache rebuilt from it at start and updated after
//! every store write, so the very next frame sees an enrollment or a deletion. Frames only
//! take short read locks here and never wait on the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use ddfr_core::{Embedding, FaceId, ModelId, PersonId};
use ddfr_eval::ImpostorModel;
use ddfr_index::{EmbeddingIndex, Hit, IndexConfig, IndexError, build_index};
use ddfr_protocol::PersonSummary;
use ddfr_store::{PersonStore, StoreError, StoredEmbedding};
use ddfr_track::Candidate;

/// Why the gallery could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    /// The store could not be read.
    #[error("reading the store")]
    Store(#[from] StoreError),
    /// The index rejected the stored embeddings.
    #[error("building the face index")]
    Index(#[from] IndexError),
}

/// Index and person table behind read-write locks.
#[derive(Debug)]
pub struct Gallery {
    model: ModelId,
    index: RwLock<Box<dyn EmbeddingIndex>>,
    persons: RwLock<HashMap<PersonId, PersonSummary>>,
    generation: AtomicU64,
    impostor: Option<ImpostorModel>,
}

impl Gallery {
    /// Loads every person and every embedding of `model` from the store.
    pub async fn load(
        store: &dyn PersonStore,
        model: &ModelId,
        dim: usize,
        config: IndexConfig,
    ) -> Result<Self, GalleryError> {
        let persons = store.all_persons().await?;
        let embeddings = store.embeddings(model).await?;
        Self::from_parts(
            model.clone(),
            dim,
            config,
            persons.iter().map(|p| p.summary()).collect(),
            embeddings,
        )
    }

    /// Builds the gallery from loaded rows.
    pub fn from_parts(
        model: ModelId,
        dim: usize,
        config: IndexConfig,
        persons: Vec<PersonSummary>,
        embeddings: Vec<StoredEmbedding>,
    ) -> Result<Self, GalleryError> {
        let items = embeddings.into_iter().map(|e| (e.face, e.person, e.embedding));
        let index = build_index(config, dim, items)?;
        Ok(Self {
            model,
            index: RwLock::new(index),
            persons: RwLock::new(persons.into_iter().map(|p| (p.id, p)).collect()),
            generation: AtomicU64::new(0),
            impostor: None,
        })
    }

    /// The same gallery with the active model's impostor-score model, which turns a
    /// similarity into an estimated false-accept rate ([`Gallery::false_accept_rate`]).
    #[must_use]
    pub fn with_impostor_model(mut self, model: Option<ImpostorModel>) -> Self {
        self.impostor = model;
        self
    }

    /// The estimated false-accept rate of one comparison at `similarity`, when the model has
    /// an impostor-score model.
    pub fn false_accept_rate(&self, similarity: f32) -> Option<f64> {
        self.impostor.as_ref().map(|m| m.far_at(similarity))
    }

    /// The embedding model whose vectors the index holds.
    pub fn model(&self) -> &ModelId {
        &self.model
    }

    /// Changes whenever a face or a person is added or removed, so stream trackers know
    /// their votes are stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The `k` enrolled samples closest to `query`, best first.
    pub fn nearest_samples(&self, query: &Embedding, k: usize) -> Vec<Hit> {
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        index.search(std::slice::from_ref(query), k).into_iter().next().unwrap_or_default()
    }

    /// The closest persons to each query, one entry per person with the similarity of their
    /// closest sample ("best sample" scoring, see docs/recognition.md), best first, from the
    /// `k_samples` closest samples. Empty lists while nobody is enrolled.
    pub fn candidates(&self, queries: &[Embedding], k_samples: usize) -> Vec<Vec<Candidate>> {
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        if index.is_empty() {
            return vec![Vec::new(); queries.len()];
        }
        index
            .search(queries, k_samples)
            .into_iter()
            .map(|hits| {
                let mut persons: Vec<Candidate> = Vec::new();
                // Hits come best first, so the first hit of a person is their best sample.
                for hit in hits {
                    if !persons.iter().any(|c| c.person == hit.person) {
                        persons.push(Candidate { person: hit.person, similarity: hit.similarity });
                    }
                }
                persons
            })
            .collect()
    }

    /// The person table entry for `id`, if the person still exists.
    pub fn person(&self, id: PersonId) -> Option<PersonSummary> {
        self.persons.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned()
    }

    /// Adds or replaces a person's table entry (after create or update).
    pub fn upsert_person(&self, person: PersonSummary) {
        self.persons.write().unwrap_or_else(PoisonError::into_inner).insert(person.id, person);
    }

    /// Removes a person and every face of theirs from the index.
    pub fn remove_person(&self, id: PersonId) {
        self.index.write().unwrap_or_else(PoisonError::into_inner).remove_person(id);
        self.persons.write().unwrap_or_else(PoisonError::into_inner).remove(&id);
        self.changed();
    }

    /// Adds an enrolled face.
    pub fn insert_face(
        &self,
        face: FaceId,
        person: PersonId,
        embedding: &Embedding,
    ) -> Result<(), IndexError> {
        self.index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(face, person, embedding)?;
        self.changed();
        Ok(())
    }

    /// Removes one face.
    pub fn remove_face(&self, face: FaceId) {
        self.index.write().unwrap_or_else(PoisonError::into_inner).remove_face(face);
        self.changed();
    }

    /// Number of persons in the table.
    pub fn n_persons(&self) -> usize {
        self.persons.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Number of faces in the index.
    pub fn n_faces(&self) -> usize {
        self.index.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}
