//! The live view: camera → in-browser detection → crops (or full frames) over `/ws` → labelled
//! boxes. With no server it keeps detecting and boxing faces locally (the offline demo).
//!
//! Frames are paced by the server: at most one message is in flight, the next frame is
//! captured only when its answer arrived. Detection runs on the main thread (BlazeFace
//! full-range on tract/wasm takes tens of milliseconds, measured and shown on screen).
//!
//! This module holds the shared state and builds the view; the work is split by concern:
//! [`camera`] (getUserMedia, picker, captures), [`frames`] (the frame loop: pacing, detection,
//! sending), [`connection`] (`/ws`, reconnects, replies), [`labels`] (what a face is called),
//! [`draw`] (boxes on the overlay and the text list) and [`stats`] (the numbers under the video).

mod camera;
mod connection;
mod draw;
mod frames;
mod labels;
mod stats;

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{
    CanvasRenderingContext2d, HtmlCanvasElement, HtmlSelectElement, HtmlVideoElement, MediaStream,
    WebSocket,
};

pub use camera::capture_photo;

use crate::dom::{El, by_id, clear, document, listen, request_animation_frame, window};
use camera::{fill_camera_picker, start_camera};
use connection::{Connection, FIRST_BACKOFF_MS, InFlight, connect};
use frames::{DetectorState, load_detector, tick};
use labels::Label;
use stats::{ByteStats, FpsCounter, render_stats};

/// What goes to the server for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Faces detected here, crops sent (nothing when no face).
    Crops,
    /// The whole frame as JPEG.
    FullFrame,
}

/// The live view's state, shared by the frame loop and the event handlers.
#[derive(Debug)]
pub struct Live {
    offline_only: bool,
    detector: DetectorState,
    mode: Mode,
    paused: bool,
    ws: Option<WebSocket>,
    connection: Connection,
    /// Stopped reconnecting because the session is no longer valid (see [`resume`]).
    halted: bool,
    backoff_ms: i32,
    in_flight: Option<InFlight>,
    labels: Vec<Label>,
    fps: FpsCounter,
    detect_ms: Option<f64>,
    rtt_ms: Option<f64>,
    last_bytes: u64,
    crops_bytes: ByteStats,
    full_bytes: ByteStats,
    frames: u64,
    replies: u64,
    stream: Option<MediaStream>,
    camera_error: Option<String>,
    video: HtmlVideoElement,
    overlay: HtmlCanvasElement,
    work: HtmlCanvasElement,
}

thread_local! {
    static LIVE: RefCell<Option<Rc<RefCell<Live>>>> = const { RefCell::new(None) };
}

fn live() -> Option<Rc<RefCell<Live>>> {
    LIVE.with(|cell| cell.borrow().clone())
}

fn context_2d(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten().and_then(|c| c.dyn_into().ok())
}

/// Builds the live view into `root` and starts camera, detector and connection.
/// `offline_only` keeps it from ever contacting the server (`?offline`).
pub fn mount(root: &web_sys::Element, offline_only: bool) {
    let video = El::new("video")
        .attr("id", "video")
        .attr("autoplay", "")
        .attr("muted", "")
        .attr("playsinline", "")
        .attr("aria-label", "Camera");
    let overlay = El::new("canvas").attr("id", "overlay").attr("aria-hidden", "true");
    let stage = El::new("div").class("stage").child(video.clone()).child(overlay.clone());
    let camera_select = El::new("select").attr("id", "camera").attr("aria-label", "Camera");
    let mode_select = El::new("select")
        .attr("id", "mode")
        .attr("aria-label", "What is sent to the server")
        .child(El::new("option").attr("value", "crops").text("Crops (detect here)"))
        .child(El::new("option").attr("value", "full").text("Full frames"));
    let pause = El::new("button").attr("id", "pause").attr("type", "button").text("Pause");
    let controls = El::new("div")
        .class("controls")
        .child(El::new("label").attr("for", "camera").text("Camera"))
        .child(camera_select.clone())
        .child(El::new("label").attr("for", "mode").text("Mode"))
        .child(mode_select.clone())
        .child(pause.clone());
    let stats = El::new("dl").attr("id", "stats").attr("aria-live", "off").class("stats");
    let status = El::new("p").attr("id", "live-status").attr("role", "status");
    let faces = El::new("ul").attr("id", "face-list").attr("aria-live", "polite");
    clear(root);
    let _ = root.append_child(controls.el());
    let _ = root.append_child(status.el());
    let _ = root.append_child(stage.el());
    let _ = root.append_child(stats.el());
    let _ = root.append_child(
        El::new("section")
            .attr("aria-label", "Faces in view")
            .child(El::new("h2").text("In view"))
            .child(faces)
            .el(),
    );

    let work = El::new("canvas");
    let (Ok(video), Ok(overlay), Ok(work)) = (
        video.0.dyn_into::<HtmlVideoElement>(),
        overlay.0.dyn_into::<HtmlCanvasElement>(),
        work.0.dyn_into::<HtmlCanvasElement>(),
    ) else {
        return;
    };
    video.set_muted(true);
    let state = Rc::new(RefCell::new(Live {
        offline_only,
        detector: DetectorState::Loading,
        mode: Mode::Crops,
        paused: false,
        ws: None,
        connection: if offline_only { Connection::Offline } else { Connection::Connecting },
        halted: false,
        backoff_ms: FIRST_BACKOFF_MS,
        in_flight: None,
        labels: Vec::new(),
        fps: FpsCounter::default(),
        detect_ms: None,
        rtt_ms: None,
        last_bytes: 0,
        crops_bytes: ByteStats::default(),
        full_bytes: ByteStats::default(),
        frames: 0,
        replies: 0,
        stream: None,
        camera_error: None,
        video,
        overlay,
        work,
    }));
    LIVE.with(|cell| *cell.borrow_mut() = Some(state.clone()));

    if let Ok(params) =
        web_sys::UrlSearchParams::new_with_str(&window().location().search().unwrap_or_default())
        && params.get("mode").as_deref() == Some("full")
    {
        state.borrow_mut().mode = Mode::FullFrame;
        if let Some(select) = mode_select.0.dyn_ref::<HtmlSelectElement>() {
            select.set_value("full");
        }
    }

    let for_mode = state.clone();
    listen(mode_select.el(), "change", move |_| {
        let full = crate::dom::value_of("mode") == "full";
        let mut s = for_mode.borrow_mut();
        s.mode = if full { Mode::FullFrame } else { Mode::Crops };
        s.fps = FpsCounter::default();
        render_stats(&s);
    });
    let for_pause = state.clone();
    listen(pause.el(), "click", move |_| toggle_pause(&for_pause));
    let for_keys = state.clone();
    listen(&document(), "keydown", move |event| {
        let Some(key) = event.dyn_ref::<web_sys::KeyboardEvent>() else { return };
        let typing = event
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .is_some_and(|e| matches!(e.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA"));
        let visible = by_id::<web_sys::HtmlElement>("live").is_some_and(|e| !e.hidden());
        if key.key() == "p" && !typing && visible {
            toggle_pause(&for_keys);
        }
    });
    listen(camera_select.el(), "change", move |_| {
        let id = crate::dom::value_of("camera");
        spawn_local(async move {
            start_camera(Some(id)).await;
        });
    });

    spawn_local(load_detector(state.clone()));
    spawn_local(async {
        start_camera(None).await;
        fill_camera_picker().await;
    });
    if !offline_only {
        connect(&state);
    }
    render_stats(&state.borrow());
    let looping = state.clone();
    request_animation_frame(move || tick(looping));
}

/// On logout: closes `/ws` and stops reconnecting until [`resume`].
pub fn halt() {
    let Some(state) = live() else { return };
    let ws = {
        let mut s = state.borrow_mut();
        s.halted = true;
        s.connection = Connection::Closed;
        s.in_flight = None;
        s.labels.clear();
        render_stats(&s);
        s.ws.take()
    };
    if let Some(ws) = ws {
        let _ = ws.close();
    }
}

/// After a new login: reconnects a live view that stopped because its session ended.
pub fn resume() {
    let Some(state) = live() else { return };
    let halted = {
        let mut s = state.borrow_mut();
        let halted = s.halted && !s.offline_only;
        s.halted = false;
        s.backoff_ms = FIRST_BACKOFF_MS;
        halted
    };
    if halted {
        connect(&state);
    }
}

fn toggle_pause(state: &Rc<RefCell<Live>>) {
    let mut s = state.borrow_mut();
    s.paused = !s.paused;
    if let Some(button) = by_id::<web_sys::HtmlElement>("pause") {
        button.set_text_content(Some(if s.paused { "Resume" } else { "Pause" }));
        let _ = button.set_attribute("aria-pressed", if s.paused { "true" } else { "false" });
    }
    render_stats(&s);
}
