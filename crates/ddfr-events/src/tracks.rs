//! One connection's tracks turned into events: at most one `recognized`, one `unknown` and one
//! `left` per track, decided from the tracker's confirmed decisions, never from raw frames.

use std::collections::HashMap;
use std::time::Duration;

use ddfr_core::PersonId;
use ddfr_protocol::Timestamp;

/// What the tracker said about one face of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackSeen {
    /// The face's track, unique within the connection.
    pub track_id: u64,
    /// The person the face is shown as, or `None` for Unknown.
    pub person: Option<PersonId>,
    /// Whether the track's label is confirmed (several frames agree).
    pub confirmed: bool,
}

/// An event about a track, before names, camera and time are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackEvent {
    /// The track was confirmed as `person`.
    Recognized {
        /// The track.
        track_id: u64,
        /// Who it is.
        person: PersonId,
    },
    /// The track's face stayed unidentified for the unknown delay.
    Unknown {
        /// The track.
        track_id: u64,
    },
    /// An announced track ended; `person` is who it was recognized as, if anyone.
    Left {
        /// The track.
        track_id: u64,
        /// Who it was recognized as.
        person: Option<PersonId>,
    },
}

#[derive(Debug, Clone)]
struct TrackState {
    /// Since when the face has been shown as Unknown without a break.
    unidentified_since: Option<Timestamp>,
    /// The person announced by `recognized`.
    recognized: Option<PersonId>,
    /// Whether `unknown` was announced.
    unknown_sent: bool,
    /// The confirmed person of the latest frame (for "who is in view").
    current: Option<PersonId>,
}

impl TrackState {
    fn announced(&self) -> bool {
        self.recognized.is_some() || self.unknown_sent
    }
}

/// The tracks of one `/ws` connection. Plain data: the caller passes the time.
#[derive(Debug, Clone)]
pub struct TrackEvents {
    unknown_delay: Duration,
    tracks: HashMap<u64, TrackState>,
}

impl TrackEvents {
    /// No tracks yet; a face must stay Unknown for `unknown_delay` to be announced.
    pub fn new(unknown_delay: Duration) -> Self {
        Self { unknown_delay, tracks: HashMap::new() }
    }

    /// Takes one frame's decisions seen at `at`, and the tracker's live track ids after it;
    /// returns the events it causes, `left` last.
    pub fn frame(&mut self, at: Timestamp, faces: &[TrackSeen], live: &[u64]) -> Vec<TrackEvent> {
        let mut events = Vec::new();
        for face in faces {
            let state = self.tracks.entry(face.track_id).or_insert(TrackState {
                unidentified_since: None,
                recognized: None,
                unknown_sent: false,
                current: None,
            });
            state.current = face.person.filter(|_| face.confirmed);
            match face.person {
                Some(person) => {
                    state.unidentified_since = None;
                    if face.confirmed && state.recognized.is_none() {
                        state.recognized = Some(person);
                        events.push(TrackEvent::Recognized { track_id: face.track_id, person });
                    }
                }
                None => {
                    let since = *state.unidentified_since.get_or_insert(at);
                    let waited = at.unix_millis().saturating_sub(since.unix_millis());
                    let delay = i64::try_from(self.unknown_delay.as_millis()).unwrap_or(i64::MAX);
                    if !state.unknown_sent && state.recognized.is_none() && waited >= delay {
                        state.unknown_sent = true;
                        events.push(TrackEvent::Unknown { track_id: face.track_id });
                    }
                }
            }
        }
        let ended: Vec<u64> = self.tracks.keys().copied().filter(|id| !live.contains(id)).collect();
        events.extend(self.end(ended));
        events
    }

    /// Ends every track (the connection closed, or its frames stopped).
    pub fn end_all(&mut self) -> Vec<TrackEvent> {
        let all: Vec<u64> = self.tracks.keys().copied().collect();
        self.end(all)
    }

    fn end(&mut self, mut ids: Vec<u64>) -> Vec<TrackEvent> {
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|track_id| {
                let state = self.tracks.remove(&track_id)?;
                state.announced().then_some(TrackEvent::Left { track_id, person: state.recognized })
            })
            .collect()
    }

    /// The confirmed persons of the live tracks, and how many live tracks were announced as
    /// unknown: who this connection has in view.
    pub fn in_view(&self) -> (Vec<PersonId>, usize) {
        let mut persons: Vec<PersonId> = self.tracks.values().filter_map(|t| t.current).collect();
        persons.sort_unstable();
        persons.dedup();
        let unknown =
            self.tracks.values().filter(|t| t.unknown_sent && t.current.is_none()).count();
        (persons, unknown)
    }

    /// Number of tracks followed.
    pub fn n_tracks(&self) -> usize {
        self.tracks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADA: PersonId = PersonId(1);
    const ALAN: PersonId = PersonId(2);

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_700_000_000_000 + millis)
    }

    fn seen(track_id: u64, person: Option<PersonId>, confirmed: bool) -> TrackSeen {
        TrackSeen { track_id, person, confirmed }
    }

    #[test]
    fn a_person_walking_past_is_one_recognized_then_one_left() {
        let mut tracks = TrackEvents::new(Duration::from_secs(3));
        let mut events = Vec::new();
        // Ten seconds at 20 FPS: tentative for two frames, then confirmed.
        for frame in 0..200 {
            let face = seen(1, Some(ADA), frame >= 2);
            events.extend(tracks.frame(at(frame * 50), &[face], &[1]));
        }
        assert_eq!(events, vec![TrackEvent::Recognized { track_id: 1, person: ADA }]);
        // The tracker drops the track: one `left`, naming who it was.
        let events = tracks.frame(at(10_500), &[], &[]);
        assert_eq!(events, vec![TrackEvent::Left { track_id: 1, person: Some(ADA) }]);
        assert_eq!(tracks.n_tracks(), 0);
        // Nothing more for that track, ever.
        assert!(tracks.frame(at(11_000), &[], &[]).is_empty());
    }

    #[test]
    fn tentative_names_announce_nothing() {
        let mut tracks = TrackEvents::new(Duration::from_secs(3));
        for frame in 0..10 {
            assert!(tracks.frame(at(frame * 50), &[seen(1, Some(ADA), false)], &[1]).is_empty());
        }
        // A track never announced ends silently.
        assert!(tracks.frame(at(600), &[], &[]).is_empty());
    }

    #[test]
    fn unknown_comes_only_after_the_delay_and_only_once() {
        let mut tracks = TrackEvents::new(Duration::from_secs(3));
        let mut first_unknown = None;
        for frame in 0..120 {
            let events = tracks.frame(at(frame * 50), &[seen(7, None, frame > 2)], &[7]);
            if !events.is_empty() {
                assert_eq!(events, vec![TrackEvent::Unknown { track_id: 7 }]);
                assert!(first_unknown.is_none(), "a second unknown at frame {frame}");
                first_unknown = Some(frame * 50);
            }
        }
        assert_eq!(first_unknown, Some(3000), "announced exactly when 3 s have passed");
        assert_eq!(tracks.in_view(), (vec![], 1));
        assert_eq!(tracks.end_all(), vec![TrackEvent::Left { track_id: 7, person: None }]);
    }

    #[test]
    fn a_moment_of_recognition_restarts_the_unknown_clock() {
        let mut tracks = TrackEvents::new(Duration::from_millis(1000));
        assert!(tracks.frame(at(0), &[seen(1, None, false)], &[1]).is_empty());
        assert!(tracks.frame(at(900), &[seen(1, Some(ADA), false)], &[1]).is_empty());
        assert!(tracks.frame(at(1100), &[seen(1, None, false)], &[1]).is_empty());
        assert!(tracks.frame(at(2000), &[seen(1, None, false)], &[1]).is_empty());
        assert_eq!(
            tracks.frame(at(2100), &[seen(1, None, false)], &[1]),
            vec![TrackEvent::Unknown { track_id: 1 }]
        );
    }

    #[test]
    fn a_recognized_track_is_never_called_unknown_and_an_unknown_one_may_be_recognized_later() {
        let mut tracks = TrackEvents::new(Duration::ZERO);
        assert_eq!(
            tracks.frame(at(0), &[seen(1, Some(ADA), true)], &[1]),
            vec![TrackEvent::Recognized { track_id: 1, person: ADA }]
        );
        assert!(tracks.frame(at(50), &[seen(1, None, true)], &[1]).is_empty());
        // A stranger's track, announced, then enrolled mid-track: one event of each kind.
        assert_eq!(
            tracks.frame(at(100), &[seen(2, None, true)], &[1, 2]),
            vec![TrackEvent::Unknown { track_id: 2 }]
        );
        assert_eq!(
            tracks.frame(at(150), &[seen(2, Some(ALAN), true)], &[1, 2]),
            vec![TrackEvent::Recognized { track_id: 2, person: ALAN }]
        );
        assert_eq!(tracks.in_view(), (vec![ALAN], 0));
        assert_eq!(
            tracks.end_all(),
            vec![
                TrackEvent::Left { track_id: 1, person: Some(ADA) },
                TrackEvent::Left { track_id: 2, person: Some(ALAN) },
            ]
        );
    }

    #[test]
    fn two_people_in_one_frame_get_their_own_events() {
        let mut tracks = TrackEvents::new(Duration::from_secs(3));
        let faces = [seen(1, Some(ADA), true), seen(2, Some(ALAN), true)];
        let events = tracks.frame(at(0), &faces, &[1, 2]);
        assert_eq!(
            events,
            vec![
                TrackEvent::Recognized { track_id: 1, person: ADA },
                TrackEvent::Recognized { track_id: 2, person: ALAN },
            ]
        );
        assert_eq!(tracks.in_view(), (vec![ADA, ALAN], 0));
        // Track 2 still live but not in this frame: nothing; track 1 gone: left.
        let events = tracks.frame(at(50), &[], &[2]);
        assert_eq!(events, vec![TrackEvent::Left { track_id: 1, person: Some(ADA) }]);
    }
}
