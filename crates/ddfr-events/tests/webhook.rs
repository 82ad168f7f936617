//! Webhooks against a real HTTP receiver on 127.0.0.1: the signature verifies, 500s are
//! retried with back-off, the sender gives up after the limit, redirects are not followed, and
//! the queue bound holds while the receiver hangs.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ddfr_core::PersonId;
use ddfr_events::{
    Clock, Events, EventsConfig, PersonDirectory, PersonLabel, SIGNATURE_HEADER, TrackSeen,
    WebhookConfig, sign,
};
use ddfr_protocol::{Event, EventKind, Timestamp};

const SECRET: &str = "correct horse battery staple";

#[derive(Debug)]
struct Directory;

impl PersonDirectory for Directory {
    fn version(&self) -> u64 {
        1
    }
    fn persons(&self) -> Vec<PersonLabel> {
        vec![PersonLabel { id: PersonId(1), name: "Ada".into(), surname: "Lovelace".into() }]
    }
}

/// Wall-clock milliseconds, so the hub's idle timer and the test agree.
#[derive(Debug)]
struct Wall;

impl Clock for Wall {
    fn now(&self) -> Timestamp {
        ddfr_events::SystemClock.now()
    }
}

/// What the receiver got, and the statuses it answers with (then 200).
#[derive(Debug, Default)]
struct Receiver {
    requests: Mutex<Vec<(HeaderMap, Bytes, Instant)>>,
    statuses: Mutex<VecDeque<StatusCode>>,
    hang: std::sync::atomic::AtomicBool,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    receiver.requests.lock().unwrap().push((headers, body, Instant::now()));
    if receiver.hang.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    receiver.statuses.lock().unwrap().pop_front().unwrap_or(StatusCode::OK)
}

async fn start_receiver() -> (Arc<Receiver>, String) {
    let receiver = Arc::new(Receiver::default());
    let app = Router::new()
        .route("/hook", post(receive))
        .route(
            "/moved",
            post(|| async { (StatusCode::TEMPORARY_REDIRECT, [("location", "/hook")]) }),
        )
        .with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, format!("http://{addr}"))
}

fn events_with(webhook: WebhookConfig) -> Events {
    let config = EventsConfig {
        unknown_delay: Duration::ZERO,
        webhook: Some(webhook),
        ..EventsConfig::default()
    };
    Events::start(config, Arc::new(Directory), Arc::new(Wall)).unwrap()
}

/// Produces `n` `recognized` events: one confirmed track each.
fn recognize(events: &Events, n: u64) -> ddfr_events::CameraFeed {
    let feed = events.open_camera("door");
    let ids: Vec<u64> = (1..=n).collect();
    for id in &ids {
        let face = TrackSeen { track_id: *id, person: Some(PersonId(1)), confirmed: true };
        feed.frame(vec![face], ids.clone());
    }
    feed
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_delivered_event_is_the_event_json_signed_with_the_secret() {
    let (receiver, base) = start_receiver().await;
    let events = events_with(WebhookConfig::new(format!("{base}/hook"), SECRET));
    let _feed = recognize(&events, 1);
    wait_for("the delivery", Duration::from_secs(10), || events.health().webhook.delivered == 1)
        .await;
    let requests = receiver.requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let (headers, body, _) = &requests[0];
    let signature = headers[SIGNATURE_HEADER].to_str().unwrap();
    assert_eq!(signature, sign(SECRET.as_bytes(), body), "HMAC-SHA256 of the exact body");
    assert_eq!(signature.len(), 64);
    assert_ne!(signature, sign(b"another secret", body));
    assert_eq!(headers["content-type"], "application/json");
    let event: Event = serde_json::from_slice(body).unwrap();
    assert_eq!(event.kind, EventKind::Recognized);
    assert_eq!((event.camera.as_str(), event.track_id, event.person_id), ("door", 1, Some(1)));
    assert_eq!((event.name.as_str(), event.surname.as_deref()), ("Ada", Some("Lovelace")));
    let health = events.health();
    assert!(health.webhook.configured);
    assert_eq!((health.webhook.failed_attempts, health.webhook.gave_up), (0, 0));
}

#[tokio::test]
async fn server_errors_are_retried_with_growing_waits_then_delivered() {
    let (receiver, base) = start_receiver().await;
    receiver.statuses.lock().unwrap().extend([StatusCode::INTERNAL_SERVER_ERROR; 3]);
    let mut config = WebhookConfig::new(format!("{base}/hook"), SECRET);
    config.first_backoff = Duration::from_millis(100);
    let events = events_with(config);
    let _feed = recognize(&events, 1);
    wait_for("the delivery", Duration::from_secs(10), || events.health().webhook.delivered == 1)
        .await;
    let requests = receiver.requests.lock().unwrap();
    assert_eq!(requests.len(), 4, "three 500s, then the 200");
    let bodies: Vec<&Bytes> = requests.iter().map(|(_, body, _)| body).collect();
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]), "the same event each time");
    let gaps: Vec<Duration> = requests.windows(2).map(|pair| pair[1].2 - pair[0].2).collect();
    assert!(gaps[0] >= Duration::from_millis(90), "first wait {:?}", gaps[0]);
    assert!(gaps[1] >= Duration::from_millis(190), "second wait doubles: {:?}", gaps[1]);
    assert!(gaps[2] >= Duration::from_millis(390), "third wait doubles: {:?}", gaps[2]);
    let health = events.health();
    assert_eq!((health.webhook.failed_attempts, health.webhook.gave_up), (3, 0));
}

#[tokio::test]
async fn the_sender_gives_up_after_the_last_attempt_and_goes_on_with_the_next_event() {
    let (receiver, base) = start_receiver().await;
    receiver.statuses.lock().unwrap().extend([StatusCode::SERVICE_UNAVAILABLE; 3]);
    let mut config = WebhookConfig::new(format!("{base}/hook"), SECRET);
    config.first_backoff = Duration::from_millis(10);
    config.max_attempts = 3;
    let events = events_with(config);
    let _feed = recognize(&events, 2);
    wait_for("both outcomes", Duration::from_secs(10), || {
        let webhook = events.health().webhook;
        webhook.gave_up == 1 && webhook.delivered == 1
    })
    .await;
    assert_eq!(receiver.requests.lock().unwrap().len(), 4, "3 attempts, then the second event");
    assert_eq!(events.health().webhook.failed_attempts, 3);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (receiver, base) = start_receiver().await;
    let mut config = WebhookConfig::new(format!("{base}/moved"), SECRET);
    config.max_attempts = 2;
    config.first_backoff = Duration::from_millis(10);
    let events = events_with(config);
    let _feed = recognize(&events, 1);
    wait_for("giving up", Duration::from_secs(10), || events.health().webhook.gave_up == 1).await;
    assert!(receiver.requests.lock().unwrap().is_empty(), "the redirect target got nothing");
    assert_eq!(events.health().webhook.delivered, 0);
}

#[tokio::test]
async fn a_hanging_receiver_costs_a_bounded_queue_and_the_rest_is_dropped_and_counted() {
    let (receiver, base) = start_receiver().await;
    receiver.hang.store(true, Ordering::Relaxed);
    let mut config = WebhookConfig::new(format!("{base}/hook"), SECRET);
    config.queue_capacity = 4;
    config.timeout = Duration::from_secs(20);
    let events = events_with(config);
    let started = Instant::now();
    let _feed = recognize(&events, 50);
    // The frame path never waits: feeding 50 frames takes no time at all.
    assert!(started.elapsed() < Duration::from_millis(200));
    wait_for("all 50 events", Duration::from_secs(10), || events.health().events == 50).await;
    wait_for("one request in flight", Duration::from_secs(10), || {
        !receiver.requests.lock().unwrap().is_empty()
    })
    .await;
    let dropped = events.health().webhook.dropped;
    // One in flight, at most 4 queued: every other event was dropped, and counted.
    assert!((45..=46).contains(&dropped), "dropped {dropped}");
    assert_eq!(receiver.requests.lock().unwrap().len(), 1);
    assert!(50 - dropped - 1 <= 4, "at most the queue's capacity waits");
}
