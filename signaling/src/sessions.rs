//! Open sockets by the sign-in session that opened them (the token's id), so that signing
//! out, changing the password or deleting the account closes them on every node instead of
//! letting them run on until they drop by themselves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::protocol::UserId;

/// Which of a user's sessions end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "which", content = "session", rename_all = "snake_case")]
pub enum Ending {
    /// One session (logout).
    One(String),
    /// Every session but this one (a password change: the caller goes on with a new token).
    AllBut(String),
    /// Every session (the account was deleted).
    All,
}

impl Ending {
    fn covers(&self, session: &str) -> bool {
        match self {
            Ending::One(s) => s == session,
            Ending::AllBut(s) => s != session,
            Ending::All => true,
        }
    }
}

#[derive(Debug)]
struct Open {
    serial: u64,
    session: String,
    ended: CancellationToken,
}

/// Every open socket's session on this node.
#[derive(Debug, Default)]
pub struct OpenSessions {
    by_user: Mutex<HashMap<UserId, Vec<Open>>>,
    serial: AtomicU64,
}

impl OpenSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Vec<Open>>> {
        self.by_user.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A socket of `user` opened with `session`; it is told through the returned guard's
    /// [`SessionGuard::ended`] when that session ends.
    pub fn register(this: &Arc<Self>, user: UserId, session: &str) -> SessionGuard {
        let serial = this.serial.fetch_add(1, Ordering::Relaxed);
        let ended = CancellationToken::new();
        this.lock().entry(user).or_default().push(Open {
            serial,
            session: session.to_owned(),
            ended: ended.clone(),
        });
        SessionGuard {
            sessions: Arc::clone(this),
            user,
            serial,
            ended,
        }
    }

    /// Ends the matching sockets of `user`; returns how many.
    pub fn end(&self, user: UserId, ending: &Ending) -> usize {
        let by_user = self.lock();
        let Some(open) = by_user.get(&user) else {
            return 0;
        };
        open.iter()
            .filter(|o| ending.covers(&o.session))
            .inspect(|o| o.ended.cancel())
            .count()
    }

    fn release(&self, user: UserId, serial: u64) {
        let mut by_user = self.lock();
        if let Some(open) = by_user.get_mut(&user) {
            open.retain(|o| o.serial != serial);
            if open.is_empty() {
                by_user.remove(&user);
            }
        }
    }
}

/// One socket's registration; dropping it (when the socket ends) removes it.
#[derive(Debug)]
pub struct SessionGuard {
    sessions: Arc<OpenSessions>,
    user: UserId,
    serial: u64,
    ended: CancellationToken,
}

impl SessionGuard {
    /// Cancelled when this socket's session ends.
    pub fn ended(&self) -> CancellationToken {
        self.ended.clone()
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.release(self.user, self.serial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ending_closes_exactly_its_sockets() {
        let sessions = Arc::new(OpenSessions::default());
        let a1 = OpenSessions::register(&sessions, 1, "a");
        let a2 = OpenSessions::register(&sessions, 1, "a");
        let b = OpenSessions::register(&sessions, 1, "b");
        let other_user = OpenSessions::register(&sessions, 2, "a");

        assert_eq!(sessions.end(1, &Ending::One("a".into())), 2);
        assert!(a1.ended().is_cancelled() && a2.ended().is_cancelled());
        assert!(!b.ended().is_cancelled());
        assert!(
            !other_user.ended().is_cancelled(),
            "another user's session of the same id"
        );

        let c = OpenSessions::register(&sessions, 1, "c");
        assert_eq!(sessions.end(1, &Ending::AllBut("c".into())), 3);
        assert!(b.ended().is_cancelled() && !c.ended().is_cancelled());
        sessions.end(1, &Ending::All);
        assert!(c.ended().is_cancelled());
    }

    #[test]
    fn closed_sockets_are_forgotten() {
        let sessions = Arc::new(OpenSessions::default());
        drop(OpenSessions::register(&sessions, 1, "a"));
        assert_eq!(sessions.end(1, &Ending::All), 0);
        assert!(sessions.lock().is_empty());
    }
}
