//! The browser app: static files from the built `web/dist`, with `index.html` for every path
//! that is not a file (client-side routes). Without a build, a page says how to make one.

use std::path::Path;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

/// Shown at `/` when the web app has not been built.
const NOT_BUILT_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ddfr</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>ddfr is running</h1>
<p>The web app is not built. In the ddfr checkout, run <code>scripts/build</code> (it installs
the web toolchain if needed and writes <code>web/dist</code>), or start everything with
<code>scripts/serve</code>; or point <code>--web-dir</code> / <code>DDFR_WEB_DIR</code> at a built
copy. Then restart the server.</p>
<p>The API works without it: see <a href="/openapi.json">/openapi.json</a>, <code>/api/health</code>
and the WebSocket at <code>/ws</code>.</p>
</body></html>
"#;

/// The fallback service for every path no API route matched.
pub fn web_routes(web_dir: Option<&Path>) -> Router<AppState> {
    match web_dir.filter(|dir| dir.join("index.html").is_file()) {
        Some(dir) => {
            let index = ServeFile::new(dir.join("index.html"));
            Router::new().fallback_service(ServeDir::new(dir).fallback(index))
        }
        None => {
            Router::new().route("/", get(|| async { Html(NOT_BUILT_PAGE) })).fallback(|| async {
                crate::error::ApiError::new(
                    axum::http::StatusCode::NOT_FOUND,
                    "not_found",
                    "no such route",
                )
            })
        }
    }
}
