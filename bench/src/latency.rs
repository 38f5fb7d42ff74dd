//! Forwarding latency on one clock: a load run's senders stamp each payload with the time it
//! left (the bench's clients share one process, so one monotonic epoch serves them all), and
//! receivers histogram the delay. The stamp replaces the Opus payload's tail, so it is only
//! for load runs, where nobody decodes the audio.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Marks a stamped payload: 4 magic bytes, then the send time in µs since [`epoch`].
const MAGIC: &[u8; 4] = b"WCts";
const STAMP_LEN: usize = MAGIC.len() + 8;
/// Bucket width and range: 10 µs resolution up to 50 ms; later arrivals are counted above.
const BUCKET_US: u64 = 10;
const BUCKETS: usize = 5_000;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_micros()).unwrap_or(u64::MAX)
}

/// Writes the send time over the payload's last bytes (payloads shorter than the stamp are
/// extended).
pub fn stamp(payload: &mut Vec<u8>, now: Instant) {
    if payload.len() < STAMP_LEN {
        payload.resize(STAMP_LEN, 0);
    }
    let tail = payload.len() - STAMP_LEN;
    payload[tail..tail + MAGIC.len()].copy_from_slice(MAGIC);
    payload[tail + MAGIC.len()..].copy_from_slice(&micros_since_epoch(now).to_be_bytes());
}

/// The delay from a stamped payload's send to `now`, or `None` for an unstamped payload.
pub fn delay(payload: &[u8], now: Instant) -> Option<Duration> {
    let tail = payload.len().checked_sub(STAMP_LEN)?;
    if &payload[tail..tail + MAGIC.len()] != MAGIC {
        return None;
    }
    let sent = u64::from_be_bytes(payload[tail + MAGIC.len()..].try_into().ok()?);
    Some(Duration::from_micros(
        micros_since_epoch(now).saturating_sub(sent),
    ))
}

/// Delays in 10 µs buckets (50 ms range): cheap to record per packet and to subtract.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
    above: u64,
}

impl LatencyHistogram {
    pub fn record(&mut self, delay: Duration) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
        }
        let bucket = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX) / BUCKET_US;
        match usize::try_from(bucket).ok().filter(|b| *b < BUCKETS) {
            Some(b) => self.buckets[b] += 1,
            None => self.above += 1,
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum::<u64>() + self.above
    }

    /// Adds `other`'s samples.
    pub fn add(&mut self, other: &Self) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.above += other.above;
    }

    /// The samples recorded after `earlier` (a copy of this histogram taken before).
    pub fn since(&self, earlier: &Self) -> Self {
        let buckets = if earlier.buckets.is_empty() {
            self.buckets.clone()
        } else {
            self.buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect()
        };
        Self {
            buckets,
            above: self.above.saturating_sub(earlier.above),
        }
    }

    /// The `p`-th percentile in milliseconds (a bucket's upper edge), `None` without samples;
    /// past the range it is `f64::INFINITY`.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(((i as u64 + 1) * BUCKET_US) as f64 / 1000.0);
            }
        }
        Some(f64::INFINITY)
    }

    /// The samples of a measuring window over many receivers: `after[i]` since `before[i]`.
    pub fn window(before: &[Self], after: &[Self]) -> Self {
        let mut all = Self::default();
        for (b, a) in before.iter().zip(after) {
            all.add(&a.since(b));
        }
        all
    }

    /// `{samples, p50, p99, p999}` in milliseconds (JSON `null` past the 50 ms range).
    pub fn summary(&self) -> serde_json::Value {
        let at = |p| self.percentile_ms(p).filter(|v| v.is_finite());
        // A few points of the distribution, for the report's CDF plot.
        let cdf: Vec<(f64, f64)> = [1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9]
            .into_iter()
            .filter_map(|p| Some((p, at(p)?)))
            .collect();
        serde_json::json!({
            "samples": self.count(),
            "p50": at(50.0), "p99": at(99.0), "p999": at(99.9),
            "cdf": cdf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_payload_reads_back_its_delay_and_an_unstamped_one_reads_none() {
        stamp(&mut Vec::new(), Instant::now()); // the epoch starts with the first stamp
        let sent = Instant::now();
        let mut payload = vec![0xfc; 40];
        stamp(&mut payload, sent);
        assert_eq!(payload.len(), 40);
        let delay = delay(&payload, sent + Duration::from_micros(1_500)).expect("stamped");
        assert!((1_499..=1_501).contains(&delay.as_micros()), "{delay:?}");
        assert_eq!(super::delay(&[0xfc; 40], sent), None);
    }

    #[test]
    fn percentiles_come_from_the_window_only() {
        let mut h = LatencyHistogram::default();
        for _ in 0..100 {
            h.record(Duration::from_millis(30));
        }
        let before = h.clone();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let window = h.since(&before);
        assert_eq!(window.count(), 1000);
        // A bucket's upper edge: 500 µs is in [500, 510).
        assert_eq!(window.percentile_ms(50.0), Some(0.51));
        assert_eq!(window.percentile_ms(99.0), Some(1.0));
        h.record(Duration::from_secs(1));
        assert_eq!(h.since(&before).percentile_ms(100.0), Some(f64::INFINITY));
    }
}
