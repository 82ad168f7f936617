//! Keeps the in-memory gallery in step with the store around storage I/O errors.
//!
//! A write that fails with a storage I/O error (503 `storage_unavailable`) has an unknown
//! outcome: SQLite reports the failed `fsync`, but the transaction's bytes may already be in
//! the write-ahead log and become visible later (see [`crate::gallery::Gallery::reload`]). This
//! middleware marks the gallery stale and reloads it from the store after such an error, and
//! again after the first successful write that follows, so recognition, `/api/health` and the
//! REST views agree with what the database holds.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::error_chain;
use crate::state::AppState;

/// Put in a response's extensions by [`crate::ApiError`] for a storage I/O error.
#[derive(Debug, Clone, Copy)]
pub struct StorageFault;

/// The middleware (on every route).
pub async fn resync_after_storage_faults(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let write = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let response = next.run(request).await;
    let fault = response.extensions().get::<StorageFault>().is_some();
    let successful_write = write && response.status().is_success();
    if !(fault || successful_write) {
        return response;
    }
    let Ok(services) = state.services() else {
        return response;
    };
    if fault {
        services.gallery.mark_stale();
    } else if !services.gallery.is_stale() {
        return response;
    }
    // After a fault the mark stays (the failed write may surface later); the first successful
    // write after it reloads once more and clears it.
    match services.gallery.reload(services.store.as_ref(), !fault).await {
        Ok(()) => tracing::info!(
            after_fault = fault,
            persons = services.gallery.n_persons(),
            faces = services.gallery.n_faces(),
            "gallery reloaded from the store after a storage I/O error"
        ),
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "reloading the gallery after a storage I/O error")
        }
    }
    response
}
