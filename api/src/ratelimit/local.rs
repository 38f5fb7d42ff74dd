use std::collections::HashMap;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::{Bucket, Limited};
use crate::config::RateLimits;

/// Above this many tracked addresses, forget the ones whose budget is full again, so a flood
/// of distinct addresses can't grow memory without bound.
const MAX_TRACKED_KEYS: usize = 10_000;

/// One governor keyed limiter per bucket, for a single node.
#[derive(Debug)]
pub struct LocalLimiter {
    limiters: HashMap<Bucket, DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl LocalLimiter {
    pub fn new(limits: &RateLimits) -> Self {
        let limiters = Bucket::ALL
            .into_iter()
            .map(|bucket| {
                let n = NonZeroU32::new(bucket.per_minute(limits)).unwrap_or(NonZeroU32::MIN);
                (bucket, DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)))
            })
            .collect();
        Self {
            limiters,
            clock: DefaultClock::default(),
        }
    }

    pub(super) fn check(&self, bucket: Bucket, key: &str) -> Result<(), Limited> {
        let Some(limiter) = self.limiters.get(&bucket) else {
            return Ok(());
        };
        if limiter.len() > MAX_TRACKED_KEYS {
            limiter.retain_recent();
        }
        limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            })
    }
}
