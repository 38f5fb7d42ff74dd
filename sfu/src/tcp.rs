//! ICE-TCP (RFC 6544), the passive side: calls from networks that drop UDP.
//!
//! Every peer's answer offers, after its UDP host candidate, a passive TCP host candidate on
//! one port shared by the node's shards. A browser whose UDP checks go unanswered connects
//! there and sends the same STUN, DTLS and SRTP it would send over UDP, each packet behind a
//! 2-byte length (RFC 4571 framing).
//!
//! The listener reads a connection's first frame, which must be a STUN binding request; the
//! server part of its USERNAME names the peer, and the shard holding that peer adopts the
//! connection. From then on the connection is one more remote address to that shard: its
//! frames go into [`crate::shard::ShardCore::handle_datagram`] like datagrams (so the proven-
//! address rules of `ice_lite.rs` hold per connection), and what the core sends to its
//! address is framed onto it. A peer moves between UDP and TCP as between two UDP paths.
//!
//! Bounded: a connection must send a binding request for a known peer within
//! [`TcpLimits::first_check`], frames may not exceed [`TcpLimits::max_frame`], a connection
//! silent for [`TcpLimits::idle`] is closed (ICE consent checks come every few seconds),
//! and connections are capped per client address and in total. Every refusal is counted in
//! `sfu_tcp_rejected_total{reason}`; open connections in the `sfu_tcp_connections` gauge.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::shard::ShardHandle;

/// What a TCP connection tells the shard that adopted it, in order.
#[derive(Debug)]
pub(crate) enum TcpMessage {
    /// A connection for one of the shard's peers: what the core sends to `remote` goes to
    /// `outbound` (bounded; when the client reads too slowly, packets are dropped as UDP
    /// would lose them, rather than queued without end).
    Opened {
        remote: SocketAddr,
        outbound: mpsc::Sender<Bytes>,
    },
    /// One frame from the client: a datagram from `remote`.
    Frame { remote: SocketAddr, data: Bytes },
    /// The connection is gone.
    Closed { remote: SocketAddr },
}

/// How much a TCP client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Largest frame accepted. Media and DTLS fit a UDP datagram; larger is not WebRTC.
    pub max_frame: usize,
    /// A connection must send its first binding request within this time.
    pub first_check: Duration,
    /// A connection that sends nothing for this long is closed.
    pub idle: Duration,
    /// Open connections from one client IP address (an office behind one NAT is many users).
    pub max_per_ip: usize,
    /// Open connections in all.
    pub max_connections: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_frame: 1500,
            first_check: Duration::from_secs(5),
            // Browsers send consent checks every 5 s or so (RFC 7675); three missed is gone.
            idle: Duration::from_secs(20),
            max_per_ip: 64,
            max_connections: 4096,
        }
    }
}

/// Frames a shard's channel from TCP connections holds; beyond it frames are dropped.
pub(crate) const SHARD_QUEUE: usize = 1024;
/// Packets waiting to be written to one connection; beyond it they are dropped.
const OUTBOUND_QUEUE: usize = 256;
/// A client that doesn't take a write within this time is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The running listener: its address, and how to stop it and wait for its connections.
#[derive(Debug)]
pub(crate) struct TcpHandle {
    pub local_addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl TcpHandle {
    /// Closes the listener and every connection (after writing what they hold), and waits.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Starts accepting connections on `listener` for `shards`.
pub(crate) fn start(
    listener: TcpListener,
    shards: Arc<Vec<ShardHandle>>,
    limits: TcpLimits,
) -> std::io::Result<TcpHandle> {
    let local_addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(accept_loop(
        listener,
        shards,
        limits,
        stop.clone(),
        tasks.clone(),
    ));
    Ok(TcpHandle {
        local_addr,
        stop,
        tasks,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shards: Arc<Vec<ShardHandle>>,
    limits: TcpLimits,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let open = Arc::new(OpenConnections::default());
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                let Some(slot) = open.take(remote.ip(), &limits) else {
                    rejected("limit");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let conn = Connection {
                    remote,
                    shards: shards.clone(),
                    limits,
                    stop: stop.clone(),
                };
                tasks.spawn(async move {
                    let _slot = slot;
                    conn.serve(stream).await;
                });
            }
            Err(err) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %err, "ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn rejected(reason: &'static str) {
    metrics::counter!("sfu_tcp_rejected_total", "reason" => reason).increment(1);
}

/// Open connections, per client address and in all.
#[derive(Debug, Default)]
struct OpenConnections {
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection's place; given back on drop.
struct Slot {
    open: Arc<OpenConnections>,
    ip: IpAddr,
}

impl OpenConnections {
    fn take(self: &Arc<Self>, ip: IpAddr, limits: &TcpLimits) -> Option<Slot> {
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = by_ip.values().sum();
        let here = by_ip.entry(ip).or_default();
        if *here >= limits.max_per_ip || total >= limits.max_connections {
            if *here == 0 {
                by_ip.remove(&ip);
            }
            return None;
        }
        *here += 1;
        metrics::gauge!("sfu_tcp_connections").increment(1.0);
        Some(Slot {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by_ip = self.open.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(here) = by_ip.get_mut(&self.ip) {
            *here -= 1;
            if *here == 0 {
                by_ip.remove(&self.ip);
            }
        }
        metrics::gauge!("sfu_tcp_connections").decrement(1.0);
    }
}

/// The codec of RFC 4571: a 2-byte big-endian length, then the packet.
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u16>()
        .max_frame_length(max_frame)
        .new_codec()
}

struct Connection {
    remote: SocketAddr,
    shards: Arc<Vec<ShardHandle>>,
    limits: TcpLimits,
    stop: CancellationToken,
}

impl Connection {
    async fn serve(self, stream: TcpStream) {
        let mut framed = Framed::new(stream, codec(self.limits.max_frame));
        let first = tokio::select! {
            () = self.stop.cancelled() => return,
            first = tokio::time::timeout(self.limits.first_check, framed.next()) => first,
        };
        let first = match first {
            Err(_) => return rejected("no_check"),
            Ok(None) => return rejected("closed_before_check"),
            Ok(Some(Err(_))) => return rejected("bad_frame"),
            Ok(Some(Ok(frame))) => frame.freeze(),
        };
        if !crate::stun::is_binding_request(&first) {
            return rejected("not_a_check");
        }
        let Some(ufrag) = crate::stun::local_ufrag(&first) else {
            return rejected("not_a_check");
        };
        let Some(shard) = self.shard_of(ufrag).await else {
            return rejected("unknown_peer");
        };
        let (outbound, mut to_client) = mpsc::channel(OUTBOUND_QUEUE);
        let remote = self.remote;
        if shard
            .tcp
            .send(TcpMessage::Opened { remote, outbound })
            .await
            .is_err()
        {
            return;
        }
        tracing::debug!(%remote, "ICE-TCP connection adopted");
        to_shard(shard, remote, first);
        let reason = self.pump(&mut framed, &mut to_client, shard).await;
        tracing::debug!(%remote, reason, "ICE-TCP connection closed");
        metrics::counter!("sfu_tcp_closed_total", "reason" => reason).increment(1);
        let _ = shard.tcp.send(TcpMessage::Closed { remote }).await;
    }

    /// Which shard holds the peer of server ufrag `ufrag`.
    async fn shard_of(&self, ufrag: &str) -> Option<&ShardHandle> {
        for shard in self.shards.iter() {
            if shard.knows_ufrag(ufrag).await {
                return Some(shard);
            }
        }
        None
    }

    /// Moves frames both ways until either side ends; returns why it ended.
    async fn pump(
        &self,
        framed: &mut Framed<TcpStream, LengthDelimitedCodec>,
        to_client: &mut mpsc::Receiver<Bytes>,
        shard: &ShardHandle,
    ) -> &'static str {
        loop {
            tokio::select! {
                () = self.stop.cancelled() => {
                    // Shutdown: what the shard queued last (DTLS close_notify) still goes out.
                    let mut rest = Vec::new();
                    while let Ok(data) = to_client.try_recv() {
                        rest.push(data);
                    }
                    let _ = write_all(framed, rest).await;
                    return "shutdown";
                }
                out = to_client.recv() => {
                    // The shard dropped the connection (its peer left): nothing more to send.
                    let Some(data) = out else { return "peer_gone" };
                    let mut batch = vec![data];
                    while let Ok(more) = to_client.try_recv() {
                        batch.push(more);
                    }
                    if let Err(reason) = write_all(framed, batch).await {
                        return reason;
                    }
                }
                frame = tokio::time::timeout(self.limits.idle, framed.next()) => match frame {
                    Err(_) => return "idle",
                    Ok(None) => return "client_closed",
                    Ok(Some(Err(_))) => return "bad_frame",
                    Ok(Some(Ok(frame))) => to_shard(shard, self.remote, frame.freeze()),
                },
            }
        }
    }
}

/// Writes `packets` framed and flushes them once, within [`WRITE_TIMEOUT`].
async fn write_all(
    framed: &mut Framed<TcpStream, LengthDelimitedCodec>,
    packets: Vec<Bytes>,
) -> Result<(), &'static str> {
    let write = async {
        for data in packets {
            framed.feed(data).await?;
        }
        SinkExt::<Bytes>::flush(framed).await
    };
    let written: Result<Result<(), std::io::Error>, _> =
        tokio::time::timeout(WRITE_TIMEOUT, write).await;
    match written {
        Err(_) => Err("write_timeout"),
        Ok(Err(_)) => Err("write_failed"),
        Ok(Ok(())) => Ok(()),
    }
}

/// Hands a frame to the shard without waiting: a shard that is behind loses it, as a full
/// socket buffer loses a datagram.
fn to_shard(shard: &ShardHandle, remote: SocketAddr, data: Bytes) {
    if shard
        .tcp
        .try_send(TcpMessage::Frame { remote, data })
        .is_err()
    {
        metrics::counter!("sfu_packets_dropped_total", "reason" => "tcp_queue_full").increment(1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rtc::peer_connection::configuration::RTCConfigurationBuilder;
    use rtc::peer_connection::RTCPeerConnectionBuilder;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::audio::{audio_engine, audio_track};
    use crate::ice_lite::tests::check_for;
    use crate::ice_lite::Credentials;
    use crate::{event_channel, PeerId, RoomId, Sfu, SfuConfig};

    /// A browser's offer (the project's own `rtc` client), and its ICE credentials.
    fn client_offer() -> (String, Credentials) {
        let (media, registry) = audio_engine().expect("audio engine");
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(Instant::now())
            .expect("client connection");
        let track = audio_track("mic".into(), "mic-audio".into(), "mic".into(), 4242);
        pc.add_track(track).expect("track");
        let sdp = pc.create_offer(None).expect("offer").sdp;
        let credentials = Credentials::from_sdp(&sdp).expect("credentials");
        (sdp, credentials)
    }

    struct Server {
        sfu: Sfu,
        tcp: SocketAddr,
        /// The joined peer's server and client credentials.
        server: Credentials,
        client: Credentials,
        _events: mpsc::Receiver<crate::PeerEvent>,
    }

    /// An SFU on loopback with ICE-TCP and one peer joined (not yet connected).
    async fn server(limits: TcpLimits) -> Server {
        let sfu = Sfu::start(SfuConfig {
            shards: 2,
            tcp_limits: limits,
            ..SfuConfig::default()
        })
        .await
        .expect("sfu");
        let tcp = sfu.tcp_addr().expect("ICE-TCP is on by default");
        let (offer, client) = client_offer();
        let (events, rx) = event_channel();
        // Room 1 lives on the second shard: the listener must find it there.
        let answer = sfu
            .join(RoomId(1), PeerId(1), offer, events)
            .await
            .expect("join");
        assert!(
            answer.contains(&format!("{} typ host tcptype passive", tcp.port())),
            "the answer offers the passive TCP candidate: {answer}"
        );
        let server = Credentials::from_sdp(&answer).expect("server credentials");
        Server {
            sfu,
            tcp,
            server,
            client,
            _events: rx,
        }
    }

    impl Server {
        fn check(&self) -> Vec<u8> {
            check_for(
                &self.server.ufrag,
                &self.client.ufrag,
                &self.server.pwd,
                true,
            )
        }
    }

    fn framed(packet: &[u8]) -> Vec<u8> {
        let mut out = u16::try_from(packet.len())
            .expect("small")
            .to_be_bytes()
            .to_vec();
        out.extend_from_slice(packet);
        out
    }

    /// Reads one RFC 4571 frame, or `None` when the server closed the connection.
    async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.ok()?;
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut packet).await.ok()?;
        Some(packet)
    }

    /// Whether the server closes the connection within `within` (reading nothing more).
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(within, stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn a_check_split_across_reads_is_answered_on_its_connection() {
        let server = server(TcpLimits::default()).await;
        let mut stream = TcpStream::connect(server.tcp).await.expect("connect");
        let frame = framed(&server.check());
        // The length alone, then half the check, then the rest: TCP promises no boundaries.
        for part in [&frame[..2], &frame[2..30], &frame[30..]] {
            stream.write_all(part).await.expect("write");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let response = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut stream))
            .await
            .expect("answered in time")
            .expect("a frame");
        assert!(crate::stun::is_binding_success(&response));
        // Two more checks in one write: both answered.
        let two = [framed(&server.check()), framed(&server.check())].concat();
        stream.write_all(&two).await.expect("write");
        for _ in 0..2 {
            let response = read_frame(&mut stream).await.expect("a frame");
            assert!(crate::stun::is_binding_success(&response));
        }
        server.sfu.shutdown().await;
    }

    #[tokio::test]
    async fn bad_connections_are_closed_and_an_adopted_one_is_unharmed() {
        let limits = TcpLimits {
            first_check: Duration::from_millis(300),
            max_per_ip: 4,
            ..TcpLimits::default()
        };
        let server = server(limits).await;
        let mut good = TcpStream::connect(server.tcp).await.expect("connect");
        good.write_all(&framed(&server.check()))
            .await
            .expect("write");
        assert!(read_frame(&mut good)
            .await
            .is_some_and(|r| crate::stun::is_binding_success(&r)));

        // Silent: closed after the first-check timeout.
        let mut silent = TcpStream::connect(server.tcp).await.expect("connect");
        // A frame longer than any datagram.
        let mut oversize = TcpStream::connect(server.tcp).await.expect("connect");
        oversize
            .write_all(&[0xff, 0xff, 1, 2, 3])
            .await
            .expect("write");
        // Not a check (RTP first), and a check for nobody here.
        let mut rtp = TcpStream::connect(server.tcp).await.expect("connect");
        rtp.write_all(&framed(&[0x80, 0x6f, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]))
            .await
            .expect("write");
        assert!(
            closed_within(&mut oversize, Duration::from_secs(2)).await,
            "oversize frame"
        );
        assert!(
            closed_within(&mut rtp, Duration::from_secs(2)).await,
            "RTP first"
        );
        let mut stranger = TcpStream::connect(server.tcp).await.expect("connect");
        let check = check_for("nobodyHere", &server.client.ufrag, &server.server.pwd, true);
        stranger.write_all(&framed(&check)).await.expect("write");
        assert!(
            closed_within(&mut stranger, Duration::from_secs(2)).await,
            "unknown peer"
        );
        assert!(
            closed_within(&mut silent, Duration::from_secs(2)).await,
            "no check"
        );

        // A flood from one address: past the cap, connections are closed at once.
        let mut flood = Vec::new();
        for _ in 0..8 {
            flood.push(TcpStream::connect(server.tcp).await.expect("connect"));
        }
        let mut refused = 0;
        for stream in &mut flood {
            if closed_within(stream, Duration::from_millis(100)).await {
                refused += 1;
            }
        }
        assert!(
            refused >= 5,
            "the cap of 4 per address held: {refused} of 8 refused at once"
        );

        // Through all of that, the adopted connection is still answered.
        good.write_all(&framed(&server.check()))
            .await
            .expect("write");
        let response = read_frame(&mut good).await.expect("a frame");
        assert!(crate::stun::is_binding_success(&response));
        server.sfu.shutdown().await;
        assert!(
            closed_within(&mut good, Duration::from_secs(2)).await,
            "closed at shutdown"
        );
    }
}
