//! The engine's typed error.

use std::path::PathBuf;

use crate::runner::InferenceBackend;

/// Everything that can go wrong between encoded bytes and embeddings.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The bytes are not a JPEG, PNG or WebP image (checked by magic bytes, before decoding).
    #[error("unsupported image format: only JPEG, PNG and WebP are accepted")]
    UnsupportedFormat,
    /// The input is larger than the configured byte limit.
    #[error("image is {bytes} bytes, over the limit of {limit}")]
    TooLarge {
        /// Size of the input.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The header declares dimensions over the limit (checked before any pixel is decoded).
    #[error("image declares {width}x{height} pixels, over the limit of {max_width}x{max_height}")]
    DimensionsTooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Maximum width.
        max_width: u32,
        /// Maximum height.
        max_height: u32,
    },
    /// A JPEG with more scans (SOS markers) than allowed: progressive JPEGs with hundreds of
    /// scans take seconds of CPU to decode however small they are.
    #[error("JPEG has {scans} scans, over the limit of {limit}")]
    TooManyScans {
        /// Scans (start-of-scan markers) found.
        scans: u32,
        /// The limit.
        limit: u32,
    },
    /// The header declares more pixels than the pixel budget (checked before any pixel is
    /// decoded): each side may be within its limit while their product is not.
    #[error("image declares {width}x{height} = {pixels} pixels, over the budget of {limit}")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// `width * height`.
        pixels: u64,
        /// The budget.
        limit: u64,
    },
    /// Decoding took longer than the per-decode time bound and was abandoned.
    #[error("decoding took longer than {limit_ms} ms and was abandoned")]
    DecodeTimeout {
        /// The bound, in milliseconds.
        limit_ms: u64,
    },
    /// The image could not be decoded (truncated, corrupt, ...).
    #[error("image could not be decoded")]
    Decode {
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// A model file or the manifest could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is malformed or names something that does not exist.
    #[error("model manifest: {message}")]
    Manifest {
        /// What is wrong.
        message: String,
    },
    /// A model file does not match what the manifest declares.
    #[error("model {model}: expected {expected}, found {found}")]
    ManifestMismatch {
        /// The model id.
        model: String,
        /// What the manifest declares.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// The inference backend failed.
    #[error("inference failed in model {model}")]
    Inference {
        /// The model id.
        model: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A backend was selected that this build does not include.
    #[error("inference backend {0:?} is not compiled into this build (enable cargo feature `{feature}`)", feature = .0.feature())]
    BackendNotCompiled(InferenceBackend),
    /// A model's output does not have the declared shape.
    #[error("model {model} produced an output of shape {found:?}, expected {expected}")]
    BadOutput {
        /// The model id.
        model: String,
        /// The declared shape.
        expected: String,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A model produced a degenerate embedding.
    #[error("model {model} produced an invalid embedding")]
    BadEmbedding {
        /// The model id.
        model: String,
        /// Why it is invalid.
        #[source]
        source: ddfr_core::EmbeddingError,
    },
    /// The aligner cannot use the detector's landmarks.
    #[error("the {aligner} aligner cannot use {scheme:?} landmarks")]
    UnsupportedLandmarks {
        /// The detector's landmark scheme.
        scheme: ddfr_core::LandmarkScheme,
        /// The aligner's name.
        aligner: &'static str,
    },
    /// The landmarks are degenerate (all points coincide), so no alignment exists.
    #[error("face landmarks are degenerate")]
    DegenerateLandmarks,
    /// The face index rejected an embedding.
    #[error(transparent)]
    Index(#[from] ddfr_index::IndexError),
    /// A dlib model file (`.dat`) is truncated or malformed.
    #[error("dlib model data is malformed at byte {offset}: {message}")]
    DlibFormat {
        /// Byte offset in the file of the value that could not be read.
        offset: usize,
        /// What is wrong there.
        message: &'static str,
    },
}
