//! Rooms and their members. Each use case checks [`authorize`] before it touches anything.

use signaling::bus::RoomEvent;
use signaling::Hub;

use super::permissions::{authorize, Action};
use crate::db::{now_millis, MemberRow, RoomRow, Store, StoreError};
use crate::domain::{Role, RoomName, Username};
use crate::error::{Error, Result};

/// A room as one user sees it: with that user's role.
#[derive(Debug, Clone)]
pub struct RoomView {
    pub room: RoomRow,
    pub role: Role,
}

/// Creates a room owned by `user_id`, who may own at most `max_owned` rooms
/// (`MAX_ROOMS_PER_USER`). Two creations at the same instant may both pass the count; the
/// per-address rate limit keeps that overshoot small.
///
/// # Errors
/// 422 for an invalid name, 409 `room_limit` when the user owns `max_owned` rooms already.
pub async fn create(store: &Store, user_id: i64, name: &str, max_owned: usize) -> Result<RoomView> {
    let name = RoomName::parse(name)?;
    if store.rooms_owned(user_id).await? >= max_owned {
        return Err(Error::Conflict {
            code: "room_limit",
            message: format!(
                "you own {max_owned} rooms, the most one user may (MAX_ROOMS_PER_USER); delete one to create another"
            ),
        });
    }
    let room = store.create_room(&name, user_id, now_millis()).await?;
    tracing::info!(room_id = room.id, user_id, "room created");
    Ok(RoomView {
        room,
        role: Role::Owner,
    })
}

/// One page of the rooms a user belongs to, newest first.
#[derive(Debug, Clone)]
pub struct RoomPage {
    pub rooms: Vec<RoomView>,
    /// The `before` of the next page, when there is one.
    pub next_before: Option<i64>,
}

/// The rooms `user_id` belongs to with ids below `before` (all when `None`), newest first,
/// at most `limit`.
///
/// # Errors
/// Only database failures.
pub async fn list(
    store: &Store,
    user_id: i64,
    before: Option<i64>,
    limit: usize,
) -> Result<RoomPage> {
    // One more than asked says whether another page follows.
    let mut rooms: Vec<RoomView> = store
        .rooms_of_user(user_id, before.unwrap_or(i64::MAX), limit + 1)
        .await?
        .into_iter()
        .map(|(room, role)| RoomView { room, role })
        .collect();
    let more = rooms.len() > limit;
    rooms.truncate(limit);
    let next_before = more.then(|| rooms.last().map(|v| v.room.id)).flatten();
    Ok(RoomPage { rooms, next_before })
}

/// Refuses a joiner when the room's call holds `max` participants already, counted on every
/// node; the joiner's own earlier participants don't count (a rejoin replaces them).
///
/// # Errors
/// 409 `room_full`.
pub fn check_room_has_space(hub: &Hub, room_id: i64, user_id: i64, max: usize) -> Result<()> {
    let others = hub
        .participants(room_id)
        .iter()
        .filter(|p| p.user_id != user_id)
        .count();
    if others >= max {
        return Err(Error::Conflict {
            code: "room_full",
            message: format!(
                "this call is full: {max} participants, the most a room holds (ROOM_MAX_PARTICIPANTS)"
            ),
        });
    }
    Ok(())
}

/// Looks the room up and checks that `user_id` may do `action` in it.
async fn authorized(store: &Store, user_id: i64, room_id: i64, action: Action) -> Result<RoomView> {
    let room = store.room(room_id).await?.ok_or(Error::NotFound("room"))?;
    let role = store.member_role(room_id, user_id).await?;
    authorize(role, action)?;
    // authorize() refuses non-members, so a role is there.
    let role = role.ok_or(Error::NotFound("room"))?;
    Ok(RoomView { room, role })
}

/// # Errors
/// 404 for an unknown room or a non-member.
pub async fn get(store: &Store, user_id: i64, room_id: i64) -> Result<RoomView> {
    authorized(store, user_id, room_id, Action::ViewRoom).await
}

/// Deletes the room and ends its call on every node: sockets close (4004), media stops,
/// a running transcription stops.
///
/// # Errors
/// 404 for an unknown room or a non-member, 403 for anyone but the owner.
pub async fn delete(store: &Store, hub: &Hub, user_id: i64, room_id: i64) -> Result<()> {
    authorized(store, user_id, room_id, Action::DeleteRoom).await?;
    store.delete_room(room_id).await?;
    tracing::info!(room_id, user_id, "room deleted");
    let event = RoomEvent::RoomDeleted {
        by_user_id: user_id,
    };
    if let Err(err) = hub.publish_room(room_id, event).await {
        // The room is gone from the database: every command and every new offer on its
        // sockets is refused, so the call ends as soon as anyone acts.
        tracing::error!(room_id, error = %err, "room deletion not broadcast");
    }
    Ok(())
}

/// Adds `username` to the room with `role`.
///
/// # Errors
/// 404 for an unknown room, non-member or unknown user; 403 when the actor's role can't add
/// that role; 409 when the user already is a member; 422 for a malformed username.
pub async fn add_member(
    store: &Store,
    user_id: i64,
    room_id: i64,
    username: &str,
    role: Role,
) -> Result<MemberRow> {
    authorized(store, user_id, room_id, Action::AddMember(role)).await?;
    let username = Username::parse(username)?;
    let user = store
        .user_by_name(&username)
        .await?
        .ok_or(Error::NotFound("user"))?;
    // Adding takes a moderator or the owner (authorized above), so it lifts a removal.
    store.clear_removal(room_id, user.id).await?;
    let now = now_millis();
    store
        .add_member(room_id, user.id, role, now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => Error::Conflict {
                code: "already_member",
                message: format!("{} already is a member of this room", user.username),
            },
            other => other.into(),
        })?;
    tracing::info!(
        room_id,
        user_id,
        member_id = user.id,
        role = role.as_str(),
        "member added"
    );
    Ok(MemberRow {
        user_id: user.id,
        username: user.username,
        role,
        joined_at: now,
    })
}

/// # Errors
/// 404 for an unknown room or a non-member.
pub async fn members(store: &Store, user_id: i64, room_id: i64) -> Result<Vec<MemberRow>> {
    authorized(store, user_id, room_id, Action::ListMembers).await?;
    Ok(store.members(room_id).await?)
}

/// The role of `target` in the room, after checking the actor may see the room at all.
async fn target_role(
    store: &Store,
    actor_role: Option<Role>,
    room_id: i64,
    target: i64,
) -> Result<Role> {
    authorize(actor_role, Action::ViewRoom)?;
    store
        .member_role(room_id, target)
        .await?
        .ok_or(Error::NotFound("member"))
}

/// Removes `target` from the room: the membership goes, and every node closes the target's
/// sockets (and media) in the room. The removal is sticky: they come back only when a
/// moderator or the owner adds them, or accepts an invite from one of them (an ordinary
/// member's invite can't undo it).
///
/// # Errors
/// 404 for an unknown room, non-member actor or target; 403 when the actor doesn't outrank
/// the target.
pub async fn remove_member(
    store: &Store,
    hub: &Hub,
    user_id: i64,
    room_id: i64,
    target: i64,
) -> Result<()> {
    let actor_role = store.member_role(room_id, user_id).await?;
    let role = target_role(store, actor_role, room_id, target).await?;
    authorize(actor_role, Action::RemoveMember(role))?;
    if !store
        .remove_member(room_id, target, user_id, now_millis())
        .await?
    {
        return Err(Error::NotFound("member"));
    }
    tracing::info!(room_id, user_id, member_id = target, "member removed");
    let event = RoomEvent::MemberRemoved {
        user_id: target,
        by_user_id: user_id,
    };
    if let Err(err) = hub.publish_room(room_id, event).await {
        // The membership is gone, so the next command on their socket fails anyway.
        tracing::error!(room_id, error = %err, "removal not broadcast");
    }
    Ok(())
}

/// Changes a member's role (owner only; ownership can't move).
///
/// # Errors
/// 404 unknown room, non-member or target; 403 for anyone but the owner, or for the owner role.
pub async fn change_role(
    store: &Store,
    hub: &Hub,
    user_id: i64,
    room_id: i64,
    target: i64,
    to: Role,
) -> Result<MemberRow> {
    let actor_role = store.member_role(room_id, user_id).await?;
    let from = target_role(store, actor_role, room_id, target).await?;
    authorize(actor_role, Action::ChangeRole { from, to })?;
    store.set_member_role(room_id, target, to).await?;
    tracing::info!(
        room_id,
        user_id,
        member_id = target,
        role = to.as_str(),
        "role changed"
    );
    let event = RoomEvent::RoleChanged {
        user_id: target,
        role: to.into(),
        by_user_id: user_id,
    };
    if let Err(err) = hub.publish_room(room_id, event).await {
        tracing::error!(room_id, error = %err, "role change not broadcast");
    }
    store
        .members(room_id)
        .await?
        .into_iter()
        .find(|m| m.user_id == target)
        .ok_or(Error::NotFound("member"))
}

/// A member and whether they are online (a user socket open) and in the call.
#[derive(Debug, Clone)]
pub struct MemberPresence {
    pub member: MemberRow,
    pub online: bool,
    /// Participants of this member in the call now (tabs, devices).
    pub in_call: usize,
}

/// # Errors
/// 404 for an unknown room or a non-member.
pub async fn presence(
    store: &Store,
    hub: &Hub,
    user_id: i64,
    room_id: i64,
) -> Result<Vec<MemberPresence>> {
    authorized(store, user_id, room_id, Action::ListMembers).await?;
    let participants = hub.participants(room_id);
    Ok(store
        .members(room_id)
        .await?
        .into_iter()
        .map(|member| MemberPresence {
            online: hub.is_online(member.user_id),
            in_call: participants
                .iter()
                .filter(|p| p.user_id == member.user_id)
                .count(),
            member,
        })
        .collect())
}
