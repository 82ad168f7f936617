//! Bearer-token auth for REST and the `/ws` handshake, the session cookie for browsers, the two
//! roles. (Host, Origin and CSRF checks, which apply whatever the auth mode, are in
//! [`crate::guard`].)
//!
//! When a token is configured, every `/api/*` route except `/api/health`, `/api/login` and
//! `/api/logout`, and the `/ws` handshake, need `Authorization: Bearer <token>` or the
//! `ddfr_session` cookie that `POST /api/login` sets (HttpOnly, SameSite=Strict, and `Secure`
//! over HTTPS). Tokens are compared in constant time and never logged.
//!
//! Roles ([`Role`]): the admin token (`DDFR_API_TOKEN`) opens everything; the optional
//! recognize-only key (`DDFR_RECOGNIZE_TOKEN`) opens `/ws`, `POST /api/recognize` and
//! `POST /api/verify` ([`require_recognizer`]) and gets 403 `forbidden` on every other
//! protected route. API keys (see [`crate::keys`]) have one of three roles: `admin`
//! (everything), `operator` (the recognizer's routes plus the reads in [`OPERATOR_READS`])
//! and `recognizer`; [`require_by_route`] decides per route. Keys, tokens and cookies travel
//! the same ways and count the same for the throttle; an expired or revoked key is a wrong
//! credential (401). Each credential is a [`Principal`], put in the request's extensions.
//!
//! Brute force is throttled ([`AuthThrottle`]): after [`AuthThrottle::MAX_FAILURES`] wrong
//! tokens (bearer header, cookie or login body) from one client IP within
//! [`AuthThrottle::WINDOW`], that client gets 429 `too_many_attempts` with `Retry-After` on
//! every protected route, the `/ws` handshake and `POST /api/login`, whatever it presents,
//! until the window ends. A successful authentication resets the client's count. Requests
//! without any credential are not attempts and are not counted; with no token configured
//! (loopback only) nothing is throttled. The client IP is the TCP peer, or, when the peer is
//! one of [`ServerConfig::trusted_proxies`], the nearest untrusted `X-Forwarded-For` entry.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, RETRY_AFTER, SET_COOKIE};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ddfr_store::AuditResult;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::audit::{Actor, AuditAction, record};
use crate::body::JsonBody;
use crate::config::{IpNet, ServerConfig};
use crate::error::ApiError;
use crate::keys::{Principal, role_of_key};
use crate::state::{AppState, now_timestamp};

/// The header a reverse proxy appends the client's address to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The header a reverse proxy names the client's scheme in.
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

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

/// The TCP peer's IP (`ConnectInfo`), when the server was started with it.
fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())
}

/// The client's IP: the TCP peer (`ConnectInfo`, absent in in-process tests), or, when the
/// peer is a trusted proxy, the address it forwarded (see [`forwarded_client`]).
pub fn client_ip(
    extensions: &Extensions,
    headers: &HeaderMap,
    config: &ServerConfig,
) -> Option<IpAddr> {
    peer_ip(extensions).map(|peer| forwarded_client(peer, headers, &config.trusted_proxies))
}

/// The client behind `peer`: while the address at hand is a trusted proxy, the next
/// `X-Forwarded-For` entry from the right (each proxy appends the address it saw). An
/// untrusted peer's header is ignored, so a client cannot pick its own address; an entry that
/// is not an address stops the walk at the proxy that sent it.
pub fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    if !is_trusted(client) {
        return client;
    }
    let hops: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        if !is_trusted(client) {
            break;
        }
        match parse_hop(hop) {
            Some(ip) => client = ip,
            None => break,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

/// Whether the client reached us over TLS: ddfr serves TLS itself, or a trusted proxy says
/// `X-Forwarded-Proto: https`. Decides the cookie's `Secure` flag.
fn secure_transport(extensions: &Extensions, headers: &HeaderMap, config: &ServerConfig) -> bool {
    if config.tls.is_some() {
        return true;
    }
    let from_trusted_proxy = peer_ip(extensions)
        .is_some_and(|peer| config.trusted_proxies.iter().any(|net| net.contains(peer)));
    from_trusted_proxy
        && headers
            .get(X_FORWARDED_PROTO)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// 429 `too_many_attempts` with `Retry-After` in whole seconds (rounded up).
pub(crate) fn too_many_attempts(retry_after: Duration) -> Response {
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
pub(crate) fn presented_token(headers: &HeaderMap) -> Option<(Actor, &str)> {
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

/// What an authorised request may do. Each role may do everything the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The admin token (`DDFR_API_TOKEN`), an `admin` key, or no token configured: every
    /// route.
    Admin,
    /// An `operator` key: the recognizer's routes plus the reads in [`OPERATOR_READS`] (the
    /// live view and the people pages, without changing, exporting or auditing anything).
    Operator,
    /// The recognize-only key (`DDFR_RECOGNIZE_TOKEN`) or a `recognizer` key: `/ws`,
    /// `POST /api/recognize` and `POST /api/verify`.
    Recognize,
}

impl Role {
    fn rank(self) -> u8 {
        match self {
            Role::Recognize => 0,
            Role::Operator => 1,
            Role::Admin => 2,
        }
    }

    /// Whether this role may use a route that needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self.rank() >= needed.rank()
    }
}

/// The `GET` routes (axum path templates) an `operator` key may read besides the recognizer's
/// routes: persons, their faces and crops, and the unknown visitors. Every other route of the
/// admin group (writes, export, audit, keys) needs [`Role::Admin`].
pub const OPERATOR_READS: &[&str] = &[
    "/api/persons",
    "/api/persons/{id}",
    "/api/persons/{id}/faces",
    "/api/persons/{id}/faces/{face_id}/crop",
    "/api/unknowns",
    "/api/unknowns/{id}/crop",
];

/// The role a route of the admin group needs: [`Role::Operator`] for the reads in
/// [`OPERATOR_READS`], [`Role::Admin`] for everything else (also an unknown route).
pub fn needed_role(method: &axum::http::Method, route: Option<&str>) -> Role {
    let read = *method == axum::http::Method::GET
        && route.is_some_and(|route| OPERATOR_READS.contains(&route));
    if read { Role::Operator } else { Role::Admin }
}

/// The role and principal an environment token has under `config`, if any. Both configured
/// tokens are compared, each in constant time, whichever matches.
fn role_of(token: &str, config: &ServerConfig) -> Option<(Role, Principal)> {
    let admin = config.api_token.as_ref()?;
    let is_admin = tokens_match(token, admin.expose());
    let is_recognizer =
        config.recognize_token.as_ref().is_some_and(|key| tokens_match(token, key.expose()));
    if is_admin {
        Some((Role::Admin, Principal::AdminToken))
    } else if is_recognizer {
        Some((Role::Recognize, Principal::RecognizeToken))
    } else {
        None
    }
}

/// The role and principal of a presented token: an environment token, else an API key that
/// is neither revoked nor expired. Nothing opens without `DDFR_API_TOKEN` configured (then
/// every route is open anyway).
pub(crate) fn credential_of(token: &str, state: &AppState) -> Option<(Role, Principal)> {
    let config = state.config();
    config.api_token.as_ref()?;
    let env = role_of(token, config);
    let key = state.keys().find(token);
    env.or_else(|| {
        key.filter(|key| key.is_valid_at(now_timestamp()))
            .map(|key| (role_of_key(key.role), Principal::Key(key.id)))
    })
}

/// Who the request is and what it may do: `Some` when authorised.
fn authorized_actor(headers: &HeaderMap, state: &AppState) -> Option<(Actor, Role, Principal)> {
    if state.config().api_token.is_none() {
        return Some((Actor::Loopback, Role::Admin, Principal::Loopback));
    }
    let (actor, token) = presented_token(headers)?;
    credential_of(token, state).map(|(role, principal)| (actor, role, principal))
}

/// Whether the request carries the admin token (header or cookie) under `config`, or no
/// token is configured. (API keys need the server state: see [`require_by_route`].)
pub fn is_authorized(headers: &HeaderMap, config: &ServerConfig) -> bool {
    if config.api_token.is_none() {
        return true;
    }
    presented_token(headers)
        .and_then(|(_, token)| role_of(token, config))
        .is_some_and(|(role, _)| role.allows(Role::Admin))
}

/// 403 `forbidden`: a valid credential whose role may not use the route.
fn forbidden(role: Role, needed: Role) -> Response {
    let may = match role {
        Role::Recognize => {
            "this key may only recognize (/ws, POST /api/recognize, POST /api/verify)"
        }
        Role::Operator => {
            "this key may recognize and read persons, faces and unknown visitors, \
             not change, export or audit anything"
        }
        Role::Admin => "this key may do everything",
    };
    let needs = match needed {
        Role::Admin => "this route needs the admin token or an admin key",
        _ => "this route needs an operator or admin key, or the admin token",
    };
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("{may}; {needs}")).into_response()
}

/// Middleware for the routes the recognize-only key may use (`/ws`, `POST /api/recognize`,
/// `POST /api/verify`): see [`authenticate`].
pub async fn require_recognizer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    authenticate(&state, request, next, Role::Recognize).await
}

/// Middleware for routes only the admin may use; see [`authenticate`].
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    authenticate(&state, request, next, Role::Admin).await
}

/// Middleware for the admin group: the role the matched route needs ([`needed_role`]: the
/// operator's reads, else admin); see [`authenticate`].
pub async fn require_by_route(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str());
    let needed = needed_role(request.method(), route);
    authenticate(&state, request, next, needed).await
}

/// 429 while the client is throttled, 401 unless authorised, 403 when authorised with a role
/// that may not use the route; else the request goes on with its [`Actor`], [`Role`] and
/// [`Principal`] in the extensions. The throttle is the router's `Extension<Arc<AuthThrottle>>` (without it
/// nothing is throttled). A valid key on a route it may not use is not a failed attempt.
async fn authenticate(
    state: &AppState,
    mut request: Request,
    next: Next,
    needed: Role,
) -> Response {
    if state.config().api_token.is_none() {
        request.extensions_mut().insert(Actor::Loopback);
        request.extensions_mut().insert(Role::Admin);
        request.extensions_mut().insert(Principal::Loopback);
        return next.run(request).await;
    }
    let throttle = request.extensions().get::<Arc<AuthThrottle>>().cloned();
    let client = client_ip(request.extensions(), request.headers(), state.config());
    let now = Instant::now();
    if let Some(throttle) = &throttle
        && let Err(retry_after) = throttle.check_at(client, now)
    {
        return too_many_attempts(retry_after);
    }
    match authorized_actor(request.headers(), state) {
        Some((actor, role, principal)) => {
            if let Some(throttle) = &throttle {
                throttle.success(client);
            }
            if !role.allows(needed) {
                return forbidden(role, needed);
            }
            request.extensions_mut().insert(actor);
            request.extensions_mut().insert(role);
            request.extensions_mut().insert(principal);
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

/// The session cookie's attributes: HttpOnly, SameSite=Strict, `Secure` over TLS.
fn cookie_attributes(secure: bool) -> &'static str {
    if secure {
        "HttpOnly; SameSite=Strict; Secure; Path=/"
    } else {
        "HttpOnly; SameSite=Strict; Path=/"
    }
}

/// `POST /api/login`: checks the token (an environment token or an API key) and sets
/// the session cookie (HttpOnly, SameSite=Strict, `Secure` over TLS) that browsers send
/// instead of the header; the cookie has the role of the token it holds. 204 on success, 401
/// otherwise, 429 while the client is throttled. Every attempt is audited (without the token).
#[utoipa::path(post, path = "/api/login", tag = "auth", request_body = LoginRequest,
    responses((status = 204, description = "Cookie set"), (status = 401, body = ddfr_protocol::ErrorBody),
        (status = 429, description = "too_many_attempts; see Retry-After", body = ddfr_protocol::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let config = state.config();
    if config.api_token.is_none() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let throttle = extensions.get::<Arc<AuthThrottle>>();
    let client = client_ip(&extensions, &headers, config);
    let now = Instant::now();
    if let Some(throttle) = throttle
        && let Err(retry_after) = throttle.check_at(client, now)
    {
        audit_login(&state, client, AuditResult::Failure, " throttled").await;
        return Ok(too_many_attempts(retry_after));
    }
    let Some((role, principal)) = credential_of(&request.token, &state) else {
        if let Some(throttle) = throttle {
            throttle.failure_at(client, now);
        }
        audit_login(&state, client, AuditResult::Failure, " wrong_token").await;
        return Err(ApiError::unauthorized());
    };
    if let Some(throttle) = throttle {
        throttle.success(client);
    }
    let why = match (role, principal) {
        (Role::Recognize, Principal::RecognizeToken) => " role=recognize".to_owned(),
        (_, Principal::Key(id)) => format!(" key={id}"),
        _ => String::new(),
    };
    audit_login(&state, client, AuditResult::Success, &why).await;
    let attributes = cookie_attributes(secure_transport(&extensions, &headers, config));
    let cookie = format!("{SESSION_COOKIE}={}; {attributes}", request.token);
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
pub async fn logout(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Response {
    let attributes = cookie_attributes(secure_transport(&extensions, &headers, state.config()));
    let cookie = format!("{SESSION_COOKIE}=; {attributes}; Max-Age=0");
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
        let state = AppState::new(config(Some("s3cret"), &[]));
        let actor = |pairs| authorized_actor(&headers(pairs), &state).map(|(actor, ..)| actor);
        assert_eq!(actor(&[("authorization", "Bearer s3cret")]), Some(Actor::Token));
        assert_eq!(actor(&[("cookie", "ddfr_session=s3cret")]), Some(Actor::Cookie));
        assert_eq!(actor(&[("authorization", "Bearer nope")]), None);
        assert_eq!(
            authorized_actor(&headers(&[]), &AppState::new(config(None, &[]))),
            Some((Actor::Loopback, Role::Admin, Principal::Loopback))
        );
        assert!(presented_token(&headers(&[])).is_none());
        assert!(presented_token(&headers(&[("authorization", "Basic x")])).is_some());
    }

    #[test]
    fn each_token_has_its_role_and_the_recognize_key_opens_only_recognition() {
        let mut cfg = config(Some("admin-token"), &[]);
        cfg.recognize_token = Some(ApiToken::new("camera-key"));
        let state = AppState::new(cfg);
        let role = |pairs| authorized_actor(&headers(pairs), &state).map(|(_, role, _)| role);
        assert_eq!(role(&[("authorization", "Bearer admin-token")]), Some(Role::Admin));
        assert_eq!(role(&[("authorization", "Bearer camera-key")]), Some(Role::Recognize));
        assert_eq!(role(&[("cookie", "ddfr_session=camera-key")]), Some(Role::Recognize));
        assert_eq!(role(&[("authorization", "Bearer camera-ke")]), None);
        assert!(Role::Admin.allows(Role::Admin) && Role::Admin.allows(Role::Recognize));
        assert!(Role::Recognize.allows(Role::Recognize) && !Role::Recognize.allows(Role::Admin));
        assert!(Role::Operator.allows(Role::Recognize) && Role::Operator.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Admin) && !Role::Recognize.allows(Role::Operator));
        assert!(Role::Admin.allows(Role::Operator));
        // Without an admin token every route is open; the recognize key alone means nothing.
        let mut open = config(None, &[]);
        open.recognize_token = Some(ApiToken::new("camera-key"));
        assert_eq!(role_of("camera-key", &open), None);
        let open = AppState::new(open);
        assert_eq!(
            authorized_actor(&headers(&[]), &open),
            Some((Actor::Loopback, Role::Admin, Principal::Loopback))
        );
    }

    #[test]
    fn the_operator_reads_and_nothing_else_need_less_than_admin() {
        use axum::http::Method;
        for route in OPERATOR_READS {
            assert_eq!(needed_role(&Method::GET, Some(route)), Role::Operator, "{route}");
            assert_eq!(needed_role(&Method::DELETE, Some(route)), Role::Admin, "{route}");
        }
        for route in ["/api/persons/{id}/export", "/api/audit", "/api/keys"] {
            assert_eq!(needed_role(&Method::GET, Some(route)), Role::Admin, "{route}");
        }
        assert_eq!(needed_role(&Method::GET, None), Role::Admin, "an unmatched route");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        let xff = |value: &str| headers(&[("x-forwarded-for", value)]);
        // Untrusted peer: the header is the client's own claim and ignored.
        let stranger: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(forwarded_client(stranger, &xff("198.51.100.1"), &trusted), stranger);
        assert_eq!(forwarded_client(proxy, &xff("198.51.100.1"), &[]), proxy);
        // Trusted peer: the rightmost untrusted entry; a client-sent prefix is not believed.
        let client: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(forwarded_client(proxy, &xff("198.51.100.1"), &trusted), client);
        assert_eq!(forwarded_client(proxy, &xff("6.6.6.6, 198.51.100.1"), &trusted), client);
        assert_eq!(forwarded_client(proxy, &xff("198.51.100.1, 10.0.0.9"), &trusted), client);
        assert_eq!(
            forwarded_client(
                proxy,
                &headers(&[
                    ("x-forwarded-for", "6.6.6.6"),
                    ("x-forwarded-for", "198.51.100.1:4711")
                ]),
                &trusted
            ),
            client
        );
        assert_eq!(
            forwarded_client(proxy, &xff("[2001:db8::5]:443"), &trusted),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
        // No header, or garbage: the proxy itself.
        assert_eq!(forwarded_client(proxy, &headers(&[]), &trusted), proxy);
        assert_eq!(forwarded_client(proxy, &xff("unknown"), &trusted), proxy);
    }

    #[test]
    fn with_tls_the_cookie_is_secure() {
        let dir = tempfile::tempdir().unwrap();
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, pair.cert.pem()).unwrap();
        std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
        let mut cfg = config(None, &[]);
        cfg.tls = Some(crate::tls::TlsConfig::from_pem_files(&cert, &key).unwrap());
        assert_eq!(cfg.scheme(), "https");
        assert!(secure_transport(&Extensions::new(), &headers(&[]), &cfg));
        let plain = config(None, &[]);
        assert!(!secure_transport(
            &Extensions::new(),
            &headers(&[("x-forwarded-proto", "https")]),
            &plain
        ));
    }
}
