//! A room socket's media connection in the SFU: the offer that starts it (membership checked
//! again at that moment), the answer to a server offer, trickled candidates, and its end.

use std::fmt::Display;

use futures_util::Sink;
use tokio::sync::mpsc;

use super::conn::{Conn, SendError};
use super::frame::Frame;
use super::RoomSession;
use crate::hub::Hub;
use crate::media::{peer_of, room_of};
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
            plane
                .sfu
                .leave(room_of(session.room_id), peer_of(participant));
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
    let room = room_of(session.room_id);
    let peer = peer_of(participant);
    if media.is_some() {
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
    let (tx, events) = sfu::event_channel();
    match plane.sfu.join(room, peer, sdp, tx).await {
        Ok(answer) => {
            *media = Some(MediaLink {
                events,
                candidates: 0,
            });
            if hub
                .participant(session.room_id, participant)
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
    match plane
        .sfu
        .answer(room_of(session.room_id), peer_of(participant), sdp)
        .await
    {
        Ok(()) => Ok(()),
        Err(err @ sfu::SfuError::OutOfOrder(_)) => {
            conn.reject(rid, codes::MEDIA_OUT_OF_ORDER, err.to_string())
                .await
        }
        Err(err) => conn.reject(rid, codes::BAD_SDP, err.to_string()).await,
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
    let candidate = sfu::IceCandidate {
        candidate: candidate.candidate,
        sdp_mid: candidate.sdp_mid,
        sdp_mline_index: candidate.sdp_m_line_index,
        username_fragment: candidate.username_fragment,
        ..Default::default()
    };
    let _ = plane
        .sfu
        .add_candidate(room_of(session.room_id), peer_of(participant), candidate);
    Ok(())
}
