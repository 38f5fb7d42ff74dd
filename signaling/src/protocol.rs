//! The wire protocol of both WebSockets (`/api/v1/rooms/{id}/ws` and `/api/v1/ws`): JSON text
//! frames, one message per frame, tagged by `type` (see `docs/protocol.md`).
//!
//! Messages a client may want to correlate carry an optional, client-chosen `request_id` that
//! the server echoes in the matching `ack`, `history` or `error`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A database id of a room.
pub type RoomId = i64;
/// A database id of a user.
pub type UserId = i64;

/// One connection's presence in a room's call. One user with two tabs is two participants.
///
/// The id is `node tag << 32 | sequence`, which stays below 2^53 so JavaScript clients read
/// it exactly, and is unique across nodes sharing a bus as long as their tags differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(pub u64);

impl ParticipantId {
    /// Node tags are 20 bits wide: tag (20) + sequence (32) = 52 bits.
    pub const NODE_TAG_BITS: u32 = 20;

    pub fn new(node_tag: u32, sequence: u32) -> Self {
        let tag = u64::from(node_tag) & ((1 << Self::NODE_TAG_BITS) - 1);
        Self(tag << 32 | u64::from(sequence))
    }

    /// The tag of the node the participant joined through.
    pub fn node_tag(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A member's role in a room, as the protocol spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Moderator,
    Owner,
}

/// A stored room chat message. `text` is plain text; clients must never render it as HTML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: i64,
    pub room_id: RoomId,
    pub user_id: UserId,
    pub username: String,
    pub text: String,
    /// RFC 3339.
    pub created_at: String,
}

/// Who wrote a summary: a model, or the server's own extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SummarySource {
    Ai,
    Heuristic,
}

/// The AI agent's summary of one session (its transcript, then the chat of the same period).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    pub id: i64,
    pub room_id: RoomId,
    pub session_id: i64,
    /// Who triggered it (`None` once that user is deleted).
    pub requested_by: Option<UserId>,
    pub requested_by_name: Option<String>,
    pub source: SummarySource,
    /// The model that wrote it (source `ai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why the server wrote it itself: `short`, `no_provider` or `provider_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Plain text; clients must never render it as HTML.
    pub text: String,
    /// Transcript segments and chat messages that went in.
    pub segments: i64,
    pub messages: i64,
    /// The session's period (RFC 3339).
    pub started_at: String,
    pub ended_at: String,
    pub created_at: String,
}

/// A stored direct message. Either `text` (plain) or the four encrypted fields are set; the
/// server treats the encrypted fields as opaque strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectMessage {
    pub id: i64,
    pub sender: String,
    pub recipient: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_key_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; `None` while the recipient hasn't marked it read.
    #[serde(default)]
    pub read_at: Option<String>,
}

/// A pending call invite: `from` rings `to` into the room's call until it is accepted,
/// declined, cancelled or it times out (`expires_at`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invite {
    /// Opaque, unguessable.
    pub id: String,
    pub room_id: RoomId,
    pub room_name: String,
    pub from_user_id: UserId,
    pub from_username: String,
    pub to_user_id: UserId,
    pub to_username: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: when it stops ringing by itself.
    pub expires_at: String,
}

/// How an invite ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InviteOutcome {
    Accepted,
    Declined,
    /// The caller hung up.
    Cancelled,
    /// Nobody answered in time.
    Timeout,
}

impl InviteOutcome {
    /// The wire name (as serialized), for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            InviteOutcome::Accepted => "accepted",
            InviteOutcome::Declined => "declined",
            InviteOutcome::Cancelled => "cancelled",
            InviteOutcome::Timeout => "timeout",
        }
    }
}

/// Someone in the call right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
    pub muted: bool,
    /// Muted by a moderator: the participant can't unmute until a moderator asks them to.
    pub mute_locked: bool,
}

/// A STUN or TURN server, as `RTCConfiguration.iceServers` wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `RTCIceCandidateInit`, as browsers serialize it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(default)]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_m_line_index: Option<u16>,
    #[serde(default)]
    pub username_fragment: Option<String>,
}

/// Why the server ended a participant's media connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaCloseReason {
    /// ICE never connected.
    ConnectTimeout,
    /// DTLS failed, the client closed it, or it stayed disconnected past the grace period.
    Failed,
}

/// Whether a participant's media is reaching the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaState {
    Connected,
    /// Nothing has arrived from it for a few seconds; it keeps its place while it reconnects.
    Disconnected,
}

/// Why a participant left the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// Sent `leave`.
    Left,
    /// Closed the socket.
    Closed,
    /// Stopped answering pings (crashed tab, lost network).
    Timeout,
    /// Removed from the room by a moderator or the owner.
    Removed,
    /// The server is shutting down.
    Shutdown,
    /// The same user joined the call again (a reconnect, or another tab): the newer
    /// connection replaces this one.
    Replaced,
    /// Its media stayed disconnected past the grace period.
    MediaFailed,
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Join the room's call (room socket). Answered with `joined`.
    Join {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// Leave the call; the socket stays open and may `join` again.
    Leave {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// Send a chat message to the room. Answered with `ack` (id and timestamp).
    Chat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        text: String,
    },
    /// Messages after `after` (oldest first), e.g. after a reconnect. Answered with `history`.
    Sync {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        after: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Mute a participant; without `participant_id`, yourself.
    Mute {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant_id: Option<ParticipantId>,
    },
    /// Unmute yourself (refused while a moderator's mute holds).
    Unmute {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// Lift a moderator's mute and ask the participant to unmute (owner, moderators).
    RequestUnmute {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        participant_id: ParticipantId,
    },
    /// Remove a user from the room (owner, moderators); same as `DELETE .../members/{id}`.
    Remove {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        user_id: UserId,
    },
    /// Start media: the client's SDP offer (one audio track). Answered with `answer`; the
    /// server then sends `offer`s of its own as participants come and go.
    Offer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        sdp: String,
    },
    /// The client's answer to the server's last `offer`.
    Answer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        sdp: String,
    },
    /// A trickled ICE candidate (`RTCIceCandidate.toJSON()`).
    IceCandidate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        candidate: IceCandidate,
    },
    /// Turn on the room's transcriber ("AI agent"): every member in the call may; everyone
    /// is told with `transcription_state`. Answered with `ack`, or `transcription_unavailable`
    /// when the server has no model. `language` (an ISO 639-1 code such as `ru`) transcribes
    /// everyone in that language; without it each speaker's language is detected over their
    /// first utterances and kept. An unknown code is `invalid_language`.
    TranscriptionStart {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
    },
    /// Turn it off: the member who started it, moderators and the owner may.
    TranscriptionStop {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// Stop the AI agent and summarise its session: the server stops the transcription,
    /// waits for what was still being transcribed, and writes the summary. Answered with
    /// `ack` when a new summary went to everyone as `summary`, or with `summary` (to you
    /// only) when the session was summarised already. Who may: as `transcription_stop`
    /// while the agent runs; any member afterwards.
    AgentSummary {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// Application-level keep-alive for clients that can't see WebSocket pings.
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
}

impl ClientMessage {
    /// The message's `type`, as the client wrote it: the key of its rate limit and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Join { .. } => "join",
            ClientMessage::Leave { .. } => "leave",
            ClientMessage::Chat { .. } => "chat",
            ClientMessage::Sync { .. } => "sync",
            ClientMessage::Mute { .. } => "mute",
            ClientMessage::Unmute { .. } => "unmute",
            ClientMessage::RequestUnmute { .. } => "request_unmute",
            ClientMessage::Remove { .. } => "remove",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::IceCandidate { .. } => "ice_candidate",
            ClientMessage::TranscriptionStart { .. } => "transcription_start",
            ClientMessage::TranscriptionStop { .. } => "transcription_stop",
            ClientMessage::AgentSummary { .. } => "agent_summary",
            ClientMessage::Ping { .. } => "ping",
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            ClientMessage::Join { request_id }
            | ClientMessage::Leave { request_id }
            | ClientMessage::Chat { request_id, .. }
            | ClientMessage::Sync { request_id, .. }
            | ClientMessage::Mute { request_id, .. }
            | ClientMessage::Unmute { request_id }
            | ClientMessage::RequestUnmute { request_id, .. }
            | ClientMessage::Remove { request_id, .. }
            | ClientMessage::Offer { request_id, .. }
            | ClientMessage::Answer { request_id, .. }
            | ClientMessage::IceCandidate { request_id, .. }
            | ClientMessage::TranscriptionStart { request_id, .. }
            | ClientMessage::TranscriptionStop { request_id }
            | ClientMessage::AgentSummary { request_id }
            | ClientMessage::Ping { request_id } => request_id.as_deref(),
        }
    }
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// You are in the call: who else is, your role and mute state.
    Joined {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        room_id: RoomId,
        participant_id: ParticipantId,
        role: Role,
        muted: bool,
        /// Everyone in the call now, you included.
        participants: Vec<ParticipantInfo>,
        /// STUN/TURN servers for the client's `RTCPeerConnection` (empty: host candidates
        /// only, e.g. on a LAN).
        #[serde(default)]
        ice_servers: Vec<IceServer>,
    },
    /// The server's answer to the client's `offer`.
    Answer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        sdp: String,
    },
    /// A server offer: participants' tracks came or went. Reply with `answer`.
    Offer {
        sdp: String,
    },
    /// The participant's audio is flowing: in a small room on the remote stream
    /// `p<participant_id>`; in a large room on the audio slots (streams `slot<i>`), where each
    /// packet names its speaker by `source` in the RTP CSRC list
    /// (`RTCRtpReceiver.getContributingSources()`).
    TrackPublished {
        participant_id: ParticipantId,
        source: u32,
    },
    /// The participant's audio is gone (left, removed, media failed).
    TrackUnpublished {
        participant_id: ParticipantId,
    },
    Speaking {
        participant_id: ParticipantId,
        speaking: bool,
    },
    /// The loudest current speaker changed.
    ActiveSpeaker {
        participant_id: ParticipantId,
    },
    /// Your media connection ended and you left the call (`participant_left` with
    /// `media_failed` goes to the others); `join` and `offer` again.
    MediaClosed {
        reason: MediaCloseReason,
    },
    /// A participant's media (yours too) stopped reaching the server, or came back.
    MediaState {
        participant_id: ParticipantId,
        state: MediaState,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        participant_id: ParticipantId,
        user_id: UserId,
        reason: LeaveReason,
    },
    /// A command succeeded. For `chat`, with the stored message's id and timestamp.
    Ack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created_at: Option<String>,
    },
    /// A room chat message, delivered to everyone in the call (the sender too), once, in one
    /// order.
    Chat {
        message: ChatMessage,
    },
    /// The answer to `sync`: messages after the given id, oldest first.
    History {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        messages: Vec<ChatMessage>,
        /// More messages follow; `sync` again after the last id.
        has_more: bool,
    },
    MuteChanged {
        participant_id: ParticipantId,
        user_id: UserId,
        muted: bool,
        mute_locked: bool,
        by_user_id: UserId,
    },
    UnmuteRequested {
        participant_id: ParticipantId,
        user_id: UserId,
        by_user_id: UserId,
    },
    RoleChanged {
        user_id: UserId,
        role: Role,
        by_user_id: UserId,
    },
    /// The user is no longer a member; their sockets in this room are closed after this.
    MemberRemoved {
        user_id: UserId,
        by_user_id: UserId,
    },
    /// The owner deleted the room: the call is over and every socket of the room is closed
    /// after this (close code 4004).
    RoomDeleted {
        by_user_id: UserId,
    },
    /// Whether the room is being transcribed, and who turned it on (or off). Sent to
    /// everyone in the call when it changes, and to a joiner right after `joined` while on.
    TranscriptionState {
        active: bool,
        by_user_id: UserId,
    },
    /// A live caption: one transcribed utterance. Times are Unix milliseconds. It replaces
    /// the `caption_partial`s of the same participant and `start_ms`. `language`: the ISO
    /// 639-1 code it was transcribed in.
    Caption {
        participant_id: ParticipantId,
        user_id: UserId,
        username: String,
        start_ms: i64,
        end_ms: i64,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
    },
    /// The words so far of an utterance still being spoken, about once a second while there
    /// is spare transcription capacity (none when the server is busy: finals come first).
    /// `stable` only grows within the utterance (two consecutive hypotheses agreed on it);
    /// `unstable` is the newest guess at the rest. A higher `revision` replaces a lower one
    /// of the same participant and `start_ms`; the `caption` with that `start_ms` replaces
    /// them all, and a partial arriving after it is stale.
    CaptionPartial {
        participant_id: ParticipantId,
        user_id: UserId,
        username: String,
        start_ms: i64,
        revision: u32,
        stable: String,
        unstable: String,
    },
    /// A summary of the AI agent's session: to everyone in the call when it is written, or
    /// to the asker alone (with their `request_id`) when it was written before.
    Summary {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        summary: Summary,
    },
    /// A call invite to you (your tabs ring) or from you (your other tabs show it), user
    /// socket. Also listed by `GET /api/v1/invites`.
    Invite {
        invite: Invite,
    },
    /// An invite to or from you ended: stop ringing (user socket).
    InviteEnded {
        invite_id: String,
        room_id: RoomId,
        outcome: InviteOutcome,
        /// Who ended it (the callee, the caller; for `timeout` the callee).
        by_user_id: UserId,
    },
    /// A direct message to or from you (user socket).
    Dm {
        message: DirectMessage,
    },
    /// `reader` has read your messages up to `up_to` (user socket).
    DmRead {
        reader: String,
        up_to: i64,
    },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        code: String,
        message: String,
    },
}

impl ServerMessage {
    pub fn error(request_id: Option<&str>, code: &str, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            request_id: request_id.map(str::to_owned),
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn ack(request_id: Option<&str>) -> Self {
        ServerMessage::Ack {
            request_id: request_id.map(str::to_owned),
            message_id: None,
            created_at: None,
        }
    }
}

/// Error codes of `error` messages that the connection itself raises (use cases add their
/// own, the same codes as the HTTP API's: `not_found`, `forbidden`, `rate_limited`, ...).
pub mod codes {
    pub const MALFORMED_JSON: &str = "malformed_json";
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    pub const INVALID_MESSAGE: &str = "invalid_message";
    pub const FRAME_TOO_LARGE: &str = "frame_too_large";
    pub const BINARY_UNSUPPORTED: &str = "binary_unsupported";
    pub const NOT_JOINED: &str = "not_joined";
    pub const ALREADY_JOINED: &str = "already_joined";
    pub const NO_SUCH_PARTICIPANT: &str = "no_such_participant";
    pub const MUTE_LOCKED: &str = "mute_locked";
    pub const WRONG_SOCKET: &str = "wrong_socket";
    pub const LAGGED: &str = "lagged";
    pub const INTERNAL: &str = "internal_error";
    /// The server runs without a media plane.
    pub const MEDIA_UNAVAILABLE: &str = "media_unavailable";
    /// An SDP offer/answer or ICE candidate the media plane can't use.
    pub const BAD_SDP: &str = "bad_sdp";
    /// `answer` with no server offer out, or a second `offer` while media runs.
    pub const MEDIA_OUT_OF_ORDER: &str = "media_out_of_order";
    /// The server has no speech model (`WHISPER_MODEL`), so it can't transcribe.
    pub const TRANSCRIPTION_UNAVAILABLE: &str = "transcription_unavailable";
    /// This socket already waits for a summary.
    pub const SUMMARY_IN_PROGRESS: &str = "summary_in_progress";
    /// Too many messages of this type from this user; the message says when to try again.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// This socket has too many commands waiting for the server; wait for their answers.
    pub const BUSY: &str = "busy";
}

/// Parses one text frame, telling malformed JSON, unknown types and bad fields apart.
///
/// # Errors
/// `(code, message)` for an `error` reply.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, (&'static str, String)> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| (codes::MALFORMED_JSON, e.to_string()))?;
    let Some(kind) = value.get("type").and_then(serde_json::Value::as_str) else {
        return Err((
            codes::INVALID_MESSAGE,
            "a message is a JSON object with a string \"type\"".to_owned(),
        ));
    };
    const KNOWN: &[&str] = &[
        "join",
        "leave",
        "chat",
        "sync",
        "mute",
        "unmute",
        "request_unmute",
        "remove",
        "offer",
        "answer",
        "ice_candidate",
        "transcription_start",
        "transcription_stop",
        "agent_summary",
        "ping",
    ];
    if !KNOWN.contains(&kind) {
        let kind: String = kind.chars().take(40).collect();
        return Err((
            codes::UNKNOWN_TYPE,
            format!("unknown message type {kind:?}"),
        ));
    }
    serde_json::from_value(value).map_err(|e| (codes::INVALID_MESSAGE, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_outcome_names_are_the_wire_names() {
        for outcome in [
            InviteOutcome::Accepted,
            InviteOutcome::Declined,
            InviteOutcome::Cancelled,
            InviteOutcome::Timeout,
        ] {
            let wire = serde_json::to_value(outcome).expect("serializes");
            assert_eq!(wire, outcome.as_str());
        }
    }

    #[test]
    fn messages_are_tagged_by_snake_case_type() {
        let msg = parse_client_message(r#"{"type":"request_unmute","participant_id":7}"#);
        assert_eq!(
            msg,
            Ok(ClientMessage::RequestUnmute {
                request_id: None,
                participant_id: ParticipantId(7)
            })
        );
        let json = serde_json::to_value(ServerMessage::ack(Some("r1"))).expect("serializes");
        assert_eq!(json, serde_json::json!({"type": "ack", "request_id": "r1"}));
    }

    #[test]
    fn bad_frames_are_told_apart() {
        let code = |t: &str| parse_client_message(t).expect_err(t).0;
        assert_eq!(code("{nope"), codes::MALFORMED_JSON);
        assert_eq!(code(r#"{"type":"dance"}"#), codes::UNKNOWN_TYPE);
        assert_eq!(code(r#"[1,2]"#), codes::INVALID_MESSAGE);
        assert_eq!(code(r#"{"type":"chat"}"#), codes::INVALID_MESSAGE);
    }

    #[test]
    fn participant_ids_stay_exact_in_javascript() {
        let id = ParticipantId::new(u32::MAX, u32::MAX);
        assert!(id.0 < (1 << 53));
    }
}
