//! The inference backend seam. Model families sit above it and never name `ort` or `tract`.

#[cfg(feature = "ort")]
mod ort;
#[cfg(feature = "tract")]
mod tract;

use serde::{Deserialize, Serialize};

use crate::EngineError;

#[cfg(feature = "ort")]
pub use self::ort::{OrtRuntime, init_ort};

/// A dense f32 tensor in row-major order: the only value that crosses the backend seam.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first (NCHW for images).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor from its shape and data. The caller keeps `data.len()` equal to the product of
    /// `shape`; [`Tensor::check`] verifies it.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self { shape, data }
    }

    /// Whether the data length matches the shape.
    pub fn check(&self) -> bool {
        self.shape.iter().product::<usize>() == self.data.len()
    }
}

/// Which library runs the graphs. Every variant exists in every build; selecting one that was
/// not compiled is [`EngineError::BackendNotCompiled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InferenceBackend {
    /// ONNX Runtime through the `ort` crate (feature `ort`).
    Ort,
    /// tract-onnx, pure Rust (feature `tract`).
    Tract,
}

impl InferenceBackend {
    /// The cargo feature that compiles this backend in.
    pub fn feature(self) -> &'static str {
        match self {
            InferenceBackend::Ort => "ort",
            InferenceBackend::Tract => "tract",
        }
    }

    /// The backends compiled into this build, preferred first.
    pub fn compiled() -> Vec<InferenceBackend> {
        let mut out = Vec::new();
        if cfg!(feature = "ort") {
            out.push(InferenceBackend::Ort);
        }
        if cfg!(feature = "tract") {
            out.push(InferenceBackend::Tract);
        }
        out
    }

    /// Parses `ort` or `tract`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "ort" | "onnxruntime" => Some(InferenceBackend::Ort),
            "tract" => Some(InferenceBackend::Tract),
            _ => None,
        }
    }
}

/// One loaded graph with one input. `run` takes `&self`: a backend that needs exclusive access
/// (ort's `Session::run(&mut self)`) keeps a small pool of sessions inside.
pub trait ModelRunner: Send + Sync + std::fmt::Debug {
    /// Runs the graph on `input` (NCHW), returning the outputs in the graph's declared order.
    fn run(&self, input: &Tensor) -> Result<Vec<Tensor>, EngineError>;
}

/// How a graph is opened.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Threads one inference call may use (ONNX Runtime's intra-op threads).
    pub intra_threads: usize,
    /// How many calls may run at once on this graph (sessions kept by the ort adapter).
    pub max_concurrent: usize,
    /// The input shape, with `None` for a dimension the caller varies (the batch, usually).
    /// tract needs it up front; ort ignores it.
    pub input_shape: Vec<Option<usize>>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self { intra_threads: 1, max_concurrent: 1, input_shape: Vec::new() }
    }
}

/// Opens an ONNX graph (its file's bytes, already checked against the manifest) with
/// `backend`. The model id is used in error messages.
pub fn open_runner(
    backend: InferenceBackend,
    model_id: &str,
    onnx: &[u8],
    options: &RunnerOptions,
) -> Result<Box<dyn ModelRunner>, EngineError> {
    match backend {
        #[cfg(feature = "ort")]
        InferenceBackend::Ort => Ok(Box::new(self::ort::OrtRunner::open(model_id, onnx, options)?)),
        #[cfg(feature = "tract")]
        InferenceBackend::Tract => {
            Ok(Box::new(self::tract::TractRunner::open(model_id, onnx, options)?))
        }
        #[allow(unreachable_patterns)]
        missing => {
            let _ = (model_id, onnx, options);
            Err(EngineError::BackendNotCompiled(missing))
        }
    }
}
