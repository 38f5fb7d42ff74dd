//! What nodes tell each other through Redis, sealed with a key only the nodes hold.
//!
//! Redis is shared infrastructure: a host that can reach it (a misconfigured firewall, a
//! TURN relay, another tenant) can write to it. Without a seal, whatever it wrote would be
//! acted on as if a node had said it: a `Call` on a node's media channel joins the caller's
//! SDP to any room (listening in), a forged ticket opens a WebSocket as anyone, a forged
//! invite lets anyone into a room. With it, such a writer can still delete or replay what
//! nodes wrote (deny service) but cannot say anything new.
//!
//! A sealed value is `wc1.{unix_ms}.{mac}.{body}`, where `mac` is the base64url HMAC-SHA256
//! over the version, the *context* (the Redis key or channel the value is written to), the
//! time and the body. Binding the context means a value can't be moved: a ticket's seal
//! doesn't open as an invite, node 5's registry record doesn't open under node 6's key, and
//! a relay call meant for node 5 is refused by node 6. The time bounds replay of pub/sub
//! messages (see [`MESSAGE_MAX_AGE`]); stored values have their own expiry in Redis and
//! their own checks (a ticket is redeemed once).
//!
//! The key is `CLUSTER_SECRET`, or derived from the JWT secret (which every node of a
//! deployment already shares) when that is not set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "wc1";

/// How far a pub/sub message's time may be from this node's clock (either way) before it
/// is refused as a replay. Generous, because nodes' clocks drift a little; short enough
/// that a captured `Call` or bus event can't be replayed later in the meeting.
pub const MESSAGE_MAX_AGE: Duration = Duration::from_secs(60);

/// Why a value read from Redis was not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("not sealed (written by something other than a node)")]
    Unsealed,
    #[error("its seal does not match (another key, another place, or altered)")]
    Forged,
    #[error("sealed too long ago, or in the future (a replay, or a clock far off)")]
    Stale,
}

impl SealError {
    /// The label of `cluster_messages_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Unsealed => "unsealed",
            Self::Forged => "forged",
            Self::Stale => "stale",
        }
    }
}

/// The key that seals what nodes write to Redis. Cheap to clone.
#[derive(Clone)]
pub struct ClusterKey {
    mac: Arc<HmacSha256>,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// A key from `CLUSTER_SECRET` (checked for length where settings are read).
    pub fn from_secret(secret: &SecretString) -> Self {
        Self::from_bytes(secret.expose_secret().as_bytes())
    }

    /// The key of a deployment that set no `CLUSTER_SECRET`: derived from its JWT secret,
    /// under a label of its own, so the two keys never sign the same thing.
    pub fn derived_from(jwt_secret: &SecretString) -> Self {
        let mut mac = HmacSha256::new_from_slice(jwt_secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"webcall cluster key v1");
        Self::from_bytes(&mac.finalize().into_bytes())
    }

    fn from_bytes(secret: &[u8]) -> Self {
        let mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable_hmac());
        Self { mac: Arc::new(mac) }
    }

    fn tag(&self, context: &str, unix_ms: u64, body: &str) -> HmacSha256 {
        let mut mac = (*self.mac).clone();
        for part in [
            VERSION.as_bytes(),
            context.as_bytes(),
            unix_ms.to_string().as_bytes(),
        ] {
            mac.update(part);
            mac.update(&[0]);
        }
        mac.update(body.as_bytes());
        mac
    }

    /// `body`, sealed for writing to `context` (its Redis key or channel).
    pub fn seal(&self, context: &str, body: &str) -> String {
        self.seal_at(context, body, now_ms())
    }

    fn seal_at(&self, context: &str, body: &str, unix_ms: u64) -> String {
        let mac = self.tag(context, unix_ms, body).finalize().into_bytes();
        format!("{VERSION}.{unix_ms}.{}.{body}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The body of a value read from `context`, if a node holding this key sealed it there
    /// (and, with `max_age`, recently).
    ///
    /// # Errors
    /// The [`SealError`] saying why it is refused.
    pub fn open<'a>(
        &self,
        context: &str,
        sealed: &'a str,
        max_age: Option<Duration>,
    ) -> Result<&'a str, SealError> {
        let mut parts = sealed.splitn(4, '.');
        let (Some(VERSION), Some(time), Some(mac), Some(body)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Unsealed);
        };
        let unix_ms: u64 = time.parse().map_err(|_| SealError::Unsealed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| SealError::Unsealed)?;
        // `verify_slice` compares in constant time.
        self.tag(context, unix_ms, body)
            .verify_slice(&mac)
            .map_err(|_| SealError::Forged)?;
        if let Some(max_age) = max_age {
            let max = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
            if now_ms().abs_diff(unix_ms) > max {
                return Err(SealError::Stale);
            }
        }
        Ok(body)
    }

    /// [`Self::open`] for a pub/sub payload, counting and logging a refusal: the body, or
    /// `None` for a message nobody should act on.
    pub fn open_message<'a>(
        &self,
        what: &'static str,
        channel: &str,
        payload: &'a [u8],
    ) -> Option<&'a str> {
        if payload.len() > MAX_MESSAGE_BYTES {
            refuse(what, "too_large");
            return None;
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            refuse(what, SealError::Unsealed.reason());
            return None;
        };
        self.open(channel, text, Some(MESSAGE_MAX_AGE))
            .map_err(|err| refuse(what, err.reason()))
            .ok()
    }

    /// [`Self::open`] for a stored value (no age: Redis expires it), logging a refusal.
    pub fn open_stored<'a>(
        &self,
        what: &'static str,
        key: &str,
        value: &'a str,
    ) -> Option<&'a str> {
        self.open(key, value, None)
            .map_err(|err| refuse(what, err.reason()))
            .ok()
    }
}

/// The largest pub/sub message a node reads: far above any real one (a WebSocket frame is
/// at most 64 KiB; an SFU offer for a full room tens of KiB), far below what would hurt.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Counts a refused value in `cluster_messages_refused_total`, and logs it: one warning per
/// 10 s at most, since whoever floods Redis with forgeries must not flood the log too.
fn refuse(what: &'static str, reason: &'static str) {
    metrics::counter!("cluster_messages_refused_total", "what" => what, "reason" => reason)
        .increment(1);
    static LAST_WARNED_MS: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let last = LAST_WARNED_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 10_000
        && LAST_WARNED_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(what, reason, "refused a value in Redis that no node sealed; is Redis reachable by others, or CLUSTER_SECRET different between nodes? (cluster_messages_refused_total counts them all)");
    } else {
        tracing::debug!(what, reason, "refused a value in Redis that no node sealed");
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// HMAC takes a key of any length: `new_from_slice` cannot fail for it.
#[cold]
fn unreachable_hmac() -> HmacSha256 {
    unreachable!("HMAC-SHA256 accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> ClusterKey {
        ClusterKey::from_secret(&SecretString::from(secret.to_owned()))
    }

    #[test]
    fn a_sealed_value_opens_where_it_was_sealed_for() {
        let k = key("a cluster secret of enough length!!");
        let sealed = k.seal("webcall:media:5", r#"{"kind":"call"}"#);
        assert_eq!(
            k.open("webcall:media:5", &sealed, Some(MESSAGE_MAX_AGE)),
            Ok(r#"{"kind":"call"}"#)
        );
    }

    #[test]
    fn another_key_another_place_or_an_edit_is_refused() {
        let k = key("a cluster secret of enough length!!");
        let sealed = k.seal("webcall:media:5", "{}");
        assert_eq!(
            key("another secret of enough length!!!!").open("webcall:media:5", &sealed, None),
            Err(SealError::Forged)
        );
        assert_eq!(
            k.open("webcall:media:6", &sealed, None),
            Err(SealError::Forged)
        );
        let edited = sealed.replace("{}", "{ }");
        assert_eq!(
            k.open("webcall:media:5", &edited, None),
            Err(SealError::Forged)
        );
        assert_eq!(
            k.open("webcall:media:5", r#"{"kind":"call"}"#, None),
            Err(SealError::Unsealed)
        );
        assert_eq!(
            k.open("webcall:media:5", "wc1.x.y.z", None),
            Err(SealError::Unsealed)
        );
    }

    #[test]
    fn an_old_message_is_refused_but_an_old_stored_value_is_not() {
        let k = key("a cluster secret of enough length!!");
        let old = k.seal_at("c", "{}", now_ms() - 5 * 60_000);
        assert_eq!(
            k.open("c", &old, Some(MESSAGE_MAX_AGE)),
            Err(SealError::Stale)
        );
        assert_eq!(k.open("c", &old, None), Ok("{}"));
        let future = k.seal_at("c", "{}", now_ms() + 5 * 60_000);
        assert_eq!(
            k.open("c", &future, Some(MESSAGE_MAX_AGE)),
            Err(SealError::Stale)
        );
    }

    #[test]
    fn a_derived_key_differs_from_the_jwt_secret_itself() {
        let jwt = SecretString::from("j".repeat(32));
        let sealed = ClusterKey::derived_from(&jwt).seal("c", "{}");
        assert_eq!(
            ClusterKey::from_secret(&jwt).open("c", &sealed, None),
            Err(SealError::Forged)
        );
        assert_eq!(
            ClusterKey::derived_from(&jwt).open("c", &sealed, None),
            Ok("{}")
        );
    }

    #[test]
    fn a_body_with_dots_survives() {
        let k = key("a cluster secret of enough length!!");
        let body = r#"{"sdp":"a=candidate:1 1 udp 1 10.0.0.1 5000 typ host"}"#;
        assert_eq!(k.open("c", &k.seal("c", body), None), Ok(body));
    }
}
