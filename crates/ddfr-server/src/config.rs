//! What the server needs to know that is not a model or a database: where to listen, TLS,
//! limits, auth and the web app's directory. Built once by the binary's composition root.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ddfr_engine::decode::DecodeLimits;

use crate::tls::TlsConfig;

/// Largest `/ws` message (a frame or a crops message) by default: 8 MiB, the frame decoder's
/// default byte limit ([`DecodeLimits::FRAME`]): a 1920×1080 PNG or a 3840×2160 JPEG fits. A
/// bigger message closes the connection with code 1009.
pub const MAX_WS_MESSAGE_BYTES: usize = DecodeLimits::FRAME.max_bytes;

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

/// Most `/ws` connections one principal (an API key, or one of the environment tokens) may
/// have open at once; its further handshakes get HTTP 503 `too_many_connections`. Without a
/// configured token (loopback only) nobody is told apart and only the total cap applies.
pub const MAX_WS_CONNECTIONS_PER_KEY: usize = 8;

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

/// How long a new connection may take to send its first request head (the TLS handshake, when
/// there is one, has its own timeout before this starts). A client that connects and sends
/// nothing, or dribbles its head (Slowloris), is disconnected then.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a graceful shutdown waits for connections to close before the process exits.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A bearer token (the admin token or the recognize-only key). `Debug` never prints it.
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
    /// The admin token. When set, REST (except health, login and logout) and the `/ws`
    /// handshake require a token; this one opens every route.
    pub api_token: Option<ApiToken>,
    /// The recognize-only key: opens `/ws`, `POST /api/recognize` and `POST /api/verify`
    /// only; every other protected route answers it 403 `forbidden`. Ignored without
    /// [`ServerConfig::api_token`] (then every route is open anyway).
    pub recognize_token: Option<ApiToken>,
    /// Reverse proxies whose `X-Forwarded-For` (client address, for the brute-force throttle
    /// and the login audit) and `X-Forwarded-Proto` (`Secure` cookie) are believed. Empty:
    /// both headers are ignored and the client is the TCP peer.
    pub trusted_proxies: Vec<IpNet>,
    /// Serve HTTPS/WSS with this certificate; `None` serves plain HTTP. With TLS the session
    /// cookie is `Secure` and the server's own origin is its `https://` origin only.
    pub tls: Option<TlsConfig>,
    /// Host names this server answers to besides `localhost`, loopback addresses and the
    /// address it listens on (see [`crate::guard`]): a request for any other `Host` gets 421
    /// `host_not_allowed`, so DNS rebinding gets nothing.
    pub allowed_hosts: Vec<crate::guard::HostPattern>,
    /// Browser origins allowed to send requests (REST and `/ws`) besides the server's own
    /// (e.g. the trunk dev server), exact `scheme://host:port` strings. No CORS headers.
    pub allowed_origins: Vec<String>,
    /// Browser origins that may also read responses cross-origin: CORS is answered for these
    /// only (preflights, `Access-Control-Allow-Origin`). Empty: no CORS at all.
    pub cors_origins: Vec<String>,
    /// The built web app (`index.html` and assets); `None` or a missing directory serves a
    /// page explaining how to build it.
    pub web_dir: Option<PathBuf>,
    /// Largest `/ws` message in bytes.
    pub max_ws_message_bytes: usize,
    /// How `/ws` frames are decoded: byte limit, largest side, pixel budget, JPEG scans and
    /// the per-decode time bound. Frames over a limit are answered `null`.
    pub frame_limits: DecodeLimits,
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
    /// Most `/ws` connections one principal (key or environment token) may have open.
    pub max_ws_connections_per_key: usize,
    /// Most frames per second per `/ws` connection.
    pub ws_max_fps: u32,
    /// How long shutdown waits for open connections.
    pub shutdown_grace: Duration,
    /// How long a new connection may take to send its first request head.
    pub request_head_timeout: Duration,
    /// A `/ws` connection that sends no frame for this long is closed with 1000 (`None`: never;
    /// a door camera may see nobody for hours, and the browser's crops mode sends nothing when
    /// there is no face).
    pub ws_idle_timeout: Option<Duration>,
    /// Refuse enrollment photos that match another person better (`looks_like_other_person`)
    /// unless a request says otherwise.
    pub strict_enrollment: bool,
    /// Consent and retention settings.
    pub privacy: crate::privacy::PrivacyConfig,
}

impl ServerConfig {
    /// Defaults for everything but the address.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            api_token: None,
            recognize_token: None,
            trusted_proxies: Vec::new(),
            tls: None,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            cors_origins: Vec::new(),
            web_dir: None,
            max_ws_message_bytes: MAX_WS_MESSAGE_BYTES,
            frame_limits: DecodeLimits::FRAME,
            max_upload_bytes: MAX_UPLOAD_BYTES,
            ws_ping_interval: WS_PING_INTERVAL,
            ws_send_timeout: WS_SEND_TIMEOUT,
            ws_pong_timeout: WS_PONG_TIMEOUT,
            max_ws_connections: MAX_WS_CONNECTIONS,
            max_ws_connections_per_key: MAX_WS_CONNECTIONS_PER_KEY,
            ws_max_fps: WS_MAX_FPS,
            shutdown_grace: SHUTDOWN_GRACE,
            request_head_timeout: REQUEST_HEAD_TIMEOUT,
            ws_idle_timeout: None,
            strict_enrollment: false,
            privacy: crate::privacy::PrivacyConfig::default(),
        }
    }

    /// `https` when the server serves TLS itself, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`) or one address (`127.0.0.1`,
/// `::1`). IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) match as the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A string that is not an address or network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or CIDR network (e.g. 10.0.0.0/8, 127.0.0.1, ::1)")]
pub struct IpNetError(String);

impl IpNet {
    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || IpNetError(text.to_owned());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr = addr.parse::<IpAddr>().map_err(|_| error())?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(error)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_and_single_addresses_match_what_they_cover() {
        let net: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.255.7")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.1")), "IPv4-mapped IPv6 is the IPv4 address");
        assert!(!net.contains(ip("::1")));
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("2001:db8::1")));
        assert_eq!(net.to_string(), "10.1.0.0/16");
    }

    #[test]
    fn malformed_networks_are_refused() {
        for bad in
            ["", "10.0.0.0/33", "::1/129", "10.0.0/8", "localhost", "10.0.0.0/", "1.2.3.4/-1"]
        {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?} parsed");
        }
    }
}
