//! Consent records and retention (schema v5): who agreed to be enrolled, when, how and for
//! what, and until when each person is kept.
//!
//! A person's effective `retain_until` is the explicit date set on them, or else
//! `default_days` after their last match (or their creation if never matched); see
//! [`PersonRetention::retain_until`]. Last-match times are written in batches by the server
//! ([`PrivacyStore::record_last_matches`]), never per frame. [`purge_expired_persons`] deletes
//! every person past their date exactly as [`PersonStore::delete_person`] does (rows, crops,
//! embeddings, consent records; SQLite zeroes the pages and truncates the log). It takes `now`,
//! so tests drive it with any clock.
//!
//! Consent records hold the subject's description and free texts (purpose, retention term):
//! they are personal data and go with the person when the person is deleted.

use std::fmt::Debug;

use async_trait::async_trait;
use ddfr_core::PersonId;
use ddfr_protocol::{Date, Timestamp};
use sqlx::Row;

use crate::model::now;
use crate::{PersonStore, SqliteStore, StoreError, sql};

/// Milliseconds in a day.
const MILLIS_PER_DAY: i64 = 86_400_000;

/// A consent record to store. The store stamps `recorded_at` and the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsent {
    /// Who gave the consent: the person, or e.g. the parent of a child (1 to 200 characters).
    pub subject: String,
    /// When it was given.
    pub given_at: Timestamp,
    /// How: `written`, `electronic`, `verbal` or `other`.
    pub method: String,
    /// The version of the privacy notice shown (1 to 64 characters).
    pub notice_version: String,
    /// What the consent covers (1 to 500 characters).
    pub purpose: String,
    /// For how long it was given (1 to 200 characters), e.g. `until withdrawn`.
    pub retention_term: String,
    /// Who recorded it (1 to 100 characters).
    pub recorded_by: String,
}

/// A stored consent record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// Increasing; never reused.
    pub id: i64,
    /// The person it is for.
    pub person: PersonId,
    /// What was recorded.
    pub record: NewConsent,
    /// When it was stored.
    pub recorded_at: Timestamp,
}

/// What decides how long a person is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonRetention {
    /// The person.
    pub person: PersonId,
    /// When the person was created.
    pub created_at: Timestamp,
    /// The date set on the person, if any.
    pub explicit: Option<Date>,
    /// The latest recognition flushed to the store, if any.
    pub last_matched_at: Option<Timestamp>,
}

impl PersonRetention {
    /// The last day the person is kept: the explicit date, or the UTC day `default_days`
    /// after the last match (the creation if never matched). `None` only past year 9999.
    pub fn retain_until(&self, default_days: u32) -> Option<Date> {
        if let Some(date) = self.explicit {
            return Some(date);
        }
        let base = self.last_matched_at.unwrap_or(self.created_at).max(self.created_at);
        let millis = base.unix_millis().saturating_add(i64::from(default_days) * MILLIS_PER_DAY);
        Timestamp::from_unix_millis(millis).date().ok()
    }

    /// True once `now`'s UTC day is after [`PersonRetention::retain_until`].
    pub fn is_expired(&self, now: Timestamp, default_days: u32) -> bool {
        match (now.date(), self.retain_until(default_days)) {
            (Ok(today), Some(until)) => today > until,
            _ => false,
        }
    }
}

/// Consent records, retention dates and last-match times; every store implements it.
#[async_trait]
pub trait PrivacyStore: Send + Sync + Debug {
    /// Stores a consent record for `person`; [`StoreError::PersonNotFound`] for an unknown one.
    async fn add_consent(
        &self,
        person: PersonId,
        consent: &NewConsent,
    ) -> Result<Consent, StoreError>;

    /// The person's consent records, oldest first; [`StoreError::PersonNotFound`] for an
    /// unknown person.
    async fn consents(&self, person: PersonId) -> Result<Vec<Consent>, StoreError>;

    /// What decides how long `person` is kept; [`StoreError::PersonNotFound`] if unknown.
    async fn retention(&self, person: PersonId) -> Result<PersonRetention, StoreError>;

    /// [`PrivacyStore::retention`] of every person, by ascending id.
    async fn retentions(&self) -> Result<Vec<PersonRetention>, StoreError>;

    /// Sets (or with `None` clears) the explicit retention date of `person`.
    async fn set_retain_until(
        &self,
        person: PersonId,
        retain_until: Option<Date>,
    ) -> Result<(), StoreError>;

    /// Records when persons were last recognised, in one transaction. A time older than the
    /// stored one is ignored; a person deleted meanwhile is skipped. Returns the rows written.
    async fn record_last_matches(
        &self,
        matches: &[(PersonId, Timestamp)],
    ) -> Result<u64, StoreError>;
}

/// Deletes every person whose retention date is before `now`'s UTC day, each exactly as
/// [`PersonStore::delete_person`] does, and returns their ids. A person deleted meanwhile by
/// someone else is skipped.
pub async fn purge_expired_persons(
    store: &dyn PersonStore,
    now: Timestamp,
    default_days: u32,
) -> Result<Vec<PersonId>, StoreError> {
    let mut purged = Vec::new();
    for retention in store.retentions().await? {
        if !retention.is_expired(now, default_days) {
            continue;
        }
        match store.delete_person(retention.person).await {
            Ok(()) => purged.push(retention.person),
            Err(StoreError::PersonNotFound(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(purged)
}

fn consent_from_row<R: Row>(row: &R) -> Result<Consent, StoreError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(Consent {
        id: row.try_get(0)?,
        person: PersonId(row.try_get(1)?),
        record: NewConsent {
            subject: row.try_get(2)?,
            given_at: Timestamp::from_unix_millis(row.try_get(3)?),
            method: row.try_get(4)?,
            notice_version: row.try_get(5)?,
            purpose: row.try_get(6)?,
            retention_term: row.try_get(7)?,
            recorded_by: row.try_get(8)?,
        },
        recorded_at: Timestamp::from_unix_millis(row.try_get(9)?),
    })
}

fn retention_from_row<R: Row>(row: &R) -> Result<PersonRetention, StoreError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let explicit: Option<String> = row.try_get(2)?;
    let explicit = explicit
        .map(|text| {
            text.parse::<Date>().map_err(|error| {
                StoreError::integrity(format!("person_retention.retain_until {text:?}: {error}"))
            })
        })
        .transpose()?;
    let last: Option<i64> = row.try_get(3)?;
    Ok(PersonRetention {
        person: PersonId(row.try_get(0)?),
        created_at: Timestamp::from_unix_millis(row.try_get(1)?),
        explicit,
        last_matched_at: last.map(Timestamp::from_unix_millis),
    })
}

/// Returns [`StoreError::PersonNotFound`] from the enclosing function unless `$person` exists
/// (checked inside the transaction `$tx`).
macro_rules! person_must_exist {
    ($tx:ident, $person:ident) => {
        if sqlx::query(sql::PERSON_EXISTS)
            .bind($person.0)
            .fetch_optional(&mut *$tx)
            .await?
            .is_none()
        {
            return Err(StoreError::PersonNotFound($person));
        }
    };
}

/// Implements [`PrivacyStore`] for a store type with `pool()` and `begin_write()`: the SQL is
/// shared, only the pool type differs.
macro_rules! impl_privacy_store {
    ($store:ty) => {
        #[async_trait]
        impl PrivacyStore for $store {
            async fn add_consent(
                &self,
                person: PersonId,
                consent: &NewConsent,
            ) -> Result<Consent, StoreError> {
                let recorded_at = now();
                let mut tx = self.begin_write().await?;
                person_must_exist!(tx, person);
                let id: i64 = sqlx::query_scalar(sql::INSERT_CONSENT)
                    .bind(person.0)
                    .bind(&consent.subject)
                    .bind(consent.given_at.unix_millis())
                    .bind(&consent.method)
                    .bind(&consent.notice_version)
                    .bind(&consent.purpose)
                    .bind(&consent.retention_term)
                    .bind(&consent.recorded_by)
                    .bind(recorded_at.unix_millis())
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Consent { id, person, record: consent.clone(), recorded_at })
            }

            async fn consents(&self, person: PersonId) -> Result<Vec<Consent>, StoreError> {
                let mut tx = self.pool().begin().await?;
                person_must_exist!(tx, person);
                let rows =
                    sqlx::query(sql::CONSENTS_OF_PERSON).bind(person.0).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows.iter().map(consent_from_row).collect()
            }

            async fn retention(&self, person: PersonId) -> Result<PersonRetention, StoreError> {
                let row = sqlx::query(sql::RETENTION_OF_PERSON)
                    .bind(person.0)
                    .fetch_optional(self.pool())
                    .await?;
                match row {
                    Some(row) => retention_from_row(&row),
                    None => Err(StoreError::PersonNotFound(person)),
                }
            }

            async fn retentions(&self) -> Result<Vec<PersonRetention>, StoreError> {
                let rows = sqlx::query(sql::ALL_RETENTIONS).fetch_all(self.pool()).await?;
                rows.iter().map(retention_from_row).collect()
            }

            async fn set_retain_until(
                &self,
                person: PersonId,
                retain_until: Option<Date>,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                person_must_exist!(tx, person);
                sqlx::query(sql::UPSERT_RETAIN_UNTIL)
                    .bind(person.0)
                    .bind(retain_until.map(|date| date.to_string()))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_last_matches(
                &self,
                matches: &[(PersonId, Timestamp)],
            ) -> Result<u64, StoreError> {
                if matches.is_empty() {
                    return Ok(0);
                }
                let mut tx = self.begin_write().await?;
                let mut written = 0;
                for (person, at) in matches {
                    written += sqlx::query(sql::UPSERT_LAST_MATCH)
                        .bind(person.0)
                        .bind(at.unix_millis())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(written)
            }
        }
    };
}

impl_privacy_store!(SqliteStore);

#[cfg(feature = "postgres")]
impl_privacy_store!(crate::PgStore);

#[cfg(test)]
mod tests {
    use super::*;

    fn retention(explicit: Option<&str>, created: &str, last: Option<&str>) -> PersonRetention {
        PersonRetention {
            person: PersonId(1),
            created_at: created.parse().unwrap(),
            explicit: explicit.map(|d| d.parse().unwrap()),
            last_matched_at: last.map(|t| t.parse().unwrap()),
        }
    }

    #[test]
    fn the_default_runs_from_the_last_match_or_the_creation() {
        let never = retention(None, "2024-01-01T10:00:00Z", None);
        assert_eq!(never.retain_until(1095).unwrap().to_string(), "2026-12-31");
        let matched = retention(None, "2024-01-01T10:00:00Z", Some("2025-03-01T23:59:59Z"));
        assert_eq!(matched.retain_until(10).unwrap().to_string(), "2025-03-11");
        let explicit =
            retention(Some("2024-02-01"), "2024-01-01T10:00:00Z", Some("2025-03-01T00:00:00Z"));
        assert_eq!(explicit.retain_until(10).unwrap().to_string(), "2024-02-01");
    }

    #[test]
    fn a_person_expires_the_day_after_their_date() {
        let person = retention(Some("2025-06-30"), "2024-01-01T00:00:00Z", None);
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        assert!(!person.is_expired(at("2025-06-30T23:59:59Z"), 1095));
        assert!(person.is_expired(at("2025-07-01T00:00:00Z"), 1095));
    }
}
