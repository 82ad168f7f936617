//! Behaviour of the tracker over synthetic streams: what users see frame after frame.

// Helpers of a test crate: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ddfr_core::{BoundingBox, Embedding, PersonId};
use ddfr_track::{Candidate, FaceDecision, Observation, Tracker, TrackerConfig};
use proptest::prelude::*;

const THRESHOLD: f32 = 0.6;
const A: PersonId = PersonId(1);
const B: PersonId = PersonId(2);

/// A unit vector along axis `axis` tilted by `tilt` towards axis 7: two faces with the same
/// axis are the same person (cosine `cos(tilt difference)`), different axes are orthogonal.
fn look(axis: usize, tilt: f32) -> Embedding {
    let mut raw = vec![0.0; 8];
    raw[axis] = tilt.cos();
    raw[7] += tilt.sin();
    Embedding::from_raw(raw).unwrap()
}

fn face_at(x: f32, y: f32, side: f32) -> BoundingBox {
    BoundingBox::new(x, y, x + side, y + side)
}

fn observation(
    bbox: BoundingBox,
    embedding: Embedding,
    candidates: &[(PersonId, f32)],
) -> Observation {
    Observation {
        bbox,
        embedding: Some(embedding),
        candidates: candidates
            .iter()
            .map(|&(person, similarity)| Candidate { person, similarity })
            .collect(),
    }
}

fn at(frame: u64) -> Duration {
    Duration::from_millis(50 * frame)
}

fn person(decision: &FaceDecision) -> Option<PersonId> {
    decision.person.map(|c| c.person)
}

#[test]
fn first_frame_is_labelled_like_a_single_photo() {
    let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
    let frame = [
        observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.8), (B, 0.3)]),
        observation(face_at(300.0, 0.0, 100.0), look(1, 0.0), &[(A, 0.55), (B, 0.2)]),
    ];
    let decisions = tracker.update(at(0), &frame);
    assert_eq!(person(&decisions[0]), Some(A));
    assert_eq!(decisions[0].person.unwrap().similarity, 0.8);
    assert_eq!(person(&decisions[1]), None, "below the threshold is Unknown");
    assert_ne!(decisions[0].track_id, decisions[1].track_id);
    assert!(!decisions[0].confirmed);
}

#[test]
fn a_confirmed_name_survives_bad_frames_and_keeps_its_track() {
    let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
    let mut shown = Vec::new();
    for frame in 0..20u64 {
        let x = 10.0 * frame as f32; // walking right, 10 px per frame
        let tilt = 0.02 * frame as f32;
        let candidates: &[(PersonId, f32)] = match frame {
            5 => &[(A, 0.4), (B, 0.62)],     // one frame looks like B
            9 | 10 => &[(A, 0.5), (B, 0.1)], // two blurry frames: below the threshold
            _ => &[(A, 0.82), (B, 0.3)],
        };
        let decisions = tracker
            .update(at(frame), &[observation(face_at(x, 50.0, 90.0), look(0, tilt), candidates)]);
        shown.push((decisions[0].track_id, person(&decisions[0]), decisions[0].confirmed));
    }
    let track = shown[0].0;
    assert!(shown.iter().all(|s| s.0 == track), "one track throughout: {shown:?}");
    assert!(shown.iter().all(|s| s.1 == Some(A)), "the name never changes: {shown:?}");
    let confirmed_from = shown.iter().position(|s| s.2).unwrap();
    assert!(confirmed_from <= 2, "confirmed within a few frames, at {confirmed_from}");
}

#[test]
fn a_bad_frame_shows_the_tracks_name_with_this_frames_raw_similarity() {
    let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
    for frame in 0..5 {
        tracker
            .update(at(frame), &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.8)])]);
    }
    let decisions =
        tracker.update(at(5), &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.5)])]);
    assert_eq!(decisions[0].person, Some(Candidate { person: A, similarity: 0.5 }));
}

#[test]
fn another_person_in_the_same_spot_starts_a_new_track() {
    let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
    let mut first = None;
    for frame in 0..5 {
        let d = tracker
            .update(at(frame), &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.9)])]);
        first = Some(d[0].track_id);
    }
    // Same box, different face (orthogonal embedding): not the same track, so A's votes do not
    // carry over and the newcomer is labelled on its own.
    let d = tracker.update(
        at(5),
        &[observation(face_at(0.0, 0.0, 100.0), look(1, 0.0), &[(B, 0.9), (A, 0.1)])],
    );
    assert_ne!(Some(d[0].track_id), first);
    assert_eq!(person(&d[0]), Some(B));
}

#[test]
fn one_person_is_never_given_to_two_faces_of_a_frame() {
    let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
    // Siblings: both faces are closest to A; the second is also above the threshold for B.
    let frame = [
        observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.9), (B, 0.5)]),
        observation(face_at(300.0, 0.0, 100.0), look(1, 0.0), &[(A, 0.8), (B, 0.7)]),
    ];
    let d = tracker.update(at(0), &frame);
    assert_eq!(person(&d[0]), Some(A));
    assert_eq!(d[1].person, Some(Candidate { person: B, similarity: 0.7 }));

    // Without a fallback above the threshold the loser is Unknown.
    let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
    let frame = [
        observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.9)]),
        observation(face_at(300.0, 0.0, 100.0), look(1, 0.0), &[(A, 0.8), (B, 0.2)]),
    ];
    let d = tracker.update(at(0), &frame);
    assert_eq!(person(&d[0]), Some(A));
    assert_eq!(person(&d[1]), None);
}

#[test]
fn a_confirmed_track_keeps_its_person_against_a_stronger_single_frame_claim() {
    let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
    for frame in 0..6 {
        tracker.update(
            at(frame),
            &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.75)])],
        );
    }
    // A second face appears and looks more like A in this frame.
    let d = tracker.update(
        at(6),
        &[
            observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.75)]),
            observation(face_at(300.0, 0.0, 100.0), look(1, 0.0), &[(A, 0.95)]),
        ],
    );
    assert_eq!(person(&d[0]), Some(A));
    assert!(d[0].confirmed);
    assert_eq!(person(&d[1]), None);
}

#[test]
fn a_track_survives_missed_frames_but_not_too_many_or_too_long() {
    let config = TrackerConfig::new(THRESHOLD);
    let max_missed = u64::from(config.max_missed_frames);
    let mut tracker = Tracker::new(config.clone());
    let seen = |tracker: &mut Tracker, frame: u64| {
        tracker
            .update(at(frame), &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.9)])])
            [0]
        .track_id
    };
    let id = seen(&mut tracker, 0);
    for frame in 1..=max_missed {
        tracker.update(at(frame), &[]);
    }
    assert_eq!(seen(&mut tracker, max_missed + 1), id, "back after {max_missed} empty frames");
    for frame in max_missed + 2..=2 * max_missed + 2 {
        tracker.update(at(frame), &[]);
    }
    assert_ne!(
        seen(&mut tracker, 2 * max_missed + 3),
        id,
        "gone after {} empty frames",
        max_missed + 1
    );

    // Time: a frame more than max_gap later starts a new track even without missed frames.
    let mut tracker = Tracker::new(config.clone());
    let first =
        tracker.update(at(0), &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.9)])]);
    let later = tracker.update(
        config.max_gap + Duration::from_millis(1),
        &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.9)])],
    );
    assert_ne!(first[0].track_id, later[0].track_id);
}

#[test]
fn a_confirmed_stranger_becomes_known_only_after_consistent_evidence() {
    let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
    for frame in 0..10 {
        let d = tracker
            .update(at(frame), &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.3)])]);
        assert_eq!(person(&d[0]), None);
    }
    let mut switched_at = None;
    for frame in 10..40 {
        let d = tracker.update(
            at(frame),
            &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.85)])],
        );
        if person(&d[0]) == Some(A) && switched_at.is_none() {
            switched_at = Some(frame - 10);
        }
    }
    let after = switched_at.expect("consistent matches eventually name the track");
    assert!(after >= 5, "one or a few frames must not rename a confirmed stranger (after {after})");
    assert!(after <= 20, "but a consistent match wins within a second or so (after {after})");
}

#[test]
fn small_faces_vote_less() {
    // A large face confirms faster than a tiny one with the same similarities.
    let frames_to_confirm = |side: f32| {
        let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
        (0..30u64)
            .position(|frame| {
                tracker.update(
                    at(frame),
                    &[observation(face_at(0.0, 0.0, side), look(0, 0.0), &[(A, 0.7)])],
                )[0]
                .confirmed
            })
            .unwrap()
    };
    assert!(frames_to_confirm(120.0) < frames_to_confirm(24.0));
}

#[test]
fn faces_without_embeddings_are_tracked_by_position_and_do_not_vote() {
    let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
    for frame in 0..4 {
        tracker
            .update(at(frame), &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.9)])]);
    }
    let id = tracker
        .update(at(4), &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.9)])])[0]
        .track_id;
    let blind = Observation { bbox: face_at(5.0, 0.0, 100.0), embedding: None, candidates: vec![] };
    let d = tracker.update(at(5), &[blind]);
    assert_eq!(d[0].track_id, id);
    assert_eq!(
        d[0].person,
        Some(Candidate { person: A, similarity: 0.9 }),
        "latest similarity kept"
    );
}

proptest! {
    #[test]
    fn every_frame_gives_each_person_and_track_at_most_once(
        frames in proptest::collection::vec(
            proptest::collection::vec((0.0f32..600.0, 0.0f32..400.0, 20.0f32..150.0, 0usize..3, 0.0f32..1.0, 0.0f32..1.0), 0..5),
            1..25,
        )
    ) {
        let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
        for (n, faces) in frames.iter().enumerate() {
            let observations: Vec<Observation> = faces
                .iter()
                .map(|&(x, y, side, axis, sa, sb)| observation(face_at(x, y, side), look(axis, 0.0), &[(A, sa), (B, sb)]))
                .collect();
            let decisions = tracker.update(at(n as u64), &observations);
            prop_assert_eq!(decisions.len(), observations.len());
            let mut persons = std::collections::HashSet::new();
            let mut tracks = std::collections::HashSet::new();
            for d in &decisions {
                prop_assert!(tracks.insert(d.track_id));
                if let Some(c) = d.person {
                    prop_assert!(persons.insert(c.person), "{:?} given twice", c.person);
                }
            }
        }
    }
}

#[test]
fn detection_only_frames_cast_no_vote() {
    let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
    for frame in 0..10 {
        let d =
            tracker.update(at(frame), &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[])]);
        assert_eq!(person(&d[0]), None);
        assert!(!d[0].confirmed, "nothing to confirm while nobody is enrolled");
    }
    // Someone enrolls the person: the next frame names them.
    let d =
        tracker.update(at(10), &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.7)])]);
    assert_eq!(person(&d[0]), Some(A));
}

#[test]
fn a_gallery_change_relabels_tracks_on_the_next_frame() {
    let mut tracker = Tracker::new(TrackerConfig::new(THRESHOLD));
    tracker.sync_gallery(1);
    let mut id = 0;
    for frame in 0..10 {
        let d = tracker
            .update(at(frame), &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(A, 0.3)])]);
        assert_eq!(person(&d[0]), None);
        id = d[0].track_id;
    }
    // The stranger is enrolled as B: without the sync, ten frames of Unknown evidence would
    // hold the old label; with it, the next frame shows B on the same track.
    tracker.sync_gallery(2);
    let d = tracker.update(
        at(10),
        &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(B, 0.9), (A, 0.3)])],
    );
    assert_eq!((d[0].track_id, person(&d[0])), (id, Some(B)));
    // The same generation again changes nothing.
    tracker.sync_gallery(2);
    let d =
        tracker.update(at(11), &[observation(face_at(0.0, 0.0, 100.0), look(0, 0.0), &[(B, 0.9)])]);
    assert_eq!(person(&d[0]), Some(B));
}
