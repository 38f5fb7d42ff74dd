//! The media relay over Redis: a participant whose socket is on this node but whose room's
//! media another node carries has its media commands sent to that node, and that node's SFU
//! events for it sent back, each on the receiving node's own channel. Browsers see nothing
//! of it: the answer they get is the owner's, and their UDP goes straight to the owner.
//!
//! Both sides keep what they need to clean up after the other side's node dies: a node
//! holding relayed peers tells their sockets the media closed (the browser rejoins, and the
//! room is placed again); a node serving peers for another node drops them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use sfu::{EventSender, PeerEvent, Sfu};
use signaling::bus::BoxFuture;
use signaling::media::{peer_of, room_of, sfu_candidate, MediaError, MediaRelay};
use signaling::protocol::{IceCandidate, ParticipantId, RoomId};
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use super::placement::Placement;
use super::registry::{NodeRecord, Registry};
use super::wire::{Command, Event, Message};
use crate::sealed::ClusterKey;

/// A call to another node that hasn't answered in this long failed: the node is taken for
/// gone (its record may still be within its TTL).
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a node that failed a call stays out of placement: past its record's TTL and a
/// heartbeat more, by when a dead node's record is gone.
const DOUBT: Duration = Duration::from_secs(10);

/// At most this many calls from other nodes are answered at once; past it a call is refused
/// at once (its caller hears "busy") rather than start another task. Joins hold their slot
/// only until they are answered.
const MAX_CALLS_IN_FLIGHT: usize = 512;

/// A peer of a socket here whose media another node carries.
#[derive(Debug)]
struct Held {
    node: u32,
    events: EventSender,
}

/// A peer this node's SFU carries for a socket on node `from`.
#[derive(Debug, Clone, Copy)]
struct Served {
    from: u32,
    room: RoomId,
}

type Pending = HashMap<u64, oneshot::Sender<Result<Option<String>, MediaError>>>;

pub struct RedisRelay {
    node: u32,
    conn: ConnectionManager,
    prefix: String,
    /// Seals what this node sends and opens what it receives ([`crate::sealed`]).
    key: ClusterKey,
    /// Calls being answered (see [`MAX_CALLS_IN_FLIGHT`]).
    calls: Arc<tokio::sync::Semaphore>,
    sfu: Sfu,
    placement: Placement,
    /// The live nodes as of the last heartbeat (see `Cluster`).
    live: Mutex<Vec<NodeRecord>>,
    /// Nodes a call just failed to reach, and since when: a node killed a moment ago still
    /// has a record until its TTL runs out, and must not be given rooms meanwhile.
    unreachable: Mutex<HashMap<u32, Instant>>,
    registry: Registry,
    next_call: AtomicU64,
    pending: Mutex<Pending>,
    held: Mutex<HashMap<ParticipantId, Held>>,
    served: Mutex<HashMap<ParticipantId, Served>>,
    /// Per served peer, the task that sends its events back.
    tasks: TaskTracker,
}

impl std::fmt::Debug for RedisRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRelay")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A node's relay channel.
pub fn channel(prefix: &str, node: u32) -> String {
    format!("{prefix}:media:{node}")
}

impl RedisRelay {
    pub fn new(
        node: u32,
        conn: ConnectionManager,
        prefix: &str,
        sfu: Sfu,
        placement: Placement,
        registry: Registry,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            node,
            conn,
            prefix: prefix.to_owned(),
            // The relay seals with the same key as the registry it reads.
            key: registry.key().clone(),
            calls: Arc::new(tokio::sync::Semaphore::new(MAX_CALLS_IN_FLIGHT)),
            sfu,
            placement,
            live: Mutex::new(Vec::new()),
            unreachable: Mutex::new(HashMap::new()),
            registry,
            next_call: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            served: Mutex::new(HashMap::new()),
            tasks,
        }
    }

    /// The live nodes, as the last heartbeat read them.
    pub fn set_live(&self, live: Vec<NodeRecord>) {
        *lock(&self.live) = live;
        let now = Instant::now();
        lock(&self.unreachable).retain(|_, since| now.duration_since(*since) < DOUBT);
    }

    /// The live nodes to place rooms on: the registry's (`fresh`, or as of the last
    /// heartbeat), less those that just failed a call.
    fn placeable(&self, fresh: Option<Vec<NodeRecord>>) -> Vec<NodeRecord> {
        let mut live = fresh.unwrap_or_else(|| lock(&self.live).clone());
        let unreachable = lock(&self.unreachable);
        live.retain(|n| n.node == self.node || !unreachable.contains_key(&n.node));
        live
    }

    /// The node that carries `room`, placing it when its recorded owner isn't live. A
    /// record naming a node this node hasn't seen yet (it started since the last heartbeat)
    /// is checked against the registry itself before the room is moved.
    async fn owner(&self, room: RoomId) -> redis::RedisResult<u32> {
        let mut live = self.placeable(None);
        if let Some(node) = self.placement.recorded(room).await? {
            if node == self.node || live.iter().any(|n| n.node == node) {
                return Ok(node);
            }
            live = self.placeable(Some(self.registry.live().await?));
        }
        self.placement.owner(room, &live, self.node).await
    }

    async fn send(&self, node: u32, message: &Message) -> Result<(), MediaError> {
        let json = serde_json::to_string(message)
            .map_err(|e| MediaError::Unavailable(format!("encode: {e}")))?;
        let channel = channel(&self.prefix, node);
        let sealed = self.key.seal(&channel, &json);
        let mut conn = self.conn.clone();
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(channel).arg(sealed);
        let receivers = tokio::time::timeout(CALL_TIMEOUT, publish.query_async::<i64>(&mut conn))
            .await
            .map_err(|_| MediaError::Unavailable("Redis did not answer".to_owned()))?
            .map_err(|e| MediaError::Unavailable(format!("Redis: {e}")))?;
        if receivers == 0 {
            return Err(MediaError::Unavailable(format!(
                "node-{node:05x} is not listening"
            )));
        }
        Ok(())
    }

    /// Sends `command` to `node` and waits for its reply.
    async fn call(&self, node: u32, command: Command) -> Result<Option<String>, MediaError> {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let op = command.name();
        let started = std::time::Instant::now();
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let message = Message::Call {
            id: Some(id),
            from: self.node,
            command,
        };
        tracing::debug!(node, id, op, "media relay: call");
        let result = match self.send(node, &message).await {
            Ok(()) => match tokio::time::timeout(CALL_TIMEOUT, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) | Err(_) => Err(MediaError::Unavailable(format!(
                    "node-{node:05x} did not answer within {CALL_TIMEOUT:?}"
                ))),
            },
            Err(err) => Err(err),
        };
        lock(&self.pending).remove(&id);
        tracing::debug!(node, id, op, ok = result.is_ok(), elapsed = ?started.elapsed(), "media relay: reply");
        // What routing adds to a join or restart on another node: one round trip over Redis
        // plus the owner's own work.
        metrics::histogram!("media_relay_call_duration_seconds", "op" => op)
            .record(started.elapsed().as_secs_f64());
        if matches!(result, Err(MediaError::Unavailable(_))) {
            // Not placed there again until its record is gone or DOUBT passes.
            lock(&self.unreachable).insert(node, Instant::now());
            metrics::counter!("media_relay_failures_total", "op" => op).increment(1);
        }
        result
    }

    /// Sends `command` to `node` without waiting (leave, mute, candidates).
    fn notify(self: &Arc<Self>, node: u32, command: Command) {
        let relay = Arc::clone(self);
        self.tasks.spawn(async move {
            let message = Message::Call {
                id: None,
                from: relay.node,
                command,
            };
            if let Err(err) = relay.send(node, &message).await {
                tracing::debug!(node, error = %err, "media relay: notice not delivered");
            }
        });
    }

    /// The held peer's node, or why it has none.
    fn holder(&self, peer: ParticipantId) -> Result<u32, MediaError> {
        lock(&self.held)
            .get(&peer)
            .map(|h| h.node)
            .ok_or(MediaError::Closed)
    }

    /// A held peer's node is gone or stopped answering: its socket hears that the media
    /// closed, and the browser joins again (to wherever the room is placed then).
    fn lose(&self, peer: ParticipantId) {
        if let Some(held) = lock(&self.held).remove(&peer) {
            let _ = held.events.send(PeerEvent::Closed {
                reason: sfu::CloseReason::Failed,
            });
        }
    }

    /// One message off this node's channel: acted on only if a node sealed it for this
    /// channel within the last minute ([`crate::sealed`]), so whoever else can write to
    /// Redis can't join a room's media, mute or drop anyone.
    pub fn deliver(self: &Arc<Self>, payload: &[u8]) {
        let Some(body) =
            self.key
                .open_message("media_relay", &channel(&self.prefix, self.node), payload)
        else {
            return;
        };
        let message = match serde_json::from_str::<Message>(body) {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!(error = %err, "ignoring an undecodable media relay message");
                return;
            }
        };
        match message {
            Message::Reply { id, result } => {
                if let Some(tx) = lock(&self.pending).remove(&id) {
                    let _ = tx.send(result);
                }
            }
            Message::Event { peer, event } => {
                let peer = ParticipantId(peer);
                tracing::debug!(%peer, ?event, "media relay: event");
                let closed = matches!(event, Event::Closed { .. });
                let mut held = lock(&self.held);
                if let Some(h) = held.get(&peer) {
                    let _ = h.events.send(event.into());
                }
                if closed {
                    held.remove(&peer);
                }
            }
            Message::Call { id, from, command } => {
                let Ok(permit) = Arc::clone(&self.calls).try_acquire_owned() else {
                    metrics::counter!("media_relay_calls_refused_total").increment(1);
                    tracing::warn!(from, "media relay: too many calls in flight; refusing one");
                    if let Some(id) = id {
                        let relay = Arc::clone(self);
                        self.tasks.spawn(async move {
                            let busy = Err(MediaError::Unavailable(format!(
                                "node-{:05x} is busy",
                                relay.node
                            )));
                            let _ = relay.send(from, &Message::Reply { id, result: busy }).await;
                        });
                    }
                    return;
                };
                let relay = Arc::clone(self);
                self.tasks
                    .spawn(async move { relay.serve(id, from, command, permit).await });
            }
        }
    }

    /// Runs another node's command on this node's SFU, replies when asked to, and for a
    /// join starts sending the peer's events back.
    async fn serve(
        self: Arc<Self>,
        id: Option<u64>,
        from: u32,
        command: Command,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let peer = ParticipantId(command.peer());
        let served_room = lock(&self.served).get(&peer).map(|s| s.room);
        let result: Result<Option<String>, MediaError> = match command {
            Command::Join { room, sdp, .. } => {
                let (events, rx) = sfu::event_channel();
                match self
                    .sfu
                    .join(room_of(room), peer_of(peer), sdp, events)
                    .await
                {
                    Ok(answer) => {
                        lock(&self.served).insert(peer, Served { from, room });
                        // The reply goes first: the client takes the answer before the server
                        // offer that follows it.
                        if let Some(id) = id {
                            let reply = Message::Reply {
                                id,
                                result: Ok(Some(answer)),
                            };
                            let _ = self.send(from, &reply).await;
                        }
                        drop(permit);
                        self.send_events_back(from, peer, rx).await;
                        return;
                    }
                    Err(err) => Err(err.into()),
                }
            }
            Command::Restart { sdp, .. } => match served_room {
                Some(room) => self
                    .sfu
                    .restart(room_of(room), peer_of(peer), sdp)
                    .await
                    .map(Some)
                    .map_err(MediaError::from),
                None => Err(MediaError::Closed),
            },
            Command::Answer { sdp, .. } => match served_room {
                Some(room) => self
                    .sfu
                    .answer(room_of(room), peer_of(peer), sdp)
                    .await
                    .map(|()| None)
                    .map_err(MediaError::from),
                None => Err(MediaError::Closed),
            },
            Command::Candidate { candidate, .. } => {
                if let Some(room) = served_room {
                    let _ = self.sfu.add_candidate(
                        room_of(room),
                        peer_of(peer),
                        sfu_candidate(candidate),
                    );
                }
                Ok(None)
            }
            Command::Leave { .. } => {
                if let Some(served) = lock(&self.served).remove(&peer) {
                    self.sfu.leave(room_of(served.room), peer_of(peer));
                }
                Ok(None)
            }
            Command::SetMuted { muted, .. } => {
                if let Some(room) = served_room {
                    self.sfu.set_muted(room_of(room), peer_of(peer), muted);
                }
                Ok(None)
            }
        };
        if let Some(id) = id {
            let _ = self.send(from, &Message::Reply { id, result }).await;
        }
    }

    /// Sends a served peer's SFU events to node `from`, in order, until the SFU drops it.
    async fn send_events_back(
        &self,
        from: u32,
        peer: ParticipantId,
        mut rx: tokio::sync::mpsc::Receiver<PeerEvent>,
    ) {
        while let Some(event) = rx.recv().await {
            let closed = matches!(event, PeerEvent::Closed { .. });
            let message = Message::Event {
                peer: peer.0,
                event: event.into(),
            };
            if let Err(err) = self.send(from, &message).await {
                tracing::debug!(%peer, error = %err, "media relay: event not delivered");
            }
            if closed {
                break;
            }
        }
        lock(&self.served).remove(&peer);
    }

    /// After a heartbeat read `live`: peers held on nodes that are gone lose their media
    /// (their browsers rejoin); peers served for nodes that are gone are dropped.
    pub fn forget_dead_nodes(&self, live: &[NodeRecord]) {
        let alive = |node: u32| node == self.node || live.iter().any(|n| n.node == node);
        let lost: Vec<ParticipantId> = lock(&self.held)
            .iter()
            .filter(|(_, h)| !alive(h.node))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &lost {
            self.lose(*peer);
        }
        let orphans: Vec<(ParticipantId, Served)> = {
            let mut served = lock(&self.served);
            let orphans: Vec<_> = served
                .iter()
                .filter(|(_, s)| !alive(s.from))
                .map(|(p, s)| (*p, *s))
                .collect();
            for (peer, _) in &orphans {
                served.remove(peer);
            }
            orphans
        };
        for (peer, served) in &orphans {
            self.sfu.leave(room_of(served.room), peer_of(*peer));
        }
        if !lost.is_empty() || !orphans.is_empty() {
            tracing::warn!(
                lost = lost.len(),
                dropped = orphans.len(),
                "media relay: a node is gone; its relayed media connections are closed"
            );
        }
    }

    /// A drained node handing its calls over: every peer it serves for another node hears
    /// that its media closed, so the browser rejoins wherever the room is placed next.
    pub async fn close_served(&self) {
        let served: Vec<(ParticipantId, Served)> = lock(&self.served).drain().collect();
        for (peer, s) in served {
            let message = Message::Event {
                peer: peer.0,
                event: Event::Closed {
                    connect_timeout: false,
                },
            };
            let _ = self.send(s.from, &message).await;
            self.sfu.leave(room_of(s.room), peer_of(peer));
        }
    }

    /// The other nodes this one holds or serves relayed peers with.
    pub fn nodes_in_use(&self) -> Vec<u32> {
        let mut nodes: Vec<u32> = lock(&self.held).values().map(|h| h.node).collect();
        nodes.extend(lock(&self.served).values().map(|s| s.from));
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// Relayed peers held and served right now.
    pub fn counts(&self) -> (usize, usize) {
        (lock(&self.held).len(), lock(&self.served).len())
    }
}

/// The [`MediaRelay`] the hub's media uses: a handle on the shared relay.
#[derive(Debug, Clone)]
pub struct RelayHandle(pub Arc<RedisRelay>);

impl MediaRelay for RelayHandle {
    fn owner(&self, room: RoomId) -> BoxFuture<'_, Option<u32>> {
        Box::pin(async move {
            match self.0.owner(room).await {
                Ok(node) if node == self.0.node => None,
                Ok(node) => Some(node),
                Err(err) => {
                    // Redis is down: a call that works on one node beats no call.
                    tracing::warn!(room, error = %err, "room placement unavailable; carrying the room here");
                    None
                }
            }
        })
    }

    fn holds(&self, peer: ParticipantId) -> bool {
        lock(&self.0.held).contains_key(&peer)
    }

    fn join(
        &self,
        node: u32,
        room: RoomId,
        peer: ParticipantId,
        offer: String,
        events: EventSender,
    ) -> BoxFuture<'_, Result<String, MediaError>> {
        Box::pin(async move {
            let relay = &self.0;
            // Held before the call: the owner's first events may overtake its reply.
            lock(&relay.held).insert(peer, Held { node, events });
            let command = Command::Join {
                room,
                peer: peer.0,
                sdp: offer,
            };
            match relay.call(node, command).await {
                Ok(Some(answer)) => Ok(answer),
                Ok(None) => {
                    lock(&relay.held).remove(&peer);
                    Err(MediaError::Unavailable(
                        "the owner sent no answer".to_owned(),
                    ))
                }
                Err(err) => {
                    lock(&relay.held).remove(&peer);
                    Err(err)
                }
            }
        })
    }

    fn restart(
        &self,
        peer: ParticipantId,
        offer: String,
    ) -> BoxFuture<'_, Result<String, MediaError>> {
        Box::pin(async move {
            let relay = &self.0;
            let node = relay.holder(peer)?;
            let command = Command::Restart {
                peer: peer.0,
                sdp: offer,
            };
            match relay.call(node, command).await {
                Ok(Some(answer)) => Ok(answer),
                Ok(None) => Err(MediaError::Closed),
                Err(err) => {
                    if matches!(err, MediaError::Unavailable(_) | MediaError::Closed) {
                        relay.lose(peer);
                    }
                    Err(err)
                }
            }
        })
    }

    fn answer(&self, peer: ParticipantId, sdp: String) -> BoxFuture<'_, Result<(), MediaError>> {
        Box::pin(async move {
            let relay = &self.0;
            let node = relay.holder(peer)?;
            let command = Command::Answer { peer: peer.0, sdp };
            match relay.call(node, command).await {
                Ok(_) => Ok(()),
                Err(err) => {
                    if matches!(err, MediaError::Unavailable(_)) {
                        relay.lose(peer);
                    }
                    Err(err)
                }
            }
        })
    }

    fn candidate(&self, peer: ParticipantId, candidate: IceCandidate) {
        if let Ok(node) = self.0.holder(peer) {
            let command = Command::Candidate {
                peer: peer.0,
                candidate,
            };
            self.0.notify(node, command);
        }
    }

    fn leave(&self, peer: ParticipantId) {
        let node = lock(&self.0.held).remove(&peer).map(|h| h.node);
        if let Some(node) = node {
            self.0.notify(node, Command::Leave { peer: peer.0 });
        }
    }

    fn set_muted(&self, peer: ParticipantId, muted: bool) {
        if let Ok(node) = self.0.holder(peer) {
            let command = Command::SetMuted {
                peer: peer.0,
                muted,
            };
            self.0.notify(node, command);
        }
    }
}
