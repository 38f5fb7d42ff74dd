use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A member's role in a room. Ordered: `Owner > Moderator > Member`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Moderator,
    Owner,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}; expected owner, moderator or member")]
pub struct ParseRoleError(String);

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Moderator, Role::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Moderator => "moderator",
            Role::Member => "member",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = ParseRoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "moderator" => Ok(Role::Moderator),
            "member" => Ok(Role::Member),
            other => Err(ParseRoleError(other.to_owned())),
        }
    }
}

impl From<Role> for signaling::protocol::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => signaling::protocol::Role::Owner,
            Role::Moderator => signaling::protocol::Role::Moderator,
            Role::Member => signaling::protocol::Role::Member,
        }
    }
}
