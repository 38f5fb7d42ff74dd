//! What one user may do over WebSockets on this node: how many sockets they hold, and how
//! often they may send each type of message. A browser stays far below every limit; a
//! script that floods joins, offers or `sync`s is refused (and counted) before it costs the
//! server a database query, an SFU peer or a large answer.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::protocol::UserId;

/// Per user and message type: a burst, refilled at `per_minute`. Generous for people (a
/// reconnecting tab sends a join, an offer and a dozen candidates), tight for loops.
const MESSAGE_QUOTAS: &[(&str, u32, u32)] = &[
    // (type, burst, per minute)
    ("join", 10, 30),
    ("leave", 10, 30),
    ("chat", 20, 120),
    // A sync can answer with hundreds of messages: the costliest request per byte.
    ("sync", 5, 30),
    ("mute", 20, 120),
    ("unmute", 20, 120),
    ("request_unmute", 20, 120),
    ("remove", 10, 60),
    ("offer", 10, 30),
    // Answers follow the server's own offers (one per change in the room, while people come
    // and go); a refused one would leave the client deaf to every later newcomer, and one
    // without an offer outstanding costs the SFU nothing. Sized for churn, not for people.
    ("answer", 60, 600),
    ("ice_candidate", 100, 600),
    // Each start opens a transcription session (a row, a tap); each stop may summarise.
    ("transcription_start", 4, 12),
    ("transcription_stop", 4, 12),
    ("agent_summary", 2, 6),
    ("ping", 20, 120),
];

/// Above this many tracked users per type, forget the ones whose budget is full again.
const MAX_TRACKED_USERS: usize = 10_000;

/// The message-type limits, one keyed limiter per type.
#[derive(Debug)]
pub struct MessageLimits {
    limiters: HashMap<&'static str, DefaultKeyedRateLimiter<UserId>>,
    clock: DefaultClock,
}

impl Default for MessageLimits {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageLimits {
    pub fn new() -> Self {
        let limiters = MESSAGE_QUOTAS
            .iter()
            .map(|&(kind, burst, per_minute)| {
                let quota =
                    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
                        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
                (kind, DefaultKeyedRateLimiter::keyed(quota))
            })
            .collect();
        Self {
            limiters,
            clock: DefaultClock::default(),
        }
    }

    /// Takes one `kind` message from `user`'s budget.
    ///
    /// # Errors
    /// How long until the next one is allowed; the refusal is counted in
    /// `ws_messages_refused_total{type}`.
    pub fn check(&self, user: UserId, kind: &'static str) -> Result<(), Duration> {
        let Some(limiter) = self.limiters.get(kind) else {
            return Ok(());
        };
        if limiter.len() > MAX_TRACKED_USERS {
            limiter.retain_recent();
        }
        limiter.check_key(&user).map_err(|not_until| {
            metrics::counter!("ws_messages_refused_total", "type" => kind, "reason" => "rate_limited")
                .increment(1);
            not_until.wait_time_from(self.clock.now())
        })
    }

    /// Forgets users whose budget is full again (call now and then).
    pub fn forget_idle(&self) {
        for limiter in self.limiters.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The two kinds of socket, counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketKind {
    /// `/api/v1/rooms/{id}/ws`: one per room tab.
    Room,
    /// `/api/v1/ws`: DMs and presence, one per tab.
    User,
}

impl SocketKind {
    pub fn name(self) -> &'static str {
        match self {
            SocketKind::Room => "room",
            SocketKind::User => "user",
        }
    }
}

/// The user already holds as many sockets of this kind as allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at most {max} {} sockets per user are open at once; close one first", kind.name())]
pub struct TooManySockets {
    pub kind: SocketKind,
    pub max: usize,
}

/// Open sockets per user and kind.
#[derive(Debug, Default)]
pub struct SocketCounts {
    open: Mutex<HashMap<(UserId, SocketKind), usize>>,
}

impl SocketCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(UserId, SocketKind), usize>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One more socket for `user`, unless that would pass `max`.
    ///
    /// # Errors
    /// [`TooManySockets`], counted in `ws_sockets_refused_total{kind}`.
    pub fn acquire(
        this: &Arc<Self>,
        user: UserId,
        kind: SocketKind,
        max: usize,
    ) -> Result<SocketPermit, TooManySockets> {
        let mut open = this.lock();
        let count = open.entry((user, kind)).or_default();
        if *count >= max {
            metrics::counter!("ws_sockets_refused_total", "kind" => kind.name()).increment(1);
            return Err(TooManySockets { kind, max });
        }
        *count += 1;
        metrics::gauge!("ws_sockets_open", "kind" => kind.name()).increment(1.0);
        Ok(SocketPermit {
            counts: Arc::clone(this),
            user,
            kind,
        })
    }

    /// Sockets `user` holds of `kind` now.
    pub fn count(&self, user: UserId, kind: SocketKind) -> usize {
        self.lock().get(&(user, kind)).copied().unwrap_or(0)
    }

    fn release(&self, user: UserId, kind: SocketKind) {
        metrics::gauge!("ws_sockets_open", "kind" => kind.name()).decrement(1.0);
        let mut open = self.lock();
        if let Some(count) = open.get_mut(&(user, kind)) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&(user, kind));
            }
        }
    }
}

/// A place for one socket; dropping it (when the socket ends) frees the place.
#[derive(Debug)]
pub struct SocketPermit {
    counts: Arc<SocketCounts>,
    user: UserId,
    kind: SocketKind,
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        self.counts.release(self.user, self.kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_offers_is_cut_at_its_quota_and_other_users_are_unaffected() {
        let limits = MessageLimits::new();
        let allowed = (0..50).filter(|_| limits.check(1, "offer").is_ok()).count();
        assert_eq!(allowed, 10, "the burst, then refusals");
        let wait = limits.check(1, "offer").expect_err("still refused");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(2));
        assert!(
            limits.check(2, "offer").is_ok(),
            "another user has their own budget"
        );
        assert!(
            limits.check(1, "chat").is_ok(),
            "another type has its own budget"
        );
    }

    #[test]
    fn socket_permits_are_capped_per_user_and_kind_and_freed_on_drop() {
        let counts = Arc::new(SocketCounts::default());
        let held: Vec<_> = (0..3)
            .map(|_| SocketCounts::acquire(&counts, 7, SocketKind::Room, 3).expect("room"))
            .collect();
        assert_eq!(
            SocketCounts::acquire(&counts, 7, SocketKind::Room, 3).map(|_| ()),
            Err(TooManySockets {
                kind: SocketKind::Room,
                max: 3
            })
        );
        assert!(SocketCounts::acquire(&counts, 7, SocketKind::User, 3).is_ok());
        assert!(SocketCounts::acquire(&counts, 8, SocketKind::Room, 3).is_ok());
        drop(held);
        assert_eq!(counts.count(7, SocketKind::Room), 0);
        assert!(SocketCounts::acquire(&counts, 7, SocketKind::Room, 3).is_ok());
    }
}
