//! The per-connection loops, one task per socket, written over `Sink<Frame>` and
//! `Stream<Item = Result<Frame, E>>` so tests can drive them with channels and the `api`
//! crate with axum's WebSocket.
//!
//! Each loop `select!`s on the next client frame, the next event for this socket, the ping
//! timer and the node's shutdown. A bad frame is answered with an `error` message and
//! affects nobody else; a client that keeps sending bad frames is disconnected.

use std::fmt::Display;
use std::sync::Arc;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, MissedTickBehavior};

use crate::bus::RoomEvent;
use crate::hub::{participant_info, Hub};
use crate::media::{peer_of, room_of, to_client};
use crate::protocol::{
    codes, parse_client_message, ClientMessage, LeaveReason, ParticipantId, RoomId, ServerMessage,
    UserId,
};
use crate::room::Outbound;
use crate::service::{RoomOp, RoomService, ServiceError, TranscriptionSwitch};

/// A WebSocket frame, independent of the WebSocket library.
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
    /// The client stopped answering pings.
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// The same user joined the call from a newer connection (don't reconnect).
    pub const REPLACED: u16 = 4001;
    /// The user was removed from the room.
    pub const REMOVED: u16 = 4003;
}

/// More client errors than this within [`STRIKE_WINDOW`] close the connection.
const MAX_STRIKES: u32 = 20;
const STRIKE_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// Who is on the other end of a room socket. Authenticated and checked to be a member
/// before the upgrade.
#[derive(Debug, Clone)]
pub struct RoomSession {
    pub room_id: RoomId,
    pub user_id: UserId,
    pub username: String,
}

/// Why a connection loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Closed,
    Timeout,
    Removed,
    Replaced,
    Shutdown,
    Abuse,
}

impl Exit {
    fn leave_reason(self) -> LeaveReason {
        match self {
            Exit::Closed | Exit::Abuse => LeaveReason::Closed,
            Exit::Timeout => LeaveReason::Timeout,
            Exit::Removed => LeaveReason::Removed,
            Exit::Replaced => LeaveReason::Replaced,
            Exit::Shutdown => LeaveReason::Shutdown,
        }
    }

    fn close_frame(self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Exit::Closed => return None,
            Exit::Timeout => (close_codes::IDLE_TIMEOUT, "idle timeout"),
            Exit::Removed => (close_codes::REMOVED, "removed from the room"),
            Exit::Replaced => (close_codes::REPLACED, "replaced by a newer connection"),
            Exit::Shutdown => (close_codes::GOING_AWAY, "server shutting down"),
            Exit::Abuse => (close_codes::POLICY, "too many invalid messages"),
        };
        Some(CloseFrame {
            code,
            reason: reason.to_owned(),
        })
    }
}

/// The sending half plus the bookkeeping every socket has: abuse strikes.
struct Conn<Si> {
    sink: Si,
    strikes: u32,
    window_start: Instant,
}

/// The socket can't be written to: the client is gone.
struct Gone;

impl<Si> Conn<Si>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    fn new(sink: Si) -> Self {
        Self {
            sink,
            strikes: 0,
            window_start: Instant::now(),
        }
    }

    async fn send_frame(&mut self, frame: Frame) -> Result<(), Gone> {
        self.sink.send(frame).await.map_err(|e| {
            tracing::debug!(error = %e, "socket write failed");
            Gone
        })
    }

    async fn send(&mut self, message: &ServerMessage) -> Result<(), Gone> {
        let json = serde_json::to_string(message).map_err(|_| Gone)?;
        self.send_frame(Frame::Text(json)).await
    }

    /// Answers a client mistake and counts it against the client.
    async fn reject(
        &mut self,
        request_id: Option<&str>,
        code: &str,
        message: impl Into<String>,
    ) -> Result<(), Gone> {
        if self.window_start.elapsed() > STRIKE_WINDOW {
            self.window_start = Instant::now();
            self.strikes = 0;
        }
        self.strikes += 1;
        self.send(&ServerMessage::error(request_id, code, message))
            .await
    }

    async fn fail(&mut self, request_id: Option<&str>, err: ServiceError) -> Result<(), Gone> {
        self.reject(request_id, &err.code, err.message).await
    }

    /// On each ping tick: drop a client silent for `idle_timeout`, else ping it.
    async fn keepalive(
        &mut self,
        last_seen: Instant,
        idle_timeout: std::time::Duration,
    ) -> Result<(), Exit> {
        if last_seen.elapsed() >= idle_timeout {
            return Err(Exit::Timeout);
        }
        self.send_frame(Frame::Ping(Vec::new()))
            .await
            .map_err(|Gone| Exit::Closed)
    }

    fn abusive(&self) -> bool {
        self.strikes > MAX_STRIKES
    }

    async fn close(mut self, exit: Exit) {
        if let Some(frame) = exit.close_frame() {
            let _ = self.send_frame(Frame::Close(Some(frame))).await;
        }
        let _ = self.sink.close().await;
    }
}

/// What one client frame is, after the checks every socket does.
enum Incoming {
    Message(ClientMessage),
    /// Already answered with an error.
    Rejected,
    Control,
    Closed,
}

async fn classify<Si>(conn: &mut Conn<Si>, frame: Frame, max_bytes: usize) -> Result<Incoming, Gone>
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

/// Waits for the next event of a joined socket; never completes when not joined.
async fn next_event(
    joined: &mut Option<Joined>,
    watching: &mut Option<broadcast::Receiver<Arc<Outbound>>>,
) -> Result<Arc<Outbound>, broadcast::error::RecvError> {
    match (joined, watching) {
        (Some(j), _) => j.rx.recv().await,
        (None, Some(rx)) => rx.recv().await,
        (None, None) => std::future::pending().await,
    }
}

struct Joined {
    participant_id: ParticipantId,
    rx: broadcast::Receiver<Arc<Outbound>>,
}

/// Commands that take long (a summary: the transcriber's flush, a model's answer) run in a
/// task of their own and answer through `replies`, so the socket keeps serving pings, media
/// and chat meanwhile. One at a time per socket; the work finishes even if the socket closes.
struct Aside {
    service: Arc<dyn RoomService>,
    replies_tx: mpsc::Sender<ServerMessage>,
    replies: mpsc::Receiver<ServerMessage>,
    busy: bool,
}

impl Aside {
    fn new(service: Arc<dyn RoomService>) -> Self {
        let (replies_tx, replies) = mpsc::channel(4);
        Self {
            service,
            replies_tx,
            replies,
            busy: false,
        }
    }

    /// Starts `agent_summary` for the socket's user.
    fn summarise(&mut self, room_id: RoomId, user_id: UserId, request_id: Option<String>) {
        self.busy = true;
        let service = self.service.clone();
        let replies = self.replies_tx.clone();
        tokio::spawn(async move {
            let reply = match service.agent_summary(room_id, user_id).await {
                // Everyone, the asker included, gets the new summary from the room.
                Ok((_, true)) => ServerMessage::ack(request_id.as_deref()),
                Ok((summary, false)) => ServerMessage::Summary {
                    request_id,
                    summary,
                },
                Err(err) => ServerMessage::error(request_id.as_deref(), &err.code, err.message),
            };
            let _ = replies.send(reply).await;
        });
    }
}

/// This socket's media connection in the SFU, while it has one.
struct MediaLink {
    events: mpsc::UnboundedReceiver<sfu::PeerEvent>,
    candidates: u32,
}

/// A browser trickles a handful of candidates per connection; far more is a flood.
const MAX_CANDIDATES: u32 = 64;

/// Waits for the next SFU event of this socket's peer; never completes without media.
async fn next_media_event(media: &mut Option<MediaLink>) -> Option<sfu::PeerEvent> {
    match media {
        Some(link) => link.events.recv().await,
        None => std::future::pending().await,
    }
}

/// Ends this socket's media connection, if any.
fn drop_media(hub: &Hub, room_id: RoomId, joined: Option<&Joined>, media: &mut Option<MediaLink>) {
    if media.take().is_some() {
        if let (Some(plane), Some(j)) = (hub.media_plane(), joined) {
            plane.sfu.leave(room_of(room_id), peer_of(j.participant_id));
        }
    }
}

/// Serves one room socket until the client leaves, times out, is removed, or the node stops.
pub async fn run_room<Si, St, E>(
    hub: Arc<Hub>,
    service: Arc<dyn RoomService>,
    session: RoomSession,
    sink: Si,
    mut stream: St,
) where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
    St: Stream<Item = Result<Frame, E>> + Unpin,
    E: Display,
{
    let config = hub.config();
    let mut conn = Conn::new(sink);
    let mut joined: Option<Joined> = None;
    let mut media: Option<MediaLink> = None;
    // Before `join` (and after `leave`) the socket still watches the room for its removal.
    let mut watching = Some(hub.watch_room(session.room_id));
    let mut ticker = tokio::time::interval(config.ping_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.reset();
    let mut last_seen = Instant::now();
    let mut stop = hub.shutdown_signal();
    let room_id = session.room_id;
    let mut aside = Aside::new(service.clone());

    let exit = loop {
        let step = tokio::select! {
            frame = stream.next() => {
                last_seen = Instant::now();
                match frame {
                    None => Err(Exit::Closed),
                    Some(Err(err)) => {
                        tracing::debug!(room_id, error = %err, "room socket failed");
                        Err(Exit::Closed)
                    }
                    Some(Ok(frame)) => {
                        match classify(&mut conn, frame, config.max_frame_bytes).await {
                            Err(Gone) => Err(Exit::Closed),
                            Ok(Incoming::Closed) => Err(Exit::Closed),
                            Ok(Incoming::Rejected | Incoming::Control) => Ok(()),
                            Ok(Incoming::Message(message)) => {
                                handle_room_message(&hub, &session, &mut conn, &mut joined, &mut media, &mut aside, message).await
                            }
                        }
                    }
                }
            }
            event = next_event(&mut joined, &mut watching) => match event {
                Ok(out) => forward_room_event(&session, joined.as_ref(), &mut conn, &out).await,
                Err(broadcast::error::RecvError::Lagged(_)) if joined.is_none() => Ok(()),
                Err(broadcast::error::RecvError::Lagged(n)) => conn
                    .send(&ServerMessage::error(None, codes::LAGGED, format!("{n} events were dropped because this socket fell behind; `sync` after your last message id")))
                    .await
                    .map_err(|Gone| Exit::Closed),
                // The registry keeps a room while anyone subscribes; if that ever broke,
                // ending the socket beats spinning on a closed channel.
                Err(broadcast::error::RecvError::Closed) => Err(Exit::Closed),
            },
            event = next_media_event(&mut media) => match event {
                // The SFU dropped the peer (ICE failure) or is shutting down.
                None => {
                    media = None;
                    Ok(())
                }
                Some(event) => {
                    let closed = matches!(event, sfu::PeerEvent::Closed { .. });
                    if closed {
                        media = None;
                    }
                    let sent = match to_client(event) {
                        Some(message) => conn.send(&message).await.map_err(|Gone| Exit::Closed),
                        None => Ok(()),
                    };
                    // Without media past the grace period it is no longer in the call: a
                    // participant nobody can hear must not stay listed. The client joins
                    // again when it can.
                    if closed {
                        if let Some(j) = joined.take() {
                            drop(j.rx);
                            hub.leave(room_id, j.participant_id, LeaveReason::MediaFailed).await;
                        }
                    }
                    sent
                }
            },
            Some(reply) = aside.replies.recv() => {
                aside.busy = false;
                conn.send(&reply).await.map_err(|Gone| Exit::Closed)
            }
            _ = ticker.tick() => conn.keepalive(last_seen, config.idle_timeout).await,
            _ = stop.changed() => Err(Exit::Shutdown),
        };
        if let Err(exit) = step {
            break exit;
        }
        if conn.abusive() {
            break Exit::Abuse;
        }
        match (&joined, &watching) {
            (Some(_), Some(_)) => watching = None,
            (None, None) => watching = Some(hub.watch_room(room_id)),
            _ => {}
        }
    };
    drop(watching);
    drop_media(&hub, room_id, joined.as_ref(), &mut media);

    if let Some(j) = joined.take() {
        drop(j.rx);
        hub.leave(room_id, j.participant_id, exit.leave_reason())
            .await;
    }
    hub.release_room(room_id);
    tracing::debug!(
        room_id,
        user_id = session.user_id,
        ?exit,
        "room socket closed"
    );
    conn.close(exit).await;
}

async fn forward_room_event<Si>(
    session: &RoomSession,
    joined: Option<&Joined>,
    conn: &mut Conn<Si>,
    out: &Outbound,
) -> Result<(), Exit>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    match &out.message {
        ServerMessage::MemberRemoved { user_id, .. } if *user_id == session.user_id => {
            conn.send_frame(Frame::Text(out.json.clone()))
                .await
                .map_err(|Gone| Exit::Closed)?;
            Err(Exit::Removed)
        }
        // Not in the call: nothing else is for this socket.
        _ if joined.is_none() => Ok(()),
        // This user joined again elsewhere (a reconnect or another tab): this one is done.
        ServerMessage::ParticipantLeft {
            participant_id,
            reason: LeaveReason::Replaced,
            ..
        } if joined.is_some_and(|j| j.participant_id == *participant_id) => {
            conn.send_frame(Frame::Text(out.json.clone()))
                .await
                .map_err(|Gone| Exit::Closed)?;
            Err(Exit::Replaced)
        }
        // The joiner learned it from `joined`.
        ServerMessage::ParticipantJoined { participant }
            if joined.is_some_and(|j| j.participant_id == participant.participant_id) =>
        {
            Ok(())
        }
        _ => conn
            .send_frame(Frame::Text(out.json.clone()))
            .await
            .map_err(|Gone| Exit::Closed),
    }
}

async fn handle_room_message<Si>(
    hub: &Hub,
    session: &RoomSession,
    conn: &mut Conn<Si>,
    joined: &mut Option<Joined>,
    media: &mut Option<MediaLink>,
    aside: &mut Aside,
    message: ClientMessage,
) -> Result<(), Exit>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    let room_id = session.room_id;
    // The service is the aside runner's too; a clone of the Arc keeps both borrows simple.
    let service_arc = aside.service.clone();
    let service = service_arc.as_ref();
    let request_id = message.request_id().map(str::to_owned);
    let rid = request_id.as_deref();
    let me = joined.as_ref().map(|j| j.participant_id);
    let needs_join = !matches!(
        message,
        ClientMessage::Join { .. }
            | ClientMessage::Sync { .. }
            | ClientMessage::Remove { .. }
            | ClientMessage::Ping { .. }
    );
    if needs_join && me.is_none() {
        return conn
            .reject(rid, codes::NOT_JOINED, "send `join` first")
            .await
            .map_err(|Gone| Exit::Closed);
    }
    let sent = match message {
        ClientMessage::Join { .. } if me.is_some() => {
            conn.reject(rid, codes::ALREADY_JOINED, "already in the call")
                .await
        }
        ClientMessage::Join { .. } => {
            match service
                .authorize(room_id, session.user_id, RoomOp::JoinCall)
                .await
            {
                Err(err) => conn.fail(rid, err).await,
                Ok(role) => {
                    let id = hub.next_participant_id();
                    let mut info = participant_info(id, session.user_id, &session.username, role);
                    // One call presence per user per room: a rejoin (after a dropped socket
                    // the server may not have noticed yet) or another tab replaces the old
                    // participant, which keeps no ghost in the list. Its mute carries over; a
                    // moderator's lock is the user's in the room (`is_mute_locked` below).
                    for old in hub
                        .participants(room_id)
                        .into_iter()
                        .filter(|p| p.user_id == session.user_id)
                    {
                        info.muted |= old.muted;
                        hub.leave(room_id, old.participant_id, LeaveReason::Replaced)
                            .await;
                    }
                    if hub.is_mute_locked(room_id, session.user_id) {
                        info.muted = true;
                        info.mute_locked = true;
                    }
                    let muted = info.muted;
                    let (participants, rx) = hub.join(room_id, info).await;
                    *joined = Some(Joined {
                        participant_id: id,
                        rx,
                    });
                    let ice_servers = hub
                        .media_plane()
                        .map(|m| m.ice_servers.as_ref().clone())
                        .unwrap_or_default();
                    let sent_joined = conn
                        .send(&ServerMessage::Joined {
                            request_id,
                            room_id,
                            participant_id: id,
                            role,
                            muted,
                            participants,
                            ice_servers,
                        })
                        .await;
                    // The room is being transcribed: a joiner must know before speaking.
                    match (sent_joined, hub.transcribed_by(room_id)) {
                        (Err(gone), _) => Err(gone),
                        (Ok(()), Some(by_user_id)) => {
                            conn.send(&ServerMessage::TranscriptionState {
                                active: true,
                                by_user_id,
                            })
                            .await
                        }
                        (Ok(()), None) => Ok(()),
                    }
                }
            }
        }
        ClientMessage::Leave { .. } => {
            drop_media(hub, room_id, joined.as_ref(), media);
            if let Some(j) = joined.take() {
                drop(j.rx);
                hub.leave(room_id, j.participant_id, LeaveReason::Left)
                    .await;
            }
            conn.send(&ServerMessage::ack(rid)).await
        }
        ClientMessage::Chat { text, .. } => {
            match service
                .post_chat(room_id, session.user_id, session.username.clone(), text)
                .await
            {
                Ok(message) => {
                    conn.send(&ServerMessage::Ack {
                        request_id,
                        message_id: Some(message.id),
                        created_at: Some(message.created_at),
                    })
                    .await
                }
                Err(err) => conn.fail(rid, err).await,
            }
        }
        ClientMessage::Sync { after, limit, .. } => {
            match service
                .chat_after(room_id, session.user_id, after, limit)
                .await
            {
                Ok((messages, has_more)) => {
                    conn.send(&ServerMessage::History {
                        request_id,
                        messages,
                        has_more,
                    })
                    .await
                }
                Err(err) => conn.fail(rid, err).await,
            }
        }
        ClientMessage::Mute { participant_id, .. } => {
            let target = participant_id.or(me);
            mute(hub, service, session, conn, rid, me, target).await
        }
        ClientMessage::Unmute { .. } => match me.and_then(|id| hub.participant(room_id, id)) {
            None => {
                conn.reject(rid, codes::NOT_JOINED, "send `join` first")
                    .await
            }
            Some(info) if info.mute_locked => {
                conn.reject(
                    rid,
                    codes::MUTE_LOCKED,
                    "a moderator muted you; wait until they ask you to unmute",
                )
                .await
            }
            Some(info) => {
                let event = RoomEvent::MuteChanged {
                    participant_id: info.participant_id,
                    muted: false,
                    mute_locked: false,
                    by_user_id: session.user_id,
                };
                authorized_publish(hub, service, session, conn, rid, RoomOp::MuteSelf, event).await
            }
        },
        ClientMessage::RequestUnmute { participant_id, .. } => {
            match hub.participant(room_id, participant_id) {
                None => {
                    conn.reject(
                        rid,
                        codes::NO_SUCH_PARTICIPANT,
                        "no such participant in the call",
                    )
                    .await
                }
                Some(info) => {
                    let op = RoomOp::RequestUnmute {
                        target_user: info.user_id,
                    };
                    let event = RoomEvent::UnmuteRequested {
                        participant_id,
                        by_user_id: session.user_id,
                    };
                    authorized_publish(hub, service, session, conn, rid, op, event).await
                }
            }
        }
        ClientMessage::Remove { user_id, .. } => {
            match service
                .remove_member(room_id, session.user_id, user_id)
                .await
            {
                Ok(()) => conn.send(&ServerMessage::ack(rid)).await,
                Err(err) => conn.fail(rid, err).await,
            }
        }
        ClientMessage::Offer { sdp, .. } => {
            start_media(hub, session, conn, joined.as_ref(), media, rid, sdp).await
        }
        ClientMessage::Answer { sdp, .. } => match (hub.media_plane(), me, media.is_some()) {
            (None, ..) => {
                conn.reject(
                    rid,
                    codes::MEDIA_UNAVAILABLE,
                    "this server has no media plane",
                )
                .await
            }
            (Some(_), _, false) | (Some(_), None, _) => {
                conn.reject(rid, codes::MEDIA_OUT_OF_ORDER, "send `offer` first")
                    .await
            }
            (Some(plane), Some(id), true) => {
                match plane.sfu.answer(room_of(room_id), peer_of(id), sdp).await {
                    Ok(()) => Ok(()),
                    Err(err @ sfu::SfuError::OutOfOrder(_)) => {
                        conn.reject(rid, codes::MEDIA_OUT_OF_ORDER, err.to_string())
                            .await
                    }
                    Err(err) => conn.reject(rid, codes::BAD_SDP, err.to_string()).await,
                }
            }
        },
        ClientMessage::IceCandidate { candidate, .. } => {
            match (hub.media_plane(), me, media.as_mut()) {
                (Some(_), Some(_), Some(link)) if link.candidates >= MAX_CANDIDATES => {
                    conn.reject(
                        rid,
                        codes::INVALID_MESSAGE,
                        format!("at most {MAX_CANDIDATES} ICE candidates per connection"),
                    )
                    .await
                }
                (Some(plane), Some(id), Some(link)) => {
                    link.candidates += 1;
                    let candidate = sfu::IceCandidate {
                        candidate: candidate.candidate,
                        sdp_mid: candidate.sdp_mid,
                        sdp_mline_index: candidate.sdp_m_line_index,
                        username_fragment: candidate.username_fragment,
                        ..Default::default()
                    };
                    let _ = plane
                        .sfu
                        .add_candidate(room_of(room_id), peer_of(id), candidate);
                    Ok(())
                }
                // Candidates racing a restart or a failed offer are harmless: ignore them.
                _ => Ok(()),
            }
        }
        ClientMessage::TranscriptionStart { language, .. } => {
            let switch = TranscriptionSwitch::Start { language };
            set_transcription(service, session, conn, rid, switch).await
        }
        ClientMessage::TranscriptionStop { .. } => {
            set_transcription(service, session, conn, rid, TranscriptionSwitch::Stop).await
        }
        ClientMessage::AgentSummary { .. } if aside.busy => {
            conn.reject(
                rid,
                codes::SUMMARY_IN_PROGRESS,
                "a summary is being written for you; wait for its answer",
            )
            .await
        }
        ClientMessage::AgentSummary { .. } => {
            aside.summarise(room_id, session.user_id, request_id);
            Ok(())
        }
        ClientMessage::Ping { .. } => conn.send(&ServerMessage::Pong { request_id }).await,
    };
    sent.map_err(|Gone| Exit::Closed)
}

async fn set_transcription<Si>(
    service: &dyn RoomService,
    session: &RoomSession,
    conn: &mut Conn<Si>,
    rid: Option<&str>,
    switch: TranscriptionSwitch,
) -> Result<(), Gone>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    let room_id = session.room_id;
    match service
        .set_transcription(room_id, session.user_id, switch)
        .await
    {
        Ok(()) => conn.send(&ServerMessage::ack(rid)).await,
        Err(err) => conn.fail(rid, err).await,
    }
}

/// Joins the SFU with the client's offer and sends the answer. A participant already muted
/// (by a moderator, before their media started) stays muted in the SFU too.
async fn start_media<Si>(
    hub: &Hub,
    session: &RoomSession,
    conn: &mut Conn<Si>,
    joined: Option<&Joined>,
    media: &mut Option<MediaLink>,
    rid: Option<&str>,
    sdp: String,
) -> Result<(), Gone>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    let Some(plane) = hub.media_plane() else {
        return conn
            .reject(
                rid,
                codes::MEDIA_UNAVAILABLE,
                "this server has no media plane",
            )
            .await;
    };
    let Some(j) = joined else {
        return conn
            .reject(rid, codes::NOT_JOINED, "send `join` first")
            .await;
    };
    let room = room_of(session.room_id);
    let peer = peer_of(j.participant_id);
    if media.is_some() {
        // A new offer on running media is an ICE restart (new ufrag and password).
        return match plane.sfu.restart(room, peer, sdp).await {
            Ok(answer) => {
                conn.send(&ServerMessage::Answer {
                    request_id: rid.map(str::to_owned),
                    sdp: answer,
                })
                .await
            }
            Err(err @ sfu::SfuError::OutOfOrder(_)) => {
                conn.reject(rid, codes::MEDIA_OUT_OF_ORDER, err.to_string())
                    .await
            }
            Err(sfu::SfuError::UnknownPeer) => {
                conn.reject(
                    rid,
                    codes::MEDIA_OUT_OF_ORDER,
                    "your media connection is closed; join again",
                )
                .await
            }
            Err(err) => conn.reject(rid, codes::BAD_SDP, err.to_string()).await,
        };
    }
    let (tx, events) = mpsc::unbounded_channel();
    match plane.sfu.join(room, peer, sdp, tx).await {
        Ok(answer) => {
            *media = Some(MediaLink {
                events,
                candidates: 0,
            });
            if hub
                .participant(session.room_id, j.participant_id)
                .is_some_and(|p| p.muted)
            {
                plane.sfu.set_muted(room, peer, true);
            }
            conn.send(&ServerMessage::Answer {
                request_id: rid.map(str::to_owned),
                sdp: answer,
            })
            .await
        }
        Err(err) => conn.reject(rid, codes::BAD_SDP, err.to_string()).await,
    }
}

async fn mute<Si>(
    hub: &Hub,
    service: &dyn RoomService,
    session: &RoomSession,
    conn: &mut Conn<Si>,
    rid: Option<&str>,
    me: Option<ParticipantId>,
    target: Option<ParticipantId>,
) -> Result<(), Gone>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    let Some(info) = target.and_then(|id| hub.participant(session.room_id, id)) else {
        return conn
            .reject(
                rid,
                codes::NO_SUCH_PARTICIPANT,
                "no such participant in the call",
            )
            .await;
    };
    let (op, mute_locked) = if Some(info.participant_id) == me {
        // Muting yourself keeps a moderator's lock if there is one.
        (RoomOp::MuteSelf, info.mute_locked)
    } else {
        (
            RoomOp::MuteOther {
                target_user: info.user_id,
            },
            true,
        )
    };
    let event = RoomEvent::MuteChanged {
        participant_id: info.participant_id,
        muted: true,
        mute_locked,
        by_user_id: session.user_id,
    };
    authorized_publish(hub, service, session, conn, rid, op, event).await
}

async fn authorized_publish<Si>(
    hub: &Hub,
    service: &dyn RoomService,
    session: &RoomSession,
    conn: &mut Conn<Si>,
    rid: Option<&str>,
    op: RoomOp,
    event: RoomEvent,
) -> Result<(), Gone>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    if let Err(err) = service
        .authorize(session.room_id, session.user_id, op)
        .await
    {
        return conn.fail(rid, err).await;
    }
    match hub.publish_room(session.room_id, event).await {
        Ok(()) => conn.send(&ServerMessage::ack(rid)).await,
        Err(err) => {
            tracing::error!(room_id = session.room_id, error = %err, "bus publish failed");
            conn.send(&ServerMessage::error(
                rid,
                codes::INTERNAL,
                "internal error",
            ))
            .await
        }
    }
}

/// Serves one user socket (`/api/v1/ws`): DMs and presence, until it closes or times out.
pub async fn run_user<Si, St, E>(hub: Arc<Hub>, user_id: UserId, sink: Si, mut stream: St)
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
    St: Stream<Item = Result<Frame, E>> + Unpin,
    E: Display,
{
    let config = hub.config();
    let mut conn = Conn::new(sink);
    let mut rx = hub.connect_user(user_id).await;
    let mut ticker = tokio::time::interval(config.ping_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.reset();
    let mut last_seen = Instant::now();
    let mut stop = hub.shutdown_signal();

    let exit = loop {
        let step = tokio::select! {
            frame = stream.next() => {
                last_seen = Instant::now();
                match frame {
                    None | Some(Err(_)) => Err(Exit::Closed),
                    Some(Ok(frame)) => match classify(&mut conn, frame, config.max_frame_bytes).await {
                        Err(Gone) | Ok(Incoming::Closed) => Err(Exit::Closed),
                        Ok(Incoming::Rejected | Incoming::Control) => Ok(()),
                        Ok(Incoming::Message(ClientMessage::Ping { request_id })) => {
                            conn.send(&ServerMessage::Pong { request_id }).await.map_err(|Gone| Exit::Closed)
                        }
                        Ok(Incoming::Message(other)) => conn
                            .reject(other.request_id(), codes::WRONG_SOCKET, "this socket only carries DMs and notifications; room messages go to /api/v1/rooms/{id}/ws")
                            .await
                            .map_err(|Gone| Exit::Closed),
                    },
                }
            }
            event = rx.recv() => match event {
                Ok(out) => conn.send_frame(Frame::Text(out.json.clone())).await.map_err(|Gone| Exit::Closed),
                Err(broadcast::error::RecvError::Lagged(n)) => conn
                    .send(&ServerMessage::error(None, codes::LAGGED, format!("{n} events were dropped because this socket fell behind")))
                    .await
                    .map_err(|Gone| Exit::Closed),
                Err(broadcast::error::RecvError::Closed) => Err(Exit::Closed),
            },
            _ = ticker.tick() => conn.keepalive(last_seen, config.idle_timeout).await,
            _ = stop.changed() => Err(Exit::Shutdown),
        };
        if let Err(exit) = step {
            break exit;
        }
        if conn.abusive() {
            break Exit::Abuse;
        }
    };
    drop(rx);
    hub.disconnect_user(user_id).await;
    tracing::debug!(user_id, ?exit, "user socket closed");
    conn.close(exit).await;
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::bus::{BoxFuture, LocalBus};
    use crate::hub::HubConfig;
    use crate::media::NoMedia;
    use crate::protocol::{ChatMessage, Role};

    /// Lets everyone do everything; stores nothing.
    struct OpenDoor;

    impl RoomService for OpenDoor {
        fn authorize(
            &self,
            _: RoomId,
            _: UserId,
            _: RoomOp,
        ) -> BoxFuture<'_, Result<Role, ServiceError>> {
            Box::pin(async { Ok(Role::Member) })
        }
        fn post_chat(
            &self,
            room_id: RoomId,
            user_id: UserId,
            username: String,
            text: String,
        ) -> BoxFuture<'_, Result<ChatMessage, ServiceError>> {
            Box::pin(async move {
                Ok(ChatMessage {
                    id: 1,
                    room_id,
                    user_id,
                    username,
                    text,
                    created_at: String::new(),
                })
            })
        }
        fn chat_after(
            &self,
            _: RoomId,
            _: UserId,
            _: i64,
            _: Option<u32>,
        ) -> BoxFuture<'_, Result<(Vec<ChatMessage>, bool), ServiceError>> {
            Box::pin(async { Ok((Vec::new(), false)) })
        }
        fn remove_member(
            &self,
            _: RoomId,
            _: UserId,
            _: UserId,
        ) -> BoxFuture<'_, Result<(), ServiceError>> {
            Box::pin(async { Ok(()) })
        }
    }

    type TestSink = Pin<Box<dyn Sink<Frame, Error = &'static str> + Send>>;
    type TestStream = Pin<Box<dyn Stream<Item = Result<Frame, &'static str>> + Send>>;

    /// A room connection driven through channels: (to server, from server, the task).
    fn connect(
        hub: &Arc<Hub>,
    ) -> (
        mpsc::UnboundedSender<Frame>,
        mpsc::UnboundedReceiver<Frame>,
        tokio::task::JoinHandle<()>,
    ) {
        let (to_server, server_in) = mpsc::unbounded_channel::<Frame>();
        let (server_out, from_server) = mpsc::unbounded_channel::<Frame>();
        let sink: TestSink = Box::pin(futures_util::sink::unfold(
            server_out,
            |tx, frame: Frame| async move {
                tx.send(frame).map_err(|_| "client gone")?;
                Ok::<_, &'static str>(tx)
            },
        ));
        let stream: TestStream = Box::pin(futures_util::stream::unfold(
            server_in,
            |mut rx| async move { rx.recv().await.map(|frame| (Ok(frame), rx)) },
        ));
        let session = RoomSession {
            room_id: 7,
            user_id: 1,
            username: "alice".to_owned(),
        };
        let task = tokio::spawn(run_room(
            Arc::clone(hub),
            Arc::new(OpenDoor),
            session,
            sink,
            stream,
        ));
        (to_server, from_server, task)
    }

    fn hub(idle: Duration) -> Arc<Hub> {
        let hub = Hub::new(
            1,
            HubConfig::with_idle_timeout(idle),
            Arc::new(LocalBus::new()),
            Arc::new(NoMedia),
        );
        hub.start();
        hub
    }

    async fn next_json(rx: &mut mpsc::UnboundedReceiver<Frame>) -> serde_json::Value {
        loop {
            match rx.recv().await.expect("server still talking") {
                Frame::Text(text) => return serde_json::from_str(&text).expect("JSON"),
                Frame::Ping(_) | Frame::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn chat_before_join_is_refused_and_the_socket_stays_usable() {
        let hub = hub(Duration::from_secs(30));
        let (tx, mut rx, _task) = connect(&hub);
        tx.send(Frame::Text(
            r#"{"type":"chat","request_id":"a","text":"hi"}"#.into(),
        ))
        .expect("send");
        let err = next_json(&mut rx).await;
        assert_eq!(
            (err["code"].as_str(), err["request_id"].as_str()),
            (Some("not_joined"), Some("a"))
        );
        tx.send(Frame::Text(r#"{"type":"join"}"#.into()))
            .expect("send");
        let joined = next_json(&mut rx).await;
        assert_eq!(joined["type"], "joined");
        assert_eq!(hub.participants(7).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_pinged_then_dropped_after_the_idle_timeout() {
        let hub = hub(Duration::from_secs(3));
        let (tx, mut rx, task) = connect(&hub);
        tx.send(Frame::Text(r#"{"type":"join"}"#.into()))
            .expect("send");
        assert_eq!(next_json(&mut rx).await["type"], "joined");
        let started = Instant::now();
        let mut pings = 0;
        let close = loop {
            match rx.recv().await.expect("a close frame comes") {
                Frame::Ping(_) => pings += 1,
                Frame::Close(close) => break close,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(close.map(|c| c.code), Some(close_codes::IDLE_TIMEOUT));
        assert!(pings >= 1);
        assert!(
            started.elapsed() >= Duration::from_secs(3)
                && started.elapsed() < Duration::from_secs(5)
        );
        task.await.expect("loop ends");
        assert!(hub.participants(7).is_empty(), "the participant left");
        drop(tx);
    }
}
