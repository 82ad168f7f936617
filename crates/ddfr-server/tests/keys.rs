//! API keys end to end in the server: secrets stored hashed only (byte search of the SQLite
//! files), expiry and revocation at auth (REST and the login cookie), audit entries, the
//! throttle on guessed keys; and, with the models installed, a real `/ws` server: revoking or
//! expiring a key closes its streaming sockets with 1008 (time measured) while others go on,
//! and the per-key connection cap. The models are read from `DDFR_MODELS_DIR`, else `models/`.
// Test code outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;
use common::{contains, load_pack, services};

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use ddfr_server::keys::hash_secret;
use ddfr_server::{ApiToken, AppState, AuthThrottle, ServerConfig, router_with_throttle};
use ddfr_store::{AuditStore, KeyStore, PersonStore, SQLITE_FILE_NAME, SqliteStore};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tower::ServiceExt;

const ADMIN: &str = "admin-token-77e1";

fn config() -> ServerConfig {
    let mut config = ServerConfig::new(([127, 0, 0, 1], 0).into());
    config.api_token = Some(ApiToken::new(ADMIN));
    config
}

async fn open_store(dir: &Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open_in_dir(dir).await.unwrap())
}

async fn keyed_state(config: ServerConfig, store: &Arc<SqliteStore>) -> AppState {
    let state = AppState::new(config);
    state.keys().attach(Arc::clone(store) as Arc<dyn PersonStore>).await.unwrap();
    state
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn bearer(method: &str, uri: &str, token: &str, body: Option<Value>) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

/// Creates a key with the admin token; returns its id and secret.
async fn create_key(app: &axum::Router, body: Value) -> (i64, String) {
    let (status, reply) = send(app, bearer("POST", "/api/keys", ADMIN, Some(body))).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    (reply["key"]["id"].as_i64().unwrap(), reply["secret"].as_str().unwrap().to_owned())
}

fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(dir.join(SQLITE_FILE_NAME)).unwrap();
    bytes.extend(std::fs::read(dir.join(format!("{SQLITE_FILE_NAME}-wal"))).unwrap_or_default());
    bytes
}

#[tokio::test]
async fn secrets_are_stored_only_as_their_hash_and_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let app = router_with_throttle(keyed_state(config(), &store).await, Arc::default());
    let mut secrets = Vec::new();
    for (name, role) in [("door", "recognizer"), ("desk", "operator"), ("ops", "admin")] {
        let body = json!({ "name": name, "role": role, "expires_in_days": 30 });
        secrets.push(create_key(&app, body).await.1);
    }
    let bytes = database_bytes(dir.path());
    for secret in &secrets {
        assert!(!contains(&bytes, secret.as_bytes()), "a plaintext secret is in the database");
        assert!(!contains(&bytes, &secret.as_bytes()[5..29]), "part of a secret is in it");
        // The search finds what is there: the hash is stored.
        assert!(contains(&bytes, &hash_secret(secret)), "the secret's hash is stored");
    }
    let (status, list) = send(&app, bearer("GET", "/api/keys", ADMIN, None)).await;
    assert_eq!(status, StatusCode::OK);
    let text = list.to_string();
    assert!(secrets.iter().all(|secret| !text.contains(secret.as_str())), "{text}");
    let items = list["items"].as_array().unwrap();
    let shown: Vec<_> = items
        .iter()
        .map(|k| {
            (
                k["name"].as_str().unwrap(),
                k["role"].as_str().unwrap(),
                k["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("door", "recognizer", "active"),
            ("desk", "operator", "active"),
            ("ops", "admin", "active")
        ]
    );
    assert!(items.iter().all(|k| k["expires_at"].is_string() && k["revoked_at"].is_null()));
    println!("{} bytes of .db + -wal searched; no secret, every hash found", bytes.len());
}

#[tokio::test]
async fn bad_bodies_are_refused_and_only_the_admin_manages_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let app = router_with_throttle(keyed_state(config(), &store).await, Arc::default());
    for body in [
        json!({ "name": "", "role": "admin" }),
        json!({ "name": "x", "role": "root" }),
        json!({ "name": "x", "role": "admin", "expires_at": "2001-01-01T00:00:00Z" }),
        json!({ "name": "x", "role": "admin", "expires_in_days": 0 }),
        json!({ "name": "x", "role": "admin", "secret": "mine" }),
    ] {
        let (status, reply) =
            send(&app, bearer("POST", "/api/keys", ADMIN, Some(body.clone()))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply}");
    }
    let (_, ops) = create_key(&app, json!({ "name": "ops", "role": "admin" })).await;
    let (id, desk) = create_key(&app, json!({ "name": "desk", "role": "operator" })).await;
    // An admin key manages keys too; an operator key may not.
    let (status, _) = send(&app, bearer("GET", "/api/keys", &ops, None)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&app, bearer("DELETE", &format!("/api/keys/{id}"), &desk, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = send(&app, bearer("DELETE", "/api/keys/999", &ops, None)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("key_not_found"))
    );
    assert_eq!(store.keys().await.unwrap().len(), 2, "nothing else was created");
}

fn login(token: &str) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/api/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "token": token }).to_string()))
        .unwrap()
}

fn with_cookie(uri: &str, cookie: &str) -> Request<Body> {
    Request::builder().uri(uri).header(header::COOKIE, cookie).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn revoked_and_expired_keys_and_their_sessions_are_refused_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let app = router_with_throttle(keyed_state(config(), &store).await, Arc::default());
    let (id, desk) = create_key(&app, json!({ "name": "desk", "role": "operator" })).await;
    let response = app.clone().oneshot(login(&desk)).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    // Authorised (503: the state is not ready; no models needed to tell auth apart).
    for request in
        [bearer("GET", "/api/persons", &desk, None), with_cookie("/api/persons", &cookie)]
    {
        assert_eq!(send(&app, request).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
    let (status, _) = send(&app, bearer("DELETE", &format!("/api/keys/{id}"), ADMIN, None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for request in [
        bearer("GET", "/api/persons", &desk, None),
        with_cookie("/api/persons", &cookie),
        bearer("POST", "/api/recognize", &desk, None),
        login(&desk),
    ] {
        let (status, body) = send(&app, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (_, list) = send(&app, bearer("GET", "/api/keys", ADMIN, None)).await;
    assert_eq!(list["items"][0]["status"], "revoked");
    assert!(list["items"][0]["revoked_at"].is_string());

    // Expiry: valid until `expires_at`, 401 from then on.
    let expires = ddfr_server::state::now_timestamp().unix_millis() + 1_500;
    let at = ddfr_protocol::Timestamp::from_unix_millis(expires);
    let body = json!({ "name": "temp", "role": "recognizer", "expires_at": at });
    let (_, temp) = create_key(&app, body).await;
    assert_eq!(
        send(&app, bearer("GET", "/api/unknowns", &temp, None)).await.0,
        StatusCode::FORBIDDEN
    );
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let (status, body) = send(&app, bearer("GET", "/api/unknowns", &temp, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an expired key: {body}");
    let (_, list) = send(&app, bearer("GET", "/api/keys", ADMIN, None)).await;
    assert_eq!(list["items"][1]["status"], "expired");

    let (entries, _) = store.audit_page(100, 0).await.unwrap();
    let mut actions: Vec<_> = entries
        .iter()
        .filter(|e| e.target_kind.as_deref() == Some("key"))
        .map(|e| (e.action.as_str(), e.target_id))
        .collect();
    actions.reverse();
    assert_eq!(
        actions,
        [("key_create", Some(id)), ("key_revoke", Some(id)), ("key_create", Some(id + 1))]
    );
    assert!(entries.iter().all(|e| !e.detail.as_deref().unwrap_or("").contains(&desk)));
}

#[tokio::test]
async fn guessed_keys_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let app = router_with_throttle(keyed_state(config(), &store).await, Arc::default());
    let (_, door) = create_key(&app, json!({ "name": "door", "role": "recognizer" })).await;
    let mut guess = door.clone();
    guess.replace_range(10..11, if &door[10..11] == "0" { "1" } else { "0" });
    for _ in 0..AuthThrottle::MAX_FAILURES {
        assert_eq!(
            send(&app, bearer("POST", "/api/recognize", &guess, None)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, body) = send(&app, bearer("POST", "/api/recognize", &door, None)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

// ---- A real /ws server (needs the models) ----

struct Server {
    addr: std::net::SocketAddr,
    app: axum::Router,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

async fn server(per_key: usize) -> Option<Server> {
    let Some(pack) = load_pack(2) else {
        println!("SKIPPED: models or ONNX Runtime not set up (run scripts/setup)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = config();
    config.addr = addr;
    config.max_ws_connections_per_key = per_key;
    config.shutdown_grace = Duration::from_millis(500);
    let state = keyed_state(config, &store).await;
    state.set_ready(services(pack, store as Arc<dyn PersonStore>).await);
    let app = router_with_throttle(state.clone(), Arc::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = ddfr_server::serve(listener, state, async {
            let _ = stopped.await;
        })
        .await;
    });
    Some(Server { addr, app, stop: Some(stop), task, _dir: dir })
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: std::net::SocketAddr, token: &str) -> Result<Ws, WsError> {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.map(|(ws, _)| ws)
}

/// How a streaming client ended.
#[derive(Debug)]
struct Streamed {
    replies: usize,
    close: Option<(u16, String)>,
    closed_at: Option<Instant>,
}

/// Sends a (non-image) frame every 25 ms and reads the replies until the server closes the
/// connection or `limit` passes.
async fn stream(mut ws: Ws, limit: Duration) -> Streamed {
    let end = Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    let mut replies = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if Instant::now() >= end {
                    let _ = ws.close(None).await;
                    return Streamed { replies, close: None, closed_at: None };
                }
                if ws.send(Message::binary(b"not an image".to_vec())).await.is_err() {
                    return Streamed { replies, close: None, closed_at: Some(Instant::now()) };
                }
            }
            message = ws.next() => match message {
                Some(Ok(Message::Text(_))) => replies += 1,
                Some(Ok(Message::Close(frame))) => {
                    let close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return Streamed { replies, close, closed_at: Some(Instant::now()) };
                }
                Some(Ok(_)) => {}
                _ => return Streamed { replies, close: None, closed_at: Some(Instant::now()) },
            }
        }
    }
}

#[tokio::test]
async fn revoking_or_expiring_a_key_closes_its_sockets_with_1008_and_spares_the_others() {
    let Some(server) = server(8).await else { return };
    let (revoked_id, revoked) =
        create_key(&server.app, json!({ "name": "cam1", "role": "recognizer" })).await;
    let (_, kept) = create_key(&server.app, json!({ "name": "cam2", "role": "operator" })).await;
    let expires = ddfr_server::state::now_timestamp().unix_millis() + 2_000;
    let at = ddfr_protocol::Timestamp::from_unix_millis(expires);
    let (_, expiring) =
        create_key(&server.app, json!({ "name": "cam3", "role": "recognizer", "expires_at": at }))
            .await;
    let expiry_instant = Instant::now() + Duration::from_millis(2_000);

    let a = tokio::spawn(stream(
        connect(server.addr, &revoked).await.unwrap(),
        Duration::from_secs(20),
    ));
    let b =
        tokio::spawn(stream(connect(server.addr, &kept).await.unwrap(), Duration::from_secs(5)));
    let c = tokio::spawn(stream(
        connect(server.addr, &expiring).await.unwrap(),
        Duration::from_secs(20),
    ));
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let revoke = bearer("DELETE", &format!("/api/keys/{revoked_id}"), ADMIN, None);
    let revoked_at = Instant::now();
    assert_eq!(send(&server.app, revoke).await.0, StatusCode::NO_CONTENT);

    let a = a.await.unwrap();
    let a_after = a.closed_at.unwrap().duration_since(revoked_at);
    println!(
        "revoked key: close {:?} {a_after:?} after the revocation, {} replies before",
        a.close, a.replies
    );
    assert_eq!(a.close.as_ref().map(|c| c.0), Some(u16::from(CloseCode::Policy)), "{a:?}");
    assert!(a_after < Duration::from_secs(5), "closed {a_after:?} after the revocation");
    assert!(a.replies > 0, "it was streaming");
    let c = c.await.unwrap();
    let c_after = c.closed_at.unwrap().saturating_duration_since(expiry_instant);
    println!(
        "expired key: close {:?} {c_after:?} after the expiry, {} replies before",
        c.close, c.replies
    );
    assert_eq!(c.close.as_ref().map(|c| c.0), Some(1008), "{c:?}");
    assert!(c_after < Duration::from_secs(5), "closed {c_after:?} after the expiry");
    let b = b.await.unwrap();
    println!("other key: {} replies in 5 s, close {:?}", b.replies, b.close);
    assert!(b.close.is_none() && b.replies >= 40, "the other key's stream went on: {b:?}");
    // Neither the revoked nor the expired key opens a new socket.
    for secret in [&revoked, &expiring] {
        match connect(server.addr, secret).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), StatusCode::UNAUTHORIZED),
            other => panic!("expected 401, got {:?}", other.map(|_| "a socket")),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn each_key_has_its_own_connection_cap() {
    let Some(server) = server(2).await else { return };
    let (_, one) = create_key(&server.app, json!({ "name": "one", "role": "recognizer" })).await;
    let (_, two) = create_key(&server.app, json!({ "name": "two", "role": "recognizer" })).await;
    let first = connect(server.addr, &one).await.unwrap();
    let second = connect(server.addr, &one).await.unwrap();
    match connect(server.addr, &one).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
        }
        other => panic!("expected 503, got {:?}", other.map(|_| "a socket")),
    }
    // Another key and the admin token are other principals.
    let other = connect(server.addr, &two).await.unwrap();
    let admin = connect(server.addr, ADMIN).await.unwrap();
    // The open streams are unaffected.
    let streams =
        [first, second, other, admin].map(|ws| tokio::spawn(stream(ws, Duration::from_secs(2))));
    let mut replies = Vec::new();
    for s in streams {
        let s = s.await.unwrap();
        assert!(s.close.is_none() && s.replies >= 10, "{s:?}");
        replies.push(s.replies);
    }
    println!("replies in 2 s per stream: {replies:?}");
    // Closed connections give their slots back.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = connect(server.addr, &one).await.unwrap();
    drop(again);
    server.stop().await;
}
