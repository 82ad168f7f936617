//! Shared server state: configuration, and the services that exist once models, store and
//! index are loaded. Until then the server answers `/api/health` with 503.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ddfr_protocol::{Date, DateError};
use ddfr_store::PersonStore;
use tokio::sync::watch;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::gallery::Gallery;
use crate::keys::KeyRegistry;
use crate::pool::InferencePool;
use crate::visitors::VisitorRegistry;

/// Everything the handlers need once loading has finished.
#[derive(Debug)]
pub struct Services {
    /// Runs all CPU work.
    pub pool: InferencePool,
    /// The source of truth.
    pub store: Arc<dyn PersonStore>,
    /// The in-memory index and person table.
    pub gallery: Arc<Gallery>,
    /// Minimum cosine similarity for an identification.
    pub min_similarity: f32,
    /// Recurring unknown visitors, when the owner turned the feature on.
    pub visitors: Option<Arc<VisitorRegistry>>,
}

/// Counters for `/ws`, reported in the log and the health reply.
#[derive(Debug, Default)]
pub struct WsCounters {
    /// Open connections.
    pub open: AtomicU64,
    /// Frames received.
    pub received: AtomicU64,
    /// Frames dropped without a reply: replaced by a newer one before processing (latest frame
    /// wins) or over the per-connection frame rate.
    pub dropped: AtomicU64,
    /// The part of `dropped` replaced while waiting only for the per-connection frame rate.
    pub rate_limited: AtomicU64,
    /// Connection slots taken, counted from the accepted handshake (at most the configured
    /// maximum; see `ws.rs`).
    pub slots: AtomicU64,
    /// Handshakes refused because every slot was taken.
    pub refused: AtomicU64,
    /// Connections closed because the peer stopped answering pings (dead or not reading).
    pub unresponsive: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    config: ServerConfig,
    services: OnceLock<Arc<Services>>,
    shutdown: watch::Sender<bool>,
    ws: WsCounters,
    keys: KeyRegistry,
    events: OnceLock<ddfr_events::Events>,
}

/// Cheap to clone; the axum state of every route.
#[derive(Debug, Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

impl AppState {
    /// State that is not ready yet: `/api/health` answers 503 until [`AppState::set_ready`].
    pub fn new(config: ServerConfig) -> Self {
        let (shutdown, _) = watch::channel(false);
        Self {
            shared: Arc::new(Shared {
                config,
                services: OnceLock::new(),
                shutdown,
                ws: WsCounters::default(),
                keys: KeyRegistry::default(),
                events: OnceLock::new(),
            }),
        }
    }

    /// Makes the services available; the server is healthy from now on. A second call is
    /// ignored.
    pub fn set_ready(&self, services: Services) {
        let _ = self.shared.services.set(Arc::new(services));
    }

    /// The services, or 503 `not_ready`.
    pub fn services(&self) -> Result<Arc<Services>, ApiError> {
        self.shared.services.get().cloned().ok_or_else(ApiError::not_ready)
    }

    /// Turns on home-automation events (`/ws` connections opened from now on feed them). A
    /// second call is ignored.
    pub fn set_events(&self, events: ddfr_events::Events) {
        let _ = self.shared.events.set(events);
    }

    /// The events service, when it was started.
    pub fn events(&self) -> Option<&ddfr_events::Events> {
        self.shared.events.get()
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// The API keys and the `/ws` connections per principal.
    pub fn keys(&self) -> &KeyRegistry {
        &self.shared.keys
    }

    /// `/ws` counters.
    pub fn ws_counters(&self) -> &WsCounters {
        &self.shared.ws
    }

    /// Tells every open `/ws` connection to close (code 1001, going away).
    pub fn begin_shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Resolves when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shared.shutdown.subscribe()
    }

    /// Number of frames dropped so far on every connection.
    pub fn dropped_frames(&self) -> u64 {
        self.shared.ws.dropped.load(Ordering::Relaxed)
    }
}

/// Now, as a UTC timestamp (a clock before 1970 reads as 0).
pub fn now_timestamp() -> ddfr_protocol::Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    ddfr_protocol::Timestamp::from_unix_millis(millis)
}

/// Today's UTC date, for ages.
pub fn today() -> Result<Date, DateError> {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Date::from_unix_seconds(seconds)
}
