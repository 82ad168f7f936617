//! [`JsonBody`]: the extractor of every JSON request body. The body must be declared
//! `Content-Type: application/json` (415 `unsupported_media_type` otherwise), so that no
//! "simple" cross-site request (`text/plain`, a form) can ever be read as JSON, and must be a
//! JSON object of the expected shape (422 `validation_error`, via
//! [`ddfr_protocol::parse_json_body`]). Multipart routes refuse anything but
//! `multipart/form-data` the same way (see `rest::multipart_rejection`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON object body declared as `application/json`, deserialised into `T`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

/// Whether a `Content-Type` value is `application/json`, with or without parameters
/// (`; charset=utf-8`), in any letter case.
pub fn is_json_content_type(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// 415 `unsupported_media_type` naming what the route takes.
pub fn unsupported_media_type(expected: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("expected a {expected} body (declared in the Content-Type header)"),
    )
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared = request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if !declared.is_some_and(is_json_content_type) {
            return Err(unsupported_media_type("application/json"));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is too large",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_request", rejection.body_text())
            }
        })?;
        ddfr_protocol::parse_json_body(&bytes).map(JsonBody).map_err(ApiError::validation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_application_json_is_json() {
        for ok in ["application/json", "Application/JSON; charset=utf-8", " application/json ;x=y"]
        {
            assert!(is_json_content_type(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "application/jsonp",
            "application/json-patch+json",
            "",
            "text/json",
        ] {
            assert!(!is_json_content_type(bad), "{bad}");
        }
    }
}
