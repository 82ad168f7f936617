//! Encryption at rest at open: reading a database's key check, and encrypting an existing
//! plaintext database the first time it is opened with a key. The cryptography itself is in
//! [`crate::crypt`].
//!
//! Turning encryption on seals every crop, embedding, visitor centroid and visitor sample and
//! records the key check, all in one transaction: a crash or error part-way leaves the
//! database as it was (plaintext, no key check), and the next start with the key tries again.
//! Values are read and rewritten in pages, so memory stays bounded for large galleries.

use crate::crypt::{Field, KEY_CHECK};
use crate::{SqliteStore, StoreError, sql};

/// Rows read per page while encrypting an existing database.
pub(crate) const PAGE_ROWS: i64 = 256;

/// How many values encrypting an existing database sealed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub crops: u64,
    pub embeddings: u64,
    pub visitors: u64,
    pub visitor_samples: u64,
}

/// Implements, for a store type with `pool()`, `begin_write()` and `at_rest()`:
/// `recorded_key_check` (the `store_meta` key check, `None` when the database is not
/// encrypted or predates schema v4) and `encrypt_existing` (one transaction).
/// `$has_meta` is the SQL counting the `store_meta` tables (0 or 1).
macro_rules! impl_at_rest {
    ($store:ty, $has_meta:expr) => {
        impl $store {
            /// The database's recorded key check; `None` for a plaintext database.
            pub(crate) async fn recorded_key_check(&self) -> Result<Option<Vec<u8>>, StoreError> {
                let has_meta: i64 = sqlx::query_scalar($has_meta).fetch_one(self.pool()).await?;
                if has_meta == 0 {
                    return Ok(None);
                }
                Ok(sqlx::query_scalar(sql::KEY_CHECK_VALUE)
                    .bind(KEY_CHECK)
                    .fetch_optional(self.pool())
                    .await?)
            }

            /// Seals every stored biometric value of a plaintext database and records the key
            /// check, in one transaction. The caller has checked that no key check exists.
            pub(crate) async fn encrypt_existing(&self) -> Result<Sealed, StoreError> {
                let at_rest = self.at_rest();
                let mut sealed = Sealed::default();
                let mut tx = self.begin_write().await?;
                let mut after = i64::MIN;
                loop {
                    let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(sql::CROPS_PAGE)
                        .bind(after)
                        .bind(PAGE_ROWS)
                        .fetch_all(&mut *tx)
                        .await?;
                    let Some(last) = rows.last() else { break };
                    after = last.0;
                    for (face, person, jpeg) in rows {
                        let value = at_rest.seal(Field::FaceCrop { person, face }, &jpeg)?;
                        sqlx::query(sql::UPDATE_CROP)
                            .bind(value)
                            .bind(face)
                            .execute(&mut *tx)
                            .await?;
                        sealed.crops += 1;
                    }
                }
                let (mut after_face, mut after_model) = (i64::MIN, String::new());
                loop {
                    let rows: Vec<(i64, i64, String, Vec<u8>)> =
                        sqlx::query_as(sql::EMBEDDINGS_PAGE)
                            .bind(after_face)
                            .bind(&after_model)
                            .bind(PAGE_ROWS)
                            .fetch_all(&mut *tx)
                            .await?;
                    let Some(last) = rows.last() else { break };
                    (after_face, after_model) = (last.0, last.2.clone());
                    for (face, person, model, vector) in rows {
                        let field = Field::Embedding { person, face, model: &model };
                        let value = at_rest.seal(field, &vector)?;
                        sqlx::query(sql::UPDATE_EMBEDDING_VECTOR)
                            .bind(value)
                            .bind(face)
                            .bind(&model)
                            .execute(&mut *tx)
                            .await?;
                        sealed.embeddings += 1;
                    }
                }
                let mut after = i64::MIN;
                loop {
                    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(sql::VISITORS_PAGE)
                        .bind(after)
                        .bind(PAGE_ROWS)
                        .fetch_all(&mut *tx)
                        .await?;
                    let Some(last) = rows.last() else { break };
                    after = last.0;
                    for (visitor, centroid) in rows {
                        let value = at_rest.seal(Field::VisitorCentroid { visitor }, &centroid)?;
                        sqlx::query(sql::UPDATE_VISITOR_CENTROID)
                            .bind(value)
                            .bind(visitor)
                            .execute(&mut *tx)
                            .await?;
                        sealed.visitors += 1;
                    }
                }
                let mut after = i64::MIN;
                loop {
                    let rows: Vec<(i64, i64, Vec<u8>, Vec<u8>)> =
                        sqlx::query_as(sql::VISITOR_SAMPLES_PAGE)
                            .bind(after)
                            .bind(PAGE_ROWS)
                            .fetch_all(&mut *tx)
                            .await?;
                    let Some(last) = rows.last() else { break };
                    after = last.0;
                    for (sample, visitor, vector, jpeg) in rows {
                        let vector =
                            at_rest.seal(Field::VisitorVector { visitor, sample }, &vector)?;
                        let jpeg = at_rest.seal(Field::VisitorJpeg { visitor, sample }, &jpeg)?;
                        sqlx::query(sql::UPDATE_VISITOR_SAMPLE)
                            .bind(vector)
                            .bind(jpeg)
                            .bind(sample)
                            .execute(&mut *tx)
                            .await?;
                        sealed.visitor_samples += 1;
                    }
                }
                sqlx::query(sql::INSERT_KEY_CHECK)
                    .bind(KEY_CHECK)
                    .bind(at_rest.key_check()?)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(sealed)
            }
        }
    };
}

/// Counts SQLite's `store_meta` tables (0 or 1).
pub(crate) const SQLITE_HAS_META: &str =
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'store_meta'";

impl_at_rest!(SqliteStore, SQLITE_HAS_META);

#[cfg(feature = "postgres")]
impl_at_rest!(
    crate::PgStore,
    "SELECT CAST(CASE WHEN to_regclass('store_meta') IS NULL THEN 0 ELSE 1 END AS BIGINT)"
);
