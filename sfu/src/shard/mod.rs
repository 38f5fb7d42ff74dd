//! A shard: one UDP socket, the peers pinned to it and their rooms, driven by one task.
//!
//! [`ShardCore`] (`core.rs`) is the sans-I/O part and decides everything; this module only
//! moves bytes and messages: datagrams between the socket and the core, frames between the
//! ICE-TCP connections it adopted (`crate::tcp`) and the core, [`Command`]s from the
//! [`crate::Sfu`] handle into the core's calls, and the core's events to each participant's
//! [`EventSender`].

mod core;
#[cfg(test)]
mod core_tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

pub use self::core::{Output, ShardCore};
use crate::tcp::TcpMessage;
use crate::{Command, EventSender, PeerId, SfuConfig, SfuError};

/// The handle to a running shard.
#[derive(Debug)]
pub struct ShardHandle {
    pub local_addr: SocketAddr,
    commands: mpsc::UnboundedSender<Command>,
    /// Frames and news of the ICE-TCP connections this shard adopted.
    pub(crate) tcp: mpsc::Sender<TcpMessage>,
}

impl ShardHandle {
    pub(crate) fn send(&self, command: Command) -> Result<(), SfuError> {
        self.commands
            .send(command)
            .map_err(|_| SfuError::ShuttingDown)
    }

    /// Whether one of this shard's peers answers to server ufrag `ufrag`.
    pub(crate) async fn knows_ufrag(&self, ufrag: &str) -> bool {
        let (reply, known) = oneshot::channel();
        let asked = self.send(Command::KnowsUfrag {
            ufrag: ufrag.to_owned(),
            reply,
        });
        asked.is_ok() && known.await.unwrap_or(false)
    }
}

/// Binds shard `index`'s socket and starts its loop. The loop ends when every handle is gone.
///
/// # Errors
/// [`SfuError::Bind`] when the socket can't be bound.
pub async fn spawn(index: usize, config: &SfuConfig) -> Result<ShardHandle, SfuError> {
    let port = if config.port == 0 {
        0
    } else {
        config
            .port
            .saturating_add(u16::try_from(index).unwrap_or(0))
    };
    let socket = bind_media_socket(SocketAddr::new(config.bind_ip, port))
        .map_err(|e| SfuError::Bind(format!("{}:{port}: {e}", config.bind_ip)))?;
    let local_addr = socket
        .local_addr()
        .map_err(|e| SfuError::Bind(e.to_string()))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (tcp_tx, tcp_rx) = mpsc::channel(crate::tcp::SHARD_QUEUE);
    let core = ShardCore::new(config.clone(), local_addr, Instant::now());
    tokio::spawn(run(core, socket, rx, tcp_rx));
    Ok(ShardHandle {
        local_addr,
        commands: tx,
        tcp: tcp_tx,
    })
}

/// The receive buffer asked of the kernel for a shard's socket. One socket carries every
/// peer of the shard, and publishers' packets come in bursts (their 20 ms clocks tick
/// together): Linux's default 208 KiB holds about 90 small datagrams, which a busy shard
/// overflowed at 36 talking participants (UDP `RcvbufErrors`, 0.6 % loss, while Janus with a
/// socket per connection lost none; `bench/reports/side-by-side.md`). 1 MiB holds several
/// rounds of such bursts; more would only queue delay when the shard is overloaded (a 4 MiB
/// buffer let a saturated shard's latency pass 50 ms). The kernel caps it at
/// `net.core.rmem_max`.
const RECV_BUFFER_BYTES: usize = 1 << 20;

fn bind_media_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(RECV_BUFFER_BYTES)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // Linux reports twice what it granted (the bookkeeping overhead it adds).
    let granted = socket.recv_buffer_size()? / 2;
    if granted < RECV_BUFFER_BYTES {
        tracing::info!(
            granted,
            wanted = RECV_BUFFER_BYTES,
            "media socket receive buffer capped by net.core.rmem_max; raise it for large calls"
        );
    }
    UdpSocket::from_std(socket.into())
}

/// Where datagrams leave a shard: its UDP socket, or the ICE-TCP connection of that address.
struct Links {
    socket: UdpSocket,
    tcp: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
}

impl Links {
    async fn send(&self, to: SocketAddr, data: bytes::BytesMut) {
        if let Some(connection) = self.tcp.get(&to) {
            if connection.try_send(data.freeze()).is_err() {
                metrics::counter!("sfu_packets_dropped_total", "reason" => "tcp_client_behind")
                    .increment(1);
            }
            return;
        }
        if let Err(err) = self.socket.send_to(&data, to).await {
            tracing::debug!(addr = %to, error = %err, "send failed");
        }
    }

    fn tcp_message(&mut self, core: &mut ShardCore, message: TcpMessage) {
        match message {
            TcpMessage::Opened { remote, outbound } => {
                self.tcp.insert(remote, outbound);
                core.tcp_opened(remote);
            }
            TcpMessage::Frame { remote, data } => {
                if self.tcp.contains_key(&remote) {
                    core.handle_datagram(Instant::now(), remote, &data);
                }
            }
            TcpMessage::Closed { remote } => {
                self.tcp.remove(&remote);
                core.tcp_closed(remote);
            }
        }
    }
}

async fn run(
    mut core: ShardCore,
    socket: UdpSocket,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut tcp: mpsc::Receiver<TcpMessage>,
) {
    let mut buf = vec![0u8; 2048];
    let mut listeners: HashMap<PeerId, EventSender> = HashMap::new();
    let mut links = Links {
        socket,
        tcp: HashMap::new(),
    };
    let mut stopped = None;
    loop {
        // Everything the last input produced goes out before the next input is taken, so a
        // peer's `Released` is dispatched before a command could join it again.
        let now = Instant::now();
        let next = flush(&mut core, &links, &mut listeners, now).await;
        // The select below prefers datagrams; under steady traffic its timer branch could
        // starve, so overdue timers (RTCP, ICE keepalives, hangovers) are served here first.
        if next.is_some_and(|t| t <= now) {
            core.handle_timeout(now);
            continue;
        }
        let deadline = next.unwrap_or_else(|| now + Duration::from_secs(3600));
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(Command::Shutdown { done }) => {
                    stopped = Some(done);
                    break;
                }
                Some(command) => apply(&mut core, &mut listeners, Instant::now(), command),
                None => break,
            },
            received = links.socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    core.handle_datagram(Instant::now(), from, &buf[..n]);
                    // Take what else is queued before flushing, to batch the work.
                    for _ in 0..32 {
                        match links.socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => core.handle_datagram(Instant::now(), from, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
                Err(err) => tracing::debug!(error = %err, "recv failed"),
            },
            Some(message) = tcp.recv() => {
                links.tcp_message(&mut core, message);
                for _ in 0..32 {
                    match tcp.try_recv() {
                        Ok(message) => links.tcp_message(&mut core, message),
                        Err(_) => break,
                    }
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => core.handle_timeout(Instant::now()),
        }
    }
    let now = Instant::now();
    core.close_all(now);
    flush(&mut core, &links, &mut listeners, now).await;
    if let Some(done) = stopped {
        let _ = done.send(());
    }
}

/// Carries out what the core asked for; returns when its timers are next due.
async fn flush(
    core: &mut ShardCore,
    links: &Links,
    listeners: &mut HashMap<PeerId, EventSender>,
    now: Instant,
) -> Option<Instant> {
    loop {
        match core.poll_output(now) {
            Output::Transmit { to, data } => {
                metrics::counter!("sfu_packets_out_total").increment(1);
                metrics::counter!("sfu_bytes_out_total").increment(data.len() as u64);
                links.send(to, data).await;
            }
            Output::Event { peer, event } => {
                if let Some(listener) = listeners.get(&peer) {
                    let _ = listener.send(event);
                }
            }
            Output::Released { peer } => {
                listeners.remove(&peer);
            }
            Output::Timeout(next) => return next,
        }
    }
}

/// One command from the [`crate::Sfu`] handle: the core's call, and its result as the reply.
fn apply(
    core: &mut ShardCore,
    listeners: &mut HashMap<PeerId, EventSender>,
    now: Instant,
    command: Command,
) {
    match command {
        Command::Join {
            room,
            peer,
            offer,
            events,
            reply,
        } => {
            // A second join of the same peer is refused by the core; its listener stays.
            let previous = listeners.insert(peer, events);
            let result = core.join(now, room, peer, offer);
            if result.is_err() {
                match previous {
                    Some(listener) => {
                        listeners.insert(peer, listener);
                    }
                    None => {
                        listeners.remove(&peer);
                    }
                }
            }
            let _ = reply.send(result);
        }
        Command::Answer { peer, sdp, reply } => {
            let _ = reply.send(core.answer(now, peer, sdp));
        }
        Command::Restart { peer, offer, reply } => {
            let _ = reply.send(core.restart(now, peer, offer));
        }
        Command::Candidate { peer, candidate } => core.add_candidate(peer, candidate),
        Command::Leave { peer } => core.leave(now, peer),
        Command::SetMuted { peer, muted } => core.set_muted(now, peer, muted),
        Command::Tap { sender } => core.add_tap(sender),
        Command::Rooms { reply } => {
            let _ = reply.send(core.rooms());
        }
        Command::Counts { reply } => {
            let _ = reply.send(core.counts());
        }
        Command::KnowsUfrag { ufrag, reply } => {
            let _ = reply.send(core.knows_ufrag(&ufrag));
        }
        // The run loop stops on it before it gets here; driven otherwise, close every peer.
        Command::Shutdown { done } => {
            core.close_all(now);
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RoomId;

    #[tokio::test]
    async fn a_shard_socket_gets_a_receive_buffer_for_bursts_up_to_the_kernel_cap() {
        let socket = bind_media_socket("127.0.0.1:0".parse().expect("address")).expect("bind");
        let cap: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(RECV_BUFFER_BYTES);
        let granted = socket2::SockRef::from(&socket)
            .recv_buffer_size()
            .expect("SO_RCVBUF")
            / 2;
        // The default (208 KiB) overflowed at 36 talking participants.
        assert!(
            granted >= RECV_BUFFER_BYTES.min(cap),
            "granted {granted} bytes, cap {cap}"
        );
    }

    #[test]
    fn taps_of_ended_transcriptions_are_dropped_even_in_a_silent_room() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut core = ShardCore::new(SfuConfig::default(), addr, Instant::now());
        // A start/stop loop with nobody speaking: each round's tap is dropped by its owner.
        for _ in 0..50 {
            let (sender, receiver) = crate::tap::channel(RoomId(1), 4);
            core.add_tap(sender);
            drop(receiver);
        }
        let (sender, _running) = crate::tap::channel(RoomId(2), 4);
        core.add_tap(sender);
        let counts = core.counts();
        assert_eq!(
            counts.taps, 1,
            "only the running transcription's tap is held"
        );
    }
}
