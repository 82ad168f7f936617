//! `GET /api/session`: what the caller's credential is, so the web app knows without trying a
//! protected route whether to show the login page, a "Log out" button (a returning browser with
//! a valid session cookie), and which pages its role may use.
//!
//! Open like `/api/login`, and throttled like it: a wrong credential presented here counts as
//! a failed attempt, so the route cannot be used to test guesses past the brute-force throttle.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::audit::Actor;
use crate::auth::{
    AuthThrottle, Role, client_ip, credential_of, presented_token, too_many_attempts,
};
use crate::state::AppState;

/// The `GET /api/session` reply.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// Whether this server needs a credential (`DDFR_API_TOKEN` is set).
    pub auth_required: bool,
    /// Whether the request carries a valid credential (always true when none is required).
    pub authenticated: bool,
    /// What the credential may do: `admin`, `operator` or `recognizer`; `null` without one.
    #[schema(value_type = Option<String>, example = "admin")]
    pub role: Option<&'static str>,
    /// How it came: `cookie` (a browser session from `POST /api/login`, which `POST
    /// /api/logout` ends), `bearer` (the `Authorization` header) or `none`.
    #[schema(example = "cookie")]
    pub via: &'static str,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Operator => "operator",
        Role::Recognize => "recognizer",
    }
}

/// `GET /api/session`.
#[utoipa::path(get, path = "/api/session", tag = "auth",
    responses((status = 200, body = SessionView),
        (status = 429, description = "too_many_attempts; see Retry-After", body = ddfr_protocol::ErrorBody)))]
pub async fn session(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Response {
    if state.config().api_token.is_none() {
        let view = SessionView {
            auth_required: false,
            authenticated: true,
            role: Some("admin"),
            via: "none",
        };
        return Json(view).into_response();
    }
    let Some((actor, token)) = presented_token(&headers) else {
        let view =
            SessionView { auth_required: true, authenticated: false, role: None, via: "none" };
        return Json(view).into_response();
    };
    let via = if actor == Actor::Cookie { "cookie" } else { "bearer" };
    let throttle = extensions.get::<Arc<AuthThrottle>>();
    let client = client_ip(&extensions, &headers, state.config());
    let now = Instant::now();
    if let Some(throttle) = throttle
        && let Err(retry_after) = throttle.check_at(client, now)
    {
        return too_many_attempts(retry_after);
    }
    let role = credential_of(token, &state).map(|(role, _)| role);
    if let Some(throttle) = throttle {
        match role {
            Some(_) => throttle.success(client),
            None => throttle.failure_at(client, now),
        }
    }
    let view = SessionView {
        auth_required: true,
        authenticated: role.is_some(),
        role: role.map(role_name),
        via: if role.is_some() { via } else { "none" },
    };
    Json(view).into_response()
}
