//! The per-stream tracker: faces of a frame in, track ids and names out.

use std::time::Duration;

use ddfr_core::{BoundingBox, Embedding, PersonId};

use crate::assign::greedy_assignment;
use crate::config::TrackerConfig;
use crate::track::Track;

/// A person the gallery found for a face, with the best similarity among their samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The enrolled person.
    pub person: PersonId,
    /// Cosine similarity of the face to that person's closest sample.
    pub similarity: f32,
}

/// One face of a frame, as the tracker needs it.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The face box in frame pixels.
    pub bbox: BoundingBox,
    /// Its embedding; `None` when the face could not be aligned (it is then tracked by
    /// position only and casts no vote).
    pub embedding: Option<Embedding>,
    /// The closest enrolled persons, one entry per person, whatever their similarity.
    pub candidates: Vec<Candidate>,
}

/// What a track is taken to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// An enrolled person.
    Person(PersonId),
    /// Nobody enrolled.
    Unknown,
}

/// The answer for one face of a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceDecision {
    /// The track the face belongs to; unique within the stream.
    pub track_id: u64,
    /// The person shown for the face, with this frame's similarity to them (or the latest one
    /// seen, when this frame's face did not rank them), or `None` for Unknown.
    pub person: Option<Candidate>,
    /// Whether the track's label is confirmed (see the crate documentation).
    pub confirmed: bool,
}

/// The tracks of one stream. Create one per connection (or one per request for a single
/// photo: the first frame of a track is labelled as a single photo would be).
#[derive(Debug, Clone)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    gallery_generation: Option<u64>,
}

impl Tracker {
    /// A tracker without tracks.
    pub fn new(config: TrackerConfig) -> Self {
        Self { config, tracks: Vec::new(), next_id: 1, gallery_generation: None }
    }

    /// The settings in use.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Number of live tracks (seen recently enough to be continued).
    pub fn n_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Whether the track is still alive (may be continued by a later frame).
    pub fn is_live(&self, track_id: u64) -> bool {
        self.tracks.iter().any(|t| t.id == track_id)
    }

    /// The ids of the live tracks (those a later frame may still continue).
    pub fn live_track_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.tracks.iter().map(|t| t.id)
    }

    /// Forgets every track (for example after the gallery was rebuilt).
    pub fn clear(&mut self) {
        self.tracks.clear();
    }

    /// Tells the tracker which version of the gallery the next frame's candidates come from.
    /// When it changed (someone was enrolled or deleted), every track forgets its votes and
    /// confirmation and is labelled afresh from the next frame, as a single photo would be, so
    /// an enrollment or a deletion shows on the very next frame. Track ids are kept.
    pub fn sync_gallery(&mut self, generation: u64) {
        if self.gallery_generation.is_some_and(|g| g != generation) {
            for track in &mut self.tracks {
                track.reset_votes();
            }
        }
        self.gallery_generation = Some(generation);
    }

    /// Takes the faces of the frame seen at `at` (time since the stream began, non-decreasing)
    /// and returns one decision per observation, in order.
    pub fn update(&mut self, at: Duration, observations: &[Observation]) -> Vec<FaceDecision> {
        let config = &self.config;
        self.tracks.retain(|t| at.saturating_sub(t.last_seen) <= config.max_gap);

        // Faces continue tracks, best pairs first; the rest start new tracks.
        let mut pairs = Vec::new();
        for (j, observation) in observations.iter().enumerate() {
            for (i, track) in self.tracks.iter().enumerate() {
                if let Some(score) = track.match_score(observation, config) {
                    pairs.push((j, i, score));
                }
            }
        }
        let continued = greedy_assignment(observations.len(), self.tracks.len(), &pairs);
        let mut observed = vec![false; self.tracks.len()];
        let mut track_of = Vec::with_capacity(observations.len());
        for (observation, track) in observations.iter().zip(&continued) {
            let index = match *track {
                Some(index) => {
                    self.tracks[index].observe(observation, at, config);
                    observed[index] = true;
                    index
                }
                None => {
                    let mut track = Track::new(self.next_id, observation, at);
                    self.next_id += 1;
                    track.observe(observation, at, config);
                    self.tracks.push(track);
                    observed.push(true);
                    self.tracks.len() - 1
                }
            };
            track_of.push(index);
        }
        for (track, seen) in self.tracks.iter_mut().zip(&observed) {
            if !seen {
                track.missed += 1;
            }
        }

        let decisions = self.assign_persons(observations, &track_of);

        let max_missed = self.config.max_missed_frames;
        self.tracks.retain(|t| t.missed <= max_missed);
        decisions
    }

    /// Gives each person to at most one face of the frame: a track's own label first
    /// (confirmed before tentative, then by evidence, then similarity), then any other person
    /// above the threshold in this frame; faces left over are Unknown.
    fn assign_persons(
        &self,
        observations: &[Observation],
        track_of: &[usize],
    ) -> Vec<FaceDecision> {
        let mut persons: Vec<PersonId> = Vec::new();
        let mut column = |person: PersonId| match persons.iter().position(|p| *p == person) {
            Some(index) => index,
            None => {
                persons.push(person);
                persons.len() - 1
            }
        };
        // Scores order claims: a track's own label outranks any fallback, confirmation
        // outranks evidence, evidence outranks similarity. The similarity term stays below 1.
        let mut pairs = Vec::new();
        for (row, (observation, &index)) in observations.iter().zip(track_of).enumerate() {
            let track = &self.tracks[index];
            if let crate::Label::Person(person) = track.label() {
                let rank = if track.is_confirmed() { 2000.0 } else { 1000.0 };
                let evidence = track.evidence_for(person).min(99.0);
                let similarity = similarity_now(observation, track, person).unwrap_or(0.0);
                pairs.push((
                    row,
                    column(person),
                    rank + 10.0 * evidence + similarity.clamp(0.0, 1.0),
                ));
            }
            if track.label() == crate::Label::Unknown && track.is_confirmed() {
                continue; // a confirmed stranger is not renamed by one frame's fallback
            }
            for candidate in &observation.candidates {
                if candidate.similarity >= self.config.min_similarity {
                    pairs.push((
                        row,
                        column(candidate.person),
                        candidate.similarity.clamp(0.0, 1.0),
                    ));
                }
            }
        }
        let assigned = greedy_assignment(observations.len(), persons.len(), &pairs);
        observations
            .iter()
            .zip(track_of)
            .zip(assigned)
            .map(|((observation, &index), column)| {
                let track = &self.tracks[index];
                let person = column.and_then(|c| {
                    let person = persons[c];
                    similarity_now(observation, track, person)
                        .map(|similarity| Candidate { person, similarity })
                });
                FaceDecision { track_id: track.id, person, confirmed: track.is_confirmed() }
            })
            .collect()
    }
}

/// This frame's similarity of the face to `person`, else the track's latest one.
fn similarity_now(observation: &Observation, track: &Track, person: PersonId) -> Option<f32> {
    observation
        .candidates
        .iter()
        .find(|c| c.person == person)
        .map(|c| c.similarity)
        .or_else(|| track.last_similarity(person))
}
