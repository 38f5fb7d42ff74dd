//! Which other nodes on the bus are alive. Every node publishes a heartbeat; a node not
//! heard from for the expiry (SIGKILL, a crashed box, a cut network) has its participants
//! cleared from every room on this node, so nobody is left looking at a ghost they can't
//! hear. A node that comes back with a new incarnation (it restarted) has its old
//! participants cleared at once.
//!
//! A node only expires others while its own heartbeats come back over the bus: when the bus
//! itself is down, silence says nothing about the others, and clearing their participants
//! would empty every cross-node call for the length of a Redis restart.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

/// A random id for this run of the node, so a restart under the same tag is told apart.
pub fn new_incarnation() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[derive(Debug)]
struct Peer {
    incarnation: Option<u64>,
    last_heard: Instant,
}

/// What this node has heard from the others.
#[derive(Debug)]
pub struct NodeLiveness {
    expiry: Duration,
    peers: HashMap<u32, Peer>,
    /// When this node's own heartbeat last came back over the bus.
    own_echo: Option<Instant>,
}

impl NodeLiveness {
    pub fn new(expiry: Duration) -> Self {
        Self {
            expiry,
            peers: HashMap::new(),
            own_echo: None,
        }
    }

    /// Anything from `node` (with its incarnation when it was a heartbeat). Returns true
    /// when the node restarted since it was last heard: its earlier participants are gone.
    pub fn heard(&mut self, node: u32, incarnation: Option<u64>, now: Instant) -> bool {
        let peer = self.peers.entry(node).or_insert(Peer {
            incarnation,
            last_heard: now,
        });
        peer.last_heard = now;
        match (peer.incarnation, incarnation) {
            (Some(known), Some(new)) if known != new => {
                peer.incarnation = Some(new);
                true
            }
            (None, Some(new)) => {
                peer.incarnation = Some(new);
                false
            }
            _ => false,
        }
    }

    /// This node's own heartbeat came back: the bus works. After a gap (the bus was down,
    /// or this node just started) every other node gets a full expiry to be heard again.
    pub fn own_heartbeat_returned(&mut self, now: Instant) {
        let after_gap = self
            .own_echo
            .is_none_or(|t| now.duration_since(t) > self.expiry);
        if after_gap {
            for peer in self.peers.values_mut() {
                peer.last_heard = peer.last_heard.max(now);
            }
        }
        self.own_echo = Some(now);
    }

    /// Nodes silent for longer than the expiry, forgotten as they are returned; none while
    /// this node's own heartbeats don't come back.
    pub fn expire(&mut self, now: Instant) -> Vec<u32> {
        let bus_works = self
            .own_echo
            .is_some_and(|t| now.duration_since(t) <= self.expiry);
        if !bus_works {
            return Vec::new();
        }
        let expiry = self.expiry;
        let dead: Vec<u32> = self
            .peers
            .iter()
            .filter(|(_, p)| now.duration_since(p.last_heard) > expiry)
            .map(|(node, _)| *node)
            .collect();
        for node in &dead {
            self.peers.remove(node);
        }
        dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPIRY: Duration = Duration::from_secs(15);

    #[test]
    fn a_silent_node_expires_once_and_a_talking_one_never() {
        let t0 = Instant::now();
        let mut nodes = NodeLiveness::new(EXPIRY);
        nodes.own_heartbeat_returned(t0);
        nodes.heard(2, Some(20), t0);
        nodes.heard(3, Some(30), t0);
        for s in 1..=16 {
            let now = t0 + Duration::from_secs(s);
            nodes.own_heartbeat_returned(now);
            nodes.heard(3, Some(30), now);
            let dead = nodes.expire(now);
            if s < 16 {
                assert!(dead.is_empty(), "at {s} s: {dead:?}");
            } else {
                assert_eq!(dead, vec![2]);
            }
        }
        assert!(
            nodes.expire(t0 + Duration::from_secs(17)).is_empty(),
            "once"
        );
    }

    #[test]
    fn nobody_expires_while_the_bus_itself_is_silent() {
        let t0 = Instant::now();
        let mut nodes = NodeLiveness::new(EXPIRY);
        nodes.own_heartbeat_returned(t0);
        nodes.heard(2, Some(20), t0);
        // Redis is down for a minute: neither our echo nor node 2 is heard.
        assert!(nodes.expire(t0 + Duration::from_secs(60)).is_empty());
        // Back: our echo returns, node 2 does not; it gets a full expiry to speak first.
        let back = t0 + Duration::from_secs(61);
        nodes.own_heartbeat_returned(back);
        assert!(nodes.expire(back).is_empty());
        let later = back + Duration::from_secs(16);
        nodes.own_heartbeat_returned(later - Duration::from_secs(1));
        assert_eq!(nodes.expire(later), vec![2]);
    }

    #[test]
    fn a_restart_under_the_same_tag_is_noticed() {
        let t0 = Instant::now();
        let mut nodes = NodeLiveness::new(EXPIRY);
        // A join arrives before the first heartbeat: no incarnation known yet.
        assert!(!nodes.heard(2, None, t0));
        assert!(!nodes.heard(2, Some(20), t0));
        assert!(!nodes.heard(2, Some(20), t0));
        assert!(nodes.heard(2, Some(21), t0), "new incarnation");
        assert!(!nodes.heard(2, None, t0));
    }

    #[test]
    fn incarnations_differ() {
        assert_ne!(new_incarnation(), new_incarnation());
    }
}
