//! The WebSocket side of the API: the application's implementation of
//! [`signaling::service::RoomService`], axum's WebSocket adapted to
//! [`signaling::connection::Frame`], and the Redis bus.

pub(crate) mod pubsub;
mod redis_bus;

use std::future;

use axum::extract::ws::{CloseFrame as AxumClose, Message, WebSocket};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use signaling::bus::BoxFuture;
use signaling::connection::{CloseFrame, Frame};
use signaling::protocol::{ChatMessage, Role as WireRole, RoomId, Summary, UserId};
use signaling::service::{RoomOp, RoomService, ServiceError, TranscriptionSwitch};

pub use self::redis_bus::RedisBus;
use crate::app::permissions::{authorize, Action};
use crate::app::{chat, rooms};
use crate::context::ApiContext;
use crate::error::Error;
use crate::ratelimit::Bucket;

/// An [`Error`] as a WebSocket `error`: the same code as over HTTP; internal details are
/// logged here and never sent.
pub fn service_error(err: Error) -> ServiceError {
    let (_, code, _) = err.classify();
    if let Error::Internal(detail) = &err {
        tracing::error!(error = %detail, "internal error in a WebSocket command");
        return ServiceError::new(code, "internal server error");
    }
    ServiceError::new(code, err.to_string())
}

/// Room commands over the WebSocket, answered by the same use cases as the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiRoomService {
    pub ctx: ApiContext,
}

impl ApiRoomService {
    async fn authorize_op(
        &self,
        room: RoomId,
        user: UserId,
        op: RoomOp,
    ) -> Result<WireRole, Error> {
        let store = &self.ctx.store;
        let role = store.member_role(room, user).await?;
        let target = |target: UserId| async move {
            authorize(role, Action::ViewRoom)?;
            store
                .member_role(room, target)
                .await?
                .ok_or(Error::NotFound("member"))
        };
        let action = match op {
            RoomOp::JoinCall => Action::JoinCall,
            RoomOp::MuteSelf => Action::MuteSelf,
            RoomOp::MuteOther { target_user } => Action::MuteOther(target(target_user).await?),
            RoomOp::RequestUnmute { target_user } => {
                Action::RequestUnmute(target(target_user).await?)
            }
        };
        authorize(role, action)?;
        if matches!(op, RoomOp::JoinCall) {
            let max = self.ctx.settings.caps.participants_per_room;
            rooms::check_room_has_space(&self.ctx.hub, room, user, max)?;
        }
        role.map(WireRole::from).ok_or(Error::NotFound("room"))
    }
}

impl RoomService for ApiRoomService {
    fn authorize(
        &self,
        room: RoomId,
        user: UserId,
        op: RoomOp,
    ) -> BoxFuture<'_, Result<WireRole, ServiceError>> {
        Box::pin(async move {
            self.authorize_op(room, user, op)
                .await
                .map_err(service_error)
        })
    }

    fn post_chat(
        &self,
        room: RoomId,
        user: UserId,
        username: String,
        text: String,
    ) -> BoxFuture<'_, Result<ChatMessage, ServiceError>> {
        Box::pin(async move {
            let ctx = &self.ctx;
            async {
                ctx.rate_limit_user(Bucket::Chat, user).await?;
                chat::post(ctx.chat_deps(), user, &username, room, text).await
            }
            .await
            .map_err(service_error)
        })
    }

    fn chat_after(
        &self,
        room: RoomId,
        user: UserId,
        after: i64,
        limit: Option<u32>,
    ) -> BoxFuture<'_, Result<(Vec<ChatMessage>, bool), ServiceError>> {
        Box::pin(async move {
            chat::history(&self.ctx.store, user, room, None, Some(after), limit)
                .await
                .map_err(service_error)
        })
    }

    fn set_transcription(
        &self,
        room: RoomId,
        user: UserId,
        switch: TranscriptionSwitch,
    ) -> BoxFuture<'_, Result<(), ServiceError>> {
        Box::pin(async move {
            let ctx = &self.ctx;
            ctx.transcription
                .set(&ctx.store, &ctx.hub, room, user, switch)
                .await
                .map_err(service_error)
        })
    }

    fn agent_summary(
        &self,
        room: RoomId,
        user: UserId,
    ) -> BoxFuture<'_, Result<(Summary, bool), ServiceError>> {
        Box::pin(async move {
            let ctx = &self.ctx;
            ctx.summaries
                .summarise(ctx.deps(), room, user)
                .await
                .map(|outcome| (outcome.summary, outcome.created))
                .map_err(service_error)
        })
    }

    fn remove_member(
        &self,
        room: RoomId,
        actor: UserId,
        target: UserId,
    ) -> BoxFuture<'_, Result<(), ServiceError>> {
        Box::pin(async move {
            rooms::remove_member(&self.ctx.store, &self.ctx.hub, actor, room, target)
                .await
                .map_err(service_error)
        })
    }
}

fn to_axum(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::Text(text.into()),
        Frame::Binary(bytes) => Message::Binary(bytes.into()),
        Frame::Ping(bytes) => Message::Ping(bytes.into()),
        Frame::Pong(bytes) => Message::Pong(bytes.into()),
        Frame::Close(close) => Message::Close(close.map(|c| AxumClose {
            code: c.code,
            reason: c.reason.into(),
        })),
    }
}

fn from_axum(message: Message) -> Frame {
    match message {
        Message::Text(text) => Frame::Text(text.as_str().to_owned()),
        Message::Binary(bytes) => Frame::Binary(bytes.to_vec()),
        Message::Ping(bytes) => Frame::Ping(bytes.to_vec()),
        Message::Pong(bytes) => Frame::Pong(bytes.to_vec()),
        Message::Close(close) => Frame::Close(close.map(|c| CloseFrame {
            code: c.code,
            reason: c.reason.as_str().to_owned(),
        })),
    }
}

/// axum's WebSocket as the `Sink + Stream` of frames the connection loops are written over.
pub fn adapt(
    socket: WebSocket,
) -> (
    impl Sink<Frame, Error = axum::Error> + Unpin,
    impl Stream<Item = Result<Frame, axum::Error>> + Unpin,
) {
    let (sink, stream) = socket.split();
    let sink = sink.with(|frame: Frame| future::ready(Ok::<_, axum::Error>(to_axum(frame))));
    let stream = stream.map(|message| message.map(from_axum));
    (sink, stream)
}
