//! `/ws`: frames (or crops messages) in, one JSON reply per processed frame out.
//!
//! Per connection, one frame is in flight and at most one waits; a newer frame replaces the
//! waiting one (latest frame wins) and the replaced one is counted as dropped and gets no
//! reply. Replies go out in the order frames were processed. An undecodable frame or a failed
//! one is answered with `null` and the connection stays open; only transport errors, a close,
//! a stalled reader, a silent peer or shutdown end it.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ddfr_engine::decode::DecodeLimits;
use ddfr_protocol::{UNDECODABLE_REPLY, is_crops_message, parse_crops_message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::watch;

use crate::auth::origin_allowed;
use crate::error::{ApiError, error_chain};
use crate::pipeline::{FrameOutcome, Naming, StreamState, recognize_crops, recognize_frame};
use crate::state::{AppState, Services, today};

/// Bytes tungstenite may hold unsent before a write fails: a few replies' worth. Replies are
/// small JSON, so this bounds what a client that stops reading costs the server.
const MAX_WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// `GET /ws`: checks the `Origin`, then upgrades. (The bearer token, when configured, is
/// checked by the auth middleware before this runs.)
pub async fn ws_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&headers, state.config()) {
        tracing::warn!("refused a /ws handshake from a disallowed origin");
        return ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this origin may not open /ws",
        )
        .into_response();
    }
    let services = match state.services() {
        Ok(services) => services,
        Err(error) => return error.into_response(),
    };
    let max = state.config().max_ws_message_bytes;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .on_failed_upgrade(|error| tracing::warn!(%error, "websocket upgrade failed"))
        .on_upgrade(move |socket: WebSocket| {
            let (sink, stream) = socket.split();
            run_connection(sink, stream, state, services)
        })
}

/// The connection's tracks, used by one job at a time (one frame in flight per connection).
type SharedTracker = Arc<Mutex<StreamState>>;

/// Processes one frame or crops message and returns the reply text.
async fn process(
    services: Arc<Services>,
    bytes: Bytes,
    connection: u64,
    tracker: SharedTracker,
    at: Duration,
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
            if is_crops_message(&bytes) {
                match parse_crops_message(&bytes) {
                    Ok(message) => recognize_crops(pack, &gallery, &message, naming, today),
                    Err(error) => FrameOutcome::Undecodable(error.to_string()),
                }
            } else {
                recognize_frame(pack, &gallery, &bytes, &DecodeLimits::FRAME, naming, today)
            }
        })
        .await;
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

/// Whether a read error is a message over the size limit.
fn is_too_big(error: axum::Error) -> bool {
    error
        .into_inner()
        .downcast_ref::<tungstenite::Error>()
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// Why a connection ended, for the log.
#[derive(Debug, Clone, Copy)]
enum Ended {
    ClientClosed,
    TransportError,
    TooBig,
    Stalled,
    Silent,
    Shutdown,
}

/// The connection loop: generic over the socket halves so it can be driven by channels.
pub async fn run_connection<S, R>(
    mut sink: S,
    mut stream: R,
    state: AppState,
    services: Arc<Services>,
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
    let mut ping = tokio::time::interval(config.ws_ping_interval);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let opened = Instant::now();
    let tracker: SharedTracker =
        Arc::new(Mutex::new(StreamState::new(services.min_similarity, services.visitors.clone())));
    let mut pending: Option<Bytes> = None;
    let mut in_flight: Option<std::pin::Pin<Box<dyn Future<Output = String> + Send>>> = None;
    let (mut n_frames, mut n_dropped, mut n_replies) = (0u64, 0u64, 0u64);

    let ended = loop {
        if *shutdown.borrow() {
            let _ = sink.send(close_message(close_code::AWAY, "server shutting down")).await;
            break Ended::Shutdown;
        }
        if in_flight.is_none()
            && let Some(bytes) = pending.take()
        {
            let job = process(
                Arc::clone(&services),
                bytes,
                connection,
                Arc::clone(&tracker),
                opened.elapsed(),
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
            message = stream.next() => match message {
                None => break Ended::ClientClosed,
                Some(Ok(Message::Binary(bytes))) => {
                    last_heard = Instant::now();
                    n_frames += 1;
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    if pending.replace(bytes).is_some() {
                        n_dropped += 1;
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    // Not an image: answered with null like any undecodable frame.
                    last_heard = Instant::now();
                    n_frames += 1;
                    if pending.replace(Bytes::from(text.as_str().to_owned())).is_some() {
                        n_dropped += 1;
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => last_heard = Instant::now(),
                Some(Ok(Message::Close(_))) => break Ended::ClientClosed,
                Some(Err(error)) => {
                    if is_too_big(error) {
                        let _ = sink.send(close_message(close_code::SIZE, "message too big")).await;
                        break Ended::TooBig;
                    }
                    break Ended::TransportError;
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > config.ws_ping_interval * 2 {
                    let _ = sink.send(close_message(close_code::POLICY, "no pong")).await;
                    break Ended::Silent;
                }
                if tokio::time::timeout(config.ws_send_timeout, sink.send(Message::Ping(Bytes::new()))).await.is_err() {
                    break Ended::Stalled;
                }
            }
        }
    };
    if matches!(ended, Ended::Stalled) {
        tracing::warn!(connection, "client stopped reading; connection dropped");
    }
    let _ = tokio::time::timeout(config.ws_send_timeout, sink.close()).await;
    counters.open.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(connection, reason = ?ended, frames = n_frames, replies = n_replies, dropped = n_dropped, "websocket disconnected");
}
