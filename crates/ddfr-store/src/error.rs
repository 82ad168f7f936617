//! `StoreError`: every way a store operation can fail, with structured fields.

use ddfr_core::{FaceId, ModelId, PersonId, VisitorId};

/// SQLite's primary result code for "disk I/O error" (a failed read, write or fsync).
const SQLITE_IOERR: i64 = 10;
/// SQLite's primary result code for "database disk image is malformed".
const SQLITE_CORRUPT: i64 = 11;
/// SQLite's primary result code for "database or disk is full".
const SQLITE_FULL: i64 = 13;
/// SQLite's primary result code for "file is not a database".
const SQLITE_NOTADB: i64 = 26;
/// PostgreSQL's SQLSTATE for `disk_full`.
const PG_DISK_FULL: &str = "53100";
/// PostgreSQL's SQLSTATE class of system errors (`io_error` 58030 and the like).
const PG_SYSTEM_ERROR_CLASS: &str = "58";
/// SQLite keeps the primary result code in the low byte of an extended code.
const SQLITE_PRIMARY_CODE_MASK: i64 = 0xFF;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No person has this id.
    #[error("no person with id {0}")]
    PersonNotFound(PersonId),
    /// The person has no face sample with this id.
    #[error("no face sample with id {0} for this person")]
    FaceNotFound(FaceId),
    /// No unknown visitor has this id.
    #[error("no unknown visitor with id {0}")]
    VisitorNotFound(VisitorId),
    /// An embedding's dimension differs from the embeddings already stored for its model.
    #[error("model {model} has {expected_dim}-dimensional embeddings stored, got {found_dim}")]
    ModelMismatch {
        /// The embedding model.
        model: ModelId,
        /// Dimension of the stored embeddings.
        expected_dim: usize,
        /// Dimension of the new one.
        found_dim: usize,
    },
    /// The database file is corrupt or holds values no ddfr version writes; the store refuses
    /// to serve from it.
    #[error("database integrity check failed: {message}")]
    Integrity {
        /// What was found.
        message: String,
    },
    /// The disk (or the database's quota) is full; nothing was written. SQLite's
    /// `SQLITE_FULL`, PostgreSQL's `disk_full`.
    #[error("the database storage is full")]
    StorageFull {
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
    /// The disk failed a read, write or sync; the transaction was rolled back. SQLite's
    /// `SQLITE_IOERR` (with any extended code), PostgreSQL's class 58 system errors.
    #[error("the database storage failed (I/O error)")]
    StorageIo {
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
    /// The database URL names no backend this crate knows.
    #[error("unsupported database URL {url}: expected sqlite:PATH or postgres://...")]
    UnsupportedUrl {
        /// The URL, with any password redacted.
        url: String,
    },
    /// The URL names a backend this build was compiled without.
    #[error("this build has no {backend} support; rebuild with the `{feature}` feature")]
    BackendNotCompiled {
        /// The backend the URL asked for.
        backend: &'static str,
        /// The cargo feature that adds it.
        feature: &'static str,
    },
    /// A schema migration failed.
    #[error("database migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// The database is encrypted at rest and no key was given; nothing was read or written.
    #[error(
        "the database is encrypted at rest and no encryption key was given; nothing was changed"
    )]
    EncryptionKeyRequired,
    /// The key does not open the database's key check; nothing was read or written.
    #[error(
        "the encryption key does not match the one this database was encrypted with; \
         nothing was changed"
    )]
    WrongEncryptionKey,
    /// A stored value does not decrypt under the key at its place: it was altered, moved
    /// from another row, or written under another key. Never skipped.
    #[error("cannot decrypt {value}: it was altered, moved or written under another key")]
    Decryption {
        /// Which value (ids only).
        value: String,
    },
    /// Encrypting a value failed (e.g. no randomness from the operating system).
    #[error("encryption failed: {message}")]
    Encryption {
        /// What failed.
        message: String,
    },
}

impl StoreError {
    /// True for the errors a client caused by naming something that does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::PersonNotFound(_) | StoreError::FaceNotFound(_))
    }

    pub(crate) fn integrity(message: impl Into<String>) -> Self {
        StoreError::Integrity { message: message.into() }
    }
}

impl From<sqlx::Error> for StoreError {
    /// Sorts database errors into the cases callers act on: a full disk (HTTP 507), a
    /// failing disk (HTTP 503) and a corrupt file (refuse to serve) are told apart from
    /// everything else.
    fn from(error: sqlx::Error) -> Self {
        let (sqlite_code, sqlstate) = match &error {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned());
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    let extended = code.as_deref().and_then(|c| c.parse::<i64>().ok());
                    (extended.map(|c| c & SQLITE_PRIMARY_CODE_MASK), None)
                } else {
                    (None, code)
                }
            }
            _ => (None, None),
        };
        match (sqlite_code, sqlstate.as_deref()) {
            (Some(SQLITE_FULL), _) | (_, Some(PG_DISK_FULL)) => {
                StoreError::StorageFull { source: error }
            }
            (Some(SQLITE_IOERR), _) => StoreError::StorageIo { source: error },
            (_, Some(state)) if state.starts_with(PG_SYSTEM_ERROR_CLASS) => {
                StoreError::StorageIo { source: error }
            }
            (Some(SQLITE_CORRUPT | SQLITE_NOTADB), _) => {
                StoreError::Integrity { message: error.to_string() }
            }
            _ => StoreError::Database(error),
        }
    }
}
