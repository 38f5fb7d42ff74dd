//! Ringing people into calls: the invite lifecycle over HTTP and the user WebSocket, bad
//! input, and (with Redis) two nodes and a restarted node.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    expect_error, json_of, spawn_app, spawn_from, spawn_with, test_env, TestApp, Ws,
};

async fn invite(app: &TestApp, token: &str, room: i64, username: &str) -> Value {
    let (status, body) = json_of(
        app.post(
            &format!("/api/v1/rooms/{room}/invites"),
            Some(token),
            json!({ "username": username }),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Rings `username` into `room`; returns the invite's id.
async fn ring(app: &TestApp, token: &str, room: i64, username: &str) -> String {
    invite(app, token, room, username).await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// `POST /api/v1/invites/{id}/{action}` (`accept` or `decline`) as the holder of `token`.
async fn answer(app: &TestApp, token: &str, id: &str, action: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/invites/{id}/{action}"),
        Some(token),
        json!({}),
    )
    .await
}

/// The next `invite_ended` on `ws`, checked against the invite and outcome.
async fn ended(ws: &mut Ws, invite_id: &str, outcome: &str) -> Value {
    let msg = ws.recv_type("invite_ended").await;
    assert_eq!(msg["invite_id"], invite_id, "{msg}");
    assert_eq!(msg["outcome"], outcome, "{msg}");
    msg
}

#[tokio::test]
async fn an_invite_rings_every_tab_of_the_callee_and_accepting_ends_it_everywhere() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice, "Standup").await;
    let mut alice_tab = app.user_ws(&alice).await;
    let mut bob_tab1 = app.user_ws(&bob).await;
    let mut bob_tab2 = app.user_ws(&bob).await;

    let sent = invite(&app, &alice, room, "bob").await;
    let id = sent["id"].as_str().expect("id").to_owned();
    assert_eq!(sent["room_name"], "Standup");
    assert_eq!(
        (sent["from_username"].as_str(), sent["to_username"].as_str()),
        (Some("alice"), Some("bob"))
    );
    for tab in [&mut bob_tab1, &mut bob_tab2, &mut alice_tab] {
        let ring = tab.recv_type("invite").await;
        assert_eq!(ring["invite"]["id"], id.as_str());
    }
    // A tab opened later finds it ringing.
    let (_, pending) = json_of(app.get("/api/v1/invites", Some(&bob)).await).await;
    assert_eq!(pending["incoming"][0]["id"], id.as_str());
    let (_, pending) = json_of(app.get("/api/v1/invites", Some(&alice)).await).await;
    assert_eq!(pending["outgoing"][0]["id"], id.as_str());

    // Bob isn't a member yet; accepting makes him one and he can join the call.
    assert_eq!(
        app.get(&format!("/api/v1/rooms/{room}"), Some(&bob))
            .await
            .status(),
        404
    );
    let (status, accepted) = json_of(answer(&app, &bob, &id, "accept").await).await;
    assert_eq!(
        (status, accepted["room_id"].as_i64()),
        (StatusCode::OK, Some(room))
    );
    for tab in [&mut bob_tab1, &mut bob_tab2, &mut alice_tab] {
        ended(tab, &id, "accepted").await;
    }
    let mut call = app.room_ws(&bob, room).await;
    assert_eq!(call.join().await["role"], "member");
    // Accepted once: the second tab's accept finds nothing to accept.
    let res = answer(&app, &bob, &id, "accept").await;
    assert_eq!(
        expect_error(res, StatusCode::NOT_FOUND).await["code"],
        "not_found"
    );
    let (_, pending) = json_of(app.get("/api/v1/invites", Some(&bob)).await).await;
    assert_eq!(pending["incoming"], json!([]));
}

#[tokio::test]
async fn decline_cancel_and_timeout_each_end_the_ringing_and_tell_the_caller() {
    let app = spawn_with(&[("INVITE_TIMEOUT_SECS", "5")]).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice, "Standup").await;
    let mut alice_tab = app.user_ws(&alice).await;
    let mut bob_tab = app.user_ws(&bob).await;

    let id = ring(&app, &alice, room, "bob").await;
    let res = answer(&app, &bob, &id, "decline").await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for tab in [&mut bob_tab, &mut alice_tab] {
        ended(tab, &id, "declined").await;
    }
    // Declining doesn't make bob a member.
    assert_eq!(
        app.get(&format!("/api/v1/rooms/{room}"), Some(&bob))
            .await
            .status(),
        404
    );

    let id = ring(&app, &alice, room, "bob").await;
    // Only the caller cancels; only the callee declines.
    let res = app
        .delete(&format!("/api/v1/invites/{id}"), Some(&bob))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = answer(&app, &alice, &id, "decline").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .delete(&format!("/api/v1/invites/{id}"), Some(&alice))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for tab in [&mut bob_tab, &mut alice_tab] {
        ended(tab, &id, "cancelled").await;
    }

    let id = ring(&app, &alice, room, "bob").await;
    bob_tab.recv_type("invite").await;
    let started = tokio::time::Instant::now();
    // The timeout arrives by itself, a little after 5 s.
    let msg = bob_tab
        .recv_type_within("invite_ended", Duration::from_secs(10))
        .await;
    assert_eq!(
        (msg["invite_id"].as_str(), msg["outcome"].as_str()),
        (Some(id.as_str()), Some("timeout"))
    );
    let rang = started.elapsed();
    eprintln!("a 5 s invite rang for {rang:?}");
    assert!(rang >= Duration::from_secs(3), "ended too early: {rang:?}");
    ended(&mut alice_tab, &id, "timeout").await;
    let res = answer(&app, &bob, &id, "accept").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_invites_get_clear_errors_and_change_nothing() {
    let app = spawn_app().await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let (alice, bob) = (&tokens[0], &tokens[1]);
    let carol = app.register("carol").await;
    let path = format!("/api/v1/rooms/{room}/invites");

    let code = |res| async { expect_error(res, StatusCode::NOT_FOUND).await["code"].clone() };
    assert_eq!(
        code(
            app.post(&path, Some(alice), json!({"username": "nobody"}))
                .await
        )
        .await,
        "not_found"
    );
    let err = expect_error(
        app.post(&path, Some(alice), json!({"username": "alice"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(err["field"], "username", "{err}");
    // Carol is not in the room: the room doesn't exist for her.
    assert_eq!(
        code(
            app.post(&path, Some(&carol), json!({"username": "bob"}))
                .await
        )
        .await,
        "not_found"
    );
    assert_eq!(
        code(
            app.post(
                "/api/v1/rooms/999999/invites",
                Some(alice),
                json!({"username": "bob"})
            )
            .await
        )
        .await,
        "not_found"
    );
    expect_error(
        app.post(&path, Some(alice), json!({"user": "bob"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        app.post(&path, None, json!({"username": "bob"}))
            .await
            .status(),
        401
    );

    // Busy: bob is in a call.
    let mut call = app.room_ws(bob, room).await;
    call.join().await;
    let err = expect_error(
        app.post(&path, Some(alice), json!({"username": "bob"}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(err["code"], "busy");
    call.close().await;

    // Ringing already.
    let id = ring(&app, alice, room, "carol").await;
    let err = expect_error(
        app.post(&path, Some(alice), json!({"username": "carol"}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(err["code"], "invite_pending");
    // Someone else's invite can't be taken, and it goes on ringing.
    assert_eq!(answer(&app, bob, &id, "accept").await.status(), 404);
    assert_eq!(answer(&app, alice, &id, "accept").await.status(), 404);
    assert_eq!(
        app.post("/api/v1/invites/not-an-id/accept", Some(&carol), json!({}))
            .await
            .status(),
        404
    );
    let (_, pending) = json_of(app.get("/api/v1/invites", Some(&carol)).await).await;
    assert_eq!(pending["incoming"][0]["id"], id.as_str());
}

#[tokio::test]
async fn an_invite_to_a_deleted_room_cannot_be_accepted() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice, "Gone soon").await;
    let id = ring(&app, &alice, room, "bob").await;
    assert_eq!(
        app.delete(&format!("/api/v1/rooms/{room}"), Some(&alice))
            .await
            .status(),
        204
    );
    let res = answer(&app, &bob, &id, "accept").await;
    assert_eq!(
        expect_error(res, StatusCode::NOT_FOUND).await["code"],
        "not_found"
    );
    let (_, rooms) = json_of(app.get("/api/v1/rooms", Some(&bob)).await).await;
    assert_eq!(rooms, json!([]));
}

/// Two nodes on one Redis: an invite taken by node A rings bob on node B; node A restarts
/// and the invite is still there to accept; an invite whose node is down still times out.
/// Runs when `WEBCALL_TEST_REDIS_URL` is set.
#[tokio::test]
async fn invites_ring_across_nodes_and_survive_a_restart_of_the_node_that_took_them() {
    let Some(redis_url) = crate::helpers::shared_redis_url("cross-node invites") else {
        return;
    };
    let (mut env, _data) = test_env().await;
    env.insert("REDIS_URL".into(), redis_url);
    env.insert("INVITE_TIMEOUT_SECS".into(), "5".into());
    let node_a = spawn_from(env.clone()).await;
    let node_b = spawn_from(env.clone()).await;
    let alice = node_a.register("alice").await;
    let bob = node_a.register("bob").await;
    let room = node_a.create_room(&alice, "Across").await;
    let mut bob_tab = node_b.user_ws(&bob).await;
    let mut alice_tab = node_b.user_ws(&alice).await;

    let id = ring(&node_a, &alice, room, "bob").await;
    assert_eq!(
        bob_tab.recv_type("invite").await["invite"]["id"],
        id.as_str()
    );
    node_a.stop().await;
    let node_a = spawn_from(env.clone()).await;
    let (_, pending) = json_of(node_a.get("/api/v1/invites", Some(&bob)).await).await;
    assert_eq!(pending["incoming"][0]["id"], id.as_str(), "{pending}");
    let res = answer(&node_a, &bob, &id, "accept").await;
    assert_eq!(res.status(), StatusCode::OK);
    ended(&mut bob_tab, &id, "accepted").await;
    ended(&mut alice_tab, &id, "accepted").await;

    // Taken by node A, which then goes away: node B's sweeper times it out.
    let carol = node_b.register("carol").await;
    let mut carol_tab = node_b.user_ws(&carol).await;
    let id = ring(&node_a, &alice, room, "carol").await;
    carol_tab.recv_type("invite").await;
    node_a.stop().await;
    let msg = carol_tab
        .recv_type_within("invite_ended", Duration::from_secs(10))
        .await;
    assert_eq!(
        (msg["invite_id"].as_str(), msg["outcome"].as_str()),
        (Some(id.as_str()), Some("timeout"))
    );
    node_b.stop().await;
}
