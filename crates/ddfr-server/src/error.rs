//! `ApiError`: the one place where failures become HTTP status codes and the spec's
//! `{"error": {"code", "message"}}` bodies. 5xx details are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ddfr_engine::EngineError;
use ddfr_protocol::{ErrorBody, FieldError};
use ddfr_store::StoreError;

/// What a 5xx reply says; the cause goes to the log.
const INTERNAL_MESSAGE: &str = "internal error; see the server log";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A `snake_case` code from the API reference.
    pub code: &'static str,
    /// A sentence for humans (replaced by a generic one on 5xx).
    pub message: String,
    /// Invalid fields, for `validation_error`.
    pub details: Option<Vec<FieldError>>,
    /// The underlying cause, logged for 5xx.
    pub source: Option<BoxError>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: None, source: None }
    }

    /// 422 `validation_error` listing every invalid field.
    pub fn validation(details: Vec<FieldError>) -> Self {
        let message = details
            .iter()
            .map(|d| format!("{}: {}", d.field, d.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            details: Some(details),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", message)
        }
    }

    /// 500 with a cause that is logged.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", INTERNAL_MESSAGE)
        }
    }

    /// 503 while models and index are loading.
    pub fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the service is starting: models and index are not loaded yet",
        )
    }

    /// 401 for a missing or wrong token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer <token>)",
        )
    }

    /// 429 `too_many_attempts`: too many failed authentications from this client; the
    /// caller adds `Retry-After`.
    pub fn too_many_attempts(retry_after_seconds: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many failed authentication attempts from this client; retry in \
                 {retry_after_seconds} s"
            ),
        )
    }

    /// 422 `invalid_image`.
    pub fn invalid_image(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_image", message)
    }

    /// An error for a photo the engine refused, by what went wrong.
    pub fn from_photo(error: EngineError) -> Self {
        match error {
            EngineError::UnsupportedFormat => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_format",
                "only JPEG, PNG and WebP images are accepted",
            ),
            EngineError::TooLarge { bytes, limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the image is {bytes} bytes, over the limit of {limit}"),
            ),
            error @ (EngineError::DimensionsTooLarge { .. }
            | EngineError::TooManyScans { .. }
            | EngineError::Decode { .. }) => Self::invalid_image(error.to_string()),
            other => Self::internal(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::PersonNotFound(id) => Self::new(
                StatusCode::NOT_FOUND,
                "person_not_found",
                format!("no person with id {id}"),
            ),
            StoreError::FaceNotFound(id) => Self::new(
                StatusCode::NOT_FOUND,
                "face_not_found",
                format!("no face sample with id {id} for this person"),
            ),
            StoreError::VisitorNotFound(id) => Self::new(
                StatusCode::NOT_FOUND,
                "unknown_not_found",
                format!("no unknown visitor with id {id}"),
            ),
            StoreError::StorageFull { .. } => Self {
                source: Some(Box::new(error)),
                ..Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    "the database storage is full; nothing was written",
                )
            },
            StoreError::StorageIo { .. } => Self {
                source: Some(Box::new(error)),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the database storage failed (I/O error); the change may or may not have been saved: reload before retrying",
                )
            },
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Logged: every 500, and every error with a cause (a full or failing disk, 507/503,
        // is worth an operator's attention); 503 `not_ready` and 4xx are not.
        if self.status == StatusCode::INTERNAL_SERVER_ERROR || self.source.is_some() {
            match &self.source {
                Some(source) => {
                    tracing::error!(code = self.code, error = %error_chain(source.as_ref()), "request failed")
                }
                None => tracing::error!(code = self.code, "request failed"),
            }
        }
        let mut body = ErrorBody::new(self.code, self.message);
        if let Some(details) = self.details {
            body = body.with_details(details);
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.code == "storage_unavailable" {
            response.extensions_mut().insert(crate::storage_fault::StorageFault);
        }
        response
    }
}

/// An error and its causes on one line, for logs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}
