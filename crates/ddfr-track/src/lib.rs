//! Face tracks across the frames of one stream, and who each track is.
//!
//! A camera shows the same people for many frames in a row, so a stream can be much surer
//! than any single photo. [`Tracker::update`] takes the faces of one frame (box, embedding and
//! the gallery's best similarity per person) and returns, per face, a `track_id` that follows
//! the face from frame to frame and the person it is shown as, if anyone.
//!
//! # How a face joins a track
//! A face continues a track when its box overlaps the track's last box (or its centre moved
//! less than about one face width) **and** its embedding is at least as similar to the track's
//! as the recognition threshold (two different people in the same spot start different
//! tracks). Faces and tracks are paired one to one, best pairs first. A track survives
//! [`TrackerConfig::max_missed_frames`] frames without its face, and at most
//! [`TrackerConfig::max_gap`] of time.
//!
//! # How a track becomes known or unknown
//! Every face with an embedding casts a vote: for its best-matching person when the similarity
//! reaches the threshold, else for "Unknown". The vote weighs more for a larger face (up to
//! [`TrackerConfig::full_weight_side`] pixels) and for a similarity far from the threshold.
//! Older votes fade by [`TrackerConfig::decay`] per frame. A track shows the label with the
//! most evidence; it becomes *confirmed* once that label has [`TrackerConfig::confirm_evidence`]
//! and [`TrackerConfig::confirm_share`] of all evidence. A confirmed label changes only when
//! another label gathers [`TrackerConfig::switch_ratio`] times its evidence (about ten
//! consecutive frames of someone else), so one bad frame can neither rename a track nor make
//! it Unknown. A new track's first frame is labelled exactly as a single photo would be.
//! Faces seen while nobody is enrolled cast no vote, and every track forgets its votes when
//! the gallery changes ([`Tracker::sync_gallery`]), so an enrollment or a deletion shows on the
//! very next frame.
//!
//! # One person per face
//! Within a frame a person is given to at most one face: faces claim persons in order of
//! confirmed before tentative, then evidence, then similarity; a face that loses its person
//! falls back to its next person above the threshold in this frame, or Unknown.
//!
//! Architecture invariant: plain data and arithmetic, no IO, no clock (the caller passes the
//! time), so every behaviour is reproducible in a unit test.

mod assign;
mod config;
mod track;
mod tracker;

pub use assign::greedy_assignment;
pub use config::TrackerConfig;
pub use tracker::{Candidate, FaceDecision, Label, Observation, Tracker};
