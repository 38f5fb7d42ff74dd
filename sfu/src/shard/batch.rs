//! Datagrams out in batches: what one turn of the shard loop produced leaves in one
//! `sendmmsg(2)` per [`BATCH`] datagrams instead of a `sendto(2)` each. In a conference every
//! packet in is one packet out per listener, and the per-call cost of `sendto` was ~38 % of
//! the forward path (`bench/reports/forwarding-profile.md`).

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per system call (Linux takes up to 1024; a turn rarely makes more than this).
pub(super) const BATCH: usize = 64;

/// Datagrams waiting to be sent, in order.
pub(super) struct SendBatch {
    queue: Vec<(SocketAddr, BytesMut)>,
}

impl SendBatch {
    pub(super) fn new() -> Self {
        Self {
            queue: Vec::with_capacity(BATCH),
        }
    }

    /// Queues one datagram; returns whether the batch is full (time to [`Self::flush`]).
    pub(super) fn push(&mut self, to: SocketAddr, data: BytesMut) -> bool {
        self.queue.push((to, data));
        self.queue.len() >= BATCH
    }

    /// Sends everything queued. A datagram the kernel refuses (an unreachable address) is
    /// logged and skipped, as a failed `sendto` was; a full socket buffer is waited out.
    pub(super) async fn flush(&mut self, socket: &UdpSocket) {
        let mut next = 0;
        while next < self.queue.len() {
            let pending = &self.queue[next..];
            let sent = socket.try_io(Interest::WRITABLE, || {
                #[cfg(target_os = "linux")]
                {
                    send_many(socket, pending)
                }
                #[cfg(not(target_os = "linux"))]
                {
                    let (to, data) = &pending[0];
                    socket.try_send_to(data, *to).map(|_| 1)
                }
            });
            match sent {
                Ok(count) => {
                    for (_, data) in &pending[..count] {
                        metrics::counter!("sfu_packets_out_total").increment(1);
                        metrics::counter!("sfu_bytes_out_total").increment(data.len() as u64);
                    }
                    next += count;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    if socket.writable().await.is_err() {
                        break;
                    }
                }
                Err(err) => {
                    tracing::debug!(addr = %pending[0].0, error = %err, "send failed");
                    next += 1;
                }
            }
        }
        self.queue.clear();
    }
}

/// One `sendmmsg` of up to [`BATCH`] of `pending`; returns how many the kernel took (at
/// least one: an error on the first one is returned as the error).
#[cfg(target_os = "linux")]
fn send_many(socket: &UdpSocket, pending: &[(SocketAddr, BytesMut)]) -> io::Result<usize> {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};

    let pending = &pending[..pending.len().min(BATCH)];
    let slices: Vec<[IoSlice<'_>; 1]> = pending
        .iter()
        .map(|(_, data)| [IoSlice::new(data)])
        .collect();
    let addrs: Vec<Option<SockaddrStorage>> = pending
        .iter()
        .map(|(to, _)| Some(SockaddrStorage::from(*to)))
        .collect();
    let cmsgs: [ControlMessage<'_>; 0] = [];
    // Made per call: its raw pointers make it unfit to live across the loop's awaits.
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(pending.len(), None);
    let sent = sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        &slices,
        &addrs,
        cmsgs,
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    Ok(sent.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_arrives_whole_and_in_order_past_a_refused_datagram() {
        let from = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let to = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = to.local_addr().expect("addr");
        let mut batch = SendBatch::new();
        // More than one call's worth, with one the kernel refuses (port 0) in the middle.
        for i in 0u16..150 {
            if i == 70 {
                batch.push(SocketAddr::from(([127, 0, 0, 1], 0)), BytesMut::from("x"));
            }
            if batch.push(addr, BytesMut::from(&i.to_be_bytes()[..])) {
                batch.flush(&from).await;
            }
        }
        batch.flush(&from).await;
        let mut buf = [0u8; 16];
        for i in 0u16..150 {
            let (n, _) =
                tokio::time::timeout(std::time::Duration::from_secs(2), to.recv_from(&mut buf))
                    .await
                    .expect("every datagram arrives")
                    .expect("recv");
            assert_eq!(&buf[..n], &i.to_be_bytes()[..], "in order");
        }
    }
}
