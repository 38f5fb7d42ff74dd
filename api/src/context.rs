//! [`ApiContext`]: the server's shared state — settings, store, services — that HTTP
//! handlers, WebSocket use cases and background workers all take. It lives below `http/`,
//! `app/` and `realtime/`, so none of them depends on another's layer for it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::SecretString;
use signaling::Hub;

use crate::app::chat::RoomLocks;
use crate::app::summaries::Deps;
use crate::auth::{PasswordHasher, TokenService};
use crate::config::Settings;
use crate::db::Store;
use crate::error::Error;
use crate::ratelimit::{account_key, client_key, Bucket, RateLimiter, Refusal};

/// Everything a handler may need, cheap to clone.
#[derive(Clone)]
pub struct ApiContext {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub tokens: Arc<TokenService>,
    pub passwords: PasswordHasher,
    pub registration_secret: Arc<SecretString>,
    pub limiter: RateLimiter,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub metrics: PrometheusHandle,
    /// This node's calls and user sockets, and the bus to the other nodes.
    pub hub: Arc<Hub>,
    pub chat_locks: Arc<RoomLocks>,
    /// The whisper pool and the rooms being transcribed on this node.
    pub transcription: Arc<crate::app::transcription::Transcription>,
    /// The AI agent's summary writer.
    pub summaries: Arc<crate::app::summaries::Summaries>,
    /// The Telegram bot, when configured.
    pub telegram: Option<Arc<crate::app::telegram::Telegram>>,
    /// Call invites (ringing).
    pub invites: Arc<crate::invites::CallInviteService>,
    /// WebPush notifications.
    pub push: crate::push::PushService,
    /// Single-use WebSocket tickets (in Redis when configured, so any node can redeem them).
    pub tickets: crate::auth::WsTickets,
    /// This node's part in a deployment of several (with Redis): the node registry, room
    /// placement and the media relay.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Set at SIGTERM while the node drains (`DRAIN_TIMEOUT_SECS`): `/readyz` answers 503 so
    /// the reverse proxy sends new sessions elsewhere.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

/// How long a client is told to wait when the rate limiter is down.
const LIMITER_RETRY_AFTER: Duration = Duration::from_secs(5);

impl ApiContext {
    /// Charges one request to `bucket` for the client at `ip` (an IPv6 client by its /64).
    ///
    /// # Errors
    /// [`Error::RateLimited`] with the time to wait; [`Error::RateLimiterUnavailable`] when
    /// Redis is down and the bucket fails closed.
    pub async fn rate_limit(&self, bucket: Bucket, ip: IpAddr) -> Result<(), Error> {
        self.rate_limit_key(bucket, &client_key(ip)).await
    }

    /// Charges one request to `bucket` for the signed-in user.
    ///
    /// # Errors
    /// As [`ApiContext::rate_limit`].
    pub async fn rate_limit_user(&self, bucket: Bucket, user_id: i64) -> Result<(), Error> {
        self.rate_limit_key(bucket, &format!("user:{user_id}"))
            .await
    }

    /// Charges one password check to the account `username` names (known or not).
    ///
    /// # Errors
    /// As [`ApiContext::rate_limit`].
    pub async fn rate_limit_account(&self, username: &str) -> Result<(), Error> {
        self.rate_limit_key(Bucket::LoginAccount, &account_key(username))
            .await
    }

    async fn rate_limit_key(&self, bucket: Bucket, key: &str) -> Result<(), Error> {
        self.limiter
            .check(bucket, key)
            .await
            .map_err(|refusal| match refusal {
                Refusal::Limited(limited) => Error::RateLimited {
                    retry_after: limited.retry_after,
                },
                Refusal::Unavailable => Error::RateLimiterUnavailable {
                    retry_after: LIMITER_RETRY_AFTER,
                },
            })
    }
}

impl ApiContext {
    /// What posting a room chat message needs.
    pub fn chat_deps(&self) -> crate::app::chat::ChatDeps<'_> {
        crate::app::chat::ChatDeps {
            store: &self.store,
            hub: &self.hub,
            push: &self.push,
            locks: &self.chat_locks,
        }
    }
}

impl std::fmt::Debug for ApiContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiContext")
            .field("store", &self.store)
            .field("limiter", &self.limiter)
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl ApiContext {
    /// What a summary needs from the context.
    pub fn deps(&self) -> Deps<'_> {
        Deps {
            store: &self.store,
            hub: &self.hub,
            transcription: &self.transcription,
        }
    }
}
