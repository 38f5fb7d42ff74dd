//! Room chat: post (stored, then broadcast) and history.

use signaling::bus::RoomEvent;
use signaling::protocol::ChatMessage;
use signaling::Hub;
use tokio::sync::Mutex;

use super::permissions::{authorize, Action};
use crate::db::{now_millis, ChatRow, Store};
use crate::domain::ChatText;
use crate::error::{Error, Result};
use crate::push::{PushService, RoomMessage};
use crate::timestamps::timestamp;

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

/// Serializes "store, then publish" per room on this node, so the order sockets receive
/// messages in is the order of their ids (the order of the history). Striped rather than
/// one lock per room so memory stays bounded however many rooms there are.
#[derive(Debug)]
pub struct RoomLocks(Vec<Mutex<()>>);

impl RoomLocks {
    const STRIPES: usize = 64;

    pub fn new() -> Self {
        Self((0..Self::STRIPES).map(|_| Mutex::new(())).collect())
    }

    fn for_room(&self, room_id: i64) -> &Mutex<()> {
        let i = usize::try_from(room_id.rem_euclid(Self::STRIPES as i64)).unwrap_or(0);
        &self.0[i]
    }
}

impl Default for RoomLocks {
    fn default() -> Self {
        Self::new()
    }
}

pub fn to_message(row: ChatRow) -> ChatMessage {
    ChatMessage {
        id: row.id,
        room_id: row.room_id,
        user_id: row.user_id,
        username: row.username,
        text: row.body,
        created_at: timestamp(row.created_at),
    }
}

/// What posting a message touches: the store, the room's sockets, push for members with no
/// open tab, and the per-room order.
#[derive(Clone, Copy)]
pub struct ChatDeps<'a> {
    pub store: &'a Store,
    pub hub: &'a Hub,
    pub push: &'a PushService,
    pub locks: &'a RoomLocks,
}

/// Stores a chat message and broadcasts it to the room's call. The caller rate-limits.
///
/// # Errors
/// 404 for a non-member, 422 for blank, too long or control-character text.
pub async fn post(
    deps: ChatDeps<'_>,
    user_id: i64,
    username: &str,
    room_id: i64,
    text: String,
) -> Result<ChatMessage> {
    let ChatDeps {
        store,
        hub,
        push,
        locks,
    } = deps;
    authorize(store.member_role(room_id, user_id).await?, Action::SendChat)?;
    let text = ChatText::parse(text, "text")?;
    let _ordered = locks.for_room(room_id).lock().await;
    let row = store
        .insert_chat(room_id, user_id, username, text.as_str(), now_millis())
        .await?;
    let message = to_message(row);
    // Stored is what counts: if the broadcast fails, clients still get it with `sync`.
    if let Err(err) = hub
        .publish_room(
            room_id,
            RoomEvent::Chat {
                message: message.clone(),
            },
        )
        .await
    {
        tracing::warn!(room_id, error = %err, "chat message stored but not broadcast");
    }
    // Members with no open tab hear of it by push; the worker finds them, off this path.
    push.notify_room(RoomMessage {
        room_id,
        sender_id: user_id,
        from: username.to_owned(),
        text: message.text.clone(),
    });
    Ok(message)
}

/// A page of history: `before` (newest first) or `after` (oldest first), and whether there
/// is more in that direction.
///
/// # Errors
/// 404 for a non-member, 400 when both `before` and `after` are given.
pub async fn history(
    store: &Store,
    user_id: i64,
    room_id: i64,
    before: Option<i64>,
    after: Option<i64>,
    limit: Option<u32>,
) -> Result<(Vec<ChatMessage>, bool)> {
    authorize(store.member_role(room_id, user_id).await?, Action::ReadChat)?;
    let limit = i64::from(limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE));
    let mut rows = match (before, after) {
        (Some(_), Some(_)) => {
            return Err(Error::BadRequest {
                code: "bad_request",
                message: "give either before or after, not both".to_owned(),
            })
        }
        (None, Some(after)) => store.chat_after(room_id, after, limit + 1).await?,
        (before, None) => {
            store
                .chat_before(room_id, before.unwrap_or(i64::MAX), limit + 1)
                .await?
        }
    };
    let has_more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok((rows.into_iter().map(to_message).collect(), has_more))
}
