//! Room call state: who is in each room's call right now, their role and mute state, and the
//! channel that fans events out to this node's sockets in that room.
//!
//! This is the one place that changes participant state. Every node keeps the full list of
//! a room's participants (its own and, learned from the bus, other nodes'), so `joined`
//! lists everyone wherever they are connected.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

use crate::protocol::{ParticipantId, ParticipantInfo, Role, RoomId, ServerMessage, UserId};

/// A server message serialized once, shared by every socket it goes to (fan-out to 200
/// sockets must not serialize 200 times).
#[derive(Debug)]
pub struct Outbound {
    pub message: ServerMessage,
    pub json: String,
}

impl Outbound {
    pub fn new(message: ServerMessage) -> Arc<Self> {
        // Serializing our own enum of strings and numbers can't fail; an empty frame would
        // be ignored by clients if it ever did.
        let json = serde_json::to_string(&message).unwrap_or_default();
        Arc::new(Self { message, json })
    }
}

#[derive(Debug, Clone)]
struct Participant {
    info: ParticipantInfo,
    /// Connected to this node (its media, if any, is here too).
    local: bool,
}

#[derive(Debug)]
struct Room {
    participants: BTreeMap<ParticipantId, Participant>,
    tx: broadcast::Sender<Arc<Outbound>>,
}

/// All rooms with someone in the call, on this node's view.
#[derive(Debug)]
pub struct RoomRegistry {
    // A std Mutex: every critical section is a few map operations with no `.await`, so an
    // async mutex would only add overhead (the reasoning of mini-redis's `db.rs`).
    rooms: Mutex<HashMap<RoomId, Room>>,
    capacity: usize,
}

impl RoomRegistry {
    /// `capacity`: how many events a slow socket may fall behind before it is told it lagged.
    pub fn new(capacity: usize) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, Room>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a local participant and subscribes it to the room's events, atomically: it sees
    /// every event after the snapshot it gets and none before.
    pub fn join_local(
        &self,
        room_id: RoomId,
        info: ParticipantInfo,
    ) -> (Vec<ParticipantInfo>, broadcast::Receiver<Arc<Outbound>>) {
        let mut rooms = self.lock();
        let capacity = self.capacity;
        let room = rooms.entry(room_id).or_insert_with(|| Room {
            participants: BTreeMap::new(),
            tx: broadcast::channel(capacity).0,
        });
        room.participants
            .insert(info.participant_id, Participant { info, local: true });
        let rx = room.tx.subscribe();
        let snapshot = room.participants.values().map(|p| p.info.clone()).collect();
        (snapshot, rx)
    }

    /// Subscribes a socket that isn't in the call (yet) to the room's events, so it learns of
    /// its own removal.
    pub fn watch(&self, room_id: RoomId) -> broadcast::Receiver<Arc<Outbound>> {
        let mut rooms = self.lock();
        let capacity = self.capacity;
        rooms
            .entry(room_id)
            .or_insert_with(|| Room {
                participants: BTreeMap::new(),
                tx: broadcast::channel(capacity).0,
            })
            .tx
            .subscribe()
    }

    /// Records a participant connected to another node.
    pub fn join_remote(&self, room_id: RoomId, info: ParticipantInfo) {
        let mut rooms = self.lock();
        let capacity = self.capacity;
        let room = rooms.entry(room_id).or_insert_with(|| Room {
            participants: BTreeMap::new(),
            tx: broadcast::channel(capacity).0,
        });
        room.participants
            .insert(info.participant_id, Participant { info, local: false });
    }

    /// Removes a participant; `None` when it was already gone (so leaving is idempotent).
    pub fn remove(&self, room_id: RoomId, participant: ParticipantId) -> Option<ParticipantInfo> {
        let mut rooms = self.lock();
        let room = rooms.get_mut(&room_id)?;
        let removed = room.participants.remove(&participant).map(|p| p.info);
        Self::drop_if_idle(&mut rooms, room_id);
        removed
    }

    /// Removes every participant of `user_id`; returns them with whether each was local.
    pub fn remove_user(&self, room_id: RoomId, user_id: UserId) -> Vec<(ParticipantInfo, bool)> {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(&room_id) else {
            return Vec::new();
        };
        let ids: Vec<ParticipantId> = room
            .participants
            .values()
            .filter(|p| p.info.user_id == user_id)
            .map(|p| p.info.participant_id)
            .collect();
        let removed = ids
            .into_iter()
            .filter_map(|id| room.participants.remove(&id))
            .map(|p| (p.info, p.local))
            .collect();
        Self::drop_if_idle(&mut rooms, room_id);
        removed
    }

    /// Removes everyone from the room's call (the room was deleted); with whether each was
    /// local.
    pub fn remove_all(&self, room_id: RoomId) -> Vec<(ParticipantInfo, bool)> {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(&room_id) else {
            return Vec::new();
        };
        let removed = std::mem::take(&mut room.participants)
            .into_values()
            .map(|p| (p.info, p.local))
            .collect();
        Self::drop_if_idle(&mut rooms, room_id);
        removed
    }

    /// Removes the participants that joined through node `node_tag` (a node that died) from
    /// every room; returns them with their rooms.
    pub fn remove_node(&self, node_tag: u32) -> Vec<(RoomId, ParticipantInfo)> {
        let mut rooms = self.lock();
        let mut removed = Vec::new();
        for (room_id, room) in rooms.iter_mut() {
            room.participants.retain(|id, p| {
                let theirs = !p.local && id.node_tag() == node_tag;
                if theirs {
                    removed.push((*room_id, p.info.clone()));
                }
                !theirs
            });
        }
        let emptied: Vec<RoomId> = removed.iter().map(|(r, _)| *r).collect();
        for room_id in emptied {
            Self::drop_if_idle(&mut rooms, room_id);
        }
        removed
    }

    fn drop_if_idle(rooms: &mut HashMap<RoomId, Room>, room_id: RoomId) {
        if rooms
            .get(&room_id)
            .is_some_and(|r| r.participants.is_empty() && r.tx.receiver_count() == 0)
        {
            rooms.remove(&room_id);
        }
    }

    pub fn participant(&self, room_id: RoomId, id: ParticipantId) -> Option<ParticipantInfo> {
        self.lock()
            .get(&room_id)?
            .participants
            .get(&id)
            .map(|p| p.info.clone())
    }

    /// Whether `user_id` is in any room's call, on any node (as this node has heard).
    pub fn user_in_call(&self, user_id: UserId) -> bool {
        self.lock().values().any(|room| {
            room.participants
                .values()
                .any(|p| p.info.user_id == user_id)
        })
    }

    pub fn participants(&self, room_id: RoomId) -> Vec<ParticipantInfo> {
        self.lock().get(&room_id).map_or_else(Vec::new, |room| {
            room.participants.values().map(|p| p.info.clone()).collect()
        })
    }

    /// Sets a participant's mute state; returns whether it is connected here.
    pub fn set_mute(
        &self,
        room_id: RoomId,
        id: ParticipantId,
        muted: bool,
        mute_locked: bool,
    ) -> Option<bool> {
        let mut rooms = self.lock();
        let p = rooms.get_mut(&room_id)?.participants.get_mut(&id)?;
        p.info.muted = muted;
        p.info.mute_locked = mute_locked;
        Some(p.local)
    }

    pub fn set_role(&self, room_id: RoomId, user_id: UserId, role: Role) {
        if let Some(room) = self.lock().get_mut(&room_id) {
            for p in room.participants.values_mut() {
                if p.info.user_id == user_id {
                    p.info.role = role;
                }
            }
        }
    }

    /// Sends `message` to this node's sockets in the room.
    pub fn fan_out(&self, room_id: RoomId, message: ServerMessage) {
        let tx = match self.lock().get(&room_id) {
            Some(room) if room.tx.receiver_count() > 0 => room.tx.clone(),
            _ => return,
        };
        // Serialized outside the lock; the channel keeps one order for all its receivers.
        let _ = tx.send(Outbound::new(message));
    }

    /// Forgets rooms whose last local socket went away and that have nobody in the call.
    pub fn release(&self, room_id: RoomId) {
        Self::drop_if_idle(&mut self.lock(), room_id);
    }
}
