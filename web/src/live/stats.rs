//! The numbers under the video (FPS, detection time, round trip, bytes per frame, connection
//! and detector state), mirrored as data attributes of `#stats` for tests.

use serde::Serialize;

use super::Live;
use super::Mode;
use super::connection::Connection;
use super::frames::DetectorState;
use crate::dom::{El, by_id, clear};

/// FPS is averaged over windows of this length.
const FPS_WINDOW_MS: f64 = 1_000.0;

/// Frames per second over a sliding window.
#[derive(Debug, Default)]
pub(super) struct FpsCounter {
    window_start: Option<f64>,
    frames: u32,
    pub(super) fps: f64,
}

impl FpsCounter {
    pub(super) fn tick(&mut self, now: f64) {
        // The first window opens at the first frame, not at page load: the seconds the camera
        // and the detector take to start are not the frame rate.
        let Some(window_start) = self.window_start else {
            self.window_start = Some(now);
            return;
        };
        self.frames += 1;
        let elapsed = now - window_start;
        if elapsed >= FPS_WINDOW_MS {
            self.fps = f64::from(self.frames) * 1000.0 / elapsed;
            self.frames = 0;
            self.window_start = Some(now);
        }
    }
}

/// Byte counts per mode, for the bytes-per-frame figure.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub(super) struct ByteStats {
    pub(super) frames: u64,
    pub(super) bytes: u64,
}

fn fmt_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ms"))
}

fn average(stats: ByteStats) -> u64 {
    stats.bytes.checked_div(stats.frames).unwrap_or(0)
}

/// Updates the numbers under the video, and mirrors them as data attributes for tests.
pub(super) fn render_stats(s: &Live) {
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
