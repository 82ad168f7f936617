//! The one error type of the evaluation crate.

use thiserror::Error;

/// Why a metric or a model cannot be computed from the data given.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EvalError {
    /// Verification needs at least one identity with two or more photos.
    #[error("no genuine pairs: every identity has a single photo")]
    NoGenuinePairs,
    /// Verification needs photos of at least two identities.
    #[error("no impostor pairs: every photo belongs to the same identity")]
    NoImpostorPairs,
    /// Two embeddings of the data set have different dimensions.
    #[error("embeddings of different dimensions ({first} and {other}) cannot be compared")]
    DimensionMismatch {
        /// Dimension of the first embedding.
        first: usize,
        /// The other dimension found.
        other: usize,
    },
    /// A threshold that is not a cosine similarity.
    #[error("threshold {value} is not a cosine similarity in [-1, 1]")]
    InvalidThreshold {
        /// The value given.
        value: f32,
    },
    /// A rate (FAR, FPIR) outside (0, 1).
    #[error("rate {value} must be in (0, 1)")]
    InvalidRate {
        /// The value given.
        value: f64,
    },
    /// Enrollment needs at least one photo per person.
    #[error("at least one enrollment photo per person is needed")]
    NoEnrollmentPhotos,
    /// Open-set identification needs an identity with an enrollment photo and a later photo.
    #[error(
        "no identity can be enrolled: open-set identification needs one with two or more photos"
    )]
    NoEnrolledIdentities,
    /// Open-set identification needs strangers (identities never enrolled).
    #[error("no non-mated probes: open-set identification needs identities that are not enrolled")]
    NoStrangers,
    /// Too few impostor scores to fit a model.
    #[error("too few impostor scores to fit a model: {found}, at least {needed} are needed")]
    TooFewScores {
        /// Scores given.
        found: usize,
        /// The minimum.
        needed: usize,
    },
    /// A score is NaN or infinite.
    #[error("a score is not a finite number")]
    NotFinite,
    /// A deserialised impostor model breaks an invariant.
    #[error("invalid impostor model: {reason}")]
    InvalidModel {
        /// What is wrong.
        reason: String,
    },
}
