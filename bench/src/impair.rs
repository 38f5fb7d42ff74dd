//! A lossy, reordering link for one client's media, applied where its datagrams leave and
//! arrive. This machine's kernel has no `netem` qdisc, so the impairment lives in the client
//! (the server under test sees exactly what a bad network would hand it).
//!
//! Only SRTP and SRTCP are touched (first byte 128..=191, RFC 7983): loss during the ICE
//! and DTLS handshakes only delays the join, which the recovery tests already cover.

use rand::Rng;

/// How bad the link is, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairment {
    /// Share of media datagrams dropped (0.0..=1.0).
    pub loss: f64,
    /// Share of media datagrams held back and delivered after the next one (a swap).
    pub reorder: f64,
}

impl Impairment {
    pub fn is_none(&self) -> bool {
        self.loss <= 0.0 && self.reorder <= 0.0
    }
}

/// One direction of the link: decides what becomes of each datagram.
#[derive(Debug)]
pub struct ImpairedLink<T> {
    pub impairment: Impairment,
    held: Option<T>,
    pub dropped: u64,
    pub reordered: u64,
}

impl<T> Default for ImpairedLink<T> {
    fn default() -> Self {
        Self {
            impairment: Impairment::default(),
            held: None,
            dropped: 0,
            reordered: 0,
        }
    }
}

/// Whether a datagram is SRTP or SRTCP rather than STUN or DTLS.
pub fn is_media(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| (128..=191).contains(b))
}

impl<T> ImpairedLink<T> {
    /// What to deliver now, in order, for a datagram that is (`media`) or isn't media.
    pub fn pass(&mut self, datagram: T, media: bool) -> Vec<T> {
        if !media || self.impairment.is_none() {
            return std::iter::once(datagram).chain(self.held.take()).collect();
        }
        let mut rng = rand::thread_rng();
        if rng.gen_bool(self.impairment.loss.clamp(0.0, 1.0)) {
            self.dropped += 1;
            return Vec::new();
        }
        if let Some(held) = self.held.take() {
            // The held datagram goes out after this one: the two arrive swapped.
            return vec![datagram, held];
        }
        if rng.gen_bool(self.impairment.reorder.clamp(0.0, 1.0)) {
            self.reordered += 1;
            self.held = Some(datagram);
            return Vec::new();
        }
        vec![datagram]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_link_passes_everything_in_order() {
        let mut link = ImpairedLink::default();
        let out: Vec<u32> = (0..100).flat_map(|i| link.pass(i, true)).collect();
        assert_eq!(out, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn a_bad_link_drops_about_its_share_and_swaps_neighbours() {
        let mut link = ImpairedLink {
            impairment: Impairment {
                loss: 0.1,
                reorder: 0.1,
            },
            ..Default::default()
        };
        let out: Vec<u32> = (0..10_000).flat_map(|i| link.pass(i, true)).collect();
        let lost = 10_000 - out.len();
        assert!((700..1300).contains(&lost), "lost {lost}");
        let swaps = out.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(swaps > 500, "swaps {swaps}");
        // A swap, not a shuffle: no datagram arrives behind more than one that was sent
        // after it (the held one goes out after the next datagram that isn't lost).
        let (mut first, mut second) = (None, None);
        for &x in &out {
            assert!(
                second.is_none_or(|s| s < x),
                "{x} arrived behind two later ones"
            );
            if first.is_none_or(|f| x > f) {
                (first, second) = (Some(x), first);
            } else if second.is_none_or(|s| x > s) {
                second = Some(x);
            }
        }
    }

    #[test]
    fn handshakes_are_never_touched() {
        let mut link = ImpairedLink {
            impairment: Impairment {
                loss: 1.0,
                reorder: 0.0,
            },
            ..Default::default()
        };
        assert_eq!(link.pass(7, false), vec![7]);
        assert!(is_media(&[0x80, 0]) && !is_media(&[0x16, 0]) && !is_media(&[0, 1]));
    }
}
