//! Where the engine's pieces are found and loaded: models directory, ONNX Runtime library,
//! backend choice and model pack. Shared by every subcommand.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use ddfr_engine::manifest::{MANIFEST_FILE, Manifest};
use ddfr_engine::pack::{ModelPack, PackOptions};
use ddfr_engine::runner::InferenceBackend;

/// Options that choose and load the models.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Directory holding models/manifest.toml and the converted models (default: `models/` of
    /// the checkout, found from the working directory or next to the binary).
    #[arg(long, env = "DDFR_MODELS_DIR", global = true)]
    pub models_dir: Option<PathBuf>,

    /// Model pack from the manifest (`default`: BlazeFace + dlib shape predictor + dlib ResNet).
    #[arg(long, env = "DDFR_PACK", default_value = "default", global = true)]
    pub pack: String,

    /// Inference backend: `auto` (ONNX Runtime when its library is present, else tract),
    /// `ort` or `tract`.
    #[arg(long, env = "DDFR_BACKEND", default_value = "auto", global = true)]
    pub backend: String,

    /// The ONNX Runtime shared library (default: `<models-dir>/lib/libonnxruntime.so*`).
    #[arg(long, env = "DDFR_ORT_LIB", global = true)]
    pub ort_lib: Option<PathBuf>,

    /// Threads one inference call may use.
    #[arg(long, env = "DDFR_INTRA_THREADS", default_value_t = 1, global = true)]
    pub intra_threads: usize,
}

impl EngineArgs {
    /// The models directory: the flag, else `./models`, else `models/` two levels above the
    /// binary (`target/release/ddfr` in a checkout).
    pub fn models_dir(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.models_dir {
            return Ok(dir.clone());
        }
        let mut candidates = vec![PathBuf::from("models")];
        if let Ok(exe) = std::env::current_exe()
            && let Some(checkout) = exe.parent().and_then(Path::parent).and_then(Path::parent)
        {
            candidates.push(checkout.join("models"));
        }
        candidates
            .iter()
            .find(|dir| dir.join(MANIFEST_FILE).is_file())
            .cloned()
            .with_context(|| "no models directory found (looked for ./models and the checkout's models/); run scripts/setup or pass --models-dir")
    }

    /// Loads the manifest, picks the backend and loads the pack.
    pub fn load_pack(&self, max_concurrent: usize) -> Result<ModelPack> {
        self.load_pack_from(&self.manifest(None)?, max_concurrent)
    }

    /// The manifest: `file` when given (its model files are looked up in the models
    /// directory), else `<models-dir>/manifest.toml`.
    pub fn manifest(&self, file: Option<&Path>) -> Result<Manifest> {
        let dir = self.models_dir()?;
        match file {
            None => Manifest::load(&dir)
                .with_context(|| format!("reading the model manifest in {}", dir.display())),
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading the manifest {}", file.display()))?;
                Manifest::parse(&text, &dir)
                    .with_context(|| format!("reading the manifest {}", file.display()))
            }
        }
    }

    /// Picks the backend and loads the pack from `manifest`.
    pub fn load_pack_from(&self, manifest: &Manifest, max_concurrent: usize) -> Result<ModelPack> {
        let dir = self.models_dir()?;
        let backend = self.resolve_backend(&dir)?;
        let options = PackOptions {
            backend,
            detector: None,
            intra_threads: self.intra_threads.max(1),
            max_concurrent: max_concurrent.max(1),
        };
        ModelPack::load(manifest, &self.pack, &options)
            .with_context(|| format!("loading model pack {:?} from {}", self.pack, dir.display()))
    }

    fn resolve_backend(&self, models_dir: &Path) -> Result<InferenceBackend> {
        let wanted =
            match self.backend.as_str() {
                "auto" => None,
                name => Some(InferenceBackend::parse(name).with_context(|| {
                    format!("unknown backend {name:?} (use auto, ort or tract)")
                })?),
            };
        let compiled = InferenceBackend::compiled();
        if let Some(backend) = wanted
            && !compiled.contains(&backend)
        {
            bail!(
                "backend {backend:?} is not compiled into this build (enable cargo feature `{}`)",
                backend.feature()
            );
        }
        let try_ort = wanted.is_none_or(|b| b == InferenceBackend::Ort)
            && compiled.contains(&InferenceBackend::Ort);
        if try_ort {
            match self.ort_library(models_dir) {
                Some(lib) => {
                    init_ort(&lib)?;
                    return Ok(InferenceBackend::Ort);
                }
                None if wanted.is_some() => bail!(
                    "ONNX Runtime library not found in {}/lib; run scripts/setup or set DDFR_ORT_LIB",
                    models_dir.display()
                ),
                None => {}
            }
        }
        compiled.into_iter().find(|b| *b == InferenceBackend::Tract).context(
            "no usable inference backend: ONNX Runtime was not found and tract is not compiled in",
        )
    }

    fn ort_library(&self, models_dir: &Path) -> Option<PathBuf> {
        if let Some(lib) = &self.ort_lib {
            return Some(lib.clone());
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(models_dir.join("lib"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so"))
            })
            .collect();
        found.sort();
        found.pop()
    }
}

#[cfg(feature = "ort")]
fn init_ort(lib: &Path) -> Result<()> {
    ddfr_engine::runner::init_ort(lib)
        .map(|_| ())
        .with_context(|| format!("loading ONNX Runtime from {}", lib.display()))
}

#[cfg(not(feature = "ort"))]
fn init_ort(_lib: &Path) -> Result<()> {
    bail!("this build has no ONNX Runtime support")
}
