//! The room socket: the call (join, leave, mute, media), chat and moderation of one room.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, Stream, StreamExt};
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::call_media::{self, drop_media, MediaLink};
use super::conn::{classify, Conn, Exit, Incoming, SendError};
use super::errands::{Errand, Errands};
use super::frame::Frame;
use super::RoomSession;
use crate::bus::RoomEvent;
use crate::hub::{participant_info, Hub};
use crate::media::to_client;
use crate::protocol::{codes, ClientMessage, LeaveReason, ParticipantId, Role, ServerMessage};
use crate::room::Outbound;
use crate::service::{RoomOp, RoomService, ServiceError, TranscriptionSwitch};

/// A permission check waits this long for the application (the database) before the
/// command is refused: the socket's loop must not stall behind a slow query.
const SERVICE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the socket stands in the room's call: one state, so "in the call" and "has
/// media" can't disagree.
enum Call {
    /// Not in the call (before `join`, after `leave`): the socket only watches the room for
    /// its own removal or the room's deletion.
    Watching(broadcast::Receiver<Arc<Outbound>>),
    Joined(Joined),
}

struct Joined {
    participant_id: ParticipantId,
    rx: broadcast::Receiver<Arc<Outbound>>,
    media: Option<MediaLink>,
}

impl Call {
    fn participant(&self) -> Option<ParticipantId> {
        match self {
            Call::Joined(j) => Some(j.participant_id),
            Call::Watching(_) => None,
        }
    }

    /// The next room event for this socket, or SFU event of its peer while it has media.
    async fn next(&mut self) -> CallEvent {
        match self {
            Call::Watching(rx) => CallEvent::Room(rx.recv().await),
            Call::Joined(Joined {
                rx,
                media: Some(link),
                ..
            }) => tokio::select! {
                event = rx.recv() => CallEvent::Room(event),
                event = link.events.recv() => CallEvent::Media(event),
            },
            Call::Joined(Joined { rx, .. }) => CallEvent::Room(rx.recv().await),
        }
    }
}

enum CallEvent {
    Room(Result<Arc<Outbound>, broadcast::error::RecvError>),
    /// `None`: the SFU dropped the peer (shutting down).
    Media(Option<sfu::PeerEvent>),
}

/// Checks `op` with the application, bounded by [`SERVICE_TIMEOUT`].
pub(super) async fn authorize(
    service: &dyn RoomService,
    session: &RoomSession,
    op: RoomOp,
) -> Result<Role, ServiceError> {
    tokio::time::timeout(
        SERVICE_TIMEOUT,
        service.authorize(session.room_id, session.user_id, op),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ServiceError::new(
            codes::INTERNAL,
            "the server could not check this in time; try again",
        ))
    })
}

/// Leaves the call (media first), back to watching the room.
async fn leave_call(hub: &Hub, session: &RoomSession, call: &mut Call, reason: LeaveReason) {
    if let Call::Joined(j) = call {
        let participant = j.participant_id;
        drop_media(hub, session, participant, &mut j.media);
        *call = Call::Watching(hub.watch_room(session.room_id));
        hub.leave(session.room_id, participant, reason).await;
    }
}

/// Serves one room socket until the client leaves, times out, stalls, is removed, the room
/// is deleted, or the node stops.
pub async fn run_room<Si, St, E>(
    hub: Arc<Hub>,
    service: Arc<dyn RoomService>,
    session: RoomSession,
    signed_in: CancellationToken,
    sink: Si,
    mut stream: St,
) where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
    St: Stream<Item = Result<Frame, E>> + Unpin,
    E: Display,
{
    let config = hub.config();
    let mut conn = Conn::new(sink, config.send_timeout);
    let mut call = Call::Watching(hub.watch_room(session.room_id));
    let mut ticker = tokio::time::interval(config.ping_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.reset();
    let mut last_seen = Instant::now();
    let mut stop = hub.shutdown_signal();
    let room_id = session.room_id;
    let mut errands = Errands::new(hub.clone(), service.clone(), session.clone());

    let exit = loop {
        let step = tokio::select! {
            frame = stream.next() => {
                let step = match frame {
                    None => Err(Exit::Closed),
                    Some(Err(err)) => {
                        tracing::debug!(room_id, error = %err, "room socket failed");
                        Err(Exit::Closed)
                    }
                    Some(Ok(frame)) => match classify(&mut conn, frame, config.max_frame_bytes).await {
                        Err(err) => Err(err.into()),
                        Ok(Incoming::Closed) => Err(Exit::Closed),
                        Ok(Incoming::Rejected | Incoming::Control) => Ok(()),
                        Ok(Incoming::Message(message)) => {
                            handle_message(&hub, service.as_ref(), &session, &mut conn, &mut call, &mut errands, message).await
                        }
                    },
                };
                // Time the server spent on the command is not the client's silence.
                last_seen = Instant::now();
                step
            }
            event = call.next() => match event {
                CallEvent::Media(event) => handle_media_event(&hub, &session, &mut conn, &mut call, event).await,
                CallEvent::Room(Ok(out)) => forward_room_event(&session, &call, &mut conn, &out).await,
                CallEvent::Room(Err(broadcast::error::RecvError::Lagged(_))) if call.participant().is_none() => Ok(()),
                CallEvent::Room(Err(broadcast::error::RecvError::Lagged(n))) => conn
                    .send(&ServerMessage::error(None, codes::LAGGED, format!("{n} events were dropped because this socket fell behind; `sync` after your last message id")))
                    .await
                    .map_err(Exit::from),
                // The registry keeps a room while anyone subscribes; if that ever broke,
                // ending the socket beats spinning on a closed channel.
                CallEvent::Room(Err(broadcast::error::RecvError::Closed)) => Err(Exit::Closed),
            },
            Some(reply) = errands.replies.recv() => {
                if reply.ends_summary {
                    errands.summary_done();
                }
                let sent = if reply.refused {
                    conn.reject_with(*reply.message).await
                } else {
                    conn.send(&reply.message).await
                };
                sent.map_err(Exit::from)
            }
            _ = ticker.tick() => conn.keepalive(last_seen, config.idle_timeout).await,
            _ = stop.changed() => Err(Exit::Shutdown),
            () = signed_in.cancelled() => Err(Exit::SignedOut),
        };
        if let Err(exit) = step {
            break exit;
        }
        if conn.abusive() {
            break Exit::Abuse;
        }
    };
    leave_call(&hub, &session, &mut call, exit.leave_reason()).await;
    drop(call);
    hub.release_room(room_id);
    tracing::debug!(
        room_id,
        user_id = session.user_id,
        ?exit,
        "room socket closed"
    );
    conn.close(exit).await;
}

/// An SFU event for this socket's peer. `None`: the SFU dropped the peer (shutting down).
async fn handle_media_event<Si>(
    hub: &Hub,
    session: &RoomSession,
    conn: &mut Conn<Si>,
    call: &mut Call,
    event: Option<sfu::PeerEvent>,
) -> Result<(), Exit>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    let Call::Joined(joined) = call else {
        return Ok(());
    };
    let Some(event) = event else {
        joined.media = None;
        return Ok(());
    };
    let closed = matches!(event, sfu::PeerEvent::Closed { .. });
    if closed {
        joined.media = None;
    }
    let sent = match to_client(event) {
        Some(message) => conn.send(&message).await.map_err(Exit::from),
        None => Ok(()),
    };
    // Without media past the grace period it is no longer in the call: a participant nobody
    // can hear must not stay listed. The client joins again when it can.
    if closed {
        leave_call(hub, session, call, LeaveReason::MediaFailed).await;
    }
    sent
}

async fn forward_room_event<Si>(
    session: &RoomSession,
    call: &Call,
    conn: &mut Conn<Si>,
    out: &Outbound,
) -> Result<(), Exit>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    let me = call.participant();
    let frame = || Frame::Text(out.json.clone());
    match &out.message {
        ServerMessage::MemberRemoved { user_id, .. } if *user_id == session.user_id => {
            conn.send_frame(frame()).await?;
            Err(Exit::Removed)
        }
        ServerMessage::RoomDeleted { .. } => {
            conn.send_frame(frame()).await?;
            Err(Exit::RoomDeleted)
        }
        // Not in the call: nothing else is for this socket.
        _ if me.is_none() => Ok(()),
        // This user joined again elsewhere (a reconnect or another tab): this one is done.
        ServerMessage::ParticipantLeft {
            participant_id,
            reason: LeaveReason::Replaced,
            ..
        } if me == Some(*participant_id) => {
            conn.send_frame(frame()).await?;
            Err(Exit::Replaced)
        }
        // The joiner learned it from `joined`.
        ServerMessage::ParticipantJoined { participant }
            if me == Some(participant.participant_id) =>
        {
            Ok(())
        }
        _ => conn.send_frame(frame()).await.map_err(Exit::from),
    }
}

async fn handle_message<Si>(
    hub: &Hub,
    service: &dyn RoomService,
    session: &RoomSession,
    conn: &mut Conn<Si>,
    call: &mut Call,
    errands: &mut Errands,
    message: ClientMessage,
) -> Result<(), Exit>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    let room_id = session.room_id;
    let request_id = message.request_id().map(str::to_owned);
    let rid = request_id.as_deref();
    if let Err(wait) = hub.admit(session.user_id, message.kind()) {
        return conn
            .refuse_rate(rid, message.kind(), wait)
            .await
            .map_err(Exit::from);
    }
    let me = call.participant();
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
            .map_err(Exit::from);
    }
    let sent = match message {
        ClientMessage::Join { .. } if me.is_some() => {
            conn.reject(rid, codes::ALREADY_JOINED, "already in the call")
                .await
        }
        ClientMessage::Join { .. } => join(hub, service, session, conn, call, request_id).await,
        ClientMessage::Leave { .. } => {
            leave_call(hub, session, call, LeaveReason::Left).await;
            conn.send(&ServerMessage::ack(rid)).await
        }
        ClientMessage::Chat { text, .. } => {
            queue(conn, errands, Errand::Chat { request_id, text }).await
        }
        ClientMessage::Sync { after, limit, .. } => {
            let errand = Errand::Sync {
                request_id,
                after,
                limit,
            };
            queue(conn, errands, errand).await
        }
        ClientMessage::Remove { user_id, .. } => {
            queue(
                conn,
                errands,
                Errand::Remove {
                    request_id,
                    user_id,
                },
            )
            .await
        }
        ClientMessage::TranscriptionStart { language, .. } => {
            let switch = TranscriptionSwitch::Start { language };
            queue(conn, errands, Errand::Transcription { request_id, switch }).await
        }
        ClientMessage::TranscriptionStop { .. } => {
            let switch = TranscriptionSwitch::Stop;
            queue(conn, errands, Errand::Transcription { request_id, switch }).await
        }
        ClientMessage::AgentSummary { .. } if errands.summary_busy() => {
            conn.reject(
                rid,
                codes::SUMMARY_IN_PROGRESS,
                "a summary is being written for you; wait for its answer",
            )
            .await
        }
        ClientMessage::AgentSummary { .. } => {
            errands.summarise(request_id);
            Ok(())
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
        ClientMessage::Offer { sdp, .. } => match call {
            Call::Joined(j) => {
                call_media::start_media(
                    hub,
                    service,
                    session,
                    conn,
                    j.participant_id,
                    &mut j.media,
                    rid,
                    sdp,
                )
                .await
            }
            Call::Watching(_) => {
                conn.reject(rid, codes::NOT_JOINED, "send `join` first")
                    .await
            }
        },
        ClientMessage::Answer { sdp, .. } => match call {
            Call::Joined(j) => {
                call_media::answer(
                    hub,
                    session,
                    conn,
                    j.participant_id,
                    j.media.as_ref(),
                    rid,
                    sdp,
                )
                .await
            }
            Call::Watching(_) => {
                conn.reject(rid, codes::NOT_JOINED, "send `join` first")
                    .await
            }
        },
        ClientMessage::IceCandidate { candidate, .. } => match call {
            Call::Joined(j) => {
                call_media::candidate(
                    hub,
                    session,
                    conn,
                    j.participant_id,
                    j.media.as_mut(),
                    rid,
                    candidate,
                )
                .await
            }
            Call::Watching(_) => Ok(()),
        },
        ClientMessage::Ping { .. } => conn.send(&ServerMessage::Pong { request_id }).await,
    };
    sent.map_err(Exit::from)
}

async fn queue<Si>(
    conn: &mut Conn<Si>,
    errands: &mut Errands,
    errand: Errand,
) -> Result<(), SendError>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    match errands.run(errand) {
        Ok(()) => Ok(()),
        Err(busy) => conn.reject_with(*busy).await,
    }
}

/// Puts the socket in the call. One call presence per user per room: a rejoin (after a
/// dropped socket the server may not have noticed yet) or another tab replaces the old
/// participant, which keeps no ghost in the list. Its mute carries over; a moderator's lock
/// is the user's in the room, not the socket's, so neither a rejoin nor a second socket
/// escapes it.
async fn join<Si>(
    hub: &Hub,
    service: &dyn RoomService,
    session: &RoomSession,
    conn: &mut Conn<Si>,
    call: &mut Call,
    request_id: Option<String>,
) -> Result<(), SendError>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    let room_id = session.room_id;
    let role = match authorize(service, session, RoomOp::JoinCall).await {
        Ok(role) => role,
        Err(err) => return conn.fail(request_id.as_deref(), err).await,
    };
    let id = hub.next_participant_id();
    let mut info = participant_info(id, session.user_id, &session.username, role);
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
    *call = Call::Joined(Joined {
        participant_id: id,
        rx,
        media: None,
    });
    let ice_servers = hub
        .media_plane()
        .map(|m| {
            m.ice
                .for_user(session.user_id, std::time::SystemTime::now())
        })
        .unwrap_or_default();
    conn.send(&ServerMessage::Joined {
        request_id,
        room_id,
        participant_id: id,
        role,
        muted,
        participants,
        ice_servers,
    })
    .await?;
    // The room is being transcribed: a joiner must know before speaking.
    if let Some(by_user_id) = hub.transcribed_by(room_id) {
        conn.send(&ServerMessage::TranscriptionState {
            active: true,
            by_user_id,
        })
        .await?;
    }
    Ok(())
}

async fn mute<Si>(
    hub: &Hub,
    service: &dyn RoomService,
    session: &RoomSession,
    conn: &mut Conn<Si>,
    rid: Option<&str>,
    me: Option<ParticipantId>,
    target: Option<ParticipantId>,
) -> Result<(), SendError>
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
) -> Result<(), SendError>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    if let Err(err) = authorize(service, session, op).await {
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
