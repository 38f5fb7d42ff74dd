//! Room placement: which node carries a room's media. The record `{prefix}:room:{id}:media`
//! names the node; it is written by a compare-and-set, so two first joins through different
//! nodes at the same moment get the same answer, and it lives while the owner keeps
//! re-asserting it (every heartbeat, for each room with peers there). A room whose owner is
//! gone is placed again; one that emptied loses its record and is placed afresh next time.

use std::time::Duration;

use redis::aio::ConnectionManager;
use signaling::protocol::RoomId;

use super::registry::NodeRecord;

/// A room record outlives its owner's last re-assertion by this long: long enough to ride
/// out a missed heartbeat or two, short enough that an emptied room is placed afresh.
pub const ROOM_TTL: Duration = Duration::from_secs(30);

/// Sets the record to ARGV[2] if it still holds ARGV[1] ('' = no record); returns what it
/// holds afterwards, the winner.
const CLAIM: &str = r"
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return ARGV[2]
end
return current
";

/// Keeps ARGV[1]'s records: renews those it holds, writes those nobody holds (Redis lost
/// them in a restart); returns, per key, who holds it afterwards.
const REASSERT: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current == false or current == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
    out[i] = ARGV[1]
  else
    out[i] = current
  end
end
return out
";

/// Deletes the records of KEYS that still name ARGV[1].
const RELEASE: &str = r"
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
  end
end
return 0
";

#[derive(Clone)]
pub struct Placement {
    conn: ConnectionManager,
    prefix: String,
    claim: redis::Script,
    reassert: redis::Script,
    release: redis::Script,
}

impl std::fmt::Debug for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placement")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Placement {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            claim: redis::Script::new(CLAIM),
            reassert: redis::Script::new(REASSERT),
            release: redis::Script::new(RELEASE),
        }
    }

    fn room_key(&self, room: RoomId) -> String {
        format!("{}:room:{room}:media", self.prefix)
    }

    /// The node `room`'s record names, if any.
    ///
    /// # Errors
    /// The Redis error.
    pub async fn recorded(&self, room: RoomId) -> redis::RedisResult<Option<u32>> {
        let mut conn = self.conn.clone();
        let current: Option<String> = redis::cmd("GET")
            .arg(self.room_key(room))
            .query_async(&mut conn)
            .await?;
        Ok(current.and_then(|v| v.parse().ok()))
    }

    /// The node carrying `room`: its recorded owner while that one is in `live`; else the
    /// node [`choose`] picks (`fallback` when `live` has none), recorded atomically.
    ///
    /// # Errors
    /// The Redis error.
    pub async fn owner(
        &self,
        room: RoomId,
        live: &[NodeRecord],
        fallback: u32,
    ) -> redis::RedisResult<u32> {
        let key = self.room_key(room);
        let mut conn = self.conn.clone();
        let current: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        if let Some(node) = current.as_deref().and_then(|v| v.parse::<u32>().ok()) {
            if live.iter().any(|n| n.node == node) {
                return Ok(node);
            }
        }
        let choice = choose(live).unwrap_or(fallback);
        let winner: String = self
            .claim
            .key(&key)
            .arg(current.unwrap_or_default())
            .arg(choice)
            .arg(ROOM_TTL.as_secs())
            .invoke_async(&mut conn)
            .await?;
        winner.parse().map_err(|_| {
            redis::RedisError::from((
                redis::ErrorKind::TypeError,
                "room record",
                format!("{key} holds {winner:?}, not a node"),
            ))
        })
    }

    /// Renews `node`'s records of `rooms` (the rooms with peers on its SFU), writing those
    /// Redis lost. Returns the rooms another node holds: the same room carried in two places,
    /// which only a lost record can cause, and which the caller reports.
    ///
    /// # Errors
    /// The Redis error.
    pub async fn reassert(
        &self,
        node: u32,
        rooms: &[RoomId],
    ) -> redis::RedisResult<Vec<(RoomId, String)>> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let mut script = self.reassert.prepare_invoke();
        for room in rooms {
            script.key(self.room_key(*room));
        }
        script.arg(node).arg(ROOM_TTL.as_secs());
        let mut conn = self.conn.clone();
        let holders: Vec<String> = script.invoke_async(&mut conn).await?;
        let me = node.to_string();
        Ok(rooms
            .iter()
            .zip(holders)
            .filter(|(_, holder)| *holder != me)
            .map(|(room, holder)| (*room, holder))
            .collect())
    }

    /// Forgets `node`'s records of `rooms`, so their next join places them elsewhere (a
    /// drained node handing its calls over).
    ///
    /// # Errors
    /// The Redis error.
    pub async fn release(&self, node: u32, rooms: &[RoomId]) -> redis::RedisResult<()> {
        if rooms.is_empty() {
            return Ok(());
        }
        let mut script = self.release.prepare_invoke();
        for room in rooms {
            script.key(self.room_key(*room));
        }
        script.arg(node);
        let mut conn = self.conn.clone();
        let _: i64 = script.invoke_async(&mut conn).await?;
        Ok(())
    }
}

/// The live node with the lowest share of its capacity in use, never a draining one; ties go
/// to the lower CPU, then the lower tag, so every node ranks alike.
pub fn choose(live: &[NodeRecord]) -> Option<u32> {
    live.iter()
        .filter(|n| !n.draining)
        .min_by(|a, b| {
            a.load()
                .total_cmp(&b.load())
                .then(a.cpu.total_cmp(&b.cpu))
                .then(a.node.cmp(&b.node))
        })
        .map(|n| n.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(node: u32, peers: usize, capacity: usize, draining: bool) -> NodeRecord {
        NodeRecord {
            node,
            media: Vec::new(),
            capacity,
            peers,
            packets_per_sec: 0.0,
            cpu: 0.0,
            draining,
            version: String::new(),
        }
    }

    #[test]
    fn the_least_loaded_share_of_capacity_wins_and_draining_nodes_never_do() {
        let live = [
            node(1, 10, 100, false),
            node(2, 30, 1000, false),
            node(3, 0, 100, true),
        ];
        assert_eq!(choose(&live), Some(2), "3 % of a big node beats 10 %");
        assert_eq!(choose(&live[2..]), None, "only a draining node: none");
        let tie = [node(7, 5, 100, false), node(4, 5, 100, false)];
        assert_eq!(choose(&tie), Some(4), "a tie goes to the lower tag");
    }
}
