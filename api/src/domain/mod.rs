//! Validated value types. Input from the network is parsed into these at the edge, so the
//! rest of the code never sees an unchecked username, password or room name.

mod chat_text;
mod e2ee;
mod password;
mod role;
mod room_name;
mod username;

pub use chat_text::ChatText;
pub use e2ee::{KeyId, Opaque, PublicJwk};
pub use password::Password;
pub use role::{ParseRoleError, Role};
pub use room_name::RoomName;
pub use username::Username;

/// Why a value was rejected. `field` names the JSON field, so the client can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
