//! Per-subscriber RTP sequence number and timestamp rewriting.
//!
//! Every subscription sends under its own SSRC, so a receiver sees one continuous stream per
//! m-line no matter when it joined. When the publisher's stream restarts (new SSRC, or a jump
//! from a restarted encoder), the output continues from where it was instead of jumping, which
//! would make the receiver's jitter buffer discard or stall. When an audio slot passes to
//! another speaker, or resumes after carrying nothing for a while, the output goes on with
//! the next sequence number and a timestamp moved by the real time that passed: to the
//! receiver that is a pause in speech (as with DTX), not lost packets to conceal.

/// Maps a publisher's (ssrc, seq, timestamp) into one subscriber's continuous stream.
#[derive(Debug, Clone)]
pub struct SequenceRewriter {
    state: Option<State>,
    /// The next packet comes from another speaker ([`SequenceRewriter::switch_source`]), this
    /// many timestamp units after the last one sent.
    switched: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    source_ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
    last_out_seq: u16,
    last_out_ts: u32,
    last_in_seq: u16,
}

/// A sequence jump larger than this (either way) is treated as a restart of the source.
const MAX_SEQ_JUMP: u16 = 3000;
/// Timestamp step assumed across a restart: one 20 ms Opus frame at 48 kHz.
const RESTART_TS_STEP: u32 = 960;

impl Default for SequenceRewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl SequenceRewriter {
    pub fn new() -> Self {
        Self {
            state: None,
            switched: None,
        }
    }

    /// The next packet starts another source on this stream (an audio slot given to another
    /// speaker) after `elapsed_ts` timestamp units of real time (48 kHz). The output continues
    /// at the next sequence number and moves its timestamp on by that time, so the receiver's
    /// jitter buffer sees a pause in one continuous stream and keeps its timing.
    pub fn switch_source(&mut self, elapsed_ts: u32) {
        self.switched = Some(elapsed_ts.max(RESTART_TS_STEP));
    }

    /// Rewrites one packet's header fields. `first_seq`/`first_ts` pick where a fresh output
    /// stream starts (random in production, fixed in tests).
    pub fn rewrite(
        &mut self,
        ssrc: u32,
        seq: u16,
        ts: u32,
        first_seq: u16,
        first_ts: u32,
    ) -> (u16, u32) {
        let state = match self.state {
            None => State {
                source_ssrc: ssrc,
                seq_offset: first_seq.wrapping_sub(seq),
                ts_offset: first_ts.wrapping_sub(ts),
                last_out_seq: first_seq.wrapping_sub(1),
                last_out_ts: first_ts,
                last_in_seq: seq.wrapping_sub(1),
            },
            Some(s) => {
                let jump = seq.wrapping_sub(s.last_in_seq);
                let restarted = self.switched.is_some()
                    || s.source_ssrc != ssrc
                    || (jump > MAX_SEQ_JUMP && jump < u16::MAX - MAX_SEQ_JUMP);
                if restarted {
                    // Continue right after the last packet we sent.
                    let next_seq = s.last_out_seq.wrapping_add(1);
                    let step = self.switched.unwrap_or(RESTART_TS_STEP);
                    let next_ts = s.last_out_ts.wrapping_add(step);
                    State {
                        source_ssrc: ssrc,
                        seq_offset: next_seq.wrapping_sub(seq),
                        ts_offset: next_ts.wrapping_sub(ts),
                        last_in_seq: seq.wrapping_sub(1),
                        ..s
                    }
                } else {
                    s
                }
            }
        };
        self.switched = None;
        let out_seq = seq.wrapping_add(state.seq_offset);
        let out_ts = ts.wrapping_add(state.ts_offset);
        // Only advance "last" on packets that move forward; a late (reordered) packet keeps
        // its mapped number so the receiver can still slot it in.
        let forward = seq.wrapping_sub(state.last_in_seq) < u16::MAX / 2;
        self.state = Some(if forward {
            State {
                last_out_seq: out_seq,
                last_out_ts: out_ts,
                last_in_seq: seq,
                ..state
            }
        } else {
            state
        });
        (out_seq, out_ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_keeps_its_spacing_from_the_chosen_start() {
        let mut r = SequenceRewriter::new();
        assert_eq!(r.rewrite(1, 500, 10_000, 100, 7), (100, 7));
        assert_eq!(r.rewrite(1, 501, 10_960, 100, 7), (101, 967));
        // A DTX gap: timestamps jump, sequence numbers don't; both are kept.
        assert_eq!(r.rewrite(1, 502, 30_000, 100, 7), (102, 20_007));
    }

    #[test]
    fn wrapping_sequence_numbers_stay_continuous() {
        let mut r = SequenceRewriter::new();
        assert_eq!(r.rewrite(1, u16::MAX, 0, 10, 0).0, 10);
        assert_eq!(r.rewrite(1, 0, 960, 10, 0).0, 11);
        assert_eq!(r.rewrite(1, 1, 1920, 10, 0).0, 12);
    }

    #[test]
    fn a_restarted_source_continues_the_output_without_a_jump() {
        let mut r = SequenceRewriter::new();
        r.rewrite(1, 100, 1000, 0, 0);
        let (seq, ts) = r.rewrite(1, 101, 1960, 0, 0);
        assert_eq!((seq, ts), (1, 960));
        // New SSRC with unrelated numbering.
        assert_eq!(r.rewrite(2, 40_000, 123_456, 0, 0), (2, 1920));
        assert_eq!(r.rewrite(2, 40_001, 124_416, 0, 0), (3, 2880));
        // Same SSRC but a huge jump (encoder restart).
        assert_eq!(r.rewrite(2, 10, 5, 0, 0), (4, 3840));
    }

    #[test]
    fn a_switch_to_another_speaker_continues_the_numbering_and_keeps_real_time() {
        let mut r = SequenceRewriter::new();
        assert_eq!(r.rewrite(1, 100, 0, 0, 0), (0, 0));
        assert_eq!(r.rewrite(1, 101, 960, 0, 0), (1, 960));
        // 500 ms later another speaker (whose numbers mean nothing here) gets the slot.
        r.switch_source(24_000);
        assert_eq!(r.rewrite(2, 7, 555, 0, 0), (2, 24_960));
        assert_eq!(r.rewrite(2, 8, 1_515, 0, 0), (3, 25_920));
        // A switch straight back, with the same SSRC as before: still a switch.
        r.switch_source(0);
        assert_eq!(r.rewrite(1, 150, 48_000, 0, 0), (4, 26_880));
    }

    #[test]
    fn a_late_packet_maps_to_its_own_slot_without_moving_the_stream() {
        let mut r = SequenceRewriter::new();
        r.rewrite(1, 10, 0, 0, 0);
        r.rewrite(1, 12, 1920, 0, 0);
        assert_eq!(r.rewrite(1, 11, 960, 0, 0), (1, 960));
        assert_eq!(r.rewrite(1, 13, 2880, 0, 0), (3, 2880));
    }
}
