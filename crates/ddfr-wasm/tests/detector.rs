//! The browser detector on the real default detector and real photos, run natively (the same
//! code compiles to wasm32; `scripts/test-web` runs it in Chromium).

use std::path::{Path, PathBuf};

use ddfr_core::LandmarkScheme;
use ddfr_protocol::{CropEncoding, parse_crops_message};
use ddfr_wasm::{BrowserDetector, browser_detector_spec_file, build_crops_message, rgba_to_rgb};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn testdata() -> PathBuf {
    std::env::var_os("DDFR_TESTDATA")
        .map_or_else(|| repo_root().join("../shared/testdata"), PathBuf::from)
}

/// The detector from `models/`, or the reason it is not there.
fn detector() -> Result<BrowserDetector, String> {
    let models = repo_root().join("models");
    let manifest = std::fs::read_to_string(models.join("manifest.toml"))
        .map_err(|e| format!("no models/manifest.toml ({e})"))?;
    let file = browser_detector_spec_file(&manifest).map_err(|e| e.to_string())?;
    let model = std::fs::read(models.join(&file))
        .map_err(|e| format!("models/{file} missing, run scripts/setup ({e})"))?;
    BrowserDetector::from_bytes(&manifest, &model).map_err(|e| e.to_string())
}

fn rgba_of(path: &Path) -> (Vec<u8>, u32, u32) {
    let image = image::open(path).expect("test photo decodes").to_rgba8();
    let (w, h) = image.dimensions();
    (image.into_raw(), w, h)
}

#[test]
fn finds_one_face_and_builds_a_valid_crops_message() {
    let detector = match detector() {
        Ok(d) => d,
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
    let photo = testdata().join("faces/barack_obama/barack_obama_01.jpg");
    if !photo.is_file() {
        eprintln!("SKIPPED: test data not found at {}", photo.display());
        return;
    }
    let (rgba, w, h) = rgba_of(&photo);
    let frame = rgba_to_rgb(&rgba, w, h).expect("rgba is w*h*4");
    let faces = detector.detect(&frame).expect("detects");
    assert_eq!(faces.len(), 1, "{faces:?}");
    let face = &faces[0];
    assert!(face.score > 0.7);
    assert_eq!(face.keypoints.len(), 6);
    // The crop encloses the box (up to the frame edge) and stays inside the frame.
    assert!(
        face.crop.left as f32 <= face.left.max(0.0) && face.crop.top as f32 <= face.top.max(0.0)
    );
    assert!(face.crop.left + face.crop.width <= w && face.crop.top + face.crop.height <= h);

    let bytes = build_crops_message(&frame, &faces).expect("encodes");
    let message = parse_crops_message(&bytes).expect("the server's parser accepts it");
    assert_eq!((message.frame_width, message.frame_height), (w, h));
    let crop = &message.faces[0];
    assert_eq!(crop.encoding, CropEncoding::Jpeg);
    assert!(
        crop.width <= ddfr_wasm::MAX_CROP_OUTPUT_SIDE
            && crop.height <= ddfr_wasm::MAX_CROP_OUTPUT_SIDE
    );
    let landmarks = crop.landmarks.as_ref().expect("keypoints are sent");
    assert_eq!(landmarks.scheme, LandmarkScheme::BlazeFace6);
    let decoded =
        ddfr_engine::decode::decode_image(&crop.data, &ddfr_engine::decode::DecodeLimits::FRAME)
            .expect("crop is a JPEG");
    assert_eq!((decoded.width(), decoded.height()), (crop.width, crop.height));
}

#[test]
fn finds_nothing_in_a_photo_without_faces_and_rejects_bad_input() {
    let detector = match detector() {
        Ok(d) => d,
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
    assert!(rgba_to_rgb(&[0; 10], 2, 2).is_err());
    assert!(rgba_to_rgb(&[], 0, 0).is_err());
    // Bytes that are not the declared model are refused before tract sees them.
    let manifest =
        std::fs::read_to_string(repo_root().join("models/manifest.toml")).unwrap_or_default();
    assert!(BrowserDetector::from_bytes(&manifest, b"<!doctype html>").is_err());
    let dir = testdata().join("faces/none");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("SKIPPED: test data not found at {}", dir.display());
        return;
    };
    for entry in entries.flatten() {
        let (rgba, w, h) = rgba_of(&entry.path());
        let frame = rgba_to_rgb(&rgba, w, h).expect("rgba is w*h*4");
        let faces = detector.detect(&frame).expect("detects");
        assert!(faces.is_empty(), "{}: {faces:?}", entry.path().display());
    }
}
