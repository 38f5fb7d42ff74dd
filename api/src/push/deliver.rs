//! One push to one browser: RFC 8291 encryption (`ece`, aes128gcm), the VAPID header, the
//! POST, and what the push service's answer means.

use std::time::Duration;

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use super::vapid::{decode_b64url, VapidKeys};
use crate::db::PushSubscriptionRow;

/// A push service's answer, as the sender acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// 404/410: the subscription is gone; forget it.
    Gone,
    /// 429, 5xx or no answer: try again later (`Retry-After` when the service gave one).
    Retry(Option<Duration>, String),
    /// Any other refusal (a malformed subscription, a VAPID mismatch): retrying won't help.
    Rejected(String),
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

/// Encrypts `payload` for `sub` and POSTs it.
pub async fn send(
    http: &reqwest::Client,
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
        Err(err) => Delivery::Retry(None, format!("no answer: {err}")),
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
                StatusCode::TOO_MANY_REQUESTS => Delivery::Retry(retry_after, status.to_string()),
                s if s.is_server_error() => Delivery::Retry(retry_after, status.to_string()),
                s => Delivery::Rejected(s.to_string()),
            }
        }
    }
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
