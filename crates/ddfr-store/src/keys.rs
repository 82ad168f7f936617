//! API keys (schema v6): named credentials with a role, an optional expiry and a revocation
//! time, created and revoked by the admin.
//!
//! The store never sees a key's secret: callers hand it the SHA-256 of the secret
//! ([`NewApiKey::secret_sha256`]) and compare hashes themselves (in constant time, see
//! `ddfr-server`'s `keys` module). Revoking keeps the row (with its revocation time), so the
//! list and the audit log keep naming the key; a revoked key never authenticates again.

use std::fmt::{self, Debug};

use async_trait::async_trait;
use ddfr_protocol::Timestamp;
use sqlx::Row;

use crate::model::now;
use crate::{SqliteStore, StoreError};

/// Longest key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 100;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyRole {
    /// `/ws`, `POST /api/recognize` and `POST /api/verify`.
    Recognizer,
    /// The recognizer's routes plus reading persons, faces, crops and unknown visitors.
    Operator,
    /// Everything.
    Admin,
}

impl KeyRole {
    /// The stored text: `admin`, `operator` or `recognizer`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Admin => "admin",
            KeyRole::Operator => "operator",
            KeyRole::Recognizer => "recognizer",
        }
    }

    /// The role named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(KeyRole::Admin),
            "operator" => Some(KeyRole::Operator),
            "recognizer" => Some(KeyRole::Recognizer),
            _ => None,
        }
    }
}

/// A key to store. The store stamps its id and creation time.
#[derive(Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// A label for people (e.g. `front door camera`), 1 to [`MAX_KEY_NAME_CHARS`] characters.
    pub name: String,
    /// What the key may do.
    pub role: KeyRole,
    /// SHA-256 of the secret; the secret itself is never stored.
    pub secret_sha256: [u8; 32],
    /// When the key stops working; `None`: never.
    pub expires_at: Option<Timestamp>,
}

impl Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A stored key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Never reused.
    pub id: i64,
    /// Its label.
    pub name: String,
    /// What it may do.
    pub role: KeyRole,
    /// SHA-256 of its secret.
    pub secret_sha256: [u8; 32],
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working; `None`: never.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked; `None`: not revoked.
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// Whether the key authenticates at `at`: not revoked and not expired (a key expiring at
    /// `t` no longer works at `t`).
    pub fn is_valid_at(&self, at: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|end| at < end)
    }
}

impl Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// The API keys; every store implements it.
#[async_trait]
pub trait KeyStore: Send + Sync + Debug {
    /// Stores a new key and returns it. The schema refuses an empty or too long name and a
    /// duplicate secret hash ([`StoreError::Database`]); callers check names first.
    async fn create_key(&self, key: &NewApiKey) -> Result<ApiKey, StoreError>;

    /// Every key, revoked and expired ones included, by ascending id.
    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes the key with `id` now and returns it; a key revoked before keeps its first
    /// revocation time. `None` when no key has this id.
    async fn revoke_key(&self, id: i64) -> Result<Option<ApiKey>, StoreError>;
}

const INSERT_KEY: &str = "INSERT INTO api_keys \
     (name, role, secret_sha256, created_at, expires_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, NULL) RETURNING id";
const ALL_KEYS: &str = "SELECT id, name, role, secret_sha256, created_at, expires_at, revoked_at \
     FROM api_keys ORDER BY id";
const KEY_BY_ID: &str = "SELECT id, name, role, secret_sha256, created_at, expires_at, \
     revoked_at FROM api_keys WHERE id = $1";
const REVOKE_KEY: &str = "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";

fn key_from_row<R: Row>(row: &R) -> Result<ApiKey, StoreError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let role: String = row.try_get(2)?;
    let hash: Vec<u8> = row.try_get(3)?;
    let expires_at: Option<i64> = row.try_get(5)?;
    let revoked_at: Option<i64> = row.try_get(6)?;
    Ok(ApiKey {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        role: KeyRole::parse(&role)
            .ok_or_else(|| StoreError::integrity(format!("api key: invalid role {role:?}")))?,
        secret_sha256: hash
            .try_into()
            .map_err(|_| StoreError::integrity("api key: secret hash is not 32 bytes"))?,
        created_at: Timestamp::from_unix_millis(row.try_get(4)?),
        expires_at: expires_at.map(Timestamp::from_unix_millis),
        revoked_at: revoked_at.map(Timestamp::from_unix_millis),
    })
}

/// Implements [`KeyStore`] for a store type with `pool()` and `begin_write()`: the SQL is
/// shared, only the pool type differs.
macro_rules! impl_key_store {
    ($store:ty) => {
        #[async_trait]
        impl KeyStore for $store {
            async fn create_key(&self, key: &NewApiKey) -> Result<ApiKey, StoreError> {
                let created_at = now();
                let mut tx = self.begin_write().await?;
                let id: i64 = sqlx::query_scalar(INSERT_KEY)
                    .bind(&key.name)
                    .bind(key.role.as_str())
                    .bind(key.secret_sha256.as_slice())
                    .bind(created_at.unix_millis())
                    .bind(key.expires_at.map(|t| t.unix_millis()))
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(ApiKey {
                    id,
                    name: key.name.clone(),
                    role: key.role,
                    secret_sha256: key.secret_sha256,
                    created_at,
                    expires_at: key.expires_at,
                    revoked_at: None,
                })
            }

            async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
                let rows = sqlx::query(ALL_KEYS).fetch_all(self.pool()).await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn revoke_key(&self, id: i64) -> Result<Option<ApiKey>, StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(REVOKE_KEY)
                    .bind(now().unix_millis())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let row = sqlx::query(KEY_BY_ID).bind(id).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                row.as_ref().map(key_from_row).transpose()
            }
        }
    };
}

impl_key_store!(SqliteStore);

#[cfg(feature = "postgres")]
impl_key_store!(crate::PgStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_unknown_names_are_refused() {
        for role in [KeyRole::Admin, KeyRole::Operator, KeyRole::Recognizer] {
            assert_eq!(KeyRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(KeyRole::parse("root"), None);
        assert!(KeyRole::Recognizer < KeyRole::Operator && KeyRole::Operator < KeyRole::Admin);
    }

    #[test]
    fn a_key_is_valid_until_its_expiry_or_revocation() {
        let at = Timestamp::from_unix_millis;
        let mut key = ApiKey {
            id: 1,
            name: "door".to_owned(),
            role: KeyRole::Recognizer,
            secret_sha256: [7; 32],
            created_at: at(0),
            expires_at: Some(at(1_000)),
            revoked_at: None,
        };
        assert!(key.is_valid_at(at(999)));
        assert!(!key.is_valid_at(at(1_000)));
        key.expires_at = None;
        assert!(key.is_valid_at(at(i64::MAX)));
        key.revoked_at = Some(at(5));
        assert!(!key.is_valid_at(at(1)));
        assert!(!format!("{key:?}").contains("secret"), "Debug never shows the hash");
    }
}
