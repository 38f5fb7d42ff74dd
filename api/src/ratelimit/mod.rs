//! Rate limits for the endpoints that attract abuse (register, login, room creation), for
//! login attempts per account, and for chat messages and DMs per user.
//!
//! Both implementations are GCRA with a burst of `n` and a refill of `n` per minute, keyed by
//! bucket and client (see [`client_key`]), account or user: in process (governor) by default,
//! or in Redis so that every node sharing that Redis draws from the same budget.
//!
//! When Redis can't be asked, the buckets that guard credentials ([`Bucket::fails_closed`])
//! refuse the request ([`Refusal::Unavailable`], a 503) and the others let it through: an
//! outage must not open unlimited password guessing, nor stop every chat message.

mod local;
mod redis;

use std::net::IpAddr;
use std::time::Duration;

use crate::config::RateLimits;

pub use self::local::LocalLimiter;
pub use self::redis::RedisLimiter;

/// The limited operations, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Register,
    /// Login attempts per client address.
    Login,
    /// Login attempts (and other password checks) per account, from any address.
    LoginAccount,
    RoomCreate,
    /// Room chat messages and DMs, keyed by user id (over HTTP and WebSocket alike).
    Chat,
    /// Public keys published (`PUT /keys`), keyed by user id.
    KeyPublish,
    /// Call invites sent, keyed by user id: each rings someone's tabs and may push to their
    /// phone, so the budget is tighter than chat's.
    Invite,
}

impl Bucket {
    pub const ALL: [Bucket; 7] = [
        Bucket::Register,
        Bucket::Login,
        Bucket::LoginAccount,
        Bucket::RoomCreate,
        Bucket::Chat,
        Bucket::KeyPublish,
        Bucket::Invite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bucket::Register => "register",
            Bucket::Login => "login",
            Bucket::LoginAccount => "login_account",
            Bucket::RoomCreate => "room_create",
            Bucket::Chat => "chat",
            Bucket::KeyPublish => "key_publish",
            Bucket::Invite => "invite",
        }
    }

    pub fn per_minute(self, limits: &RateLimits) -> u32 {
        match self {
            Bucket::Register => limits.register_per_min,
            Bucket::Login => limits.login_per_min,
            Bucket::LoginAccount => limits.login_account_per_min,
            Bucket::RoomCreate => limits.room_create_per_min,
            Bucket::Chat => limits.chat_per_min,
            Bucket::KeyPublish => limits.keys_per_min,
            Bucket::Invite => limits.invite_per_min,
        }
    }

    /// Whether a request is refused when the shared limiter can't be asked. The buckets in
    /// front of credentials are: letting them through would lift the guessing limit for as
    /// long as Redis is down. The others (chat, room creation) only cost resources, and
    /// refusing them would take the app down with Redis.
    pub fn fails_closed(self) -> bool {
        matches!(
            self,
            Bucket::Register | Bucket::Login | Bucket::LoginAccount
        )
    }
}

/// The key a client's address is limited under: an IPv4 address (or an IPv4-mapped IPv6
/// one) as itself, any other IPv6 address by its /64 prefix, because one subscriber usually
/// holds a whole /64 and could otherwise take a fresh address for every request.
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The key of an account's login budget: the normalised username, or for a name that can't
/// be one, the name as given (lower-cased, cut to 64 characters so a huge body can't make a
/// huge key).
pub fn account_key(username: &str) -> String {
    let name = match crate::domain::Username::parse(username) {
        Ok(name) => name.key(),
        Err(_) => username.trim().to_lowercase().chars().take(64).collect(),
    };
    format!("account:{name}")
}

/// The request is over the limit; try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

/// Why a request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over the limit.
    Limited(Limited),
    /// The shared limiter couldn't be asked and the bucket fails closed.
    Unavailable,
}

/// What to do with a request whose limit couldn't be checked (Redis down): refuse it in
/// the buckets that fail closed, let it through in the others.
///
/// # Errors
/// [`Refusal::Unavailable`] for a bucket that fails closed.
pub fn on_backend_error(bucket: Bucket) -> Result<(), Refusal> {
    let refused = bucket.fails_closed();
    let outcome = if refused { "refused" } else { "allowed" };
    metrics::counter!("rate_limit_backend_errors_total", "bucket" => bucket.name(), "outcome" => outcome)
        .increment(1);
    if refused {
        Err(Refusal::Unavailable)
    } else {
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub enum RateLimiter {
    Local(std::sync::Arc<LocalLimiter>),
    Redis(RedisLimiter),
}

impl RateLimiter {
    /// Takes one request from `bucket`'s budget for `key` (the client, account or user).
    ///
    /// # Errors
    /// [`Refusal::Limited`] when the budget is spent, [`Refusal::Unavailable`] when Redis
    /// can't be asked and the bucket fails closed.
    pub async fn check(&self, bucket: Bucket, key: &str) -> Result<(), Refusal> {
        let result = match self {
            RateLimiter::Local(limiter) => limiter.check(bucket, key).map_err(Refusal::Limited),
            RateLimiter::Redis(limiter) => limiter.check(bucket, key).await,
        };
        if let Err(Refusal::Limited(_)) = result {
            metrics::counter!("rate_limited_total", "bucket" => bucket.name()).increment(1);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str) -> String {
        client_key(ip.parse().expect("an address"))
    }

    #[test]
    fn ipv4_addresses_are_keyed_by_the_whole_address() {
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_key_and_other_64s_do_not() {
        let a = key("2001:db8:1:2:aaaa::1");
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_eq!(a, key("2001:0db8:0001:0002::"));
        assert_ne!(a, key("2001:db8:1:3::1"));
    }

    #[test]
    fn ipv4_mapped_ipv6_addresses_are_keyed_as_the_ipv4_address() {
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
        assert_ne!(key("::ffff:203.0.113.7"), key("::ffff:203.0.113.8"));
    }

    #[test]
    fn account_keys_ignore_case_and_cut_names_that_cannot_exist() {
        assert_eq!(account_key("Alice"), account_key("alice"));
        assert_eq!(account_key("x"), "account:x");
        let long = "Y".repeat(10_000);
        assert_eq!(account_key(&long).len(), "account:".len() + 64);
    }

    #[test]
    fn credential_buckets_fail_closed_and_the_others_open() {
        for bucket in [Bucket::Register, Bucket::Login, Bucket::LoginAccount] {
            assert_eq!(
                on_backend_error(bucket),
                Err(Refusal::Unavailable),
                "{bucket:?}"
            );
        }
        for bucket in [
            Bucket::Chat,
            Bucket::RoomCreate,
            Bucket::KeyPublish,
            Bucket::Invite,
        ] {
            assert_eq!(on_backend_error(bucket), Ok(()), "{bucket:?}");
        }
    }
}
