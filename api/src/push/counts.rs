//! How many messages of each conversation a user hasn't seen since their last open tab, so
//! one notification per conversation can say "3 new messages". In process, or in Redis when
//! several nodes send pushes (`{prefix}:push_unseen:{user}`, a hash of tag -> count).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use redis::aio::ConnectionManager;

/// Counts are dropped after this long without a new message (a user who never comes back).
const REDIS_TTL_SECS: i64 = 7 * 24 * 3600;

pub enum UnseenCounts {
    Memory(Mutex<HashMap<i64, HashMap<String, u32>>>),
    Redis {
        conn: ConnectionManager,
        prefix: String,
    },
}

impl std::fmt::Debug for UnseenCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UnseenCounts::Memory(_) => "UnseenCounts::Memory",
            UnseenCounts::Redis { .. } => "UnseenCounts::Redis",
        })
    }
}

impl UnseenCounts {
    pub fn memory() -> Self {
        UnseenCounts::Memory(Mutex::new(HashMap::new()))
    }

    /// One more unseen message in `tag`; returns the new count. A Redis failure counts 1:
    /// the notification still goes out, only its number is low.
    pub async fn bump(&self, user_id: i64, tag: &str) -> u32 {
        match self {
            UnseenCounts::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
                let n = map
                    .entry(user_id)
                    .or_default()
                    .entry(tag.to_owned())
                    .or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            UnseenCounts::Redis { conn, prefix } => {
                let key = format!("{prefix}:push_unseen:{user_id}");
                let mut conn = conn.clone();
                let result: redis::RedisResult<(u32, ())> = redis::pipe()
                    .cmd("HINCRBY")
                    .arg(&key)
                    .arg(tag)
                    .arg(1)
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(REDIS_TTL_SECS)
                    .query_async(&mut conn)
                    .await;
                result.map_or_else(
                    |err| {
                        tracing::warn!(error = %err, "unseen count not kept in Redis");
                        1
                    },
                    |(n, ())| n,
                )
            }
        }
    }

    /// The user opened a tab: they see everything from here on.
    pub async fn reset(&self, user_id: i64) {
        match self {
            UnseenCounts::Memory(map) => {
                map.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&user_id);
            }
            UnseenCounts::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let result: redis::RedisResult<()> = redis::cmd("DEL")
                    .arg(format!("{prefix}:push_unseen:{user_id}"))
                    .query_async(&mut conn)
                    .await;
                if let Err(err) = result {
                    tracing::warn!(error = %err, "unseen counts not reset in Redis");
                }
            }
        }
    }
}
