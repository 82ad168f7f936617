//! The `/ws` connection: opening it, reconnecting with exponential back-off, and turning each
//! answer into labels, round-trip time and FPS.
//!
//! A close with code 1008 (the server revoked or expired the key) or a handshake that never
//! opened is checked against `GET /api/session`: when the browser is no longer authenticated
//! the view stops reconnecting and sends the user to the login page with the reason.

use std::cell::RefCell;
use std::rc::Rc;

use ddfr_protocol::FrameReply;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::Live;
use super::draw::{draw, render_faces};
use super::labels::labels_from_reply;
use super::stats::render_stats;
use crate::dom::{listen, log, now_ms, set_timeout, window};

/// First reconnect delay; doubled after each failure up to [`MAX_BACKOFF_MS`].
pub(super) const FIRST_BACKOFF_MS: i32 = 500;
/// Longest reconnect delay.
const MAX_BACKOFF_MS: i32 = 10_000;
/// The close code the server sends when a key is revoked or expires (policy violation).
const POLICY_VIOLATION: u16 = 1008;

/// The `/ws` connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Connection {
    Offline,
    Connecting,
    Open,
    Closed,
}

impl Connection {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Connection::Offline => "offline",
            Connection::Connecting => "connecting",
            Connection::Open => "connected",
            Connection::Closed => "disconnected",
        }
    }
}

/// A message waiting for its answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    pub(super) sent_at: f64,
}

/// Opens `/ws` and wires its events; on close, retries with exponential back-off.
pub(super) fn connect(state: &Rc<RefCell<Live>>) {
    let url = {
        let location = window().location();
        let scheme = if location.protocol().unwrap_or_default() == "https:" { "wss" } else { "ws" };
        format!("{scheme}://{}/ws", location.host().unwrap_or_default())
    };
    let Ok(ws) = WebSocket::new(&url) else {
        schedule_reconnect(state);
        return;
    };
    ws.set_binary_type(BinaryType::Arraybuffer);
    {
        let mut s = state.borrow_mut();
        s.connection = Connection::Connecting;
        s.ws = Some(ws.clone());
        render_stats(&s);
    }
    let on_open = state.clone();
    listen(&ws, "open", move |_| {
        let mut s = on_open.borrow_mut();
        s.connection = Connection::Open;
        s.backoff_ms = FIRST_BACKOFF_MS;
        s.in_flight = None;
        render_stats(&s);
    });
    let on_message = state.clone();
    listen(&ws, "message", move |event| {
        let Some(event) = event.dyn_ref::<MessageEvent>() else { return };
        let Some(text) = event.data().as_string() else { return };
        on_reply(&on_message, &text);
    });
    let on_close = state.clone();
    let closed_ws = ws.clone();
    listen(&ws, "close", move |event| {
        let still_current = on_close.borrow().ws.as_ref() == Some(&closed_ws);
        if !still_current {
            return;
        }
        let code = event.dyn_ref::<CloseEvent>().map_or(0, CloseEvent::code);
        let never_opened = on_close.borrow().connection == Connection::Connecting;
        {
            let mut s = on_close.borrow_mut();
            s.connection = Connection::Closed;
            s.ws = None;
            s.in_flight = None;
            s.labels.clear();
            render_stats(&s);
        }
        if code == POLICY_VIOLATION || never_opened {
            let state = on_close.clone();
            spawn_local(async move { recheck_session(&state, code).await });
        } else {
            schedule_reconnect(&on_close);
        }
    });
}

/// After a 1008 close or a refused handshake: when the session no longer authenticates, halt
/// (no reconnect loop) and go to the login page saying why; otherwise reconnect as usual.
async fn recheck_session(state: &Rc<RefCell<Live>>, code: u16) {
    let session = crate::api::session().await;
    let logged_out = matches!(&session, Ok(s) if s.auth_required && !s.authenticated);
    if !logged_out {
        schedule_reconnect(state);
        return;
    }
    {
        let mut s = state.borrow_mut();
        s.halted = true;
        render_stats(&s);
    }
    let reason = if code == POLICY_VIOLATION {
        "The server closed the live connection: this key was revoked or has expired. Log in with a valid key."
    } else {
        "The live view needs a login: this browser has no valid session (it ended, or was never made). Log in with a key."
    };
    log(&format!("/ws closed ({code}); session no longer valid"));
    let _ = crate::refresh_session().await;
    crate::login_with_reason(reason);
}

fn schedule_reconnect(state: &Rc<RefCell<Live>>) {
    let delay = {
        let mut s = state.borrow_mut();
        let delay = s.backoff_ms;
        s.backoff_ms = (s.backoff_ms * 2).min(MAX_BACKOFF_MS);
        delay
    };
    let again = state.clone();
    set_timeout(delay, move || {
        if !again.borrow().halted {
            connect(&again);
        }
    });
}

/// Handles one answer: labels, round-trip time, FPS.
fn on_reply(state: &Rc<RefCell<Live>>, text: &str) {
    let mut s = state.borrow_mut();
    let now = now_ms();
    if let Some(sent) = s.in_flight.take() {
        s.rtt_ms = Some(now - sent.sent_at);
    }
    s.replies += 1;
    s.frames += 1;
    s.fps.tick(now);
    match serde_json::from_str::<Option<FrameReply>>(text) {
        Ok(Some(reply)) => s.labels = labels_from_reply(&reply),
        Ok(None) => s.labels.clear(),
        Err(error) => log(&format!("unexpected /ws answer: {error}")),
    }
    draw(&s);
    render_faces(&s);
    render_stats(&s);
}
