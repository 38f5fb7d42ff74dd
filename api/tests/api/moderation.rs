//! Roles and moderation: server-enforced mute, unmute requests, removal, role changes, and
//! the authorization matrix over HTTP and WebSocket.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{expect_error, json_of, spawn_app, TestApp};

/// A room with owner alice, moderator mo and members bob and carl; eve is an outsider.
struct Cast {
    alice: String,
    mo: String,
    bob: String,
    carl: String,
    eve: String,
    room: i64,
}

async fn cast(app: &TestApp) -> Cast {
    let alice = app.register("alice").await;
    let mo = app.register("moe").await;
    let bob = app.register("bob").await;
    let carl = app.register("carl").await;
    let eve = app.register("eve").await;
    let room = app.create_room(&alice, "Town hall").await;
    app.add_member(&alice, room, "moe", "moderator").await;
    app.add_member(&alice, room, "bob", "member").await;
    app.add_member(&alice, room, "carl", "member").await;
    Cast {
        alice,
        mo,
        bob,
        carl,
        eve,
        room,
    }
}

#[tokio::test]
async fn moderators_mute_members_and_the_mute_holds_until_they_ask_to_unmute() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let mut alice = app.room_ws(&c.alice, c.room).await;
    let mut mo = app.room_ws(&c.mo, c.room).await;
    let mut bob = app.room_ws(&c.bob, c.room).await;
    let a_id = alice.join().await["participant_id"].clone();
    let mo_id = mo.join().await["participant_id"].clone();
    let bob_id = bob.join().await["participant_id"].clone();

    // A member can't mute others; a moderator can't mute the owner or another moderator.
    bob.send(json!({"type": "mute", "request_id": "m", "participant_id": a_id}))
        .await;
    let err = bob.recv_type("error").await;
    assert_eq!(
        (err["code"].as_str(), err["request_id"].as_str()),
        (Some("forbidden"), Some("m"))
    );
    mo.send(json!({"type": "mute", "participant_id": a_id}))
        .await;
    assert_eq!(mo.recv_type("error").await["code"], "forbidden");
    mo.send(json!({"type": "mute", "participant_id": 424242}))
        .await;
    assert_eq!(mo.recv_type("error").await["code"], "no_such_participant");

    mo.send(json!({"type": "mute", "request_id": "m2", "participant_id": bob_id}))
        .await;
    assert_eq!(mo.recv_type("ack").await["request_id"], "m2");
    for ws in [&mut alice, &mut mo, &mut bob] {
        let changed = ws.recv_type("mute_changed").await;
        assert_eq!(changed["participant_id"], bob_id);
        assert_eq!(
            (changed["muted"].as_bool(), changed["mute_locked"].as_bool()),
            (Some(true), Some(true))
        );
    }
    // Server-enforced: bob can't lift it himself.
    bob.send(json!({"type": "unmute", "request_id": "u"})).await;
    assert_eq!(bob.recv_type("error").await["code"], "mute_locked");
    // Nor by leaving and joining again, nor from a second socket: the lock belongs to bob in
    // this room, not to his socket.
    bob.send(json!({"type": "leave", "request_id": "l"})).await;
    assert_eq!(bob.recv_type("ack").await["request_id"], "l");
    let again = bob.join().await;
    assert_eq!(again["muted"], true, "{again}");
    bob.send(json!({"type": "unmute"})).await;
    assert_eq!(bob.recv_type("error").await["code"], "mute_locked");
    let mut bob2 = app.room_ws(&c.bob, c.room).await;
    let second = bob2.join().await;
    assert_eq!(second["muted"], true, "{second}");
    let me = second["participants"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|p| p["participant_id"] == second["participant_id"])
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(me["mute_locked"], true, "{second}");
    bob2.send(json!({"type": "unmute"})).await;
    assert_eq!(bob2.recv_type("error").await["code"], "mute_locked");
    // The second socket replaced the first; carry on with it.
    let mut bob = bob2;
    let bob_id = second["participant_id"].clone();

    mo.send(json!({"type": "request_unmute", "participant_id": bob_id}))
        .await;
    let asked = bob.recv_type("unmute_requested").await;
    assert_eq!(asked["participant_id"], bob_id);
    assert_eq!(
        alice.recv_type("unmute_requested").await["participant_id"],
        bob_id
    );
    bob.send(json!({"type": "unmute"})).await;
    let changed = alice.recv_type("mute_changed").await;
    assert_eq!(
        (
            changed["participant_id"].clone(),
            changed["muted"].as_bool()
        ),
        (bob_id.clone(), Some(false))
    );

    assert_eq!(mo.recv_type("mute_changed").await["muted"], false);

    // Anyone mutes themselves, and may unmute again.
    bob.send(json!({"type": "mute"})).await;
    let changed = mo.recv_type("mute_changed").await;
    assert_eq!(
        (changed["muted"].as_bool(), changed["mute_locked"].as_bool()),
        (Some(true), Some(false))
    );
    // The owner mutes a moderator.
    alice
        .send(json!({"type": "mute", "participant_id": mo_id}))
        .await;
    assert_eq!(mo.recv_type("mute_changed").await["participant_id"], mo_id);
    // A late joiner sees the mute state.
    let mut carl = app.room_ws(&c.carl, c.room).await;
    let joined = carl.join().await;
    let mo_state = joined["participants"]
        .as_array()
        .expect("array")
        .iter()
        .find(|p| p["participant_id"] == mo_id)
        .cloned()
        .expect("mo listed");
    assert_eq!(
        (
            mo_state["muted"].as_bool(),
            mo_state["mute_locked"].as_bool()
        ),
        (Some(true), Some(true))
    );
}

#[tokio::test]
async fn removed_members_lose_their_socket_and_cannot_rejoin_until_added_again() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let bob_id = app.user_id(&c.bob).await;
    let mut alice = app.room_ws(&c.alice, c.room).await;
    let mut mo = app.room_ws(&c.mo, c.room).await;
    let mut bob = app.room_ws(&c.bob, c.room).await;
    alice.join().await;
    mo.join().await;
    let bob_participant = bob.join().await["participant_id"].clone();
    // A second tab that never joined the call is closed too.
    let mut bob_lurking = app.room_ws(&c.bob, c.room).await;
    bob_lurking.send(json!({"type": "ping"})).await;
    bob_lurking.recv_type("pong").await;

    // A member can't remove anyone; a moderator can't remove the owner.
    bob.send(json!({"type": "remove", "user_id": app.user_id(&c.carl).await}))
        .await;
    assert_eq!(bob.recv_type("error").await["code"], "forbidden");
    mo.send(json!({"type": "remove", "user_id": app.user_id(&c.alice).await}))
        .await;
    assert_eq!(mo.recv_type("error").await["code"], "forbidden");

    mo.send(json!({"type": "remove", "request_id": "r", "user_id": bob_id}))
        .await;
    assert_eq!(mo.recv_type("ack").await["request_id"], "r");
    let (seen, code) = bob.closed().await;
    assert_eq!(code, Some(4003));
    assert_eq!(bob_lurking.closed().await.1, Some(4003));
    assert!(seen
        .iter()
        .any(|m| m["type"] == "member_removed" && m["user_id"] == bob_id));
    assert_eq!(alice.recv_type("member_removed").await["user_id"], bob_id);
    let left = alice.recv_type("participant_left").await;
    assert_eq!(
        (left["participant_id"].clone(), left["reason"].as_str()),
        (bob_participant, Some("removed"))
    );

    let (status, _) = app
        .ws_refused(&format!("/api/v1/rooms/{}/ws", c.room), Some(&c.bob))
        .await;
    assert_eq!(status, 404);
    expect_error(
        app.get(&format!("/api/v1/rooms/{}/messages", c.room), Some(&c.bob))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Re-added, bob is back.
    app.add_member(&c.alice, c.room, "bob", "member").await;
    let mut bob = app.room_ws(&c.bob, c.room).await;
    bob.join().await;
}

#[tokio::test]
async fn only_the_owner_changes_roles_and_every_change_is_broadcast() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let bob_id = app.user_id(&c.bob).await;
    let member = |id: i64| format!("/api/v1/rooms/{}/members/{id}", c.room);
    let patch = |token: &str, id: i64, role: &str| {
        app.request(Method::PATCH, &member(id), Some(token))
            .json(&json!({ "role": role }))
            .send()
    };
    let mut bob = app.room_ws(&c.bob, c.room).await;
    bob.join().await;

    expect_error(
        patch(&c.mo, bob_id, "moderator").await.expect("send"),
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_error(
        patch(&c.eve, bob_id, "moderator").await.expect("send"),
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_error(
        patch(&c.alice, bob_id, "owner").await.expect("send"),
        StatusCode::FORBIDDEN,
    )
    .await;
    let err = expect_error(
        patch(&c.alice, bob_id, "admin").await.expect("send"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(err["field"], "role");
    expect_error(
        patch(&c.alice, 999_999, "member").await.expect("send"),
        StatusCode::NOT_FOUND,
    )
    .await;

    let (status, body) = json_of(patch(&c.alice, bob_id, "moderator").await.expect("send")).await;
    assert_eq!(
        (status, body["role"].as_str()),
        (StatusCode::OK, Some("moderator"))
    );
    let changed = bob.recv_type("role_changed").await;
    assert_eq!(
        (changed["user_id"].as_i64(), changed["role"].as_str()),
        (Some(bob_id), Some("moderator"))
    );
    // The new role is in force at once: bob can now mute carl.
    let mut carl = app.room_ws(&c.carl, c.room).await;
    let carl_id = carl.join().await["participant_id"].clone();
    bob.send(json!({"type": "mute", "participant_id": carl_id}))
        .await;
    assert_eq!(
        carl.recv_type("mute_changed").await["participant_id"],
        carl_id
    );
}

/// (what, method, path, body, expected status as owner, moderator, member, outsider)
type MatrixRow = (
    &'static str,
    Method,
    String,
    Option<serde_json::Value>,
    [u16; 4],
);

/// The HTTP side of the matrix: every role (and an outsider) against chat, presence, role
/// changes and removal. The WebSocket side is covered by the mute and removal tests.
#[tokio::test]
async fn the_authorization_matrix_holds_over_http_for_every_role_and_an_outsider() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let room = c.room;
    let carl_id = app.user_id(&c.carl).await;
    let tokens = [
        ("owner", &c.alice),
        ("moderator", &c.mo),
        ("member", &c.bob),
        ("outsider", &c.eve),
    ];
    let reads: [MatrixRow; 4] = [
        (
            "read chat",
            Method::GET,
            format!("/api/v1/rooms/{room}/messages"),
            None,
            [200, 200, 200, 404],
        ),
        (
            "send chat",
            Method::POST,
            format!("/api/v1/rooms/{room}/messages"),
            Some(json!({"text": "hi"})),
            [201, 201, 201, 404],
        ),
        (
            "presence",
            Method::GET,
            format!("/api/v1/rooms/{room}/presence"),
            None,
            [200, 200, 200, 404],
        ),
        (
            "promote",
            Method::PATCH,
            format!("/api/v1/rooms/{room}/members/{carl_id}"),
            Some(json!({"role": "member"})),
            [200, 403, 403, 404],
        ),
    ];
    for (what, method, path, body, expected) in reads {
        for ((role, token), want) in tokens.iter().zip(expected) {
            let mut req = app.request(method.clone(), &path, Some(token));
            if let Some(body) = &body {
                req = req.json(body);
            }
            let status = req.send().await.expect("send").status().as_u16();
            assert_eq!(status, want, "{what} as {role}");
        }
    }
    // Removal, each attempt on a fresh member so an allowed one doesn't hide the next.
    for ((role, token), want) in tokens.iter().zip([204, 204, 403, 404]) {
        let name = format!("target-{role}");
        let target = app.register(&name).await;
        app.add_member(&c.alice, room, &name, "member").await;
        let id = app.user_id(&target).await;
        let res = app
            .delete(&format!("/api/v1/rooms/{room}/members/{id}"), Some(token))
            .await;
        assert_eq!(res.status().as_u16(), want, "remove a member as {role}");
    }
    // Moderators can't remove moderators; nobody removes the owner.
    let mo_id = app.user_id(&c.mo).await;
    let alice_id = app.user_id(&c.alice).await;
    assert_eq!(
        app.delete(
            &format!("/api/v1/rooms/{room}/members/{mo_id}"),
            Some(&c.mo)
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(
            &format!("/api/v1/rooms/{room}/members/{alice_id}"),
            Some(&c.alice)
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(
            &format!("/api/v1/rooms/{room}/members/{mo_id}"),
            Some(&c.alice)
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
}
