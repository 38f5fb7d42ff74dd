//! One push to one browser: RFC 8291 encryption (`ece`, aes128gcm), the VAPID header, the
//! POST, and what the push service's answer means.

use std::time::Duration;

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use super::breaker::Health;
use super::egress::{self, EgressError, EgressPolicy};
use super::vapid::{decode_b64url, VapidKeys};
use crate::db::PushSubscriptionRow;

/// A push service's answer, as the sender acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// 404/410: the subscription is gone; forget it.
    Gone,
    /// 429, 5xx or no answer: try again later (`Retry-After` when the service gave one).
    /// `health` says whether it counts against the host's breaker (a 429 doesn't).
    Retry {
        after: Option<Duration>,
        why: String,
        health: Health,
    },
    /// Any other refusal (a malformed subscription, a VAPID mismatch): retrying won't help.
    Rejected(String),
    /// Not sent: the endpoint is not somewhere this server posts to (see `egress`).
    Refused(EgressError),
}

impl Delivery {
    /// What this says about the push host, for its breaker.
    pub fn health(&self) -> Health {
        match self {
            Delivery::Delivered | Delivery::Gone | Delivery::Rejected(_) => Health::Up,
            Delivery::Retry { health, .. } => *health,
            Delivery::Refused(_) => Health::Unknown,
        }
    }
}

/// What one push carries besides the payload.
#[derive(Debug, Clone)]
pub struct PushMeta<'a> {
    pub ttl_secs: u64,
    pub urgent: bool,
    /// Push services replace a stored, undelivered message with the same topic.
    pub tag: &'a str,
}

/// The `Topic` header: at most 32 characters of the URL-safe alphabet (RFC 8030 5.4).
fn topic(tag: &str) -> String {
    let digest = Sha256::digest(tag.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Encrypts `payload` for `sub` and POSTs it, if `policy` lets the endpoint be contacted
/// (names are checked again, by address, by the client's resolver).
pub async fn send(
    http: &reqwest::Client,
    policy: &EgressPolicy,
    vapid: &VapidKeys,
    sub: &PushSubscriptionRow,
    payload: &[u8],
    meta: &PushMeta<'_>,
) -> Delivery {
    let (Some(p256dh), Some(auth)) = (decode_b64url(&sub.p256dh), decode_b64url(&sub.auth)) else {
        return Delivery::Rejected("stored keys are not base64url".to_owned());
    };
    let Ok(endpoint) = reqwest::Url::parse(&sub.endpoint) else {
        return Delivery::Rejected("stored endpoint is not a URL".to_owned());
    };
    if let Err(why) = policy.check_url(&endpoint) {
        return Delivery::Refused(why);
    }
    let body = match ece::encrypt(&p256dh, &auth, payload) {
        Ok(body) => body,
        Err(err) => return Delivery::Rejected(format!("encryption failed: {err}")),
    };
    let authorization = match vapid.authorization(&endpoint) {
        Ok(header) => header,
        Err(err) => return Delivery::Rejected(format!("VAPID signing failed: {err}")),
    };
    let response = http
        .post(endpoint)
        .header("TTL", meta.ttl_secs.to_string())
        .header("Content-Encoding", "aes128gcm")
        .header("Content-Type", "application/octet-stream")
        .header("Urgency", if meta.urgent { "high" } else { "normal" })
        .header("Topic", topic(meta.tag))
        .header("Authorization", authorization)
        .body(body)
        .send()
        .await;
    match response {
        Err(err) if egress::is_refused(&err) => {
            Delivery::Refused(EgressError::NonPublicName(host_of(&sub.endpoint)))
        }
        Err(err) => Delivery::Retry {
            after: None,
            why: format!("no answer: {err}"),
            health: Health::Down,
        },
        Ok(response) => {
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            match status {
                s if s.is_success() => Delivery::Delivered,
                StatusCode::NOT_FOUND | StatusCode::GONE => Delivery::Gone,
                StatusCode::TOO_MANY_REQUESTS => Delivery::Retry {
                    after: retry_after,
                    why: status.to_string(),
                    health: Health::Unknown,
                },
                s if s.is_server_error() => Delivery::Retry {
                    after: retry_after,
                    why: status.to_string(),
                    health: Health::Down,
                },
                s => Delivery::Rejected(s.to_string()),
            }
        }
    }
}

/// `host:port` of an endpoint: what a breaker is kept per (`?` when it is not a URL).
pub fn host_of(endpoint: &str) -> String {
    reqwest::Url::parse(endpoint)
        .ok()
        .and_then(|url| {
            let host = url.host_str()?.to_owned();
            Some(format!("{host}:{}", url.port_or_known_default()?))
        })
        .unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_fit_the_header_rules() {
        let t = topic("room:123456789");
        assert_eq!(t.len(), 32);
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(t, topic("room:2"));
    }
}
