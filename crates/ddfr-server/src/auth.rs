//! Bearer-token auth for REST and the `/ws` handshake, the session cookie for browsers, and the
//! `Origin` check that keeps other web pages off `/ws`.
//!
//! When a token is configured, every `/api/*` route except `/api/health` and `/api/login`, and
//! the `/ws` handshake, need `Authorization: Bearer <token>` or the `ddfr_session` cookie that
//! `POST /api/login` sets (HttpOnly, SameSite=Strict). Tokens are compared in constant time and
//! never logged.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// The name of the browser session cookie.
pub const SESSION_COOKIE: &str = "ddfr_session";

/// Compares two tokens in time independent of where they differ.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The token a request carries: the bearer header first, else the session cookie.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then_some(token.trim());
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// Whether the request is authorised under `config`.
pub fn is_authorized(headers: &HeaderMap, config: &ServerConfig) -> bool {
    match &config.api_token {
        None => true,
        Some(expected) => {
            presented_token(headers).is_some_and(|token| tokens_match(token, expected.expose()))
        }
    }
}

/// Middleware: 401 unless authorised.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if is_authorized(request.headers(), state.config()) {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

/// Whether a `/ws` handshake's `Origin` is allowed: absent (not a browser), the server's own
/// origin (same `Host`), or one of the configured extra origins, compared exactly.
pub fn origin_allowed(headers: &HeaderMap, config: &ServerConfig) -> bool {
    let Some(origin) = headers.get(ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    if config.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) {
        return true;
    }
    headers.get(HOST).and_then(|h| h.to_str().ok()).is_some_and(|host| {
        origin.eq_ignore_ascii_case(&format!("http://{host}"))
            || origin.eq_ignore_ascii_case(&format!("https://{host}"))
    })
}

/// `POST /api/login` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The API token.
    pub token: String,
}

/// `POST /api/login`: checks the token and sets the session cookie (HttpOnly,
/// SameSite=Strict) that browsers send instead of the header. 204 on success, 401 otherwise.
#[utoipa::path(post, path = "/api/login", tag = "auth", request_body = LoginRequest,
    responses((status = 204, description = "Cookie set"), (status = 401, body = ddfr_protocol::ErrorBody)))]
pub async fn login(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let request: LoginRequest =
        ddfr_protocol::parse_json_body(&body).map_err(ApiError::validation)?;
    let Some(expected) = &state.config().api_token else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    if !tokens_match(&request.token, expected.expose()) {
        return Err(ApiError::unauthorized());
    }
    let cookie = format!("{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", request.token);
    let value = HeaderValue::from_str(&cookie).map_err(|_| {
        ApiError::validation(vec![ddfr_protocol::FieldError::new(
            "token",
            "must be printable ASCII",
        )])
    })?;
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, value)]).into_response())
}

/// `POST /api/logout`: clears the session cookie.
#[utoipa::path(post, path = "/api/logout", tag = "auth", responses((status = 204, description = "Cookie cleared")))]
pub async fn logout() -> Response {
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    match HeaderValue::from_str(&cookie) {
        Ok(value) => (StatusCode::NO_CONTENT, [(SET_COOKIE, value)]).into_response(),
        Err(_) => StatusCode::NO_CONTENT.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiToken;

    fn config(token: Option<&str>, extra: &[&str]) -> ServerConfig {
        let mut config = ServerConfig::new(([127, 0, 0, 1], 8000).into());
        config.api_token = token.map(ApiToken::new);
        config.allowed_origins = extra.iter().map(|s| (*s).to_owned()).collect();
        config
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn bearer_and_cookie_are_accepted_wrong_tokens_are_not() {
        let cfg = config(Some("s3cret"), &[]);
        assert!(is_authorized(&headers(&[("authorization", "Bearer s3cret")]), &cfg));
        assert!(is_authorized(&headers(&[("cookie", "a=b; ddfr_session=s3cret")]), &cfg));
        assert!(!is_authorized(&headers(&[("authorization", "Bearer s3cre")]), &cfg));
        assert!(!is_authorized(&headers(&[("authorization", "Basic s3cret")]), &cfg));
        assert!(!is_authorized(&headers(&[]), &cfg));
        assert!(is_authorized(&headers(&[]), &config(None, &[])));
    }

    #[test]
    fn origins_are_matched_exactly() {
        let cfg = config(None, &["http://localhost:8080"]);
        let host = ("host", "127.0.0.1:8000");
        assert!(origin_allowed(&headers(&[host]), &cfg));
        assert!(origin_allowed(&headers(&[host, ("origin", "http://127.0.0.1:8000")]), &cfg));
        assert!(origin_allowed(&headers(&[host, ("origin", "http://localhost:8080")]), &cfg));
        assert!(!origin_allowed(&headers(&[host, ("origin", "http://evil.test")]), &cfg));
        assert!(!origin_allowed(
            &headers(&[host, ("origin", "http://127.0.0.1:8000.evil.test")]),
            &cfg
        ));
        assert!(!origin_allowed(&headers(&[host, ("origin", "null")]), &cfg));
    }
}
