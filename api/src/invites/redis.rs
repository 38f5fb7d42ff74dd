//! Pending invites in Redis, shared by every node:
//!
//! - `{prefix}:invite:{id}`: the invite as JSON, with a TTL a minute past its expiry, so a
//!   key nobody swept still goes away.
//! - `{prefix}:invite_pair:{room}:{callee}`: `SET NX` guard, one pending invite per callee
//!   and room.
//! - `{prefix}:invites`: sorted set of ids by expiry, which every node's sweeper reads.
//! - `{prefix}:invites_of:{user}`: sorted set of the ids a user is caller or callee of, by
//!   expiry, so `GET /invites` reads that user's invites and nobody else's. Entries of ended
//!   invites are dropped when the list is next read (and the key expires with its last one).
//!
//! Ending is `GETDEL` of the invite key: Redis runs it atomically, so of an accept on node A
//! and a timeout swept on node B, exactly one gets the invite.
//!
//! An invite is sealed with the cluster key for its own key ([`crate::sealed`]): one that
//! some other writer put in Redis (to let someone into a room) is no invite.

use redis::aio::ConnectionManager;

use super::store::{InviteStoreError, StoredInvite};
use crate::sealed::ClusterKey;

/// How long keys outlive their invite, for a sweeper that is late.
const KEY_GRACE_MS: i64 = 60_000;
/// Invites swept per pass; the rest wait for the next pass.
const SWEEP_BATCH: isize = 200;
/// Pending invites of one user listed at most (a user rings or is rung by far fewer).
const LIST_MAX: isize = 200;

pub struct RedisInvites {
    conn: ConnectionManager,
    prefix: String,
    seal: ClusterKey,
}

impl std::fmt::Debug for RedisInvites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisInvites")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisInvites {
    pub fn new(conn: ConnectionManager, prefix: &str, seal: ClusterKey) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            seal,
        }
    }

    /// The invite stored under `key`, if a node sealed it there.
    fn open(&self, key: &str, value: &str) -> Result<Option<StoredInvite>, InviteStoreError> {
        match self.seal.open_stored("invite", key, value) {
            Some(json) => Ok(Some(serde_json::from_str(json)?)),
            None => Ok(None),
        }
    }

    fn key(&self, id: &str) -> String {
        format!("{}:invite:{id}", self.prefix)
    }

    fn pair_key(&self, stored: &StoredInvite) -> String {
        format!(
            "{}:invite_pair:{}:{}",
            self.prefix, stored.invite.room_id, stored.invite.to_user_id
        )
    }

    fn expiry_key(&self) -> String {
        format!("{}:invites", self.prefix)
    }

    pub(super) async fn insert(&self, stored: &StoredInvite) -> Result<bool, InviteStoreError> {
        let mut conn = self.conn.clone();
        let ttl_ms = (stored.expires_at_ms - crate::db::now_millis()).max(0) + KEY_GRACE_MS;
        let claimed: Option<String> = redis::cmd("SET")
            .arg(self.pair_key(stored))
            .arg(&stored.invite.id)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await?;
        if claimed.is_none() && !self.reclaim_stale_pair(stored, ttl_ms).await? {
            return Ok(false);
        }
        let key = self.key(&stored.invite.id);
        let sealed = self.seal.seal(&key, &serde_json::to_string(stored)?);
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(key)
            .arg(sealed)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("ZADD")
            .arg(self.expiry_key())
            .arg(stored.expires_at_ms)
            .arg(&stored.invite.id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        self.index_users(stored, ttl_ms).await?;
        Ok(true)
    }

    fn user_key(&self, user_id: signaling::protocol::UserId) -> String {
        format!("{}:invites_of:{user_id}", self.prefix)
    }

    /// Adds the invite to its caller's and callee's lists; each list lives as long as its
    /// newest invite.
    async fn index_users(
        &self,
        stored: &StoredInvite,
        ttl_ms: i64,
    ) -> Result<(), InviteStoreError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for user in [stored.invite.from_user_id, stored.invite.to_user_id] {
            let key = self.user_key(user);
            pipe.cmd("ZADD")
                .arg(&key)
                .arg(stored.expires_at_ms)
                .arg(&stored.invite.id)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(ttl_ms)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// The pending invites `user_id` is caller or callee of, from that user's list only.
    pub(super) async fn involving(
        &self,
        user_id: signaling::protocol::UserId,
    ) -> Result<Vec<StoredInvite>, InviteStoreError> {
        let mut conn = self.conn.clone();
        let key = self.user_key(user_id);
        let stale_before = crate::db::now_millis() - KEY_GRACE_MS;
        let _: () = redis::cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(stale_before)
            .query_async(&mut conn)
            .await?;
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(LIST_MAX - 1)
            .query_async(&mut conn)
            .await?;
        let mut pending = Vec::with_capacity(ids.len());
        for id in ids {
            match self.get(&id).await? {
                Some(stored) => pending.push(stored),
                // Ended (accepted, declined, cancelled, timed out) since it was listed.
                None => {
                    let _: () = redis::cmd("ZREM")
                        .arg(&key)
                        .arg(&id)
                        .query_async(&mut conn)
                        .await?;
                }
            }
        }
        Ok(pending)
    }

    /// The pair guard names an invite that no longer exists (a node died between ending an
    /// invite and clearing its guard): take the guard over instead of refusing for a minute.
    async fn reclaim_stale_pair(
        &self,
        stored: &StoredInvite,
        ttl_ms: i64,
    ) -> Result<bool, InviteStoreError> {
        let mut conn = self.conn.clone();
        let holder: Option<String> = redis::cmd("GET")
            .arg(self.pair_key(stored))
            .query_async(&mut conn)
            .await?;
        let Some(holder) = holder else {
            return Ok(false);
        };
        let alive: bool = redis::cmd("EXISTS")
            .arg(self.key(&holder))
            .query_async(&mut conn)
            .await?;
        if alive {
            return Ok(false);
        }
        // Only if the guard still names that dead invite (no one else reclaimed it first).
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then \
               redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0",
        );
        let swapped: i64 = script
            .key(self.pair_key(stored))
            .arg(holder)
            .arg(&stored.invite.id)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(swapped == 1)
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<StoredInvite>, InviteStoreError> {
        let mut conn = self.conn.clone();
        let key = self.key(id);
        let value: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        match value {
            Some(value) => self.open(&key, &value),
            None => Ok(None),
        }
    }

    pub(super) async fn take(&self, id: &str) -> Result<Option<StoredInvite>, InviteStoreError> {
        let mut conn = self.conn.clone();
        let key = self.key(id);
        let value: Option<String> = redis::cmd("GETDEL")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        // Whoever took it (or found it gone) also clears the index entries.
        let _: () = redis::cmd("ZREM")
            .arg(self.expiry_key())
            .arg(id)
            .query_async(&mut conn)
            .await?;
        // A forgery is gone now too, and ends nothing.
        let Some(stored) = value.map(|v| self.open(&key, &v)).transpose()?.flatten() else {
            return Ok(None);
        };
        let _: () = redis::cmd("DEL")
            .arg(self.pair_key(&stored))
            .query_async(&mut conn)
            .await?;
        Ok(Some(stored))
    }

    pub(super) async fn take_expired(
        &self,
        now_ms: i64,
    ) -> Result<Vec<StoredInvite>, InviteStoreError> {
        let mut conn = self.conn.clone();
        let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.expiry_key())
            .arg("-inf")
            .arg(now_ms)
            .arg("LIMIT")
            .arg(0)
            .arg(SWEEP_BATCH)
            .query_async(&mut conn)
            .await?;
        let mut taken = Vec::new();
        for id in due {
            if let Some(stored) = self.take(&id).await? {
                taken.push(stored);
            }
        }
        Ok(taken)
    }
}
