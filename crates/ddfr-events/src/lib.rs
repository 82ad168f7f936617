//! Home-automation events from face tracks: who just arrived, who is home.
//!
//! The `/ws` loop hands each frame's tracker decisions to a [`CameraFeed`] (a non-blocking
//! `try_send` into a bounded queue: the frame path never waits). One hub task turns them into
//! events, at most one `recognized`, one `unknown` and one `left` per track ([`TrackEvents`]),
//! keeps per-person presence ([`Presence`]: home while seen on any camera, away after
//! `away_after`), and fans out to:
//! - MQTT ([`MqttConfig`]): events on `<prefix>/events`, retained per-person and per-camera
//!   states, an availability topic with an `offline` last will, Home Assistant discovery
//!   configs ([`discovery`]), reconnection with back-off;
//! - a webhook ([`WebhookConfig`]): the event JSON POSTed, HMAC-SHA256 signed, retried;
//! - the recent-events list of `GET /api/events/status`.
//!
//! Every queue is bounded and what does not fit is dropped and counted ([`Events::health`]).
//!
//! Architecture invariant: never on the frame path (feeding it never awaits and never blocks
//! on IO); serves no HTTP (it is a webhook *client* only); the decision logic
//! ([`TrackEvents`], [`Presence`], [`discovery`]) is plain data with the time passed in, so it
//! is unit-tested without a broker or a clock.

pub mod counters;
pub mod discovery;
mod hub;
pub mod mqtt;
pub mod presence;
pub mod tracks;
pub mod webhook;

pub use discovery::{PersonLabel, Topics};
pub use hub::{
    CameraFeed, Clock, Events, EventsConfig, MqttConfig, PersonDirectory, RECENT_EVENTS,
    SystemClock,
};
pub use mqtt::MqttUrl;
pub use presence::{Presence, PresenceChange};
pub use tracks::{TrackEvent, TrackEvents, TrackSeen};
pub use webhook::{SIGNATURE_HEADER, WebhookConfig, sign};

/// Why the events could not start.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// `DDFR_MQTT_URL` is not a broker URL.
    #[error(
        "invalid DDFR_MQTT_URL: {reason} (expected mqtt://[user:pass@]host:port or mqtts://...)"
    )]
    InvalidMqttUrl {
        /// What is wrong.
        reason: &'static str,
    },
    /// The CA file holds no usable PEM certificate.
    #[error("the MQTT CA file holds an invalid PEM certificate")]
    InvalidCaFile,
    /// rustls refused the TLS settings.
    #[error("cannot set up TLS for MQTT")]
    Tls {
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
    /// The webhook HTTP client could not be built.
    #[error("cannot build the webhook HTTP client")]
    HttpClient {
        /// The reqwest error.
        #[source]
        source: reqwest::Error,
    },
}
