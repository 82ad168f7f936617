//! REST bodies of the API keys (`POST /api/keys`, `GET /api/keys`): the secret appears in
//! [`CreatedKey`] only, once; listings never carry it.

use serde::{Deserialize, Serialize};

use crate::date::Timestamp;

/// `POST /api/keys` body. At most one of `expires_at` and `expires_in_days`; neither: the key
/// never expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A label for people, 1 to 100 characters (e.g. `front door camera`).
    pub name: String,
    /// `admin`, `operator` or `recognizer`.
    pub role: String,
    /// When the key stops working (RFC 3339, in the future).
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// Days from now until the key stops working (1 to 3650).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A key as `GET /api/keys` shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyView {
    /// The key's id (for `DELETE /api/keys/{id}`); never reused.
    pub id: i64,
    /// Its label.
    pub name: String,
    /// `admin`, `operator` or `recognizer`.
    pub role: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working; `null`: never.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked; `null`: not revoked.
    pub revoked_at: Option<Timestamp>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
}

/// `POST /api/keys` reply (201): the key and its secret, shown this once. Only the secret's
/// SHA-256 is stored; a lost secret cannot be shown again (revoke the key, create another).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    /// The key.
    pub key: KeyView,
    /// The bearer token: `Authorization: Bearer <secret>`, or the login body's `token`.
    pub secret: String,
}

/// `GET /api/keys` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyList {
    /// Every key, revoked and expired ones included, by ascending id.
    pub items: Vec<KeyView>,
}
