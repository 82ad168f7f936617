//! dlib alignment against dlib itself: the 5-point shape predictor and the face chip.
//!
//! The reference comes from `scripts/models/dlib_alignment_reference.py OUTDIR` (run with the
//! project venv's python), read from `$DDFR_REFERENCE_DIR` (default
//! `<repo>/.cache/reference/dlib_alignment`). The model is `$DDFR_DLIB_SHAPE_PREDICTOR`, else
//! `<repo>/models/shape_predictor_5_face_landmarks.dat`, else the copy in the project venv's
//! `face_recognition_models`. Missing inputs print `SKIPPED: ...`. The robustness tests build
//! a small synthetic model and always run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ddfr_core::{BoundingBox, LandmarkScheme, Landmarks, Point};
use ddfr_engine::align::dlib_chip::{dlib_chip_transform, extract_dlib_chip};
use ddfr_engine::align::shape_predictor::{ShapePredictor, bounding_box_from_dlib_rect};
use image::RgbImage;
use proptest::prelude::*;

const MODEL_FILE: &str = "shape_predictor_5_face_landmarks.dat";
/// dlib's own landmarks are whole pixels; ours must round to the same pixel.
const MAX_LANDMARK_ERROR_PX: f32 = 0.5;
/// Mean absolute chip difference allowed, in grey levels (0-255).
const MAX_CHIP_MEAN_ABS_DIFF: f64 = 1.0;
const CHIP_SIZE: u32 = 150;
const CHIP_PADDING: f32 = 0.25;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn testdata_dir() -> PathBuf {
    std::env::var_os("DDFR_TESTDATA")
        .map_or_else(|| repo_root().join("../shared/testdata"), PathBuf::from)
}

fn reference_dir() -> PathBuf {
    std::env::var_os("DDFR_REFERENCE_DIR")
        .map_or_else(|| repo_root().join(".cache/reference/dlib_alignment"), PathBuf::from)
}

fn model_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DDFR_DLIB_SHAPE_PREDICTOR") {
        return Some(PathBuf::from(p));
    }
    let in_models = repo_root().join("models").join(MODEL_FILE);
    if in_models.is_file() {
        return Some(in_models);
    }
    let lib = repo_root().join(".cache/venv/lib");
    std::fs::read_dir(lib).ok()?.flatten().find_map(|python| {
        let p = python.path().join("site-packages/face_recognition_models/models").join(MODEL_FILE);
        p.is_file().then_some(p)
    })
}

fn load_rgb(path: &Path) -> RgbImage {
    image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8()
}

fn dlib5(points: &[[f32; 2]]) -> Landmarks {
    Landmarks {
        scheme: LandmarkScheme::Dlib5,
        points: points.iter().map(|&[x, y]| Point::new(x, y)).collect(),
    }
}

/// (mean, max) absolute per-channel difference of two equally sized images.
fn chip_diff(a: &RgbImage, b: &RgbImage) -> (f64, u8) {
    assert_eq!(a.dimensions(), b.dimensions());
    let (sum, max) =
        a.as_raw().iter().zip(b.as_raw()).fold((0u64, 0u8), |(s, m), (&x, &y)| {
            (s + u64::from(x.abs_diff(y)), m.max(x.abs_diff(y)))
        });
    (sum as f64 / a.as_raw().len() as f64, max)
}

#[test]
fn matches_dlib_on_the_test_photos() {
    let dir = reference_dir();
    let Ok(json) = std::fs::read_to_string(dir.join("reference.json")) else {
        println!(
            "SKIPPED: no dlib reference at {} (run scripts/models/dlib_alignment_reference.py)",
            dir.display()
        );
        return;
    };
    let Some(model) = model_path() else {
        println!("SKIPPED: {MODEL_FILE} not found (set DDFR_DLIB_SHAPE_PREDICTOR)");
        return;
    };
    let predictor = ShapePredictor::open(&model).expect("model loads");
    assert_eq!(predictor.num_parts(), 5);
    let reference: serde_json::Value = serde_json::from_str(&json).expect("reference.json parses");
    let images = reference["images"].as_array().expect("images");

    let (mut faces, mut max_landmark_err, mut worst_mean, mut sum_mean) = (0, 0f32, 0f64, 0f64);
    let (mut max_unrounded_err, mut worst_mean_own_points) = (0f64, 0f64);
    let (mut predict_time, mut chip_time) = (Duration::ZERO, Duration::ZERO);
    // The same photos decoded by the `image` crate instead of PIL/libjpeg, as ddfr decodes them.
    let (mut decoded_faces, mut decoder_landmark_err, mut decoder_chip_mean) = (0, 0f32, 0f64);
    for entry in images {
        let frame = load_rgb(&dir.join(entry["frame"].as_str().expect("frame")));
        let original = testdata_dir().join(entry["image"].as_str().expect("image"));
        let own_decode = image::open(&original)
            .ok()
            .map(|i| i.to_rgb8())
            .filter(|i| i.dimensions() == frame.dimensions());
        for face in entry["faces"].as_array().expect("faces") {
            let r: Vec<f32> = face["rect"]
                .as_array()
                .expect("rect")
                .iter()
                .map(|v| v.as_f64().expect("num") as f32)
                .collect();
            let bbox = bounding_box_from_dlib_rect(r[0], r[1], r[2], r[3]);
            let theirs: Vec<[f32; 2]> = face["points"]
                .as_array()
                .expect("points")
                .iter()
                .map(|p| [p[0].as_f64().expect("x") as f32, p[1].as_f64().expect("y") as f32])
                .collect();

            let t = Instant::now();
            let ours = predictor.predict(&frame, &bbox);
            predict_time += t.elapsed();
            assert_eq!(ours.scheme, LandmarkScheme::Dlib5);
            for (o, t) in ours.points.iter().zip(&theirs) {
                max_landmark_err = max_landmark_err.max((o.x - t[0]).abs()).max((o.y - t[1]).abs());
            }
            for (o, t) in predictor.predict_unrounded(&frame, &bbox).iter().zip(&theirs) {
                let err = (o[0] - f64::from(t[0])).abs().max((o[1] - f64::from(t[1])).abs());
                max_unrounded_err = max_unrounded_err.max(err);
            }

            // The chip from dlib's own points isolates the chip algorithm from the predictor.
            let dlib_chip = load_rgb(&dir.join(face["chip"].as_str().expect("chip")));
            let t = Instant::now();
            let chip = extract_dlib_chip(&frame, &dlib5(&theirs), CHIP_SIZE, CHIP_PADDING);
            chip_time += t.elapsed();
            let (mean, max) = chip_diff(&chip, &dlib_chip);
            let (mean_own, _) =
                chip_diff(&extract_dlib_chip(&frame, &ours, CHIP_SIZE, CHIP_PADDING), &dlib_chip);
            println!(
                "{} rect {r:?}: landmarks {:?}, chip mean |diff| {mean:.4} (max {max}), from our landmarks {mean_own:.4}",
                entry["image"].as_str().unwrap_or("?"),
                ours.points.iter().map(|p| (p.x, p.y)).collect::<Vec<_>>(),
            );
            if let Some(decoded) = &own_decode {
                let lm = predictor.predict(decoded, &bbox);
                for (o, t) in lm.points.iter().zip(&theirs) {
                    decoder_landmark_err =
                        decoder_landmark_err.max((o.x - t[0]).abs()).max((o.y - t[1]).abs());
                }
                let chip = extract_dlib_chip(decoded, &lm, CHIP_SIZE, CHIP_PADDING);
                let (mean, _) = chip_diff(&chip, &dlib_chip);
                println!("  decoded by the image crate: chip mean |diff| {mean:.4}");
                decoder_chip_mean = decoder_chip_mean.max(mean);
                decoded_faces += 1;
            }
            faces += 1;
            worst_mean = worst_mean.max(mean);
            worst_mean_own_points = worst_mean_own_points.max(mean_own);
            sum_mean += mean;
        }
    }
    assert!(faces > 0, "the reference has no faces");
    println!(
        "{faces} faces: max landmark error {max_landmark_err} px (unrounded {max_unrounded_err:.3} px); \
         chip mean |diff| avg {:.4}, worst {worst_mean:.4} (worst from our landmarks {worst_mean_own_points:.4}); \
         predict {:?}/face, chip {:?}/face",
        sum_mean / faces as f64,
        predict_time / faces,
        chip_time / faces,
    );
    println!(
        "{decoded_faces} faces re-decoded with the image crate: max landmark error {decoder_landmark_err} px, \
         worst chip mean |diff| {decoder_chip_mean:.4} (decoder differences, informational)"
    );
    println!("{}", time_warm(&predictor, &dir, images));
    assert!(
        max_landmark_err <= MAX_LANDMARK_ERROR_PX,
        "landmarks differ from dlib by {max_landmark_err} px"
    );
    assert!(
        worst_mean < MAX_CHIP_MEAN_ABS_DIFF,
        "a chip differs from dlib's by {worst_mean} on average"
    );
}

/// Times repeated predictions and chip extractions on the first reference face, with warm
/// caches (run with `--release` for meaningful numbers), as a line to print.
fn time_warm(predictor: &ShapePredictor, dir: &Path, images: &[serde_json::Value]) -> String {
    const REPEATS: u32 = 50;
    let entry = &images[0];
    let frame = load_rgb(&dir.join(entry["frame"].as_str().expect("frame")));
    let r: Vec<f32> = entry["faces"][0]["rect"]
        .as_array()
        .expect("rect")
        .iter()
        .map(|v| v.as_f64().expect("num") as f32)
        .collect();
    let bbox = bounding_box_from_dlib_rect(r[0], r[1], r[2], r[3]);
    let landmarks = predictor.predict(&frame, &bbox);
    let t = Instant::now();
    for _ in 0..REPEATS {
        std::hint::black_box(predictor.predict(std::hint::black_box(&frame), &bbox));
    }
    let predict = t.elapsed() / REPEATS;
    let t = Instant::now();
    for _ in 0..REPEATS {
        std::hint::black_box(extract_dlib_chip(
            std::hint::black_box(&frame),
            &landmarks,
            CHIP_SIZE,
            CHIP_PADDING,
        ));
    }
    format!(
        "warm timing on {} (face {}x{} px): predict {predict:?}, chip {:?}",
        entry["image"].as_str().unwrap_or("?"),
        r[2] - r[0] + 1.0,
        r[3] - r[1] + 1.0,
        t.elapsed() / REPEATS
    )
}

/// Serializes integers and floats the way dlib's `serialize()` does, to build test models.
#[derive(Default)]
struct DlibWriter(Vec<u8>);

impl DlibWriter {
    fn int(&mut self, value: i64) -> &mut Self {
        let mut magnitude = value.unsigned_abs();
        let control = self.0.len();
        self.0.push(0);
        let mut n = 0u8;
        loop {
            self.0.push((magnitude & 0xFF) as u8);
            n += 1;
            magnitude >>= 8;
            if magnitude == 0 {
                break;
            }
        }
        self.0[control] = n | if value < 0 { 0x80 } else { 0 };
        self
    }

    /// A float as `mantissa * 2^-16` (exact for the small test values used).
    fn float(&mut self, value: f32) -> &mut Self {
        self.int((f64::from(value) * 65536.0).round() as i64).int(-16)
    }

    fn column(&mut self, values: &[f32]) -> &mut Self {
        self.int(-(values.len() as i64)).int(-1);
        for &v in values {
            self.float(v);
        }
        self
    }
}

/// A small but complete shape predictor: 5 parts, 2 cascade levels of 3 depth-2 trees over 6
/// feature pixels.
fn synthetic_model() -> Vec<u8> {
    let initial = [0.8f32, 0.2, 0.65, 0.25, 0.15, 0.2, 0.35, 0.25, 0.5, 0.6];
    let mut w = DlibWriter::default();
    w.int(1).column(&initial);
    let (levels, trees, features) = (2, 3, 6i64);
    w.int(levels);
    for _ in 0..levels {
        w.int(trees);
        for t in 0..trees {
            w.int(3);
            for s in 0..3 {
                w.int((t + s) % features).int((t + 2 * s + 1) % features).float(s as f32 - 1.0);
            }
            w.int(4);
            for leaf in 0..4 {
                w.column(&[0.001 * leaf as f32; 10]);
            }
        }
    }
    w.int(levels);
    for _ in 0..levels {
        w.int(features);
        for f in 0..features {
            w.int(f % 5);
        }
    }
    w.int(levels);
    for _ in 0..levels {
        w.int(features);
        for f in 0..features {
            w.float(0.01 * f as f32).float(-0.02 * f as f32);
        }
    }
    w.0
}

fn gradient_frame(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    })
}

#[test]
fn synthetic_model_loads_and_every_truncation_is_an_error() {
    let bytes = synthetic_model();
    let predictor = ShapePredictor::from_dat_bytes(&bytes).expect("synthetic model loads");
    assert_eq!(predictor.num_parts(), 5);
    for len in 0..bytes.len() {
        assert!(
            ShapePredictor::from_dat_bytes(&bytes[..len]).is_err(),
            "truncation to {len} bytes loaded"
        );
    }
}

#[test]
fn real_model_truncations_are_errors() {
    let Some(path) = model_path() else {
        println!("SKIPPED: {MODEL_FILE} not found (set DDFR_DLIB_SHAPE_PREDICTOR)");
        return;
    };
    let bytes = std::fs::read(path).expect("model readable");
    let cuts = (0..64).chain((1..16).map(|k| bytes.len() * k / 16)).chain([bytes.len() - 1]);
    for len in cuts {
        assert!(
            ShapePredictor::from_dat_bytes(&bytes[..len]).is_err(),
            "truncation to {len} bytes loaded"
        );
    }
}

#[test]
fn a_rect_partly_outside_the_frame_and_a_one_pixel_frame_work() {
    let predictor = ShapePredictor::from_dat_bytes(&synthetic_model()).expect("loads");
    let frame = gradient_frame(64, 48);
    for rect in [
        BoundingBox::new(-30.0, -20.0, 30.0, 30.0),
        BoundingBox::new(40.0, 30.0, 200.0, 190.0),
        BoundingBox::new(1e9, -1e9, 2e9, 1e9),
        BoundingBox::new(f32::NAN, 0.0, 10.0, f32::INFINITY),
    ] {
        let landmarks = predictor.predict(&frame, &rect);
        assert_eq!(landmarks.points.len(), 5);
        let chip = extract_dlib_chip(&frame, &landmarks, CHIP_SIZE, CHIP_PADDING);
        assert_eq!(chip.dimensions(), (CHIP_SIZE, CHIP_SIZE));
    }
    let tiny = gradient_frame(1, 1);
    let landmarks = predictor.predict(&tiny, &BoundingBox::new(0.0, 0.0, 1.0, 1.0));
    let chip = extract_dlib_chip(&tiny, &landmarks, CHIP_SIZE, CHIP_PADDING);
    assert_eq!(chip.dimensions(), (CHIP_SIZE, CHIP_SIZE));
    let empty = RgbImage::new(0, 0);
    let landmarks = predictor.predict(&empty, &BoundingBox::new(0.0, 0.0, 10.0, 10.0));
    assert!(
        extract_dlib_chip(&empty, &landmarks, CHIP_SIZE, CHIP_PADDING)
            .pixels()
            .all(|p| p.0 == [0, 0, 0])
    );
}

#[test]
fn a_face_far_larger_than_the_chip_uses_the_pyramid_and_stays_aligned() {
    // A 1200-pixel "face" needs several pyramid levels; a flat frame must stay flat apart from
    // the black border where the padded chip leaves the frame.
    let frame = RgbImage::from_pixel(1600, 1600, image::Rgb([90, 160, 230]));
    let scale = 1200.0 / 150.0;
    let template =
        [[0.86f32, 0.213], [0.646, 0.229], [0.121, 0.214], [0.334, 0.229], [0.49, 0.628]];
    let points: Vec<[f32; 2]> = template
        .iter()
        .map(|p| [200.0 + p[0] * 150.0 * scale, 200.0 + p[1] * 150.0 * scale])
        .collect();
    let chip = extract_dlib_chip(&frame, &dlib5(&points), CHIP_SIZE, CHIP_PADDING);
    assert_eq!(chip.get_pixel(75, 75).0, [90, 160, 230]);
    let tf = dlib_chip_transform(&dlib5(&points), CHIP_SIZE, CHIP_PADDING);
    let nose = tf.frame_to_chip(Point::new(points[4][0], points[4][1])).expect("invertible");
    assert!((nose.y - (0.25 + 0.628) / 1.5 * 150.0).abs() < 2.0, "{nose:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_and_corrupted_models_never_panic(
        garbage in proptest::collection::vec(any::<u8>(), 0..512),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let _ = ShapePredictor::from_dat_bytes(&garbage);
        let mut bytes = synthetic_model();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(predictor) = ShapePredictor::from_dat_bytes(&bytes) {
            // A corrupted but structurally valid model must still run without panicking.
            let landmarks = predictor.predict(&gradient_frame(32, 32), &BoundingBox::new(4.0, 4.0, 28.0, 28.0));
            prop_assert_eq!(landmarks.points.len(), predictor.num_parts());
            let _ = extract_dlib_chip(&gradient_frame(32, 32), &landmarks, 16, 0.25);
        }
    }
}
