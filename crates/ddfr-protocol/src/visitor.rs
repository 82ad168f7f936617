//! REST bodies of the recurring-unknown-visitor feature (`/api/unknowns`).

use serde::{Deserialize, Serialize};

use crate::date::Timestamp;

/// A recurring unknown visitor as `GET /api/unknowns` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnknownView {
    /// The anonymous id, as the `unknown_id` of `/ws` face objects.
    pub id: i64,
    /// Separate sightings (one per track, not per frame).
    pub sightings: u64,
    /// First sighting.
    pub first_seen: Timestamp,
    /// Latest sighting.
    pub last_seen: Timestamp,
    /// Stored face chips (at most 5); the first is served at `crop_url`.
    pub samples: u64,
    /// Where the first face chip is served (`image/jpeg`), when there is one.
    pub crop_url: Option<String>,
    /// When the visitor will be deleted unless seen again.
    pub expires_at: Timestamp,
}

/// `GET /api/unknowns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnknownList {
    /// Whether the feature is on (`DDFR_UNKNOWN_VISITORS`); when off, nothing is kept.
    pub enabled: bool,
    /// How long a visitor not seen again is kept, in days.
    pub retention_days: u64,
    /// The visitors, most recently seen first.
    pub items: Vec<UnknownView>,
}
