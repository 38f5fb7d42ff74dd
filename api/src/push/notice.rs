//! What a push says: the JSON the service worker (`static/sw.js`) reads, built from an event.

use serde::{Deserialize, Serialize};
use signaling::protocol::{Invite, RoomId};

/// Characters of a room message shown in a notification.
const PREVIEW_CHARS: usize = 120;

/// Something a user with no open tab should hear about (stored as JSON in the Redis queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    Invite {
        invite: Invite,
    },
    /// A DM: only who sent it. DMs may be end-to-end encrypted, and even plain ones stay off
    /// push services' servers.
    Dm {
        from: String,
    },
    /// A room chat message, to every member but its sender with no open tab.
    Chat {
        room_id: RoomId,
        room_name: String,
        from: String,
        text: String,
    },
}

/// The decrypted push payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    pub kind: &'static str,
    pub title: String,
    pub body: String,
    /// Where a click on the notification leads (a path of the app).
    pub url: String,
    /// One notification per conversation: a newer one with the same tag replaces it.
    pub tag: String,
    /// Messages of this conversation not yet seen (DMs and room chat).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

impl Notice {
    /// The conversation this belongs to: notifications, counts and queue entries collapse
    /// per tag.
    pub fn tag(&self) -> String {
        match self {
            Notice::Invite { invite } => format!("invite:{}", invite.id),
            Notice::Dm { from } => format!("dm:{from}"),
            Notice::Chat { room_id, .. } => format!("room:{room_id}"),
        }
    }

    /// How long a push service should keep it for an offline browser.
    pub fn ttl_secs(&self) -> u64 {
        match self {
            // Ringing is over after the invite's timeout; a late "call" is noise.
            Notice::Invite { .. } => 60,
            Notice::Dm { .. } | Notice::Chat { .. } => 24 * 3600,
        }
    }

    pub fn urgent(&self) -> bool {
        matches!(self, Notice::Invite { .. })
    }

    /// The payload, with `count` unseen messages of this conversation.
    pub fn payload(&self, count: u32) -> Payload {
        let tag = self.tag();
        match self {
            Notice::Invite { invite } => Payload {
                kind: "invite",
                title: format!("{} is calling you", invite.from_username),
                body: format!("Join the call in {}", invite.room_name),
                url: format!("/rooms/{}", invite.room_id),
                tag,
                count: None,
            },
            Notice::Dm { from } => Payload {
                kind: "dm",
                title: from.clone(),
                body: if count > 1 {
                    format!("{count} new messages from {from}")
                } else {
                    format!("New message from {from}")
                },
                url: format!("/dm/{from}"),
                tag,
                count: Some(count),
            },
            Notice::Chat {
                room_id,
                room_name,
                from,
                text,
                ..
            } => {
                let mut preview: String = text.chars().take(PREVIEW_CHARS).collect();
                if text.chars().count() > PREVIEW_CHARS {
                    preview.push('…');
                }
                Payload {
                    kind: "chat",
                    title: if count > 1 {
                        format!("{room_name} ({count} new messages)")
                    } else {
                        room_name.clone()
                    },
                    body: format!("{from}: {preview}"),
                    url: format!("/rooms/{room_id}"),
                    tag,
                    count: Some(count),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dm_notification_names_the_sender_and_never_carries_the_text() {
        let p = Notice::Dm {
            from: "alice".into(),
        }
        .payload(3);
        assert_eq!(p.body, "3 new messages from alice");
        assert_eq!((p.tag.as_str(), p.url.as_str()), ("dm:alice", "/dm/alice"));
    }

    #[test]
    fn a_long_room_message_is_cut_in_the_preview() {
        let notice = Notice::Chat {
            room_id: 5,
            room_name: "Standup".into(),
            from: "alice".into(),
            text: "x".repeat(500),
        };
        let p = notice.payload(1);
        assert_eq!(p.body.chars().count(), "alice: ".len() + PREVIEW_CHARS + 1);
        assert_eq!(p.title, "Standup");
    }
}
