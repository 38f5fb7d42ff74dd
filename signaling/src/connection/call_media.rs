//! A room socket's media connection in the SFU: the offer that starts it (membership checked
//! again at that moment), the answer to a server offer, trickled candidates, and its end.

use std::fmt::Display;

use futures_util::Sink;
use tokio::sync::mpsc;

use super::conn::{Conn, SendError};
use super::frame::Frame;
use super::RoomSession;
use crate::hub::Hub;
use crate::media::{MediaControl, MediaError};
use crate::protocol::{codes, IceCandidate, ParticipantId, ServerMessage};
use crate::service::{RoomOp, RoomService};

/// The answer to a media command on a node that runs without an SFU.
async fn no_media_plane<Si>(conn: &mut Conn<Si>, rid: Option<&str>) -> Result<(), SendError>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    conn.reject(
        rid,
        codes::MEDIA_UNAVAILABLE,
        "this server has no media plane",
    )
    .await
}

/// A browser trickles a handful of candidates per connection; far more is a flood.
const MAX_CANDIDATES: u32 = 64;

/// This socket's media connection in the SFU, while it has one.
pub(super) struct MediaLink {
    pub(super) events: mpsc::Receiver<sfu::PeerEvent>,
    candidates: u32,
}

/// Ends `participant`'s media connection, if it has one.
pub(super) fn drop_media(
    hub: &Hub,
    session: &RoomSession,
    participant: ParticipantId,
    media: &mut Option<MediaLink>,
) {
    if media.take().is_some() {
        if let Some(plane) = hub.media_plane() {
            plane.leave(session.room_id, participant);
        }
    }
}

/// Joins the SFU with the client's offer and sends the answer; a new offer on running media
/// is an ICE restart. Membership is checked again first: a member removed (or a room
/// deleted) a moment ago must not get media. A participant already muted (by a moderator,
/// before their media started) stays muted in the SFU too.
#[allow(clippy::too_many_arguments)]
pub(super) async fn start_media<Si>(
    hub: &Hub,
    service: &dyn RoomService,
    session: &RoomSession,
    conn: &mut Conn<Si>,
    participant: ParticipantId,
    media: &mut Option<MediaLink>,
    rid: Option<&str>,
    sdp: String,
) -> Result<(), SendError>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    let Some(plane) = hub.media_plane() else {
        return no_media_plane(conn, rid).await;
    };
    if let Err(err) = super::room::authorize(service, session, RoomOp::JoinCall).await {
        return conn.fail(rid, err).await;
    }
    let room = session.room_id;
    if media.is_some() {
        return match plane.restart(room, participant, sdp).await {
            Ok(answer) => {
                conn.send(&ServerMessage::Answer {
                    request_id: rid.map(str::to_owned),
                    sdp: answer,
                })
                .await
            }
            Err(err) => refuse(conn, rid, err).await,
        };
    }
    let (tx, events) = sfu::event_channel();
    match plane.join(room, participant, sdp, tx).await {
        Ok(answer) => {
            *media = Some(MediaLink {
                events,
                candidates: 0,
            });
            if hub.participant(room, participant).is_some_and(|p| p.muted) {
                plane.set_muted(room, participant, true);
            }
            conn.send(&ServerMessage::Answer {
                request_id: rid.map(str::to_owned),
                sdp: answer,
            })
            .await
        }
        Err(err @ MediaError::Unavailable(_)) => refuse(conn, rid, err).await,
        Err(err) => conn.reject(rid, codes::BAD_SDP, err.to_string()).await,
    }
}

/// A media command's failure, as the client's `error`.
async fn refuse<Si>(
    conn: &mut Conn<Si>,
    rid: Option<&str>,
    err: MediaError,
) -> Result<(), SendError>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    let code = match err {
        MediaError::OutOfOrder(_) | MediaError::Closed => codes::MEDIA_OUT_OF_ORDER,
        MediaError::Unavailable(_) => codes::MEDIA_UNAVAILABLE,
        MediaError::BadSdp(_) => codes::BAD_SDP,
    };
    conn.reject(rid, code, err.to_string()).await
}

/// The client's answer to a server offer (renegotiation).
pub(super) async fn answer<Si>(
    hub: &Hub,
    session: &RoomSession,
    conn: &mut Conn<Si>,
    participant: ParticipantId,
    media: Option<&MediaLink>,
    rid: Option<&str>,
    sdp: String,
) -> Result<(), SendError>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    let Some(plane) = hub.media_plane() else {
        return no_media_plane(conn, rid).await;
    };
    if media.is_none() {
        return conn
            .reject(rid, codes::MEDIA_OUT_OF_ORDER, "send `offer` first")
            .await;
    }
    match plane.answer(session.room_id, participant, sdp).await {
        Ok(()) => Ok(()),
        Err(err) => refuse(conn, rid, err).await,
    }
}

/// A trickled ICE candidate; ignored when no media runs (a restart or a failed offer raced
/// it, which is harmless).
pub(super) async fn candidate<Si>(
    hub: &Hub,
    session: &RoomSession,
    conn: &mut Conn<Si>,
    participant: ParticipantId,
    media: Option<&mut MediaLink>,
    rid: Option<&str>,
    candidate: IceCandidate,
) -> Result<(), SendError>
where
    Si: Sink<Frame> + Unpin,
    Si::Error: Display,
{
    let (Some(plane), Some(link)) = (hub.media_plane(), media) else {
        return Ok(());
    };
    if link.candidates >= MAX_CANDIDATES {
        return conn
            .reject(
                rid,
                codes::INVALID_MESSAGE,
                format!("at most {MAX_CANDIDATES} ICE candidates per connection"),
            )
            .await;
    }
    link.candidates += 1;
    plane.add_candidate(session.room_id, participant, candidate);
    Ok(())
}
