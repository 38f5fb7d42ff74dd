//! Loudest-speaker selection for large rooms: which publishers are forwarded at all.
//!
//! Forwarding every publisher to every subscriber costs N² packets; in a room of 100 people
//! a handful talk and the rest send silence (or nothing, with DTX). Above a size the shard
//! forwards only the K selected here, so cost grows with N x K. The selection is sticky so a
//! continuing speaker is never cut: a selected participant keeps the place while speaking
//! (the speaking detector's hangover bridges pauses between words), gives it up to a new
//! speaker only once silent, and is displaced while speaking only by someone much louder
//! after holding it for a while.

use std::time::{Duration, Instant};

/// A speaker must be this much louder (dB) than the quietest selected one to take its place
/// while that one still speaks.
pub const SWAP_MARGIN_DB: f32 = 10.0;
/// ...and the quietest one must have held its place this long.
pub const MIN_HOLD: Duration = Duration::from_secs(2);

/// One participant as the selection sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate<K> {
    pub key: K,
    /// Speaking (and not muted) by the speaking detector.
    pub speaking: bool,
    /// Smoothed level, -dBov: lower is louder.
    pub level: f32,
}

#[derive(Debug, Clone, Copy)]
struct Place<K> {
    key: K,
    since: Instant,
}

/// The up to `limit` publishers a large room forwards, each at a fixed place: a speaker keeps
/// its place number from getting it until giving it up, so the audio slot it is heard on
/// doesn't change under it (a move would be a switch on two slots at once).
#[derive(Debug, Clone)]
pub struct AudibleSpeakers<K> {
    places: Vec<Option<Place<K>>>,
}

impl<K> Default for AudibleSpeakers<K> {
    fn default() -> Self {
        Self { places: Vec::new() }
    }
}

impl<K: Copy + PartialEq> AudibleSpeakers<K> {
    /// Whether `key` holds one of the places.
    pub fn contains(&self, key: K) -> bool {
        self.place_of(key).is_some()
    }

    /// The number of the place `key` holds.
    pub fn place_of(&self, key: K) -> Option<usize> {
        self.places
            .iter()
            .position(|p| p.is_some_and(|p| p.key == key))
    }

    /// Who holds place `index`.
    pub fn at(&self, index: usize) -> Option<K> {
        self.places.get(index).copied().flatten().map(|p| p.key)
    }

    /// The selected participants, by place number.
    pub fn selected(&self) -> impl Iterator<Item = K> + '_ {
        self.places.iter().flatten().map(|p| p.key)
    }

    /// Forgets a participant who left.
    pub fn remove(&mut self, key: K) {
        if let Some(i) = self.place_of(key) {
            self.places[i] = None;
        }
    }

    /// Updates the selection from the room's participants: `limit` places, of which the
    /// first `preferred` are heard by everyone (the others only by those holding one of the
    /// first: the spare a speaker hears instead of itself). Returns whether it changed.
    pub fn update(
        &mut self,
        now: Instant,
        limit: usize,
        preferred: usize,
        room: &[Candidate<K>],
    ) -> bool {
        let find = |key: K| room.iter().find(|c| c.key == key);
        let mut changed = false;
        // Whoever left the room (or a shrunk limit) frees a place.
        if self.places.len() > limit {
            changed |= self.places[limit..].iter().any(Option::is_some);
            self.places.truncate(limit);
        }
        self.places.resize(limit, None);
        for place in &mut self.places {
            if place.is_some_and(|p| find(p.key).is_none()) {
                *place = None;
                changed = true;
            }
        }
        let speaking = |place: &Option<Place<K>>| {
            place.is_some_and(|p| find(p.key).is_some_and(|c| c.speaking))
        };

        let mut waiting: Vec<&Candidate<K>> = room
            .iter()
            .filter(|c| c.speaking && !self.contains(c.key))
            .collect();
        waiting.sort_by(|a, b| a.level.total_cmp(&b.level));
        for candidate in waiting {
            let place = Some(Place {
                key: candidate.key,
                since: now,
            });
            // Heard by everyone before heard by a few; free before taken from someone silent
            // (the one holding it longest).
            let split = preferred.min(limit);
            let free = |range: std::ops::Range<usize>| {
                range.into_iter().find(|i| self.places[*i].is_none())
            };
            let silent = |range: std::ops::Range<usize>| {
                range
                    .into_iter()
                    .filter(|i| !speaking(&self.places[*i]))
                    .min_by_key(|i| self.places[*i].map(|p| p.since))
            };
            let target = free(0..split)
                .or_else(|| silent(0..split))
                .or_else(|| free(split..limit))
                .or_else(|| silent(split..limit));
            if let Some(i) = target {
                self.places[i] = place;
                changed = true;
                continue;
            }
            // Everyone selected is speaking: only a much louder voice takes the quietest place.
            let quietest = self
                .places
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.and_then(|p| find(p.key).map(|c| (i, p.since, c.level))))
                .max_by(|a, b| a.2.total_cmp(&b.2));
            if let Some((i, since, level)) = quietest {
                if candidate.level + SWAP_MARGIN_DB < level
                    && now.saturating_duration_since(since) >= MIN_HOLD
                {
                    self.places[i] = place;
                    changed = true;
                }
            }
        }
        // Someone speaking on a spare place moves up to a place everyone hears once that one
        // is free or its holder silent, who takes the spare in exchange.
        for low in 0..preferred.min(limit) {
            if speaking(&self.places[low]) {
                continue;
            }
            let spare_speaker = (preferred..limit).find(|i| speaking(&self.places[*i]));
            if let Some(high) = spare_speaker {
                self.places.swap(low, high);
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talking(key: u32, level: f32) -> Candidate<u32> {
        Candidate {
            key,
            speaking: true,
            level,
        }
    }

    fn silent(key: u32) -> Candidate<u32> {
        Candidate {
            key,
            speaking: false,
            level: 127.0,
        }
    }

    fn selected(a: &AudibleSpeakers<u32>) -> Vec<u32> {
        let mut v: Vec<u32> = a.selected().collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn the_loudest_speakers_fill_the_places_and_the_silent_get_none() {
        let t0 = Instant::now();
        let mut a = AudibleSpeakers::default();
        let room = [
            talking(1, 30.0),
            silent(2),
            talking(3, 20.0),
            talking(4, 40.0),
            talking(5, 25.0),
        ];
        assert!(a.update(t0, 3, 3, &room));
        assert_eq!(selected(&a), vec![1, 3, 5]);
        assert!(!a.update(t0, 3, 3, &room), "the same room changes nothing");
    }

    #[test]
    fn a_continuing_speaker_keeps_the_place_against_a_slightly_louder_newcomer() {
        let t0 = Instant::now();
        let mut a = AudibleSpeakers::default();
        a.update(t0, 1, 1, &[talking(1, 30.0)]);
        let later = t0 + MIN_HOLD * 3;
        assert!(!a.update(later, 1, 1, &[talking(1, 30.0), talking(2, 25.0)]));
        assert_eq!(selected(&a), vec![1]);
        // Much louder, but the place was only just taken: still no switch.
        let mut b = AudibleSpeakers::default();
        b.update(t0, 1, 1, &[talking(1, 40.0)]);
        assert!(!b.update(
            t0 + MIN_HOLD / 2,
            1,
            1,
            &[talking(1, 40.0), talking(2, 20.0)]
        ));
        // Held long enough: the much louder voice takes it.
        assert!(b.update(t0 + MIN_HOLD, 1, 1, &[talking(1, 40.0), talking(2, 20.0)]));
        assert_eq!(selected(&b), vec![2]);
    }

    #[test]
    fn a_new_speaker_takes_the_place_of_one_who_fell_silent_at_once() {
        let t0 = Instant::now();
        let mut a = AudibleSpeakers::default();
        a.update(t0, 2, 2, &[talking(1, 30.0), talking(2, 30.0)]);
        let room = [talking(1, 30.0), silent(2), talking(3, 35.0)];
        assert!(a.update(t0 + Duration::from_millis(100), 2, 2, &room));
        assert_eq!(selected(&a), vec![1, 3]);
    }

    #[test]
    fn silent_speakers_keep_their_place_while_nobody_needs_it() {
        let t0 = Instant::now();
        let mut a = AudibleSpeakers::default();
        a.update(t0, 3, 3, &[talking(1, 30.0), talking(2, 30.0)]);
        assert!(!a.update(t0 + MIN_HOLD, 3, 3, &[silent(1), silent(2), silent(3)]));
        assert_eq!(selected(&a), vec![1, 2]);
    }

    #[test]
    fn leaving_frees_the_place() {
        let t0 = Instant::now();
        let mut a = AudibleSpeakers::default();
        a.update(t0, 1, 1, &[talking(1, 30.0)]);
        assert!(a.update(t0, 1, 1, &[talking(2, 30.0)]));
        assert_eq!(selected(&a), vec![2]);
        a.remove(2);
        assert_eq!(selected(&a), Vec::<u32>::new());
    }

    #[test]
    fn a_speaker_keeps_its_place_number_while_others_come_and_go() {
        let t0 = Instant::now();
        let mut a = AudibleSpeakers::default();
        a.update(
            t0,
            3,
            3,
            &[talking(1, 30.0), talking(2, 30.0), talking(3, 30.0)],
        );
        let place_of_3 = a.place_of(3);
        // 1 leaves, 2 falls silent: 4 and 5 take those places, 3 stays where it was.
        let t1 = t0 + Duration::from_millis(100);
        a.update(t1, 3, 3, &[silent(2), talking(3, 30.0), talking(4, 30.0)]);
        assert_eq!(a.place_of(3), place_of_3);
        a.update(
            t1,
            3,
            3,
            &[talking(3, 30.0), talking(4, 30.0), talking(5, 30.0)],
        );
        assert_eq!(a.place_of(3), place_of_3);
        assert_eq!(selected(&a), vec![3, 4, 5]);
        let places: Vec<Option<u32>> = (0..3).map(|i| a.at(i)).collect();
        assert!(places.iter().all(Option::is_some), "{places:?}");
    }

    #[test]
    fn a_new_speaker_takes_a_place_everyone_hears_before_the_spare() {
        let t0 = Instant::now();
        let mut a = AudibleSpeakers::default();
        // Two places everyone hears, one spare.
        a.update(t0, 3, 2, &[talking(1, 30.0), talking(2, 30.0)]);
        let t1 = t0 + Duration::from_millis(100);
        a.update(t1, 3, 2, &[talking(1, 30.0), silent(2), talking(3, 30.0)]);
        assert!(
            a.place_of(3).is_some_and(|p| p < 2),
            "3 is heard by everyone"
        );
        assert_eq!(a.place_of(2), None, "silent 2 gave its place up");
    }

    #[test]
    fn a_speaker_on_the_spare_moves_up_when_a_place_everyone_hears_falls_silent() {
        let t0 = Instant::now();
        let mut a = AudibleSpeakers::default();
        a.update(
            t0,
            3,
            2,
            &[talking(1, 30.0), talking(2, 30.0), talking(3, 30.0)],
        );
        assert_eq!(a.place_of(3), Some(2), "the third speaker is on the spare");
        let t1 = t0 + Duration::from_millis(100);
        assert!(a.update(t1, 3, 2, &[talking(1, 30.0), silent(2), talking(3, 30.0)]));
        assert!(a.place_of(3).is_some_and(|p| p < 2), "3 moved up");
        assert_eq!(
            a.place_of(2),
            Some(2),
            "2 holds the spare while nobody needs it"
        );
    }
}
