//! MQTT topics and Home Assistant discovery payloads (pure functions).
//!
//! Topics carry ids (person ids, camera names), never person names. Under the base prefix
//! (`DDFR_MQTT_PREFIX`, default `ddfr`):
//!
//! | topic | retained | payload |
//! |---|---|---|
//! | `ddfr/status` | yes | `online`, or `offline` (the last will) |
//! | `ddfr/events` | no | every event's JSON |
//! | `ddfr/person/<id>/presence` | yes | `home` or `not_home` |
//! | `ddfr/person/<id>/last_seen` | yes | RFC 3339 time of the last sighting |
//! | `ddfr/camera/<name>/state` | yes | `{"in_view": "Ada Lovelace", "person_ids": [7], "count": 1, "unknown": 0}` |
//! | `ddfr/camera/<name>/event` | no | `{"event_type": "recognized", ...event}` for arrivals |
//!
//! Discovery configs (retained) go to `<discovery prefix>/<component>/<node id>/<object>/config`,
//! following Home Assistant's MQTT discovery schema: a `device_tracker` (home/not_home,
//! `source_type` `router`, usable in the Person integration) and a `timestamp` sensor per
//! person, a "who is in view" `sensor` and an `event` entity per camera; each with a
//! `unique_id`, a `device` block and the availability topic. An empty retained payload on a
//! config topic removes the entity.

use ddfr_core::PersonId;
use serde_json::{Value, json};

/// Payload of the availability topic while ddfr is connected.
pub const ONLINE: &str = "online";
/// Payload of the availability topic after ddfr went away (the last will).
pub const OFFLINE: &str = "offline";
/// Presence payload of a person seen recently.
pub const HOME: &str = "home";
/// Presence payload of a person not seen for `DDFR_AWAY_AFTER`.
pub const NOT_HOME: &str = "not_home";
/// The camera state's `in_view` text when nobody is in view (Home Assistant ignores an empty
/// sensor state).
pub const NOBODY: &str = "nobody";
/// The `event_types` of a camera's arrival event entity.
pub const ARRIVAL_EVENT_TYPES: [&str; 2] = ["recognized", "unknown"];

/// Where things are published: the base prefix, the discovery prefix (if discovery is on) and
/// the node id that keeps several ddfr servers on one broker apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
    discovery_prefix: Option<String>,
    node_id: String,
    version: String,
}

/// A person as the entities show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonLabel {
    /// The person's id.
    pub id: PersonId,
    /// First name.
    pub name: String,
    /// Surname.
    pub surname: String,
}

impl PersonLabel {
    /// "Name Surname".
    pub fn display_name(&self) -> String {
        format!("{} {}", self.name, self.surname).trim().to_owned()
    }
}

/// A discovery message: its topic and retained payload (empty removes the entity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMessage {
    /// `<discovery prefix>/<component>/<node id>/<object id>/config`.
    pub topic: String,
    /// The JSON config, or empty to remove.
    pub payload: String,
}

impl Topics {
    /// Topics under `prefix`; discovery under `discovery_prefix` unless it is `None`.
    /// `version` is ddfr's, for the discovery `origin` block.
    pub fn new(prefix: &str, discovery_prefix: Option<&str>, version: &str) -> Self {
        let prefix = prefix.trim_end_matches('/').to_owned();
        let node_id: String = prefix
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
            .collect();
        Self {
            prefix,
            discovery_prefix: discovery_prefix
                .map(|p| p.trim_end_matches('/').to_owned())
                .filter(|p| !p.is_empty()),
            node_id,
            version: version.to_owned(),
        }
    }

    /// The node id: the prefix made safe for Home Assistant ids.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Whether Home Assistant discovery is on.
    pub fn discovery_on(&self) -> bool {
        self.discovery_prefix.is_some()
    }

    /// `<prefix>/status`.
    pub fn availability(&self) -> String {
        format!("{}/status", self.prefix)
    }

    /// `<prefix>/events`.
    pub fn events(&self) -> String {
        format!("{}/events", self.prefix)
    }

    /// `<prefix>/person/<id>/presence`.
    pub fn person_presence(&self, person: PersonId) -> String {
        format!("{}/person/{}/presence", self.prefix, person.0)
    }

    /// `<prefix>/person/<id>/last_seen`.
    pub fn person_last_seen(&self, person: PersonId) -> String {
        format!("{}/person/{}/last_seen", self.prefix, person.0)
    }

    /// `<prefix>/camera/<name>/state`.
    pub fn camera_state(&self, camera: &str) -> String {
        format!("{}/camera/{camera}/state", self.prefix)
    }

    /// `<prefix>/camera/<name>/event`.
    pub fn camera_event(&self, camera: &str) -> String {
        format!("{}/camera/{camera}/event", self.prefix)
    }

    /// `<discovery prefix>/status`, where Home Assistant announces `online` after a restart.
    pub fn ha_status(&self) -> Option<String> {
        self.discovery_prefix.as_ref().map(|p| format!("{p}/status"))
    }

    /// A filter matching every person config topic of this node, to find stale ones.
    pub fn person_configs_filter(&self) -> Option<String> {
        self.discovery_prefix.as_ref().map(|p| format!("{p}/+/{}/+/config", self.node_id))
    }

    /// The person whose config `topic` is, if it is one of this node's person configs.
    pub fn person_of_config_topic(&self, topic: &str) -> Option<PersonId> {
        let discovery = self.discovery_prefix.as_ref()?;
        let rest = topic.strip_prefix(discovery.as_str())?.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let (_component, node, object, config) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if node != self.node_id || config != "config" || parts.next().is_some() {
            return None;
        }
        let id = object.strip_prefix("person_")?;
        let id = id.split('_').next()?;
        id.parse().ok().map(PersonId)
    }

    fn config_topic(&self, component: &str, object_id: &str) -> Option<String> {
        let discovery = self.discovery_prefix.as_ref()?;
        Some(format!("{discovery}/{component}/{}/{object_id}/config", self.node_id))
    }

    fn common(&self, unique_id: String, device: Value) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        map.insert("unique_id".into(), json!(unique_id));
        map.insert("availability_topic".into(), json!(self.availability()));
        map.insert("payload_available".into(), json!(ONLINE));
        map.insert("payload_not_available".into(), json!(OFFLINE));
        map.insert("device".into(), device);
        map.insert("origin".into(), json!({"name": "ddfr", "sw_version": self.version}));
        map
    }

    fn person_device(&self, person: &PersonLabel) -> Value {
        json!({
            "identifiers": [format!("{}_person_{}", self.node_id, person.id.0)],
            "name": person.display_name(),
            "manufacturer": "ddfr",
            "model": "Enrolled person",
            "sw_version": self.version,
        })
    }

    fn camera_device(&self, camera: &str) -> Value {
        json!({
            "identifiers": [format!("{}_camera_{camera}", self.node_id)],
            "name": format!("ddfr camera {camera}"),
            "manufacturer": "ddfr",
            "model": "Camera stream",
            "sw_version": self.version,
        })
    }

    /// A person's entities: the presence `device_tracker` and the "last seen" sensor. Empty
    /// when discovery is off.
    pub fn person_configs(&self, person: &PersonLabel) -> Vec<ConfigMessage> {
        let id = person.id.0;
        let node = &self.node_id;
        let mut messages = Vec::new();
        if let Some(topic) = self.config_topic("device_tracker", &format!("person_{id}")) {
            let mut config =
                self.common(format!("{node}_person_{id}_presence"), self.person_device(person));
            // A null name: the entity is named after its device, the person.
            config.insert("name".into(), Value::Null);
            config.insert("state_topic".into(), json!(self.person_presence(person.id)));
            config.insert("payload_home".into(), json!(HOME));
            config.insert("payload_not_home".into(), json!(NOT_HOME));
            config.insert("source_type".into(), json!("router"));
            config.insert("icon".into(), json!("mdi:account"));
            messages.push(ConfigMessage { topic, payload: Value::Object(config).to_string() });
        }
        if let Some(topic) = self.config_topic("sensor", &format!("person_{id}_last_seen")) {
            let mut config =
                self.common(format!("{node}_person_{id}_last_seen"), self.person_device(person));
            config.insert("name".into(), json!("Last seen"));
            config.insert("state_topic".into(), json!(self.person_last_seen(person.id)));
            config.insert("device_class".into(), json!("timestamp"));
            config.insert("icon".into(), json!("mdi:eye-check"));
            messages.push(ConfigMessage { topic, payload: Value::Object(config).to_string() });
        }
        messages
    }

    /// The empty retained configs that remove a person's entities.
    pub fn person_removals(&self, person: PersonId) -> Vec<ConfigMessage> {
        let id = person.0;
        [("device_tracker", format!("person_{id}")), ("sensor", format!("person_{id}_last_seen"))]
            .into_iter()
            .filter_map(|(component, object)| self.config_topic(component, &object))
            .map(|topic| ConfigMessage { topic, payload: String::new() })
            .collect()
    }

    /// A camera's entities: the "who is in view" sensor and the arrival `event`.
    pub fn camera_configs(&self, camera: &str) -> Vec<ConfigMessage> {
        let node = &self.node_id;
        let mut messages = Vec::new();
        if let Some(topic) = self.config_topic("sensor", &format!("camera_{camera}_in_view")) {
            let mut config =
                self.common(format!("{node}_camera_{camera}_in_view"), self.camera_device(camera));
            config.insert("name".into(), json!("In view"));
            config.insert("state_topic".into(), json!(self.camera_state(camera)));
            config.insert("value_template".into(), json!("{{ value_json.in_view }}"));
            config.insert("json_attributes_topic".into(), json!(self.camera_state(camera)));
            config.insert("icon".into(), json!("mdi:account-eye"));
            messages.push(ConfigMessage { topic, payload: Value::Object(config).to_string() });
        }
        if let Some(topic) = self.config_topic("event", &format!("camera_{camera}_arrival")) {
            let mut config =
                self.common(format!("{node}_camera_{camera}_arrival"), self.camera_device(camera));
            config.insert("name".into(), json!("Arrival"));
            config.insert("state_topic".into(), json!(self.camera_event(camera)));
            config.insert("event_types".into(), json!(ARRIVAL_EVENT_TYPES));
            config.insert("icon".into(), json!("mdi:door-open"));
            messages.push(ConfigMessage { topic, payload: Value::Object(config).to_string() });
        }
        messages
    }
}

/// The camera state payload: who is in view (names for the sensor, ids for automations).
pub fn camera_state_payload(persons: &[PersonLabel], unknown: usize) -> String {
    let names: Vec<String> = persons.iter().map(PersonLabel::display_name).collect();
    let in_view = if names.is_empty() && unknown == 0 {
        NOBODY.to_owned()
    } else {
        let mut all = names.clone();
        if unknown > 0 {
            all.push(format!("{unknown} unknown"));
        }
        all.join(", ")
    };
    json!({
        "in_view": in_view,
        "person_ids": persons.iter().map(|p| p.id.0).collect::<Vec<_>>(),
        "names": names,
        "count": persons.len() + unknown,
        "unknown": unknown,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys Home Assistant's MQTT discovery accepts for every entity we publish (the base
    /// entity options), per component the keys its platform schema adds; anything else would
    /// make Home Assistant refuse the config.
    const BASE_KEYS: &[&str] = &[
        "name",
        "unique_id",
        "availability_topic",
        "payload_available",
        "payload_not_available",
        "device",
        "origin",
        "icon",
        "state_topic",
        "value_template",
        "json_attributes_topic",
    ];
    const DEVICE_TRACKER_KEYS: &[&str] = &["payload_home", "payload_not_home", "source_type"];
    const SENSOR_KEYS: &[&str] = &["device_class"];
    const EVENT_KEYS: &[&str] = &["event_types", "device_class"];
    /// Home Assistant's device tracker source types.
    const SOURCE_TYPES: &[&str] = &["gps", "router", "bluetooth", "bluetooth_le"];
    /// Home Assistant's event device classes.
    const EVENT_DEVICE_CLASSES: &[&str] = &["button", "doorbell", "motion"];
    /// The sensor device classes we may use (a subset of Home Assistant's).
    const SENSOR_DEVICE_CLASSES: &[&str] = &["timestamp", "enum"];

    fn topics() -> Topics {
        Topics::new("ddfr", Some("homeassistant"), "0.1.0")
    }

    fn ada() -> PersonLabel {
        PersonLabel { id: PersonId(7), name: "Ada".into(), surname: "Lovelace".into() }
    }

    fn parse(message: &ConfigMessage) -> serde_json::Map<String, Value> {
        match serde_json::from_str::<Value>(&message.payload).unwrap() {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// The checks every discovery config must pass, whatever its component.
    fn check_common(component: &str, config: &serde_json::Map<String, Value>) {
        let extra: &[&str] = match component {
            "device_tracker" => DEVICE_TRACKER_KEYS,
            "sensor" => SENSOR_KEYS,
            "event" => EVENT_KEYS,
            other => panic!("unexpected component {other}"),
        };
        for key in config.keys() {
            assert!(
                BASE_KEYS.contains(&key.as_str()) || extra.contains(&key.as_str()),
                "{component}: key {key} is not in Home Assistant's schema"
            );
        }
        assert!(config.contains_key("name"), "{component}: name (null or text) is set");
        let unique_id = config["unique_id"].as_str().unwrap();
        assert!(!unique_id.is_empty());
        assert!(config["state_topic"].as_str().unwrap().starts_with("ddfr/"));
        assert_eq!(config["availability_topic"], "ddfr/status");
        assert_eq!(config["payload_available"], ONLINE);
        assert_eq!(config["payload_not_available"], OFFLINE);
        let device = config["device"].as_object().unwrap();
        let identifiers = device["identifiers"].as_array().unwrap();
        assert!(!identifiers.is_empty(), "a device needs identifiers to be registered");
        assert!(device["name"].as_str().is_some_and(|n| !n.is_empty()));
        assert!(config["origin"]["name"].as_str().is_some(), "origin.name is required");
    }

    #[test]
    fn person_configs_follow_the_device_tracker_and_sensor_schemas() {
        let messages = topics().person_configs(&ada());
        assert_eq!(messages.len(), 2);
        let tracker = &messages[0];
        assert_eq!(tracker.topic, "homeassistant/device_tracker/ddfr/person_7/config");
        let config = parse(tracker);
        check_common("device_tracker", &config);
        assert_eq!(config["name"], Value::Null, "named after the device, the person");
        assert_eq!(config["state_topic"], "ddfr/person/7/presence");
        assert_eq!(config["payload_home"], HOME);
        assert_eq!(config["payload_not_home"], NOT_HOME);
        assert!(SOURCE_TYPES.contains(&config["source_type"].as_str().unwrap()));
        assert_eq!(config["device"]["name"], "Ada Lovelace");

        let sensor = &messages[1];
        assert_eq!(sensor.topic, "homeassistant/sensor/ddfr/person_7_last_seen/config");
        let config = parse(sensor);
        check_common("sensor", &config);
        assert_eq!(config["device_class"], "timestamp");
        assert!(SENSOR_DEVICE_CLASSES.contains(&config["device_class"].as_str().unwrap()));
        assert_eq!(config["state_topic"], "ddfr/person/7/last_seen");
        // The person's entities share one device; unique ids differ.
        let tracker = parse(&messages[0]);
        assert_eq!(tracker["device"]["identifiers"], config["device"]["identifiers"]);
        assert_ne!(tracker["unique_id"], config["unique_id"]);
        // No name in any topic: ids only.
        for message in &messages {
            assert!(!message.topic.contains("Ada") && !message.topic.contains("Lovelace"));
        }
    }

    #[test]
    fn camera_configs_follow_the_sensor_and_event_schemas() {
        let messages = topics().camera_configs("door");
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].topic, "homeassistant/sensor/ddfr/camera_door_in_view/config");
        let sensor = parse(&messages[0]);
        check_common("sensor", &sensor);
        assert_eq!(sensor["state_topic"], "ddfr/camera/door/state");
        assert_eq!(sensor["value_template"], "{{ value_json.in_view }}");

        assert_eq!(messages[1].topic, "homeassistant/event/ddfr/camera_door_arrival/config");
        let event = parse(&messages[1]);
        check_common("event", &event);
        let types = event["event_types"].as_array().unwrap();
        assert_eq!(types, &vec![json!("recognized"), json!("unknown")]);
        if let Some(class) = event.get("device_class") {
            assert!(EVENT_DEVICE_CLASSES.contains(&class.as_str().unwrap()));
        }
    }

    #[test]
    fn a_deleted_person_gets_empty_retained_configs_on_the_same_topics() {
        let t = topics();
        let configs: Vec<String> = t.person_configs(&ada()).into_iter().map(|m| m.topic).collect();
        let removals = t.person_removals(PersonId(7));
        assert_eq!(removals.iter().map(|m| m.topic.clone()).collect::<Vec<_>>(), configs);
        assert!(removals.iter().all(|m| m.payload.is_empty()));
        for topic in &configs {
            assert_eq!(t.person_of_config_topic(topic), Some(PersonId(7)));
        }
        assert_eq!(
            t.person_of_config_topic("homeassistant/sensor/ddfr/camera_door_in_view/config"),
            None
        );
        assert_eq!(t.person_of_config_topic("homeassistant/sensor/other/person_7/config"), None);
    }

    #[test]
    fn an_empty_discovery_prefix_turns_discovery_off() {
        let t = Topics::new("ddfr", Some(""), "0.1.0");
        assert!(!t.discovery_on());
        assert!(t.person_configs(&ada()).is_empty());
        assert!(t.camera_configs("door").is_empty());
        assert!(t.person_removals(PersonId(1)).is_empty());
        assert_eq!(t.ha_status(), None);
        assert_eq!(t.events(), "ddfr/events");
    }

    #[test]
    fn camera_state_names_who_is_in_view() {
        let state: Value = serde_json::from_str(&camera_state_payload(&[ada()], 2)).unwrap();
        assert_eq!(state["in_view"], "Ada Lovelace, 2 unknown");
        assert_eq!(state["person_ids"], json!([7]));
        assert_eq!(state["count"], 3);
        let empty: Value = serde_json::from_str(&camera_state_payload(&[], 0)).unwrap();
        assert_eq!(empty["in_view"], NOBODY);
        assert_eq!(empty["count"], 0);
    }
}
