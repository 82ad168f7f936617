//! ddfr's HTTP and WebSocket server (axum): the only crate that knows HTTP.
//!
//! The binary's composition root loads settings, model pack, store and index, then hands
//! them over as [`Services`]; this crate knows nothing about model paths. [`router`] builds
//! the app (used in-process by tests), [`serve`] runs it until a shutdown signal, over plain
//! HTTP or, with [`ServerConfig::tls`], HTTPS/WSS ([`tls`]).
//!
//! Routes: `/ws` (frames and crops messages), `/api/*` (REST, see `docs/api.md`; consent,
//! retention and the privacy policy in [`privacy`], the export archive in [`export`]),
//! `/openapi.json`, and the web app at `/`. With a token configured, `/ws`,
//! `POST /api/recognize` and `POST /api/verify` take any credential; the reads of persons,
//! faces and unknown visitors also need an operator or admin role, every other protected
//! route the admin role (see [`auth`] and, for API keys, [`keys`]).

pub mod audit;
pub mod auth;
pub mod body;
pub mod config;
pub mod error;
pub mod events;
pub mod export;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod gallery;
pub mod guard;
pub mod head_deadline;
pub mod keys;
pub mod linger;
pub mod openapi;
pub mod pipeline;
pub mod pool;
pub mod privacy;
pub mod rest;
pub mod session;
pub mod state;
pub mod storage_fault;
pub mod tls;
pub mod unknowns;
pub mod visitors;
pub mod web;
pub mod ws;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use axum::{Extension, Router};
use head_deadline::HeadDeadlineListener;
use tokio::net::TcpListener;

pub use auth::AuthThrottle;
pub use config::{ApiToken, ServerConfig};
pub use error::ApiError;
pub use gallery::{Gallery, GalleryError};
pub use pool::{InferencePool, PoolError};
pub use state::{AppState, Services};
pub use tls::{TlsConfig, TlsError};
pub use visitors::{VisitorRegistry, VisitorsConfig};

/// How often shutdown checks whether every `/ws` connection has closed.
const SHUTDOWN_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The whole app, with the default brute-force throttle ([`AuthThrottle::MAX_FAILURES`] per
/// [`AuthThrottle::WINDOW`]).
pub fn router(state: AppState) -> Router {
    router_with_throttle(state, Arc::new(AuthThrottle::default()))
}

/// The whole app with a given brute-force throttle (tests use a short window).
pub fn router_with_throttle(state: AppState, throttle: Arc<AuthThrottle>) -> Router {
    let max_body = state.config().max_upload_bytes;
    // What the recognize-only key may open (the admin token opens these too).
    let recognition = Router::new()
        .route("/api/recognize", post(rest::recognize))
        .route(
            "/api/verify",
            post(rest::verify).layer(DefaultBodyLimit::max(rest::verify_body_limit(max_body))),
        )
        .route("/ws", get(ws::ws_handler))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_recognizer));
    let admin = Router::new()
        .route("/api/persons", post(rest::create_person).get(rest::list_persons))
        .route(
            "/api/persons/{id}",
            get(rest::get_person).patch(rest::update_person).delete(rest::delete_person),
        )
        .route("/api/persons/{id}/export", get(audit::export_person))
        .route("/api/persons/{id}/consent", post(privacy::add_consent).get(privacy::list_consents))
        .route("/api/persons/{id}/consent/withdraw", post(privacy::withdraw_consent))
        .route("/api/persons/{id}/faces", post(rest::add_face).get(rest::list_faces))
        .route(
            "/api/persons/{id}/faces/batch",
            post(rest::add_faces).layer(DefaultBodyLimit::max(rest::batch_body_limit(max_body))),
        )
        .route("/api/persons/{id}/faces/{face_id}", delete(rest::delete_face))
        .route("/api/persons/{id}/faces/{face_id}/crop", get(rest::face_crop))
        .route("/api/audit", get(audit::list_audit))
        .route("/api/unknowns", get(unknowns::list_unknowns))
        .route("/api/unknowns/{id}", delete(unknowns::delete_unknown))
        .route("/api/unknowns/{id}/crop", get(unknowns::unknown_crop))
        .route("/api/unknowns/{id}/promote", post(unknowns::promote_unknown))
        .route("/api/keys", post(keys::create_key).get(keys::list_keys))
        .route("/api/keys/{id}", delete(keys::revoke_key))
        .route("/api/events/status", get(events::events_status))
        // The operator's reads, else admin only (auth::OPERATOR_READS).
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_by_route));
    let open = Router::new()
        .route("/api/health", get(rest::health))
        .route("/api/privacy/policy", get(privacy::policy))
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .route("/api/session", get(session::session))
        .route("/openapi.json", get(|| async { axum::Json(openapi::openapi_json()) }));
    let api_fallback = Router::new().route(
        "/api/{*rest}",
        axum::routing::any(|| async {
            ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such API route")
        }),
    );
    let web_dir = state.config().web_dir.clone();
    admin
        .merge(recognition)
        .merge(open)
        .merge(api_fallback)
        .merge(web::web_routes(web_dir.as_deref()))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            storage_fault::resync_after_storage_faults,
        ))
        .layer(Extension(throttle))
        // Host, Origin, Fetch Metadata, CSRF and CORS, before any route or credential is looked at.
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(tower_http::trace::TraceLayer::new_for_http().on_failure(
            // Failures are logged once, by `ApiError`, with their cause.
            tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
        ))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then tells `/ws` clients to go away
/// (close code 1001) and waits up to the configured grace period for them to close. With
/// [`ServerConfig::tls`] the listener speaks TLS only (HTTPS and WSS): each handshake runs in
/// its own task with a timeout ([`tls::TlsListener`]); plain HTTP on that port is not served.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    // The peer address feeds the brute-force throttle (per client IP).
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let signal_state = state.clone();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down");
        signal_state.begin_shutdown();
        let _ = stopped_tx.send(());
    };
    let grace = state.config().shutdown_grace;
    let head_timeout = state.config().request_head_timeout;
    let server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
        match &state.config().tls {
            // `tap_io` keeps axum's `ConnectInfo<SocketAddr>` for listeners of ours.
            None => {
                let listener = HeadDeadlineListener::new(listener, head_timeout).tap_io(|_| {});
                Box::pin(axum::serve(listener, app).with_graceful_shutdown(signal).into_future())
            }
            Some(tls) => {
                // Small TLS records are sent at once (no Nagle delay on replies).
                let listener = tls::TlsListener::new(listener, tls)?;
                let listener = HeadDeadlineListener::new(listener, head_timeout).tap_io(|stream| {
                    if let Some(tls) = stream.get_ref().get_ref() {
                        let _ = tls.get_ref().0.set_nodelay(true);
                    }
                });
                Box::pin(axum::serve(listener, app).with_graceful_shutdown(signal).into_future())
            }
        };
    tokio::select! {
        result = server => result?,
        () = async {
            let _ = stopped_rx.await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("HTTP requests still running after the grace period; exiting anyway"),
    }
    let deadline = Instant::now() + grace;
    while state.ws_counters().open.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(SHUTDOWN_POLL).await;
    }
    Ok(())
}
