//! Recurring unknown visitors: an averaged embedding per visitor and a few aligned face chips,
//! kept only while the owner has the feature on and only for the retention period.
//!
//! The server decides everything (clustering, ids, when a sighting counts); the store only
//! keeps what it is told. Deletes are hard deletes like a person's (on SQLite the freed pages
//! are zeroed and the WAL is truncated afterwards).

use std::fmt::Debug;

use async_trait::async_trait;
use ddfr_core::{Embedding, ModelId, VisitorId};
use ddfr_protocol::Timestamp;
use sqlx::Row;

use crate::crypt::{AtRest, Field};
use crate::model::dim_column;
use crate::{SqliteStore, StoreError, sql};

/// A stored unknown visitor.
#[derive(Debug, Clone, PartialEq)]
pub struct Visitor {
    /// The anonymous id.
    pub id: VisitorId,
    /// The embedding model of `centroid`.
    pub model: ModelId,
    /// The mean of the visitor's embeddings, unit-norm.
    pub centroid: Embedding,
    /// How many separate sightings (tracks) were counted.
    pub sightings: u64,
    /// First sighting.
    pub first_seen: Timestamp,
    /// Latest sighting.
    pub last_seen: Timestamp,
    /// Stored face chips.
    pub n_samples: u64,
}

/// One stored face chip of a visitor.
#[derive(Debug, Clone, PartialEq)]
pub struct VisitorSample {
    /// Its embedding (same model as the visitor's centroid).
    pub embedding: Embedding,
    /// The aligned face chip, JPEG re-encoded from pixels.
    pub jpeg: Vec<u8>,
    /// When it was taken.
    pub created_at: Timestamp,
}

/// A write the server asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum VisitorWrite {
    /// A new visitor, first seen at `at`.
    Create {
        /// The id the server chose.
        id: VisitorId,
        /// The embedding model.
        model: ModelId,
        /// The first embedding.
        centroid: Embedding,
        /// When.
        at: Timestamp,
        /// A face chip with its embedding.
        sample: Option<(Embedding, Vec<u8>)>,
    },
    /// Another sighting of a known visitor.
    Sighting {
        /// The visitor.
        id: VisitorId,
        /// The updated mean embedding.
        centroid: Embedding,
        /// The updated count.
        sightings: u64,
        /// When.
        at: Timestamp,
        /// A further face chip, when the visitor has few.
        sample: Option<(Embedding, Vec<u8>)>,
    },
}

/// Storage of unknown visitors; every store implements it.
#[async_trait]
pub trait VisitorStore: Send + Sync + Debug {
    /// Applies one write. A sighting of a visitor that no longer exists (deleted or purged
    /// meanwhile) is ignored.
    async fn write_visitor(&self, write: &VisitorWrite) -> Result<(), StoreError>;

    /// Every stored visitor, most recently seen first.
    async fn visitors(&self) -> Result<Vec<Visitor>, StoreError>;

    /// A visitor's face chips, oldest first; [`StoreError::VisitorNotFound`] if unknown.
    async fn visitor_samples(&self, id: VisitorId) -> Result<Vec<VisitorSample>, StoreError>;

    /// Deletes a visitor and its chips for good.
    async fn delete_visitor(&self, id: VisitorId) -> Result<(), StoreError>;

    /// Deletes every visitor last seen before `seen_before`; returns how many.
    async fn purge_visitors(&self, seen_before: Timestamp) -> Result<u64, StoreError>;
}

fn u64_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn decode_vector(id: i64, dim: Option<i64>, bytes: &[u8]) -> Result<Embedding, StoreError> {
    if let Some(dim) = dim
        && usize::try_from(dim).ok().and_then(|d| d.checked_mul(4)) != Some(bytes.len())
    {
        return Err(StoreError::integrity(format!(
            "visitor {id}: centroid has {} bytes for dimension {dim}",
            bytes.len()
        )));
    }
    Embedding::from_le_bytes(bytes).map_err(|error| {
        StoreError::integrity(format!("visitor {id}: stored embedding is invalid: {error}"))
    })
}

fn visitor_from_row<R: Row>(row: &R, at_rest: &AtRest) -> Result<Visitor, StoreError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let id: i64 = row.try_get(0)?;
    let model: String = row.try_get(1)?;
    let dim: i64 = row.try_get(2)?;
    let centroid =
        at_rest.open(Field::VisitorCentroid { visitor: id }, &row.try_get::<Vec<u8>, _>(3)?)?;
    Ok(Visitor {
        id: VisitorId(id),
        model: ModelId::new(model),
        centroid: decode_vector(id, Some(dim), &centroid)?,
        sightings: u64_of(row.try_get(4)?),
        first_seen: Timestamp::from_unix_millis(row.try_get(5)?),
        last_seen: Timestamp::from_unix_millis(row.try_get(6)?),
        n_samples: u64_of(row.try_get(7)?),
    })
}

fn sample_from_row<R: Row>(
    id: VisitorId,
    row: &R,
    at_rest: &AtRest,
) -> Result<VisitorSample, StoreError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let sample: i64 = row.try_get(3)?;
    let vector = at_rest
        .open(Field::VisitorVector { visitor: id.0, sample }, &row.try_get::<Vec<u8>, _>(0)?)?;
    let jpeg = at_rest
        .open(Field::VisitorJpeg { visitor: id.0, sample }, &row.try_get::<Vec<u8>, _>(1)?)?;
    Ok(VisitorSample {
        embedding: decode_vector(id.0, None, &vector)?,
        jpeg,
        created_at: Timestamp::from_unix_millis(row.try_get(2)?),
    })
}

/// Implements [`VisitorStore`] for a store type with `pool()`, `begin_write()`, `at_rest()` and
/// `after_delete()`: the SQL is shared, only the pool type differs.
macro_rules! impl_visitor_store {
    ($store:ty) => {
        #[async_trait]
        impl VisitorStore for $store {
            async fn write_visitor(&self, write: &VisitorWrite) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let (id, sample, at) = match write {
                    VisitorWrite::Create { id, model, centroid, at, sample } => {
                        let field = Field::VisitorCentroid { visitor: id.0 };
                        sqlx::query(sql::INSERT_VISITOR)
                            .bind(id.0)
                            .bind(model.as_str())
                            .bind(dim_column(centroid))
                            .bind(self.at_rest().seal(field, &centroid.to_le_bytes())?)
                            .bind(1i64)
                            .bind(at.unix_millis())
                            .execute(&mut *tx)
                            .await?;
                        (id, sample, at)
                    }
                    VisitorWrite::Sighting { id, centroid, sightings, at, sample } => {
                        let field = Field::VisitorCentroid { visitor: id.0 };
                        let updated = sqlx::query(sql::UPDATE_VISITOR)
                            .bind(self.at_rest().seal(field, &centroid.to_le_bytes())?)
                            .bind(i64::try_from(*sightings).unwrap_or(i64::MAX))
                            .bind(at.unix_millis())
                            .bind(id.0)
                            .execute(&mut *tx)
                            .await?;
                        if updated.rows_affected() == 0 {
                            return Ok(());
                        }
                        (id, sample, at)
                    }
                };
                if let Some((embedding, jpeg)) = sample {
                    let empty: &[u8] = &[];
                    let sample: i64 = sqlx::query_scalar(sql::INSERT_VISITOR_SAMPLE)
                        .bind(id.0)
                        .bind(empty)
                        .bind(empty)
                        .bind(at.unix_millis())
                        .fetch_one(&mut *tx)
                        .await?;
                    let vector = self.at_rest().seal(
                        Field::VisitorVector { visitor: id.0, sample },
                        &embedding.to_le_bytes(),
                    )?;
                    let jpeg = self
                        .at_rest()
                        .seal(Field::VisitorJpeg { visitor: id.0, sample }, jpeg.as_slice())?;
                    sqlx::query(sql::UPDATE_VISITOR_SAMPLE)
                        .bind(vector)
                        .bind(jpeg)
                        .bind(sample)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn visitors(&self) -> Result<Vec<Visitor>, StoreError> {
                let rows = sqlx::query(sql::ALL_VISITORS).fetch_all(self.pool()).await?;
                rows.iter().map(|row| visitor_from_row(row, self.at_rest())).collect()
            }

            async fn visitor_samples(
                &self,
                id: VisitorId,
            ) -> Result<Vec<VisitorSample>, StoreError> {
                let mut tx = self.pool().begin().await?;
                let exists = sqlx::query("SELECT 1 FROM visitors WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                if !exists {
                    return Err(StoreError::VisitorNotFound(id));
                }
                let rows = sqlx::query(sql::VISITOR_SAMPLES).bind(id.0).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows.iter().map(|row| sample_from_row(id, row, self.at_rest())).collect()
            }

            async fn delete_visitor(&self, id: VisitorId) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(sql::DELETE_VISITOR_SAMPLES).bind(id.0).execute(&mut *tx).await?;
                let deleted = sqlx::query(sql::DELETE_VISITOR).bind(id.0).execute(&mut *tx).await?;
                if deleted.rows_affected() == 0 {
                    return Err(StoreError::VisitorNotFound(id));
                }
                tx.commit().await?;
                self.after_delete().await;
                Ok(())
            }

            async fn purge_visitors(&self, seen_before: Timestamp) -> Result<u64, StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(sql::DELETE_STALE_VISITOR_SAMPLES)
                    .bind(seen_before.unix_millis())
                    .execute(&mut *tx)
                    .await?;
                let deleted = sqlx::query(sql::DELETE_STALE_VISITORS)
                    .bind(seen_before.unix_millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                if deleted.rows_affected() > 0 {
                    self.after_delete().await;
                }
                Ok(deleted.rows_affected())
            }
        }
    };
}

impl_visitor_store!(SqliteStore);

#[cfg(feature = "postgres")]
impl_visitor_store!(crate::PgStore);
