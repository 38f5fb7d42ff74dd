//! Where pending invites live: this process's memory (one node), or Redis (several nodes,
//! and a restart loses nothing). Both end an invite with one atomic "take", so exactly one
//! of accept / decline / cancel / timeout wins, whichever node it runs on.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use signaling::protocol::{Invite, RoomId, UserId};

pub use super::redis::RedisInvites;

/// An invite with its expiry as a number, for the sweeper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredInvite {
    pub invite: Invite,
    /// Unix milliseconds.
    pub expires_at_ms: i64,
}

impl StoredInvite {
    fn pair(&self) -> (RoomId, UserId) {
        (self.invite.room_id, self.invite.to_user_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InviteStoreError {
    #[error("invite store (Redis): {0}")]
    Redis(#[from] redis::RedisError),
    #[error("invite store: undecodable invite: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Pending invites in this process, for a single node. A restart forgets them (the callee's
/// tabs stop ringing at their own `expires_at`).
#[derive(Debug, Default)]
pub struct MemoryInvites {
    pending: Mutex<HashMap<String, StoredInvite>>,
}

impl MemoryInvites {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, StoredInvite>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, stored: &StoredInvite) -> bool {
        let mut pending = self.lock();
        if pending.values().any(|p| p.pair() == stored.pair()) {
            return false;
        }
        pending.insert(stored.invite.id.clone(), stored.clone());
        true
    }

    fn take_expired(&self, now_ms: i64) -> Vec<StoredInvite> {
        let mut pending = self.lock();
        let expired: Vec<String> = pending
            .iter()
            .filter(|(_, p)| p.expires_at_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        expired.iter().filter_map(|id| pending.remove(id)).collect()
    }
}

/// The store `CallInviteService` runs on.
#[derive(Debug)]
pub enum InviteStore {
    Memory(MemoryInvites),
    Redis(RedisInvites),
}

impl InviteStore {
    /// Adds a pending invite; `false` when the callee already rings for that room.
    ///
    /// # Errors
    /// [`InviteStoreError`] when Redis fails.
    pub async fn insert(&self, stored: &StoredInvite) -> Result<bool, InviteStoreError> {
        match self {
            InviteStore::Memory(m) => Ok(m.insert(stored)),
            InviteStore::Redis(r) => r.insert(stored).await,
        }
    }

    /// The pending invite `id`, left pending.
    ///
    /// # Errors
    /// [`InviteStoreError`] when Redis fails.
    pub async fn get(&self, id: &str) -> Result<Option<StoredInvite>, InviteStoreError> {
        match self {
            InviteStore::Memory(m) => Ok(m.lock().get(id).cloned()),
            InviteStore::Redis(r) => r.get(id).await,
        }
    }

    /// Ends the invite `id`: of concurrent takes (on any node) exactly one gets it.
    ///
    /// # Errors
    /// [`InviteStoreError`] when Redis fails.
    pub async fn take(&self, id: &str) -> Result<Option<StoredInvite>, InviteStoreError> {
        match self {
            InviteStore::Memory(m) => Ok(m.lock().remove(id)),
            InviteStore::Redis(r) => r.take(id).await,
        }
    }

    /// Takes every invite whose time is up.
    ///
    /// # Errors
    /// [`InviteStoreError`] when Redis fails.
    pub async fn take_expired(&self, now_ms: i64) -> Result<Vec<StoredInvite>, InviteStoreError> {
        match self {
            InviteStore::Memory(m) => Ok(m.take_expired(now_ms)),
            InviteStore::Redis(r) => r.take_expired(now_ms).await,
        }
    }

    /// Every pending invite from or to `user_id`.
    ///
    /// # Errors
    /// [`InviteStoreError`] when Redis fails.
    pub async fn involving(&self, user_id: UserId) -> Result<Vec<StoredInvite>, InviteStoreError> {
        let all = match self {
            InviteStore::Memory(m) => m.lock().values().cloned().collect(),
            InviteStore::Redis(r) => r.all().await?,
        };
        Ok(all
            .into_iter()
            .filter(|p| p.invite.from_user_id == user_id || p.invite.to_user_id == user_id)
            .collect())
    }
}
