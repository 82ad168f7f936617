//! What the in-process server tests share: the repository's paths, the test data, and the real
//! model pack (ONNX Runtime from `models/lib`, as `scripts/setup` installs it).

// Each test crate uses part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ddfr_engine::manifest::Manifest;
use ddfr_engine::pack::{ModelPack, PackOptions};
use ddfr_engine::runner::InferenceBackend;

/// The checkout's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$DDFR_TESTDATA`, else `../shared/testdata` next to the checkout; `None` without `faces/`.
pub fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("DDFR_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/testdata"));
    dir.join("faces").is_dir().then_some(dir)
}

/// The default model pack on ONNX Runtime with `max_concurrent` sessions, from
/// `$DDFR_MODELS_DIR` or the checkout's `models/`; `None` when the models are not set up.
pub fn load_pack(max_concurrent: usize) -> Option<Arc<ModelPack>> {
    let models = std::env::var_os("DDFR_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models"));
    let lib = std::fs::read_dir(models.join("lib")).ok()?.filter_map(|e| e.ok()).map(|e| e.path());
    let lib = lib.into_iter().find(|p| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so"))
    })?;
    ddfr_engine::runner::init_ort(&lib).ok()?;
    let manifest = Manifest::load(&models).ok()?;
    let options = PackOptions {
        backend: InferenceBackend::Ort,
        detector: None,
        intra_threads: 1,
        max_concurrent,
    };
    ModelPack::load(&manifest, "default", &options).ok().map(Arc::new)
}
