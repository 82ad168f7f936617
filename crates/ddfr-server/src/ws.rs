//! `/ws`: frames (or crops messages) in, one JSON reply per processed frame out.
//!
//! Per connection, one frame is in flight and at most one waits; a newer frame replaces the
//! waiting one (latest frame wins) and the replaced one is counted as dropped and gets no
//! reply. Replies go out in the order frames were processed. An undecodable frame or a failed
//! one is answered with `null` and the connection stays open; only transport errors, a close,
//! a stalled reader, a peer that stops answering pings (dead or not reading), the optional idle
//! timeout (no frame for `ws_idle_timeout`: close 1000) or shutdown end it. At most
//! `max_ws_connections` connections are open at once, and at most `max_ws_connections_per_key`
//! per principal (an API key or an environment token); more handshakes get 503. Frames faster
//! than `ws_max_fps` per connection are dropped. A connection opened with an API key is closed
//! with 1008 when the key is revoked or expires.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ddfr_engine::decode::DecodeLimits;
use ddfr_protocol::{UNDECODABLE_REPLY, is_crops_message, parse_crops_message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::watch;

use crate::error::{ApiError, error_chain};
use crate::keys::{KeyWatch, Principal, PrincipalSlot};
use crate::pipeline::{FrameOutcome, Naming, StreamState, recognize_crops, recognize_frame};
use crate::state::{AppState, Services, today};

/// Bytes tungstenite may hold unsent before a write fails: a few replies' worth. Replies are
/// small JSON, so this bounds what a client that stops reading costs the server.
const MAX_WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// How long sending a close frame to a peer that may not be reading is attempted.
const CLOSE_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Close code for a peer that stopped answering pings (dead, or not reading its replies).
pub const CLOSE_UNRESPONSIVE: u16 = close_code::POLICY;

/// Close code for a connection whose API key was revoked or expired.
pub const CLOSE_KEY_ENDED: u16 = close_code::POLICY;

/// A taken `/ws` connection slot, given back on drop (also when the upgrade fails).
#[derive(Debug)]
pub struct ConnectionSlot(AppState);

impl ConnectionSlot {
    /// Takes a slot when fewer than `max_ws_connections` are taken; `None` otherwise (and the
    /// refusal is counted).
    pub fn take(state: &AppState) -> Option<Self> {
        let max = state.config().max_ws_connections as u64;
        let counters = state.ws_counters();
        match counters.slots.fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
            (taken < max).then_some(taken + 1)
        }) {
            Ok(_) => Some(Self(state.clone())),
            Err(_) => {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.ws_counters().slots.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Per-connection frame-rate cap on frames *processed*: a frame waits for a token before it
/// starts (at most 1/fps), and a newer frame replaces a waiting one (counted as dropped), so a
/// client that waits for each reply is slowed, never stalled. A token bucket refilled at `fps` tokens per second holding
/// at most a tenth of a second's worth (at least one), so a client sending at the cap with
/// jitter loses nothing while a faster one is held to the cap on average.
#[derive(Debug)]
pub struct FrameRate {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl FrameRate {
    /// A full bucket for `fps` frames per second (at least 1).
    pub fn new(fps: u32, now: Instant) -> Self {
        let per_second = f64::from(fps.max(1));
        let capacity = (per_second / 10.0).max(1.0);
        Self { per_second, capacity, tokens: capacity, last: now }
    }

    /// Takes a token for a frame starting at `now`, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::try_from_secs_f64((1.0 - self.tokens) / self.per_second)
                .unwrap_or(Duration::from_millis(1)))
        }
    }

    /// Whether a frame starting at `now` is within the rate (and takes its token).
    pub fn admit(&mut self, now: Instant) -> bool {
        self.try_take(now).is_ok()
    }
}

/// `GET /ws`: takes a connection slot, then upgrades. (`Host` and `Origin` are checked by
/// [`crate::guard`], the bearer token, when configured, by the auth middleware, before this
/// runs.)
pub async fn ws_handler(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Response {
    let principal = principal.map(|Extension(principal)| principal);
    let camera = match crate::events::camera_of_query(query.as_deref()) {
        Ok(camera) => camera,
        Err(error) => return error.into_response(),
    };
    let services = match state.services() {
        Ok(services) => services,
        Err(error) => return error.into_response(),
    };
    let Some(slot) = ConnectionSlot::take(&state) else {
        tracing::warn!(
            max = state.config().max_ws_connections,
            "refused a /ws handshake: too many connections"
        );
        return ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            format!(
                "at most {} WebSocket connections may be open at once; retry later",
                state.config().max_ws_connections
            ),
        )
        .into_response();
    };
    let per_key = state.config().max_ws_connections_per_key;
    let principal_slot = match principal {
        Some(principal) => match PrincipalSlot::take(&state, principal, per_key) {
            Some(slot) => Some(slot),
            None => {
                tracing::warn!(
                    principal = principal.label(),
                    max = per_key,
                    "refused a /ws handshake: too many connections for this key"
                );
                return ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_connections",
                    format!(
                        "at most {per_key} WebSocket connections may be open at once per key; \
                         retry later"
                    ),
                )
                .into_response();
            }
        },
        None => None,
    };
    let max = state.config().max_ws_message_bytes;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .on_failed_upgrade(|error| tracing::warn!(%error, "websocket upgrade failed"))
        .on_upgrade(move |socket: WebSocket| async move {
            let _slots = (slot, principal_slot);
            let (sink, stream) = socket.split();
            let feed = state.events().map(|events| Arc::new(events.open_camera(&camera)));
            run_connection_with(sink, stream, state, services, principal, feed).await;
        })
}

/// The connection's tracks, used by one job at a time (one frame in flight per connection).
type SharedTracker = Arc<Mutex<StreamState>>;

/// Processes one frame or crops message and returns the reply text.
async fn process(
    services: Arc<Services>,
    limits: DecodeLimits,
    bytes: Bytes,
    connection: u64,
    tracker: SharedTracker,
    at: Duration,
    feed: Option<Arc<ddfr_events::CameraFeed>>,
) -> String {
    let today = match today() {
        Ok(today) => today,
        Err(error) => {
            tracing::error!(%error, "cannot read today's date");
            return UNDECODABLE_REPLY.to_owned();
        }
    };
    let gallery = Arc::clone(&services.gallery);
    let outcome = services
        .pool
        .run(move |pack| {
            let mut stream = tracker.lock().unwrap_or_else(PoisonError::into_inner);
            let naming = Naming::Stream { stream: &mut stream, at };
            let outcome = if is_crops_message(&bytes) {
                match parse_crops_message(&bytes) {
                    Ok(message) => recognize_crops(pack, &gallery, &message, naming, today),
                    Err(error) => FrameOutcome::Undecodable(error.to_string()),
                }
            } else {
                recognize_frame(pack, &gallery, &bytes, &limits, naming, today)
            };
            (outcome, stream.take_frame_tracks())
        })
        .await;
    // The events get the tracker's decisions without waiting (a full queue drops them).
    let outcome = outcome.map(|(outcome, frame_tracks)| {
        if let (Some(feed), Some((faces, live))) = (&feed, frame_tracks) {
            feed.frame(faces, live);
        }
        outcome
    });
    match outcome {
        Ok(FrameOutcome::Reply(reply)) => match serde_json::to_string(&reply) {
            Ok(text) => text,
            Err(error) => {
                tracing::error!(connection, %error, "cannot serialise a reply");
                UNDECODABLE_REPLY.to_owned()
            }
        },
        Ok(FrameOutcome::Undecodable(reason)) => {
            tracing::debug!(connection, reason, "undecodable frame answered with null");
            UNDECODABLE_REPLY.to_owned()
        }
        Ok(FrameOutcome::Failed(error)) => {
            tracing::error!(connection, error = %error_chain(&error), "frame processing failed");
            UNDECODABLE_REPLY.to_owned()
        }
        Err(error) => {
            tracing::error!(connection, error = %error_chain(&error), "frame processing failed");
            UNDECODABLE_REPLY.to_owned()
        }
    }
}

/// Awaits the future when there is one; never resolves otherwise (for `select!`).
async fn in_flight_done<F: Future + Unpin>(job: &mut Option<F>) -> F::Output {
    match job {
        Some(job) => job.await,
        None => std::future::pending().await,
    }
}

fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))
}

/// Sleeps until `deadline`; never resolves without one (for `select!`).
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The close code and reason a read error calls for: 1009 for a message over the size limit,
/// 1002 for a protocol violation (reserved bits or opcodes, an oversized or fragmented control
/// frame, a bad fragment sequence, an unmasked frame), 1007 for invalid UTF-8 in a text
/// message; `None` for transport errors (nobody to tell).
fn close_for_read_error(error: axum::Error) -> Option<(u16, &'static str)> {
    match error.into_inner().downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Capacity(_) => Some((close_code::SIZE, "message too big")),
        tungstenite::Error::Protocol(_) => Some((close_code::PROTOCOL, "protocol error")),
        tungstenite::Error::Utf8(_) => Some((close_code::INVALID, "invalid UTF-8")),
        _ => None,
    }
}

/// Why a connection ended, for the log.
#[derive(Debug, Clone, Copy)]
enum Ended {
    ClientClosed,
    TransportError,
    TooBig,
    ProtocolError,
    Stalled,
    Unresponsive,
    Idle,
    Shutdown,
    KeyRevokedOrExpired,
}

/// The connection loop: generic over the socket halves so it can be driven by channels.
pub async fn run_connection<S, R>(sink: S, stream: R, state: AppState, services: Arc<Services>)
where
    S: Sink<Message, Error = axum::Error> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    run_connection_as(sink, stream, state, services, None).await;
}

/// [`run_connection`] for a connection authenticated as `principal`: when that is an API key,
/// the connection is closed with [`CLOSE_KEY_ENDED`] as soon as the key is revoked or expires.
pub async fn run_connection_as<S, R>(
    sink: S,
    stream: R,
    state: AppState,
    services: Arc<Services>,
    principal: Option<Principal>,
) where
    S: Sink<Message, Error = axum::Error> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    run_connection_with(sink, stream, state, services, principal, None).await;
}

/// [`run_connection_as`] feeding each frame's tracker decisions to the home-automation events
/// of its camera, when `feed` is given.
pub async fn run_connection_with<S, R>(
    mut sink: S,
    mut stream: R,
    state: AppState,
    services: Arc<Services>,
    principal: Option<Principal>,
    feed: Option<Arc<ddfr_events::CameraFeed>>,
) where
    S: Sink<Message, Error = axum::Error> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let counters = state.ws_counters();
    counters.open.fetch_add(1, Ordering::Relaxed);
    tracing::info!(connection, "websocket connected");

    let config = state.config().clone();
    let mut shutdown: watch::Receiver<bool> = state.shutdown_signal();
    let mut key_watch = KeyWatch::new(&state, principal);
    let mut ping = tokio::time::interval(config.ws_ping_interval);
    ping.tick().await;
    // The ping awaiting its pong: its payload and when the pong is due.
    let mut ping_seq = 0u64;
    let mut pong_due: Option<(u64, tokio::time::Instant)> = None;
    let mut rate = FrameRate::new(config.ws_max_fps, Instant::now());
    // When the last frame (or the handshake) arrived, for the idle timeout.
    let mut last_frame = tokio::time::Instant::now();
    let opened = Instant::now();
    let tracker: SharedTracker =
        Arc::new(Mutex::new(StreamState::new(services.min_similarity, services.visitors.clone())));
    let mut pending: Option<Bytes> = None;
    let mut in_flight: Option<std::pin::Pin<Box<dyn Future<Output = String> + Send>>> = None;
    let (mut n_frames, mut n_dropped, mut n_replies, mut n_rate_limited) = (0u64, 0u64, 0u64, 0u64);

    let ended = loop {
        if *shutdown.borrow() {
            let _ = sink.send(close_message(close_code::AWAY, "server shutting down")).await;
            break Ended::Shutdown;
        }
        // When a frame waits only for the frame-rate cap: the instant its token is due.
        let mut rate_due = None;
        if in_flight.is_none()
            && pending.is_some()
            && let Err(wait) = rate.try_take(Instant::now())
        {
            rate_due = Some(tokio::time::Instant::now() + wait);
        } else if in_flight.is_none()
            && let Some(bytes) = pending.take()
        {
            let job = process(
                Arc::clone(&services),
                config.frame_limits,
                bytes,
                connection,
                Arc::clone(&tracker),
                opened.elapsed(),
                feed.clone(),
            );
            in_flight = Some(Box::pin(job));
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            reply = in_flight_done(&mut in_flight) => {
                in_flight = None;
                n_replies += 1;
                match tokio::time::timeout(config.ws_send_timeout, sink.send(Message::text(reply))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break Ended::TransportError,
                    Err(_) => break Ended::Stalled,
                }
            }
            () = sleep_until(rate_due) => {}
            () = key_watch.ended() => {
                let close = close_message(CLOSE_KEY_ENDED, "API key revoked or expired");
                let _ = tokio::time::timeout(CLOSE_SEND_TIMEOUT, sink.send(close)).await;
                break Ended::KeyRevokedOrExpired;
            }
            () = sleep_until(pong_due.map(|(_, due)| due)) => {
                counters.unresponsive.fetch_add(1, Ordering::Relaxed);
                let close = close_message(CLOSE_UNRESPONSIVE, "no pong: peer dead or not reading");
                let _ = tokio::time::timeout(CLOSE_SEND_TIMEOUT, sink.send(close)).await;
                break Ended::Unresponsive;
            }
            () = sleep_until(config.ws_idle_timeout.map(|idle| last_frame + idle)) => {
                let close = close_message(close_code::NORMAL, "idle: no frame within the idle timeout");
                let _ = tokio::time::timeout(CLOSE_SEND_TIMEOUT, sink.send(close)).await;
                break Ended::Idle;
            }
            message = stream.next() => {
                let frame = match message {
                    None => break Ended::ClientClosed,
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    // Not an image: answered with null like any undecodable frame.
                    Some(Ok(Message::Text(text))) => Bytes::from(text.as_str().to_owned()),
                    Some(Ok(Message::Pong(payload))) => {
                        if pong_due.is_some_and(|(seq, _)| payload.as_ref() == seq.to_be_bytes()) {
                            pong_due = None;
                        }
                        continue;
                    }
                    Some(Ok(Message::Ping(_))) => continue,
                    Some(Ok(Message::Close(_))) => break Ended::ClientClosed,
                    Some(Err(error)) => {
                        let Some((code, reason)) = close_for_read_error(error) else {
                            break Ended::TransportError;
                        };
                        let close = sink.send(close_message(code, reason));
                        let _ = tokio::time::timeout(CLOSE_SEND_TIMEOUT, close).await;
                        break if code == close_code::SIZE { Ended::TooBig } else { Ended::ProtocolError };
                    }
                };
                n_frames += 1;
                last_frame = tokio::time::Instant::now();
                counters.received.fetch_add(1, Ordering::Relaxed);
                if pending.replace(frame).is_some() {
                    n_dropped += 1;
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    if in_flight.is_none() {
                        // Nothing in flight: the replaced frame waited only for the rate cap.
                        n_rate_limited += 1;
                        counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = ping.tick() => {
                if pong_due.is_none() {
                    ping_seq += 1;
                    let ping = Message::Ping(Bytes::copy_from_slice(&ping_seq.to_be_bytes()));
                    if tokio::time::timeout(config.ws_send_timeout, sink.send(ping)).await.is_err() {
                        break Ended::Stalled;
                    }
                    pong_due = Some((ping_seq, tokio::time::Instant::now() + config.ws_pong_timeout));
                }
            }
        }
    };
    let close_timeout = match ended {
        Ended::Stalled | Ended::Unresponsive => {
            tracing::warn!(connection, reason = ?ended, "client stopped reading or answering; connection dropped");
            CLOSE_SEND_TIMEOUT
        }
        _ => config.ws_send_timeout,
    };
    let _ = tokio::time::timeout(close_timeout, sink.close()).await;
    counters.open.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(connection, reason = ?ended, frames = n_frames, replies = n_replies, dropped = n_dropped, rate_limited = n_rate_limited, "websocket disconnected");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;

    #[test]
    fn frame_rate_holds_a_fast_sender_to_the_cap_and_spares_a_jittery_one() {
        let start = Instant::now();
        // 100 FPS for 10 s against a 30 FPS cap.
        let mut rate = FrameRate::new(30, start);
        let admitted =
            (0..1000).filter(|i| rate.admit(start + Duration::from_millis(i * 10))).count();
        assert!((295..=305).contains(&admitted), "{admitted} of 1000 frames admitted");
        // 30 FPS with +-5 ms jitter: nothing dropped.
        let mut rate = FrameRate::new(30, start);
        let dropped = (0..300u64)
            .filter(|i| {
                let jitter = if i % 2 == 0 { 5 } else { 0 };
                !rate.admit(start + Duration::from_micros(i * 33_334 + jitter * 1000))
            })
            .count();
        assert_eq!(dropped, 0);
        // An idle pause does not bank more than a tenth of a second's worth.
        let mut rate = FrameRate::new(30, start);
        let later = start + Duration::from_secs(60);
        let burst = (0..10).filter(|_| rate.admit(later)).count();
        assert_eq!(burst, 3);
    }

    #[test]
    fn connection_slots_are_capped_and_given_back() {
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
        config.max_ws_connections = 2;
        let state = AppState::new(config);
        let first = ConnectionSlot::take(&state).unwrap();
        let second = ConnectionSlot::take(&state).unwrap();
        assert!(ConnectionSlot::take(&state).is_none());
        assert_eq!(state.ws_counters().refused.load(Ordering::Relaxed), 1);
        drop(first);
        let third = ConnectionSlot::take(&state).unwrap();
        assert!(ConnectionSlot::take(&state).is_none());
        drop((second, third));
        assert_eq!(state.ws_counters().slots.load(Ordering::Relaxed), 0);
    }
}
