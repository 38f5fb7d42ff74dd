//! When each peer's WebRTC stack next wants its timer driven, kept in order.
//!
//! Asking every peer's `rtc` stack for its next timeout walks its handler chain; a shard that
//! did it for every peer on every loop iteration, and drove every peer whenever any one was
//! due, spent time in proportion to packets x peers, which a room of hundreds can't afford.
//! Here a peer's deadline is asked again only after something touched that peer (it is
//! *stale*), and the earliest one and the ones due come out of an ordered set.
//!
//! What may stay stale: forwarding a packet to a listener can arm that listener's RTCP sender
//! report timer (armed one report interval after its first packet), and nothing else. The shard
//! marks every peer stale once per tick, so such a timer is seen within a tick of being armed,
//! and no forwarded packet costs a timer lookup.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use crate::PeerId;

/// Each peer's next deadline, and the peers whose deadline must be asked again.
#[derive(Debug, Default)]
pub struct Deadlines {
    ordered: BTreeSet<(Instant, PeerId)>,
    of: HashMap<PeerId, Instant>,
    stale: HashSet<PeerId>,
}

impl Deadlines {
    /// Something happened to `peer` that may have moved its deadline.
    pub fn touch(&mut self, peer: PeerId) {
        self.stale.insert(peer);
    }

    /// Every peer in `peers` is to be asked again (once per tick).
    pub fn touch_all(&mut self, peers: impl IntoIterator<Item = PeerId>) {
        self.stale.extend(peers);
    }

    /// The peer is gone.
    pub fn remove(&mut self, peer: PeerId) {
        self.stale.remove(&peer);
        if let Some(at) = self.of.remove(&peer) {
            self.ordered.remove(&(at, peer));
        }
    }

    /// Asks each stale peer for its deadline (`None` for a peer gone or without one).
    pub fn refresh(&mut self, mut deadline_of: impl FnMut(PeerId) -> Option<Instant>) {
        for peer in std::mem::take(&mut self.stale) {
            if let Some(at) = self.of.remove(&peer) {
                self.ordered.remove(&(at, peer));
            }
            if let Some(at) = deadline_of(peer) {
                self.of.insert(peer, at);
                self.ordered.insert((at, peer));
            }
        }
    }

    /// The earliest deadline (call [`Self::refresh`] first).
    pub fn earliest(&self) -> Option<Instant> {
        self.ordered.first().map(|(at, _)| *at)
    }

    /// Takes the peers due at `now` out of the set, earliest first. They are stale until
    /// driven and refreshed.
    pub fn take_due(&mut self, now: Instant) -> Vec<PeerId> {
        let mut due = Vec::new();
        while let Some(&(at, peer)) = self.ordered.first() {
            if at > now {
                break;
            }
            self.ordered.pop_first();
            self.of.remove(&peer);
            self.stale.insert(peer);
            due.push(peer);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn only_stale_peers_are_asked_and_the_earliest_comes_first() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.touch_all([PeerId(1), PeerId(2), PeerId(3)]);
        d.refresh(|p| Some(at(t0, 100 * p.0)));
        assert_eq!(d.earliest(), Some(at(t0, 100)));
        let mut asked = Vec::new();
        d.touch(PeerId(3));
        d.refresh(|p| {
            asked.push(p);
            Some(at(t0, 50))
        });
        assert_eq!(asked, vec![PeerId(3)], "untouched peers are not asked");
        assert_eq!(d.earliest(), Some(at(t0, 50)), "peer 3's deadline moved up");
    }

    #[test]
    fn due_peers_come_out_in_order_and_are_asked_again() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.touch_all([PeerId(1), PeerId(2), PeerId(3)]);
        d.refresh(|p| Some(at(t0, [0, 30, 10, 500][p.0 as usize])));
        assert_eq!(d.take_due(at(t0, 40)), vec![PeerId(2), PeerId(1)]);
        assert_eq!(d.earliest(), Some(at(t0, 500)));
        let mut asked = Vec::new();
        d.refresh(|p| {
            asked.push(p);
            None
        });
        asked.sort();
        assert_eq!(asked, vec![PeerId(1), PeerId(2)]);
        assert_eq!(d.of.len(), 1, "peers without a timer are not kept");
    }

    #[test]
    fn a_removed_peer_is_never_due() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.touch_all([PeerId(1), PeerId(2)]);
        d.refresh(|_| Some(t0));
        d.remove(PeerId(1));
        d.touch(PeerId(2));
        d.remove(PeerId(2));
        d.refresh(|_| panic!("a removed peer is not asked"));
        assert!(d.take_due(at(t0, 1)).is_empty());
        assert!(d.of.is_empty() && d.ordered.is_empty());
    }
}
