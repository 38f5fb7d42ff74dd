//! Who may do what in a room. This is the only place that decides; every use case asks here.
//!
//! Non-members are told the room doesn't exist ([`Denied::NotMember`] -> 404) rather than
//! that they may not see it, so room ids can't be probed for existence.

use crate::domain::Role;
use crate::error::Error;

/// Something a user tries to do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ViewRoom,
    ListMembers,
    /// Add a user with the given role.
    AddMember(Role),
    DeleteRoom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    NotMember,
    Forbidden(&'static str),
}

impl From<Denied> for Error {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotMember => Error::NotFound("room"),
            Denied::Forbidden(why) => Error::Forbidden(why),
        }
    }
}

/// Decides whether a user with `role` in the room (`None`: not a member) may do `action`.
///
/// # Errors
/// [`Denied`] saying why not.
pub fn authorize(role: Option<Role>, action: Action) -> Result<(), Denied> {
    let role = role.ok_or(Denied::NotMember)?;
    match action {
        Action::ViewRoom | Action::ListMembers => Ok(()),
        Action::DeleteRoom if role == Role::Owner => Ok(()),
        Action::DeleteRoom => Err(Denied::Forbidden("only the room owner can delete the room")),
        // A room has exactly one owner; there is no way to add a second one.
        Action::AddMember(Role::Owner) => Err(Denied::Forbidden(
            "a room has one owner; nobody can be added as owner",
        )),
        Action::AddMember(Role::Moderator) if role == Role::Owner => Ok(()),
        Action::AddMember(Role::Moderator) => {
            Err(Denied::Forbidden("only the owner can add moderators"))
        }
        Action::AddMember(Role::Member) if role >= Role::Moderator => Ok(()),
        Action::AddMember(Role::Member) => Err(Denied::Forbidden(
            "only the owner and moderators can add members",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every action, tried as every role and as a non-member.
    #[test]
    fn the_permission_table_holds_for_every_role_and_action() {
        use Action::*;
        use Role::*;
        // (action, owner, moderator, member); a non-member always gets NotMember.
        let table = [
            (ViewRoom, true, true, true),
            (ListMembers, true, true, true),
            (AddMember(Member), true, true, false),
            (AddMember(Moderator), true, false, false),
            (AddMember(Owner), false, false, false),
            (DeleteRoom, true, false, false),
        ];
        for (action, owner, moderator, member) in table {
            for (role, allowed) in [(Owner, owner), (Moderator, moderator), (Member, member)] {
                let got = authorize(Some(role), action);
                assert_eq!(got.is_ok(), allowed, "{role:?} {action:?}");
                if let Err(denied) = got {
                    assert!(
                        matches!(denied, Denied::Forbidden(_)),
                        "{role:?} {action:?}"
                    );
                }
            }
            assert_eq!(
                authorize(None, action),
                Err(Denied::NotMember),
                "{action:?}"
            );
        }
    }
}
