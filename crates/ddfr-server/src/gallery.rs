//! The in-memory gallery: the face index and the person table the frame path reads.
//!
//! The store is the truth; the gallery is a cache rebuilt from it at start and updated after
//! every store write, so the very next frame sees an enrollment or a deletion. Frames only
//! take short read locks here and never wait on the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use ddfr_core::{Embedding, FaceId, ModelId, PersonId};
use ddfr_eval::{ImpostorModel, PersonScore};
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
    /// The rebuild task panicked or was cancelled.
    #[error("the index rebuild task failed")]
    Rebuild,
    /// Writes kept changing the gallery while it was being reloaded.
    #[error("the gallery kept changing during a reload")]
    Busy,
}

/// How a person with several samples is scored against a face: the trimmed mean of the
/// similarities to their samples (the plain mean for one or two samples; for three or more the
/// lowest and highest `max(1, k/4)` are dropped). Chosen by measurement with `ddfr evaluate
/// --person-score` (docs/evaluation.md): unlike the best sample, it does not give a person with
/// many photos more chances to match a stranger, and one bad photo does not move it much; it
/// stays on the scale of one comparison, so the threshold and the FAR estimate apply to it.
pub const PERSON_SCORE: PersonScore = PersonScore::Trimmed;

/// Index and person table behind read-write locks.
#[derive(Debug)]
pub struct Gallery {
    model: ModelId,
    index: RwLock<Box<dyn EmbeddingIndex>>,
    persons: RwLock<HashMap<PersonId, PersonSummary>>,
    /// Every sample's embedding by person, to score candidate persons with [`PERSON_SCORE`].
    samples: RwLock<HashMap<PersonId, Vec<(FaceId, Embedding)>>>,
    generation: AtomicU64,
    /// Bumped when a person's table entry is added or replaced (a rename changes no vote).
    persons_version: AtomicU64,
    impostor: Option<ImpostorModel>,
    /// The embedding dimension and index settings, to rebuild the index ([`Gallery::reload`]).
    dim: usize,
    config: IndexConfig,
    /// Set after a storage I/O error: the store may hold a write the gallery does not know of
    /// (see [`Gallery::reload`]).
    stale: AtomicBool,
    /// Who was recognised when, until the retention task writes it to the store.
    last_matches: crate::privacy::LastMatches,
}

/// How often [`Gallery::reload`] reads the store again when writes keep changing the gallery
/// while it reads.
const RELOAD_ATTEMPTS: usize = 5;

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
        let mut samples: HashMap<PersonId, Vec<(FaceId, Embedding)>> = HashMap::new();
        for e in &embeddings {
            samples.entry(e.person).or_default().push((e.face, e.embedding.clone()));
        }
        let items = embeddings.into_iter().map(|e| (e.face, e.person, e.embedding));
        let index = build_index(config, dim, items)?;
        Ok(Self {
            dim,
            config,
            stale: AtomicBool::new(false),
            model,
            index: RwLock::new(index),
            persons: RwLock::new(persons.into_iter().map(|p| (p.id, p)).collect()),
            samples: RwLock::new(samples),
            generation: AtomicU64::new(0),
            persons_version: AtomicU64::new(0),
            impostor: None,
            last_matches: crate::privacy::LastMatches::default(),
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

    /// The recognitions not yet written to the store (see [`crate::privacy`]).
    pub fn last_matches(&self) -> &crate::privacy::LastMatches {
        &self.last_matches
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

    /// The closest persons to each query, best first: the persons owning the `k_samples`
    /// closest samples, each scored over all of their samples with [`PERSON_SCORE`]. Empty
    /// lists while nobody is enrolled.
    pub fn candidates(&self, queries: &[Embedding], k_samples: usize) -> Vec<Vec<Candidate>> {
        let hits = {
            let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
            if index.is_empty() {
                return vec![Vec::new(); queries.len()];
            }
            index.search(queries, k_samples)
        };
        let samples = self.samples.read().unwrap_or_else(PoisonError::into_inner);
        queries
            .iter()
            .zip(hits)
            .map(|(query, hits)| {
                let mut persons: Vec<PersonId> = Vec::new();
                for hit in hits {
                    if !persons.contains(&hit.person) {
                        persons.push(hit.person);
                    }
                }
                let mut scored: Vec<Candidate> = persons
                    .into_iter()
                    .filter_map(|person| {
                        let mut similarities: Vec<f32> = samples
                            .get(&person)?
                            .iter()
                            .map(|(_, e)| e.similarity(query))
                            .collect();
                        let similarity = PERSON_SCORE.combine(&mut similarities);
                        similarity.is_finite().then_some(Candidate { person, similarity })
                    })
                    .collect();
                scored.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
                scored
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
        self.persons_version.fetch_add(1, Ordering::AcqRel);
    }

    /// Changes whenever the person table may have changed (an entry added, replaced or removed,
    /// or the gallery reloaded): the events' person list follows it.
    pub fn persons_version(&self) -> u64 {
        self.generation().wrapping_add(self.persons_version.load(Ordering::Acquire))
    }

    /// Every person of the table.
    pub fn persons(&self) -> Vec<PersonSummary> {
        self.persons.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// Removes a person and every face of theirs from the index.
    pub fn remove_person(&self, id: PersonId) {
        self.index.write().unwrap_or_else(PoisonError::into_inner).remove_person(id);
        self.samples.write().unwrap_or_else(PoisonError::into_inner).remove(&id);
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
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        let mut samples = self.samples.write().unwrap_or_else(PoisonError::into_inner);
        let person_samples = samples.entry(person).or_default();
        // Already there when a reload read the store after this face was committed.
        if person_samples.iter().any(|(id, _)| *id == face) {
            return Ok(());
        }
        index.insert(face, person, embedding)?;
        person_samples.push((face, embedding.clone()));
        drop((index, samples));
        self.changed();
        Ok(())
    }

    /// Removes one face.
    pub fn remove_face(&self, face: FaceId) {
        self.index.write().unwrap_or_else(PoisonError::into_inner).remove_face(face);
        for samples in self.samples.write().unwrap_or_else(PoisonError::into_inner).values_mut() {
            samples.retain(|(id, _)| *id != face);
        }
        self.changed();
    }

    /// Marks the gallery as possibly behind the store (after a storage I/O error).
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// Whether a storage I/O error happened since the last [`Gallery::reload`] that cleared it.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    /// Rebuilds the person table and index from the store, the truth, and clears the stale mark
    /// when `clear_stale`.
    ///
    /// Why: when a commit fails on an I/O error (`fsync` → `EIO`), SQLite reports the failure,
    /// but the transaction's frames are already in the write-ahead log and a later recovery of
    /// the log can make the "failed" write visible after all (observed in
    /// `tests/tests/io_errors.rs`); the gallery, updated only after successful writes, would then
    /// disagree with the store until a restart. The REST layer calls this after a storage I/O
    /// error and after the first successful write that follows one.
    ///
    /// A write that changes the gallery while the store is read makes the read start again (up
    /// to [`RELOAD_ATTEMPTS`] times), so no concurrent enrollment is lost.
    pub async fn reload(
        &self,
        store: &dyn PersonStore,
        clear_stale: bool,
    ) -> Result<(), GalleryError> {
        for _ in 0..RELOAD_ATTEMPTS {
            let generation = self.generation();
            let persons: Vec<PersonSummary> =
                store.all_persons().await?.iter().map(|p| p.summary()).collect();
            let embeddings = store.embeddings(&self.model).await?;
            let (model, dim, config) = (self.model.clone(), self.dim, self.config);
            let fresh = tokio::task::spawn_blocking(move || {
                Self::from_parts(model, dim, config, persons, embeddings)
            })
            .await
            .map_err(|_| GalleryError::Rebuild)??;
            let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
            let mut samples = self.samples.write().unwrap_or_else(PoisonError::into_inner);
            let mut persons = self.persons.write().unwrap_or_else(PoisonError::into_inner);
            if self.generation() != generation {
                continue;
            }
            *index = fresh.index.into_inner().unwrap_or_else(PoisonError::into_inner);
            *samples = fresh.samples.into_inner().unwrap_or_else(PoisonError::into_inner);
            *persons = fresh.persons.into_inner().unwrap_or_else(PoisonError::into_inner);
            if clear_stale {
                self.stale.store(false, Ordering::Release);
            }
            self.changed();
            return Ok(());
        }
        Err(GalleryError::Busy)
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

#[cfg(test)]
mod tests {
    use super::*;
    use ddfr_protocol::{Relationship, Role};

    fn unit(values: &[f32]) -> Embedding {
        Embedding::from_raw(values.to_vec()).unwrap()
    }

    fn summary(id: i64) -> PersonSummary {
        PersonSummary {
            id: PersonId(id),
            name: format!("p{id}"),
            surname: "s".to_owned(),
            birthday: "1990-01-01".parse().unwrap(),
            relationship: Relationship::Amico,
            role: Role::Guest,
        }
    }

    fn stored(face: i64, person: i64, embedding: Embedding) -> StoredEmbedding {
        StoredEmbedding { face: FaceId(face), person: PersonId(person), embedding }
    }

    #[test]
    fn persons_are_scored_by_the_trimmed_mean_of_their_samples() {
        let query = unit(&[1.0, 0.0]);
        let at = |cos: f32| unit(&[cos, (1.0 - cos * cos).sqrt()]);
        // Person 1: one lucky sample (0.99) and three ordinary ones: the trimmed mean drops the
        // extremes. Person 2: two samples at 0.9 and 0.85: their mean.
        let embeddings = vec![
            stored(1, 1, at(0.99)),
            stored(2, 1, at(0.8)),
            stored(3, 1, at(0.8)),
            stored(4, 1, at(0.78)),
            stored(5, 2, at(0.9)),
            stored(6, 2, at(0.85)),
        ];
        let gallery = Gallery::from_parts(
            ModelId::new("m"),
            2,
            IndexConfig::default(),
            vec![summary(1), summary(2)],
            embeddings,
        )
        .unwrap();
        let candidates = &gallery.candidates(std::slice::from_ref(&query), 16)[0];
        assert_eq!(candidates[0].person, PersonId(2));
        assert!((candidates[0].similarity - 0.875).abs() < 1e-4, "{candidates:?}");
        assert_eq!(candidates[1].person, PersonId(1));
        assert!((candidates[1].similarity - 0.8).abs() < 1e-4, "{candidates:?}");

        // Removing person 2's better sample and adding a face to person 1 rescore at once.
        let generation = gallery.generation();
        gallery.remove_face(FaceId(5));
        gallery.insert_face(FaceId(7), PersonId(1), &at(0.97)).unwrap();
        assert!(gallery.generation() > generation);
        let candidates = &gallery.candidates(std::slice::from_ref(&query), 16)[0];
        // Person 1: 0.99, 0.97, 0.8, 0.8, 0.78 → one dropped at each end → mean(0.97, 0.8, 0.8).
        assert_eq!(candidates[0].person, PersonId(1));
        assert!((candidates[0].similarity - 2.57 / 3.0).abs() < 1e-4, "{candidates:?}");
        assert_eq!(candidates[1].person, PersonId(2));
        assert!((candidates[1].similarity - 0.85).abs() < 1e-4, "{candidates:?}");
        gallery.remove_person(PersonId(2));
        assert_eq!(gallery.candidates(std::slice::from_ref(&query), 16)[0].len(), 1);
    }

    #[tokio::test]
    async fn reload_picks_up_what_the_store_holds_and_a_late_insert_is_not_doubled() {
        use ddfr_protocol::PersonFields;
        use ddfr_store::{NewFace, SqliteStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
        let model = ModelId::new("m");
        let fields = |name: &str| PersonFields {
            name: name.to_owned(),
            surname: "s".to_owned(),
            birthday: "1990-01-01".parse().unwrap(),
            relationship: Relationship::Amico,
            role: Role::Guest,
        };
        let face = |values: &[f32]| NewFace {
            embedding: unit(values),
            model: model.clone(),
            bbox: ddfr_core::PixelBox { top: 0, right: 10, bottom: 10, left: 0 },
            crop_jpeg: vec![0xFF, 0xD8, 0xFF],
        };
        let ada = store.create_person(&fields("Ada")).await.unwrap();
        store.add_face(ada.id, &face(&[1.0, 0.0])).await.unwrap();
        let gallery = Gallery::load(&store, &model, 2, IndexConfig::default()).await.unwrap();
        assert_eq!((gallery.n_persons(), gallery.n_faces()), (1, 1));

        // Writes the gallery never heard of (as after a commit reported failed that landed).
        let bob = store.create_person(&fields("Bob")).await.unwrap();
        let late = store.add_face(bob.id, &face(&[0.0, 1.0])).await.unwrap();
        gallery.mark_stale();
        let generation = gallery.generation();
        gallery.reload(&store, false).await.unwrap();
        assert_eq!((gallery.n_persons(), gallery.n_faces()), (2, 2));
        assert!(gallery.is_stale(), "a reload right after a fault keeps the mark");
        assert!(gallery.generation() > generation, "trackers see the change");
        assert_eq!(gallery.person(bob.id).map(|p| p.name), Some("Bob".to_owned()));
        let best = &gallery.candidates(&[unit(&[0.0, 1.0])], 4)[0][0];
        assert_eq!(best.person, bob.id);

        // The handler's own insert arriving after the reload changes nothing.
        gallery.insert_face(late.id, bob.id, &unit(&[0.0, 1.0])).unwrap();
        assert_eq!(gallery.n_faces(), 2);

        store.delete_person(ada.id).await.unwrap();
        gallery.reload(&store, true).await.unwrap();
        assert_eq!((gallery.n_persons(), gallery.n_faces()), (1, 1));
        assert!(!gallery.is_stale());
        store.close().await;
    }
}
