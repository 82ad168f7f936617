//! Domain values shared by every ddfr crate: geometry, faces, embeddings and ids.
//!
//! Architecture invariant: this crate does no IO, spawns no threads and compiles to
//! `wasm32-unknown-unknown`. It knows nothing about JSON shapes on the wire (that is
//! `ddfr-protocol`) nor about models (that is `ddfr-engine`).
#![warn(missing_docs)]

mod embedding;
mod geometry;
mod ids;

pub use embedding::{Embedding, EmbeddingError, cosine_similarity};
pub use geometry::{BoundingBox, Face, LandmarkScheme, Landmarks, PixelBox, Point};
pub use ids::{FaceId, ModelId, PersonId, VisitorId};
