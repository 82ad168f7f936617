//! The committed OpenAPI document, `docs/openapi.json`, is the one the code generates (the same
//! document `GET /openapi.json` serves). After a deliberate API change, rewrite it with
//! `DDFR_UPDATE_SNAPSHOTS=1 cargo test -p ddfr-server --test openapi_snapshot` and commit the
//! result with the change.

// A failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn snapshot_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

/// The generated document as committed: pretty JSON with a final newline.
fn generated() -> String {
    let document = ddfr_server::openapi::openapi_json();
    let mut json = serde_json::to_string_pretty(&document).unwrap();
    json.push('\n');
    json
}

#[test]
fn openapi_document_matches_the_committed_snapshot() {
    let path = snapshot_path();
    let generated = generated();
    if std::env::var_os("DDFR_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; create it with DDFR_UPDATE_SNAPSHOTS=1 cargo test -p \
             ddfr-server --test openapi_snapshot",
            path.display()
        )
    });
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/openapi.json differs from the generated document from line {}:\n  committed: \
             {}\n  generated: {}\nIf the API change is intended, rewrite it with \
             DDFR_UPDATE_SNAPSHOTS=1 cargo test -p ddfr-server --test openapi_snapshot",
            line + 1,
            committed.lines().nth(line).unwrap_or("<end of file>"),
            generated.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn the_generated_document_describes_the_rest_api() {
    let document: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/api/persons", "/api/persons/{id}/faces", "/api/recognize", "/api/verify"] {
        assert!(document["paths"][path].is_object(), "{path} missing");
    }
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
}
