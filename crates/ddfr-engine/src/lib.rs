//! ddfr's face engine: turns an encoded image into faces, aligned chips and embeddings.
//!
//! Architecture invariant: this crate never awaits and never touches the network or a
//! database. Model families (BlazeFace, SCRFD, YuNet, dlib ResNet, ArcFace) sit above the
//! [`runner::ModelRunner`] seam and never name `ort` or `tract`.

#[cfg(not(any(feature = "ort", feature = "tract")))]
compile_error!("ddfr-engine needs at least one inference backend: enable feature `ort` or `tract`");

pub mod align;
pub mod decode;
pub mod detect;
pub mod embed;
mod error;
pub mod manifest;
pub mod pack;
pub mod preprocess;
pub mod quality;
pub mod recognizer;
pub mod runner;

pub use error::EngineError;
