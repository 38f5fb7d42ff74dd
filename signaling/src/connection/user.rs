//! The user socket (`/api/v1/ws`): DMs and presence.

use std::fmt::Display;
use std::sync::Arc;

use futures_util::{Sink, Stream, StreamExt};
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::conn::{classify, Conn, Exit, Incoming};
use super::frame::Frame;
use crate::hub::Hub;
use crate::protocol::{codes, ClientMessage, ServerMessage, UserId};

/// Serves one user socket until it closes, times out, stalls, or the node stops.
pub async fn run_user<Si, St, E>(
    hub: Arc<Hub>,
    user_id: UserId,
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
                        Err(err) => Err(err.into()),
                        Ok(Incoming::Closed) => Err(Exit::Closed),
                        Ok(Incoming::Rejected | Incoming::Control) => Ok(()),
                        Ok(Incoming::Message(message)) => match hub.admit(user_id, message.kind()) {
                            Err(wait) => conn.refuse_rate(message.request_id(), message.kind(), wait).await.map_err(Exit::from),
                            Ok(()) => match message {
                                ClientMessage::Ping { request_id } => {
                                    conn.send(&ServerMessage::Pong { request_id }).await.map_err(Exit::from)
                                }
                                other => conn
                                    .reject(other.request_id(), codes::WRONG_SOCKET, "this socket only carries DMs and notifications; room messages go to /api/v1/rooms/{id}/ws")
                                    .await
                                    .map_err(Exit::from),
                            },
                        },
                    },
                }
            }
            event = rx.recv() => match event {
                Ok(out) => conn.send_frame(Frame::Text(out.json.clone())).await.map_err(Exit::from),
                Err(broadcast::error::RecvError::Lagged(n)) => conn
                    .send(&ServerMessage::error(None, codes::LAGGED, format!("{n} events were dropped because this socket fell behind")))
                    .await
                    .map_err(Exit::from),
                Err(broadcast::error::RecvError::Closed) => Err(Exit::Closed),
            },
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
    drop(rx);
    hub.disconnect_user(user_id).await;
    tracing::debug!(user_id, ?exit, "user socket closed");
    conn.close(exit).await;
}
