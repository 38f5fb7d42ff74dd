//! The node registry in Redis: which nodes are up, where browsers send them media, and how
//! loaded they are. Each node rewrites its record every [`HEARTBEAT`] with a [`RECORD_TTL`]
//! expiry, so a node that dies (SIGKILL, a lost box) drops out within seconds by itself.
//!
//! Records are sealed with the cluster key for their own key ([`crate::sealed`]): a record
//! some other writer put there (a fake node to have rooms placed on it) or copied from
//! another node's key is not a live node.

use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use crate::sealed::ClusterKey;

/// How often a node rewrites its record.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A record not rewritten for this long is gone: three missed heartbeats.
pub const RECORD_TTL: Duration = Duration::from_secs(6);

/// What a node says of itself every heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's tag (`node-{tag:05x}` in logs and `/metrics`).
    pub node: u32,
    /// The UDP addresses its SFU tells browsers to send media to.
    pub media: Vec<String>,
    /// Participants it is sized for (`NODE_CAPACITY`).
    pub capacity: usize,
    /// Media connections it carries now.
    pub peers: usize,
    /// Datagrams received per second over the last heartbeat.
    pub packets_per_sec: f64,
    /// Share of one core the process used over the last heartbeat (1.0 = a whole core).
    pub cpu: f64,
    /// Draining: it keeps its rooms until they end or its deadline, and gets no new ones.
    pub draining: bool,
    pub version: String,
}

impl NodeRecord {
    /// The share of its capacity in use: what room placement ranks nodes by.
    pub fn load(&self) -> f64 {
        self.peers as f64 / self.capacity.max(1) as f64
    }
}

/// Reads the live records (tag, record, tag, record, …) and forgets the tags whose record
/// expired, in one step so a node that rewrites its record meanwhile is never dropped.
const LIVE: &str = r"
local out = {}
for _, tag in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local record = redis.call('GET', ARGV[1] .. tag)
  if record then
    table.insert(out, tag)
    table.insert(out, record)
  else
    redis.call('SREM', KEYS[1], tag)
  end
end
return out
";

/// The registry's keys: `{prefix}:nodes` (a set of tags) and `{prefix}:node:{tag}`.
#[derive(Clone)]
pub struct Registry {
    conn: ConnectionManager,
    prefix: String,
    live: redis::Script,
    key: ClusterKey,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Registry {
    pub fn new(conn: ConnectionManager, prefix: &str, key: ClusterKey) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            live: redis::Script::new(LIVE),
            key,
        }
    }

    /// The cluster key its records are sealed with.
    pub fn key(&self) -> &ClusterKey {
        &self.key
    }

    fn record_prefix(&self) -> String {
        format!("{}:node:", self.prefix)
    }

    fn set_key(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// Writes this node's record for another [`RECORD_TTL`].
    ///
    /// # Errors
    /// The Redis error.
    pub async fn announce(&self, record: &NodeRecord) -> redis::RedisResult<()> {
        let json = serde_json::to_string(record).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::TypeError, "encode", e.to_string()))
        })?;
        let ttl_ms = u64::try_from(RECORD_TTL.as_millis()).unwrap_or(u64::MAX);
        let key = format!("{}{}", self.record_prefix(), record.node);
        let sealed = self.key.seal(&key, &json);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .set_options(
                key,
                sealed,
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl_ms)),
            )
            .ignore()
            .sadd(self.set_key(), record.node)
            .ignore()
            .query_async(&mut conn)
            .await
    }

    /// Takes this node out at once (a drained node going down), instead of at its TTL.
    ///
    /// # Errors
    /// The Redis error.
    pub async fn withdraw(&self, node: u32) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .del(format!("{}{node}", self.record_prefix()))
            .ignore()
            .srem(self.set_key(), node)
            .ignore()
            .query_async(&mut conn)
            .await
    }

    /// The records of every live node. A record that doesn't parse (a newer node's format)
    /// is skipped, not fatal; one no node sealed for its key, or naming another node than
    /// its key, is not a node.
    ///
    /// # Errors
    /// The Redis error.
    pub async fn live(&self) -> redis::RedisResult<Vec<NodeRecord>> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = self
            .live
            .key(self.set_key())
            .arg(self.record_prefix())
            .invoke_async(&mut conn)
            .await?;
        let record_prefix = self.record_prefix();
        Ok(raw
            .chunks_exact(2)
            .filter_map(|pair| {
                let (tag, sealed) = (&pair[0], &pair[1]);
                let json = self.key.open_stored(
                    "node_record",
                    &format!("{record_prefix}{tag}"),
                    sealed,
                )?;
                match serde_json::from_str::<NodeRecord>(json) {
                    Ok(record) if record.node.to_string() == *tag => Some(record),
                    Ok(_) => None,
                    Err(err) => {
                        tracing::debug!(error = %err, "skipping a node record that doesn't parse");
                        None
                    }
                }
            })
            .collect())
    }
}
