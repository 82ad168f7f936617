//! `models/manifest.toml`: the declared facts about every model and model pack.
//!
//! Model facts (input size, colour order, normalisation, outputs, embedding size, threshold)
//! are declared here and never inferred from a graph; loading checks the files against them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::EngineError;

/// The manifest schema version this build reads.
pub const MANIFEST_SCHEMA: u32 = 1;

/// The manifest's file name inside a models directory.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// The whole manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Schema version ([`MANIFEST_SCHEMA`]).
    pub schema: u32,
    /// Every model.
    #[serde(rename = "model", default)]
    pub models: Vec<ModelSpec>,
    /// Every pack (detector + optional landmarks + embedder + threshold).
    #[serde(rename = "pack", default)]
    pub packs: Vec<PackSpec>,
    /// The directory the manifest was read from; model files are relative to it.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelTask {
    /// Finds faces in a frame.
    Detector,
    /// Refines landmarks inside a detected face.
    Landmarks,
    /// Turns an aligned face into an embedding.
    Embedder,
}

/// Which post-processing / preprocessing code a model needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelFamily {
    /// MediaPipe BlazeFace (short or full range), SSD anchors.
    Blazeface,
    /// InsightFace SCRFD with keypoints.
    Scrfd,
    /// OpenCV YuNet.
    Yunet,
    /// dlib's regression-tree shape predictor (`.dat`).
    DlibShapePredictor,
    /// dlib's ResNet face descriptor, converted to ONNX.
    DlibResnet,
    /// Any ArcFace-style 112×112 embedder (MobileFaceNet, w600k_*).
    Arcface,
}

/// Channel order the graph expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    /// Red, green, blue.
    #[default]
    Rgb,
    /// Blue, green, red.
    Bgr,
}

/// One model's declared facts.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelSpec {
    /// Unique id; embeddings carry it.
    pub id: String,
    /// What it is for.
    pub task: ModelTask,
    /// Which code pre- and post-processes it.
    pub family: ModelFamily,
    /// File name relative to the models directory.
    pub file: String,
    /// Expected SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// Expected size in bytes.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Licence of the weights.
    #[serde(default)]
    pub license: String,
    /// Registry package the weights come from.
    #[serde(default)]
    pub source_package: String,
    /// Its version.
    #[serde(default)]
    pub source_version: String,
    /// The graph's input name.
    #[serde(default)]
    pub input_name: Option<String>,
    /// NCHW input shape; -1 marks a dynamic dimension.
    #[serde(default)]
    pub input_shape: Vec<i64>,
    /// Channel order.
    #[serde(default)]
    pub color: ColorOrder,
    /// Per-channel mean subtracted from 0..255 pixels.
    #[serde(default)]
    pub mean: Option<[f32; 3]>,
    /// Per-channel divisor applied after the mean.
    #[serde(default)]
    pub std: Option<[f32; 3]>,
    /// Output names in graph order.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Embedding size (embedders).
    #[serde(default)]
    pub embedding_dim: Option<usize>,
    /// Published accuracy, free text.
    #[serde(default)]
    pub published_accuracy: String,
    /// Free-text notes.
    #[serde(default)]
    pub notes: String,
}

/// A model pack: what the engine runs together.
#[derive(Debug, Clone, Deserialize)]
pub struct PackSpec {
    /// Pack id, chosen with `--pack`.
    pub id: String,
    /// Detector model id.
    pub detector: String,
    /// Optional landmark model id (dlib shape predictor for dlib embedders).
    #[serde(default)]
    pub landmarks: Option<String>,
    /// Embedder model id.
    pub embedder: String,
    /// Default minimum cosine similarity for an identification (greater is closer).
    pub min_similarity: f32,
    /// How the threshold was chosen.
    #[serde(default)]
    pub min_similarity_basis: String,
    /// The impostor-score distribution of this pack's detector + embedder measured on labelled
    /// photos (`ddfr evaluate --json`, `impostor_model`): what `ddfr calibrate` pools with a
    /// gallery too small to estimate false-accept rates alone. Checked when parsed.
    #[serde(default)]
    pub impostor_prior: Option<ddfr_eval::ImpostorModel>,
    /// Where the prior was measured: the photos, the pair count, the command.
    #[serde(default)]
    pub impostor_prior_basis: String,
}

impl Manifest {
    /// Reads `dir/manifest.toml`.
    pub fn load(dir: &Path) -> Result<Self, EngineError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|source| EngineError::Io { path: path.clone(), source })?;
        Self::parse(&text, dir)
    }

    /// Parses manifest text whose model files live in `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Self, EngineError> {
        let mut manifest: Manifest =
            toml::from_str(text).map_err(|e| EngineError::Manifest { message: e.to_string() })?;
        if manifest.schema != MANIFEST_SCHEMA {
            return Err(EngineError::Manifest {
                message: format!(
                    "schema {} is not supported (this build reads schema {MANIFEST_SCHEMA})",
                    manifest.schema
                ),
            });
        }
        manifest.dir = dir.to_path_buf();
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), EngineError> {
        let mut ids = HashSet::new();
        for model in &self.models {
            if !ids.insert(model.id.as_str()) {
                return Err(EngineError::Manifest {
                    message: format!("model id {} appears twice", model.id),
                });
            }
            let needs_input = model.family != ModelFamily::DlibShapePredictor;
            if needs_input
                && (model.input_shape.len() != 4 || model.mean.is_none() || model.std.is_none())
            {
                return Err(EngineError::Manifest {
                    message: format!(
                        "model {} must declare a 4-D input_shape, mean and std",
                        model.id
                    ),
                });
            }
            if model.task == ModelTask::Embedder && model.embedding_dim.is_none() {
                return Err(EngineError::Manifest {
                    message: format!("embedder {} must declare embedding_dim", model.id),
                });
            }
        }
        for pack in &self.packs {
            self.expect_model(&pack.detector, ModelTask::Detector, &pack.id)?;
            self.expect_model(&pack.embedder, ModelTask::Embedder, &pack.id)?;
            if let Some(landmarks) = &pack.landmarks {
                self.expect_model(landmarks, ModelTask::Landmarks, &pack.id)?;
            }
            if !(-1.0..=1.0).contains(&pack.min_similarity) {
                return Err(EngineError::Manifest {
                    message: format!("pack {}: min_similarity must be in [-1, 1]", pack.id),
                });
            }
        }
        Ok(())
    }

    fn expect_model(
        &self,
        id: &str,
        task: ModelTask,
        pack: &str,
    ) -> Result<&ModelSpec, EngineError> {
        let model = self.model(id).ok_or_else(|| EngineError::Manifest {
            message: format!("pack {pack} names model {id}, which the manifest does not declare"),
        })?;
        if model.task != task {
            return Err(EngineError::Manifest {
                message: format!(
                    "pack {pack}: model {id} is a {:?}, expected {task:?}",
                    model.task
                ),
            });
        }
        Ok(model)
    }

    /// The model with this id.
    pub fn model(&self, id: &str) -> Option<&ModelSpec> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The pack with this id.
    pub fn pack(&self, id: &str) -> Result<&PackSpec, EngineError> {
        self.packs.iter().find(|p| p.id == id).ok_or_else(|| EngineError::Manifest {
            message: format!(
                "no model pack {id:?}; the manifest in {} has: {}",
                self.dir.display(),
                self.packs.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// The model's file path.
    pub fn path_of(&self, model: &ModelSpec) -> PathBuf {
        self.dir.join(&model.file)
    }

    /// Reads a model's file and checks its size and SHA-256 against the manifest.
    pub fn read_verified(&self, model: &ModelSpec) -> Result<Vec<u8>, EngineError> {
        let path = self.path_of(model);
        let bytes = std::fs::read(&path)
            .map_err(|source| EngineError::Io { path: path.clone(), source })?;
        if let Some(expected) = model.bytes
            && expected != bytes.len() as u64
        {
            return Err(EngineError::ManifestMismatch {
                model: model.id.clone(),
                expected: format!("{expected} bytes"),
                found: format!("{} bytes in {}", bytes.len(), path.display()),
            });
        }
        let digest = hex::encode(Sha256::digest(&bytes));
        if !digest.eq_ignore_ascii_case(&model.sha256) {
            return Err(EngineError::ManifestMismatch {
                model: model.id.clone(),
                expected: format!("sha256 {}", model.sha256),
                found: format!("sha256 {digest} in {} (re-run scripts/setup)", path.display()),
            });
        }
        Ok(bytes)
    }
}

impl ModelSpec {
    /// The input's height and width.
    pub fn input_hw(&self) -> (usize, usize) {
        let dim = |i: usize| self.input_shape.get(i).copied().unwrap_or(-1).max(0) as usize;
        (dim(2), dim(3))
    }

    /// The input shape with dynamic dimensions as `None`.
    pub fn runner_shape(&self) -> Vec<Option<usize>> {
        self.input_shape.iter().map(|&d| if d < 0 { None } else { Some(d as usize) }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
schema = 1
[[model]]
id = "det"
task = "detector"
family = "scrfd"
file = "det.onnx"
sha256 = "00"
input_shape = [1, 3, 640, 640]
mean = [127.5, 127.5, 127.5]
std = [128.0, 128.0, 128.0]
[[model]]
id = "emb"
task = "embedder"
family = "arcface"
file = "emb.onnx"
sha256 = "00"
input_shape = [-1, 3, 112, 112]
mean = [127.5, 127.5, 127.5]
std = [128.0, 128.0, 128.0]
embedding_dim = 128
[[pack]]
id = "p"
detector = "det"
embedder = "emb"
min_similarity = 0.4
"#;

    #[test]
    fn parses_and_checks_packs() {
        let manifest = Manifest::parse(SAMPLE, Path::new("/m")).unwrap();
        assert_eq!(manifest.pack("p").unwrap().min_similarity, 0.4);
        assert_eq!(
            manifest.model("emb").unwrap().runner_shape(),
            vec![None, Some(3), Some(112), Some(112)]
        );
        assert!(manifest.pack("nope").is_err());
    }

    #[test]
    fn rejects_packs_naming_missing_or_wrong_models() {
        let bad = SAMPLE.replace("embedder = \"emb\"", "embedder = \"det\"");
        assert!(Manifest::parse(&bad, Path::new("/m")).is_err());
        let missing = SAMPLE.replace("detector = \"det\"", "detector = \"ghost\"");
        assert!(Manifest::parse(&missing, Path::new("/m")).is_err());
        let schema = SAMPLE.replace("schema = 1", "schema = 9");
        assert!(Manifest::parse(&schema, Path::new("/m")).is_err());
    }

    #[test]
    fn impostor_prior_is_optional_and_checked() {
        let manifest = Manifest::parse(SAMPLE, Path::new("/m")).unwrap();
        assert!(manifest.pack("p").unwrap().impostor_prior.is_none());
        let prior = r#"
impostor_prior_basis = "test"
[pack.impostor_prior]
pairs = 100
mean = 0.5
std = 0.1
tail_scale = 0.02
knots = [{ similarity = 0.2, far = 1.0 }, { similarity = 0.6, far = 0.1 }]
"#;
        let with_prior = format!("{SAMPLE}{prior}");
        let manifest = Manifest::parse(&with_prior, Path::new("/m")).unwrap();
        let model = manifest.pack("p").unwrap().impostor_prior.clone().unwrap();
        assert!((model.far_at(0.6) - 0.1).abs() < 1e-9);
        assert_eq!(manifest.pack("p").unwrap().impostor_prior_basis, "test");
        // A FAR that rises with similarity is refused at parse time.
        let bad = with_prior.replace("far = 0.1", "far = 1.0");
        assert!(Manifest::parse(&bad, Path::new("/m")).is_err());
    }

    #[test]
    fn checksum_mismatch_is_reported() {
        let dir = std::env::temp_dir().join(format!("ddfr-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("det.onnx"), b"not the model").unwrap();
        let manifest = Manifest::parse(SAMPLE, &dir).unwrap();
        let err = manifest.read_verified(manifest.model("det").unwrap()).unwrap_err();
        assert!(matches!(err, EngineError::ManifestMismatch { .. }));
        std::fs::remove_dir_all(&dir).ok();
    }
}
