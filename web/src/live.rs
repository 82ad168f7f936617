//! The live view: camera → in-browser detection → crops (or full frames) over `/ws` → labelled
//! boxes. With no server it keeps detecting and boxing faces locally (the offline demo).
//!
//! Frames are paced by the server: at most one message is in flight, the next frame is
//! captured only when its answer arrived. Detection runs on the main thread (BlazeFace
//! full-range on tract/wasm takes tens of milliseconds, measured and shown on screen).

use std::cell::RefCell;
use std::rc::Rc;

use ddfr_protocol::{FrameReply, UNKNOWN_NAME};
use ddfr_wasm::{BrowserDetector, DetectedFace, build_crops_message, rgba_to_rgb};
use js_sys::{Promise, Uint8Array};
use serde::Serialize;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    BinaryType, Blob, CanvasRenderingContext2d, HtmlCanvasElement, HtmlSelectElement,
    HtmlVideoElement, MediaDeviceInfo, MediaDeviceKind, MediaStream, MessageEvent, WebSocket,
};

use crate::api;
use crate::dom::{
    El, by_id, clear, document, listen, log, now_ms, request_animation_frame, set_timeout, window,
};

/// JPEG quality of full frames (canvas `toBlob`), as the seed's clients send.
const FULL_FRAME_JPEG_QUALITY: f64 = 0.8;
/// JPEG quality of a captured enrollment photo.
const CAPTURE_JPEG_QUALITY: f64 = 0.92;
/// First reconnect delay; doubled after each failure up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: i32 = 500;
/// Longest reconnect delay.
const MAX_BACKOFF_MS: i32 = 10_000;
/// An answer later than this is given up on, so a lost message cannot stall the view.
const REPLY_TIMEOUT_MS: f64 = 5_000.0;
/// FPS is averaged over windows of this length.
const FPS_WINDOW_MS: f64 = 1_000.0;
/// Requested camera size; 640×480 is what every webcam offers and what BlazeFace needs.
const CAMERA_IDEAL_WIDTH: u32 = 640;
/// Requested camera height.
const CAMERA_IDEAL_HEIGHT: u32 = 480;

/// What goes to the server for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Faces detected here, crops sent (nothing when no face).
    Crops,
    /// The whole frame as JPEG.
    FullFrame,
}

/// The in-browser detector's state.
#[derive(Debug, Clone)]
enum DetectorState {
    Loading,
    Ready(Rc<BrowserDetector>),
    Failed(String),
}

/// The `/ws` connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connection {
    Offline,
    Connecting,
    Open,
    Closed,
}

impl Connection {
    fn as_str(self) -> &'static str {
        match self {
            Connection::Offline => "offline",
            Connection::Connecting => "connecting",
            Connection::Open => "connected",
            Connection::Closed => "disconnected",
        }
    }
}

/// One box to draw.
#[derive(Debug, Clone, PartialEq)]
struct Label {
    left: f32,
    top: f32,
    right: f32,
    bottom: f32,
    text: String,
    /// Identified by the server (solid green) vs unknown (dashed orange) vs local-only (blue).
    kind: LabelKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelKind {
    Known,
    Unknown,
    Local,
}

/// Frames per second over a sliding window.
#[derive(Debug, Default)]
struct FpsCounter {
    window_start: f64,
    frames: u32,
    fps: f64,
}

impl FpsCounter {
    fn tick(&mut self, now: f64) {
        self.frames += 1;
        let elapsed = now - self.window_start;
        if elapsed >= FPS_WINDOW_MS {
            self.fps = f64::from(self.frames) * 1000.0 / elapsed;
            self.frames = 0;
            self.window_start = now;
        }
    }
}

/// A message waiting for its answer.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    sent_at: f64,
}

/// Byte counts per mode, for the bytes-per-frame figure.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct ByteStats {
    frames: u64,
    bytes: u64,
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

fn toggle_pause(state: &Rc<RefCell<Live>>) {
    let mut s = state.borrow_mut();
    s.paused = !s.paused;
    if let Some(button) = by_id::<web_sys::HtmlElement>("pause") {
        button.set_text_content(Some(if s.paused { "Resume" } else { "Pause" }));
        let _ = button.set_attribute("aria-pressed", if s.paused { "true" } else { "false" });
    }
    render_stats(&s);
}

/// Fetches the manifest and the detector from the same origin and builds the detector.
async fn load_detector(state: Rc<RefCell<Live>>) {
    let started = now_ms();
    let loaded = async {
        let manifest = api::fetch_text("models/manifest.toml").await.map_err(|e| e.summary())?;
        let spec_file =
            ddfr_wasm::browser_detector_spec_file(&manifest).map_err(|e| e.to_string())?;
        let model =
            api::fetch_bytes(&format!("models/{spec_file}")).await.map_err(|e| e.summary())?;
        BrowserDetector::from_bytes(&manifest, &model).map_err(|e| e.to_string())
    }
    .await;
    let mut s = state.borrow_mut();
    s.detector = match loaded {
        Ok(detector) => {
            log(&format!("detector {} ready in {:.0} ms", detector.model_id(), now_ms() - started));
            DetectorState::Ready(Rc::new(detector))
        }
        Err(reason) => {
            log(&format!("in-browser detection unavailable: {reason}"));
            DetectorState::Failed(reason)
        }
    };
    render_stats(&s);
}

#[derive(Serialize)]
struct Range {
    ideal: u32,
}

#[derive(Serialize)]
struct Exact {
    exact: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VideoConstraints {
    width: Range,
    height: Range,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<Exact>,
}

#[derive(Serialize)]
struct Constraints {
    video: VideoConstraints,
    audio: bool,
}

/// Opens the camera (`device_id`, or the default one) into the video element.
async fn start_camera(device_id: Option<String>) {
    let Some(state) = live() else { return };
    let result = async {
        let devices = window()
            .navigator()
            .media_devices()
            .map_err(|_| "no camera API (needs https or localhost)".to_owned())?;
        let constraints = Constraints {
            video: VideoConstraints {
                width: Range { ideal: CAMERA_IDEAL_WIDTH },
                height: Range { ideal: CAMERA_IDEAL_HEIGHT },
                device_id: device_id.filter(|id| !id.is_empty()).map(|exact| Exact { exact }),
            },
            audio: false,
        };
        let constraints = serde_wasm_bindgen::to_value(&constraints).map_err(|e| e.to_string())?;
        let promise = devices
            .get_user_media_with_constraints(constraints.unchecked_ref())
            .map_err(|e| format!("{e:?}"))?;
        let stream: MediaStream = JsFuture::from(promise)
            .await
            .map_err(|e| js_message(&e))?
            .dyn_into()
            .map_err(|_| "getUserMedia returned no stream".to_owned())?;
        Ok::<MediaStream, String>(stream)
    }
    .await;
    let video = {
        let mut s = state.borrow_mut();
        if let Some(old) = s.stream.take() {
            for track in old.get_tracks().iter() {
                if let Ok(track) = track.dyn_into::<web_sys::MediaStreamTrack>() {
                    track.stop();
                }
            }
        }
        match result {
            Ok(stream) => {
                s.video.set_src_object(Some(&stream));
                s.stream = Some(stream);
                s.camera_error = None;
            }
            Err(reason) => s.camera_error = Some(reason),
        }
        render_stats(&s);
        s.video.clone()
    };
    if let Ok(promise) = video.play() {
        let _ = JsFuture::from(promise).await;
    }
}

fn js_message(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| "camera refused".to_owned())
}

/// Lists the video inputs in the camera picker (labels are known once permission is given).
async fn fill_camera_picker() {
    let Some(select) = by_id::<HtmlSelectElement>("camera") else { return };
    let Ok(devices) = window().navigator().media_devices() else { return };
    let Ok(promise) = devices.enumerate_devices() else { return };
    let Ok(list) = JsFuture::from(promise).await else { return };
    let current = live()
        .and_then(|s| s.borrow().stream.clone())
        .and_then(|stream| {
            stream.get_video_tracks().get(0).dyn_into::<web_sys::MediaStreamTrack>().ok()
        })
        .map(|track| track.label())
        .unwrap_or_default();
    clear(&select);
    let mut n_cameras = 0;
    for info in js_sys::Array::from(&list).iter() {
        let Ok(info) = info.dyn_into::<MediaDeviceInfo>() else { continue };
        if info.kind() != MediaDeviceKind::Videoinput {
            continue;
        }
        n_cameras += 1;
        let label =
            if info.label().is_empty() { format!("Camera {n_cameras}") } else { info.label() };
        let option = El::new("option").attr("value", &info.device_id()).text(&label);
        if label == current {
            let _ = option.el().set_attribute("selected", "");
        }
        let _ = select.append_child(option.el());
    }
    if n_cameras == 0 {
        let _ = select.append_child(El::new("option").attr("value", "").text("No camera").el());
    }
}

/// Opens `/ws` and wires its events; on close, retries with exponential back-off.
fn connect(state: &Rc<RefCell<Live>>) {
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
    listen(&ws, "close", move |_| {
        let still_current = on_close.borrow().ws.as_ref() == Some(&closed_ws);
        if !still_current {
            return;
        }
        {
            let mut s = on_close.borrow_mut();
            s.connection = Connection::Closed;
            s.ws = None;
            s.in_flight = None;
            s.labels.clear();
            render_stats(&s);
        }
        schedule_reconnect(&on_close);
    });
}

fn schedule_reconnect(state: &Rc<RefCell<Live>>) {
    let delay = {
        let mut s = state.borrow_mut();
        let delay = s.backoff_ms;
        s.backoff_ms = (s.backoff_ms * 2).min(MAX_BACKOFF_MS);
        delay
    };
    let again = state.clone();
    set_timeout(delay, move || connect(&again));
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
        Ok(Some(reply)) => {
            s.labels = reply
                .faces
                .iter()
                .map(|face| {
                    let known = face.name != UNKNOWN_NAME;
                    let text = if known {
                        let mut parts = vec![format!(
                            "{} {}",
                            face.name,
                            face.surname.as_deref().unwrap_or_default()
                        )];
                        parts.push(face.age.to_string());
                        if let Some(relationship) = face.relationship {
                            parts.push(relationship.as_str().to_owned());
                        }
                        if let Some(role) = face.role {
                            parts.push(role.as_str().to_owned());
                        }
                        parts.join(" · ")
                    } else {
                        UNKNOWN_NAME.to_owned()
                    };
                    Label {
                        left: face.left as f32,
                        top: face.top as f32,
                        right: face.right as f32,
                        bottom: face.bottom as f32,
                        text,
                        kind: if known { LabelKind::Known } else { LabelKind::Unknown },
                    }
                })
                .collect();
        }
        Ok(None) => s.labels.clear(),
        Err(error) => log(&format!("unexpected /ws answer: {error}")),
    }
    draw(&s);
    render_faces(&s);
    render_stats(&s);
}

/// The frame loop: runs once per animation frame and does at most one frame's work.
fn tick(state: Rc<RefCell<Live>>) {
    let next = state.clone();
    request_animation_frame(move || tick(next));
    let ready = {
        let s = state.borrow();
        !s.paused && s.video.ready_state() >= 2 && s.video.video_width() > 0
    };
    if !ready {
        return;
    }
    let (open, mode, detector, in_flight) = {
        let s = state.borrow();
        let detector = match &s.detector {
            DetectorState::Ready(d) => Some(d.clone()),
            _ => None,
        };
        (s.connection == Connection::Open, s.mode, detector, s.in_flight)
    };
    if let Some(sent) = in_flight {
        if now_ms() - sent.sent_at > REPLY_TIMEOUT_MS {
            state.borrow_mut().in_flight = None;
        }
        return;
    }
    match (open, mode, detector) {
        // The server is there and the browser can detect: crops, or nothing without faces.
        (true, Mode::Crops, Some(detector)) => send_crops(&state, &detector),
        // Full frames: chosen, or the fallback when the detector could not load.
        (true, Mode::FullFrame, _) | (true, Mode::Crops, None) => send_full_frame(&state),
        // No server: the offline demo boxes faces locally.
        (false, _, Some(detector)) => detect_locally(&state, &detector),
        (false, _, None) => {}
    }
}

/// Draws the video frame into the work canvas and returns its RGBA pixels.
fn grab_rgba(s: &Live) -> Option<(Vec<u8>, u32, u32)> {
    let (width, height) = (s.video.video_width(), s.video.video_height());
    if s.work.width() != width || s.work.height() != height {
        s.work.set_width(width);
        s.work.set_height(height);
    }
    let ctx = context_2d(&s.work)?;
    ctx.draw_image_with_html_video_element(&s.video, 0.0, 0.0).ok()?;
    let data = ctx.get_image_data(0.0, 0.0, f64::from(width), f64::from(height)).ok()?;
    Some((data.data().0, width, height))
}

fn run_detector(
    s: &mut Live,
    detector: &BrowserDetector,
) -> Option<(ddfr_wasm::RgbImage, Vec<DetectedFace>)> {
    let (rgba, width, height) = grab_rgba(s)?;
    let started = now_ms();
    let frame = rgba_to_rgb(&rgba, width, height).ok()?;
    let faces = match detector.detect(&frame) {
        Ok(faces) => faces,
        Err(error) => {
            log(&format!("detection failed: {error}"));
            return None;
        }
    };
    s.detect_ms = Some(now_ms() - started);
    Some((frame, faces))
}

fn local_labels(faces: &[DetectedFace]) -> Vec<Label> {
    faces
        .iter()
        .map(|f| Label {
            left: f.left,
            top: f.top,
            right: f.right,
            bottom: f.bottom,
            text: format!("face {:.0}%", f.score * 100.0),
            kind: LabelKind::Local,
        })
        .collect()
}

fn detect_locally(state: &Rc<RefCell<Live>>, detector: &BrowserDetector) {
    let mut s = state.borrow_mut();
    let Some((_, faces)) = run_detector(&mut s, detector) else { return };
    s.labels = local_labels(&faces);
    s.frames += 1;
    let now = now_ms();
    s.fps.tick(now);
    draw(&s);
    render_faces(&s);
    render_stats(&s);
}

fn send_crops(state: &Rc<RefCell<Live>>, detector: &BrowserDetector) {
    let mut s = state.borrow_mut();
    let Some((frame, faces)) = run_detector(&mut s, detector) else { return };
    if faces.is_empty() {
        // Nothing to recognise: nothing is sent, and the view is clear at once.
        s.labels.clear();
        s.frames += 1;
        s.last_bytes = 0;
        s.crops_bytes.frames += 1;
        let now = now_ms();
        s.fps.tick(now);
        draw(&s);
        render_faces(&s);
        render_stats(&s);
        return;
    }
    let message = match build_crops_message(&frame, &faces) {
        Ok(message) => message,
        Err(error) => {
            log(&format!("cannot build crops: {error}"));
            return;
        }
    };
    let Some(ws) = s.ws.clone() else { return };
    if ws.send_with_u8_array(&message).is_ok() {
        s.in_flight = Some(InFlight { sent_at: now_ms() });
        s.last_bytes = message.len() as u64;
        s.crops_bytes.frames += 1;
        s.crops_bytes.bytes += message.len() as u64;
    }
}

fn send_full_frame(state: &Rc<RefCell<Live>>) {
    let canvas = {
        let mut s = state.borrow_mut();
        let (width, height) = (s.video.video_width(), s.video.video_height());
        if s.work.width() != width || s.work.height() != height {
            s.work.set_width(width);
            s.work.set_height(height);
        }
        let Some(ctx) = context_2d(&s.work) else { return };
        if ctx.draw_image_with_html_video_element(&s.video, 0.0, 0.0).is_err() {
            return;
        }
        // Reserve the slot now: encoding is asynchronous and must not overlap the next frame.
        s.in_flight = Some(InFlight { sent_at: now_ms() });
        s.detect_ms = None;
        s.work.clone()
    };
    let state = state.clone();
    spawn_local(async move {
        let bytes = canvas_jpeg(&canvas, FULL_FRAME_JPEG_QUALITY).await;
        let mut s = state.borrow_mut();
        let (Some(bytes), Some(ws)) = (bytes, s.ws.clone()) else {
            s.in_flight = None;
            return;
        };
        if ws.send_with_u8_array(&bytes).is_ok() {
            s.in_flight = Some(InFlight { sent_at: now_ms() });
            s.last_bytes = bytes.len() as u64;
            s.full_bytes.frames += 1;
            s.full_bytes.bytes += bytes.len() as u64;
        } else {
            s.in_flight = None;
        }
    });
}

/// Encodes a canvas as JPEG through `toBlob`.
async fn canvas_jpeg(canvas: &HtmlCanvasElement, quality: f64) -> Option<Vec<u8>> {
    let blob = canvas_blob(canvas, quality).await?;
    let buffer = JsFuture::from(blob.array_buffer()).await.ok()?;
    Some(Uint8Array::new(&buffer).to_vec())
}

async fn canvas_blob(canvas: &HtmlCanvasElement, quality: f64) -> Option<Blob> {
    let promise = Promise::new(&mut |resolve, _reject| {
        let _ = canvas.to_blob_with_type_and_encoder_options(
            &resolve,
            "image/jpeg",
            &JsValue::from_f64(quality),
        );
    });
    JsFuture::from(promise).await.ok()?.dyn_into::<Blob>().ok()
}

/// The current camera frame as a JPEG blob, for enrolling a face from the live view.
pub async fn capture_photo() -> Result<Blob, String> {
    let state = live().ok_or("the live view is not running")?;
    let canvas = {
        let s = state.borrow();
        let (width, height) = (s.video.video_width(), s.video.video_height());
        if width == 0 {
            return Err(s
                .camera_error
                .clone()
                .unwrap_or_else(|| "the camera is not running".to_owned()));
        }
        let canvas: HtmlCanvasElement = El::new("canvas").0.dyn_into().map_err(|_| "no canvas")?;
        canvas.set_width(width);
        canvas.set_height(height);
        let ctx = context_2d(&canvas).ok_or("no 2d context")?;
        ctx.draw_image_with_html_video_element(&s.video, 0.0, 0.0)
            .map_err(|_| "cannot draw the frame")?;
        canvas
    };
    canvas_blob(&canvas, CAPTURE_JPEG_QUALITY)
        .await
        .ok_or_else(|| "cannot encode the frame".to_owned())
}

/// Draws the labels over the video, in frame coordinates (CSS scales the canvas with it).
fn draw(s: &Live) {
    let (width, height) = (s.video.video_width(), s.video.video_height());
    if width == 0 {
        return;
    }
    if s.overlay.width() != width || s.overlay.height() != height {
        s.overlay.set_width(width);
        s.overlay.set_height(height);
    }
    let Some(ctx) = context_2d(&s.overlay) else { return };
    ctx.clear_rect(0.0, 0.0, f64::from(width), f64::from(height));
    let line = (f64::from(width) / 320.0).max(2.0);
    let font_px = (f64::from(width) / 40.0).max(12.0);
    ctx.set_line_width(line);
    ctx.set_font(&format!("600 {font_px:.0}px system-ui, sans-serif"));
    for label in &s.labels {
        let (color, dashed) = match label.kind {
            LabelKind::Known => ("#1db954", false),
            LabelKind::Unknown => ("#ff8c1a", true),
            LabelKind::Local => ("#3ea6ff", false),
        };
        let dash = js_sys::Array::new();
        if dashed {
            dash.push(&JsValue::from_f64(line * 4.0));
            dash.push(&JsValue::from_f64(line * 3.0));
        }
        let _ = ctx.set_line_dash(&dash);
        ctx.set_stroke_style_str(color);
        let (x, y) = (f64::from(label.left), f64::from(label.top));
        let (w, h) = (f64::from(label.right - label.left), f64::from(label.bottom - label.top));
        ctx.stroke_rect(x, y, w, h);
        let text_w = ctx.measure_text(&label.text).map(|m| m.width()).unwrap_or(0.0);
        let pad = font_px * 0.3;
        let box_h = font_px + 2.0 * pad;
        let text_y = if y - box_h >= 0.0 { y - box_h } else { y + h };
        ctx.set_fill_style_str(color);
        ctx.fill_rect(x - line / 2.0, text_y, text_w + 2.0 * pad, box_h);
        ctx.set_fill_style_str("#000");
        let _ = ctx.fill_text(&label.text, x - line / 2.0 + pad, text_y + pad + font_px * 0.85);
    }
}

/// Lists the labels as text, for screen readers and tests.
fn render_faces(s: &Live) {
    let Some(list) = by_id::<web_sys::Element>("face-list") else { return };
    let text: Vec<String> = s.labels.iter().map(|l| l.text.clone()).collect();
    let current = list.get_attribute("data-labels").unwrap_or_default();
    let joined = text.join("\n");
    if current == joined {
        return;
    }
    clear(&list);
    let _ = list.set_attribute("data-labels", &joined);
    for label in &s.labels {
        let kind = match label.kind {
            LabelKind::Known => "known",
            LabelKind::Unknown => "unknown",
            LabelKind::Local => "local",
        };
        let _ = list
            .append_child(El::new("li").class(kind).attr("data-kind", kind).text(&label.text).el());
    }
}

fn fmt_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ms"))
}

fn average(stats: ByteStats) -> u64 {
    stats.bytes.checked_div(stats.frames).unwrap_or(0)
}

/// Updates the numbers under the video, and mirrors them as data attributes for tests.
fn render_stats(s: &Live) {
    let Some(stats) = by_id::<web_sys::Element>("stats") else { return };
    let detection = match &s.detector {
        DetectorState::Loading => "loading…".to_owned(),
        DetectorState::Ready(d) => format!("ready ({})", d.model_id()),
        DetectorState::Failed(reason) => format!("unavailable: {reason}"),
    };
    let sending = match (s.connection, s.mode, &s.detector) {
        (Connection::Open, Mode::Crops, DetectorState::Ready(_)) => "crops",
        (Connection::Open, _, _) => "full frames",
        _ => "nothing (offline: detecting in the browser)",
    };
    let rows = [
        ("Connection", s.connection.as_str().to_owned()),
        ("Sending", sending.to_owned()),
        ("FPS", format!("{:.1}", s.fps.fps)),
        ("Detection", fmt_ms(s.detect_ms)),
        ("Round trip", fmt_ms(s.rtt_ms)),
        (
            "Bytes/frame",
            format!(
                "{} B (crops avg {} B, full avg {} B)",
                s.last_bytes,
                average(s.crops_bytes),
                average(s.full_bytes)
            ),
        ),
        ("Detector", detection),
    ];
    clear(&stats);
    for (name, value) in rows {
        let _ = stats.append_child(El::new("dt").text(name).el());
        let _ = stats.append_child(El::new("dd").text(&value).el());
    }
    let attrs = [
        ("data-state", s.connection.as_str().to_owned()),
        ("data-mode", sending.to_owned()),
        ("data-fps", format!("{:.2}", s.fps.fps)),
        ("data-detect-ms", s.detect_ms.map(|v| format!("{v:.2}")).unwrap_or_default()),
        ("data-rtt-ms", s.rtt_ms.map(|v| format!("{v:.2}")).unwrap_or_default()),
        ("data-frames", s.frames.to_string()),
        ("data-replies", s.replies.to_string()),
        ("data-crops-frames", s.crops_bytes.frames.to_string()),
        ("data-crops-bytes", s.crops_bytes.bytes.to_string()),
        ("data-full-frames", s.full_bytes.frames.to_string()),
        ("data-full-bytes", s.full_bytes.bytes.to_string()),
        (
            "data-detector",
            match &s.detector {
                DetectorState::Loading => "loading",
                DetectorState::Ready(_) => "ready",
                DetectorState::Failed(_) => "failed",
            }
            .to_owned(),
        ),
        ("data-paused", s.paused.to_string()),
    ];
    for (name, value) in attrs {
        let _ = stats.set_attribute(name, &value);
    }
    if let Some(status) = by_id::<web_sys::Element>("live-status") {
        let text = if let Some(error) = &s.camera_error {
            format!("Camera: {error}")
        } else if s.paused {
            "Paused (press P or the button to resume).".to_owned()
        } else if s.offline_only || s.connection != Connection::Open {
            "Offline detection demo: faces are found in this browser; names need the server."
                .to_owned()
        } else {
            String::new()
        };
        status.set_text_content(Some(&text));
    }
}
