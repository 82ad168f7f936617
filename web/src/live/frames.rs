//! The frame loop, paced by the server: once per animation frame, when no answer is pending,
//! the video frame goes to the in-browser detector and then to the server as crops (or as a
//! full JPEG frame), or is boxed locally when there is no server.

use std::cell::RefCell;
use std::rc::Rc;

use ddfr_wasm::{BrowserDetector, DetectedFace, build_crops_message, rgba_to_rgb};
use wasm_bindgen_futures::spawn_local;

use super::camera::canvas_jpeg;
use super::connection::{Connection, InFlight};
use super::draw::{draw, render_faces};
use super::labels::local_labels;
use super::stats::render_stats;
use super::{Live, Mode, context_2d};
use crate::api;
use crate::dom::{log, now_ms, request_animation_frame};

/// JPEG quality of full frames (canvas `toBlob`), as the seed's clients send.
const FULL_FRAME_JPEG_QUALITY: f64 = 0.8;
/// An answer later than this is given up on, so a lost message cannot stall the view.
const REPLY_TIMEOUT_MS: f64 = 5_000.0;

/// The in-browser detector's state.
#[derive(Debug, Clone)]
pub(super) enum DetectorState {
    Loading,
    Ready(Rc<BrowserDetector>),
    Failed(String),
}

/// Fetches the manifest and the detector from the same origin and builds the detector.
pub(super) async fn load_detector(state: Rc<RefCell<Live>>) {
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

/// The frame loop: runs once per animation frame and does at most one frame's work.
pub(super) fn tick(state: Rc<RefCell<Live>>) {
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
