//! Who is home: a person is present while seen on any camera and away once nobody has seen
//! them for `away_after`. Plain data: every call takes the time, so the clock is the caller's.

use std::collections::HashMap;
use std::time::Duration;

use ddfr_core::PersonId;
use ddfr_protocol::Timestamp;

/// A change of a person's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceChange {
    /// Seen after being away (or for the first time since start).
    Home(PersonId),
    /// Not seen for `away_after`.
    Away(PersonId),
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    last_seen: Timestamp,
    home: bool,
}

/// Presence of every person seen since start.
#[derive(Debug, Clone)]
pub struct Presence {
    away_after_millis: i64,
    persons: HashMap<PersonId, Seen>,
}

impl Presence {
    /// Nobody seen yet; a person is away `away_after` after their last sighting.
    pub fn new(away_after: Duration) -> Self {
        Self {
            away_after_millis: i64::try_from(away_after.as_millis()).unwrap_or(i64::MAX),
            persons: HashMap::new(),
        }
    }

    /// Notes that `person` was seen at `at`; `Home` when they were not home.
    pub fn sighting(&mut self, person: PersonId, at: Timestamp) -> Option<PresenceChange> {
        let seen = self.persons.entry(person).or_insert(Seen { last_seen: at, home: false });
        seen.last_seen = seen.last_seen.max(at);
        if seen.home {
            None
        } else {
            seen.home = true;
            Some(PresenceChange::Home(person))
        }
    }

    /// Everyone home whose last sighting is `away_after` or more before `now` becomes away.
    pub fn tick(&mut self, now: Timestamp) -> Vec<PresenceChange> {
        let mut changes: Vec<PresenceChange> = self
            .persons
            .iter_mut()
            .filter(|(_, seen)| {
                seen.home
                    && now.unix_millis().saturating_sub(seen.last_seen.unix_millis())
                        >= self.away_after_millis
            })
            .map(|(person, seen)| {
                seen.home = false;
                PresenceChange::Away(*person)
            })
            .collect();
        changes.sort_unstable_by_key(|change| match change {
            PresenceChange::Home(p) | PresenceChange::Away(p) => *p,
        });
        changes
    }

    /// Forgets a deleted person.
    pub fn forget(&mut self, person: PersonId) {
        self.persons.remove(&person);
    }

    /// Whether the person is home now.
    pub fn is_home(&self, person: PersonId) -> bool {
        self.persons.get(&person).is_some_and(|seen| seen.home)
    }

    /// When the person was last seen since start.
    pub fn last_seen(&self, person: PersonId) -> Option<Timestamp> {
        self.persons.get(&person).map(|seen| seen.last_seen)
    }

    /// Whether anyone is home.
    pub fn anyone_home(&self) -> bool {
        self.persons.values().any(|seen| seen.home)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADA: PersonId = PersonId(1);
    const ALAN: PersonId = PersonId(2);

    /// A clock the test moves by hand.
    struct Clock(i64);

    impl Clock {
        fn now(&self) -> Timestamp {
            Timestamp::from_unix_millis(self.0)
        }
        fn advance(&mut self, by: Duration) {
            self.0 += i64::try_from(by.as_millis()).unwrap();
        }
    }

    #[test]
    fn home_while_seen_away_after_the_delay_without_a_sighting() {
        let mut clock = Clock(1_700_000_000_000);
        let mut presence = Presence::new(Duration::from_secs(300));
        assert!(!presence.is_home(ADA));
        assert_eq!(presence.sighting(ADA, clock.now()), Some(PresenceChange::Home(ADA)));
        // Seen again and again: no new change.
        for _ in 0..10 {
            clock.advance(Duration::from_secs(60));
            assert_eq!(presence.sighting(ADA, clock.now()), None);
            assert!(presence.tick(clock.now()).is_empty());
        }
        // 4 min 59 s after the last sighting: still home; at 5 min: away, once.
        clock.advance(Duration::from_secs(299));
        assert!(presence.tick(clock.now()).is_empty());
        assert!(presence.is_home(ADA));
        clock.advance(Duration::from_secs(1));
        assert_eq!(presence.tick(clock.now()), vec![PresenceChange::Away(ADA)]);
        assert!(!presence.is_home(ADA));
        assert!(presence.tick(clock.now()).is_empty());
        // Back: home again; last seen follows.
        clock.advance(Duration::from_secs(3600));
        assert_eq!(presence.sighting(ADA, clock.now()), Some(PresenceChange::Home(ADA)));
        assert_eq!(presence.last_seen(ADA), Some(clock.now()));
    }

    #[test]
    fn each_person_has_their_own_clock_and_any_camera_counts() {
        let mut clock = Clock(0);
        let mut presence = Presence::new(Duration::from_secs(10));
        presence.sighting(ADA, clock.now());
        clock.advance(Duration::from_secs(6));
        presence.sighting(ALAN, clock.now());
        clock.advance(Duration::from_secs(4));
        assert_eq!(presence.tick(clock.now()), vec![PresenceChange::Away(ADA)]);
        assert!(presence.anyone_home());
        // A sighting stamped earlier (another camera's frame, late) never moves time back.
        presence.sighting(ALAN, Timestamp::from_unix_millis(1000));
        assert_eq!(presence.last_seen(ALAN), Some(Timestamp::from_unix_millis(6000)));
        clock.advance(Duration::from_secs(6));
        assert_eq!(presence.tick(clock.now()), vec![PresenceChange::Away(ALAN)]);
        assert!(!presence.anyone_home());
        presence.forget(ALAN);
        assert_eq!(presence.last_seen(ALAN), None);
    }
}
