//! The bus across nodes: Redis pub/sub on one channel, `{REDIS_PREFIX}:bus`.
//!
//! One channel keeps one order: Redis delivers a channel's messages to every subscriber in
//! publish order, so every node sees the same sequence of joins, chat messages and mutes.

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use signaling::bus::{BoxFuture, Bus, BusError, Envelope, BUS_CAPACITY};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

pub struct RedisBus {
    conn: ConnectionManager,
    channel: String,
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
    ) -> redis::RedisResult<Self> {
        let channel = format!("{prefix}:bus");
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&channel).await?;
        let tx = broadcast::channel(BUS_CAPACITY).0;
        let sender = tx.clone();
        let reader = tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let payload: &[u8] = message.get_payload_bytes();
                match serde_json::from_slice::<Envelope>(payload) {
                    Ok(envelope) => {
                        let _ = sender.send(envelope);
                    }
                    Err(err) => tracing::warn!(error = %err, "ignoring an undecodable bus message"),
                }
            }
            tracing::error!("Redis bus subscription ended; cross-node events stop here");
        })
        .abort_handle();
        Ok(Self {
            conn,
            channel,
            tx,
            reader,
        })
    }
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
            publish.arg(&self.channel).arg(json);
            // While Redis is down the connection manager may keep a command waiting as it
            // reconnects; the caller (a chat post, say) must not hang until its request times
            // out: it logs the failed broadcast and answers.
            tokio::time::timeout(PUBLISH_TIMEOUT, publish.query_async::<i64>(&mut conn))
                .await
                .map_err(|_| BusError::Publish(format!("no answer within {PUBLISH_TIMEOUT:?}")))?
                .map_err(|e| BusError::Publish(e.to_string()))?;
            Ok(())
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.tx.subscribe()
    }
}
