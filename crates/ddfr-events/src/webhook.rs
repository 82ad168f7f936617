//! Webhooks: each event's JSON POSTed to `DDFR_WEBHOOK_URL`, signed with HMAC-SHA256 in
//! `X-DDFR-Signature`, from a bounded queue, retried with back-off, never following
//! redirects.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::EventsError;
use crate::counters::Counters;

/// The signature header: lowercase hex of HMAC-SHA256(secret, body).
pub const SIGNATURE_HEADER: &str = "X-DDFR-Signature";
/// The event type header (`recognized`, `unknown` or `left`), for receivers that route on it.
pub const EVENT_HEADER: &str = "X-DDFR-Event";

/// Where and how webhooks are sent.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The receiver (`http://` or `https://`).
    pub url: String,
    /// The HMAC key.
    pub secret: String,
    /// Timeout of one attempt (connect and answer).
    pub timeout: Duration,
    /// Attempts per event, the first included.
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    pub first_backoff: Duration,
    /// Events waiting to be sent at most; further ones are dropped and counted.
    pub queue_capacity: usize,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"***")
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("first_backoff", &self.first_backoff)
            .field("queue_capacity", &self.queue_capacity)
            .finish()
    }
}

impl WebhookConfig {
    /// Defaults: 5 s timeout, 5 attempts, 1 s first back-off, 256 queued events.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
            timeout: Duration::from_secs(5),
            max_attempts: 5,
            first_backoff: Duration::from_secs(1),
            queue_capacity: 256,
        }
    }
}

/// Lowercase hex HMAC-SHA256 of `body` with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// One queued event: its type and JSON body.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) kind: &'static str,
    pub(crate) body: Vec<u8>,
}

/// The sending side of the queue; never waits.
#[derive(Debug, Clone)]
pub(crate) struct WebhookQueue {
    sender: mpsc::Sender<Delivery>,
    counters: Arc<Counters>,
}

impl WebhookQueue {
    pub(crate) fn push(&self, delivery: Delivery) {
        if self.sender.try_send(delivery).is_err() {
            self.counters.webhook_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the sender task.
pub(crate) fn start(
    config: WebhookConfig,
    counters: Arc<Counters>,
) -> Result<WebhookQueue, EventsError> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .user_agent(concat!("ddfr/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| EventsError::HttpClient { source })?;
    let (sender, receiver) = mpsc::channel(config.queue_capacity.max(1));
    tokio::spawn(send_all(client, config, receiver, Arc::clone(&counters)));
    Ok(WebhookQueue { sender, counters })
}

async fn send_all(
    client: reqwest::Client,
    config: WebhookConfig,
    mut receiver: mpsc::Receiver<Delivery>,
    counters: Arc<Counters>,
) {
    while let Some(delivery) = receiver.recv().await {
        let signature = sign(config.secret.as_bytes(), &delivery.body);
        let mut backoff = config.first_backoff;
        for attempt in 1..=config.max_attempts.max(1) {
            let sent = client
                .post(&config.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, &signature)
                .header(EVENT_HEADER, delivery.kind)
                .body(delivery.body.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(response) if response.status().is_success() => None,
                Ok(response) => Some(format!("answered {}", response.status())),
                Err(error) => Some(error_text(&error)),
            };
            let Some(failure) = failure else {
                counters.webhook_delivered.fetch_add(1, Ordering::Relaxed);
                break;
            };
            counters.webhook_failed_attempts.fetch_add(1, Ordering::Relaxed);
            if attempt == config.max_attempts.max(1) {
                counters.webhook_gave_up.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(attempts = attempt, failure, "webhook given up");
                break;
            }
            tracing::debug!(attempt, failure, "webhook attempt failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
    }
}

/// The error and its sources on one line (reqwest's own text omits the cause).
fn error_text(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
