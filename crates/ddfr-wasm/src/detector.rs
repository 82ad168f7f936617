//! [`BrowserDetector`]: the server's default detector graph and decoder, run in the browser.

use image::RgbImage;
use serde::Serialize;
use sha2::{Digest, Sha256};

use ddfr_core::Face;
use ddfr_engine::detect::{BlazeFaceDetector, FaceDetector};
use ddfr_engine::manifest::{Manifest, ModelFamily, ModelSpec, ModelTask};
use ddfr_engine::pack::default_detector_config;
use ddfr_engine::preprocess::Normalization;
use ddfr_engine::runner::{InferenceBackend, RunnerOptions, open_runner};

use crate::WasmError;
use crate::crops::{CropRect, crop_rect_for};

/// The pack whose detector the browser runs: the server's default.
pub const DEFAULT_PACK: &str = "default";
/// Bytes per pixel of canvas `ImageData`.
const RGBA_BYTES_PER_PIXEL: u64 = 4;

/// One face found in a frame, in frame pixels, ready to draw and to crop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectedFace {
    /// Left edge.
    pub left: f32,
    /// Top edge.
    pub top: f32,
    /// Right edge.
    pub right: f32,
    /// Bottom edge.
    pub bottom: f32,
    /// Detector confidence in `[0, 1]`.
    pub score: f32,
    /// BlazeFace's six keypoints (`blaze_face6` order) as `[x, y]`.
    pub keypoints: Vec<[f32; 2]>,
    /// The enlarged, frame-clamped rectangle the crop is cut from.
    pub crop: CropRect,
    /// The detection as the engine produced it, for the crops message.
    #[serde(skip)]
    pub face: Face,
}

/// The detector of the manifest's default pack, loaded from bytes fetched from the server.
#[derive(Debug)]
pub struct BrowserDetector {
    model_id: String,
    detector: BlazeFaceDetector,
}

impl BrowserDetector {
    /// Loads the default pack's detector from the manifest's text and the model file's bytes,
    /// checking the bytes against the manifest's sha256 first.
    pub fn from_bytes(manifest_toml: &str, model: &[u8]) -> Result<Self, WasmError> {
        // The directory is only used to build file paths, which the browser never opens.
        let manifest = Manifest::parse(manifest_toml, std::path::Path::new("models"))
            .map_err(|source| WasmError::Manifest { source })?;
        let spec = browser_detector_spec(&manifest)?;
        let found = hex::encode(Sha256::digest(model));
        if !found.eq_ignore_ascii_case(&spec.sha256) {
            return Err(WasmError::ChecksumMismatch {
                model: spec.id.clone(),
                expected: spec.sha256.clone(),
                found,
            });
        }
        let options =
            RunnerOptions { input_shape: spec.runner_shape(), ..RunnerOptions::default() };
        let runner = open_runner(InferenceBackend::Tract, &spec.id, model, &options)?;
        let (input_h, _input_w) = spec.input_hw();
        let normalization = Normalization {
            mean: spec.mean.unwrap_or([0.0; 3]),
            std: spec.std.unwrap_or([1.0; 3]),
            color: spec.color,
        };
        let detector = BlazeFaceDetector::new(
            &spec.id,
            runner,
            input_h,
            normalization,
            default_detector_config(ModelFamily::Blazeface),
        )?;
        Ok(Self { model_id: spec.id.clone(), detector })
    }

    /// The model id from the manifest.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Faces in `frame`, best score first, each with the rectangle its crop is cut from.
    pub fn detect(&self, frame: &RgbImage) -> Result<Vec<DetectedFace>, WasmError> {
        let faces = self.detector.detect(frame)?;
        Ok(faces
            .into_iter()
            .map(|face| {
                let crop = crop_rect_for(&face.bbox, frame.width(), frame.height());
                DetectedFace {
                    left: face.bbox.left,
                    top: face.bbox.top,
                    right: face.bbox.right,
                    bottom: face.bbox.bottom,
                    score: face.score,
                    keypoints: face.landmarks.points.iter().map(|p| [p.x, p.y]).collect(),
                    crop,
                    face,
                }
            })
            .collect())
    }
}

/// The default pack's detector entry, if it is a BlazeFace graph (the browser runs no other).
pub fn browser_detector_spec(manifest: &Manifest) -> Result<&ModelSpec, WasmError> {
    let pack = manifest.pack(DEFAULT_PACK).map_err(|source| WasmError::Manifest { source })?;
    manifest
        .model(&pack.detector)
        .filter(|spec| spec.task == ModelTask::Detector && spec.family == ModelFamily::Blazeface)
        .ok_or_else(|| WasmError::NoBrowserDetector { pack: pack.id.clone() })
}

/// Canvas `ImageData` pixels (RGBA, row-major) to the RGB frame the engine reads.
pub fn rgba_to_rgb(rgba: &[u8], width: u32, height: u32) -> Result<RgbImage, WasmError> {
    let expected = u64::from(width) * u64::from(height) * RGBA_BYTES_PER_PIXEL;
    let bad = || WasmError::BadFrame { width, height, expected, found: rgba.len() };
    if rgba.len() as u64 != expected || width == 0 || height == 0 {
        return Err(bad());
    }
    let rgb: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    RgbImage::from_raw(width, height, rgb).ok_or_else(bad)
}

/// The detector's file name (relative to the models directory) from the manifest's text, so
/// the app knows what to fetch before it has the bytes.
pub fn browser_detector_spec_file(manifest_toml: &str) -> Result<String, WasmError> {
    let manifest = Manifest::parse(manifest_toml, std::path::Path::new("models"))
        .map_err(|source| WasmError::Manifest { source })?;
    browser_detector_spec(&manifest).map(|spec| spec.file.clone())
}
