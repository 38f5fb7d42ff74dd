//! The sending half of a socket with the bookkeeping every socket has: a send timeout (a
//! client that stops reading is dropped, not waited for), abuse strikes, and why the loop
//! ended.

use std::fmt::Display;
use std::time::Duration;

use futures_util::{Sink, SinkExt};
use tokio::time::Instant;

use super::frame::{close_codes, CloseFrame, Frame};
use crate::protocol::{codes, parse_client_message, ClientMessage, LeaveReason, ServerMessage};
use crate::service::ServiceError;

/// More client errors than this within [`STRIKE_WINDOW`] close the connection.
const MAX_STRIKES: u32 = 20;
const STRIKE_WINDOW: Duration = Duration::from_secs(10);
/// The close frame after a stall gets this long: the client isn't reading anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a connection loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    Closed,
    Timeout,
    /// The client didn't take what was sent within the send timeout.
    Stalled,
    Removed,
    RoomDeleted,
    Replaced,
    Shutdown,
    Abuse,
    /// The session that opened the socket ended (logout, password change, deletion).
    SignedOut,
}

impl Exit {
    pub(super) fn leave_reason(self) -> LeaveReason {
        match self {
            Exit::Closed | Exit::Abuse | Exit::SignedOut => LeaveReason::Closed,
            Exit::Timeout | Exit::Stalled => LeaveReason::Timeout,
            Exit::Removed | Exit::RoomDeleted => LeaveReason::Removed,
            Exit::Replaced => LeaveReason::Replaced,
            Exit::Shutdown => LeaveReason::Shutdown,
        }
    }

    fn close_frame(self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Exit::Closed => return None,
            Exit::Timeout => (close_codes::IDLE_TIMEOUT, "idle timeout"),
            Exit::Stalled => (
                close_codes::TRY_AGAIN_LATER,
                "not reading what the server sends",
            ),
            Exit::Removed => (close_codes::REMOVED, "removed from the room"),
            Exit::RoomDeleted => (close_codes::ROOM_DELETED, "the room was deleted"),
            Exit::Replaced => (close_codes::REPLACED, "replaced by a newer connection"),
            Exit::Shutdown => (close_codes::GOING_AWAY, "server shutting down"),
            Exit::Abuse => (close_codes::POLICY, "too many invalid messages"),
            Exit::SignedOut => (close_codes::SIGNED_OUT, "signed out"),
        };
        Some(CloseFrame {
            code,
            reason: reason.to_owned(),
        })
    }
}

/// The socket can't be written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SendError {
    /// The client is gone.
    Gone,
    /// The client didn't read within the send timeout.
    Stalled,
}

impl From<SendError> for Exit {
    fn from(err: SendError) -> Self {
        match err {
            SendError::Gone => Exit::Closed,
            SendError::Stalled => Exit::Stalled,
        }
    }
}

pub(super) struct Conn<Si> {
    sink: Si,
    send_timeout: Duration,
    strikes: u32,
    window_start: Instant,
}

impl<Si> Conn<Si>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    pub(super) fn new(sink: Si, send_timeout: Duration) -> Self {
        Self {
            sink,
            send_timeout,
            strikes: 0,
            window_start: Instant::now(),
        }
    }

    /// Sends one frame, waiting at most the send timeout for the client to take it. The
    /// WebSocket's buffers stay small, so a client that stops reading is found out here.
    pub(super) async fn send_frame(&mut self, frame: Frame) -> Result<(), SendError> {
        match tokio::time::timeout(self.send_timeout, self.sink.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "socket write failed");
                Err(SendError::Gone)
            }
            Err(_) => {
                metrics::counter!("ws_slow_consumers_dropped_total").increment(1);
                Err(SendError::Stalled)
            }
        }
    }

    pub(super) async fn send(&mut self, message: &ServerMessage) -> Result<(), SendError> {
        let json = serde_json::to_string(message).map_err(|_| SendError::Gone)?;
        self.send_frame(Frame::Text(json)).await
    }

    fn strike(&mut self) {
        if self.window_start.elapsed() > STRIKE_WINDOW {
            self.window_start = Instant::now();
            self.strikes = 0;
        }
        self.strikes += 1;
    }

    /// Answers a client mistake and counts it against the client.
    pub(super) async fn reject(
        &mut self,
        request_id: Option<&str>,
        code: &str,
        message: impl Into<String>,
    ) -> Result<(), SendError> {
        self.reject_with(ServerMessage::error(request_id, code, message))
            .await
    }

    /// Sends an `error` already made, counting it against the client.
    pub(super) async fn reject_with(&mut self, error: ServerMessage) -> Result<(), SendError> {
        self.strike();
        self.send(&error).await
    }

    pub(super) async fn fail(
        &mut self,
        request_id: Option<&str>,
        err: ServiceError,
    ) -> Result<(), SendError> {
        self.reject(request_id, &err.code, err.message).await
    }

    /// A message over its type's rate: refused, and a strike (a flood ends the socket).
    pub(super) async fn refuse_rate(
        &mut self,
        request_id: Option<&str>,
        kind: &str,
        wait: Duration,
    ) -> Result<(), SendError> {
        let secs = wait.as_secs_f64().max(0.1);
        self.reject(
            request_id,
            codes::RATE_LIMITED,
            format!("too many `{kind}` messages; try again in {secs:.1} s"),
        )
        .await
    }

    /// On each ping tick: drop a client silent for `idle_timeout`, else ping it.
    pub(super) async fn keepalive(
        &mut self,
        last_seen: Instant,
        idle_timeout: Duration,
    ) -> Result<(), Exit> {
        if last_seen.elapsed() >= idle_timeout {
            return Err(Exit::Timeout);
        }
        self.send_frame(Frame::Ping(Vec::new()))
            .await
            .map_err(Exit::from)
    }

    pub(super) fn abusive(&self) -> bool {
        self.strikes > MAX_STRIKES
    }

    pub(super) async fn close(mut self, exit: Exit) {
        let close = async {
            if let Some(frame) = exit.close_frame() {
                let _ = self.sink.send(Frame::Close(Some(frame))).await;
            }
            let _ = self.sink.close().await;
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    }
}

/// What one client frame is, after the checks every socket does.
pub(super) enum Incoming {
    Message(ClientMessage),
    /// Already answered with an error.
    Rejected,
    Control,
    Closed,
}

pub(super) async fn classify<Si>(
    conn: &mut Conn<Si>,
    frame: Frame,
    max_bytes: usize,
) -> Result<Incoming, SendError>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    match frame {
        Frame::Text(text) if text.len() > max_bytes => {
            conn.reject(
                None,
                codes::FRAME_TOO_LARGE,
                format!("frames are limited to {max_bytes} bytes"),
            )
            .await?;
            Ok(Incoming::Rejected)
        }
        Frame::Text(text) => match parse_client_message(&text) {
            Ok(message) => Ok(Incoming::Message(message)),
            Err((code, message)) => {
                conn.reject(None, code, message).await?;
                Ok(Incoming::Rejected)
            }
        },
        Frame::Binary(_) => {
            conn.reject(
                None,
                codes::BINARY_UNSUPPORTED,
                "messages are JSON text frames",
            )
            .await?;
            Ok(Incoming::Rejected)
        }
        // The WebSocket library answers pings itself; any frame proves the client is alive.
        Frame::Ping(_) | Frame::Pong(_) => Ok(Incoming::Control),
        Frame::Close(_) => Ok(Incoming::Closed),
    }
}
