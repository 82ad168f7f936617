//! Who may talk to the server at all, whatever the auth mode: the `Host` allow-list (DNS
//! rebinding), the `Origin` check and Fetch Metadata (cross-site requests, CSRF) and CORS for
//! configured origins. One middleware, [`guard`], runs before routing on every request — REST,
//! the `/ws` handshake and the web app's files — once per request, never per frame.
//!
//! The threat (docs/privacy.md "Threat model"): the default server listens on loopback without
//! a token, on the machine where the household also browses the web. Any page the browser
//! opens can *send* a "simple" request (a form POST, `text/plain`, multipart) to
//! `http://127.0.0.1:8000` without a CORS preflight, and with DNS rebinding (a hostile name
//! that resolves to 127.0.0.1 after the page loaded) it can also *read* the answers, because
//! the browser then thinks the server is the page's own origin. So:
//!
//! 1. **Host allow-list.** A request's `Host` (or, from a trusted proxy, `X-Forwarded-Host`)
//!    must be one of the server's names: `localhost`, a loopback address, the address the
//!    server listens on (any IP literal when it listens on all interfaces: an IP literal cannot
//!    be rebound, only names can), or a configured name ([`ServerConfig::allowed_hosts`],
//!    exact or `*.suffix`). Anything else gets 421 `host_not_allowed`: a rebinding page gets
//!    nothing. (A request with no `Host` at all — HTTP/1.0 — is not from a browser and passes.)
//! 2. **Origin.** A present `Origin` must be the server's own origin (built from the checked
//!    host) or a configured one ([`ServerConfig::allowed_origins`],
//!    [`ServerConfig::cors_origins`]); otherwise 403 `origin_not_allowed`. Browsers send
//!    `Origin` on every cross-origin request and on every non-GET request, so no page of
//!    another origin can change anything.
//! 3. **Fetch Metadata.** Without `Origin`, a request that says `Sec-Fetch-Site: cross-site`
//!    or `same-site` (another port of the same host is same-site) is refused with 403
//!    `cross_site_request`, except a top-level navigation (`Sec-Fetch-Mode: navigate`, GET),
//!    so a link to the app still opens it while `<img src=…/crop>` from another site fails.
//! 4. **CSRF for cookie sessions.** A state-changing request that authenticates with the
//!    session cookie only (no `Authorization` header) must prove it comes from the app:
//!    `Origin` present (and, by 2, allowed) or `Sec-Fetch-Site: same-origin`; else 403
//!    `csrf_failed`. Bearer tokens need no proof: browsers never attach them on their own.
//! 5. **CORS** only for [`ServerConfig::cors_origins`]: their preflights are answered and
//!    their responses carry `Access-Control-Allow-Origin`; nobody else gets CORS headers.
//!
//! Scripts (curl, the seed's Python client) send neither `Origin` nor `Sec-Fetch-*` and use a
//! loopback or configured name: they pass untouched.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, COOKIE, HOST, ORIGIN,
    VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::SESSION_COOKIE;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// The header a reverse proxy names the host the client asked for in.
const X_FORWARDED_HOST: &str = "x-forwarded-host";
/// The header a reverse proxy names the client's scheme in.
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const SEC_FETCH_SITE: &str = "sec-fetch-site";
const SEC_FETCH_MODE: &str = "sec-fetch-mode";

/// Seconds a browser may cache a CORS preflight answer.
const PREFLIGHT_MAX_AGE: &str = "600";

/// A configured host name: exact (`ddfr.home.example`) or every subdomain of a suffix
/// (`*.home.example`, which does not match `home.example` itself). Compared without port,
/// case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// This name only.
    Exact(String),
    /// Any name ending in `.` + this suffix.
    Subdomains(String),
}

/// A host pattern that is not a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a host name or *.suffix pattern (letters, digits, '-' and '.', no scheme or port)"
)]
pub struct HostPatternError(String);

impl std::str::FromStr for HostPattern {
    type Err = HostPatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
        let (wildcard, rest) = match name.strip_prefix("*.") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, name),
        };
        let valid = !rest.is_empty()
            && rest.len() <= 253
            && rest.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(HostPatternError(text.to_owned()));
        }
        Ok(if wildcard { Self::Subdomains(rest) } else { Self::Exact(rest) })
    }
}

impl HostPattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(exact) => name == exact,
            Self::Subdomains(suffix) => {
                name.len() > suffix.len() + 1
                    && name.ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            }
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Subdomains(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// The host part of a `Host` value (`name`, `name:port`, `1.2.3.4:80`, `[::1]:80`), lowercased
/// and without a trailing dot; `None` when it is not a plausible host.
fn host_name(authority: &str) -> Option<String> {
    let authority = authority.trim();
    let name = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside.parse::<std::net::Ipv6Addr>().ok().map(|ip| ip.to_string());
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return None,
            None => authority,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let plausible = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    plausible.then_some(name)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `authority` (a `Host` value) names this server under `config` (see the module doc).
pub fn host_allowed(authority: &str, config: &ServerConfig) -> bool {
    let Some(name) = host_name(authority) else { return false };
    if name == "localhost" {
        return true;
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        let ip = ip.to_canonical();
        let listen = config.addr.ip().to_canonical();
        return ip.is_loopback() || ip == listen || listen.is_unspecified();
    }
    config.allowed_hosts.iter().any(|pattern| pattern.matches(&name))
}

/// Whether the TCP peer is one of the trusted reverse proxies.
fn from_trusted_proxy(request: &Request, config: &ServerConfig) -> bool {
    request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|info| config.trusted_proxies.iter().any(|net| net.contains(info.0.ip())))
}

/// The first value of a comma-separated header, trimmed.
fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next()).map(str::trim)
}

/// The host the client asked for: `X-Forwarded-Host` from a trusted proxy, else `Host`, else
/// the request target's authority (HTTP/2).
fn requested_host(request: &Request, config: &ServerConfig) -> Option<String> {
    let headers = request.headers();
    if from_trusted_proxy(request, config)
        && let Some(forwarded) = first_value(headers, X_FORWARDED_HOST)
    {
        return Some(forwarded.to_owned());
    }
    headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
}

/// The scheme the client used: `https` when ddfr serves TLS, or a trusted proxy says so.
fn requested_scheme(request: &Request, config: &ServerConfig) -> &'static str {
    let forwarded_https = from_trusted_proxy(request, config)
        && first_value(request.headers(), X_FORWARDED_PROTO)
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    if config.tls.is_some() || forwarded_https { "https" } else { "http" }
}

/// Whether `origin` may send requests: a configured origin, or the server's own origin
/// `scheme://host` for the (already checked) `host`. On plain HTTP the `https://` spelling of
/// the own origin is accepted too (a TLS-terminating proxy that passes `Host` on unchanged).
pub fn origin_allowed(origin: &str, host: &str, scheme: &str, config: &ServerConfig) -> bool {
    let configured = config
        .allowed_origins
        .iter()
        .chain(&config.cors_origins)
        .any(|allowed| allowed.eq_ignore_ascii_case(origin));
    if configured {
        return true;
    }
    !host.is_empty()
        && (origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
            || (scheme == "http"
                && config.tls.is_none()
                && origin.eq_ignore_ascii_case(&format!("https://{host}"))))
}

/// Whether the method may change state (everything but GET, HEAD and OPTIONS).
fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request authenticates with the session cookie only (no `Authorization`).
fn cookie_only(headers: &HeaderMap) -> bool {
    headers.get(AUTHORIZATION).is_none()
        && headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, _)| name == SESSION_COOKIE)
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> Response {
    ApiError::new(status, code, message).into_response()
}

/// The middleware: the checks of the module doc in order, then CORS headers for configured
/// CORS origins. Refusals are logged at `warn` with what was refused (never a credential).
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = state.config();
    // A request without any Host (HTTP/1.0, in-process calls) cannot come from a browser, which
    // always names the host: it is no rebinding attempt. Its own origin is then unknown, so a
    // present Origin must be a configured one.
    let host = requested_host(&request, config).unwrap_or_default();
    if !host.is_empty() && !host_allowed(&host, config) {
        tracing::warn!(host = %host.escape_debug(), "refused a request for a host name this server does not have (DNS rebinding?)");
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            format!(
                "this server does not answer to the host name {:?}; add it to DDFR_ALLOWED_HOSTS \
                 if it is really this server's name",
                host_name(&host).unwrap_or_default()
            ),
        );
    }
    let headers = request.headers();
    let method = request.method().clone();
    let origin = match headers.get(ORIGIN).map(HeaderValue::to_str) {
        None => None,
        Some(Ok(origin)) => Some(origin.to_owned()),
        Some(Err(_)) => Some(String::new()),
    };
    if let Some(origin) = &origin {
        let scheme = requested_scheme(&request, config);
        if !origin_allowed(origin, &host, scheme, config) {
            tracing::warn!(origin = %origin.escape_debug(), method = %method, path = request.uri().path(), "refused a request from a disallowed origin");
            return refuse(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                format!(
                    "requests from the web origin {origin:?} are not allowed; \
                     configure DDFR_ALLOWED_ORIGINS (or DDFR_CORS_ORIGINS) to allow it"
                ),
            );
        }
    } else {
        let site = first_value(headers, SEC_FETCH_SITE).unwrap_or("");
        let navigation =
            method == Method::GET && first_value(headers, SEC_FETCH_MODE) == Some("navigate");
        if (site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site"))
            && !navigation
        {
            tracing::warn!(site, method = %method, path = request.uri().path(), "refused a cross-site request");
            return refuse(
                StatusCode::FORBIDDEN,
                "cross_site_request",
                "requests made by another web site are not allowed".to_owned(),
            );
        }
        if is_unsafe(&method) && cookie_only(headers) && !site.eq_ignore_ascii_case("same-origin") {
            tracing::warn!(method = %method, path = request.uri().path(), "refused a cookie-authenticated write without an origin proof");
            return refuse(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "a browser session may only change data from the ddfr app itself \
                 (the request carries no Origin); scripts use Authorization: Bearer"
                    .to_owned(),
            );
        }
    }
    let cors_origin = origin.filter(|origin| {
        config.cors_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin))
    });
    let Some(cors_origin) = cors_origin.and_then(|o| HeaderValue::from_str(&o).ok()) else {
        return next.run(request).await;
    };
    if method == Method::OPTIONS && request.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
        return (
            StatusCode::NO_CONTENT,
            [
                (ACCESS_CONTROL_ALLOW_ORIGIN, cors_origin),
                (
                    ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST, PATCH, DELETE"),
                ),
                (
                    ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization, content-type"),
                ),
                (ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(PREFLIGHT_MAX_AGE)),
                (VARY, HeaderValue::from_static("Origin")),
            ],
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    response.headers_mut().insert(ACCESS_CONTROL_ALLOW_ORIGIN, cors_origin);
    response.headers_mut().append(VARY, HeaderValue::from_static("Origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(addr: [u8; 4], hosts: &[&str]) -> ServerConfig {
        let mut config = ServerConfig::new((addr, 8000).into());
        config.allowed_hosts = hosts.iter().map(|h| h.parse().unwrap()).collect();
        config
    }

    #[test]
    fn host_names_are_parsed_without_port_and_case() {
        assert_eq!(host_name("LocalHost:8000").as_deref(), Some("localhost"));
        assert_eq!(host_name("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_name("[::1]:8000").as_deref(), Some("::1"));
        assert_eq!(host_name("ddfr.home.example.:443").as_deref(), Some("ddfr.home.example"));
        for bad in ["", ":80", "a b", "evil.example:80:80", "[::1", "[zz]:80", "x:port", "a/b"] {
            assert_eq!(host_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn loopback_names_and_the_listen_address_are_allowed_nothing_else() {
        let loopback = config([127, 0, 0, 1], &[]);
        for ok in ["localhost:8000", "127.0.0.1:8000", "127.0.0.1", "[::1]:8000", "127.1.2.3:9"] {
            assert!(host_allowed(ok, &loopback), "{ok}");
        }
        for bad in [
            "attacker.example:8000",
            "localhost.attacker.example",
            "127.0.0.1.nip.io:8000",
            "192.168.1.5:8000",
            "",
        ] {
            assert!(!host_allowed(bad, &loopback), "{bad}");
        }
        let lan = config([192, 168, 1, 5], &[]);
        assert!(host_allowed("192.168.1.5:8000", &lan));
        assert!(!host_allowed("192.168.1.6:8000", &lan), "another address");
        assert!(!host_allowed("ddfr.lan:8000", &lan), "a name needs configuring");
        let any = config([0, 0, 0, 0], &[]);
        assert!(host_allowed("10.0.0.7:8000", &any), "every interface: any IP literal");
        assert!(host_allowed("[fd00::7]:8000", &any));
        assert!(!host_allowed("rebind.attacker.example:8000", &any));
    }

    #[test]
    fn configured_names_match_exactly_or_as_subdomains() {
        let cfg = config([0, 0, 0, 0], &["ddfr.home.example", "*.lan"]);
        assert!(host_allowed("DDFR.home.example:443", &cfg));
        assert!(host_allowed("door.lan", &cfg));
        assert!(host_allowed("a.b.lan:8000", &cfg));
        assert!(!host_allowed("lan", &cfg), "the suffix itself is not a subdomain");
        assert!(!host_allowed("evillan", &cfg));
        assert!(!host_allowed("home.example", &cfg));
        assert!(!host_allowed("ddfr.home.example.evil.test", &cfg));
        for bad in ["", "*.", "http://x", "x:80", "a..b", "*", "a_b"] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?}");
        }
        assert_eq!("*.Lan.".parse::<HostPattern>().unwrap().to_string(), "*.lan");
    }

    #[test]
    fn origins_are_the_own_origin_or_configured_exactly() {
        let mut cfg = config([127, 0, 0, 1], &[]);
        cfg.allowed_origins = vec!["http://localhost:8080".to_owned()];
        cfg.cors_origins = vec!["https://dash.example".to_owned()];
        let own = |origin| origin_allowed(origin, "127.0.0.1:8000", "http", &cfg);
        assert!(own("http://127.0.0.1:8000"));
        assert!(own("https://127.0.0.1:8000"), "behind a TLS proxy passing Host on");
        assert!(own("http://localhost:8080") && own("https://dash.example"));
        for bad in
            ["http://evil.example", "null", "", "http://127.0.0.1:8001", "http://127.0.0.1:8000.x"]
        {
            assert!(!own(bad), "{bad:?}");
        }
        assert!(!origin_allowed("http://h", "h", "https", &cfg), "https only when so reached");
    }

    #[test]
    fn cookie_only_means_a_session_cookie_without_authorization() {
        let mut headers = HeaderMap::new();
        assert!(!cookie_only(&headers));
        headers.insert(COOKIE, HeaderValue::from_static("a=b; ddfr_session=x"));
        assert!(cookie_only(&headers));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(!cookie_only(&headers));
    }
}
