//! Churn: participants joining and leaving a call continuously while the others talk, for
//! `load` and `janus-load` alike. Each churner is a listener with a muted microphone that
//! joins, stays a while, leaves and joins again until the window ends; the call of the stable
//! participants is measured as usual (a churn must not disturb it), and after everyone has left
//! the server's memory and open files are compared with the idle server's (the leak check).

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::{ms, percentile};
use crate::server_probe::{ProcessSample, ServerProbe};

/// How long a churner waits for its media to connect before counting the join as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Clone, Copy)]
pub struct ChurnArgs {
    /// Extra participants per room who join and leave continuously (muted listeners), while
    /// the others hold the call. 0 (default): no churn.
    #[arg(long, default_value_t = 0)]
    pub churners: usize,
    /// How long a churner stays in the call before it leaves and joins again.
    #[arg(long, default_value_t = 2000)]
    pub churn_stay_ms: u64,
}

impl ChurnArgs {
    pub fn stay(&self) -> Duration {
        Duration::from_millis(self.churn_stay_ms)
    }
}

/// What the churners lived through.
#[derive(Default)]
pub struct ChurnOutcome {
    join_times: Vec<Duration>,
    failed: usize,
    first_error: Option<String>,
}

/// Runs `churners` churners until `until`: each repeats `cycle(churner, attempt)` (join, wait
/// for media, stay, leave; the join time on success), starting staggered so that joins spread
/// over the stay. Waits for every churner's last cycle before it returns.
pub async fn drive<F, Fut>(
    churners: usize,
    stay: Duration,
    until: Instant,
    cycle: F,
) -> ChurnOutcome
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<Duration>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    for churner in 0..churners {
        let cycle = cycle.clone();
        let offset = stay.mul_f64(churner as f64 / churners.max(1) as f64);
        tasks.spawn(async move {
            tokio::time::sleep(offset).await;
            let mut results = Vec::new();
            let mut attempt = 0;
            while Instant::now() < until {
                results.push(cycle(churner, attempt).await);
                attempt += 1;
            }
            results
        });
    }
    let mut outcome = ChurnOutcome::default();
    while let Some(done) = tasks.join_next().await {
        let results = match done {
            Ok(results) => results,
            Err(e) => vec![Err(anyhow::anyhow!("churner task: {e}"))],
        };
        for result in results {
            match result {
                Ok(joined_after) => outcome.join_times.push(joined_after),
                Err(e) => {
                    outcome.failed += 1;
                    outcome.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
    }
    outcome
}

/// Waits until `connected_after` reports the media up, for at most [`CONNECT_TIMEOUT`].
pub async fn connected(
    mut connected_after: impl FnMut() -> Option<Duration>,
) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        if let Some(after) = connected_after() {
            return Ok(after);
        }
        if Instant::now() > deadline {
            anyhow::bail!("media did not connect within {CONNECT_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl ChurnOutcome {
    pub fn to_json(&self, args: &ChurnArgs, window: Duration) -> Value {
        let mut times = self.join_times.clone();
        times.sort();
        json!({
            "churners": args.churners,
            "stay_ms": args.churn_stay_ms,
            "joins": times.len(),
            "failed_joins": self.failed,
            "first_error": self.first_error,
            "joins_per_second": (times.len() as f64 / window.as_secs_f64() * 10.0).round() / 10.0,
            "join_ms": {
                "p50": ms(percentile(&times, 50.0)),
                "p95": ms(percentile(&times, 95.0)),
                "max": ms(times.last().copied().unwrap_or_default()),
            },
        })
    }
}

/// The leak check: the server's memory and open files once everyone has left, beside the
/// idle server's. Waits up to 10 s for the open files to come back, as the server closes a
/// leaving peer's socket and timers asynchronously.
pub async fn after_everyone_left(server_pid: Option<u32>, idle: Option<&ProcessSample>) -> Value {
    let (Some(pid), Some(idle)) = (server_pid, idle) else {
        return Value::Null;
    };
    let probe = ServerProbe::new(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = probe.sample();
        if last.as_ref().is_some_and(|s| s.fds <= idle.fds) {
            break;
        }
    }
    let Some(after) = last else {
        return Value::Null;
    };
    json!({
        "idle_rss_kib": idle.rss_kib,
        "rss_kib": after.rss_kib,
        "idle_fds": idle.fds,
        "fds": after.fds,
        "idle_threads": idle.threads,
        "threads": after.threads,
    })
}
