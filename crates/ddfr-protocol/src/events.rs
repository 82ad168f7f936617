//! Home-automation events (MQTT and webhooks), camera names, and their state in
//! `GET /api/health` and `GET /api/events/status`.

use serde::{Deserialize, Serialize};

use crate::date::Timestamp;

/// What happened to a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A track was confirmed as an enrolled person.
    Recognized,
    /// A face stayed unidentified for the configured delay.
    Unknown,
    /// A track that was announced (`recognized` or `unknown`) ended.
    Left,
}

impl EventKind {
    /// The `type` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recognized => "recognized",
            Self::Unknown => "unknown",
            Self::Left => "left",
        }
    }
}

/// One event, once per track and kind: `{"type": "recognized", "camera": "door", "track_id":
/// 3, "person_id": 7, "name": "Ada", "surname": "Lovelace", "at": "2026-01-01T08:00:00.000Z"}`.
/// An unknown face has `person_id` and `surname` null and `name` `"Unknown"`, as in a frame
/// reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// `recognized`, `unknown` or `left`.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The camera (`/ws?camera=`) the track was seen on.
    pub camera: String,
    /// The track, unique within one `/ws` connection.
    pub track_id: u64,
    /// The enrolled person, or null for an unknown face.
    pub person_id: Option<i64>,
    /// The person's first name, or `"Unknown"`.
    pub name: String,
    /// The person's surname, or null for an unknown face.
    pub surname: Option<String>,
    /// When it happened (RFC 3339, UTC).
    pub at: Timestamp,
}

/// Longest camera name, in characters.
pub const MAX_CAMERA_NAME_CHARS: usize = 64;

/// The camera of a `/ws` connection that names none.
pub const DEFAULT_CAMERA: &str = "default";

/// Whether `name` is a valid camera name: 1 to [`MAX_CAMERA_NAME_CHARS`] characters from
/// `A-Z a-z 0-9 _ -` (safe in MQTT topics, Home Assistant ids and URLs as they are).
pub fn is_valid_camera_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CAMERA_NAME_CHARS
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A camera with open `/ws` connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CameraView {
    /// The camera name.
    pub name: String,
    /// Open `/ws` connections streaming it.
    pub connections: u64,
}

/// The MQTT publisher's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MqttHealth {
    /// Whether `DDFR_MQTT_URL` is set.
    pub configured: bool,
    /// Whether the broker accepted the connection and it is up now.
    pub connected: bool,
    /// Messages handed to the MQTT client (events, states, discovery configs).
    pub published: u64,
    /// Messages dropped because the publish queue was full (broker down or slow).
    pub dropped: u64,
    /// Connections (re)established since start.
    pub connects: u64,
}

/// The webhook sender's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookHealth {
    /// Whether `DDFR_WEBHOOK_URL` is set.
    pub configured: bool,
    /// Events the receiver answered with a 2xx.
    pub delivered: u64,
    /// Attempts that failed (non-2xx answer, timeout, refused connection), retried or not.
    pub failed_attempts: u64,
    /// Events given up after the last retry.
    pub gave_up: u64,
    /// Events dropped because the send queue was full.
    pub dropped: u64,
}

/// Events in `GET /api/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventsHealth {
    /// Events produced so far (every kind).
    pub events: u64,
    /// Frames' track updates dropped because the event queue was full (never delays `/ws`).
    pub dropped_updates: u64,
    /// MQTT.
    pub mqtt: MqttHealth,
    /// Webhook.
    pub webhook: WebhookHealth,
}

/// `GET /api/events/status`: connection states and the latest events, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventsStatus {
    /// Counters and connection states.
    pub health: EventsHealth,
    /// Cameras with open connections.
    pub cameras: Vec<CameraView>,
    /// The latest events, newest first (a few dozen at most).
    pub recent: Vec<Event>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_has_exactly_the_documented_shape() {
        let event = Event {
            kind: EventKind::Unknown,
            camera: "door".into(),
            track_id: 4,
            person_id: None,
            name: "Unknown".into(),
            surname: None,
            at: Timestamp::from_unix_millis(1_767_254_400_000),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "unknown", "camera": "door", "track_id": 4,
                "person_id": null, "name": "Unknown", "surname": null,
                "at": "2026-01-01T08:00:00.000Z"})
        );
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn camera_names_are_short_and_topic_safe() {
        for good in ["default", "door", "Back_Yard-2", &"a".repeat(64)] {
            assert!(is_valid_camera_name(good), "{good}");
        }
        for bad in ["", "front door", "a/b", "a+b", "#", "caméra", "x%20", &"a".repeat(65)] {
            assert!(!is_valid_camera_name(bad), "{bad}");
        }
    }
}
