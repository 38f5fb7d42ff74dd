//! The bus across nodes: Redis pub/sub on one channel, `{REDIS_PREFIX}:bus`.
//!
//! One channel keeps one order: Redis delivers a channel's messages to every subscriber in
//! publish order, so every node sees the same sequence of joins, chat messages and mutes.
//!
//! Every message is sealed with the cluster key ([`crate::sealed`]): one that no node sealed
//! (written by something else that reaches Redis), sealed for another channel, or older
//! than a minute is dropped before it is decoded.

use redis::aio::{ConnectionManager, PubSub};
use signaling::bus::{BoxFuture, Bus, BusError, Envelope, BUS_CAPACITY};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::pubsub::{subscribe, Link};
use crate::sealed::ClusterKey;

pub struct RedisBus {
    conn: ConnectionManager,
    channel: String,
    key: ClusterKey,
    tx: broadcast::Sender<Envelope>,
    reader: AbortHandle,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Subscribes before returning, so nothing published after start-up is missed.
    ///
    /// # Errors
    /// The Redis error when the subscription can't be made.
    pub async fn connect(
        client: &redis::Client,
        conn: ConnectionManager,
        prefix: &str,
        key: ClusterKey,
    ) -> redis::RedisResult<Self> {
        let channel = format!("{prefix}:bus");
        let pubsub = subscribe(client, &channel).await?;
        metrics::gauge!("bus_connected").set(1.0);
        let tx = broadcast::channel(BUS_CAPACITY).0;
        let reader = tokio::spawn(read_forever(
            client.clone(),
            channel.clone(),
            pubsub,
            tx.clone(),
            key.clone(),
        ))
        .abort_handle();
        Ok(Self {
            conn,
            channel,
            key,
            tx,
            reader,
        })
    }
}

/// Every bus message to `tx`, for as long as the node runs; `bus_connected` and
/// `bus_reconnects_total` say when the subscription was lost and back.
async fn read_forever(
    client: redis::Client,
    channel: String,
    pubsub: PubSub,
    tx: broadcast::Sender<Envelope>,
    key: ClusterKey,
) {
    let on_channel = channel.clone();
    let deliver = move |payload: &[u8]| {
        let Some(body) = key.open_message("bus", &on_channel, payload) else {
            return;
        };
        match serde_json::from_str::<Envelope>(body) {
            Ok(envelope) => {
                let _ = tx.send(envelope);
            }
            Err(err) => tracing::warn!(error = %err, "ignoring an undecodable bus message"),
        }
    };
    let on_link = |link| match link {
        Link::Lost => metrics::gauge!("bus_connected").set(0.0),
        Link::Restored => {
            metrics::counter!("bus_reconnects_total").increment(1);
            metrics::gauge!("bus_connected").set(1.0);
        }
    };
    super::pubsub::read_forever(client, channel, pubsub, deliver, on_link).await;
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// How long a publish may wait for Redis before it counts as failed.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

impl Bus for RedisBus {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let json = serde_json::to_string(&envelope)?;
            let mut conn = self.conn.clone();
            let mut publish = redis::cmd("PUBLISH");
            publish
                .arg(&self.channel)
                .arg(self.key.seal(&self.channel, &json));
            // While Redis is down the connection manager may keep a command waiting as it
            // reconnects; the caller (a chat post, say) must not hang until its request times
            // out: it logs the failed broadcast and answers.
            let published =
                tokio::time::timeout(PUBLISH_TIMEOUT, publish.query_async::<i64>(&mut conn))
                    .await
                    .map_err(|_| BusError::Publish(format!("no answer within {PUBLISH_TIMEOUT:?}")))
                    .and_then(|r| r.map_err(|e| BusError::Publish(e.to_string())));
            if published.is_err() {
                // Other nodes miss it (the caller logs that), but this node's own sockets
                // still hear it: a Redis outage must not silence a room that lives on one
                // node. Nothing comes over Redis meanwhile, so local order holds.
                let _ = self.tx.send(envelope);
            }
            published.map(|_| ())
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.tx.subscribe()
    }
}
