//! Home-automation events end to end: the built `ddfr serve` against the real Mosquitto on
//! 127.0.0.1:1883 (through a TCP proxy the test can cut), real photos streamed to
//! `/ws?camera=...`, and an MQTT client watching what Home Assistant would see.
//!
//! Without a broker the broker tests print `SKIPPED:` and return, unless `CI` is set: then a
//! missing broker fails them.

// A failed unwrap is a failed test; SKIPPED and MEASURED lines go to stdout.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ddfr_e2e::{
    Server, ServerOptions, add_face, create_person, identity_photos, jpeg_frame, read_rgb, testdata,
};
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use sha2::Sha256;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The system broker.
const BROKER: &str = "127.0.0.1:1883";
/// How long one reply may take (debug builds are slow).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames per second of the streamed clips.
const FPS: u64 = 20;

/// Extra environment for the server: the models of `DDFR_MODELS_DIR` when set (a worktree
/// without its own models).
fn models_env() -> Vec<(String, String)> {
    std::env::var("DDFR_MODELS_DIR")
        .map(|dir| vec![("DDFR_MODELS_DIR".into(), dir)])
        .unwrap_or_default()
}

/// Whether the broker answers; without one the test is skipped, except under CI.
async fn broker_or_skip() -> bool {
    let reachable = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(BROKER))
        .await
        .is_ok_and(|r| r.is_ok());
    if !reachable {
        assert!(
            !std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false"),
            "CI is set but no MQTT broker answers on {BROKER}"
        );
        println!("SKIPPED: no MQTT broker on {BROKER}");
    }
    reachable
}

/// A TCP proxy to the broker that the test can cut (closing every connection and refusing new
/// ones) and restore, on a fixed port.
struct Proxy {
    port: u16,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (up, _) = watch::channel(true);
        let watcher = up.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*watcher.borrow() {
                    drop(client);
                    continue;
                }
                let mut cut = watcher.subscribe();
                tokio::spawn(async move {
                    let Ok(broker) = TcpStream::connect(BROKER).await else { return };
                    let (mut client, mut broker) = (client, broker);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut broker) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Ok(Self { port, up })
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// The webhook secret of the end-to-end server.
const WEBHOOK_SECRET: &str = "e2e webhook secret";

/// Each webhook POST: its `X-DDFR-Signature` and body.
type Posts = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A minimal HTTP/1.1 webhook receiver: records each POST's `X-DDFR-Signature` and body and
/// answers 200.
struct Hook {
    port: u16,
    received: Posts,
}

impl Hook {
    async fn start() -> Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let received: Posts = Arc::default();
        let sink = Arc::clone(&received);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let sink = Arc::clone(&sink);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        // One request: the head, then Content-Length bytes of body.
                        let head_end = loop {
                            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                                break end + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head =
                            String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
                        let header = |name: &str| {
                            head.lines().find_map(|l| {
                                l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_owned())
                            })
                        };
                        let length: usize =
                            header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                        let signature = header("x-ddfr-signature").unwrap_or_default();
                        while buffer.len() < head_end + length {
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body = buffer[head_end..head_end + length].to_vec();
                        buffer.drain(..head_end + length);
                        sink.lock().unwrap().push((signature, body));
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self { port, received })
    }
}

/// One message seen by the watching client.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    topic: String,
    payload: String,
    retain: bool,
}

/// An MQTT client recording everything under the given filters.
struct Watcher {
    messages: Arc<Mutex<Vec<Seen>>>,
    client: AsyncClient,
}

impl Watcher {
    async fn start(filters: &[String]) -> Result<Self> {
        let id = format!("ddfr-e2e-watch-{}-{}", std::process::id(), unique());
        let mut options = MqttOptions::new(id, "127.0.0.1", 1883);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        for filter in filters {
            client.subscribe(filter.clone(), QoS::AtLeastOnce).await?;
        }
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&messages);
        let (subscribed, mut ready) = watch::channel(0usize);
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => sink.lock().unwrap().push(Seen {
                        at: Instant::now(),
                        topic: p.topic.clone(),
                        payload: String::from_utf8_lossy(&p.payload).into_owned(),
                        retain: p.retain,
                    }),
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        subscribed.send_modify(|n| *n += 1);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let n_filters = filters.len();
        tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|n| *n >= n_filters))
            .await
            .context("subscriptions not acknowledged")??;
        Ok(Self { messages, client })
    }

    fn all(&self) -> Vec<Seen> {
        self.messages.lock().unwrap().clone()
    }

    fn on(&self, topic: &str) -> Vec<Seen> {
        self.all().into_iter().filter(|m| m.topic == topic).collect()
    }

    fn last(&self, topic: &str) -> Option<String> {
        self.on(topic).last().map(|m| m.payload.clone())
    }

    /// The events on `<prefix>/events`, parsed, with when they arrived.
    fn events(&self, prefix: &str) -> Vec<(Instant, Value)> {
        self.on(&format!("{prefix}/events"))
            .into_iter()
            .filter_map(|m| Some((m.at, serde_json::from_str(&m.payload).ok()?)))
            .collect()
    }

    async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for {what}; seen: {:#?}",
                    self.all().iter().map(|m| (&m.topic, &m.payload)).collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(())
    }
}

/// What a fresh subscriber gets as retained messages under `filter` (empty payloads are not
/// retained: the broker deletes the topic).
async fn retained(filter: &str) -> Result<HashMap<String, String>> {
    let watcher = Watcher::start(&[filter.to_owned()]).await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    Ok(watcher.all().into_iter().filter(|m| m.retain).map(|m| (m.topic, m.payload)).collect())
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}", nanos % (1 << 40))
}

async fn health(server: &Server) -> Result<Value> {
    Ok(reqwest::get(server.url("/api/health")).await?.json().await?)
}

/// Streams `photos` round-robin to a connection at about [`FPS`] for `duration`, one reply per
/// frame; returns each reply with when it arrived.
async fn stream(
    ws: &mut Ws,
    frames: &[Vec<u8>],
    duration: Duration,
) -> Result<Vec<(Instant, Value)>> {
    let started = Instant::now();
    let mut replies = Vec::new();
    let mut index = 0;
    while started.elapsed() < duration {
        let sent = Instant::now();
        ws.send(Message::binary(frames[index % frames.len()].clone())).await?;
        index += 1;
        loop {
            let message =
                tokio::time::timeout(REPLY_TIMEOUT, ws.next()).await?.context("closed")??;
            if let Message::Text(text) = message {
                replies.push((Instant::now(), serde_json::from_str(text.as_str())?));
                break;
            }
        }
        let pace = Duration::from_millis(1000 / FPS);
        if let Some(rest) = pace.checked_sub(sent.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    Ok(replies)
}

/// A clip of one person: the same photo (not the enrolled one) repeated, as a still camera
/// would see someone standing in view.
fn clip_of(data: &std::path::Path, identity: &str) -> Result<Vec<Vec<u8>>> {
    let photos = identity_photos(data, identity)?;
    let photo = photos.get(1).or(photos.first()).context("no photo")?;
    Ok(vec![jpeg_frame(&read_rgb(photo)?, 480, 80)?])
}

async fn connect(server: &Server, camera: &str) -> Result<Ws> {
    Ok(tokio_tungstenite::connect_async(format!("{}?camera={camera}", server.ws_url())).await?.0)
}

#[tokio::test]
async fn an_invalid_camera_name_refuses_the_handshake_with_a_clear_error() -> Result<()> {
    let server =
        Server::start_with(ServerOptions { env: models_env(), ..Default::default() }).await?;
    for bad in ["front%20door", "a%2Fb", "", &"x".repeat(65)] {
        match tokio_tungstenite::connect_async(format!("{}?camera={bad}", server.ws_url())).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 400, "{bad}");
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default())?;
                assert_eq!(body["error"]["code"], "invalid_camera", "{bad}: {body}");
                assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("64")));
            }
            other => bail!("{bad}: expected a refused handshake, got {:?}", other.map(|_| ())),
        }
    }
    // A valid name is accepted and listed in the health reply while connected.
    let ws = connect(&server, "Back_Yard-2").await?;
    wait_cameras(&server, serde_json::json!([{"name": "Back_Yard-2", "connections": 1}])).await?;
    drop(ws);
    let plain = tokio_tungstenite::connect_async(server.ws_url()).await?.0;
    wait_cameras(&server, serde_json::json!([{"name": "default", "connections": 1}])).await?;
    drop(plain);
    Ok(())
}

/// Polls `/api/health` until its `cameras` are `expected` (a connection is counted once the
/// upgrade completed, and uncounted once the server saw it close).
async fn wait_cameras(server: &Server, expected: Value) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cameras = health(server).await?["cameras"].clone();
        if cameras == expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("cameras {cameras}, expected {expected}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn home_assistant_sees_arrivals_presence_strangers_departures_and_deletions() -> Result<()> {
    let Some(data) = testdata() else {
        println!("SKIPPED: $DDFR_TESTDATA not found");
        return Ok(());
    };
    if !broker_or_skip().await {
        return Ok(());
    }
    let run = unique();
    let prefix = format!("ddfr-e2e-{run}");
    let ha = format!("ha-e2e-{run}");
    let node = prefix.clone();
    let proxy = Proxy::start().await?;
    let hook = Hook::start().await?;
    let watcher = Watcher::start(&[format!("{prefix}/#"), format!("{ha}/#")]).await?;
    let mut env = models_env();
    env.extend([
        ("DDFR_MQTT_URL".to_owned(), format!("mqtt://127.0.0.1:{}", proxy.port)),
        ("DDFR_MQTT_PREFIX".to_owned(), prefix.clone()),
        ("DDFR_HA_DISCOVERY_PREFIX".to_owned(), ha.clone()),
        ("DDFR_AWAY_AFTER".to_owned(), "6s".to_owned()),
        ("DDFR_UNKNOWN_EVENT_DELAY".to_owned(), "3s".to_owned()),
        ("DDFR_WEBHOOK_URL".to_owned(), format!("http://127.0.0.1:{}/hook", hook.port)),
        ("DDFR_WEBHOOK_SECRET".to_owned(), WEBHOOK_SECRET.to_owned()),
    ]);
    let server = Server::start_with(ServerOptions { env, ..Default::default() }).await?;
    let status = format!("{prefix}/status");
    watcher
        .wait("online", Duration::from_secs(10), |w| w.last(&status).as_deref() == Some("online"))
        .await?;

    // Two enrolled people: each gets a presence tracker and a "last seen" sensor.
    let mut ids = BTreeMap::new();
    for identity in ["barack_obama", "katy_perry"] {
        let id = create_person(&server, None, identity, "E2e").await?;
        let photo = std::fs::read(&identity_photos(&data, identity)?[0])?;
        let (code, body) = add_face(&server, None, id, photo).await?;
        assert_eq!(code, 201, "{identity}: {body}");
        ids.insert(identity, id);
    }
    let (obama, katy) = (ids["barack_obama"], ids["katy_perry"]);
    let tracker_config = |id: i64| format!("{ha}/device_tracker/{node}/person_{id}/config");
    let sensor_config = |id: i64| format!("{ha}/sensor/{node}/person_{id}_last_seen/config");
    for id in [obama, katy] {
        watcher
            .wait("person configs", Duration::from_secs(10), |w| {
                w.last(&tracker_config(id)).is_some() && w.last(&sensor_config(id)).is_some()
            })
            .await?;
    }
    let config: Value = serde_json::from_str(&watcher.last(&tracker_config(obama)).unwrap())?;
    assert_eq!(config["device"]["name"], "barack_obama E2e");
    assert_eq!(config["state_topic"], format!("{prefix}/person/{obama}/presence"));
    assert_eq!(
        (config["payload_home"].as_str(), config["payload_not_home"].as_str()),
        (Some("home"), Some("not_home"))
    );
    assert_eq!(config["availability_topic"], status);
    let sensor: Value = serde_json::from_str(&watcher.last(&sensor_config(obama)).unwrap())?;
    assert_eq!(sensor["device_class"], "timestamp");
    let presence = |id: i64| format!("{prefix}/person/{id}/presence");
    assert_eq!(watcher.last(&presence(obama)).as_deref(), Some("not_home"));

    // Obama at the door for 2 s at 20 FPS, Katy in the hall meanwhile-ish.
    let mut door = connect(&server, "door").await?;
    let obama_frames = clip_of(&data, "barack_obama")?;
    let door_replies = stream(&mut door, &obama_frames, Duration::from_secs(2)).await?;
    let mut hall = connect(&server, "hall").await?;
    let katy_frames = clip_of(&data, "katy_perry")?;
    stream(&mut hall, &katy_frames, Duration::from_secs(2)).await?;
    wait_cameras(
        &server,
        serde_json::json!([{"name": "door", "connections": 1}, {"name": "hall", "connections": 1}]),
    )
    .await?;
    watcher
        .wait("both home", Duration::from_secs(5), |w| {
            w.last(&presence(obama)).as_deref() == Some("home")
                && w.last(&presence(katy)).as_deref() == Some("home")
        })
        .await?;
    let recognized: Vec<(Instant, Value)> =
        watcher.events(&prefix).into_iter().filter(|(_, e)| e["type"] == "recognized").collect();
    let on = |camera: &str| {
        recognized.iter().filter(|(_, e)| e["camera"] == camera).cloned().collect::<Vec<_>>()
    };
    assert_eq!(on("door").len(), 1, "one recognized per track, not per frame: {recognized:?}");
    assert_eq!(on("hall").len(), 1, "{recognized:?}");
    let (door_at, door_event) = &on("door")[0];
    assert_eq!(door_event["person_id"], obama);
    assert_eq!(
        (door_event["name"].as_str(), door_event["surname"].as_str()),
        (Some("barack_obama"), Some("E2e"))
    );
    assert!(door_event["track_id"].is_u64());
    assert!(
        door_event["at"].as_str().is_some_and(|at| at.parse::<ddfr_protocol::Timestamp>().is_ok())
    );
    assert_eq!(on("hall")[0].1["person_id"], katy);
    // Latency: the confirming frame's reply (the reply nearest the event) to the MQTT message.
    let nearest = door_replies
        .iter()
        .map(|(at, _)| if at > door_at { *at - *door_at } else { *door_at - *at })
        .min()
        .context("replies")?;
    println!(
        "MEASURED: recognized event within {:.1} ms of the confirming frame's reply ({} door frames answered in 2 s)",
        nearest.as_secs_f64() * 1000.0,
        door_replies.len()
    );
    assert!(nearest < Duration::from_millis(500), "{nearest:?}");
    // Who is in view, retained, with a discovery config per camera.
    let door_state: Value = serde_json::from_str(
        &watcher.last(&format!("{prefix}/camera/door/state")).context("door state")?,
    )?;
    assert_eq!(door_state["person_ids"], serde_json::json!([obama]));
    assert_eq!(door_state["in_view"], "barack_obama E2e");
    for object in [
        "sensor/{node}/camera_door_in_view",
        "event/{node}/camera_door_arrival",
        "event/{node}/camera_hall_arrival",
    ] {
        let topic = format!("{ha}/{}/config", object.replace("{node}", &node));
        assert!(watcher.last(&topic).is_some_and(|c| !c.is_empty()), "{topic}");
    }
    let arrival: Value = serde_json::from_str(
        &watcher.last(&format!("{prefix}/camera/door/event")).context("arrival")?,
    )?;
    assert_eq!(arrival["event_type"], "recognized");

    // A stranger at the door: `unknown` after the 3 s delay, once.
    let stranger_frames = clip_of(&data, "jeff_bezos")?;
    let stranger_start = Instant::now();
    stream(&mut door, &stranger_frames, Duration::from_millis(4500)).await?;
    let unknown: Vec<(Instant, Value)> =
        watcher.events(&prefix).into_iter().filter(|(_, e)| e["type"] == "unknown").collect();
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    let (unknown_at, unknown_event) = &unknown[0];
    assert!(unknown_event["person_id"].is_null() && unknown_event["surname"].is_null());
    assert_eq!(unknown_event["name"], "Unknown");
    assert_eq!(unknown_event["camera"], "door");
    let waited = *unknown_at - stranger_start;
    assert!(waited >= Duration::from_millis(2900), "unknown came after only {waited:?}");
    println!(
        "MEASURED: unknown event {} ms after the stranger's first frame (delay 3 s)",
        waited.as_millis()
    );
    // Obama's door track ended while the stranger stood there.
    let left_for = |track: &Value, camera: &str| {
        watcher
            .events(&prefix)
            .iter()
            .filter(|(_, e)| {
                e["type"] == "left" && e["camera"] == camera && e["track_id"] == *track
            })
            .count()
    };
    watcher
        .wait("obama left", Duration::from_secs(5), |_| {
            left_for(&door_event["track_id"], "door") == 1
        })
        .await?;

    // The frames stop (disconnect): every announced track gets exactly one `left`.
    let hall_track = on("hall")[0].1["track_id"].clone();
    let unknown_track = unknown_event["track_id"].clone();
    drop(door);
    drop(hall);
    watcher
        .wait("left on disconnect", Duration::from_secs(5), |_| {
            left_for(&hall_track, "hall") == 1 && left_for(&unknown_track, "door") == 1
        })
        .await?;
    let kinds_per_track = watcher.events(&prefix).iter().fold(HashMap::new(), |mut map, (_, e)| {
        *map.entry((e["camera"].to_string(), e["track_id"].to_string(), e["type"].to_string()))
            .or_insert(0) += 1;
        map
    });
    assert!(
        kinds_per_track.values().all(|n| *n == 1),
        "one event per track and kind: {kinds_per_track:?}"
    );

    // Away after DDFR_AWAY_AFTER (6 s) without a sighting.
    watcher
        .wait("both away", Duration::from_secs(12), |w| {
            w.last(&presence(obama)).as_deref() == Some("not_home")
                && w.last(&presence(katy)).as_deref() == Some("not_home")
        })
        .await?;

    // The broker goes away: the last will says offline, /ws is not slowed, then ddfr
    // reconnects and publishes every retained state again.
    proxy.set_up(false);
    watcher
        .wait("offline (last will)", Duration::from_secs(10), |w| {
            w.last(&status).as_deref() == Some("offline")
        })
        .await?;
    let mut outage = connect(&server, "door").await?;
    let started = Instant::now();
    let replies = stream(&mut outage, &obama_frames, Duration::from_secs(1)).await?;
    let per_frame = started.elapsed() / u32::try_from(replies.len()).unwrap_or(1);
    println!(
        "MEASURED: during the broker outage /ws answered {} frames, {} ms per frame",
        replies.len(),
        per_frame.as_millis()
    );
    assert!(!replies.is_empty() && per_frame < Duration::from_secs(2));
    let health_now = health(&server).await?;
    assert_eq!(health_now["events"]["mqtt"]["connected"], false, "{health_now}");
    drop(outage);
    let restored = Instant::now();
    proxy.set_up(true);
    watcher
        .wait("online again", Duration::from_secs(20), |w| {
            w.last(&status).as_deref() == Some("online")
        })
        .await?;
    watcher
        .wait("states re-published", Duration::from_secs(5), |w| {
            [presence(obama), presence(katy), tracker_config(obama)]
                .iter()
                .all(|topic| w.on(topic).iter().any(|m| m.at > restored))
        })
        .await?;
    println!(
        "MEASURED: reconnected and re-published {} ms after the broker came back",
        restored.elapsed().as_millis()
    );
    let health_now = health(&server).await?;
    assert_eq!(health_now["events"]["mqtt"]["connected"], true, "{health_now}");
    assert!(health_now["events"]["mqtt"]["connects"].as_u64() >= Some(2), "{health_now}");
    assert!(health_now["events"]["events"].as_u64() >= Some(6), "{health_now}");

    // Home Assistant restarts: the configs come again.
    let ha_online = Instant::now();
    let client = Watcher::start(&[]).await?;
    client.client.publish(format!("{ha}/status"), QoS::AtLeastOnce, false, "online").await?;
    watcher
        .wait("configs after HA online", Duration::from_secs(10), |w| {
            w.on(&sensor_config(katy)).iter().any(|m| m.at > ha_online)
        })
        .await?;

    // Deleting Katy removes her entities and states (empty retained payloads).
    let deleted =
        reqwest::Client::new().delete(server.url(&format!("/api/persons/{katy}"))).send().await?;
    assert_eq!(deleted.status().as_u16(), 204);
    watcher
        .wait("empty configs", Duration::from_secs(10), |w| {
            w.last(&tracker_config(katy)).as_deref() == Some("")
                && w.last(&sensor_config(katy)).as_deref() == Some("")
                && w.last(&presence(katy)).as_deref() == Some("")
        })
        .await?;
    let left = retained(&format!("{ha}/#")).await?;
    assert!(
        !left.contains_key(&tracker_config(katy)) && !left.contains_key(&sensor_config(katy)),
        "{left:?}"
    );
    assert!(left.contains_key(&tracker_config(obama)), "Obama's entities stay: {left:?}");
    let states = retained(&format!("{prefix}/person/#")).await?;
    assert!(!states.keys().any(|t| t.contains(&format!("/person/{katy}/"))), "{states:?}");
    // Obama was seen again during the outage, so he is home again: retained either way.
    assert!(states.contains_key(&presence(obama)), "{states:?}");

    // The webhook got every event too, each signed with the secret over its exact body.
    let n_events = watcher.events(&prefix).len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.received.lock().unwrap().len() < n_events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = hook.received.lock().unwrap().clone();
    assert_eq!(received.len(), n_events, "one POST per event");
    for (signature, body) in &received {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(WEBHOOK_SECRET.as_bytes())?;
        mac.update(body);
        assert_eq!(signature, &hex::encode(mac.finalize().into_bytes()));
        let event: Value = serde_json::from_slice(body)?;
        assert!(["recognized", "unknown", "left"].contains(&event["type"].as_str().unwrap_or("")));
    }
    let mqtt_bodies: Vec<Value> = watcher.events(&prefix).into_iter().map(|(_, e)| e).collect();
    let hook_bodies: Vec<Value> =
        received.iter().map(|(_, body)| serde_json::from_slice(body)).collect::<Result<_, _>>()?;
    assert_eq!(hook_bodies, mqtt_bodies, "the same events, in the same order");
    let webhook = &health(&server).await?["events"]["webhook"];
    assert_eq!(webhook["delivered"].as_u64(), Some(n_events as u64), "{webhook}");
    assert_eq!(webhook["dropped"], 0);

    // Clean up the broker: drop every retained message of this run (the last will too).
    drop(server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for topic in retained(&format!("{ha}/#"))
        .await?
        .keys()
        .chain(retained(&format!("{prefix}/#")).await?.keys())
    {
        client.client.publish(topic.clone(), QoS::AtLeastOnce, true, Vec::<u8>::new()).await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}
