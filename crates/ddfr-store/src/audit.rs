//! The append-only audit log: who did what to which record, when, and whether it worked.
//!
//! Entries name their targets by id only (never a person's name), and hold no images,
//! embeddings or tokens, so a person's audit trail outlives their hard delete without keeping
//! their data. The trait offers no way to change or remove an entry, and the schema's triggers
//! refuse `UPDATE` and `DELETE` on the table for every other writer too.

use std::fmt::Debug;

use async_trait::async_trait;
use ddfr_core::PersonId;
use ddfr_protocol::Timestamp;
use sqlx::Row;

use crate::model::now;
use crate::{SqliteStore, StoreError, sql};

/// Longest `detail` text kept; longer texts are cut at a character boundary.
pub const MAX_AUDIT_DETAIL_CHARS: usize = 1000;

/// Whether the audited action worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditResult {
    /// It did.
    Success,
    /// It was refused or failed.
    Failure,
}

impl AuditResult {
    /// The stored text: `success` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Success => "success",
            AuditResult::Failure => "failure",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "success" => Ok(AuditResult::Success),
            "failure" => Ok(AuditResult::Failure),
            other => Err(StoreError::integrity(format!("audit entry: invalid result {other:?}"))),
        }
    }
}

/// An entry to append. The store stamps the time and the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// Who acted, e.g. `token`, `cookie`, `loopback`; never a secret.
    pub actor: String,
    /// What was done, e.g. `person_delete`.
    pub action: String,
    /// The kind of record acted on (`person`, `face`, `unknown`), if any.
    pub target_kind: Option<String>,
    /// Its id.
    pub target_id: Option<i64>,
    /// The person the entry concerns (for their export), if any.
    pub person: Option<PersonId>,
    /// Whether it worked.
    pub result: AuditResult,
    /// Free text without personal data: ids and counts only.
    pub detail: Option<String>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increasing with time; never reused.
    pub id: i64,
    /// When it was appended.
    pub at: Timestamp,
    /// Who acted.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// The kind of record acted on.
    pub target_kind: Option<String>,
    /// Its id.
    pub target_id: Option<i64>,
    /// The person the entry concerns.
    pub person: Option<PersonId>,
    /// Whether it worked.
    pub result: AuditResult,
    /// Free text.
    pub detail: Option<String>,
}

/// The audit log; every store implements it. There is deliberately no method that changes or
/// removes an entry.
#[async_trait]
pub trait AuditStore: Send + Sync + Debug {
    /// Appends one entry, stamped now, and returns it as stored.
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry, StoreError>;

    /// One page of entries, newest first, and the total number of entries.
    async fn audit_page(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<AuditEntry>, u64), StoreError>;

    /// Every entry concerning `person`, oldest first (also after the person was deleted).
    async fn audit_of_person(&self, person: PersonId) -> Result<Vec<AuditEntry>, StoreError>;
}

fn truncated(detail: Option<&str>) -> Option<String> {
    detail.map(|text| text.chars().take(MAX_AUDIT_DETAIL_CHARS).collect())
}

fn entry_from_row<R: Row>(row: &R) -> Result<AuditEntry, StoreError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let result: String = row.try_get(7)?;
    let person: Option<i64> = row.try_get(6)?;
    Ok(AuditEntry {
        id: row.try_get(0)?,
        at: Timestamp::from_unix_millis(row.try_get(1)?),
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        target_kind: row.try_get(4)?,
        target_id: row.try_get(5)?,
        person: person.map(PersonId),
        result: AuditResult::parse(&result)?,
        detail: row.try_get(8)?,
    })
}

/// Implements [`AuditStore`] for a store type with `pool()` and `begin_write()`: the SQL is
/// shared, only the pool type differs.
macro_rules! impl_audit_store {
    ($store:ty) => {
        #[async_trait]
        impl AuditStore for $store {
            async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry, StoreError> {
                let at = now();
                let detail = truncated(entry.detail.as_deref());
                let mut tx = self.begin_write().await?;
                let id: i64 = sqlx::query_scalar(sql::INSERT_AUDIT)
                    .bind(at.unix_millis())
                    .bind(&entry.actor)
                    .bind(&entry.action)
                    .bind(entry.target_kind.as_deref())
                    .bind(entry.target_id)
                    .bind(entry.person.map(|p| p.0))
                    .bind(entry.result.as_str())
                    .bind(detail.as_deref())
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(AuditEntry {
                    id,
                    at,
                    actor: entry.actor.clone(),
                    action: entry.action.clone(),
                    target_kind: entry.target_kind.clone(),
                    target_id: entry.target_id,
                    person: entry.person,
                    result: entry.result,
                    detail,
                })
            }

            async fn audit_page(
                &self,
                limit: u32,
                offset: u32,
            ) -> Result<(Vec<AuditEntry>, u64), StoreError> {
                let mut tx = self.pool().begin().await?;
                let rows = sqlx::query(sql::AUDIT_PAGE)
                    .bind(i64::from(limit))
                    .bind(i64::from(offset))
                    .fetch_all(&mut *tx)
                    .await?;
                let total: i64 = sqlx::query_scalar(sql::COUNT_AUDIT).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                let entries = rows.iter().map(entry_from_row).collect::<Result<Vec<_>, _>>()?;
                Ok((entries, u64::try_from(total).unwrap_or(0)))
            }

            async fn audit_of_person(
                &self,
                person: PersonId,
            ) -> Result<Vec<AuditEntry>, StoreError> {
                let rows =
                    sqlx::query(sql::AUDIT_OF_PERSON).bind(person.0).fetch_all(self.pool()).await?;
                rows.iter().map(entry_from_row).collect()
            }
        }
    };
}

impl_audit_store!(SqliteStore);

#[cfg(feature = "postgres")]
impl_audit_store!(crate::PgStore);
