//! Shared helpers for the engine's tests on real models and real photos.
#![allow(dead_code, clippy::print_stdout)]

use std::path::{Path, PathBuf};

use image::RgbImage;

use ddfr_core::Embedding;
use ddfr_engine::decode::{DecodeLimits, decode_image};
use ddfr_engine::manifest::Manifest;
use ddfr_engine::pack::{ModelPack, PackOptions};
use ddfr_engine::runner::InferenceBackend;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// `$DDFR_TESTDATA` or `../shared/testdata`, when it exists.
pub fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("DDFR_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/testdata"));
    let found = dir.join("faces").is_dir().then_some(dir.clone());
    required_in_ci(found, &format!("the shared test data ({})", dir.display()))
}

/// In CI (`CI` set, as `.ci/run` runs), what CI is supposed to have must be there: a missing
/// fixture is a broken setup and fails the test instead of letting it print SKIPPED.
fn required_in_ci<T>(found: Option<T>, what: &str) -> Option<T> {
    if found.is_none() && std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        panic!(
            "CI is set but {what} is missing: the CI setup is broken (a local run would print SKIPPED)"
        );
    }
    found
}

/// The product models directory, when `scripts/setup` has filled it.
pub fn models_dir() -> Option<PathBuf> {
    let dir = repo_root().join("models");
    let found = dir.join("dlib_resnet_v1.onnx").is_file().then_some(dir);
    required_in_ci(found, "the models (scripts/setup)")
}

/// Prints why a test is skipped (the suite's convention: never `#[ignore]`).
pub fn skip(reason: &str) {
    println!("SKIPPED: {reason}");
}

/// Loads ONNX Runtime from `models/lib`, once.
pub fn init_ort() -> bool {
    #[cfg(feature = "ort")]
    {
        let Some(dir) = models_dir() else { return false };
        let Ok(entries) = std::fs::read_dir(dir.join("lib")) else { return false };
        let lib = entries.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        });
        lib.is_some_and(|lib| ddfr_engine::runner::init_ort(&lib).is_ok())
    }
    #[cfg(not(feature = "ort"))]
    {
        false
    }
}

/// The backends this test build can run: ort when its library loads, tract when compiled.
pub fn backends() -> Vec<InferenceBackend> {
    InferenceBackend::compiled()
        .into_iter()
        .filter(|b| *b != InferenceBackend::Ort || init_ort())
        .collect()
}

/// Loads a pack from `manifest`.
pub fn load_pack(manifest: &Manifest, pack: &str, backend: InferenceBackend) -> ModelPack {
    let options = PackOptions { backend, ..PackOptions::default() };
    ModelPack::load(manifest, pack, &options)
        .unwrap_or_else(|e| panic!("loading pack {pack} on {backend:?}: {e}"))
}

/// Reads a photo with the photo limits.
pub fn read_photo(path: &Path) -> RgbImage {
    decode_image(&std::fs::read(path).expect("read photo"), &DecodeLimits::PHOTO)
        .expect("decode photo")
}

/// A labelled photo of the test set.
#[derive(Debug, Clone)]
pub struct Photo {
    pub label: String,
    pub path: PathBuf,
}

/// Identity photos (`faces/<identity>/*`), sorted.
pub fn identity_photos(testdata: &Path) -> Vec<Photo> {
    let mut photos = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(testdata.join("faces"))
        .expect("faces dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let label = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if label == "group" || label == "none" {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("identity dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        photos.extend(files.into_iter().map(|path| Photo { label: label.clone(), path }));
    }
    photos
}

/// Photos in `faces/<folder>/`, sorted.
pub fn folder_photos(testdata: &Path, folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata.join("faces").join(folder))
        .expect("folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
}

/// The embedding of the largest face in `frame` (the labelled person of an identity photo).
pub fn largest_face_embedding(pack: &ModelPack, frame: &RgbImage) -> Option<Embedding> {
    let mut faces = pack.detect(frame).expect("detect");
    faces.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
    let largest = faces.into_iter().next()?;
    pack.analyze_faces(frame, vec![largest])
        .expect("analyze")
        .into_iter()
        .next()
        .map(|a| a.embedding)
}

/// Expected face counts per image, from the test set's manifest (`faces_scrfd_500m_score0.5`).
pub fn expected_face_counts(testdata: &Path) -> std::collections::HashMap<String, usize> {
    let text = std::fs::read_to_string(testdata.join("manifest.json")).expect("manifest.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("manifest json");
    json["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|img| {
            Some((
                img["path"].as_str()?.to_owned(),
                img["faces_scrfd_500m_score0.5"].as_u64()? as usize,
            ))
        })
        .collect()
}

/// Same- and different-identity cosine similarities over every pair of embeddings.
pub struct PairStats {
    pub same: Vec<f32>,
    pub different: Vec<f32>,
}

impl PairStats {
    pub fn of(embeddings: &[(String, Embedding)]) -> Self {
        let (mut same, mut different) = (Vec::new(), Vec::new());
        for (i, (la, ea)) in embeddings.iter().enumerate() {
            for (lb, eb) in &embeddings[i + 1..] {
                let s = ea.similarity(eb);
                if la == lb { same.push(s) } else { different.push(s) }
            }
        }
        Self { same, different }
    }

    pub fn min_same(&self) -> f32 {
        self.same.iter().copied().fold(f32::INFINITY, f32::min)
    }

    pub fn max_different(&self) -> f32 {
        self.different.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }

    pub fn report(&self, name: &str, threshold: f32) {
        let same_above = self.same.iter().filter(|s| **s >= threshold).count();
        let diff_below = self.different.iter().filter(|s| **s < threshold).count();
        println!(
            "{name}: threshold {threshold:.3}; same-identity pairs above: {same_above}/{} (min {:.4}, margin {:+.4}); different-identity pairs below: {diff_below}/{} (max {:.4}, margin {:+.4})",
            self.same.len(),
            self.min_same(),
            self.min_same() - threshold,
            self.different.len(),
            self.max_different(),
            threshold - self.max_different()
        );
    }
}
