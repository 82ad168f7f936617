//! `ddfr serve` settings: one clap struct, every option also an environment variable, checked
//! once by [`ServeArgs::validate`] and turned into the typed parts the crates take.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use ddfr_events::{EventsConfig, MqttConfig, MqttUrl, WebhookConfig};

/// The file in the data dir holding the token generated for a non-loopback bind.
pub const TOKEN_FILE: &str = "api-token";

/// Options of `ddfr serve`.
#[derive(Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. A non-loopback address without DDFR_API_TOKEN gets a generated
    /// token (stored in the data dir, printed once as a login URL).
    #[arg(long, env = "DDFR_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "DDFR_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Where the database (`ddfr.db`, with the stored face crops) and the generated token live.
    #[arg(long, env = "DDFR_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Database URL: `sqlite:PATH` or `postgres://...` (default: `sqlite:<data-dir>/ddfr.db`).
    #[arg(long, env = "DDFR_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Encrypt stored face crops and embeddings with the 256-bit key in this file (64 hex
    /// digits or 44 base64 characters; mode 600). A plaintext database is encrypted at the
    /// first start with it; from then on the same key is needed to start.
    #[arg(long, env = "DDFR_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,

    /// Bearer token required on REST (except /api/health) and the /ws handshake. Prefer the
    /// environment variable to the flag, which other users can see in the process list.
    #[arg(long, env = "DDFR_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,

    /// A second, recognize-only key: it opens /ws, POST /api/recognize and POST /api/verify
    /// (and logs a browser in to the live view), every other protected route answers it 403.
    /// Needs an admin token (DDFR_API_TOKEN or the generated one). Prefer the variable.
    #[arg(long, env = "DDFR_RECOGNIZE_TOKEN", hide_env_values = true)]
    pub recognize_token: Option<String>,

    /// Serve HTTPS and WSS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, env = "DDFR_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert (PKCS#8, RSA or SEC1).
    #[arg(long, env = "DDFR_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (for the
    /// brute-force throttle, the login audit and the cookie's Secure flag), comma-separated
    /// IPs or CIDR networks (e.g. `127.0.0.1,10.0.0.0/8`). Default: none, both headers ignored.
    #[arg(long, env = "DDFR_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ddfr_server::config::IpNet>,

    /// Minimum cosine similarity for an identification (default: the model pack's calibrated
    /// `min_similarity`, see docs/models.md).
    #[arg(long, env = "DDFR_MATCH_THRESHOLD")]
    pub match_threshold: Option<f32>,

    /// Extra browser origins allowed to open /ws, comma-separated exact `scheme://host:port`
    /// (e.g. the trunk dev server `http://127.0.0.1:8080`). The server's own origin is always
    /// allowed.
    #[arg(long, env = "DDFR_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Host names this server answers to besides localhost, loopback addresses and the address
    /// it listens on, comma-separated, exact or `*.suffix` (e.g. `ddfr.home.example,*.lan`).
    /// Requests for any other Host get 421 (DNS rebinding). On a non-loopback address the
    /// machine's host name and `<hostname>.local` are added.
    #[arg(long, env = "DDFR_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<ddfr_server::guard::HostPattern>,

    /// Browser origins that may read the API cross-origin (CORS), comma-separated exact
    /// `scheme://host:port`. Default: none, no CORS headers at all.
    #[arg(long, env = "DDFR_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Largest /ws message in bytes (a frame or a crops message); a larger one closes the
    /// connection with 1009. The default fits a 1920x1080 PNG and a 3840x2160 JPEG.
    #[arg(long, env = "DDFR_WS_MAX_MESSAGE_BYTES", default_value_t = ddfr_server::config::MAX_WS_MESSAGE_BYTES as u64, value_parser = clap::value_parser!(u64).range(65_536..=67_108_864))]
    pub ws_max_message_bytes: u64,

    /// Largest width or height of a /ws frame in pixels (larger frames are answered null).
    #[arg(long, env = "DDFR_MAX_FRAME_SIDE", default_value_t = ddfr_engine::decode::DecodeLimits::FRAME.max_width, value_parser = clap::value_parser!(u32).range(64..=16_384))]
    pub max_frame_side: u32,

    /// Most pixels (width x height) of a /ws frame (the decompression-bomb budget; larger
    /// frames are answered null). Default 4096x2304.
    #[arg(long, env = "DDFR_MAX_FRAME_PIXELS", default_value_t = ddfr_engine::decode::DecodeLimits::FRAME.max_pixels, value_parser = clap::value_parser!(u64).range(4096..=268_435_456))]
    pub max_frame_pixels: u64,

    /// Milliseconds one /ws frame may take to decode before it is abandoned (answered null).
    #[arg(long, env = "DDFR_MAX_DECODE_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub max_decode_ms: u64,

    /// The built web app (default: `web/dist` of the checkout).
    #[arg(long, env = "DDFR_WEB_DIR")]
    pub web_dir: Option<PathBuf>,

    /// Frames processed at once (default: the number of CPU cores). Each uses
    /// DDFR_INTRA_THREADS inference threads; keep workers x threads <= cores.
    #[arg(long, env = "DDFR_WORKERS")]
    pub workers: Option<usize>,

    /// Refuse an enrollment photo that matches another enrolled person better than the person
    /// it is added to (`looks_like_other_person`); a request's `?strict=` overrides it.
    #[arg(long, env = "DDFR_STRICT_ENROLLMENT", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub strict_enrollment: bool,

    /// Recurring unknown visitors (opt-in): give an unknown face seen again and again a stable
    /// anonymous `unknown_id`, keeping its mean embedding and up to 5 aligned face chips (never
    /// frames) for DDFR_UNKNOWN_RETENTION_DAYS. Off: nothing from the live stream is kept, and
    /// visitors kept by an earlier run are deleted at start.
    #[arg(long, env = "DDFR_UNKNOWN_VISITORS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub unknown_visitors: bool,

    /// Days an unknown visitor not seen again is kept (1 to 365).
    #[arg(long, env = "DDFR_UNKNOWN_RETENTION_DAYS", default_value_t = ddfr_server::VisitorsConfig::DEFAULT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=365))]
    pub unknown_retention_days: u32,

    /// Days an enrolled person is kept after their last match (or creation, if never matched)
    /// unless a retain_until date is set on them; then they are deleted for good (checked at
    /// start and hourly). Default 1095 (3 years).
    #[arg(long, env = "DDFR_RETENTION_DAYS", default_value_t = ddfr_server::privacy::PrivacyConfig::DEFAULT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub retention_days: u32,

    /// Refuse to enroll a face of a person who has no consent record (409 consent_required):
    /// turn on when enrolling people other than yourself and your own household (staff,
    /// visitors, tenants), where the law wants consent recorded. Off by default.
    #[arg(long, env = "DDFR_REQUIRE_CONSENT", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub require_consent: bool,

    /// The version of your privacy notice, reported by GET /api/privacy/policy (record the
    /// version a person was shown in their consent record).
    #[arg(long, env = "DDFR_PRIVACY_NOTICE_VERSION", default_value = "1")]
    pub privacy_notice_version: String,

    /// Most /ws connections open at once (default sized for 2 cores); further handshakes get
    /// HTTP 503 `too_many_connections`.
    #[arg(long, env = "DDFR_MAX_CONNECTIONS", default_value_t = ddfr_server::config::MAX_WS_CONNECTIONS as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_connections: u16,

    /// Most /ws connections one principal (an API key, DDFR_API_TOKEN or DDFR_RECOGNIZE_TOKEN)
    /// may have open at once; its further handshakes get HTTP 503 `too_many_connections`.
    /// Without a token (loopback only) only DDFR_MAX_CONNECTIONS applies.
    #[arg(long, env = "DDFR_MAX_CONNECTIONS_PER_KEY", default_value_t = ddfr_server::config::MAX_WS_CONNECTIONS_PER_KEY as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_connections_per_key: u16,

    /// Most frames per second one /ws connection may send; faster frames are dropped (counted
    /// in `dropped_frames`, no reply).
    #[arg(long, env = "DDFR_WS_MAX_FPS", default_value_t = ddfr_server::config::WS_MAX_FPS, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub ws_max_fps: u32,

    /// Seconds between /ws pings.
    #[arg(long, env = "DDFR_WS_PING_INTERVAL", default_value_t = ddfr_server::config::WS_PING_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ws_ping_interval: u64,

    /// Seconds a /ws peer has to answer a ping; one that does not (dead, or not reading its
    /// replies) is closed with 1008.
    #[arg(long, env = "DDFR_WS_PONG_TIMEOUT", default_value_t = ddfr_server::config::WS_PONG_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ws_pong_timeout: u64,

    /// Seconds a /ws connection may go without sending a frame before it is closed with 1000
    /// (0: never, the default; pings still drop dead peers).
    #[arg(long, env = "DDFR_WS_IDLE_TIMEOUT", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub ws_idle_timeout: u64,

    /// Seconds a new connection may take to send its first request head before it is dropped
    /// (Slowloris and silent sockets).
    #[arg(long, env = "DDFR_REQUEST_HEAD_TIMEOUT", default_value_t = ddfr_server::config::REQUEST_HEAD_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=300))]
    pub request_head_timeout: u64,

    /// MQTT broker for home-automation events, `mqtt://[user:pass@]host:port` or `mqtts://...`
    /// (TLS with the system's root certificates). Events go to `<prefix>/events`, presence and
    /// cameras to retained state topics, Home Assistant discovery configs under
    /// DDFR_HA_DISCOVERY_PREFIX. Off when unset. Prefer the variable when it holds a password.
    #[arg(long, env = "DDFR_MQTT_URL", hide_env_values = true)]
    pub mqtt_url: Option<String>,

    /// Topic prefix of every MQTT topic ddfr publishes (`<prefix>/events`, `<prefix>/status`,
    /// ...); also names this server in Home Assistant ids.
    #[arg(long, env = "DDFR_MQTT_PREFIX", default_value = "ddfr")]
    pub mqtt_prefix: String,

    /// Extra PEM root certificate(s) trusted for `mqtts://` (a private CA).
    #[arg(long, env = "DDFR_MQTT_CA_FILE")]
    pub mqtt_ca_file: Option<PathBuf>,

    /// Home Assistant MQTT discovery prefix; empty turns discovery off.
    #[arg(long, env = "DDFR_HA_DISCOVERY_PREFIX", default_value = "homeassistant")]
    pub ha_discovery_prefix: String,

    /// URL each event's JSON is POSTed to (`http://` or `https://`), signed with
    /// DDFR_WEBHOOK_SECRET in `X-DDFR-Signature`, retried with back-off; redirects are not
    /// followed. Off when unset.
    #[arg(long, env = "DDFR_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// The HMAC-SHA256 key of the webhook signature (required with DDFR_WEBHOOK_URL). Prefer
    /// the variable to the flag.
    #[arg(long, env = "DDFR_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// How long a face must stay unidentified before an `unknown` event (e.g. `3s`,
    /// `1500ms`; a bare number is seconds).
    #[arg(long, env = "DDFR_UNKNOWN_EVENT_DELAY", default_value = "3s", value_parser = parse_duration)]
    pub unknown_event_delay: Duration,

    /// How long a person must go unseen on every camera to be away (e.g. `5m`, `300s`).
    #[arg(long, env = "DDFR_AWAY_AFTER", default_value = "5m", value_parser = parse_duration)]
    pub away_after: Duration,

    /// Log format on stdout: `text` or `json`. Verbosity follows RUST_LOG (default `info`).
    #[arg(long, env = "DDFR_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(|u| ddfr_store::DatabaseUrl::new(u).redacted()),
            )
            .field("encryption_key_file", &self.encryption_key_file)
            .field("api_token", &self.api_token.as_ref().map(|_| "***"))
            .field("recognize_token", &self.recognize_token.as_ref().map(|_| "***"))
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("match_threshold", &self.match_threshold)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allowed_origins", &self.allowed_origins)
            .field("cors_origins", &self.cors_origins)
            .field("ws_max_message_bytes", &self.ws_max_message_bytes)
            .field("max_frame_side", &self.max_frame_side)
            .field("max_frame_pixels", &self.max_frame_pixels)
            .field("max_decode_ms", &self.max_decode_ms)
            .field("web_dir", &self.web_dir)
            .field("workers", &self.workers)
            .field("strict_enrollment", &self.strict_enrollment)
            .field("unknown_visitors", &self.unknown_visitors)
            .field("unknown_retention_days", &self.unknown_retention_days)
            .field("retention_days", &self.retention_days)
            .field("require_consent", &self.require_consent)
            .field("privacy_notice_version", &self.privacy_notice_version)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_key", &self.max_connections_per_key)
            .field("ws_max_fps", &self.ws_max_fps)
            .field("ws_ping_interval", &self.ws_ping_interval)
            .field("ws_pong_timeout", &self.ws_pong_timeout)
            .field("ws_idle_timeout", &self.ws_idle_timeout)
            .field("request_head_timeout", &self.request_head_timeout)
            .field(
                "mqtt_url",
                &self.mqtt_url.as_ref().map(|u| u.parse::<MqttUrl>().map_err(|_| "(invalid)")),
            )
            .field("mqtt_prefix", &self.mqtt_prefix)
            .field("mqtt_ca_file", &self.mqtt_ca_file)
            .field("ha_discovery_prefix", &self.ha_discovery_prefix)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "***"))
            .field("unknown_event_delay", &self.unknown_event_delay)
            .field("away_after", &self.away_after)
            .finish()
    }
}

impl ServeArgs {
    /// Checks every value, explaining what is wrong.
    pub fn validate(&self) -> Result<()> {
        if let Some(threshold) = self.match_threshold
            && !(-1.0..=1.0).contains(&threshold)
        {
            bail!("DDFR_MATCH_THRESHOLD must be a cosine similarity in [-1, 1], got {threshold}");
        }
        if self.workers == Some(0) {
            bail!("DDFR_WORKERS must be at least 1");
        }
        let notice = self.privacy_notice_version.trim();
        if notice.is_empty() || notice.chars().count() > 64 || notice.chars().any(char::is_control)
        {
            bail!("DDFR_PRIVACY_NOTICE_VERSION must be 1 to 64 printable characters");
        }
        if let Some(token) = &self.api_token
            && (token.trim().is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            bail!("DDFR_API_TOKEN must be non-empty printable ASCII without spaces");
        }
        if let Some(key) = &self.recognize_token {
            if key.trim().is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                bail!("DDFR_RECOGNIZE_TOKEN must be non-empty printable ASCII without spaces");
            }
            if self.api_token.as_deref().map(str::trim) == Some(key.trim()) {
                bail!("DDFR_RECOGNIZE_TOKEN must differ from DDFR_API_TOKEN");
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bail!("DDFR_TLS_CERT is set but DDFR_TLS_KEY is not: give both"),
            (None, Some(_)) => bail!("DDFR_TLS_KEY is set but DDFR_TLS_CERT is not: give both"),
            _ => {}
        }
        for (setting, origins) in [
            ("DDFR_ALLOWED_ORIGINS", &self.allowed_origins),
            ("DDFR_CORS_ORIGINS", &self.cors_origins),
        ] {
            for origin in origins {
                let rest =
                    origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
                if rest.is_none_or(|rest| rest.is_empty() || rest.contains('/')) {
                    bail!(
                        "{setting} entries must look like http://host:port (scheme, host and \
                         optional port, no path), got {origin:?}"
                    );
                }
            }
        }
        self.events_config()?;
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!("DDFR_LOG_FORMAT must be text or json, got {:?}", self.log_format);
        }
        Ok(())
    }

    /// The home-automation events settings, checked: the broker URL, topic prefixes without
    /// MQTT wildcards, a webhook URL with its secret.
    pub fn events_config(&self) -> Result<EventsConfig> {
        let topic_ok = |topic: &str| {
            !topic.contains(['+', '#', '\0'])
                && !topic.starts_with('/')
                && !topic.ends_with('/')
                && !topic.contains("//")
        };
        let mqtt = match &self.mqtt_url {
            None => None,
            Some(url) => {
                let url: MqttUrl = url.parse()?;
                let prefix = self.mqtt_prefix.trim();
                if prefix.is_empty() || !topic_ok(prefix) {
                    bail!(
                        "DDFR_MQTT_PREFIX must be a non-empty MQTT topic without + or # and \
                         without a leading or trailing /, got {prefix:?}"
                    );
                }
                let discovery = self.ha_discovery_prefix.trim();
                if !discovery.is_empty() && !topic_ok(discovery) {
                    bail!(
                        "DDFR_HA_DISCOVERY_PREFIX must be an MQTT topic without + or # (or empty \
                         to turn discovery off), got {discovery:?}"
                    );
                }
                let ca_pem = match &self.mqtt_ca_file {
                    Some(path) => Some(std::fs::read(path).map_err(|error| {
                        anyhow::anyhow!("reading DDFR_MQTT_CA_FILE {}: {error}", path.display())
                    })?),
                    None => None,
                };
                let mut config = MqttConfig::new(url);
                config.prefix = prefix.to_owned();
                config.discovery_prefix = (!discovery.is_empty()).then(|| discovery.to_owned());
                config.ca_pem = ca_pem;
                Some(config)
            }
        };
        let webhook = match &self.webhook_url {
            None => None,
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("DDFR_WEBHOOK_URL must start with http:// or https://, got {url:?}");
                }
                let Some(secret) = self.webhook_secret.as_deref().filter(|s| !s.trim().is_empty())
                else {
                    bail!("DDFR_WEBHOOK_URL needs DDFR_WEBHOOK_SECRET: every webhook is signed");
                };
                Some(WebhookConfig::new(url.clone(), secret.trim()))
            }
        };
        Ok(EventsConfig {
            unknown_delay: self.unknown_event_delay,
            away_after: self.away_after,
            mqtt,
            webhook,
            ..EventsConfig::default()
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// Inference workers: the flag, else the number of cores.
    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    /// The database URL: the setting, else the SQLite file in the data dir.
    pub fn database_url(&self) -> ddfr_store::DatabaseUrl {
        match &self.database_url {
            Some(url) => ddfr_store::DatabaseUrl::new(url.clone()),
            None => ddfr_store::DatabaseUrl::new(format!(
                "sqlite:{}",
                self.data_dir.join(ddfr_store::SQLITE_FILE_NAME).display()
            )),
        }
    }

    /// How to open the store: with the key of DDFR_ENCRYPTION_KEY_FILE, if set.
    pub fn store_options(&self) -> Result<ddfr_store::StoreOptions> {
        store_options(self.encryption_key_file.as_deref())
    }

    /// The web app directory: the setting, else `web/dist` in the working directory or in
    /// the checkout the binary was built in.
    pub fn web_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.web_dir {
            return Some(dir.clone());
        }
        let mut candidates = vec![PathBuf::from("web/dist")];
        if let Ok(exe) = std::env::current_exe()
            && let Some(checkout) = exe.parent().and_then(Path::parent).and_then(Path::parent)
        {
            candidates.push(checkout.join("web/dist"));
        }
        candidates.into_iter().find(|dir| dir.join("index.html").is_file())
    }
}

/// Store options with the key in `key_file` (read and checked here, so a bad key file stops
/// the command before the database is opened).
pub fn store_options(key_file: Option<&Path>) -> Result<ddfr_store::StoreOptions> {
    let Some(path) = key_file else {
        return Ok(ddfr_store::StoreOptions::default());
    };
    let key = ddfr_store::EncryptionKey::from_file(path)?;
    Ok(ddfr_store::StoreOptions::encrypted(key))
}

/// A store error with what to do about it when that is a setting: an encrypted database
/// opened without a key names the key-file setting.
pub fn explain_store_error(error: ddfr_store::StoreError) -> anyhow::Error {
    match error {
        ddfr_store::StoreError::EncryptionKeyRequired => anyhow::Error::new(error)
            .context("set DDFR_ENCRYPTION_KEY_FILE (--encryption-key-file) to its key file"),
        other => other.into(),
    }
}

/// A duration such as `3s`, `1500ms`, `5m` or `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 =
        number.parse().map_err(|_| format!("expected a duration like 3s or 5m, got {text:?}"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("duration out of range: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "s", "3 days", "-1s", "1e999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
