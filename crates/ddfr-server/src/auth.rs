//! Bearer-token auth for REST and the `/ws` handshake, the session cookie for browsers, and the
//! `Origin` check that keeps other web pages off `/ws`.
//!
//! When a token is configured, every `/api/*` route except `/api/health` and `/api/login`, and
//! the `/ws` handshake, need `Authorization: Bearer <token>` or the `ddfr_session` cookie that
//! `POST /api/login` sets (HttpOnly, SameSite=Strict). Tokens are compared in constant time and
//! never logged.
//!
//! Brute force is throttled ([`AuthThrottle`]): after [`AuthThrottle::MAX_FAILURES`] wrong
//! tokens (bearer header, cookie or login body) from one client IP within
//! [`AuthThrottle::WINDOW`], that client gets 429 `too_many_attempts` with `Retry-After` on
//! every protected route, the `/ws` handshake and `POST /api/login`, whatever it presents,
//! until the window ends. A successful authentication resets the client's count. Requests
//! without any credential are not attempts and are not counted; with no token configured
//! (loopback only) nothing is throttled.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, RETRY_AFTER, SET_COOKIE};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ddfr_store::AuditResult;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::audit::{Actor, AuditAction, record};
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// Clients tracked at once before expired windows are pruned.
const PRUNE_ABOVE: usize = 4096;

/// One client's failures in its current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Counts failed authentications per client IP in fixed windows. Clients whose IP is not known
/// (no `ConnectInfo`, e.g. in-process tests) share one counter.
#[derive(Debug)]
pub struct AuthThrottle {
    max_failures: u32,
    window: Duration,
    clients: Mutex<HashMap<Option<IpAddr>, Window>>,
    refused: AtomicU64,
}

impl Default for AuthThrottle {
    fn default() -> Self {
        Self::new(Self::MAX_FAILURES, Self::WINDOW)
    }
}

impl AuthThrottle {
    /// Failed attempts a client may make per window; the next one is refused.
    pub const MAX_FAILURES: u32 = 10;
    /// The window, counted from a client's first failure.
    pub const WINDOW: Duration = Duration::from_secs(60);

    /// A throttle allowing `max_failures` failures per `window` and client.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            clients: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, Window>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err(retry_after)` when `client` used up its failures and its window has not ended.
    pub fn check_at(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let clients = self.clients();
        let Some(window) = clients.get(&client) else { return Ok(()) };
        let ends = window.started + self.window;
        if window.failures >= self.max_failures && now < ends {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(ends - now);
        }
        Ok(())
    }

    /// Counts one failed attempt of `client`.
    pub fn failure_at(&self, client: Option<IpAddr>, now: Instant) {
        let mut clients = self.clients();
        if clients.len() > PRUNE_ABOVE {
            clients.retain(|_, w| now < w.started + self.window);
        }
        let window = clients.entry(client).or_insert(Window { started: now, failures: 0 });
        if now >= window.started + self.window {
            *window = Window { started: now, failures: 0 };
        }
        window.failures = window.failures.saturating_add(1);
        if window.failures == self.max_failures {
            tracing::warn!(
                client = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
                "too many failed authentications; client throttled"
            );
        }
    }

    /// A successful authentication: forgets `client`'s failures.
    pub fn success(&self, client: Option<IpAddr>) {
        self.clients().remove(&client);
    }

    /// Requests refused with 429 so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// The client's IP, from the connection (`ConnectInfo`), when the server was started with it.
pub fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())
}

/// 429 `too_many_attempts` with `Retry-After` in whole seconds (rounded up).
fn too_many_attempts(retry_after: Duration) -> Response {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let mut response = ApiError::too_many_attempts(seconds).into_response();
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// The name of the browser session cookie.
pub const SESSION_COOKIE: &str = "ddfr_session";

/// Compares two tokens in time independent of where they differ.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The credential a request carries and its kind: the bearer header first, else the session
/// cookie. A non-bearer `Authorization` header counts as a wrong credential.
fn presented_token(headers: &HeaderMap) -> Option<(Actor, &str)> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().unwrap_or("");
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => "",
        };
        return Some((Actor::Token, token));
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| (Actor::Cookie, value))
}

/// Who the request is under `config`: `Some(actor)` when authorised.
fn authorized_actor(headers: &HeaderMap, config: &ServerConfig) -> Option<Actor> {
    match &config.api_token {
        None => Some(Actor::Loopback),
        Some(expected) => presented_token(headers)
            .filter(|(_, token)| tokens_match(token, expected.expose()))
            .map(|(actor, _)| actor),
    }
}

/// Whether the request is authorised under `config`.
pub fn is_authorized(headers: &HeaderMap, config: &ServerConfig) -> bool {
    authorized_actor(headers, config).is_some()
}

/// Middleware: 429 while the client is throttled, 401 unless authorised; else the request
/// goes on with its [`Actor`] in the extensions. The throttle is the router's
/// `Extension<Arc<AuthThrottle>>` (without it nothing is throttled).
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if state.config().api_token.is_none() {
        request.extensions_mut().insert(Actor::Loopback);
        return next.run(request).await;
    }
    let throttle = request.extensions().get::<Arc<AuthThrottle>>().cloned();
    let client = client_ip(request.extensions());
    let now = Instant::now();
    if let Some(throttle) = &throttle
        && let Err(retry_after) = throttle.check_at(client, now)
    {
        return too_many_attempts(retry_after);
    }
    match authorized_actor(request.headers(), state.config()) {
        Some(actor) => {
            if let Some(throttle) = &throttle {
                throttle.success(client);
            }
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        None => {
            // Only a presented, wrong credential is an attempt; a request without one is not.
            if let Some(throttle) = &throttle
                && presented_token(request.headers()).is_some()
            {
                throttle.failure_at(client, now);
            }
            ApiError::unauthorized().into_response()
        }
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

/// Audits one login attempt (when the store is ready) with the client's IP, never the token.
async fn audit_login(state: &AppState, client: Option<IpAddr>, result: AuditResult, why: &str) {
    let Ok(services) = state.services() else { return };
    let client = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let actor = if state.config().api_token.is_some() { Actor::Token } else { Actor::Loopback };
    let detail = format!("client={client}{why}");
    record(services.store.as_ref(), actor, AuditAction::Login, None, result, Some(detail)).await;
}

/// `POST /api/login`: checks the token and sets the session cookie (HttpOnly,
/// SameSite=Strict) that browsers send instead of the header. 204 on success, 401 otherwise,
/// 429 while the client is throttled. Every attempt is audited (without the token).
#[utoipa::path(post, path = "/api/login", tag = "auth", request_body = LoginRequest,
    responses((status = 204, description = "Cookie set"), (status = 401, body = ddfr_protocol::ErrorBody),
        (status = 429, description = "too_many_attempts; see Retry-After", body = ddfr_protocol::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    extensions: Extensions,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(expected) = &state.config().api_token else {
        ddfr_protocol::parse_json_body::<LoginRequest>(&body).map_err(ApiError::validation)?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let throttle = extensions.get::<Arc<AuthThrottle>>();
    let client = client_ip(&extensions);
    let now = Instant::now();
    if let Some(throttle) = throttle
        && let Err(retry_after) = throttle.check_at(client, now)
    {
        audit_login(&state, client, AuditResult::Failure, " throttled").await;
        return Ok(too_many_attempts(retry_after));
    }
    let request: LoginRequest =
        ddfr_protocol::parse_json_body(&body).map_err(ApiError::validation)?;
    if !tokens_match(&request.token, expected.expose()) {
        if let Some(throttle) = throttle {
            throttle.failure_at(client, now);
        }
        audit_login(&state, client, AuditResult::Failure, " wrong_token").await;
        return Err(ApiError::unauthorized());
    }
    if let Some(throttle) = throttle {
        throttle.success(client);
    }
    audit_login(&state, client, AuditResult::Success, "").await;
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
    fn throttle_refuses_after_max_failures_until_the_window_ends() {
        let throttle = AuthThrottle::new(3, Duration::from_secs(60));
        let start = Instant::now();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        for i in 0..3 {
            assert_eq!(throttle.check_at(a, start), Ok(()), "attempt {i}");
            throttle.failure_at(a, start);
        }
        let later = start + Duration::from_secs(20);
        assert_eq!(throttle.check_at(a, later), Err(Duration::from_secs(40)));
        assert_eq!(throttle.check_at(b, later), Ok(()), "other clients are not affected");
        assert_eq!(throttle.check_at(None, later), Ok(()));
        assert_eq!(throttle.refused(), 1);
        let after = start + Duration::from_secs(60);
        assert_eq!(throttle.check_at(a, after), Ok(()), "the window ended");
        throttle.failure_at(a, after);
        assert_eq!(throttle.check_at(a, after), Ok(()), "a new window counts from one");
    }

    #[test]
    fn throttle_success_resets_the_count() {
        let throttle = AuthThrottle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        throttle.failure_at(None, now);
        throttle.success(None);
        throttle.failure_at(None, now);
        assert_eq!(throttle.check_at(None, now), Ok(()));
        throttle.failure_at(None, now);
        assert!(throttle.check_at(None, now).is_err());
    }

    #[test]
    fn actor_is_the_kind_of_credential() {
        let cfg = config(Some("s3cret"), &[]);
        let actor = |pairs| authorized_actor(&headers(pairs), &cfg);
        assert_eq!(actor(&[("authorization", "Bearer s3cret")]), Some(Actor::Token));
        assert_eq!(actor(&[("cookie", "ddfr_session=s3cret")]), Some(Actor::Cookie));
        assert_eq!(actor(&[("authorization", "Bearer nope")]), None);
        assert_eq!(authorized_actor(&headers(&[]), &config(None, &[])), Some(Actor::Loopback));
        assert!(presented_token(&headers(&[])).is_none());
        assert!(presented_token(&headers(&[("authorization", "Basic x")])).is_some());
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
