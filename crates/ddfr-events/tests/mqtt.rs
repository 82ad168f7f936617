//! The hub against the real Mosquitto on 127.0.0.1:1883, with a clock the test moves and a
//! person list it edits: discovery configs, presence, renames, deletions, Home Assistant
//! restarts and a broker outage (a TCP proxy the test cuts), all seen by a second client.
//!
//! Without a broker these tests print `SKIPPED:` and return, unless `CI` is set: then a missing
//! broker fails them.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ddfr_core::PersonId;
use ddfr_events::{
    Clock, Events, EventsConfig, MqttConfig, MqttUrl, PersonDirectory, PersonLabel, TrackSeen,
};
use ddfr_protocol::Timestamp;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const BROKER: &str = "127.0.0.1:1883";

async fn broker_or_skip() -> bool {
    let reachable = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(BROKER))
        .await
        .is_ok_and(|r| r.is_ok());
    if !reachable {
        assert!(
            !std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false"),
            "CI is set but no MQTT broker on {BROKER}"
        );
        println!("SKIPPED: no MQTT broker on {BROKER}");
    }
    reachable
}

/// A clock the test moves by hand.
#[derive(Debug)]
struct ManualClock(AtomicI64);

impl ManualClock {
    fn advance(&self, by: Duration) {
        self.0.fetch_add(i64::try_from(by.as_millis()).unwrap(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.0.load(Ordering::SeqCst))
    }
}

/// A person list the test edits.
#[derive(Debug, Default)]
struct People {
    version: AtomicU64,
    persons: Mutex<Vec<PersonLabel>>,
}

impl People {
    fn set(&self, persons: Vec<PersonLabel>) {
        *self.persons.lock().unwrap() = persons;
        self.version.fetch_add(1, Ordering::SeqCst);
    }
}

impl PersonDirectory for People {
    fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }
    fn persons(&self) -> Vec<PersonLabel> {
        self.persons.lock().unwrap().clone()
    }
}

fn person(id: i64, name: &str) -> PersonLabel {
    PersonLabel { id: PersonId(id), name: name.into(), surname: "Test".into() }
}

/// A cuttable TCP proxy to the broker.
async fn proxy() -> (u16, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (up, _) = watch::channel(true);
    let watcher = up.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            if !*watcher.borrow() {
                continue;
            }
            let mut cut = watcher.subscribe();
            tokio::spawn(async move {
                let Ok(mut broker) = TcpStream::connect(BROKER).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut broker) => {}
                    _ = cut.wait_for(|up| !*up) => {}
                }
            });
        }
    });
    (port, up)
}

type Log = Arc<Mutex<Vec<(Instant, String, String)>>>;

async fn watch_topics(filters: &[String]) -> (AsyncClient, Log) {
    let id = format!("ddfr-events-test-{}-{}", std::process::id(), run_id());
    let mut options = MqttOptions::new(id, "127.0.0.1", 1883);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    for filter in filters {
        client.subscribe(filter.clone(), QoS::AtLeastOnce).await.unwrap();
    }
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let (acks, mut acked) = watch::channel(0usize);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => sink.lock().unwrap().push((
                    Instant::now(),
                    p.topic.clone(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                )),
                Ok(Event::Incoming(Packet::SubAck(_))) => acks.send_modify(|n| *n += 1),
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let n = filters.len();
    tokio::time::timeout(Duration::from_secs(10), acked.wait_for(|a| *a >= n))
        .await
        .unwrap()
        .unwrap();
    (client, log)
}

fn last(log: &Log, topic: &str) -> Option<String> {
    log.lock().unwrap().iter().rev().find(|(_, t, _)| t == topic).map(|(_, _, p)| p.clone())
}

fn since(log: &Log, topic: &str, after: Instant) -> usize {
    log.lock().unwrap().iter().filter(|(at, t, _)| t == topic && *at > after).count()
}

async fn wait(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}", nanos % (1 << 40))
}

#[tokio::test]
async fn home_assistant_follows_presence_renames_deletions_restarts_and_outages() {
    if !broker_or_skip().await {
        return;
    }
    let run = run_id();
    let (prefix, ha) = (format!("ddfr-test-{run}"), format!("ha-test-{run}"));
    let (port, up) = proxy().await;
    let (client, log) = watch_topics(&[format!("{prefix}/#"), format!("{ha}/#")]).await;
    let people = Arc::new(People::default());
    people.set(vec![person(1, "Ada"), person(2, "Alan")]);
    let clock = Arc::new(ManualClock(AtomicI64::new(1_767_254_400_000)));
    let mut mqtt = MqttConfig::new(format!("mqtt://127.0.0.1:{port}").parse::<MqttUrl>().unwrap());
    mqtt.prefix = prefix.clone();
    mqtt.discovery_prefix = Some(ha.clone());
    mqtt.max_backoff = Duration::from_millis(500);
    let config = EventsConfig {
        away_after: Duration::from_secs(300),
        mqtt: Some(mqtt),
        ..EventsConfig::default()
    };
    let events = Events::start(config, Arc::clone(&people) as _, Arc::clone(&clock) as _).unwrap();
    let status = format!("{prefix}/status");
    let tracker = |id: i64| format!("{ha}/device_tracker/{prefix}/person_{id}/config");
    let last_seen = |id: i64| format!("{ha}/sensor/{prefix}/person_{id}_last_seen/config");
    let presence = |id: i64| format!("{prefix}/person/{id}/presence");
    wait("online and configs", || {
        last(&log, &status).as_deref() == Some("online")
            && last(&log, &tracker(2)).is_some()
            && last(&log, &presence(2)).as_deref() == Some("not_home")
    })
    .await;
    let config: Value = serde_json::from_str(&last(&log, &tracker(1)).unwrap()).unwrap();
    assert_eq!(config["device"]["name"], "Ada Test");
    assert!(events.health().mqtt.connected);

    // Ada is confirmed at the door: one recognized, home, in view.
    let feed = events.open_camera("door");
    for frame in 0..20 {
        let face = TrackSeen { track_id: 1, person: Some(PersonId(1)), confirmed: frame > 1 };
        feed.frame(vec![face], vec![1]);
        clock.advance(Duration::from_millis(50));
    }
    wait("home", || last(&log, &presence(1)).as_deref() == Some("home")).await;
    let door_state: Value =
        serde_json::from_str(&last(&log, &format!("{prefix}/camera/door/state")).unwrap()).unwrap();
    assert_eq!(door_state["in_view"], "Ada Test");
    assert!(last(&log, &format!("{ha}/event/{prefix}/camera_door_arrival/config")).is_some());
    let n_recognized = || {
        log.lock()
            .unwrap()
            .iter()
            .filter(|(_, t, p)| *t == format!("{prefix}/events") && p.contains("\"recognized\""))
            .count()
    };
    assert_eq!(n_recognized(), 1);
    // She leaves: `left`, nobody in view; 5 minutes of the test's clock later, not home.
    feed.frame(vec![], vec![]);
    wait("nobody in view", || {
        last(&log, &format!("{prefix}/camera/door/state")).is_some_and(|s| s.contains("nobody"))
    })
    .await;
    clock.advance(Duration::from_secs(299));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(last(&log, &presence(1)).as_deref(), Some("home"), "4:59 is not yet away");
    clock.advance(Duration::from_secs(1));
    wait("away", || last(&log, &presence(1)).as_deref() == Some("not_home")).await;

    // A rename updates the device name; Home Assistant's restart gets every config again.
    people.set(vec![person(1, "Augusta"), person(2, "Alan")]);
    wait("renamed", || last(&log, &tracker(1)).is_some_and(|c| c.contains("Augusta Test"))).await;
    let restart = Instant::now();
    client.publish(format!("{ha}/status"), QoS::AtLeastOnce, false, "online").await.unwrap();
    wait("configs again", || since(&log, &tracker(2), restart) >= 1).await;

    // Outage: the last will says offline; on reconnection everything is published again.
    up.send_replace(false);
    wait("offline", || last(&log, &status).as_deref() == Some("offline")).await;
    wait("disconnected", || !events.health().mqtt.connected).await;
    // Alan is deleted while the broker is away.
    people.set(vec![person(1, "Augusta")]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let back = Instant::now();
    up.send_replace(true);
    wait("online again", || since(&log, &status, back) >= 1).await;
    wait("states again", || since(&log, &presence(1), back) >= 1).await;
    wait("Alan's entities removed", || {
        last(&log, &tracker(2)).as_deref() == Some("")
            && last(&log, &last_seen(2)).as_deref() == Some("")
            && last(&log, &presence(2)).as_deref() == Some("")
    })
    .await;
    assert!(events.health().mqtt.connects >= 2);
    assert_eq!(events.health().dropped_updates, 0);

    // Clean up this run's retained messages, the last will included: cut the proxy for good
    // (the broker publishes `offline`), then clear every retained topic.
    up.send_replace(false);
    wait("offline at the end", || last(&log, &status).as_deref() == Some("offline")).await;
    drop(events);
    let topics: Vec<String> = log.lock().unwrap().iter().map(|(_, t, _)| t.clone()).collect();
    for topic in topics.iter().filter(|t| !t.ends_with("/events") && !t.ends_with("/event")) {
        client.publish(topic.clone(), QoS::AtLeastOnce, true, Vec::<u8>::new()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}
