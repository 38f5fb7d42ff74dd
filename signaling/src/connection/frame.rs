//! WebSocket frames and close codes, independent of the WebSocket library.

/// A WebSocket frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<CloseFrame>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: u16,
    pub reason: String,
}

/// Close codes the server uses.
pub mod close_codes {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    /// The client didn't read what it was sent within the send timeout ("try again later":
    /// a reconnect starts with a fresh queue).
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The client stopped answering pings.
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// The same user joined the call from a newer connection (don't reconnect).
    pub const REPLACED: u16 = 4001;
    /// The user was removed from the room.
    pub const REMOVED: u16 = 4003;
    /// The room was deleted (don't reconnect).
    pub const ROOM_DELETED: u16 = 4004;
    /// The sign-in session that opened the socket ended: logout, a password change
    /// elsewhere, or the account's deletion (reconnecting needs a new sign-in).
    pub const SIGNED_OUT: u16 = 4005;
}
