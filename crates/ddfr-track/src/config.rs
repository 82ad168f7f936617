//! Tracker settings. The defaults suit a camera at 5–30 frames per second.

use std::time::Duration;

/// How tracks are formed and labelled. [`TrackerConfig::new`] derives everything from the
/// recognition threshold; the other fields have defaults that suit live video.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// Cosine similarity at which a face is taken to be an enrolled person (the pack's
    /// threshold). Also the least similarity between a face and a track's appearance for the
    /// face to continue that track.
    pub min_similarity: f32,
    /// Frames a track survives without its face.
    pub max_missed_frames: u32,
    /// Time a track survives without its face, whatever the frame rate.
    pub max_gap: Duration,
    /// Least box overlap (IoU) for a face to continue a track, unless its centre moved less
    /// than [`TrackerConfig::max_center_shift`] face widths.
    pub min_iou: f32,
    /// Centre movement, in face widths, still taken as the same face between two frames.
    pub max_center_shift: f32,
    /// Face side in pixels from which a vote has full weight; smaller faces weigh less.
    pub full_weight_side: f32,
    /// Least weight of a vote, for the smallest faces.
    pub min_size_weight: f32,
    /// Factor applied to a track's evidence per observed frame (older votes fade).
    pub decay: f32,
    /// Evidence a label needs to be confirmed (a full-weight vote adds between 0.5 and 1).
    pub confirm_evidence: f32,
    /// Share of a track's evidence a label needs to be confirmed.
    pub confirm_share: f32,
    /// How many times the confirmed label's evidence another label needs to replace it.
    pub switch_ratio: f32,
    /// Weight of the track's appearance kept per frame in its running mean embedding.
    pub appearance_momentum: f32,
}

impl TrackerConfig {
    /// Defaults for live video with the given recognition threshold.
    pub fn new(min_similarity: f32) -> Self {
        Self {
            min_similarity,
            max_missed_frames: 15,
            max_gap: Duration::from_secs(3),
            min_iou: 0.1,
            max_center_shift: 1.0,
            full_weight_side: 80.0,
            min_size_weight: 0.25,
            decay: 0.9,
            confirm_evidence: 1.5,
            confirm_share: 0.6,
            switch_ratio: 2.0,
            appearance_momentum: 0.7,
        }
    }

    /// The similarity band over which a vote's confidence grows from 0.5 to 1: half the
    /// distance from the threshold to a perfect match, so the vote scale follows the model's
    /// similarity scale (dlib's scores sit near 1, ArcFace-style ones spread over `[0, 1]`).
    pub fn confidence_band(&self) -> f32 {
        ((1.0 - self.min_similarity) / 2.0).max(1e-3)
    }
}
