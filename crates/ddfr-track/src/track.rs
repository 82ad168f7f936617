//! One track: where the face was, what it looks like, and the votes on who it is.

use std::time::Duration;

use ddfr_core::{BoundingBox, Embedding, PersonId};

use crate::config::TrackerConfig;
use crate::tracker::{Candidate, Label, Observation};

/// Evidence for one label, with the latest similarity seen for it.
#[derive(Debug, Clone)]
struct Votes {
    label: Label,
    evidence: f32,
    last_similarity: Option<f32>,
}

/// A face followed across frames.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    pub(crate) id: u64,
    pub(crate) bbox: BoundingBox,
    pub(crate) last_seen: Duration,
    pub(crate) missed: u32,
    appearance: Option<Embedding>,
    last_embedding: Option<Embedding>,
    votes: Vec<Votes>,
    confirmed: Option<Label>,
}

/// Evidence below this is forgotten.
const FORGET_EVIDENCE: f32 = 1e-3;

impl Track {
    pub(crate) fn new(id: u64, observation: &Observation, at: Duration) -> Self {
        Self {
            id,
            bbox: observation.bbox,
            last_seen: at,
            missed: 0,
            appearance: observation.embedding.clone(),
            last_embedding: observation.embedding.clone(),
            votes: Vec::new(),
            confirmed: None,
        }
    }

    /// How well `observation` continues this track, or `None` when it cannot.
    pub(crate) fn match_score(
        &self,
        observation: &Observation,
        config: &TrackerConfig,
    ) -> Option<f32> {
        let iou = self.bbox.iou(&observation.bbox);
        let a = self.bbox.center();
        let b = observation.bbox.center();
        let width = self.bbox.width().max(observation.bbox.width()).max(1.0);
        let shift = ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt() / width;
        if iou < config.min_iou && shift > config.max_center_shift {
            return None;
        }
        let appearance = match &observation.embedding {
            Some(embedding) => {
                let to_mean = self.appearance.as_ref().map(|e| e.similarity(embedding));
                let to_last = self.last_embedding.as_ref().map(|e| e.similarity(embedding));
                match to_mean.into_iter().chain(to_last).reduce(f32::max) {
                    Some(similarity) if similarity < config.min_similarity => return None,
                    Some(similarity) => similarity,
                    // The track never had an embedding: position alone, stricter.
                    None if iou < 0.3 => return None,
                    None => config.min_similarity,
                }
            }
            // This face could not be embedded: position alone, stricter.
            None if iou < 0.3 => return None,
            None => config.min_similarity,
        };
        Some(appearance + iou)
    }

    /// Takes `observation` as this frame's face of the track and counts its vote.
    pub(crate) fn observe(
        &mut self,
        observation: &Observation,
        at: Duration,
        config: &TrackerConfig,
    ) {
        self.bbox = observation.bbox;
        self.last_seen = at;
        self.missed = 0;
        let Some(embedding) = &observation.embedding else { return };
        self.appearance = Some(match &self.appearance {
            Some(mean) => blend(mean, embedding, config.appearance_momentum),
            None => embedding.clone(),
        });
        self.last_embedding = Some(embedding.clone());

        for votes in &mut self.votes {
            votes.evidence *= config.decay;
        }
        self.votes.retain(|v| v.evidence >= FORGET_EVIDENCE || Some(v.label) == self.confirmed);
        for candidate in &observation.candidates {
            if let Some(votes) = self.votes_mut(Label::Person(candidate.person)) {
                votes.last_similarity = Some(candidate.similarity);
            }
        }
        let Some((label, weight, similarity)) = vote(observation, config) else { return };
        match self.votes_mut(label) {
            Some(votes) => {
                votes.evidence += weight;
                if similarity.is_some() {
                    votes.last_similarity = similarity;
                }
            }
            None => self.votes.push(Votes { label, evidence: weight, last_similarity: similarity }),
        }
        self.update_confirmation(config);
    }

    /// Forgets every vote and the confirmation (the gallery changed under the track).
    pub(crate) fn reset_votes(&mut self) {
        self.votes.clear();
        self.confirmed = None;
    }

    fn votes_mut(&mut self, label: Label) -> Option<&mut Votes> {
        self.votes.iter_mut().find(|v| v.label == label)
    }

    fn votes(&self, label: Label) -> Option<&Votes> {
        self.votes.iter().find(|v| v.label == label)
    }

    fn evidence(&self, label: Label) -> f32 {
        self.votes(label).map_or(0.0, |v| v.evidence)
    }

    /// The label with the most evidence (ties to the earlier vote).
    fn leader(&self) -> Option<&Votes> {
        self.votes.iter().reduce(|best, v| if v.evidence > best.evidence { v } else { best })
    }

    fn update_confirmation(&mut self, config: &TrackerConfig) {
        let Some(leader) = self.leader() else { return };
        let (label, evidence) = (leader.label, leader.evidence);
        let total: f32 = self.votes.iter().map(|v| v.evidence).sum();
        match self.confirmed {
            None => {
                if evidence >= config.confirm_evidence && evidence >= config.confirm_share * total {
                    self.confirmed = Some(label);
                }
            }
            Some(confirmed) if confirmed != label => {
                if evidence >= config.confirm_evidence
                    && evidence >= config.switch_ratio * self.evidence(confirmed)
                {
                    self.confirmed = Some(label);
                }
            }
            Some(_) => {}
        }
    }

    /// The label the track shows now: the confirmed one, else the current leader.
    pub(crate) fn label(&self) -> Label {
        self.confirmed.or_else(|| self.leader().map(|v| v.label)).unwrap_or(Label::Unknown)
    }

    /// Whether the shown label is confirmed.
    pub(crate) fn is_confirmed(&self) -> bool {
        self.confirmed.is_some()
    }

    /// Evidence for `person`, for ordering claims on the same person.
    pub(crate) fn evidence_for(&self, person: PersonId) -> f32 {
        self.evidence(Label::Person(person))
    }

    /// The latest similarity seen between this track's face and `person`.
    pub(crate) fn last_similarity(&self, person: PersonId) -> Option<f32> {
        self.votes(Label::Person(person)).and_then(|v| v.last_similarity)
    }
}

/// The vote of one face: label, weight, and the similarity it was cast with. No vote while
/// the gallery is empty (detection-only mode says nothing about who the face is).
fn vote(observation: &Observation, config: &TrackerConfig) -> Option<(Label, f32, Option<f32>)> {
    let side = observation.bbox.width().min(observation.bbox.height());
    let size_weight = (side / config.full_weight_side).clamp(config.min_size_weight, 1.0);
    let band = config.confidence_band();
    let best: Option<&Candidate> = observation
        .candidates
        .iter()
        .reduce(|a, b| if b.similarity > a.similarity { b } else { a });
    let (label, confidence, similarity) = match best {
        Some(c) if c.similarity >= config.min_similarity => {
            let margin = ((c.similarity - config.min_similarity) / band).clamp(0.0, 1.0);
            (Label::Person(c.person), 0.5 + 0.5 * margin, Some(c.similarity))
        }
        Some(c) => {
            let margin = ((config.min_similarity - c.similarity) / band).clamp(0.0, 1.0);
            (Label::Unknown, 0.5 + 0.5 * margin, None)
        }
        None => return None,
    };
    Some((label, size_weight * confidence, similarity))
}

/// `momentum · mean + (1 − momentum) · new`, re-normalised.
fn blend(mean: &Embedding, new: &Embedding, momentum: f32) -> Embedding {
    if mean.dim() != new.dim() {
        return new.clone();
    }
    let mixed: Vec<f32> = mean
        .as_slice()
        .iter()
        .zip(new.as_slice())
        .map(|(m, n)| momentum * m + (1.0 - momentum) * n)
        .collect();
    Embedding::from_raw(mixed).unwrap_or_else(|_| new.clone())
}
