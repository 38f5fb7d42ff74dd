//! Several nodes as one deployment, on the Redis they already share (LiveKit's model): each
//! room's media lives on one node, its owner, and whichever node a participant's socket
//! came in through relays their media signaling to it.
//!
//! - [`registry`]: each node's record (media addresses, capacity, load) with a TTL.
//! - [`placement`]: room -> owner, claimed atomically on the first join, re-asserted by the
//!   owner while the room has peers there, placed again when the owner is gone.
//! - [`relay`]: media commands to the owner, and its SFU events back, over Redis.
//!
//! Why relay rather than send the browser to the owner: the browser's WebSocket stays where
//! the reverse proxy put it (no per-node public URL, no CSP or cookie changes), and its UDP
//! goes to the owner's media address anyway, which every node already publishes. The cost
//! is one Redis round trip per media command (join, restart, answer), measured in
//! `docs/scale-out.md`.

pub mod placement;
pub mod registry;
pub mod relay;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::ConnectionManager;
use sfu::Sfu;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use self::placement::Placement;
use self::registry::{NodeRecord, Registry, HEARTBEAT};
use self::relay::{RedisRelay, RelayHandle};
use crate::realtime::pubsub::{read_forever, subscribe};
use crate::sealed::ClusterKey;

/// What the last heartbeat measured, for the next one's rates.
#[derive(Debug)]
struct LastBeat {
    at: Instant,
    packets_in: u64,
    cpu_seconds: Option<f64>,
    /// Until when each node recently seen counts as alive though the registry misses it: a
    /// beat and a half after it was last read, so one unlucky read drops nobody; and, after
    /// this node could not reach Redis (a restart empties the registry until every node's
    /// next heartbeat, and other nodes may take a few seconds more to reconnect),
    /// [`AFTER_REDIS_GAP`] from the first read that works again.
    grace_until: HashMap<u32, Instant>,
    /// A heartbeat failed since the last successful one.
    redis_gap: bool,
    /// When the registry was last read. A heartbeat need not fail during a short Redis
    /// restart: its commands may wait for the reconnection and succeed late. A read that
    /// comes long after the one before is an outage too.
    last_read: Instant,
}

/// How long a node missing from the registry is still believed alive (see `LastBeat`).
const MISSING_GRACE: Duration = Duration::from_millis(2500);
/// How long every node is believed alive after this node's own Redis outage (the bus gives
/// nodes as long before clearing their participants).
const AFTER_REDIS_GAP: Duration = Duration::from_secs(15);
/// Registry reads further apart than this mean this node couldn't reach Redis in between
/// (a heartbeat is due every [`HEARTBEAT`]).
const READ_GAP: Duration = Duration::from_secs(3);

/// Who this node is to the others.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// The hub's node tag.
    pub tag: u32,
    /// The UDP addresses browsers send its media to.
    pub media: Vec<String>,
    /// `NODE_CAPACITY`.
    pub capacity: usize,
}

/// This node's part in the deployment.
pub struct Cluster {
    node: u32,
    capacity: usize,
    /// The UDP addresses browsers send this node media to.
    media: Vec<String>,
    sfu: Sfu,
    registry: Registry,
    placement: Placement,
    relay: Arc<RedisRelay>,
    draining: AtomicBool,
    /// Out of the registry for good (shutting down): no more heartbeats.
    withdrawn: AtomicBool,
    last: Mutex<LastBeat>,
    /// The relay's tasks (served peers' event streams, calls being answered).
    tasks: TaskTracker,
    reader: AbortHandle,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Subscribes to this node's relay channel and writes its first record, so the node is
    /// placeable (and reachable) before it serves anyone.
    ///
    /// # Errors
    /// The Redis error when the subscription can't be made.
    pub async fn start(
        client: &redis::Client,
        conn: ConnectionManager,
        prefix: &str,
        node: NodeIdentity,
        sfu: Sfu,
        key: ClusterKey,
    ) -> redis::RedisResult<Arc<Self>> {
        let NodeIdentity {
            tag: node,
            media,
            capacity,
        } = node;
        let channel = relay::channel(prefix, node);
        let pubsub = subscribe(client, &channel).await?;
        let tasks = TaskTracker::new();
        let placement = Placement::new(conn.clone(), prefix);
        let relay = Arc::new(RedisRelay::new(
            node,
            conn.clone(),
            prefix,
            sfu.clone(),
            placement.clone(),
            Registry::new(conn.clone(), prefix, key.clone()),
            tasks.clone(),
        ));
        let deliver = {
            let relay = Arc::clone(&relay);
            move |payload: &[u8]| relay.deliver(payload)
        };
        let reader = tokio::spawn(read_forever(
            client.clone(),
            channel,
            pubsub,
            deliver,
            |_| {},
        ))
        .abort_handle();
        let cluster = Arc::new(Self {
            node,
            capacity,
            media,
            registry: Registry::new(conn, prefix, key),
            placement,
            relay,
            draining: AtomicBool::new(false),
            withdrawn: AtomicBool::new(false),
            last: Mutex::new(LastBeat {
                at: Instant::now(),
                packets_in: 0,
                cpu_seconds: process_cpu_seconds(),
                grace_until: HashMap::new(),
                redis_gap: false,
                last_read: Instant::now(),
            }),
            tasks,
            reader,
            sfu,
        });
        cluster.heartbeat().await;
        tracing::info!(
            node = format!("node-{node:05x}"),
            "cluster: this node is in the registry; rooms are placed across the live nodes"
        );
        Ok(cluster)
    }

    /// The relay the hub's media sends other nodes' rooms through.
    pub fn relay(&self) -> RelayHandle {
        RelayHandle(Arc::clone(&self.relay))
    }

    /// Heartbeats until `stop`; the server waits for the handle at shutdown.
    pub fn run(self: &Arc<Self>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let cluster = Arc::clone(self);
        tokio::spawn(async move {
            let mut beat = tokio::time::interval(HEARTBEAT);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            beat.reset();
            loop {
                tokio::select! {
                    _ = beat.tick() => cluster.heartbeat().await,
                    _ = stop.changed() => break,
                }
            }
        })
    }

    fn last(&self) -> std::sync::MutexGuard<'_, LastBeat> {
        self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes this node's record, reads everyone's, cleans up after nodes that are gone,
    /// and re-asserts the rooms this node carries. A Redis error skips the rest of the beat
    /// (logged): nothing is concluded from a registry that can't be read.
    async fn heartbeat(&self) {
        let counts = self.sfu.counts().await;
        let now = Instant::now();
        let cpu_seconds = process_cpu_seconds();
        let (packets_per_sec, cpu) = {
            let mut last = self.last();
            let elapsed = now.duration_since(last.at).as_secs_f64().max(1e-3);
            let packets = counts.packets_in.saturating_sub(last.packets_in) as f64 / elapsed;
            let cpu = match (cpu_seconds, last.cpu_seconds) {
                (Some(now), Some(before)) => ((now - before) / elapsed).max(0.0),
                _ => 0.0,
            };
            last.at = now;
            last.packets_in = counts.packets_in;
            last.cpu_seconds = cpu_seconds;
            (packets, cpu)
        };
        if self.withdrawn.load(Ordering::Relaxed) {
            return;
        }
        let record = NodeRecord {
            node: self.node,
            media: self.media.clone(),
            capacity: self.capacity,
            peers: counts.peers,
            packets_per_sec,
            cpu,
            draining: self.draining.load(Ordering::Relaxed),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        if let Err(err) = self.registry.announce(&record).await {
            tracing::warn!(error = %err, "cluster: heartbeat not written");
            self.last().redis_gap = true;
            return;
        }
        let live = match self.registry.live().await {
            Ok(live) => live,
            Err(err) => {
                tracing::warn!(error = %err, "cluster: registry not readable");
                self.last().redis_gap = true;
                return;
            }
        };
        let mut believed = live.clone();
        {
            let in_use = self.relay.nodes_in_use();
            let mut last = self.last();
            let now = Instant::now();
            // A node this one relays with counts as seen, even before a registry read
            // found it (it started a moment ago).
            for node in in_use {
                last.grace_until.entry(node).or_insert(now + MISSING_GRACE);
            }
            // Seen in CI: Redis restarted for 3 s, the heartbeat's commands waited for the
            // reconnection and succeeded, and the first read after it (before the other node's
            // next heartbeat) dropped that node and its relayed call.
            let late = now.saturating_duration_since(last.last_read) > READ_GAP;
            last.last_read = now;
            if last.redis_gap || late {
                last.redis_gap = false;
                for until in last.grace_until.values_mut() {
                    *until = (*until).max(now + AFTER_REDIS_GAP);
                }
            }
            for node in live.iter().map(|n| n.node) {
                let until = last.grace_until.entry(node).or_insert(now);
                *until = (*until).max(now + MISSING_GRACE);
            }
            last.grace_until.retain(|_, until| *until > now);
            let missing: Vec<u32> = last
                .grace_until
                .keys()
                .filter(|node| !live.iter().any(|n| n.node == **node))
                .copied()
                .collect();
            for node in missing {
                believed.push(NodeRecord {
                    node,
                    media: Vec::new(),
                    capacity: 1,
                    peers: 0,
                    packets_per_sec: 0.0,
                    cpu: 0.0,
                    // Never chosen for a new room while in doubt.
                    draining: true,
                    version: String::new(),
                });
            }
        }
        self.relay.forget_dead_nodes(&believed);
        self.relay.set_live(believed);
        let rooms: Vec<i64> = self.sfu.rooms().await.into_iter().map(|r| r.0).collect();
        match self.placement.reassert(self.node, &rooms).await {
            Ok(conflicts) => {
                for (room, holder) in conflicts {
                    tracing::warn!(
                        room,
                        holder,
                        "cluster: a room this node carries is recorded on another node (Redis lost its record); joiners go there"
                    );
                }
            }
            Err(err) => tracing::warn!(error = %err, "cluster: rooms not re-asserted"),
        }
    }

    /// No new rooms for this node (its record says so from now on).
    pub async fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.heartbeat().await;
    }

    /// The node is going away: out of the registry at once rather than at its TTL, its
    /// rooms' records released, and every participant it carries for another node told that
    /// their media closed, so their browsers rejoin wherever the room is placed next.
    pub async fn withdraw(&self) {
        self.withdrawn.store(true, Ordering::Relaxed);
        if let Err(err) = self.registry.withdraw(self.node).await {
            tracing::warn!(error = %err, "cluster: not withdrawn from the registry (its record expires by itself)");
        }
        let rooms: Vec<i64> = self.sfu.rooms().await.into_iter().map(|r| r.0).collect();
        if let Err(err) = self.placement.release(self.node, &rooms).await {
            tracing::warn!(error = %err, "cluster: room records not released (they expire by themselves)");
        }
        let (_, served) = self.relay.counts();
        self.relay.close_served().await;
        tracing::info!(
            rooms = rooms.len(),
            moved = served,
            "cluster: left the registry; calls carried here move to other nodes"
        );
    }

    /// Stops the relay: its subscription, and (with a deadline) its tasks.
    pub async fn stop(&self, deadline: Duration) {
        self.reader.abort();
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.tasks.len(),
                "cluster: relay tasks still running at the deadline"
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// CPU time this process has used, in seconds (`/proc/self/stat`'s utime + stime, in the
/// kernel's USER_HZ of 100 ticks a second); `None` off Linux.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; the fields after it are plain numbers.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_used_some_cpu() {
        let used = super::process_cpu_seconds().expect("Linux");
        assert!((0.0..1e6).contains(&used), "{used}");
    }
}
