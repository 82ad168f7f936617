//! The source of truth: persons, their face samples, face crops and embeddings.
//!
//! Architecture invariant: the store is the truth; the in-memory index is a cache rebuilt from
//! [`PersonStore::embeddings`] at startup. Everything here is async (sqlx) and never on the
//! frame path.
//!
//! One trait, [`PersonStore`], used as `Arc<dyn PersonStore>`, has two implementations:
//! [`SqliteStore`] (the default, one file in the data dir) and `PgStore` (feature
//! `postgres`). [`open_store`] picks one by the URL scheme. Both run the same contract test.
//!
//! Person values reuse `ddfr-protocol`'s value types ([`ddfr_protocol::Date`],
//! [`ddfr_protocol::Relationship`], [`ddfr_protocol::Role`]) and take its validated
//! [`ddfr_protocol::PersonFields`] / [`ddfr_protocol::PersonChanges`] as input: those are
//! plain checked values, not JSON bodies, and sharing them means a person is validated in
//! exactly one place. No request or reply struct of the protocol crosses this crate.
//!
//! Privacy: deleting a person or a face removes the rows, crop bytes and embeddings in one
//! transaction. On SQLite, `secure_delete` zeroes the freed pages and a
//! `wal_checkpoint(TRUNCATE)` afterwards empties the write-ahead log, so the bytes are not
//! recoverable from the `.db` or `-wal` file. PostgreSQL deletes the rows but leaves dead
//! tuples to `VACUUM`; that backend does not make the byte-level promise.
//!
//! Encryption at rest (optional, [`StoreOptions::encryption_key`]): crops and embeddings of
//! enrolled faces and of unknown visitors are sealed one by one with XChaCha20-Poly1305, each
//! bound to its row and owner; the database records a key check, so a wrong or missing key
//! refuses to open before anything is written (see the `crypt` module). The trait is the same
//! either way: callers see plaintext.
//!
//! Schema versions: reversible migrations per backend, applied at open; SQLite copies an
//! existing database aside before migrating it ([`SCHEMA_VERSION`], [`SqliteStore::migrate_to`]).
#![warn(missing_docs)]

mod at_rest;
mod audit;
mod crypt;
mod error;
mod keys;
mod model;
#[cfg(feature = "postgres")]
mod postgres;
mod privacy;
mod schema;
mod sql;
mod sqlite;
mod url;
mod visitors;

use std::fmt::Debug;

use async_trait::async_trait;
use ddfr_core::{Embedding, FaceId, ModelId, PersonId};
use ddfr_protocol::{PersonChanges, PersonFields};

pub use audit::{AuditEntry, AuditResult, AuditStore, MAX_AUDIT_DETAIL_CHARS, NewAuditEntry};
pub use crypt::{ENVELOPE_OVERHEAD, EncryptionKey, KEY_LEN, KeyError};
pub use error::StoreError;
pub use keys::{ApiKey, KeyRole, KeyStore, MAX_KEY_NAME_CHARS, NewApiKey};
pub use model::{EmbeddingModelCount, FaceEmbedding, FaceSample, NewFace, Person, StoredEmbedding};
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub use privacy::{Consent, NewConsent, PersonRetention, PrivacyStore, purge_expired_persons};
pub use schema::{DEFAULT_MIGRATION_BACKUPS, SCHEMA_VERSION};
pub use sqlite::{SQLITE_FILE_NAME, SqliteStore};
pub use url::{DatabaseUrl, StoreKind, open_store, open_store_with};
pub use visitors::{Visitor, VisitorSample, VisitorStore, VisitorWrite};

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The key for encryption at rest. `None`: values are stored as they are, and an
    /// encrypted database refuses to open ([`StoreError::EncryptionKeyRequired`]). `Some`: a
    /// database encrypted under another key refuses to open
    /// ([`StoreError::WrongEncryptionKey`]); a plaintext one is encrypted in one transaction.
    pub encryption_key: Option<EncryptionKey>,
    /// With a key, whether a plaintext database is encrypted at open (the default). When
    /// false, a plaintext database opens as plaintext and the key is not used: for tools that
    /// must not change a database a running server has open (`ddfr backup`).
    pub encrypt_plaintext: bool,
    /// How many copies of a SQLite database taken before a schema migration are kept next to
    /// it (0: none are taken). PostgreSQL takes none.
    pub migration_backups: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            encryption_key: None,
            encrypt_plaintext: true,
            migration_backups: DEFAULT_MIGRATION_BACKUPS,
        }
    }
}

impl StoreOptions {
    /// The default options with an encryption key.
    pub fn encrypted(key: EncryptionKey) -> Self {
        Self { encryption_key: Some(key), ..Self::default() }
    }
}

/// Persons, face samples, crops and embeddings. Every method is one transaction.
///
/// Ids are never reused: a deleted person's or face's id is never handed out again.
///
/// Every store also keeps recurring unknown visitors ([`VisitorStore`]), the append-only
/// audit log ([`AuditStore`]), consent records and retention ([`PrivacyStore`]) and the API keys
/// ([`KeyStore`]), so one `Arc<dyn PersonStore>` serves them all.
#[async_trait]
pub trait PersonStore:
    VisitorStore + AuditStore + PrivacyStore + KeyStore + Send + Sync + Debug
{
    /// Stores a new person with no face samples.
    async fn create_person(&self, fields: &PersonFields) -> Result<Person, StoreError>;

    /// The person with `id`, or [`StoreError::PersonNotFound`].
    async fn person(&self, id: PersonId) -> Result<Person, StoreError>;

    /// One page of persons by ascending id, and the total number of persons.
    async fn list_persons(&self, limit: u32, offset: u32)
    -> Result<(Vec<Person>, u64), StoreError>;

    /// Every person by ascending id, for the server's in-memory person table.
    async fn all_persons(&self) -> Result<Vec<Person>, StoreError>;

    /// The persons among `ids` that exist, by ascending id; unknown ids are skipped.
    async fn persons_by_ids(&self, ids: &[PersonId]) -> Result<Vec<Person>, StoreError>;

    /// Applies `changes` and returns the updated person. Empty changes leave `updated_at` as is.
    async fn update_person(
        &self,
        id: PersonId,
        changes: &PersonChanges,
    ) -> Result<Person, StoreError>;

    /// Removes the person with every face sample, crop, embedding, consent record and
    /// retention row, for good.
    async fn delete_person(&self, id: PersonId) -> Result<(), StoreError>;

    /// Enrolls a face sample: its box, crop and embedding, atomically.
    /// [`StoreError::ModelMismatch`] when `face.model` already has embeddings of another
    /// dimension.
    async fn add_face(&self, person: PersonId, face: &NewFace) -> Result<FaceSample, StoreError>;

    /// The person's face samples by ascending id; [`StoreError::PersonNotFound`] for an
    /// unknown person.
    async fn faces(&self, person: PersonId) -> Result<Vec<FaceSample>, StoreError>;

    /// The JPEG crop of one face sample of `person`.
    async fn face_crop(&self, person: PersonId, face: FaceId) -> Result<Vec<u8>, StoreError>;

    /// Removes one face sample of `person` with its crop and embeddings, for good.
    async fn delete_face(&self, person: PersonId, face: FaceId) -> Result<(), StoreError>;

    /// Every embedding (of every model) of the person's face samples, by ascending face id
    /// then model, for the person's export; [`StoreError::PersonNotFound`] for an unknown
    /// person.
    async fn person_embeddings(&self, person: PersonId) -> Result<Vec<FaceEmbedding>, StoreError>;

    /// Every stored embedding of `model`, by ascending face id: the index is rebuilt from this.
    async fn embeddings(&self, model: &ModelId) -> Result<Vec<StoredEmbedding>, StoreError>;

    /// Stores (or replaces) `face`'s embedding for `model`, e.g. when re-embedding stored
    /// crops with a new model.
    async fn set_embedding(
        &self,
        face: FaceId,
        model: &ModelId,
        embedding: &Embedding,
    ) -> Result<(), StoreError>;

    /// How many embeddings each model has, so a model change is detected, never mixed in.
    async fn embedding_models(&self) -> Result<Vec<EmbeddingModelCount>, StoreError>;

    /// Face samples with no embedding for `model` (to re-embed from their crops).
    async fn faces_without_embedding(
        &self,
        model: &ModelId,
    ) -> Result<Vec<(FaceId, PersonId)>, StoreError>;

    /// Number of persons.
    async fn count_persons(&self) -> Result<u64, StoreError>;

    /// Number of face samples.
    async fn count_faces(&self) -> Result<u64, StoreError>;

    /// Checks the database: SQLite runs `PRAGMA quick_check`, PostgreSQL a round trip.
    /// [`StoreError::Integrity`] when it fails.
    async fn check_integrity(&self) -> Result<(), StoreError>;

    /// Closes every connection, waiting for the ones in use. SQLite checkpoints and removes
    /// its write-ahead log when the last connection closes.
    async fn close(&self);
}
