//! Direct messages between two users: plain, or end-to-end encrypted by the clients (the
//! server stores the ciphertext, IV and key ids as opaque strings).

use signaling::protocol::{DirectMessage, ServerMessage};
use signaling::Hub;

use super::keys::find_user;
use crate::db::{now_millis, DmBody, DmRow, Store, UserRow};
use crate::domain::{ChatText, KeyId, Opaque, ValidationError};
use crate::error::{Error, Result};
use crate::push::{Notice, PushService};
use crate::timestamps::timestamp;

/// Ciphertext of a 4000-character message in base64, with the GCM tag, fits in this.
pub const MAX_CIPHERTEXT: usize = 24 * 1024;
/// An AES-GCM IV is 12 bytes; 64 characters allows any reasonable encoding.
pub const MAX_IV: usize = 64;

/// A DM as the client sends it: `text`, or all four encrypted fields.
#[derive(Debug, Default)]
pub struct DmInput {
    pub text: Option<String>,
    pub ciphertext: Option<String>,
    pub iv: Option<String>,
    pub sender_key_id: Option<String>,
    pub recipient_key_id: Option<String>,
}

/// A conversation as one side sees it.
#[derive(Debug)]
pub struct Conversation {
    pub peer: UserRow,
    pub online: bool,
    pub last: DirectMessage,
    pub unread: i64,
}

pub fn to_message(row: DmRow, sender: &str, recipient: &str) -> DirectMessage {
    let mut message = DirectMessage {
        id: row.id,
        sender: sender.to_owned(),
        recipient: recipient.to_owned(),
        text: None,
        ciphertext: None,
        iv: None,
        sender_key_id: None,
        recipient_key_id: None,
        created_at: timestamp(row.created_at),
        read_at: row.read_at.map(timestamp),
    };
    match row.body {
        DmBody::Plain(text) => message.text = Some(text),
        DmBody::Encrypted {
            ciphertext,
            iv,
            sender_key_id,
            recipient_key_id,
        } => {
            message.ciphertext = Some(ciphertext);
            message.iv = Some(iv);
            message.sender_key_id = Some(sender_key_id);
            message.recipient_key_id = Some(recipient_key_id);
        }
    }
    message
}

/// The other side of a conversation: an existing user who isn't the caller.
async fn peer(store: &Store, me: i64, username: &str) -> Result<UserRow> {
    let peer = find_user(store, username).await?;
    if peer.id == me {
        return Err(Error::BadRequest {
            code: "dm_to_self",
            message: "direct messages go to another user, not to yourself".to_owned(),
        });
    }
    Ok(peer)
}

async fn body(store: &Store, me: i64, peer: i64, input: DmInput) -> Result<DmBody> {
    let encrypted = input.ciphertext.is_some()
        || input.iv.is_some()
        || input.sender_key_id.is_some()
        || input.recipient_key_id.is_some();
    match (input.text, encrypted) {
        (Some(_), true) => Err(ValidationError::new(
            "text",
            "send either text or the encrypted fields, not both",
        )
        .into()),
        (Some(text), false) => Ok(DmBody::Plain(ChatText::parse(text, "text")?.into_inner())),
        (None, false) => Err(ValidationError::new(
            "text",
            "send text, or ciphertext, iv, sender_key_id and recipient_key_id",
        )
        .into()),
        (None, true) => {
            let need = |v: Option<String>, field: &'static str| {
                v.ok_or_else(|| ValidationError::new(field, "is required for an encrypted message"))
            };
            let ciphertext = Opaque::parse(
                need(input.ciphertext, "ciphertext")?,
                "ciphertext",
                MAX_CIPHERTEXT,
            )?;
            let iv = Opaque::parse(need(input.iv, "iv")?, "iv", MAX_IV)?;
            let sender_key_id = KeyId::parse(
                &need(input.sender_key_id, "sender_key_id")?,
                "sender_key_id",
            )?;
            let recipient_key_id = KeyId::parse(
                &need(input.recipient_key_id, "recipient_key_id")?,
                "recipient_key_id",
            )?;
            // Key ids must name published keys, or the other side could never decrypt.
            if store.key(me, sender_key_id.as_str()).await?.is_none() {
                return Err(ValidationError::new(
                    "sender_key_id",
                    "is not one of your published keys",
                )
                .into());
            }
            if store.key(peer, recipient_key_id.as_str()).await?.is_none() {
                return Err(ValidationError::new(
                    "recipient_key_id",
                    "is not one of the recipient's published keys",
                )
                .into());
            }
            Ok(DmBody::Encrypted {
                ciphertext: ciphertext.into_inner(),
                iv: iv.into_inner(),
                sender_key_id: sender_key_id.as_str().to_owned(),
                recipient_key_id: recipient_key_id.as_str().to_owned(),
            })
        }
    }
}

/// Stores a DM and pushes it to both users' sockets (the sender's other tabs too). The
/// caller rate-limits.
///
/// # Errors
/// 404 unknown user, 400 `dm_to_self`, 422 for bad text or encrypted fields.
pub async fn send(
    store: &Store,
    hub: &Hub,
    push: &PushService,
    me: &UserRow,
    to: &str,
    input: DmInput,
) -> Result<DirectMessage> {
    let peer = peer(store, me.id, to).await?;
    let body = body(store, me.id, peer.id, input).await?;
    let row = store.insert_dm(me.id, peer.id, &body, now_millis()).await?;
    let message = to_message(row, &me.username, &peer.username);
    for user in [peer.id, me.id] {
        let push = ServerMessage::Dm {
            message: message.clone(),
        };
        if let Err(err) = hub.publish_user(user, push).await {
            tracing::warn!(user_id = user, error = %err, "DM stored but not pushed");
        }
    }
    if !hub.is_online(peer.id) {
        let notice = Notice::Dm {
            from: me.username.clone(),
        };
        push.notify(peer.id, notice).await;
    }
    Ok(message)
}

/// A page of the conversation with `with`, newest first.
///
/// # Errors
/// 404 unknown user, 400 `dm_to_self`.
pub async fn page(
    store: &Store,
    me: &UserRow,
    with: &str,
    before: Option<i64>,
    limit: Option<u32>,
) -> Result<Vec<DirectMessage>> {
    let peer = peer(store, me.id, with).await?;
    let limit = i64::from(
        limit
            .unwrap_or(super::chat::DEFAULT_PAGE)
            .clamp(1, super::chat::MAX_PAGE),
    );
    let rows = store
        .dms_between(me.id, peer.id, before.unwrap_or(i64::MAX), limit)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            if row.sender_id == me.id {
                to_message(row, &me.username, &peer.username)
            } else {
                to_message(row, &peer.username, &me.username)
            }
        })
        .collect())
}

/// # Errors
/// Only database failures.
pub async fn conversations(store: &Store, hub: &Hub, me: &UserRow) -> Result<Vec<Conversation>> {
    let mut out = Vec::new();
    for row in store.conversations(me.id).await? {
        let Some(peer) = store.user_by_id(row.peer_id).await? else {
            continue;
        };
        let last = if row.last.sender_id == me.id {
            to_message(row.last, &me.username, &peer.username)
        } else {
            to_message(row.last, &peer.username, &me.username)
        };
        out.push(Conversation {
            online: hub.is_online(peer.id),
            peer,
            last,
            unread: row.unread,
        });
    }
    Ok(out)
}

/// Marks `with`'s messages to me read, up to `up_to` (default: all); tells `with`.
///
/// # Errors
/// 404 unknown user, 400 `dm_to_self`.
pub async fn mark_read(
    store: &Store,
    hub: &Hub,
    me: &UserRow,
    with: &str,
    up_to: Option<i64>,
) -> Result<u64> {
    let peer = peer(store, me.id, with).await?;
    let up_to = up_to.unwrap_or(i64::MAX);
    let marked = store
        .mark_dms_read(me.id, peer.id, up_to, now_millis())
        .await?;
    if marked > 0 {
        let receipt = ServerMessage::DmRead {
            reader: me.username.clone(),
            up_to,
        };
        if let Err(err) = hub.publish_user(peer.id, receipt).await {
            tracing::warn!(user_id = peer.id, error = %err, "read receipt not pushed");
        }
    }
    Ok(marked)
}
