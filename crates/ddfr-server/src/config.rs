//! What the server needs to know that is not a model or a database: where to listen, limits,
//! auth and the web app's directory. Built once by the binary's composition root.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Largest `/ws` message (a frame or a crops message): 2 MiB, the frame decoder's own limit.
/// A bigger message closes the connection with code 1009.
pub const MAX_WS_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// Largest REST upload (multipart body of a photo): 10 MiB plus room for the form framing.
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024 + 64 * 1024;

/// How often a `/ws` connection is pinged.
pub const WS_PING_INTERVAL: Duration = Duration::from_secs(20);

/// How long the pong to a ping may take. A peer that does not answer in time is either dead or
/// no longer reading (a reading client answers pings on its own): it is closed with 1008, so
/// such a peer frees its slot within [`WS_PING_INTERVAL`] + [`WS_PONG_TIMEOUT`] (30 s).
pub const WS_PONG_TIMEOUT: Duration = Duration::from_secs(10);

/// Most `/ws` connections open at once (sized for 2 cores); further handshakes get HTTP 503
/// `too_many_connections` before the upgrade.
pub const MAX_WS_CONNECTIONS: usize = 16;

/// Most frames per second one `/ws` connection may have processed; faster frames wait for their
/// turn and a newer one replaces them (counted, no reply), even when the server is idle. 120:
/// above what one connection gets on 2 cores (≈ 110 FPS full frames, 120 FPS crops), so it
/// never slows a well-behaved client here (the browser's crops mode aims at ≥ 60 FPS), while a
/// larger machine still cannot be monopolised by one client. reliability.md's 30 FPS suits
/// servers whose clients are cameras at ≤ 30 FPS: set `DDFR_WS_MAX_FPS=30` there.
pub const WS_MAX_FPS: u32 = 120;

/// How long sending one reply may take before the client is considered stalled and the
/// connection is closed: a client that stops reading cannot hold server memory.
pub const WS_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a graceful shutdown waits for connections to close before the process exits.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The bearer token that protects the API. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself; compare with [`crate::auth::tokens_match`], never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

/// Server settings, validated by the binary.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// When set, REST (except health and login) and the `/ws` handshake require it.
    pub api_token: Option<ApiToken>,
    /// Browser origins allowed on `/ws` besides the server's own (e.g. the trunk dev server),
    /// exact `scheme://host:port` strings.
    pub allowed_origins: Vec<String>,
    /// The built web app (`index.html` and assets); `None` or a missing directory serves a
    /// page explaining how to build it.
    pub web_dir: Option<PathBuf>,
    /// Largest `/ws` message in bytes.
    pub max_ws_message_bytes: usize,
    /// Largest REST request body in bytes.
    pub max_upload_bytes: usize,
    /// `/ws` keepalive ping interval.
    pub ws_ping_interval: Duration,
    /// How long one reply may take to send before the connection is dropped.
    pub ws_send_timeout: Duration,
    /// How long a pong may take before the peer is closed as dead or not reading.
    pub ws_pong_timeout: Duration,
    /// Most `/ws` connections open at once.
    pub max_ws_connections: usize,
    /// Most frames per second per `/ws` connection.
    pub ws_max_fps: u32,
    /// How long shutdown waits for open connections.
    pub shutdown_grace: Duration,
    /// Refuse enrollment photos that match another person better (`looks_like_other_person`)
    /// unless a request says otherwise.
    pub strict_enrollment: bool,
}

impl ServerConfig {
    /// Defaults for everything but the address.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            api_token: None,
            allowed_origins: Vec::new(),
            web_dir: None,
            max_ws_message_bytes: MAX_WS_MESSAGE_BYTES,
            max_upload_bytes: MAX_UPLOAD_BYTES,
            ws_ping_interval: WS_PING_INTERVAL,
            ws_send_timeout: WS_SEND_TIMEOUT,
            ws_pong_timeout: WS_PONG_TIMEOUT,
            max_ws_connections: MAX_WS_CONNECTIONS,
            ws_max_fps: WS_MAX_FPS,
            shutdown_grace: SHUTDOWN_GRACE,
            strict_enrollment: false,
        }
    }
}
