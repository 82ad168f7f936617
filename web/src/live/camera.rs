//! The camera: getUserMedia into the video element, the camera picker, and JPEG captures of
//! the current frame (full frames for `/ws`, photos for enrollment).

use js_sys::{Promise, Uint8Array};
use serde::Serialize;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, HtmlCanvasElement, HtmlSelectElement, MediaDeviceInfo, MediaDeviceKind, MediaStream,
};

use super::stats::render_stats;
use super::{context_2d, live};
use crate::dom::{El, by_id, clear, window};

/// JPEG quality of a captured enrollment photo.
const CAPTURE_JPEG_QUALITY: f64 = 0.92;
/// Requested camera size; 640×480 is what every webcam offers and what BlazeFace needs.
const CAMERA_IDEAL_WIDTH: u32 = 640;
/// Requested camera height.
const CAMERA_IDEAL_HEIGHT: u32 = 480;

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
pub(super) async fn start_camera(device_id: Option<String>) {
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
/// Lists the video inputs in the camera picker (labels are known once permission is given).
pub(super) async fn fill_camera_picker() {
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

/// Encodes a canvas as JPEG through `toBlob`.
pub(super) async fn canvas_jpeg(canvas: &HtmlCanvasElement, quality: f64) -> Option<Vec<u8>> {
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
