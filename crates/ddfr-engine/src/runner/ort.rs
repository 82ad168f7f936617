//! The ONNX Runtime backend, through `ort` with the runtime library loaded at run time.
//!
//! ONNX Runtime is never downloaded at build time: `scripts/setup` installs the shared library
//! from the `onnxruntime` PyPI wheel and [`init_ort`] loads it once per process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor as OrtTensor;

use super::{ModelRunner, RunnerOptions, Tensor};
use crate::EngineError;

/// The process-wide ONNX Runtime environment, created by the first successful [`init_ort`].
static ENVIRONMENT: OnceLock<OrtRuntime> = OnceLock::new();

/// A loaded ONNX Runtime: the library path and its environment.
#[derive(Debug, Clone)]
pub struct OrtRuntime {
    /// The shared library that was loaded.
    pub library: PathBuf,
    environment: Environment,
}

/// The error of loading the ONNX Runtime library.
#[derive(Debug, thiserror::Error)]
#[error("cannot load ONNX Runtime from {path}: {message}")]
pub struct OrtLoadError {
    path: PathBuf,
    message: String,
}

/// Loads ONNX Runtime from `library` (a `libonnxruntime.so*` file). Idempotent: later calls
/// return the runtime loaded first, whatever path they name, since a process can hold only one.
pub fn init_ort(library: &Path) -> Result<&'static OrtRuntime, EngineError> {
    if let Some(runtime) = ENVIRONMENT.get() {
        return Ok(runtime);
    }
    if !library.is_file() {
        return Err(EngineError::Io {
            path: library.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "ONNX Runtime library not found; run scripts/setup or set DDFR_ORT_LIB",
            ),
        });
    }
    let load_error = |message: String| EngineError::Inference {
        model: "onnxruntime".to_owned(),
        source: Box::new(OrtLoadError { path: library.to_path_buf(), message }),
    };
    let builder = ort::init_from(library).map_err(|e| load_error(e.to_string()))?;
    let environment = builder.with_name("ddfr").build().map_err(|e| load_error(e.to_string()))?;
    Ok(ENVIRONMENT.get_or_init(|| OrtRuntime { library: library.to_path_buf(), environment }))
}

/// One ONNX graph with a small pool of sessions, so `run(&self)` can serve several inference
/// workers at once although ort's `Session::run` needs `&mut`.
#[derive(Debug)]
pub(super) struct OrtRunner {
    model_id: String,
    input_name: String,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
}

impl OrtRunner {
    pub(super) fn open(
        model_id: &str,
        onnx: &[u8],
        options: &RunnerOptions,
    ) -> Result<Self, EngineError> {
        let runtime = ENVIRONMENT.get().ok_or_else(|| EngineError::Inference {
            model: model_id.to_owned(),
            source: "ONNX Runtime was not initialised (call init_ort first)".into(),
        })?;
        let inference = |e: ort::Error| EngineError::Inference {
            model: model_id.to_owned(),
            source: Box::new(e),
        };
        let mut sessions = Vec::new();
        for _ in 0..options.max_concurrent.max(1) {
            let session = Session::builder(&runtime.environment)
                .map_err(inference)?
                .with_optimization_level(GraphOptimizationLevel::Level3)
                .map_err(|e| inference(e.into()))?
                .with_intra_threads(options.intra_threads.max(1))
                .map_err(|e| inference(e.into()))?
                .with_inter_threads(1)
                .map_err(|e| inference(e.into()))?
                .commit_from_memory(onnx)
                .map_err(inference)?;
            sessions.push(Mutex::new(session));
        }
        let input_name = sessions
            .first()
            .and_then(|s| {
                s.lock().ok().and_then(|s| s.inputs().first().map(|i| i.name().to_owned()))
            })
            .ok_or_else(|| EngineError::ManifestMismatch {
                model: model_id.to_owned(),
                expected: "one input".to_owned(),
                found: "none".to_owned(),
            })?;
        Ok(Self { model_id: model_id.to_owned(), input_name, sessions, next: AtomicUsize::new(0) })
    }

    fn inference_error(
        &self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> EngineError {
        EngineError::Inference { model: self.model_id.clone(), source: Box::new(source) }
    }
}

impl ModelRunner for OrtRunner {
    fn run(&self, input: &Tensor) -> Result<Vec<Tensor>, EngineError> {
        // Prefer an idle session; if all are busy, wait on one chosen round-robin.
        let guard = self.sessions.iter().find_map(|s| s.try_lock().ok());
        let mut session = match guard {
            Some(session) => session,
            None => {
                let index = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
                self.sessions[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
            }
        };
        let shape: Vec<i64> = input.shape.iter().map(|&d| d as i64).collect();
        let tensor = OrtTensor::from_array((shape, input.data.clone()))
            .map_err(|e| self.inference_error(e))?;
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| self.inference_error(e))?;
        let mut result = Vec::with_capacity(outputs.len());
        for (_, value) in &outputs {
            let (shape, data) =
                value.try_extract_tensor::<f32>().map_err(|e| self.inference_error(e))?;
            result.push(Tensor::new(
                shape.iter().map(|&d| d.max(0) as usize).collect(),
                data.to_vec(),
            ));
        }
        Ok(result)
    }
}
