//! Single-use, short-lived tickets for opening a WebSocket from a browser.
//!
//! Browsers can't set `Authorization` on a WebSocket, and a JWT in the URL ends up in proxy
//! access logs where it stays valid for days. A ticket in the URL is worth nothing once used
//! or `WS_TICKET_TTL_SECS` (30 s) after it was issued. Only its SHA-256 is stored, so the
//! store (or a Redis dump) doesn't hold usable tickets either.
//!
//! With Redis, tickets live there (`SET … EX`, redeemed with `GETDEL`), so a ticket issued by
//! one node is redeemed once across all of them; without, in this process. There the grant is
//! sealed with the cluster key for its own key ([`crate::sealed`]): a grant some other
//! writer put in Redis (to open a WebSocket as someone else) is no ticket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::sealed::ClusterKey;

/// What a ticket stands for: the token it was issued against, so redeeming it checks the
/// same things as presenting that token (user still there, generation current, not revoked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketGrant {
    pub user_id: i64,
    /// The token's `ver` claim.
    pub ver: i64,
    /// The token's `jti` claim.
    pub jti: String,
    /// The token's `exp` claim (Unix seconds).
    pub exp: i64,
}

/// In process, past this many live tickets the oldest aren't waited for: issuing fails.
const MAX_MEMORY_TICKETS: usize = 100_000;
/// How long a Redis command may take before the store counts as down (a reconnecting
/// connection manager would otherwise keep the request waiting).
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// A ticket is 32 random bytes in base64url (43 characters); longer input isn't one.
const MAX_TICKET_LEN: usize = 64;

#[derive(Clone)]
enum TicketStore {
    Memory(Arc<Mutex<HashMap<String, (Instant, TicketGrant)>>>),
    Redis {
        conn: ConnectionManager,
        prefix: String,
        seal: ClusterKey,
    },
}

/// Issues and redeems WebSocket tickets.
#[derive(Clone)]
pub struct WsTickets {
    ttl: Duration,
    store: TicketStore,
}

fn digest(ticket: &str) -> String {
    Sha256::digest(ticket.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `command`'s result, or an error when Redis doesn't answer within [`REDIS_TIMEOUT`].
async fn within<T>(
    command: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(REDIS_TIMEOUT, command).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {REDIS_TIMEOUT:?}")),
    }
}

impl WsTickets {
    /// Tickets kept in this process (one node).
    pub fn memory(ttl: Duration) -> Self {
        Self {
            ttl,
            store: TicketStore::Memory(Arc::default()),
        }
    }

    /// Tickets kept in Redis under `prefix`, redeemable once on any node.
    pub fn redis(conn: ConnectionManager, prefix: &str, ttl: Duration, seal: ClusterKey) -> Self {
        Self {
            ttl,
            store: TicketStore::Redis {
                conn,
                prefix: prefix.to_owned(),
                seal,
            },
        }
    }

    /// How long a new ticket stays usable.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new ticket for `grant`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store can't keep it (Redis down, or too many live
    /// tickets in process).
    pub async fn issue(&self, grant: TicketGrant) -> Result<String> {
        let ticket = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let key = digest(&ticket);
        match &self.store {
            TicketStore::Memory(map) => {
                let now = Instant::now();
                // The guard is never held across an await.
                let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
                if map.len() >= 1024 {
                    map.retain(|_, (expires, _)| *expires > now);
                }
                if map.len() >= MAX_MEMORY_TICKETS {
                    return Err(Error::Unavailable("too many WebSocket tickets".to_owned()));
                }
                map.insert(key, (now + self.ttl, grant));
            }
            TicketStore::Redis { conn, prefix, seal } => {
                let key = format!("{prefix}:wsticket:{key}");
                let value = seal.seal(
                    &key,
                    &serde_json::to_string(&grant).map_err(Error::internal)?,
                );
                let mut conn = conn.clone();
                let mut set = redis::cmd("SET");
                set.arg(key)
                    .arg(value)
                    .arg("EX")
                    .arg(self.ttl.as_secs().max(1));
                let stored = within(set.query_async::<()>(&mut conn)).await;
                if let Err(err) = stored {
                    tracing::warn!(error = %err, "WebSocket ticket not stored in Redis");
                    return Err(Error::Unavailable("ticket store unreachable".to_owned()));
                }
            }
        }
        Ok(ticket)
    }

    /// Redeems `ticket`: its grant the first time within its lifetime, `None` ever after
    /// (or for anything that isn't a ticket).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when Redis can't be asked.
    pub async fn redeem(&self, ticket: &str) -> Result<Option<TicketGrant>> {
        if ticket.is_empty() || ticket.len() > MAX_TICKET_LEN {
            return Ok(None);
        }
        let key = digest(ticket);
        match &self.store {
            TicketStore::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(map
                    .remove(&key)
                    .filter(|(expires, _)| *expires > Instant::now())
                    .map(|(_, grant)| grant))
            }
            TicketStore::Redis { conn, prefix, seal } => {
                let key = format!("{prefix}:wsticket:{key}");
                let mut conn = conn.clone();
                // GETDEL: read and delete in one step, so two nodes can't both redeem it.
                let mut getdel = redis::cmd("GETDEL");
                getdel.arg(&key);
                let value = within(getdel.query_async::<Option<String>>(&mut conn)).await;
                match value {
                    Ok(value) => Ok(value.and_then(|v| {
                        let json = seal.open_stored("ws_ticket", &key, &v)?;
                        serde_json::from_str(json).ok()
                    })),
                    Err(err) => {
                        tracing::warn!(error = %err, "WebSocket ticket not redeemed: Redis failed");
                        Err(Error::Unavailable("ticket store unreachable".to_owned()))
                    }
                }
            }
        }
    }
}

impl std::fmt::Debug for WsTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = match self.store {
            TicketStore::Memory(_) => "memory",
            TicketStore::Redis { .. } => "redis",
        };
        f.debug_struct("WsTickets")
            .field("ttl", &self.ttl)
            .field("store", &store)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> TicketGrant {
        TicketGrant {
            user_id: 7,
            ver: 0,
            jti: "abc".to_owned(),
            exp: 0,
        }
    }

    #[tokio::test]
    async fn a_ticket_is_redeemed_once() {
        let tickets = WsTickets::memory(Duration::from_secs(30));
        let ticket = tickets.issue(grant()).await.expect("issued");
        assert_eq!(
            tickets.redeem(&ticket).await.expect("redeem"),
            Some(grant())
        );
        assert_eq!(tickets.redeem(&ticket).await.expect("redeem"), None);
        assert_eq!(tickets.redeem("not-a-ticket").await.expect("redeem"), None);
    }

    #[tokio::test]
    async fn an_expired_ticket_is_worthless() {
        let tickets = WsTickets::memory(Duration::from_millis(20));
        let ticket = tickets.issue(grant()).await.expect("issued");
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(tickets.redeem(&ticket).await.expect("redeem"), None);
    }
}
