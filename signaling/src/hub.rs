//! The [`Hub`]: this node's rooms and user sockets, the bus that connects it to other nodes,
//! and the dispatcher that applies what comes off the bus.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio_util::task::TaskTracker;

use crate::bus::{Bus, BusError, BusEvent, Envelope, RoomEvent};
use crate::limits::{MessageLimits, SocketCounts, SocketKind, SocketPermit, TooManySockets};
use crate::media::{Media, MediaControl};
use crate::nodes::{new_incarnation, NodeLiveness};
use crate::protocol::{
    LeaveReason, ParticipantId, ParticipantInfo, Role, RoomId, ServerMessage, UserId,
};
use crate::room::{Outbound, RoomRegistry};
use crate::sessions::{Ending, OpenSessions, SessionGuard};

/// Connection limits and timers.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// A socket that sends nothing (not even a pong) for this long is dropped.
    pub idle_timeout: Duration,
    /// How often the server pings; a third of the idle timeout leaves room for two misses.
    pub ping_interval: Duration,
    /// The largest text frame handled; larger ones are answered with `frame_too_large`.
    pub max_frame_bytes: usize,
    /// Events a slow socket may fall behind before it is told it lagged.
    pub socket_buffer: usize,
    /// A socket whose client stops reading for this long is closed (1013): it can't stall its
    /// own loop (pings, timers) or make the server hold its messages.
    pub send_timeout: Duration,
    /// Room sockets per user on this node, and user sockets likewise.
    pub max_sockets_per_user: usize,
    /// How often this node tells the others on the bus it is alive.
    pub node_heartbeat: Duration,
    /// Another node silent this long is taken for dead: its participants are cleared.
    pub node_expiry: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self::with_idle_timeout(Duration::from_secs(30))
    }
}

impl HubConfig {
    pub fn with_idle_timeout(idle_timeout: Duration) -> Self {
        Self {
            idle_timeout,
            ping_interval: idle_timeout / 3,
            // SDP answers grow ~0.5 KiB per participant in the call.
            max_frame_bytes: 64 * 1024,
            socket_buffer: 1024,
            send_timeout: idle_timeout.min(Duration::from_secs(10)),
            max_sockets_per_user: 16,
            node_heartbeat: Duration::from_secs(5),
            node_expiry: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Default)]
struct UserEntry {
    tx: Option<broadcast::Sender<Arc<Outbound>>>,
    local: u32,
    /// Open user sockets per other node, as they last reported.
    remote: HashMap<u32, u32>,
}

/// One node's view of calls and user sockets.
pub struct Hub {
    node_tag: u32,
    sequence: AtomicU32,
    config: HubConfig,
    bus: Arc<dyn Bus>,
    media: Arc<dyn MediaControl>,
    /// The SFU, when this node runs one; room sockets join it with SDP.
    plane: Option<Media>,
    rooms: RoomRegistry,
    users: Mutex<HashMap<UserId, UserEntry>>,
    /// Rooms being transcribed and who turned it on, so joiners can be told.
    transcribing: Mutex<HashMap<RoomId, UserId>>,
    /// Users a moderator muted in a room, until a moderator asks them to unmute. It belongs
    /// to the user in the room, not to a socket: leaving and joining again keeps it.
    mute_locks: Mutex<HashSet<(RoomId, UserId)>>,
    /// Open sockets per user, against [`HubConfig::max_sockets_per_user`].
    sockets: Arc<SocketCounts>,
    /// Open sockets by the sign-in session that opened them.
    sessions: Arc<OpenSessions>,
    /// Per user and message type: how often a client may send each kind of message.
    limits: MessageLimits,
    /// This run of the node, told apart from an earlier run under the same tag.
    incarnation: u64,
    /// Which other nodes are alive (heartbeats).
    nodes: Mutex<NodeLiveness>,
    /// Every task the hub and its sockets start; the server waits for them at shutdown.
    tasks: TaskTracker,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node_tag", &self.node_tag)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// `node_tag` must differ between nodes sharing a bus (it prefixes participant ids).
    pub fn new(
        node_tag: u32,
        config: HubConfig,
        bus: Arc<dyn Bus>,
        media: Arc<dyn MediaControl>,
    ) -> Arc<Self> {
        Arc::new(Self {
            node_tag: node_tag & ((1 << ParticipantId::NODE_TAG_BITS) - 1),
            sequence: AtomicU32::new(1),
            rooms: RoomRegistry::new(config.socket_buffer),
            config,
            bus,
            media,
            plane: None,
            users: Mutex::new(HashMap::new()),
            transcribing: Mutex::new(HashMap::new()),
            mute_locks: Mutex::new(HashSet::new()),
            sockets: Arc::new(SocketCounts::default()),
            sessions: Arc::new(OpenSessions::default()),
            limits: MessageLimits::new(),
            incarnation: new_incarnation(),
            nodes: Mutex::new(NodeLiveness::new(config.node_expiry)),
            tasks: TaskTracker::new(),
            shutdown: watch::channel(false).0,
        })
    }

    /// A node whose room sockets carry media through `media`'s SFU.
    pub fn with_media(
        node_tag: u32,
        config: HubConfig,
        bus: Arc<dyn Bus>,
        media: Media,
    ) -> Arc<Self> {
        let mut hub = Self::new(node_tag, config, bus, Arc::new(media.clone()));
        if let Some(h) = Arc::get_mut(&mut hub) {
            h.plane = Some(media);
        }
        hub
    }

    /// The media plane, if this node has one.
    pub fn media_plane(&self) -> Option<&Media> {
        self.plane.as_ref()
    }

    /// Starts applying bus events, and forgetting idle rate-limit state once a minute. Both
    /// end at [`Hub::shutdown`]; [`Hub::tasks`] owns them.
    pub fn start(self: &Arc<Self>) {
        let hub = Arc::clone(self);
        let mut rx = hub.bus.subscribe();
        let mut stop = hub.shutdown.subscribe();
        self.tasks.spawn(async move {
            let mut housekeeping = tokio::time::interval(Duration::from_secs(60));
            housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    got = rx.recv() => match got {
                        Ok(envelope) => hub.apply(envelope),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "bus dispatcher lagged; events lost on this node");
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = housekeeping.tick() => hub.limits.forget_idle(),
                    _ = stop.changed() => break,
                }
            }
        });
        // Heartbeats on their own task: a publish may wait for Redis, and the dispatcher
        // must not.
        let hub = Arc::clone(self);
        let mut stop = hub.shutdown.subscribe();
        self.tasks.spawn(async move {
            let mut beat = tokio::time::interval(hub.config.node_heartbeat);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = beat.tick() => {
                        let heartbeat = BusEvent::Heartbeat { node: hub.node_tag, incarnation: hub.incarnation };
                        if let Err(err) = hub.publish(heartbeat).await {
                            tracing::debug!(error = %err, "heartbeat not published");
                        }
                        let dead = hub.node_liveness().expire(tokio::time::Instant::now());
                        for node in dead {
                            hub.expire_node(node, "went silent");
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        });
    }

    fn node_liveness(&self) -> std::sync::MutexGuard<'_, NodeLiveness> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Clears a dead (or restarted) node's participants from every room here, as if each
    /// had timed out, and forgets its user sockets.
    fn expire_node(&self, node: u32, why: &str) {
        let removed = self.rooms.remove_node(node);
        tracing::warn!(
            node,
            participants = removed.len(),
            "node {why}: its participants are cleared"
        );
        metrics::counter!("bus_nodes_expired_total").increment(1);
        for (room_id, info) in removed {
            self.rooms.fan_out(
                room_id,
                ServerMessage::ParticipantLeft {
                    participant_id: info.participant_id,
                    user_id: info.user_id,
                    reason: LeaveReason::Timeout,
                },
            );
        }
        let mut users = self.users();
        users.retain(|_, entry| {
            entry.remote.remove(&node);
            entry.local > 0 || !entry.remote.is_empty()
        });
    }

    /// The owner of every task the hub and its sockets spawn (the dispatcher, a summary
    /// being written for a socket, a socket's errands). At shutdown the server closes it and
    /// waits, with a deadline.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Takes a place for one more socket of `user_id`, held until the permit drops.
    ///
    /// # Errors
    /// [`TooManySockets`] when the user already has [`HubConfig::max_sockets_per_user`] of
    /// this kind on this node.
    pub fn open_socket(
        &self,
        user_id: UserId,
        kind: SocketKind,
    ) -> Result<SocketPermit, TooManySockets> {
        SocketCounts::acquire(
            &self.sockets,
            user_id,
            kind,
            self.config.max_sockets_per_user,
        )
    }

    /// Registers a socket opened by `user_id`'s sign-in `session` (the token's id); the
    /// guard's token is cancelled when that session ends on any node.
    pub fn register_session(&self, user_id: UserId, session: &str) -> SessionGuard {
        OpenSessions::register(&self.sessions, user_id, session)
    }

    /// Ends sessions of `user_id` on every node: their sockets close with 4005.
    ///
    /// # Errors
    /// [`BusError`] when other nodes could not be told (this node's sockets close anyway).
    pub async fn end_sessions(&self, user_id: UserId, ending: Ending) -> Result<(), BusError> {
        self.publish(BusEvent::SessionsEnded { user_id, ending })
            .await
    }

    /// Takes one message of `kind` from `user_id`'s budget on this node.
    ///
    /// # Errors
    /// How long to wait, when the budget is spent (counted in `ws_messages_refused_total`).
    pub fn admit(&self, user_id: UserId, kind: &'static str) -> Result<(), Duration> {
        self.limits.check(user_id, kind)
    }

    pub fn config(&self) -> HubConfig {
        self.config
    }

    /// Every bus envelope from now on, for application services that follow other nodes
    /// (the transcriber joins a room's transcription started elsewhere).
    pub fn subscribe_bus(&self) -> broadcast::Receiver<Envelope> {
        self.bus.subscribe()
    }

    pub fn node_tag(&self) -> u32 {
        self.node_tag
    }

    /// Tells every connection and the dispatcher to stop.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, UserEntry>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn next_participant_id(&self) -> ParticipantId {
        ParticipantId::new(self.node_tag, self.sequence.fetch_add(1, Ordering::Relaxed))
    }

    /// Publishes a room event to every node.
    ///
    /// # Errors
    /// [`BusError`] when the bus refuses it.
    pub async fn publish_room(&self, room_id: RoomId, event: RoomEvent) -> Result<(), BusError> {
        self.publish(BusEvent::Room { room_id, event }).await
    }

    /// Sends `message` to every socket of `user_id`, on every node.
    ///
    /// # Errors
    /// [`BusError`] when the bus refuses it.
    pub async fn publish_user(
        &self,
        user_id: UserId,
        message: ServerMessage,
    ) -> Result<(), BusError> {
        self.publish(BusEvent::User { user_id, message }).await
    }

    async fn publish(&self, event: BusEvent) -> Result<(), BusError> {
        self.bus
            .publish(Envelope {
                origin: self.node_tag,
                event,
            })
            .await
    }

    // ---- room calls ----

    /// Puts a new local participant in the call; returns everyone in it and the receiver of
    /// the room's events from now on. Others learn it through the bus.
    pub async fn join(
        &self,
        room_id: RoomId,
        info: ParticipantInfo,
    ) -> (Vec<ParticipantInfo>, broadcast::Receiver<Arc<Outbound>>) {
        let (participants, rx) = self.rooms.join_local(room_id, info.clone());
        tracing::info!(room_id, participant_id = %info.participant_id, user_id = info.user_id, "participant joined");
        if let Err(err) = self
            .publish_room(room_id, RoomEvent::Joined { participant: info })
            .await
        {
            tracing::warn!(room_id, error = %err, "could not announce a join");
        }
        (participants, rx)
    }

    /// Takes a local participant out of the call. Does nothing if it is already out (a
    /// removal got there first).
    pub async fn leave(&self, room_id: RoomId, participant: ParticipantId, reason: LeaveReason) {
        let Some(info) = self.rooms.remove(room_id, participant) else {
            return;
        };
        tracing::info!(room_id, participant_id = %participant, reason = ?reason, "participant left");
        let event = RoomEvent::Left {
            participant_id: participant,
            user_id: info.user_id,
            reason,
        };
        if let Err(err) = self.publish_room(room_id, event).await {
            tracing::warn!(room_id, error = %err, "could not announce a leave");
        }
    }

    /// Events of a room for a socket that isn't in the call: it only acts on its removal.
    pub fn watch_room(&self, room_id: RoomId) -> broadcast::Receiver<Arc<Outbound>> {
        self.rooms.watch(room_id)
    }

    /// A socket that never joined (or left) is done with the room.
    pub fn release_room(&self, room_id: RoomId) {
        self.rooms.release(room_id);
    }

    pub fn participant(&self, room_id: RoomId, id: ParticipantId) -> Option<ParticipantInfo> {
        self.rooms.participant(room_id, id)
    }

    /// Everyone in the room's call now, on any node.
    /// Who turned on the room's transcription, while it is on (as every node has heard).
    pub fn transcribed_by(&self, room_id: RoomId) -> Option<UserId> {
        self.transcribing
            .lock()
            .ok()
            .and_then(|t| t.get(&room_id).copied())
    }

    /// Whether a moderator's mute holds for `user_id` in the room (as every node has heard).
    pub fn is_mute_locked(&self, room_id: RoomId, user_id: UserId) -> bool {
        self.mute_locks
            .lock()
            .is_ok_and(|l| l.contains(&(room_id, user_id)))
    }

    fn set_mute_lock(&self, room_id: RoomId, user_id: UserId, locked: bool) {
        if let Ok(mut l) = self.mute_locks.lock() {
            if locked {
                l.insert((room_id, user_id));
            } else {
                l.remove(&(room_id, user_id));
            }
        }
    }

    pub fn participants(&self, room_id: RoomId) -> Vec<ParticipantInfo> {
        self.rooms.participants(room_id)
    }

    /// Whether the user is in a call in any room, on any node: busy for an invite.
    pub fn is_in_call(&self, user_id: UserId) -> bool {
        self.rooms.user_in_call(user_id)
    }

    // ---- user sockets ----

    /// Registers a user socket; returns the receiver of that user's messages.
    pub async fn connect_user(&self, user_id: UserId) -> broadcast::Receiver<Arc<Outbound>> {
        let (rx, count) = {
            let mut users = self.users();
            let entry = users.entry(user_id).or_default();
            let tx = entry
                .tx
                .get_or_insert_with(|| broadcast::channel(self.config.socket_buffer).0);
            let rx = tx.subscribe();
            entry.local += 1;
            (rx, entry.local)
        };
        self.announce_presence(user_id, count).await;
        rx
    }

    pub async fn disconnect_user(&self, user_id: UserId) {
        let count = {
            let mut users = self.users();
            let Some(entry) = users.get_mut(&user_id) else {
                return;
            };
            entry.local = entry.local.saturating_sub(1);
            let count = entry.local;
            if count == 0 {
                entry.tx = None;
                if entry.remote.values().all(|n| *n == 0) {
                    users.remove(&user_id);
                }
            }
            count
        };
        self.announce_presence(user_id, count).await;
    }

    async fn announce_presence(&self, user_id: UserId, connections: u32) {
        let event = BusEvent::Presence {
            user_id,
            node: self.node_tag,
            connections,
        };
        if let Err(err) = self.publish(event).await {
            tracing::warn!(user_id, error = %err, "could not announce presence");
        }
    }

    /// Whether the user has a user socket open on any node.
    pub fn is_online(&self, user_id: UserId) -> bool {
        self.users()
            .get(&user_id)
            .is_some_and(|e| e.local > 0 || e.remote.values().any(|n| *n > 0))
    }

    // ---- the dispatcher ----

    /// Applies one bus event to this node's view and sockets.
    fn apply(&self, envelope: Envelope) {
        let from_here = envelope.origin == self.node_tag;
        let now = tokio::time::Instant::now();
        match &envelope.event {
            BusEvent::Heartbeat { incarnation, .. } if from_here => {
                // Under our tag but another incarnation: a twin misconfigured with our tag,
                // nothing to learn from.
                let ours = *incarnation == self.incarnation;
                ours.then(|| self.node_liveness().own_heartbeat_returned(now));
            }
            BusEvent::Heartbeat { incarnation, .. } => {
                let restarted =
                    self.node_liveness()
                        .heard(envelope.origin, Some(*incarnation), now);
                if restarted {
                    self.expire_node(envelope.origin, "restarted");
                }
            }
            _ if !from_here => {
                self.node_liveness().heard(envelope.origin, None, now);
            }
            _ => {}
        }
        match envelope.event {
            BusEvent::Heartbeat { .. } => {}
            BusEvent::Room { room_id, event } => self.apply_room(room_id, event, from_here),
            BusEvent::User { user_id, message } => {
                let tx = self.users().get(&user_id).and_then(|e| e.tx.clone());
                if let Some(tx) = tx {
                    let _ = tx.send(Outbound::new(message));
                }
            }
            BusEvent::SessionsEnded { user_id, ending } => {
                let closed = self.sessions.end(user_id, &ending);
                if closed > 0 {
                    tracing::info!(user_id, closed, "sessions ended: closing their sockets");
                }
            }
            BusEvent::Presence {
                user_id,
                node,
                connections,
            } => {
                if node != self.node_tag {
                    let mut users = self.users();
                    let entry = users.entry(user_id).or_default();
                    entry.remote.insert(node, connections);
                    entry.remote.retain(|_, n| *n > 0);
                    if entry.local == 0 && entry.remote.is_empty() {
                        users.remove(&user_id);
                    }
                }
            }
        }
    }

    fn apply_room(&self, room_id: RoomId, event: RoomEvent, from_here: bool) {
        let rooms = &self.rooms;
        match event {
            RoomEvent::Joined { participant } => {
                // The joining node applied it already, before subscribing the socket.
                if !from_here {
                    rooms.join_remote(room_id, participant.clone());
                }
                rooms.fan_out(room_id, ServerMessage::ParticipantJoined { participant });
            }
            RoomEvent::Left {
                participant_id,
                user_id,
                reason,
            } => {
                if !from_here {
                    rooms.remove(room_id, participant_id);
                }
                rooms.fan_out(
                    room_id,
                    ServerMessage::ParticipantLeft {
                        participant_id,
                        user_id,
                        reason,
                    },
                );
            }
            RoomEvent::Chat { message } => {
                rooms.fan_out(room_id, ServerMessage::Chat { message });
            }
            RoomEvent::MuteChanged {
                participant_id,
                muted,
                mute_locked,
                by_user_id,
            } => {
                let Some(info) = rooms.participant(room_id, participant_id) else {
                    return;
                };
                self.set_mute_lock(room_id, info.user_id, muted && mute_locked);
                if rooms.set_mute(room_id, participant_id, muted, mute_locked) == Some(true) {
                    self.media.set_muted(room_id, participant_id, muted);
                }
                rooms.fan_out(
                    room_id,
                    ServerMessage::MuteChanged {
                        participant_id,
                        user_id: info.user_id,
                        muted,
                        mute_locked,
                        by_user_id,
                    },
                );
            }
            RoomEvent::UnmuteRequested {
                participant_id,
                by_user_id,
            } => {
                let Some(info) = rooms.participant(room_id, participant_id) else {
                    return;
                };
                // Asking to unmute lifts the moderator's lock; the participant decides.
                self.set_mute_lock(room_id, info.user_id, false);
                rooms.set_mute(room_id, participant_id, info.muted, false);
                rooms.fan_out(
                    room_id,
                    ServerMessage::UnmuteRequested {
                        participant_id,
                        user_id: info.user_id,
                        by_user_id,
                    },
                );
            }
            RoomEvent::RoleChanged {
                user_id,
                role,
                by_user_id,
            } => {
                rooms.set_role(room_id, user_id, role);
                rooms.fan_out(
                    room_id,
                    ServerMessage::RoleChanged {
                        user_id,
                        role,
                        by_user_id,
                    },
                );
            }
            RoomEvent::Transcription {
                active, by_user_id, ..
            } => {
                if let Ok(mut t) = self.transcribing.lock() {
                    if active {
                        t.insert(room_id, by_user_id);
                    } else {
                        t.remove(&room_id);
                    }
                }
                rooms.fan_out(
                    room_id,
                    ServerMessage::TranscriptionState { active, by_user_id },
                );
            }
            RoomEvent::Caption { caption } => {
                if matches!(
                    caption,
                    ServerMessage::Caption { .. } | ServerMessage::CaptionPartial { .. }
                ) {
                    rooms.fan_out(room_id, caption);
                }
            }
            RoomEvent::Summary { summary } => {
                rooms.fan_out(
                    room_id,
                    ServerMessage::Summary {
                        request_id: None,
                        summary,
                    },
                );
            }
            RoomEvent::RoomDeleted { by_user_id } => {
                if let Ok(mut locks) = self.mute_locks.lock() {
                    locks.retain(|(room, _)| *room != room_id);
                }
                if let Ok(mut t) = self.transcribing.lock() {
                    t.remove(&room_id);
                }
                // Every socket of the room sees this and closes itself; the media of this
                // node's participants ends now, not when each socket gets round to it.
                rooms.fan_out(room_id, ServerMessage::RoomDeleted { by_user_id });
                for (info, local) in rooms.remove_all(room_id) {
                    if local {
                        self.media.remove_participant(room_id, info.participant_id);
                    }
                }
            }
            RoomEvent::MemberRemoved {
                user_id,
                by_user_id,
            } => {
                self.set_mute_lock(room_id, user_id, false);
                // The removed user's sockets see this and close themselves.
                rooms.fan_out(
                    room_id,
                    ServerMessage::MemberRemoved {
                        user_id,
                        by_user_id,
                    },
                );
                for (info, local) in rooms.remove_user(room_id, user_id) {
                    if local {
                        self.media.remove_participant(room_id, info.participant_id);
                    }
                    rooms.fan_out(
                        room_id,
                        ServerMessage::ParticipantLeft {
                            participant_id: info.participant_id,
                            user_id,
                            reason: LeaveReason::Removed,
                        },
                    );
                }
            }
        }
    }
}

/// A participant as it enters the call: unmuted, with its member role.
pub fn participant_info(
    id: ParticipantId,
    user_id: UserId,
    username: &str,
    role: Role,
) -> ParticipantInfo {
    ParticipantInfo {
        participant_id: id,
        user_id,
        username: username.to_owned(),
        role,
        muted: false,
        mute_locked: false,
    }
}
