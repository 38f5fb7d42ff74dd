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
struct Slot<K> {
    key: K,
    since: Instant,
}

/// The up to K publishers a large room forwards.
#[derive(Debug, Clone)]
pub struct AudibleSpeakers<K> {
    slots: Vec<Slot<K>>,
}

impl<K> Default for AudibleSpeakers<K> {
    fn default() -> Self {
        Self { slots: Vec::new() }
    }
}

impl<K: Copy + PartialEq> AudibleSpeakers<K> {
    /// Whether `key` holds one of the places.
    pub fn contains(&self, key: K) -> bool {
        self.slots.iter().any(|s| s.key == key)
    }

    /// The selected participants, in the order they got their place.
    pub fn selected(&self) -> impl Iterator<Item = K> + '_ {
        self.slots.iter().map(|s| s.key)
    }

    /// Forgets a participant who left.
    pub fn remove(&mut self, key: K) {
        self.slots.retain(|s| s.key != key);
    }

    /// Updates the selection from the room's participants (`limit` places). Returns whether
    /// it changed.
    pub fn update(&mut self, now: Instant, limit: usize, room: &[Candidate<K>]) -> bool {
        let find = |key: K| room.iter().find(|c| c.key == key);
        let before = self.slots.len();
        let mut changed = false;
        // Whoever left the room (or a shrunk limit) frees a place.
        self.slots.retain(|s| find(s.key).is_some());
        self.slots.truncate(limit);
        changed |= self.slots.len() != before;

        let mut waiting: Vec<&Candidate<K>> = room
            .iter()
            .filter(|c| c.speaking && !self.contains(c.key))
            .collect();
        waiting.sort_by(|a, b| a.level.total_cmp(&b.level));
        for candidate in waiting {
            let slot = Slot {
                key: candidate.key,
                since: now,
            };
            if self.slots.len() < limit {
                self.slots.push(slot);
                changed = true;
                continue;
            }
            // A place held by someone silent goes first: the one holding it longest.
            let silent = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| find(s.key).is_some_and(|c| !c.speaking))
                .min_by_key(|(_, s)| s.since)
                .map(|(i, _)| i);
            if let Some(i) = silent {
                self.slots[i] = slot;
                changed = true;
                continue;
            }
            // Everyone selected is speaking: only a much louder voice takes the quietest place.
            let quietest = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| find(s.key).map(|c| (i, s.since, c.level)))
                .max_by(|a, b| a.2.total_cmp(&b.2));
            if let Some((i, since, level)) = quietest {
                if candidate.level + SWAP_MARGIN_DB < level
                    && now.saturating_duration_since(since) >= MIN_HOLD
                {
                    self.slots[i] = slot;
                    changed = true;
                }
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
        assert!(a.update(t0, 3, &room));
        assert_eq!(selected(&a), vec![1, 3, 5]);
        assert!(!a.update(t0, 3, &room), "the same room changes nothing");
    }

    #[test]
    fn a_continuing_speaker_keeps_the_place_against_a_slightly_louder_newcomer() {
        let t0 = Instant::now();
        let mut a = AudibleSpeakers::default();
        a.update(t0, 1, &[talking(1, 30.0)]);
        let later = t0 + MIN_HOLD * 3;
        assert!(!a.update(later, 1, &[talking(1, 30.0), talking(2, 25.0)]));
        assert_eq!(selected(&a), vec![1]);
        // Much louder, but the place was only just taken: still no switch.
        let mut b = AudibleSpeakers::default();
        b.update(t0, 1, &[talking(1, 40.0)]);
        assert!(!b.update(t0 + MIN_HOLD / 2, 1, &[talking(1, 40.0), talking(2, 20.0)]));
        // Held long enough: the much louder voice takes it.
        assert!(b.update(t0 + MIN_HOLD, 1, &[talking(1, 40.0), talking(2, 20.0)]));
        assert_eq!(selected(&b), vec![2]);
    }

    #[test]
    fn a_new_speaker_takes_the_place_of_one_who_fell_silent_at_once() {
        let t0 = Instant::now();
        let mut a = AudibleSpeakers::default();
        a.update(t0, 2, &[talking(1, 30.0), talking(2, 30.0)]);
        let room = [talking(1, 30.0), silent(2), talking(3, 35.0)];
        assert!(a.update(t0 + Duration::from_millis(100), 2, &room));
        assert_eq!(selected(&a), vec![1, 3]);
    }

    #[test]
    fn silent_speakers_keep_their_place_while_nobody_needs_it() {
        let t0 = Instant::now();
        let mut a = AudibleSpeakers::default();
        a.update(t0, 3, &[talking(1, 30.0), talking(2, 30.0)]);
        assert!(!a.update(t0 + MIN_HOLD, 3, &[silent(1), silent(2), silent(3)]));
        assert_eq!(selected(&a), vec![1, 2]);
    }

    #[test]
    fn leaving_frees_the_place() {
        let t0 = Instant::now();
        let mut a = AudibleSpeakers::default();
        a.update(t0, 1, &[talking(1, 30.0)]);
        assert!(a.update(t0, 1, &[talking(2, 30.0)]));
        assert_eq!(selected(&a), vec![2]);
        a.remove(2);
        assert_eq!(selected(&a), Vec::<u32>::new());
    }
}
