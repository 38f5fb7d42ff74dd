//! Where pending invites live: this process's memory (one node), or Redis (several nodes,
//! and a restart loses nothing). Both end an invite with one atomic "take", so exactly one
//! of accept / decline / cancel / timeout wins, whichever node it runs on.

use std::collections::{HashMap, HashSet};
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
    inner: Mutex<Pending>,
}

/// The invites by id, and the ids each user is caller or callee of, so listing one user's
/// invites reads only theirs. Both change together under the one lock.
#[derive(Debug, Default)]
struct Pending {
    by_id: HashMap<String, StoredInvite>,
    by_user: HashMap<UserId, HashSet<String>>,
}

impl Pending {
    fn insert(&mut self, stored: &StoredInvite) -> bool {
        // The callee's own invites are few, so the one-per-room check reads only those.
        let taken = self
            .of_user(stored.invite.to_user_id)
            .any(|p| p.pair() == stored.pair());
        if taken {
            return false;
        }
        let id = stored.invite.id.clone();
        for user in [stored.invite.from_user_id, stored.invite.to_user_id] {
            self.by_user.entry(user).or_default().insert(id.clone());
        }
        self.by_id.insert(id, stored.clone());
        true
    }

    fn remove(&mut self, id: &str) -> Option<StoredInvite> {
        let stored = self.by_id.remove(id)?;
        for user in [stored.invite.from_user_id, stored.invite.to_user_id] {
            if let Some(ids) = self.by_user.get_mut(&user) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_user.remove(&user);
                }
            }
        }
        Some(stored)
    }

    fn of_user(&self, user_id: UserId) -> impl Iterator<Item = &StoredInvite> {
        self.by_user
            .get(&user_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
    }
}

impl MemoryInvites {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, stored: &StoredInvite) -> bool {
        self.lock().insert(stored)
    }

    fn take_expired(&self, now_ms: i64) -> Vec<StoredInvite> {
        let mut pending = self.lock();
        let expired: Vec<String> = pending
            .by_id
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
            InviteStore::Memory(m) => Ok(m.lock().by_id.get(id).cloned()),
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

    /// Every pending invite from or to `user_id`, read from that user's index only (not
    /// from every invite pending on the deployment).
    ///
    /// # Errors
    /// [`InviteStoreError`] when Redis fails.
    pub async fn involving(&self, user_id: UserId) -> Result<Vec<StoredInvite>, InviteStoreError> {
        let mine = match self {
            InviteStore::Memory(m) => m.lock().of_user(user_id).cloned().collect(),
            InviteStore::Redis(r) => r.involving(user_id).await?,
        };
        // The index is the user's own, but a stale entry must never show someone else's.
        Ok(mine
            .into_iter()
            .filter(|p: &StoredInvite| {
                p.invite.from_user_id == user_id || p.invite.to_user_id == user_id
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(id: &str, room_id: RoomId, from: UserId, to: UserId) -> StoredInvite {
        StoredInvite {
            invite: Invite {
                id: id.to_owned(),
                room_id,
                room_name: "Call".to_owned(),
                from_user_id: from,
                from_username: format!("u{from}"),
                to_user_id: to,
                to_username: format!("u{to}"),
                created_at: String::new(),
                expires_at: String::new(),
            },
            expires_at_ms: 1_000,
        }
    }

    #[test]
    fn the_memory_index_lists_a_users_invites_and_forgets_ended_ones() {
        let store = MemoryInvites::default();
        assert!(store.insert(&invite("a", 1, 10, 20)));
        assert!(store.insert(&invite("b", 2, 30, 10)));
        assert!(store.insert(&invite("c", 3, 30, 40)));
        assert!(
            !store.insert(&invite("d", 1, 50, 20)),
            "one per callee and room"
        );
        let ids = |user| {
            let mut ids: Vec<String> = store
                .lock()
                .of_user(user)
                .map(|s| s.invite.id.clone())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(10), ["a", "b"]);
        assert_eq!(ids(40), ["c"]);
        assert!(store.lock().remove("a").is_some());
        assert_eq!(ids(10), ["b"]);
        assert!(ids(20).is_empty());
        assert_eq!(store.take_expired(1_000).len(), 2);
        let pending = store.lock();
        assert!(pending.by_user.is_empty() && pending.by_id.is_empty());
    }
}
