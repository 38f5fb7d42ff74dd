//! Commands that wait on the database or a model run beside the socket's loop, so the loop
//! keeps serving pings, media and room events while a query is slow (a PostgreSQL restart,
//! a long `sync`). Chat, sync, removals and transcription switches go to one worker per
//! socket, in order, through a small bounded queue; a summary (which can take a minute) runs
//! in a task of its own. Both belong to the hub's task tracker: the work finishes even if
//! the socket closes, and shutdown waits for it.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::RoomSession;
use crate::hub::Hub;
use crate::protocol::{codes, ServerMessage, UserId};
use crate::service::{RoomService, ServiceError, TranscriptionSwitch};

/// Commands one socket may have waiting; a client that queues more gets `busy`.
const QUEUE: usize = 8;

/// A command for the worker.
pub(super) enum Errand {
    Chat {
        request_id: Option<String>,
        text: String,
    },
    Sync {
        request_id: Option<String>,
        after: i64,
        limit: Option<u32>,
    },
    Remove {
        request_id: Option<String>,
        user_id: UserId,
    },
    Transcription {
        request_id: Option<String>,
        switch: TranscriptionSwitch,
    },
}

/// An answer for the client; `refused` counts as a strike like any refused command.
pub(super) struct Reply {
    /// Boxed: the replies channel allocates a block of 32 slots up front for every socket,
    /// chat or not, and a `ServerMessage` inline made that ~8.5 KiB per participant.
    pub(super) message: Box<ServerMessage>,
    pub(super) refused: bool,
    /// The answer to `agent_summary`: the socket may ask again.
    pub(super) ends_summary: bool,
}

impl Reply {
    fn of(request_id: Option<&str>, result: Result<ServerMessage, ServiceError>) -> Self {
        match result {
            Ok(message) => Reply {
                message: Box::new(message),
                refused: false,
                ends_summary: false,
            },
            Err(err) => Reply {
                message: Box::new(ServerMessage::error(request_id, &err.code, err.message)),
                refused: true,
                ends_summary: false,
            },
        }
    }
}

pub(super) struct Errands {
    hub: Arc<Hub>,
    service: Arc<dyn RoomService>,
    session: RoomSession,
    queue: Option<mpsc::Sender<Errand>>,
    replies_tx: mpsc::Sender<Reply>,
    pub(super) replies: mpsc::Receiver<Reply>,
    summary_busy: bool,
}

impl Errands {
    pub(super) fn new(hub: Arc<Hub>, service: Arc<dyn RoomService>, session: RoomSession) -> Self {
        let (replies_tx, replies) = mpsc::channel(QUEUE * 2);
        Self {
            hub,
            service,
            session,
            queue: None,
            replies_tx,
            replies,
            summary_busy: false,
        }
    }

    /// Queues `errand`, starting the worker on first use.
    ///
    /// # Errors
    /// The `busy` answer when the socket already has [`QUEUE`] commands waiting.
    pub(super) fn run(&mut self, errand: Errand) -> Result<(), Box<ServerMessage>> {
        let queue = self.queue.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            self.hub.tasks().spawn(work(
                self.service.clone(),
                self.session.clone(),
                rx,
                self.replies_tx.clone(),
            ));
            tx
        });
        queue.try_send(errand).map_err(|err| {
            let request_id = match err.into_inner() {
                Errand::Chat { request_id, .. }
                | Errand::Sync { request_id, .. }
                | Errand::Remove { request_id, .. }
                | Errand::Transcription { request_id, .. } => request_id,
            };
            metrics::counter!("ws_messages_refused_total", "type" => "any", "reason" => "busy")
                .increment(1);
            Box::new(ServerMessage::error(
                request_id.as_deref(),
                codes::BUSY,
                "too many commands waiting for the server; wait for their answers",
            ))
        })
    }

    pub(super) fn summary_busy(&self) -> bool {
        self.summary_busy
    }

    /// The summary's answer came back.
    pub(super) fn summary_done(&mut self) {
        self.summary_busy = false;
    }

    /// Starts `agent_summary` for the socket's user.
    pub(super) fn summarise(&mut self, request_id: Option<String>) {
        self.summary_busy = true;
        let service = self.service.clone();
        let replies = self.replies_tx.clone();
        let (room_id, user_id) = (self.session.room_id, self.session.user_id);
        self.hub.tasks().spawn(async move {
            let result = match service.agent_summary(room_id, user_id).await {
                // Everyone, the asker included, gets the new summary from the room.
                Ok((_, true)) => Ok(ServerMessage::ack(request_id.as_deref())),
                Ok((summary, false)) => Ok(ServerMessage::Summary {
                    request_id: request_id.clone(),
                    summary,
                }),
                Err(err) => Err(err),
            };
            let mut reply = Reply::of(request_id.as_deref(), result);
            reply.ends_summary = true;
            let _ = replies.send(reply).await;
        });
    }
}

/// The worker: one errand at a time, in the order the client sent them, until the socket
/// drops its queue.
async fn work(
    service: Arc<dyn RoomService>,
    session: RoomSession,
    mut queue: mpsc::Receiver<Errand>,
    replies: mpsc::Sender<Reply>,
) {
    let (room_id, user_id) = (session.room_id, session.user_id);
    while let Some(errand) = queue.recv().await {
        let reply = match errand {
            Errand::Chat { request_id, text } => {
                let result = service
                    .post_chat(room_id, user_id, session.username.clone(), text)
                    .await
                    .map(|message| ServerMessage::Ack {
                        request_id: request_id.clone(),
                        message_id: Some(message.id),
                        created_at: Some(message.created_at),
                    });
                Reply::of(request_id.as_deref(), result)
            }
            Errand::Sync {
                request_id,
                after,
                limit,
            } => {
                let result = service
                    .chat_after(room_id, user_id, after, limit)
                    .await
                    .map(|(messages, has_more)| ServerMessage::History {
                        request_id: request_id.clone(),
                        messages,
                        has_more,
                    });
                Reply::of(request_id.as_deref(), result)
            }
            Errand::Remove {
                request_id,
                user_id: target,
            } => {
                let result = service
                    .remove_member(room_id, user_id, target)
                    .await
                    .map(|()| ServerMessage::ack(request_id.as_deref()));
                Reply::of(request_id.as_deref(), result)
            }
            Errand::Transcription { request_id, switch } => {
                let result = service
                    .set_transcription(room_id, user_id, switch)
                    .await
                    .map(|()| ServerMessage::ack(request_id.as_deref()));
                Reply::of(request_id.as_deref(), result)
            }
        };
        // If the socket is gone, what was asked is done and nobody is left to tell.
        let _ = replies.send(reply).await;
    }
}
