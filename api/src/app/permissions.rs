//! Who may do what in a room. This is the only place that decides; every use case (HTTP or
//! WebSocket) asks here.
//!
//! Non-members are told the room doesn't exist ([`Denied::NotMember`] -> 404) rather than
//! that they may not see it, so room ids can't be probed for existence.
//!
//! Actions on another member carry that member's role: moderation only goes downwards
//! (owner > moderator > member), so a moderator can't mute or remove another moderator or the
//! owner, and nobody can act on the owner.

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
    /// Read the chat history and who is in the call.
    ReadChat,
    SendChat,
    JoinCall,
    /// Mute or unmute yourself.
    MuteSelf,
    /// Mute a participant whose member has this role (server-enforced).
    MuteOther(Role),
    /// Lift a moderator's mute on a participant with this role and ask them to unmute.
    RequestUnmute(Role),
    /// Remove a member with this role from the room.
    RemoveMember(Role),
    /// Change the role of a member who has role `from` to `to`.
    ChangeRole {
        from: Role,
        to: Role,
    },
    /// Turn on the room's transcriber. Any member: it is announced to everyone, and anyone
    /// who minds can ask a moderator to stop it.
    StartTranscription,
    /// Turn it off: the member who started it (`own`), moderators and the owner.
    StopTranscription {
        own: bool,
    },
    /// Read the stored transcript: any member (they were all told it was recorded).
    ReadTranscript,
    /// Ring a user into the room's call. Any member: the callee joins as a member only by
    /// accepting, so this adds nobody without their consent (adding outright stays with
    /// moderators and the owner).
    InviteToCall,
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

/// Moderation needs a moderator or the owner, and a target of a lower role.
fn moderate(actor: Role, target: Role, what: &'static str) -> Result<(), Denied> {
    if actor < Role::Moderator {
        return Err(Denied::Forbidden(what));
    }
    if target >= actor {
        return Err(Denied::Forbidden(
            "moderators act on members only, and nobody acts on the owner",
        ));
    }
    Ok(())
}

/// Decides whether a user with `role` in the room (`None`: not a member) may do `action`.
///
/// # Errors
/// [`Denied`] saying why not.
pub fn authorize(role: Option<Role>, action: Action) -> Result<(), Denied> {
    let role = role.ok_or(Denied::NotMember)?;
    match action {
        Action::ViewRoom
        | Action::ListMembers
        | Action::ReadChat
        | Action::SendChat
        | Action::JoinCall
        | Action::MuteSelf
        | Action::StartTranscription
        | Action::ReadTranscript
        | Action::InviteToCall => Ok(()),
        Action::StopTranscription { own: true } => Ok(()),
        Action::StopTranscription { own: false } if role >= Role::Moderator => Ok(()),
        Action::StopTranscription { own: false } => Err(Denied::Forbidden(
            "only who started the transcription, moderators and the owner can stop it",
        )),
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
        Action::MuteOther(target) => moderate(
            role,
            target,
            "only the owner and moderators can mute others",
        ),
        Action::RequestUnmute(target) => moderate(
            role,
            target,
            "only the owner and moderators can ask others to unmute",
        ),
        Action::RemoveMember(target) => moderate(
            role,
            target,
            "only the owner and moderators can remove members",
        ),
        Action::ChangeRole { .. } if role != Role::Owner => {
            Err(Denied::Forbidden("only the owner can change roles"))
        }
        Action::ChangeRole {
            from: Role::Owner, ..
        }
        | Action::ChangeRole {
            to: Role::Owner, ..
        } => Err(Denied::Forbidden(
            "a room has one owner; ownership can't be given or taken",
        )),
        Action::ChangeRole { .. } => Ok(()),
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
            (ReadChat, true, true, true),
            (SendChat, true, true, true),
            (JoinCall, true, true, true),
            (MuteSelf, true, true, true),
            (StartTranscription, true, true, true),
            (StopTranscription { own: true }, true, true, true),
            (StopTranscription { own: false }, true, true, false),
            (ReadTranscript, true, true, true),
            (MuteOther(Member), true, true, false),
            (MuteOther(Moderator), true, false, false),
            (MuteOther(Owner), false, false, false),
            (RequestUnmute(Member), true, true, false),
            (RequestUnmute(Moderator), true, false, false),
            (RequestUnmute(Owner), false, false, false),
            (RemoveMember(Member), true, true, false),
            (RemoveMember(Moderator), true, false, false),
            (RemoveMember(Owner), false, false, false),
            (
                ChangeRole {
                    from: Member,
                    to: Moderator,
                },
                true,
                false,
                false,
            ),
            (
                ChangeRole {
                    from: Moderator,
                    to: Member,
                },
                true,
                false,
                false,
            ),
            (
                ChangeRole {
                    from: Member,
                    to: Member,
                },
                true,
                false,
                false,
            ),
            (
                ChangeRole {
                    from: Member,
                    to: Owner,
                },
                false,
                false,
                false,
            ),
            (
                ChangeRole {
                    from: Owner,
                    to: Member,
                },
                false,
                false,
                false,
            ),
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
