//! The media tap: every participant's raw Opus payloads, for the transcriber.
//!
//! A tap is a bounded channel filled with `try_send` from the forwarding path. A consumer that
//! falls behind loses packets (counted per tap and in `sfu_tap_dropped_packets_total`); it can
//! never slow forwarding down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{PeerId, RoomId};

/// One Opus packet as it arrived from a participant.
#[derive(Debug, Clone)]
pub struct TapPacket {
    pub room: RoomId,
    pub peer: PeerId,
    /// The publisher's own RTP sequence number and timestamp (48 kHz), for loss and gap
    /// detection by the consumer.
    pub sequence: u16,
    pub rtp_timestamp: u32,
    pub arrival: Instant,
    /// Whether the room hears this packet: always in a small room, and in a large room only
    /// while its speaker holds an audio slot. A transcriber that can't keep up drops what
    /// nobody heard first.
    pub heard: bool,
    pub payload: Bytes,
}

/// The receiving end of a tap. Dropping it ends the subscription.
#[derive(Debug)]
pub struct TapReceiver {
    rx: mpsc::Receiver<TapPacket>,
    dropped: Arc<AtomicU64>,
}

impl TapReceiver {
    pub async fn recv(&mut self) -> Option<TapPacket> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Option<TapPacket> {
        self.rx.try_recv().ok()
    }

    /// Packets lost because this consumer was too slow.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The sending end, held by the shard.
#[derive(Debug)]
pub(crate) struct TapSender {
    pub(crate) room: RoomId,
    tx: mpsc::Sender<TapPacket>,
    dropped: Arc<AtomicU64>,
}

pub(crate) fn channel(room: RoomId, capacity: usize) -> (TapSender, TapReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    (
        TapSender {
            room,
            tx,
            dropped: dropped.clone(),
        },
        TapReceiver { rx, dropped },
    )
}

impl TapSender {
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Offers a packet; returns false once the receiver is gone (the tap can be removed).
    pub(crate) fn offer(&self, packet: TapPacket) -> bool {
        match self.tx.try_send(packet) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("sfu_tap_dropped_packets_total").increment(1);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16) -> TapPacket {
        TapPacket {
            room: RoomId(1),
            peer: PeerId(1),
            sequence: seq,
            rtp_timestamp: 0,
            arrival: Instant::now(),
            heard: true,
            payload: Bytes::from_static(b"opus"),
        }
    }

    #[test]
    fn a_full_tap_drops_and_counts_instead_of_blocking() {
        let (tx, mut rx) = channel(RoomId(1), 2);
        for seq in 0..5 {
            assert!(tx.offer(packet(seq)));
        }
        assert_eq!(rx.dropped(), 3);
        assert_eq!(rx.try_recv().map(|p| p.sequence), Some(0));
        assert_eq!(rx.try_recv().map(|p| p.sequence), Some(1));
        assert!(rx.try_recv().is_none());
        drop(rx);
        assert!(
            !tx.offer(packet(9)),
            "a closed tap reports itself for removal"
        );
    }
}
