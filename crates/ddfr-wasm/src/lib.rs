//! ddfr's browser detector: the server's default BlazeFace graph and decoder on tract, compiled
//! to wasm32, with crop extraction and the crops message.
//!
//! Architecture invariant: compiles to `wasm32-unknown-unknown`; detection and post-processing
//! are `ddfr-engine`'s own code (feature `tract`), never a browser-only copy. The Rust API
//! ([`BrowserDetector`], [`build_crops_message`]) serves the `web` app; the `#[wasm_bindgen]`
//! API ([`JsDetector`]) serves JavaScript (workers, tests) and returns typed values through
//! serde-wasm-bindgen, never JSON strings.

mod crops;
mod detector;
mod error;

use serde::Serialize;
use wasm_bindgen::prelude::*;

pub use crops::{
    CROP_JPEG_QUALITY, CROP_SCALE, CropRect, FaceCropPixels, MAX_CROP_OUTPUT_SIDE,
    build_crops_message, crop_rect_for, encode_crop,
};
pub use detector::{
    BrowserDetector, DEFAULT_PACK, DetectedFace, browser_detector_spec, browser_detector_spec_file,
    rgba_to_rgb,
};
pub use error::WasmError;
/// The frame type the detector reads, re-exported so the app needs no `image` dependency.
pub use image::RgbImage;

/// What [`JsDetector::analyze`] returns to JavaScript.
#[derive(Debug, Serialize)]
struct JsAnalysis<'a> {
    faces: &'a [DetectedFace],
}

/// The detector as JavaScript sees it: `JsDetector.fromBytes(manifestText, modelBytes)`, then
/// `detect(rgba, width, height)` and `cropsMessage(rgba, width, height)`.
#[wasm_bindgen]
#[derive(Debug)]
pub struct JsDetector {
    inner: BrowserDetector,
}

fn js_error(error: &WasmError) -> JsError {
    JsError::new(&error.to_string())
}

#[wasm_bindgen]
impl JsDetector {
    /// Loads the default pack's detector; `manifest` is `models/manifest.toml`'s text and
    /// `model` the detector file's bytes.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(manifest: &str, model: &[u8]) -> Result<JsDetector, JsError> {
        BrowserDetector::from_bytes(manifest, model)
            .map(|inner| JsDetector { inner })
            .map_err(|e| js_error(&e))
    }

    /// The model id the manifest gives the detector.
    #[wasm_bindgen(getter, js_name = modelId)]
    pub fn model_id(&self) -> String {
        self.inner.model_id().to_owned()
    }

    /// `{faces: [{left, top, right, bottom, score, keypoints, crop}]}` for canvas RGBA pixels.
    pub fn detect(&self, rgba: &[u8], width: u32, height: u32) -> Result<JsValue, JsError> {
        let frame = rgba_to_rgb(rgba, width, height).map_err(|e| js_error(&e))?;
        let faces = self.inner.detect(&frame).map_err(|e| js_error(&e))?;
        serde_wasm_bindgen::to_value(&JsAnalysis { faces: &faces })
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// The crops message for the faces in the frame, or `undefined` when there are none (the
    /// app then sends nothing).
    #[wasm_bindgen(js_name = cropsMessage)]
    pub fn crops_message(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
    ) -> Result<Option<Vec<u8>>, JsError> {
        let frame = rgba_to_rgb(rgba, width, height).map_err(|e| js_error(&e))?;
        let faces = self.inner.detect(&frame).map_err(|e| js_error(&e))?;
        if faces.is_empty() {
            return Ok(None);
        }
        build_crops_message(&frame, &faces).map(Some).map_err(|e| js_error(&e))
    }
}
