//! Recognition quality of ddfr, measured: pure computation on labelled embeddings, no IO.
//!
//! - [`dataset`]: labelled embeddings grouped by identity; genuine and impostor pair scores
//!   (impostor pairs sampled deterministically above [`DEFAULT_MAX_IMPOSTOR_PAIRS`]).
//! - [`verification`]: TAR, TRR, balanced accuracy at a threshold, the best threshold, ROC
//!   points (TAR at FAR 1e-1 ... 1e-4).
//! - [`identification`]: open-set 1:N identification with a deterministic enrolled/stranger
//!   split: TPIR at an FPIR, TPIR/FPIR at a threshold, rank-1, and four ways to score a person
//!   with several samples ([`PersonScore`]).
//! - [`impostor`]: [`ImpostorModel`], a serialisable estimate of the false-accept rate at any
//!   similarity (measured where the data reaches, an exponential tail beyond).
//!
//! Every similarity is a cosine between unit-norm embeddings; a comparison is accepted when
//! its similarity is at or above the threshold. docs/evaluation.md gives the definitions and the
//! numbers measured on the developer test photos.
#![warn(missing_docs)]

pub mod dataset;
mod error;
pub mod identification;
pub mod impostor;
pub mod scores;
pub mod verification;

pub use dataset::{
    DEFAULT_MAX_IMPOSTOR_PAIRS, Dataset, LabelledEmbedding, PairScores, pair_scores,
};
pub use error::EvalError;
pub use identification::{
    IdentificationReport, OpenSetPoint, OpenSetSplit, PersonScore, identification, open_set_split,
};
pub use impostor::{FarBasis, FarEstimate, FarKnot, ImpostorModel};
pub use scores::{ScoreSummary, SortedScores};
pub use verification::{OperatingPoint, RocPoint, Verification, VerificationReport, verification};
