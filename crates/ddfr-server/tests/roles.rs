//! The roles, in-process: every protected route × no token / recognize-only key / admin token
//! / `recognizer`, `operator` and `admin` API keys, by header and by cookie; the login with
//! either environment key; the throttle with the second key; and `DDFR_TRUSTED_PROXIES`
//! (which client the throttle counts behind a proxy).
//!
//! The state is never made ready, so a request that passes auth reaches its handler and gets
//! 503 `not_ready` (or a 4xx from its extractors): 401, 403 and "authorised" are told apart
//! without models.

// A failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use ddfr_server::config::IpNet;
use ddfr_server::{ApiToken, AppState, AuthThrottle, ServerConfig, router_with_throttle};
use ddfr_store::{KeyRole, PersonStore};
use serde_json::Value;
use tower::ServiceExt;

const ADMIN: &str = "admin-token-4f1c";
const CAMERA: &str = "camera-key-9b27";

/// Routes only the admin role opens (admin token, `admin` keys). Key 1 is a spare key the
/// matrix may revoke.
const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/persons"),
    ("PATCH", "/api/persons/1"),
    ("DELETE", "/api/persons/1"),
    ("GET", "/api/persons/1/export"),
    ("POST", "/api/persons/1/consent"),
    ("GET", "/api/persons/1/consent"),
    ("POST", "/api/persons/1/consent/withdraw"),
    ("POST", "/api/persons/1/faces"),
    ("POST", "/api/persons/1/faces/batch"),
    ("DELETE", "/api/persons/1/faces/1"),
    ("GET", "/api/audit"),
    ("DELETE", "/api/unknowns/1"),
    ("POST", "/api/unknowns/1/promote"),
    ("POST", "/api/keys"),
    ("GET", "/api/keys"),
    ("DELETE", "/api/keys/1"),
    ("GET", "/api/events/status"),
];

/// Reads the `operator` role opens too.
const READ_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/persons"),
    ("GET", "/api/persons/1"),
    ("GET", "/api/persons/1/faces"),
    ("GET", "/api/persons/1/faces/1/crop"),
    ("GET", "/api/unknowns"),
    ("GET", "/api/unknowns/1/crop"),
];

/// Routes the recognize-only key opens too.
const RECOGNITION_ROUTES: &[(&str, &str)] =
    &[("POST", "/api/recognize"), ("POST", "/api/verify"), ("GET", "/ws")];

/// Routes without auth.
const OPEN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/health"),
    ("GET", "/api/privacy/policy"),
    ("POST", "/api/login"),
    ("POST", "/api/logout"),
    ("GET", "/api/session"),
    ("GET", "/openapi.json"),
];

fn config() -> ServerConfig {
    let mut config = ServerConfig::new(([127, 0, 0, 1], 0).into());
    config.api_token = Some(ApiToken::new(ADMIN));
    config.recognize_token = Some(ApiToken::new(CAMERA));
    config
}

fn app_with(config: ServerConfig) -> axum::Router {
    router_with_throttle(AppState::new(config), Arc::new(AuthThrottle::default()))
}

fn app() -> axum::Router {
    app_with(config())
}

#[derive(Debug, Clone, Copy)]
enum Credential<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
}

fn request(method: &str, uri: &str, credential: Credential<'_>) -> Request<Body> {
    let mut builder = Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap());
    builder = builder.uri(uri);
    match credential {
        Credential::None => {}
        Credential::Bearer(token) => {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        Credential::Cookie(token) => {
            // As the web app sends it: same-origin, so a write has its CSRF proof.
            builder = builder
                .header(header::COOKIE, format!("ddfr_session={token}"))
                .header("sec-fetch-site", "same-origin");
        }
    }
    builder.body(Body::empty()).unwrap()
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Passed auth: neither 401, 403 nor 429.
fn authorised(status: StatusCode) -> bool {
    ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::TOO_MANY_REQUESTS]
        .contains(&status)
}

/// A state with a SQLite store attached to its key registry (models are not needed for
/// keys), a spare key 1, and one key of each role: their secrets by role.
async fn state_with_keys(dir: &std::path::Path) -> (AppState, [(KeyRole, String); 3]) {
    let state = AppState::new(config());
    let store: Arc<dyn PersonStore> =
        Arc::new(ddfr_store::SqliteStore::open_in_dir(dir).await.unwrap());
    state.keys().attach(store).await.unwrap();
    let app = router_with_throttle(state.clone(), Arc::new(AuthThrottle::default()));
    let mut secrets = Vec::new();
    for (name, role) in
        [("spare", "recognizer"), ("door", "recognizer"), ("desk", "operator"), ("ops", "admin")]
    {
        let create = Request::builder()
            .method("POST")
            .uri("/api/keys")
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::json!({ "name": name, "role": role }).to_string()))
            .unwrap();
        let (status, body) = send(&app, create).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        secrets.push((KeyRole::parse(role).unwrap(), body["secret"].as_str().unwrap().to_owned()));
    }
    assert_eq!(secrets[0].1.len(), 69, "ddfr_ and 64 hex digits");
    let [_, door, desk, ops] = <[_; 4]>::try_from(secrets).unwrap();
    (state, [door, desk, ops])
}

#[tokio::test]
async fn every_route_answers_each_credential_by_its_role() {
    let dir = tempfile::tempdir().unwrap();
    let (state, [door, desk, ops]) = state_with_keys(dir.path()).await;
    let app = router_with_throttle(state, Arc::new(AuthThrottle::default()));
    // Each credential and the highest route group it may use (None: no credential).
    let credentials: Vec<(Credential<'_>, Option<KeyRole>)> = vec![
        (Credential::None, None),
        (Credential::Bearer(CAMERA), Some(KeyRole::Recognizer)),
        (Credential::Cookie(CAMERA), Some(KeyRole::Recognizer)),
        (Credential::Bearer(ADMIN), Some(KeyRole::Admin)),
        (Credential::Cookie(ADMIN), Some(KeyRole::Admin)),
        (Credential::Bearer(&door.1), Some(door.0)),
        (Credential::Cookie(&door.1), Some(door.0)),
        (Credential::Bearer(&desk.1), Some(desk.0)),
        (Credential::Cookie(&desk.1), Some(desk.0)),
        (Credential::Bearer(&ops.1), Some(ops.0)),
        (Credential::Cookie(&ops.1), Some(ops.0)),
    ];
    let groups = [
        (ADMIN_ROUTES, KeyRole::Admin),
        (READ_ROUTES, KeyRole::Operator),
        (RECOGNITION_ROUTES, KeyRole::Recognizer),
    ];
    let mut checked = 0;
    for (credential, role) in &credentials {
        for (routes, needed) in groups {
            for (method, uri) in routes {
                let (status, body) = send(&app, request(method, uri, *credential)).await;
                let what = format!("{method} {uri} {credential:?} ({role:?})");
                match role {
                    None => assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}"),
                    Some(role) if *role >= needed => {
                        assert!(authorised(status), "{what}: {status} {body}");
                    }
                    Some(_) => {
                        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
                        assert_eq!(body["error"]["code"], "forbidden", "{what}");
                        assert!(
                            body["error"]["message"].as_str().unwrap().contains("admin token"),
                            "{body}"
                        );
                    }
                }
                checked += 1;
            }
        }
        for (method, uri) in OPEN_ROUTES {
            let (status, _) = send(&app, request(method, uri, *credential)).await;
            assert!(authorised(status), "{method} {uri} {credential:?}: {status}");
        }
    }
    let protected = ADMIN_ROUTES.len() + READ_ROUTES.len() + RECOGNITION_ROUTES.len();
    assert_eq!(checked, credentials.len() * protected);
    // The two examples, spelled out.
    let (status, _) =
        send(&app, request("DELETE", "/api/persons/1", Credential::Bearer(&door.1))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a recognizer key deleting a person");
    let (status, _) =
        send(&app, request("GET", "/api/persons/1/export", Credential::Bearer(&desk.1))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an operator exporting a person");
}

#[test]
fn the_read_routes_are_the_servers_operator_reads() {
    let server: BTreeSet<String> = ddfr_server::auth::OPERATOR_READS
        .iter()
        .map(|route| route.replace("{id}", "1").replace("{face_id}", "1"))
        .collect();
    let listed: BTreeSet<String> = READ_ROUTES.iter().map(|(_, p)| (*p).to_owned()).collect();
    assert_eq!(server, listed);
}

#[tokio::test]
async fn the_route_lists_cover_every_documented_route() {
    let document = serde_json::to_value(ddfr_server::openapi::openapi_json()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let path = path.replace("{id}", "1").replace("{face_id}", "1");
            documented.insert((method.to_uppercase(), path));
        }
    }
    let listed: BTreeSet<(String, String)> = ADMIN_ROUTES
        .iter()
        .chain(READ_ROUTES)
        .chain(RECOGNITION_ROUTES)
        .chain(OPEN_ROUTES)
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let unlisted: Vec<_> = documented.difference(&listed).collect();
    assert!(unlisted.is_empty(), "routes without a role in this test: {unlisted:?}");
}

#[tokio::test]
async fn a_wrong_key_is_401_and_without_a_second_key_nothing_but_the_admin_token_works() {
    let app = app();
    for token in ["camera-key-9b2", "admin-token-4f1", "", "camera-key-9b27x"] {
        let (status, body) =
            send(&app, request("POST", "/api/recognize", Credential::Bearer(token))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let mut single = config();
    single.recognize_token = None;
    let app = app_with(single);
    let (status, _) = send(&app, request("GET", "/ws", Credential::Bearer(CAMERA))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&app, request("GET", "/api/persons", Credential::Bearer(ADMIN))).await;
    assert!(authorised(status), "{status}");
}

fn login(token: &str) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/api/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::json!({ "token": token }).to_string()))
        .unwrap()
}

#[tokio::test]
async fn login_accepts_both_keys_and_the_cookie_keeps_the_role() {
    let app = app();
    for (token, persons) in [(ADMIN, true), (CAMERA, false)] {
        let response = app.clone().oneshot(login(token)).await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{token}");
        let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(!cookie.contains("Secure"), "plain HTTP without a trusted proxy: {cookie}");
        let pair = cookie.split(';').next().unwrap().to_owned();
        let with_cookie = |method: &str, uri: &str| {
            Request::builder()
                .method(method)
                .uri(uri)
                .header(header::COOKIE, pair.clone())
                .body(Body::empty())
                .unwrap()
        };
        let (status, _) = send(&app, with_cookie("GET", "/api/persons")).await;
        assert_eq!(authorised(status), persons, "{token}: {status}");
        let (status, _) = send(&app, with_cookie("GET", "/ws")).await;
        assert!(authorised(status), "{token}: {status}");
    }
    assert_eq!(send(&app, login("neither")).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_recognize_key_on_an_admin_route_is_not_a_failed_attempt_but_wrong_keys_are() {
    let app = app();
    for _ in 0..(AuthThrottle::MAX_FAILURES * 2) {
        let (status, _) =
            send(&app, request("GET", "/api/persons", Credential::Bearer(CAMERA))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    for _ in 0..AuthThrottle::MAX_FAILURES {
        let (status, _) = send(&app, request("GET", "/ws", Credential::Bearer("guess"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Throttled: even the right recognize key is refused now.
    let (status, body) = send(&app, request("GET", "/ws", Credential::Bearer(CAMERA))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "too_many_attempts");
}

#[tokio::test]
async fn the_session_route_names_each_credentials_role_and_counts_wrong_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (state, keys) = state_with_keys(dir.path()).await;
    let app = router_with_throttle(state, Arc::new(AuthThrottle::default()));
    let session = |credential| {
        let app = app.clone();
        async move { send(&app, request("GET", "/api/session", credential)).await }
    };
    let (status, body) = session(Credential::None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({"auth_required": true, "authenticated": false, "role": null, "via": "none"})
    );
    let mut cases = vec![
        (Credential::Cookie(ADMIN), "admin", "cookie"),
        (Credential::Bearer(ADMIN), "admin", "bearer"),
        (Credential::Cookie(CAMERA), "recognizer", "cookie"),
    ];
    for (role, secret) in &keys {
        let name = match role {
            KeyRole::Admin => "admin",
            KeyRole::Operator => "operator",
            KeyRole::Recognizer => "recognizer",
        };
        cases.push((Credential::Cookie(secret.as_str()), name, "cookie"));
    }
    for (credential, role, via) in cases {
        let (status, body) = session(credential).await;
        assert_eq!(status, StatusCode::OK, "{credential:?}");
        assert_eq!(
            (body["authenticated"].as_bool(), body["role"].as_str()),
            (Some(true), Some(role))
        );
        assert_eq!(body["via"], via, "{credential:?}");
    }
    // A wrong cookie is not a session, and guesses here hit the same throttle as elsewhere.
    for _ in 0..AuthThrottle::MAX_FAILURES {
        let (status, body) = session(Credential::Cookie("guess")).await;
        assert_eq!((status, body["authenticated"].as_bool()), (StatusCode::OK, Some(false)));
    }
    let (status, body) = session(Credential::Bearer(ADMIN)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    // Without a token configured (loopback), everyone is the admin.
    let mut open = config();
    open.api_token = None;
    open.recognize_token = None;
    let (status, body) =
        send(&app_with(open), request("GET", "/api/session", Credential::None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["auth_required"].as_bool(), body["role"].as_str()),
        (Some(false), Some("admin"))
    );
}

/// A request from `peer` with an optional `X-Forwarded-For`.
fn from_peer(peer: &str, forwarded_for: Option<&str>, token: &'static str) -> Request<Body> {
    let mut request = request("GET", "/api/persons", Credential::Bearer(token));
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    if let Some(value) = forwarded_for {
        request.headers_mut().insert("x-forwarded-for", value.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_throttle_counts_the_forwarded_client() {
    let mut trusting = config();
    trusting.trusted_proxies = vec!["127.0.0.1".parse::<IpNet>().unwrap()];
    let app = app_with(trusting);
    let proxy = "127.0.0.1:40000";
    for _ in 0..AuthThrottle::MAX_FAILURES {
        let status = send(&app, from_peer(proxy, Some("203.0.113.5"), "guess")).await.0;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = send(&app, from_peer(proxy, Some("203.0.113.5"), ADMIN)).await.0;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the guessing client is throttled");
    let status = send(&app, from_peer(proxy, Some("203.0.113.6"), ADMIN)).await.0;
    assert!(authorised(status), "another client behind the same proxy is not: {status}");
    // A client-supplied entry before the proxy's own is not believed.
    let status = send(&app, from_peer(proxy, Some("203.0.113.6, 203.0.113.5"), ADMIN)).await.0;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Not trusted (the default): the header is ignored and everyone behind the proxy is one
    // client, and a direct client cannot dodge the throttle by inventing the header.
    let app = self::app();
    for i in 0..AuthThrottle::MAX_FAILURES {
        let forwarded = format!("198.51.100.{i}");
        let status = send(&app, from_peer(proxy, Some(&forwarded), "guess")).await.0;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = send(&app, from_peer(proxy, Some("198.51.100.200"), ADMIN)).await.0;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_trusted_proxy_saying_https_gets_a_secure_cookie() {
    let mut trusting = config();
    trusting.trusted_proxies = vec!["10.0.0.0/8".parse::<IpNet>().unwrap()];
    let app = app_with(trusting);
    let cookie_from = |peer: &str, proto: &str| {
        let mut request = login(ADMIN);
        request.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        request.headers_mut().insert("x-forwarded-proto", proto.parse().unwrap());
        request
    };
    let response = app.clone().oneshot(cookie_from("10.1.2.3:5000", "https")).await.unwrap();
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let response = app.clone().oneshot(cookie_from("192.0.2.1:5000", "https")).await.unwrap();
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(!cookie.contains("Secure"), "an untrusted peer's header is ignored: {cookie}");
}
