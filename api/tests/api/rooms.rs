use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{expect_error, json_of, spawn_app};

#[tokio::test]
async fn creating_a_room_makes_the_creator_its_owner() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let (status, room) = json_of(
        app.post(
            "/api/v1/rooms",
            Some(&alice),
            json!({"name": "  Standup  "}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (room["name"].as_str(), room["role"].as_str()),
        (Some("Standup"), Some("owner"))
    );
    let id = room["id"].as_i64().expect("id");

    let (_, got) = json_of(app.get(&format!("/api/v1/rooms/{id}"), Some(&alice)).await).await;
    assert_eq!(got["name"], "Standup");
    let (_, members) = json_of(
        app.get(&format!("/api/v1/rooms/{id}/members"), Some(&alice))
            .await,
    )
    .await;
    assert_eq!(
        members,
        json!([{"user_id": room["owner_id"], "username": "alice", "role": "owner", "joined_at": members[0]["joined_at"]}])
    );
}

#[tokio::test]
async fn the_room_list_holds_only_the_rooms_the_user_belongs_to() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let a1 = app.create_room(&alice, "A1").await;
    let a2 = app.create_room(&alice, "A2").await;
    let b1 = app.create_room(&bob, "B1").await;
    app.add_member(&bob, b1, "alice", "member").await;

    let (_, rooms) = json_of(app.get("/api/v1/rooms", Some(&alice)).await).await;
    let ids: Vec<i64> = rooms
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, vec![b1, a2, a1], "newest first");
    assert_eq!(rooms[0]["role"], "member");
    let (_, rooms) = json_of(app.get("/api/v1/rooms", Some(&bob)).await).await;
    assert_eq!(rooms.as_array().map(Vec::len), Some(1));
    expect_error(
        app.get("/api/v1/rooms", None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn unknown_and_malformed_room_ids_are_404() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    for path in [
        "/api/v1/rooms/999999",
        "/api/v1/rooms/abc",
        "/api/v1/rooms/-1",
        "/api/v1/rooms/99999999999999999999999",
        "/api/v1/rooms/1%00",
    ] {
        let err = expect_error(app.get(path, Some(&alice)).await, StatusCode::NOT_FOUND).await;
        assert_eq!(err["code"], "not_found", "{path}");
    }
    expect_error(
        app.delete("/api/v1/rooms/999999", Some(&alice)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_error(
        app.get("/api/v1/rooms/999999/members", Some(&alice)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_non_member_cannot_tell_a_room_exists() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let eve = app.register("eve").await;
    let room = app.create_room(&alice, "Private").await;
    let unknown = expect_error(
        app.get("/api/v1/rooms/999999", Some(&eve)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let hidden = expect_error(
        app.get(&format!("/api/v1/rooms/{room}"), Some(&eve)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(unknown, hidden);
    expect_error(
        app.get(&format!("/api/v1/rooms/{room}/members"), Some(&eve))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_error(
        app.delete(&format!("/api/v1/rooms/{room}"), Some(&eve))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let (status, _) = app.add_member(&eve, room, "eve", "member").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_the_owner_can_delete_a_room() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.create_room(&alice, "Team").await;
    app.add_member(&alice, room, "bob", "moderator").await;
    app.add_member(&alice, room, "carol", "member").await;
    let path = format!("/api/v1/rooms/{room}");
    for token in [&bob, &carol] {
        let err = expect_error(app.delete(&path, Some(token)).await, StatusCode::FORBIDDEN).await;
        assert_eq!(err["code"], "forbidden");
    }
    assert_eq!(
        app.delete(&path, Some(&alice)).await.status(),
        StatusCode::NO_CONTENT
    );
    expect_error(app.get(&path, Some(&alice)).await, StatusCode::NOT_FOUND).await;
    let (_, rooms) = json_of(app.get("/api/v1/rooms", Some(&bob)).await).await;
    assert_eq!(rooms, json!([]), "members lose the deleted room too");
    expect_error(app.delete(&path, Some(&alice)).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn adding_members_follows_the_role_rules() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    for name in ["dave", "erin", "frank"] {
        app.register(name).await;
    }
    let room = app.create_room(&alice, "Team").await;

    let (status, added) = app.add_member(&alice, room, "bob", "moderator").await;
    assert_eq!(
        (status, added["role"].as_str(), added["username"].as_str()),
        (StatusCode::CREATED, Some("moderator"), Some("bob"))
    );
    let (status, _) = app.add_member(&bob, room, "carol", "member").await;
    assert_eq!(status, StatusCode::CREATED, "moderators add members");
    let (status, _) = app.add_member(&bob, room, "dave", "moderator").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "moderators can't add moderators"
    );
    let (status, _) = app.add_member(&carol, room, "dave", "member").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "members can't add anyone");
    let (status, _) = app.add_member(&alice, room, "dave", "owner").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a room has one owner");
    let (status, body) = app.add_member(&alice, room, "carol", "member").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_member"))
    );
    let (status, body) = app.add_member(&alice, room, "nobody", "member").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = app.add_member(&alice, room, "dave", "admin").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("role"))
    );
    let (status, body) = app.add_member(&alice, room, "x", "member").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("username"))
    );
    let (status, added) = json_of(
        app.post(
            &format!("/api/v1/rooms/{room}/members"),
            Some(&alice),
            json!({"username": "erin"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, added["role"].as_str()),
        (StatusCode::CREATED, Some("member")),
        "role defaults to member"
    );

    let (_, members) = json_of(
        app.get(&format!("/api/v1/rooms/{room}/members"), Some(&carol))
            .await,
    )
    .await;
    let listed: Vec<(&str, &str)> = members
        .as_array()
        .expect("array")
        .iter()
        .map(|m| {
            (
                m["username"].as_str().unwrap_or(""),
                m["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("alice", "owner"),
            ("bob", "moderator"),
            ("carol", "member"),
            ("erin", "member")
        ]
    );
    // The new member sees the room in their list.
    let (_, rooms) = json_of(app.get("/api/v1/rooms", Some(&carol)).await).await;
    assert_eq!(rooms[0]["id"].as_i64(), Some(room));
}

#[tokio::test]
async fn invalid_room_names_are_422_naming_the_field() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    for name in ["", "   ", &"n".repeat(101), "bell\u{7}"] {
        let err = expect_error(
            app.post("/api/v1/rooms", Some(&alice), json!({"name": name}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(err["field"], "name");
    }
    let (_, rooms) = json_of(app.get("/api/v1/rooms", Some(&alice)).await).await;
    assert_eq!(rooms, json!([]), "nothing half-created");
    expect_error(
        app.post("/api/v1/rooms", None, json!({"name": "x"})).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}
