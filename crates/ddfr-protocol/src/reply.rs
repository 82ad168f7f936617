//! Small REST replies: verify, health and the error body.

use serde::{Deserialize, Serialize};

use crate::person::FieldError;

/// `POST /api/verify` and `ddfr verify A B`: the largest face of each image compared.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyReply {
    /// Cosine similarity of the two faces: 1.0 identical, greater is closer.
    pub similarity: f32,
    /// Whether `similarity` reaches `threshold`.
    #[serde(rename = "match")]
    pub is_match: bool,
    /// The threshold in force (per face model, or `DDFR_MATCH_THRESHOLD`).
    pub threshold: f32,
    /// Estimated chance that two different people's faces score at least `similarity` with
    /// the active model (see docs/evaluation.md); omitted when the model has no estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_accept_rate: Option<f64>,
}

impl VerifyReply {
    /// The reply for `similarity` against `threshold`: a match when `similarity >= threshold`.
    pub fn new(similarity: f32, threshold: f32) -> Self {
        Self { similarity, is_match: similarity >= threshold, threshold, false_accept_rate: None }
    }
}

/// `GET /api/health`: `{"status": "ok", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthReply {
    /// `"ok"` while the service can answer.
    pub status: crate::face::ReplyStatus,
    /// The ddfr version.
    pub version: String,
    /// The detector model id, when one is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    /// The embedding model id, when one is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
    /// Number of stored persons, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persons: Option<u64>,
    /// Number of stored face samples, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faces: Option<u64>,
}

impl HealthReply {
    /// A healthy reply for `version` with no optional details.
    pub fn ok(version: impl Into<String>) -> Self {
        Self {
            status: crate::face::ReplyStatus::Ok,
            version: version.into(),
            detector: None,
            embedder: None,
            persons: None,
            faces: None,
        }
    }
}

/// The whole `GET /api/health` reply of a ready server: the spec's fields plus the service's
/// state and counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `status`, `version`, model ids and counts.
    #[serde(flatten)]
    pub base: HealthReply,
    /// The model pack id.
    pub pack: String,
    /// The inference backend (`ort` or `tract`).
    pub backend: String,
    /// Inference workers (frames processed at once).
    pub workers: usize,
    /// Persons in the gallery.
    pub n_persons: usize,
    /// Enrolled face samples in the index.
    pub n_faces: usize,
    /// The identification threshold in force.
    pub min_similarity: f32,
    /// Open `/ws` connections.
    pub ws_connections: u64,
    /// Frames dropped so far without a reply: a newer one arrived (latest frame wins) or the
    /// connection was over its frame-rate cap.
    pub dropped_frames: u64,
    /// The part of `dropped_frames` dropped while waiting only for the frame-rate cap.
    pub rate_limited_frames: u64,
    /// `/ws` handshakes refused because every connection slot was taken.
    pub refused_connections: u64,
    /// `/ws` connections closed because the peer stopped answering pings (dead or not reading).
    pub unresponsive_connections: u64,
    /// Whether recurring unknown visitors are kept (`DDFR_UNKNOWN_VISITORS`).
    pub unknown_visitors: bool,
    /// Unknown-visitor sightings not stored because the write queue was full.
    pub visitor_writes_dropped: u64,
    /// Cameras with open `/ws` connections (`/ws?camera=NAME`, default `default`).
    #[serde(default)]
    pub cameras: Vec<crate::events::CameraView>,
    /// Home-automation events: MQTT and webhook state, queue drops and failures.
    #[serde(default)]
    pub events: crate::events::EventsHealth,
}
/// The body of every 4xx/5xx reply: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// A `snake_case` code from the API reference, e.g. `person_not_found`.
    pub code: String,
    /// A sentence for humans.
    pub message: String,
    /// For `validation_error`: every invalid field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldError>>,
}

impl ErrorBody {
    /// An error body with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code: code.into(), message: message.into(), details: None } }
    }

    /// The same body listing invalid fields.
    #[must_use]
    pub fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.error.details = Some(details);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_uses_the_match_key() {
        let reply = VerifyReply::new(0.5, 0.4);
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"similarity":0.5,"match":true,"threshold":0.4}"#
        );
        assert!(!VerifyReply::new(0.39, 0.4).is_match);
    }

    #[test]
    fn error_bodies_have_the_spec_shape() {
        let body = ErrorBody::new("person_not_found", "no person with id 3");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"person_not_found","message":"no person with id 3"}}"#
        );
        let body = ErrorBody::new("validation_error", "invalid fields")
            .with_details(vec![FieldError::new("name", "must not be empty")]);
        assert_eq!(serde_json::to_value(&body).unwrap()["error"]["details"][0]["field"], "name");
    }

    #[test]
    fn health_is_ok() {
        let text = serde_json::to_string(&HealthReply::ok("0.1.0")).unwrap();
        assert_eq!(text, r#"{"status":"ok","version":"0.1.0"}"#);
    }
}
