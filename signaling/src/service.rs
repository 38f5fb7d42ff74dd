//! What a room connection needs from the application (storage, permissions, rate limits).
//! The `api` crate implements it over its database; tests can implement it in memory.

use crate::bus::BoxFuture;
use crate::protocol::{ChatMessage, Role, RoomId, Summary, UserId};

/// A command refused or failed, as an `error` message: the same `code`s as the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    pub code: String,
    pub message: String,
}

impl ServiceError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Turning the room's transcription on or off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptionSwitch {
    /// `language`: the room's language (an ISO 639-1 code) for every speaker, or `None` to
    /// detect each speaker's.
    Start {
        language: Option<String>,
    },
    Stop,
}

/// A room operation whose permission the application decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomOp {
    JoinCall,
    /// Mute or unmute yourself.
    MuteSelf,
    /// Mute someone else (server-enforced).
    MuteOther {
        target_user: UserId,
    },
    /// Lift a moderator's mute on someone and ask them to unmute.
    RequestUnmute {
        target_user: UserId,
    },
}

pub trait RoomService: Send + Sync + 'static {
    /// Checks that `user` may do `op` in the room now; returns the user's current role.
    ///
    /// # Errors
    /// `not_found` for a non-member (or a deleted room), `forbidden` for a role that can't.
    fn authorize(
        &self,
        room: RoomId,
        user: UserId,
        op: RoomOp,
    ) -> BoxFuture<'_, Result<Role, ServiceError>>;

    /// Validates, rate-limits, stores and publishes a chat message.
    ///
    /// # Errors
    /// `validation_failed`, `rate_limited`, `not_found`, `internal_error`.
    fn post_chat(
        &self,
        room: RoomId,
        user: UserId,
        username: String,
        text: String,
    ) -> BoxFuture<'_, Result<ChatMessage, ServiceError>>;

    /// Messages after `after`, oldest first, at most `limit`; and whether more follow.
    ///
    /// # Errors
    /// `not_found` for a non-member.
    fn chat_after(
        &self,
        room: RoomId,
        user: UserId,
        after: i64,
        limit: Option<u32>,
    ) -> BoxFuture<'_, Result<(Vec<ChatMessage>, bool), ServiceError>>;

    /// Removes `target` from the room (membership and call).
    ///
    /// # Errors
    /// `not_found`, `forbidden`.
    fn remove_member(
        &self,
        room: RoomId,
        actor: UserId,
        target: UserId,
    ) -> BoxFuture<'_, Result<(), ServiceError>>;

    /// Turns the room's transcription on or off for `user`, and tells the room. Starting
    /// twice or stopping while off succeeds without change.
    ///
    /// # Errors
    /// `transcription_unavailable` when the server has no model (the default), `not_found`
    /// for a non-member, `forbidden` for a member who may not stop it, `invalid_language`
    /// for a language the model doesn't know.
    fn set_transcription(
        &self,
        room: RoomId,
        user: UserId,
        switch: TranscriptionSwitch,
    ) -> BoxFuture<'_, Result<(), ServiceError>> {
        let _ = (room, user, switch);
        Box::pin(async {
            Err(ServiceError::new(
                crate::protocol::codes::TRANSCRIPTION_UNAVAILABLE,
                "this server has no speech model configured",
            ))
        })
    }

    /// Stops the room's AI agent and summarises its session (see `agent_summary`). May take
    /// long (the transcriber's flush, a model's answer): the connection runs it aside.
    /// Returns the summary and whether it is new (`false`: the session's stored one).
    ///
    /// # Errors
    /// `not_found` for a non-member, `forbidden` for a member who may not stop the agent,
    /// `internal_error`.
    fn agent_summary(
        &self,
        room: RoomId,
        user: UserId,
    ) -> BoxFuture<'_, Result<(Summary, bool), ServiceError>> {
        let _ = (room, user);
        Box::pin(async {
            Err(ServiceError::new(
                crate::protocol::codes::INTERNAL,
                "this server does not write summaries",
            ))
        })
    }
}
