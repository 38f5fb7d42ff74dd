//! Speaking state from RFC 6464 audio levels, and the room's active speaker.
//!
//! Levels are -dBov (0 loudest, 127 silence). A participant starts speaking when the smoothed
//! level rises above [`START_LEVEL`] and stops after [`HANGOVER`] below [`STOP_LEVEL`]; the gap
//! between the thresholds and the hangover keep the indicator from flickering between words.

use std::time::{Duration, Instant};

/// Louder than -45 dBov starts speech.
pub const START_LEVEL: f32 = 45.0;
/// Quieter than -55 dBov counts as silence.
pub const STOP_LEVEL: f32 = 55.0;
/// Silence this long ends speech.
pub const HANGOVER: Duration = Duration::from_millis(600);
/// A new loudest speaker must hold for this long before the active speaker changes.
pub const ACTIVE_SPEAKER_HOLD: Duration = Duration::from_millis(300);

/// One participant's speaking detector.
#[derive(Debug, Clone)]
pub struct SpeakingDetector {
    /// Exponentially smoothed level, -dBov.
    smoothed: f32,
    speaking: bool,
    last_loud: Option<Instant>,
}

impl Default for SpeakingDetector {
    fn default() -> Self {
        Self {
            smoothed: 127.0,
            speaking: false,
            last_loud: None,
        }
    }
}

impl SpeakingDetector {
    /// Feeds one packet's level. Returns `Some(new_state)` when speaking starts or stops.
    pub fn handle_level(&mut self, now: Instant, level: u8) -> Option<bool> {
        // ~5-packet smoothing at 20 ms packets: reacts within ~100 ms.
        self.smoothed += (f32::from(level.min(127)) - self.smoothed) * 0.3;
        if self.smoothed <= START_LEVEL || (self.speaking && self.smoothed <= STOP_LEVEL) {
            self.last_loud = Some(now);
        }
        self.update(now)
    }

    /// Ends speech when packets stop arriving (DTX sends none during silence).
    pub fn handle_timeout(&mut self, now: Instant) -> Option<bool> {
        self.update(now)
    }

    fn update(&mut self, now: Instant) -> Option<bool> {
        let loud_recently = self
            .last_loud
            .is_some_and(|t| now.duration_since(t) < HANGOVER);
        let speaking = if self.speaking {
            loud_recently
        } else {
            self.smoothed <= START_LEVEL
        };
        if speaking == self.speaking {
            return None;
        }
        self.speaking = speaking;
        if !speaking {
            self.smoothed = 127.0;
        }
        Some(speaking)
    }

    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// The smoothed level (-dBov, lower is louder).
    pub fn level(&self) -> f32 {
        self.smoothed
    }
}

/// Picks the room's active speaker: the loudest speaking participant, held for a moment
/// before switching so short interjections don't steal the spotlight.
#[derive(Debug, Clone)]
pub struct ActiveSpeaker<K> {
    current: Option<K>,
    candidate: Option<(K, Instant)>,
}

impl<K> Default for ActiveSpeaker<K> {
    fn default() -> Self {
        Self {
            current: None,
            candidate: None,
        }
    }
}

impl<K: Copy + PartialEq> ActiveSpeaker<K> {
    /// `loudest` is the loudest currently speaking participant, if any. Returns the new active
    /// speaker when it changes. Silence keeps the last speaker active.
    pub fn update(&mut self, now: Instant, loudest: Option<K>) -> Option<K> {
        let Some(loudest) = loudest else {
            self.candidate = None;
            return None;
        };
        if self.current == Some(loudest) {
            self.candidate = None;
            return None;
        }
        match self.candidate {
            Some((k, since)) if k == loudest => {
                if self.current.is_none() || now.duration_since(since) >= ACTIVE_SPEAKER_HOLD {
                    self.current = Some(loudest);
                    self.candidate = None;
                    return Some(loudest);
                }
            }
            _ => {
                self.candidate = Some((loudest, now));
                if self.current.is_none() {
                    self.current = Some(loudest);
                    self.candidate = None;
                    return Some(loudest);
                }
            }
        }
        None
    }

    pub fn current(&self) -> Option<K> {
        self.current
    }

    /// Forgets a participant who left.
    pub fn remove(&mut self, k: K) {
        if self.current == Some(k) {
            self.current = None;
        }
        if self.candidate.is_some_and(|(c, _)| c == k) {
            self.candidate = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(20);

    #[test]
    fn speech_starts_within_a_few_packets_and_ends_after_the_hangover() {
        let t0 = Instant::now();
        let mut d = SpeakingDetector::default();
        let mut started_at = None;
        for i in 0..10u32 {
            if d.handle_level(t0 + FRAME * i, 25) == Some(true) {
                started_at = Some(i);
                break;
            }
        }
        assert!(started_at.is_some_and(|i| i <= 5), "{started_at:?}");
        // Silence: still speaking inside the hangover, not after.
        let quiet_from = t0 + FRAME * 10;
        assert_eq!(d.handle_level(quiet_from, 127), None);
        assert_eq!(d.handle_timeout(quiet_from + HANGOVER / 2), None);
        assert_eq!(d.handle_timeout(quiet_from + HANGOVER + FRAME), Some(false));
    }

    #[test]
    fn background_noise_is_not_speech() {
        let t0 = Instant::now();
        let mut d = SpeakingDetector::default();
        for i in 0..100u32 {
            assert_eq!(d.handle_level(t0 + FRAME * i, 70), None);
        }
    }

    #[test]
    fn the_active_speaker_switches_only_after_the_hold() {
        let t0 = Instant::now();
        let mut a = ActiveSpeaker::default();
        assert_eq!(
            a.update(t0, Some(1)),
            Some(1),
            "the first speaker is active at once"
        );
        assert_eq!(a.update(t0 + FRAME, Some(2)), None);
        assert_eq!(
            a.update(t0 + FRAME * 5, Some(1)),
            None,
            "a short interjection doesn't switch"
        );
        assert_eq!(a.update(t0 + FRAME * 6, Some(2)), None);
        assert_eq!(
            a.update(t0 + FRAME * 6 + ACTIVE_SPEAKER_HOLD, Some(2)),
            Some(2)
        );
        assert_eq!(
            a.update(t0 + Duration::from_secs(5), None),
            None,
            "silence keeps the last one"
        );
        assert_eq!(a.current(), Some(2));
    }
}
