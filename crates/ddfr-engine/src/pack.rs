//! A model pack: detector, aligner and embedder loaded together from the manifest, with the
//! pack's default threshold. The pipeline stages are exposed one by one so benchmarks can time
//! them, and together as [`ModelPack::analyze`].

use std::sync::Arc;

use image::RgbImage;

use ddfr_core::{Embedding, Face, ModelId};

use crate::EngineError;
use crate::align::{AlignedFace, Aligner, DLIB_CHIP_PADDING, shape_predictor::ShapePredictor};
use crate::detect::{
    BlazeFaceDetector, DetectorConfig, FaceDetector, ScrfdDetector, YunetDetector,
};
use crate::embed::{FaceEmbedder, OnnxEmbedder};
use crate::manifest::{Manifest, ModelFamily, ModelSpec, ModelTask};
use crate::preprocess::Normalization;
use crate::runner::{InferenceBackend, RunnerOptions, open_runner};

/// The longer side SCRFD graphs with a dynamic input see frames at: InsightFace's default.
const SCRFD_DYNAMIC_SIDE: usize = 640;

/// How a pack is loaded.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Which inference library runs the graphs.
    pub backend: InferenceBackend,
    /// Overrides the detector family's defaults when set.
    pub detector: Option<DetectorConfig>,
    /// Threads one inference call may use.
    pub intra_threads: usize,
    /// How many frames may be processed at once (sessions per graph on ort).
    pub max_concurrent: usize,
}

impl Default for PackOptions {
    fn default() -> Self {
        Self {
            backend: InferenceBackend::compiled().first().copied().unwrap_or(InferenceBackend::Ort),
            detector: None,
            intra_threads: 1,
            max_concurrent: 1,
        }
    }
}

/// The detector settings each family was published with.
pub fn default_detector_config(family: ModelFamily) -> DetectorConfig {
    match family {
        // MediaPipe's face_detection graphs: min_score_thresh 0.5, weighted NMS at 0.3.
        ModelFamily::Blazeface => {
            DetectorConfig { min_score: 0.5, nms_iou: 0.3, ..DetectorConfig::default() }
        }
        // InsightFace SCRFD: det_thresh 0.5, nms_thresh 0.4.
        ModelFamily::Scrfd => {
            DetectorConfig { min_score: 0.5, nms_iou: 0.4, ..DetectorConfig::default() }
        }
        // OpenCV FaceDetectorYN: score_threshold 0.9 in the sample, 0.6 is the zoo's benchmark;
        // NMS 0.3.
        _ => DetectorConfig { min_score: 0.6, nms_iou: 0.3, ..DetectorConfig::default() },
    }
}

/// One face through the whole pipeline.
#[derive(Debug, Clone)]
pub struct AnalyzedFace {
    /// The detection.
    pub face: Face,
    /// The chip and the landmarks used to cut it.
    pub aligned: AlignedFace,
    /// The chip's embedding.
    pub embedding: Embedding,
}

/// Detector, aligner and embedder of one pack.
#[derive(Debug)]
pub struct ModelPack {
    /// The pack id from the manifest.
    pub id: String,
    /// The detector model id.
    pub detector_id: String,
    /// The default minimum cosine similarity for an identification (greater is closer).
    pub min_similarity: f32,
    /// How that threshold was chosen.
    pub min_similarity_basis: String,
    /// The backend running the graphs.
    pub backend: InferenceBackend,
    detector: Box<dyn FaceDetector>,
    aligner: Aligner,
    embedder: Box<dyn FaceEmbedder>,
}

fn normalization(model: &ModelSpec) -> Normalization {
    Normalization {
        mean: model.mean.unwrap_or([0.0; 3]),
        std: model.std.unwrap_or([1.0; 3]),
        color: model.color,
    }
}

impl ModelPack {
    /// Loads pack `pack_id` from `manifest`, verifying every file's checksum.
    pub fn load(
        manifest: &Manifest,
        pack_id: &str,
        options: &PackOptions,
    ) -> Result<Self, EngineError> {
        let pack = manifest.pack(pack_id)?;
        let runner_options = |model: &ModelSpec| RunnerOptions {
            intra_threads: options.intra_threads,
            max_concurrent: options.max_concurrent,
            input_shape: model.runner_shape(),
        };
        let missing =
            |id: &str| EngineError::Manifest { message: format!("model {id} is not declared") };

        let det = manifest.model(&pack.detector).ok_or_else(|| missing(&pack.detector))?;
        let det_runner = open_runner(
            options.backend,
            &det.id,
            &manifest.read_verified(det)?,
            &runner_options(det),
        )?;
        let config = options.detector.unwrap_or_else(|| default_detector_config(det.family));
        let (in_h, in_w) = det.input_hw();
        let detector: Box<dyn FaceDetector> = match det.family {
            ModelFamily::Blazeface => Box::new(BlazeFaceDetector::new(
                &det.id,
                det_runner,
                in_w,
                normalization(det),
                config,
            )?),
            ModelFamily::Scrfd => {
                let fixed = (in_h > 0 && in_w > 0).then_some((in_h, in_w));
                Box::new(ScrfdDetector::new(
                    &det.id,
                    det_runner,
                    fixed,
                    SCRFD_DYNAMIC_SIDE,
                    normalization(det),
                    config,
                ))
            }
            ModelFamily::Yunet => Box::new(YunetDetector::new(
                &det.id,
                det_runner,
                (in_h, in_w),
                normalization(det),
                config,
            )),
            other => {
                return Err(EngineError::Manifest {
                    message: format!("model {} of family {other:?} is not a detector", det.id),
                });
            }
        };

        let emb = manifest.model(&pack.embedder).ok_or_else(|| missing(&pack.embedder))?;
        if emb.task != ModelTask::Embedder {
            return Err(EngineError::Manifest {
                message: format!("model {} is not an embedder", emb.id),
            });
        }
        let (chip_h, chip_w) = emb.input_hw();
        if chip_h != chip_w || chip_h == 0 {
            return Err(EngineError::ManifestMismatch {
                model: emb.id.clone(),
                expected: "a square chip input".to_owned(),
                found: format!("{:?}", emb.input_shape),
            });
        }
        let chip = chip_w as u32;
        let aligner = match emb.family {
            ModelFamily::DlibResnet => {
                let id = pack.landmarks.as_deref().ok_or_else(|| EngineError::Manifest {
                    message: format!(
                        "pack {} uses a dlib embedder and must name a dlib shape predictor",
                        pack.id
                    ),
                })?;
                let sp = manifest.model(id).ok_or_else(|| missing(id))?;
                let predictor = ShapePredictor::from_dat_bytes(&manifest.read_verified(sp)?)?;
                Aligner::Dlib {
                    predictor: Arc::new(predictor),
                    size: chip,
                    padding: DLIB_CHIP_PADDING,
                }
            }
            ModelFamily::Arcface => Aligner::ArcFace { size: chip },
            other => {
                return Err(EngineError::Manifest {
                    message: format!("model {} of family {other:?} is not an embedder", emb.id),
                });
            }
        };
        let emb_runner = open_runner(
            options.backend,
            &emb.id,
            &manifest.read_verified(emb)?,
            &runner_options(emb),
        )?;
        let fixed_batch = emb.input_shape.first().and_then(|&b| (b > 0).then_some(b as usize));
        let dim = emb.embedding_dim.unwrap_or_default();
        let embedder = Box::new(OnnxEmbedder::new(
            ModelId::new(&emb.id),
            emb_runner,
            chip,
            dim,
            normalization(emb),
            fixed_batch,
        ));

        Ok(Self {
            id: pack.id.clone(),
            detector_id: det.id.clone(),
            min_similarity: pack.min_similarity,
            min_similarity_basis: pack.min_similarity_basis.clone(),
            backend: options.backend,
            detector,
            aligner,
            embedder,
        })
    }

    /// The embedding model's id (stored with every enrolled embedding).
    pub fn embedder_id(&self) -> &ModelId {
        self.embedder.model()
    }

    /// The embedding size.
    pub fn embedding_dim(&self) -> usize {
        self.embedder.dim()
    }

    /// The aligner in use.
    pub fn aligner(&self) -> &Aligner {
        &self.aligner
    }

    /// Stage 1: faces in the frame, best first.
    pub fn detect(&self, frame: &RgbImage) -> Result<Vec<Face>, EngineError> {
        self.detector.detect(frame)
    }

    /// Stage 2: one chip per face. Faces that cannot be aligned (degenerate landmarks) are
    /// dropped, so the result may be shorter; each chip is paired with its face.
    pub fn align(&self, frame: &RgbImage, faces: Vec<Face>) -> Vec<(Face, AlignedFace)> {
        faces
            .into_iter()
            .filter_map(|face| self.aligner.align(frame, &face).ok().map(|aligned| (face, aligned)))
            .collect()
    }

    /// Stage 3: embeddings of the chips, in one batched call.
    pub fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Embedding>, EngineError> {
        self.embedder.embed(chips)
    }

    /// Detect, align and embed every face of a frame.
    pub fn analyze(&self, frame: &RgbImage) -> Result<Vec<AnalyzedFace>, EngineError> {
        let faces = self.detect(frame)?;
        self.analyze_faces(frame, faces)
    }

    /// Align and embed faces found elsewhere (e.g. by the browser), in `frame`'s coordinates.
    pub fn analyze_faces(
        &self,
        frame: &RgbImage,
        faces: Vec<Face>,
    ) -> Result<Vec<AnalyzedFace>, EngineError> {
        let (faces, mut aligned): (Vec<Face>, Vec<AlignedFace>) =
            self.align(frame, faces).into_iter().unzip();
        // Move the chips out for the batched call and back afterwards: no per-face copy on the
        // frame path.
        let chips: Vec<RgbImage> =
            aligned.iter_mut().map(|a| std::mem::take(&mut a.chip)).collect();
        let embeddings = self.embed(&chips)?;
        for (a, chip) in aligned.iter_mut().zip(chips) {
            a.chip = chip;
        }
        Ok(faces
            .into_iter()
            .zip(aligned)
            .zip(embeddings)
            .map(|((face, aligned), embedding)| AnalyzedFace { face, aligned, embedding })
            .collect())
    }
}
