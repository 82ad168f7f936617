//! `ddfr-wasm` compiled to wasm32 and run under Node by `wasm-bindgen-test-runner`
//! (`scripts/test-web`): the JavaScript-facing [`JsDetector`] on the real default detector
//! (`models/`, embedded at build time) and real photos from `$DDFR_TESTDATA` (read at run time
//! through Node's `fs`), the crops message it builds read back by the server's parser, and
//! the errors it gives for broken models and frames.
//!
//! Run: `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner cargo test
//! --release -p ddfr-wasm --target wasm32-unknown-unknown --test node`.
#![cfg(target_arch = "wasm32")]

use std::cell::OnceCell;

use js_sys::{Array, Reflect};
use sha2::{Digest, Sha256};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::{console_log, wasm_bindgen_test};

use ddfr_core::{BoundingBox, LandmarkScheme};
use ddfr_engine::decode::{DecodeLimits, decode_image};
use ddfr_protocol::{CropEncoding, encode_crops_message, parse_crops_message};
use ddfr_wasm::{JsDetector, MAX_CROP_OUTPUT_SIDE, RgbImage};

/// The files the web app fetches (`web/index.html` copies exactly these into `dist/models`).
const MANIFEST: &str = include_str!("../../../models/manifest.toml");
const MODEL: &[u8] = include_bytes!("../../../models/blazeface_full_range.onnx");
const REPO_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

#[wasm_bindgen(module = "fs")]
extern "C" {
    #[wasm_bindgen(js_name = readFileSync, catch)]
    fn read_file_sync(path: &str) -> Result<Vec<u8>, JsValue>;
    #[wasm_bindgen(js_name = readdirSync, catch)]
    fn readdir_sync(path: &str) -> Result<Vec<String>, JsValue>;
}

thread_local! {
    static DETECTOR: OnceCell<JsDetector> = const { OnceCell::new() };
}

/// Runs `f` with the detector built once from the real model.
fn with_detector<T>(f: impl FnOnce(&JsDetector) -> T) -> T {
    DETECTOR.with(|cell| {
        f(cell.get_or_init(|| {
            JsDetector::from_bytes(MANIFEST, MODEL)
                .unwrap_or_else(|e| panic!("the real model loads: {}", js_message(e.into())))
        }))
    })
}

/// `$DDFR_TESTDATA` from Node's environment, else `../shared/testdata` next to the checkout.
fn testdata() -> String {
    let env = Reflect::get(&js_sys::global(), &"process".into())
        .and_then(|process| Reflect::get(&process, &"env".into()))
        .and_then(|env| Reflect::get(&env, &"DDFR_TESTDATA".into()));
    env.ok()
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| format!("{REPO_ROOT}/../shared/testdata"))
}

/// A test photo decoded the way the server decodes enrolment photos, or `None` (printed as
/// SKIPPED) when the test data is absent.
fn photo(relative: &str) -> Option<RgbImage> {
    let path = format!("{}/faces/{relative}", testdata());
    match read_file_sync(&path) {
        Ok(bytes) => Some(decode_image(&bytes, &DecodeLimits::PHOTO).expect("test photo decodes")),
        Err(_) => {
            console_log!("SKIPPED: test data not found at {path}");
            None
        }
    }
}

/// Canvas-style RGBA pixels of `frame`.
fn rgba(frame: &RgbImage) -> Vec<u8> {
    frame.pixels().flat_map(|p| [p[0], p[1], p[2], 255]).collect()
}

/// A thrown JavaScript error's message.
fn js_message(error: JsValue) -> String {
    Reflect::get(&error, &"message".into()).ok().and_then(|m| m.as_string()).unwrap_or_default()
}

fn number(value: &JsValue, key: &str) -> f32 {
    Reflect::get(value, &key.into()).ok().and_then(|v| v.as_f64()).expect(key) as f32
}

/// One face as `detect` hands it to JavaScript.
#[derive(Debug)]
struct Found {
    bbox: BoundingBox,
    score: f32,
    keypoints: Vec<[f32; 2]>,
}

/// `detect`'s faces, read back through JavaScript property access.
fn detect(detector: &JsDetector, frame: &RgbImage) -> Vec<Found> {
    let result = detector
        .detect(&rgba(frame), frame.width(), frame.height())
        .unwrap_or_else(|e| panic!("detect: {}", js_message(e.into())));
    let faces: Array = Reflect::get(&result, &"faces".into()).expect("faces").into();
    faces
        .iter()
        .map(|face| {
            let bbox = BoundingBox::new(
                number(&face, "left"),
                number(&face, "top"),
                number(&face, "right"),
                number(&face, "bottom"),
            );
            let keypoints: Array = Reflect::get(&face, &"keypoints".into()).expect("kp").into();
            let keypoints = keypoints
                .iter()
                .map(|p| {
                    let p: Array = p.into();
                    [0, 1].map(|i| p.get(i).as_f64().expect("coordinate") as f32)
                })
                .collect();
            Found { bbox, score: number(&face, "score"), keypoints }
        })
        .collect()
}

/// `frame` pasted at (`dx`, `dy`) into a larger mid-grey frame.
fn pasted(frame: &RgbImage, width: u32, height: u32, dx: u32, dy: u32) -> RgbImage {
    let mut canvas = RgbImage::from_pixel(width, height, image::Rgb([128, 128, 128]));
    image::imageops::replace(&mut canvas, frame, i64::from(dx), i64::from(dy));
    canvas
}

#[wasm_bindgen_test]
fn the_detector_reports_the_manifest_model() {
    with_detector(|d| assert_eq!(d.model_id(), "blazeface-full-range"));
}

#[wasm_bindgen_test]
fn finds_the_face_in_a_real_photo_with_its_box_in_frame_coordinates() {
    let Some(portrait) = photo("barack_obama/barack_obama_04.jpg") else { return };
    with_detector(|detector| {
        let faces = detect(detector, &portrait);
        assert_eq!(faces.len(), 1, "{faces:?}");
        let Found { bbox: face, score, ref keypoints } = faces[0];
        assert!(score > 0.7, "score {score}");
        assert_eq!(keypoints.len(), 6);
        let (w, h) = (portrait.width() as f32, portrait.height() as f32);
        assert!(face.width() > 0.2 * w && face.width() < w, "{face:?} in {w}x{h}");
        assert!(face.left >= -1.0 && face.right <= w + 1.0 && face.bottom <= h + 1.0, "{face:?}");

        // The same photo placed lower right in a larger frame: the box moves with it, in frame
        // pixels (not the detector's 192x192 input, not relative to the photo).
        let (dx, dy) = (300, 150);
        let frame = pasted(&portrait, portrait.width() + 420, portrait.height() + 260, dx, dy);
        let moved = detect(detector, &frame);
        assert_eq!(moved.len(), 1, "{moved:?}");
        let moved = moved[0].bbox;
        let tolerance = 0.06 * face.width();
        for (found, expected) in [
            (moved.left, face.left + dx as f32),
            (moved.top, face.top + dy as f32),
            (moved.right, face.right + dx as f32),
            (moved.bottom, face.bottom + dy as f32),
        ] {
            assert!(
                (found - expected).abs() <= tolerance,
                "box {moved:?} is not the photo's box {face:?} moved by ({dx}, {dy})"
            );
        }
    });
}

#[wasm_bindgen_test]
fn finds_no_face_in_a_blank_frame_or_a_photo_without_faces() {
    with_detector(|detector| {
        for value in [0u8, 128, 255] {
            let blank = RgbImage::from_pixel(640, 480, image::Rgb([value; 3]));
            assert!(detect(detector, &blank).is_empty(), "blank frame of {value}");
            let message = detector.crops_message(&rgba(&blank), 640, 480);
            assert!(message.expect("runs").is_none(), "nothing is sent without faces");
        }
    });
    let dir = format!("{}/faces/none", testdata());
    let Ok(names) = readdir_sync(&dir) else {
        console_log!("SKIPPED: test data not found at {dir}");
        return;
    };
    assert!(!names.is_empty(), "{dir} is empty");
    for name in names {
        let frame = photo(&format!("none/{name}")).expect("listed file reads");
        with_detector(|detector| assert!(detect(detector, &frame).is_empty(), "{name}"));
    }
}

#[wasm_bindgen_test]
fn the_crops_message_round_trips_through_the_servers_parser() {
    let Some(portrait) = photo("barack_obama/barack_obama_04.jpg") else { return };
    let (dx, dy) = (120, 40);
    let frame = pasted(&portrait, portrait.width() + 200, portrait.height() + 80, dx, dy);
    let (w, h) = frame.dimensions();
    with_detector(|detector| {
        let faces = detect(detector, &frame);
        assert_eq!(faces.len(), 1, "{faces:?}");
        let bytes = detector
            .crops_message(&rgba(&frame), w, h)
            .unwrap_or_else(|e| panic!("crops message: {}", js_message(e.into())))
            .expect("a face gives a message");
        let message = parse_crops_message(&bytes).expect("the server's parser accepts it");
        assert_eq!((message.frame_width, message.frame_height), (w, h));
        assert_eq!(message.faces.len(), 1);
        let crop = &message.faces[0];
        // The box travels in frame coordinates, exactly as `detect` reported it.
        assert_eq!(crop.bbox, faces[0].bbox);
        assert!((crop.score.expect("score is sent") - faces[0].score).abs() < 1e-6);
        let landmarks = crop.landmarks.as_ref().expect("keypoints are sent");
        assert_eq!(landmarks.scheme, LandmarkScheme::BlazeFace6);
        let sent: Vec<[f32; 2]> = landmarks.points.iter().map(|p| [p.x, p.y]).collect();
        assert_eq!(sent, faces[0].keypoints);
        // The crop region encloses the box, lies in the frame and the pixels are its JPEG.
        let region = crop.region;
        assert!(region.left <= crop.bbox.left && region.top <= crop.bbox.top);
        assert!(region.left + region.width >= crop.bbox.right.min(w as f32));
        assert!(region.left + region.width <= w as f32 && region.top + region.height <= h as f32);
        assert_eq!(crop.encoding, CropEncoding::Jpeg);
        assert!(crop.width <= MAX_CROP_OUTPUT_SIDE && crop.height <= MAX_CROP_OUTPUT_SIDE);
        let pixels = decode_image(&crop.data, &DecodeLimits::FRAME).expect("the crop decodes");
        assert_eq!(pixels.dimensions(), (crop.width, crop.height));
        // Encoding what was parsed gives back the same bytes.
        assert_eq!(encode_crops_message(&message), bytes);
    });
}

#[wasm_bindgen_test]
fn broken_models_and_frames_are_errors_not_panics() {
    // Bytes that are not the declared model are refused by checksum before tract sees them.
    let truncated = &MODEL[..MODEL.len() / 2];
    let error =
        js_message(JsDetector::from_bytes(MANIFEST, truncated).expect_err("refused").into());
    assert!(error.contains("sha256"), "{error}");
    // Bytes that match a (doctored) manifest but are no ONNX graph fail in the loader.
    let expected = hex_sha256(MODEL);
    let doctored = MANIFEST.replace(&expected, &hex_sha256(truncated));
    assert_ne!(doctored, MANIFEST, "the manifest declares the model's sha256");
    let error = JsDetector::from_bytes(&doctored, truncated).expect_err("a truncated graph");
    let error = js_message(error.into());
    assert!(!error.is_empty() && !error.contains("sha256"), "{error}");
    // A manifest that does not parse.
    let error = JsDetector::from_bytes("[[models]\nid = ", MODEL).expect_err("bad manifest");
    assert!(js_message(error.into()).contains("manifest"));
    // A pixel buffer of the wrong size.
    with_detector(|detector| {
        let error = detector.detect(&[0; 10], 2, 2).expect_err("10 bytes are not 2x2 RGBA");
        assert!(js_message(error.into()).contains("16 RGBA bytes"));
        assert!(detector.crops_message(&[], 0, 0).is_err());
    });
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
