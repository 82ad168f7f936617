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

/// The default model pack on ONNX Runtime with `max_concurrent` sessions, from
/// `$DDFR_MODELS_DIR` or the checkout's `models/`; `None` when the models are not set up.
pub fn load_pack(max_concurrent: usize) -> Option<Arc<ModelPack>> {
    required_in_ci(try_load_pack(max_concurrent), "the default model pack (scripts/setup)")
}

fn try_load_pack(max_concurrent: usize) -> Option<Arc<ModelPack>> {
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

/// Largest response body [`send`] reads.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Runs `request` through `app`: the status, the body as JSON (`null` when it is not JSON) and
/// the raw bytes.
pub async fn send(
    app: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (axum::http::StatusCode, serde_json::Value, Vec<u8>) {
    use tower::ServiceExt;
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_BODY).await.unwrap().to_vec();
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, value, bytes)
}

/// A request with a JSON body.
pub fn json_request(
    method: &str,
    uri: &str,
    body: &serde_json::Value,
) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap()
}

/// A `GET` without credentials.
pub fn get(uri: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::builder().uri(uri).body(axum::body::Body::empty()).unwrap()
}

/// A multipart form `POST` with one file part per `(field name, bytes)`.
pub fn multipart(uri: &str, files: &[(&str, &[u8])]) -> axum::http::Request<axum::body::Body> {
    const BOUNDARY: &str = "ddfr-test-boundary-7d41";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.jpg\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    axum::http::Request::builder()
        .method("POST")
        .uri(uri)
        .header(
            axum::http::header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(axum::body::Body::from(body))
        .unwrap()
}

/// Whether `needle` occurs in `haystack` (byte searches of database files).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// The services `ddfr serve` would build: the gallery loaded from `store` for `pack`'s
/// embedder, an inference pool of 2 workers, no unknown-visitor registry.
pub async fn services(
    pack: Arc<ModelPack>,
    store: Arc<dyn ddfr_store::PersonStore>,
) -> ddfr_server::Services {
    let gallery = ddfr_server::Gallery::load(
        store.as_ref(),
        pack.embedder_id(),
        pack.embedding_dim(),
        ddfr_index::IndexConfig::default(),
    )
    .await
    .unwrap();
    let min_similarity = pack.min_similarity;
    ddfr_server::Services {
        pool: ddfr_server::InferencePool::new(pack, 2),
        store,
        gallery: Arc::new(gallery),
        min_similarity,
        visitors: None,
    }
}
