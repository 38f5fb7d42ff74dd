//! A circuit breaker per push host (`host:port`): after a run of failures (5xx, no answer)
//! the host gets no pushes for a cooldown, then one probe; the probe's failure doubles the
//! cooldown, its success closes the breaker. So a dead or hostile push service costs a few
//! requests per cooldown, not one per notice per subscription, and pushes to other hosts
//! never wait behind it.
//!
//! Sans-IO: `now` comes in, the decision goes out; nothing here sleeps or reads the clock.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Failures in a row that open the breaker.
const THRESHOLD: u32 = 5;
/// The first cooldown; doubled by each failed probe up to [`MAX_COOLDOWN`].
const BASE_COOLDOWN: Duration = Duration::from_secs(30);
const MAX_COOLDOWN: Duration = Duration::from_secs(300);
/// How long a probe has to report before another is let through.
const PROBE_WINDOW: Duration = Duration::from_secs(15);
/// Hosts remembered at most; beyond it, hosts whose breaker isn't open are forgotten.
const MAX_HOSTS: usize = 10_000;

/// What a send attempt says about its host's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The service answered as a working service does (2xx, 404/410, other 4xx).
    Up,
    /// 5xx or no answer in time.
    Down,
    /// Says nothing about the host (a 429 is about one subscription's rate; a refused
    /// address never reached it).
    Unknown,
}

/// Whether a push to a host may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Go,
    /// The breaker is open: not before this.
    NotBefore(Instant),
}

#[derive(Debug, Clone, Copy)]
struct HostState {
    failures: u32,
    /// Open until then (a probe, once admitted, pushes this on by [`PROBE_WINDOW`]).
    open_until: Option<Instant>,
    /// The cooldown the breaker last opened for.
    cooldown: Duration,
    /// A probe was let through; its result decides.
    probing: bool,
}

/// Every push host's breaker.
#[derive(Debug, Default)]
pub struct Breakers {
    hosts: Mutex<HashMap<String, HostState>>,
}

impl Breakers {
    /// Whether a push to `host` may go at `now`. Past the cooldown, the first caller gets
    /// `Go` as the probe; the others wait for its result.
    pub fn admit(&self, host: &str, now: Instant) -> Admit {
        let mut hosts = self.lock();
        let Some(state) = hosts.get_mut(host) else {
            return Admit::Go;
        };
        match state.open_until {
            None => Admit::Go,
            Some(until) if until > now => Admit::NotBefore(until),
            Some(_) => {
                state.probing = true;
                state.open_until = Some(now + PROBE_WINDOW);
                Admit::Go
            }
        }
    }

    /// Records what a push to `host` found; returns whether the breaker is now open.
    pub fn record(&self, host: &str, health: Health, now: Instant) -> bool {
        let mut hosts = self.lock();
        match health {
            Health::Unknown => hosts.get(host).is_some_and(|s| s.open_until.is_some()),
            Health::Up => {
                hosts.remove(host);
                false
            }
            Health::Down => {
                if hosts.len() >= MAX_HOSTS && !hosts.contains_key(host) {
                    hosts.retain(|_, s| s.open_until.is_some_and(|until| until > now));
                }
                let state = hosts.entry(host.to_owned()).or_insert(HostState {
                    failures: 0,
                    open_until: None,
                    cooldown: BASE_COOLDOWN,
                    probing: false,
                });
                state.failures = state.failures.saturating_add(1);
                if state.probing {
                    state.probing = false;
                    state.cooldown = (state.cooldown * 2).min(MAX_COOLDOWN);
                    state.open_until = Some(now + state.cooldown);
                } else if state.open_until.is_none() && state.failures >= THRESHOLD {
                    state.cooldown = BASE_COOLDOWN;
                    state.open_until = Some(now + state.cooldown);
                    metrics::counter!("push_breaker_opened_total").increment(1);
                }
                state.open_until.is_some()
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HostState>> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_in_a_row_open_the_breaker_and_a_success_resets_the_count() {
        let b = Breakers::default();
        let t0 = Instant::now();
        for _ in 0..4 {
            assert!(!b.record("a:443", Health::Down, t0));
        }
        b.record("a:443", Health::Up, t0);
        for _ in 0..4 {
            assert!(!b.record("a:443", Health::Down, t0));
        }
        assert_eq!(b.admit("a:443", t0), Admit::Go);
        assert!(b.record("a:443", Health::Down, t0));
        assert_eq!(b.admit("a:443", t0), Admit::NotBefore(t0 + BASE_COOLDOWN));
        assert_eq!(b.admit("b:443", t0), Admit::Go, "other hosts go on");
        assert!(
            b.record("a:443", Health::Unknown, t0),
            "a 429 changes nothing"
        );
    }

    #[test]
    fn after_the_cooldown_one_probe_goes_and_its_failure_doubles_the_cooldown() {
        let b = Breakers::default();
        let t0 = Instant::now();
        for _ in 0..THRESHOLD {
            b.record("a:443", Health::Down, t0);
        }
        let t1 = t0 + BASE_COOLDOWN;
        assert_eq!(b.admit("a:443", t1), Admit::Go, "the probe");
        assert_eq!(b.admit("a:443", t1), Admit::NotBefore(t1 + PROBE_WINDOW));
        assert!(b.record("a:443", Health::Down, t1));
        assert_eq!(
            b.admit("a:443", t1),
            Admit::NotBefore(t1 + BASE_COOLDOWN * 2)
        );
        let t2 = t1 + BASE_COOLDOWN * 2;
        assert_eq!(b.admit("a:443", t2), Admit::Go);
        assert!(!b.record("a:443", Health::Up, t2));
        assert_eq!(b.admit("a:443", t2), Admit::Go, "closed again");
    }

    #[test]
    fn a_probe_that_never_reports_lets_another_through() {
        let b = Breakers::default();
        let t0 = Instant::now();
        for _ in 0..THRESHOLD {
            b.record("a:443", Health::Down, t0);
        }
        let t1 = t0 + BASE_COOLDOWN;
        assert_eq!(b.admit("a:443", t1), Admit::Go);
        assert_eq!(b.admit("a:443", t1 + PROBE_WINDOW), Admit::Go);
    }
}
