//! ddfr's HTTP and WebSocket server (axum): the only crate that knows HTTP.
