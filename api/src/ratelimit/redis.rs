use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::{on_backend_error, Bucket, Limited, Refusal};
use crate::config::RateLimits;

/// GCRA in one atomic script. The key holds the "theoretical arrival time" in milliseconds
/// of Redis's own clock (so nodes with skewed clocks still agree) and expires once the
/// budget is full again. Returns 0 when allowed, else the milliseconds to wait.
const GCRA: &str = r"
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allowed_at = tat + emission - burst * emission
if now < allowed_at then return allowed_at - now end
local new_tat = tat + emission
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return 0
";

/// How long a limit check may wait for Redis. A check takes well under a millisecond when
/// Redis is up; when it is down, the connection manager may keep a request waiting while it
/// reconnects, and a login must not hang until the request timeout meanwhile.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// A limit shared by every node on the same Redis (and key prefix).
#[derive(Clone)]
pub struct RedisLimiter {
    conn: ConnectionManager,
    prefix: String,
    limits: RateLimits,
    script: Script,
}

impl RedisLimiter {
    pub fn new(conn: ConnectionManager, prefix: &str, limits: RateLimits) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            limits,
            script: Script::new(GCRA),
        }
    }

    /// If Redis fails, the failure is logged and [`on_backend_error`] decides: credential
    /// buckets refuse the request, the others let it through.
    pub(super) async fn check(&self, bucket: Bucket, key: &str) -> Result<(), Refusal> {
        let per_minute = u64::from(bucket.per_minute(&self.limits).max(1));
        let emission_ms = 60_000 / per_minute;
        let redis_key = format!("{}:ratelimit:{}:{}", self.prefix, bucket.name(), key);
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(redis_key);
        invocation.arg(emission_ms).arg(per_minute);
        let wait_ms: Result<u64, String> =
            tokio::time::timeout(CHECK_TIMEOUT, invocation.invoke_async(&mut conn))
                .await
                .map_err(|_| format!("no answer within {CHECK_TIMEOUT:?}"))
                .and_then(|r| r.map_err(|e| e.to_string()));
        match wait_ms {
            Ok(0) => Ok(()),
            Ok(ms) => Err(Refusal::Limited(Limited {
                retry_after: Duration::from_millis(ms),
            })),
            Err(err) => {
                let outcome = on_backend_error(bucket);
                let action = if outcome.is_ok() {
                    "allowing"
                } else {
                    "refusing"
                };
                tracing::warn!(error = %err, bucket = bucket.name(), "rate limit check failed in Redis; {action} the request");
                outcome
            }
        }
    }
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}
