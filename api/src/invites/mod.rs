//! Ringing people into calls: [`CallInviteService`], one state machine for invites.
//!
//! An invite is pending from `invite` until exactly one of accept (callee), decline
//! (callee), cancel (caller) or timeout ends it. Every end is one atomic take from the
//! [`InviteStore`], so two tabs accepting at once, or an accept racing the timeout on another
//! node, can't both win; the winner tells both users' tabs (`invite_ended`) over the bus.
//! Timeouts are swept from the store by every node, so an invite taken by a node that then
//! dies still times out.

mod redis;
mod store;

use std::sync::Arc;
use std::time::Duration;

use signaling::protocol::{Invite, InviteOutcome, RoomId, ServerMessage, UserId};
use signaling::Hub;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::store::{InviteStore, InviteStoreError, MemoryInvites, RedisInvites, StoredInvite};
use crate::app::permissions::{authorize, Action};
use crate::db::{now_millis, Store, StoreError, UserRow};
use crate::domain::{Role, Username, ValidationError};
use crate::error::{Error, Result};
use crate::push::{Notice, PushService};
use crate::timestamps::timestamp;

/// How often each node looks for invites whose time is up.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

impl From<InviteStoreError> for Error {
    fn from(err: InviteStoreError) -> Self {
        Error::internal(err)
    }
}

/// What the invite use cases need from the rest of the application.
#[derive(Clone, Copy)]
pub struct InviteDeps<'a> {
    pub store: &'a Store,
    pub hub: &'a Hub,
    pub push: &'a PushService,
}

#[derive(Debug)]
pub struct CallInviteService {
    store: InviteStore,
    timeout: Duration,
}

impl CallInviteService {
    pub fn new(store: InviteStore, timeout: Duration) -> Self {
        Self { store, timeout }
    }

    /// `from` invites `username` into the room's call: the callee's tabs ring, and a push
    /// goes out when they have none open.
    ///
    /// # Errors
    /// 404 for a room `from` is not in or an unknown user, 422 for inviting yourself, 403
    /// when a moderator removed the callee and `from` is an ordinary member,
    /// 409 `busy` when the callee is in a call, 409 `invite_pending` when they already ring
    /// for this room.
    pub async fn invite(
        &self,
        deps: InviteDeps<'_>,
        from: &UserRow,
        room_id: RoomId,
        username: &str,
    ) -> Result<Invite> {
        let role = deps.store.member_role(room_id, from.id).await?;
        authorize(role, Action::InviteToCall)?;
        let may_lift_removal = role.is_some_and(|r| r >= Role::Moderator);
        let room = deps
            .store
            .room(room_id)
            .await?
            .ok_or(Error::NotFound("room"))?;
        let username = Username::parse(username)?;
        let to = deps
            .store
            .user_by_name(&username)
            .await?
            .ok_or(Error::NotFound("user"))?;
        if to.id == from.id {
            return Err(ValidationError::new("username", "you can't invite yourself").into());
        }
        if !may_lift_removal && deps.store.is_removed(room_id, to.id).await? {
            return Err(removed_error());
        }
        if deps.hub.is_in_call(to.id) {
            return Err(Error::Conflict {
                code: "busy",
                message: format!("{} is in a call", to.username),
            });
        }
        let now = now_millis();
        let expires_at_ms = now + i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX);
        let invite = Invite {
            id: uuid::Uuid::new_v4().simple().to_string(),
            room_id,
            room_name: room.name,
            from_user_id: from.id,
            from_username: from.username.clone(),
            to_user_id: to.id,
            to_username: to.username.clone(),
            created_at: timestamp(now),
            expires_at: timestamp(expires_at_ms),
        };
        let stored = StoredInvite {
            invite: invite.clone(),
            expires_at_ms,
        };
        if !self.store.insert(&stored).await? {
            return Err(Error::Conflict {
                code: "invite_pending",
                message: format!("{} is already being called into this room", to.username),
            });
        }
        tracing::info!(room_id, invite_id = %invite.id, from = from.id, to = to.id, "invite ringing");
        metrics::counter!("invites_total", "event" => "sent").increment(1);
        for user in [to.id, from.id] {
            let message = ServerMessage::Invite {
                invite: invite.clone(),
            };
            if let Err(err) = deps.hub.publish_user(user, message).await {
                tracing::warn!(user_id = user, error = %err, "invite stored but not announced");
            }
        }
        if !deps.hub.is_online(to.id) {
            deps.push
                .notify(
                    to.id,
                    Notice::Invite {
                        invite: invite.clone(),
                    },
                )
                .await;
        }
        Ok(invite)
    }

    /// Pending invites: (to me, from me).
    ///
    /// # Errors
    /// 500 when the store fails.
    pub async fn pending(&self, user_id: UserId) -> Result<(Vec<Invite>, Vec<Invite>)> {
        let (incoming, outgoing) = self
            .store
            .involving(user_id)
            .await?
            .into_iter()
            .map(|s| s.invite)
            .partition(|i| i.to_user_id == user_id);
        Ok((incoming, outgoing))
    }

    /// The callee accepts: they become a member of the room (if not one yet).
    ///
    /// # Errors
    /// 404 when the invite is not pending for `user_id` (or the room is gone); 403 when a
    /// moderator removed them and the invite is not (or no longer) from a moderator or owner.
    pub async fn accept(&self, deps: InviteDeps<'_>, user_id: UserId, id: &str) -> Result<RoomId> {
        let stored = self.take_as(user_id, id, Party::Callee).await?;
        let room_id = stored.invite.room_id;
        // A removal the invite can't undo, or a room deleted while it rang: the invite ends
        // as cancelled for both parties.
        let refused = match self.check_removal(deps.store, &stored.invite).await {
            Err(err) => Some(err),
            Ok(()) if deps.store.room(room_id).await?.is_none() => Some(Error::NotFound("room")),
            Ok(()) => None,
        };
        if let Some(err) = refused {
            self.announce(
                deps.hub,
                &stored.invite,
                InviteOutcome::Cancelled,
                stored.invite.from_user_id,
            )
            .await;
            return Err(err);
        }
        match deps
            .store
            .add_member(room_id, user_id, Role::Member, now_millis())
            .await
        {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(err) => {
                // Put it back, so the callee can try again: nothing is half done.
                let _ = self.store.insert(&stored).await;
                return Err(err.into());
            }
        }
        self.announce(deps.hub, &stored.invite, InviteOutcome::Accepted, user_id)
            .await;
        Ok(room_id)
    }

    /// A callee a moderator removed comes back only on an invite from a moderator or the
    /// owner, as they are now (a moderator demoted since the invite no longer counts).
    async fn check_removal(&self, store: &Store, invite: &Invite) -> Result<()> {
        if !store.is_removed(invite.room_id, invite.to_user_id).await? {
            return Ok(());
        }
        let inviter = store
            .member_role(invite.room_id, invite.from_user_id)
            .await?;
        if inviter.is_some_and(|r| r >= Role::Moderator) {
            store
                .clear_removal(invite.room_id, invite.to_user_id)
                .await?;
            Ok(())
        } else {
            Err(removed_error())
        }
    }

    /// The callee declines.
    ///
    /// # Errors
    /// 404 when the invite is not pending for `user_id`.
    pub async fn decline(&self, hub: &Hub, user_id: UserId, id: &str) -> Result<()> {
        let stored = self.take_as(user_id, id, Party::Callee).await?;
        self.announce(hub, &stored.invite, InviteOutcome::Declined, user_id)
            .await;
        Ok(())
    }

    /// The caller hangs up.
    ///
    /// # Errors
    /// 404 when the invite is not pending from `user_id`.
    pub async fn cancel(&self, hub: &Hub, user_id: UserId, id: &str) -> Result<()> {
        let stored = self.take_as(user_id, id, Party::Caller).await?;
        self.announce(hub, &stored.invite, InviteOutcome::Cancelled, user_id)
            .await;
        Ok(())
    }

    /// Ends every invite whose time is up; returns how many.
    ///
    /// # Errors
    /// 500 when the store fails.
    pub async fn sweep(&self, hub: &Hub) -> Result<usize> {
        let expired = self.store.take_expired(now_millis()).await?;
        for stored in &expired {
            self.announce(
                hub,
                &stored.invite,
                InviteOutcome::Timeout,
                stored.invite.to_user_id,
            )
            .await;
        }
        Ok(expired.len())
    }

    /// Sweeps until `stop` turns true.
    pub fn run_sweeper(
        self: Arc<Self>,
        hub: Arc<Hub>,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(err) = self.sweep(&hub).await {
                            tracing::warn!(error = %err, "invite sweep failed; retrying");
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    }

    /// Takes the invite if `user_id` is the given party of it; otherwise leaves it pending.
    async fn take_as(&self, user_id: UserId, id: &str, party: Party) -> Result<StoredInvite> {
        let is_party = |s: &StoredInvite| match party {
            Party::Callee => s.invite.to_user_id == user_id,
            Party::Caller => s.invite.from_user_id == user_id,
        };
        // Checked before taking, so someone else's attempt can't end it.
        match self.store.get(id).await? {
            Some(s) if is_party(&s) => {}
            _ => return Err(Error::NotFound("invite")),
        }
        self.store.take(id).await?.ok_or(Error::NotFound("invite"))
    }

    async fn announce(&self, hub: &Hub, invite: &Invite, outcome: InviteOutcome, by: UserId) {
        let label = outcome.as_str();
        tracing::info!(room_id = invite.room_id, invite_id = %invite.id, outcome = label, "invite ended");
        metrics::counter!("invites_total", "event" => label).increment(1);
        for user in [invite.to_user_id, invite.from_user_id] {
            let message = ServerMessage::InviteEnded {
                invite_id: invite.id.clone(),
                room_id: invite.room_id,
                outcome,
                by_user_id: by,
            };
            if let Err(err) = hub.publish_user(user, message).await {
                tracing::warn!(user_id = user, error = %err, "invite end not announced");
            }
        }
    }
}

/// An ordinary member tried to bring back someone a moderator removed.
fn removed_error() -> Error {
    Error::Forbidden(
        "a moderator removed this user from the room; only a moderator or the owner can bring them back",
    )
}

#[derive(Debug, Clone, Copy)]
enum Party {
    Callee,
    Caller,
}
