//! A short reorder buffer in front of the decoder. On a link that swaps neighbouring packets
//! the decoder would conceal the first one as lost and then drop it as late; holding a packet
//! behind a gap for up to [`REORDER_DEPTH`] more packets (60 ms) lets the late one slot back
//! in. In-order packets pass straight through, so a clean link pays nothing.

/// Packets held behind a gap before it is given up as loss.
pub const REORDER_DEPTH: usize = 3;

/// One RTP packet's decoder input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpAudio {
    pub sequence: u16,
    pub rtp_timestamp: u32,
    pub payload: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct ReorderBuffer {
    /// The sequence number the decoder wants next.
    next: Option<u16>,
    /// Packets after a gap, in sequence order.
    held: Vec<RtpAudio>,
    late: u64,
}

impl ReorderBuffer {
    /// Takes a packet; returns those that can go to the decoder now, in order.
    pub fn push(&mut self, packet: RtpAudio) -> Vec<RtpAudio> {
        let next = *self.next.get_or_insert(packet.sequence);
        let offset = packet.sequence.wrapping_sub(next);
        if offset > u16::MAX / 2 {
            // Behind what the decoder already has: too late (or a duplicate).
            self.late += 1;
            return Vec::new();
        }
        if self.held.iter().any(|p| p.sequence == packet.sequence) {
            return Vec::new();
        }
        let at = self
            .held
            .partition_point(|p| p.sequence.wrapping_sub(next) < offset);
        self.held.insert(at, packet);
        let mut out = Vec::new();
        while let Some(first) = self.held.first() {
            let in_order = Some(first.sequence) == self.next;
            if !in_order && self.held.len() <= REORDER_DEPTH {
                break;
            }
            // In order, or waited long enough: the gap is loss, for the decoder to conceal.
            let packet = self.held.remove(0);
            self.next = Some(packet.sequence.wrapping_add(1));
            out.push(packet);
        }
        out
    }

    /// Whether `sequence` is exactly the next packet with nothing held: the caller may then
    /// decode it straight from its own buffer (the common case costs no copy). Counts it as
    /// passed.
    pub fn pass_in_order(&mut self, sequence: u16) -> bool {
        let in_order = self.held.is_empty() && self.next.is_none_or(|n| n == sequence);
        if in_order {
            self.next = Some(sequence.wrapping_add(1));
        }
        in_order
    }

    /// Everything held, in order (the track went quiet or ended).
    pub fn drain(&mut self) -> Vec<RtpAudio> {
        let out = std::mem::take(&mut self.held);
        if let Some(last) = out.last() {
            self.next = Some(last.sequence.wrapping_add(1));
        }
        out
    }

    /// Packets that came after the decoder had moved past them.
    pub fn late(&self) -> u64 {
        self.late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(sequence: u16) -> RtpAudio {
        RtpAudio {
            sequence,
            rtp_timestamp: u32::from(sequence) * 960,
            payload: vec![sequence as u8],
        }
    }

    fn feed(buffer: &mut ReorderBuffer, order: &[u16]) -> Vec<u16> {
        order
            .iter()
            .flat_map(|&s| buffer.push(packet(s)))
            .map(|p| p.sequence)
            .collect()
    }

    #[test]
    fn in_order_packets_pass_at_once() {
        let mut buffer = ReorderBuffer::default();
        for s in 10..20 {
            assert_eq!(feed(&mut buffer, &[s]), vec![s]);
        }
    }

    #[test]
    fn swapped_neighbours_come_out_in_order() {
        let mut buffer = ReorderBuffer::default();
        let out = feed(&mut buffer, &[1, 3, 2, 4, 6, 5, 7]);
        assert_eq!(out, vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(buffer.late(), 0);
    }

    #[test]
    fn a_lost_packet_is_given_up_after_the_depth_and_a_later_arrival_is_late() {
        let mut buffer = ReorderBuffer::default();
        assert_eq!(feed(&mut buffer, &[1, 3, 4, 5]), vec![1]);
        assert_eq!(feed(&mut buffer, &[6]), vec![3, 4, 5, 6]);
        assert_eq!(feed(&mut buffer, &[2]), Vec::<u16>::new());
        assert_eq!(buffer.late(), 1);
    }

    #[test]
    fn only_the_next_packet_with_nothing_held_passes_straight_through() {
        let mut buffer = ReorderBuffer::default();
        assert!(buffer.pass_in_order(1) && buffer.pass_in_order(2));
        assert!(!buffer.pass_in_order(4), "a gap");
        assert_eq!(feed(&mut buffer, &[4]), Vec::<u16>::new(), "held behind 3");
        assert!(!buffer.pass_in_order(3), "something is held");
        assert_eq!(feed(&mut buffer, &[3]), vec![3, 4]);
        assert!(buffer.pass_in_order(5));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut buffer = ReorderBuffer::default();
        let out = feed(&mut buffer, &[65534, 0, 65535, 1]);
        assert_eq!(out, vec![65534, 65535, 0, 1]);
    }

    #[test]
    fn drain_hands_over_what_waits_behind_a_gap() {
        let mut buffer = ReorderBuffer::default();
        assert_eq!(feed(&mut buffer, &[1, 3, 4]), vec![1]);
        let drained: Vec<u16> = buffer.drain().iter().map(|p| p.sequence).collect();
        assert_eq!(drained, vec![3, 4]);
        assert_eq!(feed(&mut buffer, &[5]), vec![5]);
    }
}
