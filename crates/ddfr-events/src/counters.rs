//! The counters `/api/health` reports: what was produced, delivered, dropped and failed.

use std::sync::atomic::{AtomicU64, Ordering};

use ddfr_protocol::{EventsHealth, MqttHealth, WebhookHealth};

/// Shared by the hub, the MQTT link and the webhook sender; read by the health route.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events produced.
    pub events: AtomicU64,
    /// Frame updates dropped because the hub's queue was full.
    pub dropped_updates: AtomicU64,
    /// Messages handed to the MQTT client.
    pub mqtt_published: AtomicU64,
    /// Messages dropped because the MQTT queue was full.
    pub mqtt_dropped: AtomicU64,
    /// Broker connections established.
    pub mqtt_connects: AtomicU64,
    /// Webhook events answered with a 2xx.
    pub webhook_delivered: AtomicU64,
    /// Webhook attempts that failed.
    pub webhook_failed_attempts: AtomicU64,
    /// Webhook events given up after the last attempt.
    pub webhook_gave_up: AtomicU64,
    /// Webhook events dropped because the queue was full.
    pub webhook_dropped: AtomicU64,
}

impl Counters {
    /// The health view; `connected` is the MQTT link's state now.
    pub fn health(
        &self,
        mqtt_configured: bool,
        connected: bool,
        webhook_configured: bool,
    ) -> EventsHealth {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        EventsHealth {
            events: read(&self.events),
            dropped_updates: read(&self.dropped_updates),
            mqtt: MqttHealth {
                configured: mqtt_configured,
                connected,
                published: read(&self.mqtt_published),
                dropped: read(&self.mqtt_dropped),
                connects: read(&self.mqtt_connects),
            },
            webhook: WebhookHealth {
                configured: webhook_configured,
                delivered: read(&self.webhook_delivered),
                failed_attempts: read(&self.webhook_failed_attempts),
                gave_up: read(&self.webhook_gave_up),
                dropped: read(&self.webhook_dropped),
            },
        }
    }
}
