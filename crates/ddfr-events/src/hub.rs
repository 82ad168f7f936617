//! The hub: one task that owns every connection's tracks, presence and what was published,
//! fed by `/ws` connections through a bounded queue they never wait on, and fanning events out
//! to MQTT, the webhook and the recent-events list.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ddfr_core::PersonId;
use ddfr_protocol::{CameraView, Event, EventKind, EventsHealth, EventsStatus, Timestamp};
use tokio::sync::mpsc;

use crate::EventsError;
use crate::counters::Counters;
use crate::discovery::{HOME, NOT_HOME, ONLINE, PersonLabel, Topics, camera_state_payload};
use crate::mqtt::{self, MqttUrl, Notice, Publisher};
use crate::presence::{Presence, PresenceChange};
use crate::tracks::{TrackEvent, TrackEvents, TrackSeen};
use crate::webhook::{self, Delivery, WebhookConfig, WebhookQueue};

/// Events kept for `GET /api/events/status`.
pub const RECENT_EVENTS: usize = 50;
/// How often presence, idle connections and the person list are checked.
const TICK: Duration = Duration::from_millis(250);
/// A person's retained "last seen" is refreshed at most this often while they stay in view.
const LAST_SEEN_EVERY: Duration = Duration::from_secs(60);

/// The enrolled persons, as the server's gallery knows them.
pub trait PersonDirectory: Send + Sync + std::fmt::Debug {
    /// Changes whenever a person is added, renamed or removed.
    fn version(&self) -> u64;
    /// Every enrolled person.
    fn persons(&self) -> Vec<PersonLabel>;
}

/// The time, injected so tests can move it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_unix_millis(millis)
    }
}

/// MQTT settings.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// The broker.
    pub url: MqttUrl,
    /// Topic prefix (`DDFR_MQTT_PREFIX`).
    pub prefix: String,
    /// Home Assistant discovery prefix; `None` (or empty) turns discovery off.
    pub discovery_prefix: Option<String>,
    /// Extra PEM root certificates for `mqtts://` (a private CA).
    pub ca_pem: Option<Vec<u8>>,
    /// Messages the client queues at most while the broker is slow or down.
    pub queue_capacity: usize,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
}

impl MqttConfig {
    /// Defaults: prefix `ddfr`, discovery under `homeassistant`, 1024 queued messages, 30 s
    /// longest back-off.
    pub fn new(url: MqttUrl) -> Self {
        Self {
            url,
            prefix: "ddfr".into(),
            discovery_prefix: Some("homeassistant".into()),
            ca_pem: None,
            queue_capacity: 1024,
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Everything the events need.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// How long a face must stay unidentified before `unknown` (`DDFR_UNKNOWN_EVENT_DELAY`).
    pub unknown_delay: Duration,
    /// How long without a sighting before a person is away (`DDFR_AWAY_AFTER`).
    pub away_after: Duration,
    /// A connection's tracks end (`left`) when it sent no frame for this long.
    pub idle_end: Duration,
    /// Frame updates waiting for the hub at most; further ones are dropped and counted.
    pub queue_capacity: usize,
    /// MQTT, when configured.
    pub mqtt: Option<MqttConfig>,
    /// Webhook, when configured.
    pub webhook: Option<WebhookConfig>,
}

impl Default for EventsConfig {
    /// 3 s unknown delay, away after 5 min, tracks end after 3 s without frames (the
    /// tracker's own gap), 1024 queued updates, no MQTT, no webhook.
    fn default() -> Self {
        Self {
            unknown_delay: Duration::from_secs(3),
            away_after: Duration::from_secs(300),
            idle_end: Duration::from_secs(3),
            queue_capacity: 1024,
            mqtt: None,
            webhook: None,
        }
    }
}

#[derive(Debug)]
enum Input {
    Opened {
        connection: u64,
        camera: Arc<str>,
    },
    Frame {
        connection: u64,
        camera: Arc<str>,
        at: Timestamp,
        faces: Vec<TrackSeen>,
        live: Vec<u64>,
    },
    Closed {
        connection: u64,
    },
}

#[derive(Debug)]
struct Shared {
    input: mpsc::Sender<Input>,
    counters: Arc<Counters>,
    cameras: Mutex<BTreeMap<Arc<str>, u64>>,
    recent: Mutex<VecDeque<Event>>,
    next_connection: AtomicU64,
    clock: Arc<dyn Clock>,
    mqtt_connected: Option<Arc<AtomicBool>>,
    webhook_configured: bool,
}

/// The events service: cheap to clone; hand one to the server.
#[derive(Debug, Clone)]
pub struct Events {
    shared: Arc<Shared>,
}

impl Events {
    /// Starts the hub (and the MQTT link and webhook sender when configured) on the current
    /// tokio runtime.
    pub fn start(
        config: EventsConfig,
        directory: Arc<dyn PersonDirectory>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, EventsError> {
        let counters = Arc::new(Counters::default());
        let webhook = match config.webhook.clone() {
            Some(webhook) => Some(webhook::start(webhook, Arc::clone(&counters))?),
            None => None,
        };
        let (mqtt, notices, topics) = match &config.mqtt {
            Some(mqtt_config) => {
                let topics = Topics::new(
                    &mqtt_config.prefix,
                    mqtt_config.discovery_prefix.as_deref(),
                    env!("CARGO_PKG_VERSION"),
                );
                let tls = if mqtt_config.url.tls {
                    Some(mqtt::tls_config(mqtt_config.ca_pem.as_deref())?)
                } else {
                    None
                };
                let client_id = format!("{}-{}", topics.node_id(), unique_suffix());
                let options =
                    mqtt::client_options(&mqtt_config.url, &client_id, &topics.availability(), tls);
                let (publisher, notices) = mqtt::start(
                    options,
                    mqtt_config.queue_capacity.max(16),
                    mqtt_config.max_backoff,
                    Arc::clone(&counters),
                );
                (Some(publisher), Some(notices), topics)
            }
            None => (None, None, Topics::new("ddfr", None, env!("CARGO_PKG_VERSION"))),
        };
        let (input, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            input,
            counters: Arc::clone(&counters),
            cameras: Mutex::new(BTreeMap::new()),
            recent: Mutex::new(VecDeque::new()),
            next_connection: AtomicU64::new(1),
            clock: Arc::clone(&clock),
            mqtt_connected: mqtt.as_ref().map(Publisher::connected_flag),
            webhook_configured: webhook.is_some(),
        });
        let hub = Hub {
            unknown_delay: config.unknown_delay,
            idle_end_millis: millis(config.idle_end),
            directory,
            directory_version: None,
            clock,
            shared: Arc::clone(&shared),
            persons: BTreeMap::new(),
            connections: HashMap::new(),
            presence: Presence::new(config.away_after),
            last_seen_published: HashMap::new(),
            camera_states: BTreeMap::new(),
            pending_removals: BTreeSet::new(),
            mqtt,
            topics,
            webhook,
        };
        tokio::spawn(hub.run(receiver, notices));
        Ok(Self { shared })
    }

    /// A new `/ws` connection streaming `camera` (already validated). Feed it every frame's
    /// decisions; dropping it ends the connection's tracks.
    pub fn open_camera(&self, camera: &str) -> CameraFeed {
        let connection = self.shared.next_connection.fetch_add(1, Ordering::Relaxed);
        let camera: Arc<str> = Arc::from(camera);
        *self
            .shared
            .cameras
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(Arc::clone(&camera))
            .or_insert(0) += 1;
        let feed = CameraFeed { shared: Arc::clone(&self.shared), connection, camera };
        feed.send(Input::Opened { connection, camera: Arc::clone(&feed.camera) });
        feed
    }

    /// Counters and connection states for `/api/health`.
    pub fn health(&self) -> EventsHealth {
        let connected =
            self.shared.mqtt_connected.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed));
        self.shared.counters.health(
            self.shared.mqtt_connected.is_some(),
            connected,
            self.shared.webhook_configured,
        )
    }

    /// Cameras with open connections, by name.
    pub fn cameras(&self) -> Vec<CameraView> {
        self.shared
            .cameras
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, connections)| CameraView {
                name: name.to_string(),
                connections: *connections,
            })
            .collect()
    }

    /// Health, cameras and the latest events, newest first.
    pub fn status(&self) -> EventsStatus {
        let recent = self
            .shared
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        EventsStatus { health: self.health(), cameras: self.cameras(), recent }
    }
}

/// One `/ws` connection's feed into the hub. Never waits: a full queue drops the update (and
/// counts it).
#[derive(Debug)]
pub struct CameraFeed {
    shared: Arc<Shared>,
    connection: u64,
    camera: Arc<str>,
}

impl CameraFeed {
    /// The camera name.
    pub fn camera(&self) -> &str {
        &self.camera
    }

    /// One frame's decisions and the tracker's live track ids after it, stamped now.
    pub fn frame(&self, faces: Vec<TrackSeen>, live: Vec<u64>) {
        let at = self.shared.clock.now();
        self.send(Input::Frame {
            connection: self.connection,
            camera: Arc::clone(&self.camera),
            at,
            faces,
            live,
        });
    }

    fn send(&self, input: Input) {
        if self.shared.input.try_send(input).is_err() {
            self.shared.counters.dropped_updates.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for CameraFeed {
    fn drop(&mut self) {
        {
            let mut cameras = self.shared.cameras.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = cameras.get_mut(&self.camera) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    cameras.remove(&self.camera);
                }
            }
        }
        // If this is dropped because the queue is full, the idle timeout ends the tracks.
        self.send(Input::Closed { connection: self.connection });
    }
}

#[derive(Debug)]
struct Connection {
    camera: Arc<str>,
    tracks: TrackEvents,
    last_frame: Timestamp,
    idle: bool,
}

#[derive(Debug)]
struct Hub {
    unknown_delay: Duration,
    idle_end_millis: i64,
    directory: Arc<dyn PersonDirectory>,
    directory_version: Option<u64>,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
    persons: BTreeMap<PersonId, PersonLabel>,
    connections: HashMap<u64, Connection>,
    presence: Presence,
    last_seen_published: HashMap<PersonId, Timestamp>,
    /// Every camera seen since start, with its last published state payload.
    camera_states: BTreeMap<Arc<str>, String>,
    /// Deleted persons whose empty configs could not be queued yet.
    pending_removals: BTreeSet<PersonId>,
    mqtt: Option<Publisher>,
    topics: Topics,
    webhook: Option<WebhookQueue>,
}

impl Hub {
    async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut notices: Option<mpsc::Receiver<Notice>>,
    ) {
        self.sync_directory();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => self.handle(input),
                    None => break,
                },
                notice = next_notice(&mut notices) => match notice {
                    Some(notice) => self.handle_notice(notice),
                    None => notices = None,
                },
                _ = tick.tick() => self.tick(),
            }
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Opened { connection, camera } => {
                let at = self.clock.now();
                self.connection(connection, &camera, at);
            }
            Input::Frame { connection, camera, at, faces, live } => {
                self.sync_directory();
                let conn = self.connection(connection, &camera, at);
                conn.last_frame = conn.last_frame.max(at);
                conn.idle = false;
                let events = conn.tracks.frame(at, &faces, &live);
                for face in faces.iter().filter(|f| f.confirmed) {
                    if let Some(person) = face.person {
                        self.sighting(person, at);
                    }
                }
                for event in events {
                    self.emit(&camera, event, at);
                }
                self.publish_camera_state(&camera);
            }
            Input::Closed { connection } => {
                if let Some(mut conn) = self.connections.remove(&connection) {
                    let at = self.clock.now();
                    for event in conn.tracks.end_all() {
                        self.emit(&conn.camera, event, at);
                    }
                    self.publish_camera_state(&conn.camera);
                }
            }
        }
    }

    fn connection(&mut self, connection: u64, camera: &Arc<str>, at: Timestamp) -> &mut Connection {
        if !self.camera_states.contains_key(camera) {
            self.camera_states.insert(Arc::clone(camera), String::new());
            if let Some(mqtt) = &self.mqtt {
                for message in self.topics.camera_configs(camera) {
                    mqtt.publish(&message.topic, message.payload, true);
                }
            }
        }
        let unknown_delay = self.unknown_delay;
        self.connections.entry(connection).or_insert_with(|| Connection {
            camera: Arc::clone(camera),
            tracks: TrackEvents::new(unknown_delay),
            last_frame: at,
            idle: false,
        })
    }

    fn sighting(&mut self, person: PersonId, at: Timestamp) {
        let change = self.presence.sighting(person, at);
        let Some(mqtt) = &self.mqtt else { return };
        if change.is_some() {
            mqtt.publish(&self.topics.person_presence(person), HOME, true);
        }
        let due = self.last_seen_published.get(&person).is_none_or(|last| {
            at.unix_millis().saturating_sub(last.unix_millis()) >= millis(LAST_SEEN_EVERY)
        });
        if change.is_some() || due {
            self.last_seen_published.insert(person, at);
            mqtt.publish(&self.topics.person_last_seen(person), at.to_string(), true);
        }
    }

    fn emit(&mut self, camera: &str, event: TrackEvent, at: Timestamp) {
        let (kind, track_id, person) = match event {
            TrackEvent::Recognized { track_id, person } => {
                (EventKind::Recognized, track_id, Some(person))
            }
            TrackEvent::Unknown { track_id } => (EventKind::Unknown, track_id, None),
            TrackEvent::Left { track_id, person } => (EventKind::Left, track_id, person),
        };
        let label = person.and_then(|p| self.persons.get(&p));
        let event = Event {
            kind,
            camera: camera.to_owned(),
            track_id,
            person_id: person.map(|p| p.0),
            name: label.map_or_else(|| "Unknown".to_owned(), |l| l.name.clone()),
            surname: label.map(|l| l.surname.clone()),
            at,
        };
        self.shared.counters.events.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            kind = kind.as_str(),
            camera,
            track_id,
            person_id = event.person_id,
            "event"
        );
        let body = match serde_json::to_vec(&event) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, "cannot serialise an event");
                return;
            }
        };
        if let Some(mqtt) = &self.mqtt {
            mqtt.publish(&self.topics.events(), body.clone(), false);
            if kind != EventKind::Left {
                let mut arrival = serde_json::json!({"event_type": kind.as_str()});
                if let (Some(object), Ok(serde_json::Value::Object(fields))) =
                    (arrival.as_object_mut(), serde_json::to_value(&event))
                {
                    object.extend(fields);
                }
                mqtt.publish(&self.topics.camera_event(camera), arrival.to_string(), false);
            }
        }
        if let Some(webhook) = &self.webhook {
            webhook.push(Delivery { kind: kind.as_str(), body });
        }
        let mut recent = self.shared.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.push_front(event);
        recent.truncate(RECENT_EVENTS);
    }

    /// Who the camera's connections have in view, published when it changed.
    fn publish_camera_state(&mut self, camera: &Arc<str>) {
        let mut persons = BTreeSet::new();
        let mut unknown = 0;
        for conn in self.connections.values().filter(|c| c.camera == *camera) {
            let (in_view, n_unknown) = conn.tracks.in_view();
            persons.extend(in_view);
            unknown += n_unknown;
        }
        let labels: Vec<PersonLabel> = persons
            .iter()
            .map(|id| {
                self.persons.get(id).cloned().unwrap_or_else(|| PersonLabel {
                    id: *id,
                    name: "Unknown".into(),
                    surname: String::new(),
                })
            })
            .collect();
        let payload = camera_state_payload(&labels, unknown);
        if self.camera_states.get(camera) == Some(&payload) {
            return;
        }
        if let Some(mqtt) = &self.mqtt {
            mqtt.publish(&self.topics.camera_state(camera), payload.clone(), true);
        }
        self.camera_states.insert(Arc::clone(camera), payload);
    }

    fn tick(&mut self) {
        let now = self.clock.now();
        self.sync_directory();
        for change in self.presence.tick(now) {
            if let (PresenceChange::Away(person), Some(mqtt)) = (change, &self.mqtt) {
                mqtt.publish(&self.topics.person_presence(person), NOT_HOME, true);
            }
        }
        let idle: Vec<u64> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                !c.idle
                    && c.tracks.n_tracks() > 0
                    && now.unix_millis().saturating_sub(c.last_frame.unix_millis())
                        >= self.idle_end_millis
            })
            .map(|(id, _)| *id)
            .collect();
        for connection in idle {
            let Some(conn) = self.connections.get_mut(&connection) else { continue };
            conn.idle = true;
            let camera = Arc::clone(&conn.camera);
            let events = conn.tracks.end_all();
            for event in events {
                self.emit(&camera, event, now);
            }
            self.publish_camera_state(&camera);
        }
    }

    /// Reads the person list when it changed: new or renamed persons get their configs,
    /// removed ones their empty configs and cleared states.
    fn sync_directory(&mut self) {
        let version = self.directory.version();
        if self.directory_version == Some(version) {
            return;
        }
        self.directory_version = Some(version);
        let now: BTreeMap<PersonId, PersonLabel> =
            self.directory.persons().into_iter().map(|p| (p.id, p)).collect();
        let removed: Vec<PersonId> =
            self.persons.keys().filter(|id| !now.contains_key(id)).copied().collect();
        let changed: Vec<PersonLabel> =
            now.values().filter(|p| self.persons.get(&p.id) != Some(*p)).cloned().collect();
        for person in &changed {
            let new = !self.persons.contains_key(&person.id);
            self.publish_person(person, new);
        }
        self.persons = now;
        for person in removed {
            self.presence.forget(person);
            self.last_seen_published.remove(&person);
            self.pending_removals.insert(person);
        }
        self.publish_removals();
    }

    fn publish_person(&self, person: &PersonLabel, with_state: bool) {
        let Some(mqtt) = &self.mqtt else { return };
        for message in self.topics.person_configs(person) {
            mqtt.publish(&message.topic, message.payload, true);
        }
        if with_state {
            let presence = if self.presence.is_home(person.id) { HOME } else { NOT_HOME };
            mqtt.publish(&self.topics.person_presence(person.id), presence, true);
            if let Some(at) = self.presence.last_seen(person.id) {
                mqtt.publish(&self.topics.person_last_seen(person.id), at.to_string(), true);
            }
        }
    }

    /// Queues the empty retained configs and states of deleted persons; those that do not fit
    /// in the queue stay pending until the next connection.
    fn publish_removals(&mut self) {
        let Some(mqtt) = &self.mqtt else {
            self.pending_removals.clear();
            return;
        };
        let pending = std::mem::take(&mut self.pending_removals);
        for person in pending {
            let mut queued = true;
            for message in self.topics.person_removals(person) {
                queued &= mqtt.publish(&message.topic, message.payload, true);
            }
            queued &= mqtt.publish(&self.topics.person_presence(person), "", true);
            queued &= mqtt.publish(&self.topics.person_last_seen(person), "", true);
            if !queued {
                self.pending_removals.insert(person);
            }
        }
    }

    /// Everything retained again: on every (re)connection, and when Home Assistant restarts.
    fn publish_all(&mut self) {
        let Some(mqtt) = &self.mqtt else { return };
        mqtt.publish(&self.topics.availability(), ONLINE, true);
        for person in self.persons.values() {
            self.publish_person(person, true);
        }
        for (camera, state) in &self.camera_states {
            for message in self.topics.camera_configs(camera) {
                mqtt.publish(&message.topic, message.payload, true);
            }
            if !state.is_empty() {
                mqtt.publish(&self.topics.camera_state(camera), state.clone(), true);
            }
        }
        self.publish_removals();
    }

    fn handle_notice(&mut self, notice: Notice) {
        let Some(mqtt) = self.mqtt.clone() else { return };
        match notice {
            Notice::Connected => {
                self.sync_directory();
                if let Some(status) = self.topics.ha_status() {
                    mqtt.subscribe(&status);
                }
                if let Some(filter) = self.topics.person_configs_filter() {
                    mqtt.subscribe(&filter);
                }
                self.publish_all();
            }
            Notice::Message { topic, payload } => {
                if self.topics.ha_status().as_deref() == Some(topic.as_str()) {
                    if payload == ONLINE.as_bytes() {
                        tracing::info!(
                            "Home Assistant is online: discovery configs published again"
                        );
                        self.publish_all();
                    }
                } else if let Some(person) = self.topics.person_of_config_topic(&topic)
                    && !payload.is_empty()
                    && !self.persons.contains_key(&person)
                {
                    // A retained config of a person deleted while ddfr was not connected.
                    self.pending_removals.insert(person);
                    self.publish_removals();
                }
            }
        }
    }
}

async fn next_notice(notices: &mut Option<mpsc::Receiver<Notice>>) -> Option<Notice> {
    match notices {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A suffix that keeps this process's MQTT client id apart from another server's.
fn unique_suffix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{:x}{:08x}", std::process::id(), nanos)
}
