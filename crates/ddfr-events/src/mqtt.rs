//! The MQTT link: `DDFR_MQTT_URL` parsing, client options (TLS, credentials, last will), and
//! the connection task that keeps the broker connection up with back-off and reports what the
//! hub needs to know (connected, Home Assistant restarted, stale retained configs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS, Transport};
use tokio::sync::mpsc;

use crate::EventsError;
use crate::counters::Counters;

/// The default port of `mqtt://`.
pub const MQTT_PORT: u16 = 1883;
/// The default port of `mqtts://`.
pub const MQTTS_PORT: u16 = 8883;
/// Keep-alive interval: a dead broker is noticed within about one and a half of these.
pub const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// First wait before reconnecting; doubled after each failure up to the configured maximum.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Largest MQTT packet accepted or sent (discovery configs are well under 2 KB).
const MAX_PACKET_BYTES: usize = 256 * 1024;

/// A parsed `DDFR_MQTT_URL`. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttUrl {
    /// `mqtts://`: TLS with the system's root certificates.
    pub tls: bool,
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// User name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
}

impl std::fmt::Debug for MqttUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttUrl")
            .field("tls", &self.tls)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl std::str::FromStr for MqttUrl {
    type Err = EventsError;

    /// `mqtt://[user[:pass]@]host[:port]` or `mqtts://...`; user and password may be
    /// percent-encoded. No path or query.
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &'static str| EventsError::InvalidMqttUrl { reason };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else {
            return Err(invalid("the scheme must be mqtt:// or mqtts://"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(invalid("a broker URL has no path, query or fragment"));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, pass) = match userinfo.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (userinfo, None),
                };
                let user =
                    percent_decode(user).ok_or(invalid("bad percent-encoding in the user"))?;
                let pass = pass
                    .map(|p| {
                        percent_decode(p).ok_or(invalid("bad percent-encoding in the password"))
                    })
                    .transpose()?;
                (Some(user), pass)
            }
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) =
                bracketed.split_once(']').ok_or(invalid("unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("the host is missing"));
        }
        let port = match port {
            Some(port) => port.parse().map_err(|_| invalid("the port must be a number 1-65535"))?,
            None if tls => MQTTS_PORT,
            None => MQTT_PORT,
        };
        if port == 0 {
            return Err(invalid("the port must be a number 1-65535"));
        }
        Ok(Self { tls, host: host.to_owned(), port, username, password })
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The rustls client configuration for `mqtts://`: the system's root certificates (plus the
/// PEM certificates of `extra_roots_pem`, e.g. a private CA), ring as the crypto provider.
pub fn tls_config(extra_roots_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, EventsError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system certificate rustls cannot use is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(pem) = extra_roots_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|_| EventsError::InvalidCaFile)?;
            roots.add(cert).map_err(|_| EventsError::InvalidCaFile)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| EventsError::Tls { source })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The client options: credentials, TLS, keep-alive and the retained `offline` last will on
/// `availability_topic`.
pub fn client_options(
    url: &MqttUrl,
    client_id: &str,
    availability_topic: &str,
    tls: Option<rustls::ClientConfig>,
) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, url.host.clone(), url.port);
    options.set_keep_alive(KEEP_ALIVE);
    options.set_clean_session(true);
    options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    options.set_last_will(LastWill::new(
        availability_topic,
        crate::discovery::OFFLINE,
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(username) = &url.username {
        options.set_credentials(username.clone(), url.password.clone().unwrap_or_default());
    }
    if let Some(config) = tls {
        options.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(
            Arc::new(config),
        )));
    }
    options
}

/// What the connection task tells the hub.
#[derive(Debug)]
pub(crate) enum Notice {
    /// The broker accepted a (new) connection: publish everything retained again.
    Connected,
    /// A message on a subscribed topic.
    Message { topic: String, payload: Vec<u8> },
}

/// Publishes without ever waiting: a full queue (broker down or slow) drops and counts.
#[derive(Debug, Clone)]
pub(crate) struct Publisher {
    client: AsyncClient,
    counters: Arc<Counters>,
    connected: Arc<AtomicBool>,
}

impl Publisher {
    pub(crate) fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) -> bool {
        match self.client.try_publish(topic, QoS::AtLeastOnce, retain, payload.into()) {
            Ok(()) => {
                self.counters.mqtt_published.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.counters.mqtt_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub(crate) fn subscribe(&self, filter: &str) {
        if self.client.try_subscribe(filter, QoS::AtLeastOnce).is_err() {
            tracing::warn!(filter, "MQTT subscribe not queued (queue full)");
        }
    }

    /// The flag the connection task keeps: whether the broker connection is up.
    pub(crate) fn connected_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.connected)
    }
}

/// Starts the client and its connection task; returns the publisher and the notices.
pub(crate) fn start(
    options: MqttOptions,
    queue_capacity: usize,
    max_backoff: Duration,
    counters: Arc<Counters>,
) -> (Publisher, mpsc::Receiver<Notice>) {
    let (client, eventloop) = AsyncClient::new(options, queue_capacity);
    let connected = Arc::new(AtomicBool::new(false));
    let (notices, receiver) = mpsc::channel(64);
    tokio::spawn(drive_connection(
        eventloop,
        notices,
        Arc::clone(&connected),
        Arc::clone(&counters),
        max_backoff,
    ));
    (Publisher { client, counters, connected }, receiver)
}

/// Polls the event loop for ever: a failed connection is retried after a back-off that
/// doubles up to `max_backoff` and starts again from [`FIRST_BACKOFF`] once connected.
async fn drive_connection(
    mut eventloop: EventLoop,
    notices: mpsc::Sender<Notice>,
    connected: Arc<AtomicBool>,
    counters: Arc<Counters>,
    max_backoff: Duration,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0u64;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                connected.store(true, Ordering::Relaxed);
                counters.mqtt_connects.fetch_add(1, Ordering::Relaxed);
                backoff = FIRST_BACKOFF;
                tracing::info!(after_failures = failures, "MQTT connected");
                failures = 0;
                if notices.send(Notice::Connected).await.is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let notice =
                    Notice::Message { topic: publish.topic, payload: publish.payload.to_vec() };
                if let Err(mpsc::error::TrySendError::Closed(_)) = notices.try_send(notice) {
                    return;
                }
            }
            Ok(_) => {}
            Err(error) => {
                let was_connected = connected.swap(false, Ordering::Relaxed);
                failures += 1;
                if was_connected || failures == 1 {
                    tracing::warn!(%error, "MQTT connection lost; retrying with back-off");
                } else {
                    tracing::debug!(%error, failures, "MQTT connection attempt failed");
                }
                if notices.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_with_defaults_credentials_and_tls() {
        let url: MqttUrl = "mqtt://127.0.0.1:1884".parse().unwrap();
        assert_eq!((url.tls, url.host.as_str(), url.port), (false, "127.0.0.1", 1884));
        assert_eq!(url.username, None);
        let url: MqttUrl = "mqtt://broker.lan".parse().unwrap();
        assert_eq!(url.port, MQTT_PORT);
        let url: MqttUrl = "mqtts://ha:p%40ss%3Aword@broker.lan/".parse().unwrap();
        assert!(url.tls);
        assert_eq!(url.port, MQTTS_PORT);
        assert_eq!(url.username.as_deref(), Some("ha"));
        assert_eq!(url.password.as_deref(), Some("p@ss:word"));
        assert!(!format!("{url:?}").contains("p@ss"), "Debug hides the password");
        let url: MqttUrl = "mqtt://[::1]:1883".parse().unwrap();
        assert_eq!(url.host, "::1");
        for bad in [
            "http://broker",
            "mqtt://",
            "mqtt://broker:0",
            "mqtt://broker:99999",
            "mqtt://broker/topic",
            "mqtt://u:%zz@broker",
        ] {
            assert!(bad.parse::<MqttUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn options_carry_the_last_will_credentials_and_tls() {
        let url: MqttUrl = "mqtts://ha:secret@127.0.0.1:8883".parse().unwrap();
        let tls = tls_config(None).unwrap();
        let options = client_options(&url, "ddfr-test", "ddfr/status", Some(tls));
        let will = options.last_will().unwrap();
        assert_eq!(will.topic, "ddfr/status");
        assert_eq!(will.message.as_ref(), b"offline");
        assert!(will.retain);
        assert_eq!(options.credentials().map(|l| l.username), Some("ha".to_owned()));
        assert!(matches!(options.transport(), Transport::Tls(_)));
        assert!(tls_config(Some(b"-----BEGIN CERTIFICATE-----\nnot base64\n")).is_err());
    }
}
