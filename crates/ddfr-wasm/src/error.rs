//! The browser detector's typed error.

use ddfr_engine::EngineError;

/// Everything that can stop the browser detector; the app falls back to full frames on any.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The model manifest could not be parsed or does not declare what is needed.
    #[error("model manifest: {source}")]
    Manifest {
        /// The engine's manifest error.
        #[source]
        source: EngineError,
    },
    /// The manifest's default pack names no BlazeFace detector, which is all the browser runs.
    #[error("the manifest's pack {pack:?} has no BlazeFace detector the browser can run")]
    NoBrowserDetector {
        /// The pack id.
        pack: String,
    },
    /// The fetched model bytes are not the file the manifest declares.
    #[error("model {model}: expected sha256 {expected}, fetched bytes hash to {found}")]
    ChecksumMismatch {
        /// The model id.
        model: String,
        /// The manifest's sha256.
        expected: String,
        /// The fetched bytes' sha256.
        found: String,
    },
    /// Loading or running the graph failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The pixel buffer does not hold `width * height` RGBA pixels.
    #[error("frame of {width}x{height} needs {expected} RGBA bytes, got {found}")]
    BadFrame {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// `width * height * 4`.
        expected: u64,
        /// Bytes received.
        found: usize,
    },
    /// A crop could not be encoded as JPEG.
    #[error("cannot encode a face crop as JPEG: {source}")]
    CropEncode {
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
}
