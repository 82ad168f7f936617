//! REST bodies of the audit log (`GET /api/audit`) and of the per-person export in its JSON
//! form (`GET /api/persons/{id}/export?format=json`).

use serde::{Deserialize, Serialize};

use crate::date::Timestamp;
use crate::person::{FaceView, PersonView};
use crate::privacy::ConsentView;

/// One audit entry as the API shows it: ids and counts, never personal data, images,
/// embeddings or secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditView {
    /// Increasing with time.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// `token`, `cookie` or `loopback`.
    pub actor: String,
    /// E.g. `person_delete`.
    pub action: String,
    /// `person`, `face` or `unknown`.
    pub target_kind: Option<String>,
    /// The target's id.
    pub target_id: Option<i64>,
    /// The person concerned.
    pub person_id: Option<i64>,
    /// `success` or `failure`.
    pub result: String,
    /// Ids and counts, never personal data.
    pub detail: Option<String>,
}

/// `GET /api/audit` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditList {
    /// The page, newest first.
    pub items: Vec<AuditView>,
    /// Entries in the log.
    pub total: u64,
}

/// The version of the export document's layout.
pub const EXPORT_VERSION: u32 = 1;

/// The `format` of an export document.
pub const EXPORT_FORMAT: &str = "ddfr-person-export";

/// One embedding of an exported face sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportedEmbedding {
    /// The embedding model id.
    pub model: String,
    /// The vector's length.
    pub dim: usize,
    /// The unit-norm vector as stored.
    pub vector: Vec<f32>,
}

/// One exported face sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportedFace {
    /// The sample: id, box in the enrolled photo, enrollment time.
    #[serde(flatten)]
    pub face: FaceView,
    /// The stored aligned face chip, a JPEG, base64 (standard alphabet, padded).
    pub crop_jpeg_base64: String,
    /// Every stored embedding of the sample.
    pub embeddings: Vec<ExportedEmbedding>,
}

/// `GET /api/persons/{id}/export` reply: everything stored about one person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonExport {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_VERSION`].
    pub version: u32,
    /// When the export was made.
    pub exported_at: Timestamp,
    /// The person's fields.
    pub person: PersonView,
    /// Every face sample with its chip and embeddings.
    pub faces: Vec<ExportedFace>,
    /// Every audit entry concerning the person, oldest first, this export's own included.
    pub audit: Vec<AuditView>,
    /// The person's consent records, oldest first (absent from older servers).
    #[serde(default)]
    pub consents: Vec<ConsentView>,
}
