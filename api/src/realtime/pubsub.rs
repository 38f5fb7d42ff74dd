//! A Redis pub/sub subscription that outlives Redis restarts, for the bus and the media
//! relay: both must keep hearing the other nodes for as long as this one runs.

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSub;

/// Subscribes to `channel` on a connection of its own.
///
/// # Errors
/// The Redis error when the subscription can't be made.
pub async fn subscribe(client: &redis::Client, channel: &str) -> redis::RedisResult<PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// Longest wait between two attempts to subscribe again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether the subscription is up, as [`read_forever`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Lost,
    Restored,
}

/// Hands every message on `channel` to `deliver`. When the subscription drops (Redis
/// restarted, the network blinked) it subscribes again, backing off from 100 ms to
/// [`MAX_BACKOFF`], until the task is aborted. Messages published while it was away are not
/// replayed (pub/sub keeps nothing); `on_link` hears when that happened.
pub async fn read_forever(
    client: redis::Client,
    channel: String,
    mut pubsub: PubSub,
    mut deliver: impl FnMut(&[u8]) + Send,
    on_link: impl Fn(Link) + Send,
) {
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                deliver(message.get_payload_bytes());
            }
        }
        tracing::error!(%channel, "Redis subscription lost; cross-node messages pause until it is back");
        on_link(Link::Lost);
        let mut backoff = Duration::from_millis(100);
        pubsub = loop {
            tokio::time::sleep(backoff).await;
            match subscribe(&client, &channel).await {
                Ok(pubsub) => break pubsub,
                Err(err) => {
                    tracing::debug!(%channel, error = %err, "subscribing again failed");
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        on_link(Link::Restored);
        tracing::info!(%channel, "Redis subscription restored");
    }
}
