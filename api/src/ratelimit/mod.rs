//! Rate limits for the endpoints that attract abuse (register, login, room creation), and
//! for chat messages and DMs per user.
//!
//! Both implementations are GCRA with a burst of `n` and a refill of `n` per minute, keyed by
//! bucket and client address: in process (governor) by default, or in Redis so that every node
//! sharing that Redis draws from the same budget.

mod local;
mod redis;

use std::time::Duration;

use crate::config::RateLimits;

pub use self::local::LocalLimiter;
pub use self::redis::RedisLimiter;

/// The limited operations, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Register,
    Login,
    RoomCreate,
    /// Room chat messages and DMs, keyed by user id (over HTTP and WebSocket alike).
    Chat,
}

impl Bucket {
    pub const ALL: [Bucket; 4] = [
        Bucket::Register,
        Bucket::Login,
        Bucket::RoomCreate,
        Bucket::Chat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bucket::Register => "register",
            Bucket::Login => "login",
            Bucket::RoomCreate => "room_create",
            Bucket::Chat => "chat",
        }
    }

    pub fn per_minute(self, limits: &RateLimits) -> u32 {
        match self {
            Bucket::Register => limits.register_per_min,
            Bucket::Login => limits.login_per_min,
            Bucket::RoomCreate => limits.room_create_per_min,
            Bucket::Chat => limits.chat_per_min,
        }
    }
}

/// The request is over the limit; try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

#[derive(Clone, Debug)]
pub enum RateLimiter {
    Local(std::sync::Arc<LocalLimiter>),
    Redis(RedisLimiter),
}

impl RateLimiter {
    /// Takes one request from `bucket`'s budget for `key` (the client address, or the user).
    ///
    /// # Errors
    /// [`Limited`] when the budget is spent.
    pub async fn check(&self, bucket: Bucket, key: &str) -> Result<(), Limited> {
        let result = match self {
            RateLimiter::Local(limiter) => limiter.check(bucket, key),
            RateLimiter::Redis(limiter) => limiter.check(bucket, key).await,
        };
        if result.is_err() {
            metrics::counter!("rate_limited_total", "bucket" => bucket.name()).increment(1);
        }
        result
    }
}
