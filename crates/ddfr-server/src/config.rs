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

/// How often an idle `/ws` connection is pinged; a peer that answers nothing (no pong, no
/// frame) for two intervals is dropped, so dead peers free their slot within ~40 s.
pub const WS_PING_INTERVAL: Duration = Duration::from_secs(20);

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
            shutdown_grace: SHUTDOWN_GRACE,
            strict_enrollment: false,
        }
    }
}
