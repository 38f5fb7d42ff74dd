//! The room and user WebSockets: refusal before the upgrade, join/leave, timeouts, presence,
//! two nodes on one Redis.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{json_of, spawn_app, spawn_from, spawn_with, test_env, TestApp, Ws};

async fn presence_of(app: &TestApp, token: &str, room: i64, username: &str) -> Value {
    let (status, list) = json_of(
        app.get(&format!("/api/v1/rooms/{room}/presence"), Some(token))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array()
        .expect("array")
        .iter()
        .find(|p| p["username"] == username)
        .cloned()
        .expect("member listed")
}

/// Polls presence until `check` holds (presence follows socket events asynchronously).
async fn wait_presence(
    app: &TestApp,
    token: &str,
    room: i64,
    username: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let p = presence_of(app, token, room, username).await;
        if check(&p) {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "presence never matched: {p}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sockets_for_rooms_the_user_is_not_in_are_refused_before_the_upgrade() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let eve = app.register("eve").await;
    let room = app.create_room(&alice, "Private").await;
    let path = format!("/api/v1/rooms/{room}/ws");

    let (status, body) = app.ws_refused(&path, Some(&eve)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = app
        .ws_refused("/api/v1/rooms/999999/ws", Some(&alice))
        .await;
    assert_eq!(status, 404);
    let (status, body) = app.ws_refused(&path, Some("forged")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = app.ws_refused(&path, None).await;
    assert_eq!(status, 401);
    let (status, _) = app.ws_refused("/api/v1/ws", None).await;
    assert_eq!(status, 401);

    // A member's header is let in.
    let mut a = app.room_ws(&alice, room).await;
    assert_eq!(a.join().await["role"], "owner");
}

#[tokio::test]
async fn joined_lists_everyone_in_the_call_and_others_see_joins_and_leaves() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice, "Call").await;
    app.add_member(&alice, room, "bob", "member").await;

    let mut a = app.room_ws(&alice, room).await;
    let joined = a.join().await;
    assert_eq!(joined["participants"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        (joined["muted"].as_bool(), joined["room_id"].as_i64()),
        (Some(false), Some(room))
    );

    // One user is in a call once: a second tab (or a reconnect) replaces the first, and the
    // first is told and closed with 4001 so it doesn't fight back.
    let mut b1 = app.room_ws(&bob, room).await;
    let mut b2 = app.room_ws(&bob, room).await;
    let j1 = b1.join().await;
    assert_eq!(
        a.recv_type("participant_joined").await["participant"]["participant_id"],
        j1["participant_id"]
    );
    let j2 = b2.join().await;
    assert_ne!(j1["participant_id"], j2["participant_id"]);
    assert_eq!(j2["participants"].as_array().map(Vec::len), Some(2));
    assert_eq!(j2["role"], "member");
    let replaced = a.recv_type("participant_left").await;
    assert_eq!(
        (
            replaced["participant_id"].clone(),
            replaced["reason"].as_str()
        ),
        (j1["participant_id"].clone(), Some("replaced"))
    );
    let p2 = a.recv_type("participant_joined").await;
    assert_eq!(p2["participant"]["participant_id"], j2["participant_id"]);
    assert_eq!(p2["participant"]["username"], "bob");
    let (seen, code) = b1.closed().await;
    assert!(
        seen.iter()
            .any(|m| m["type"] == "participant_left" && m["reason"] == "replaced"),
        "{seen:?}"
    );
    assert_eq!(code, Some(4001));
    // The new tab may hear its predecessor leave (the bus delivers it after its `joined`);
    // nothing else.
    let gone = b2.recv_type("participant_left").await;
    assert_eq!(gone["participant_id"], j1["participant_id"]);
    b2.expect_silence(200).await;

    // An explicit leave and a closed socket both reach the others, with the reason.
    b2.send(json!({"type": "leave", "request_id": "bye"})).await;
    assert_eq!(b2.recv_type("ack").await["request_id"], "bye");
    let left = a.recv_type("participant_left").await;
    assert_eq!(
        (left["participant_id"].clone(), left["reason"].as_str()),
        (j2["participant_id"].clone(), Some("left"))
    );
    // A socket that left may join again.
    let j3 = b2.join().await;
    assert_eq!(j3["participants"].as_array().map(Vec::len), Some(2));
    a.recv_type("participant_joined").await;
    b2.close().await;
    let left = a.recv_type("participant_left").await;
    assert_eq!(
        (left["participant_id"].clone(), left["reason"].as_str()),
        (j3["participant_id"].clone(), Some("closed"))
    );
    let p = wait_presence(&app, &alice, room, "bob", |p| p["in_call"] == false).await;
    assert_eq!(p["participants"], 0);
}

#[tokio::test]
async fn a_client_that_stops_answering_is_dropped_after_the_idle_timeout() {
    let app = spawn_with(&[("WS_IDLE_TIMEOUT_SECS", "1")]).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice, "Call").await;
    app.add_member(&alice, room, "bob", "member").await;
    let mut b = app.room_ws(&bob, room).await;
    b.join().await;
    let bob_user = app.user_ws(&bob).await;
    wait_presence(&app, &alice, room, "bob", |p| {
        p["in_call"] == true && p["online"] == true
    })
    .await;

    // bob's sockets stay open but are never read again: no pongs, as after a crashed tab.
    let started = tokio::time::Instant::now();
    let mut a = app.room_ws(&alice, room).await;
    a.join().await;
    // alice keeps answering pings because she keeps reading.
    let left = a.recv_type("participant_left").await;
    assert_eq!(
        (left["user_id"].as_i64(), left["reason"].as_str()),
        (Some(app.user_id(&bob).await), Some("timeout"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    wait_presence(&app, &alice, room, "bob", |p| {
        p["in_call"] == false && p["online"] == false
    })
    .await;
    let p = presence_of(&app, &alice, room, "alice").await;
    assert_eq!(
        (p["in_call"].as_bool(), p["role"].as_str()),
        (Some(true), Some("owner"))
    );
    drop((b, bob_user));
}

#[tokio::test]
async fn online_means_a_user_socket_is_open_and_dms_arrive_on_it() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice, "Call").await;
    app.add_member(&alice, room, "bob", "member").await;
    let p = presence_of(&app, &alice, room, "bob").await;
    assert_eq!(
        (p["online"].as_bool(), p["in_call"].as_bool()),
        (Some(false), Some(false))
    );

    let mut b = app.user_ws(&bob).await;
    wait_presence(&app, &alice, room, "bob", |p| p["online"] == true).await;
    b.send(json!({"type": "ping", "request_id": "p"})).await;
    assert_eq!(b.recv().await, json!({"type": "pong", "request_id": "p"}));
    // Room commands don't belong on the user socket.
    b.send(json!({"type": "join"})).await;
    assert_eq!(b.recv().await["code"], "wrong_socket");

    let (status, _) = json_of(
        app.post("/api/v1/dm/bob", Some(&alice), json!({"text": "psst"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let dm = b.recv_type("dm").await;
    assert_eq!(
        (
            dm["message"]["sender"].as_str(),
            dm["message"]["text"].as_str()
        ),
        (Some("alice"), Some("psst"))
    );

    b.close().await;
    wait_presence(&app, &alice, room, "bob", |p| p["online"] == false).await;
}

#[tokio::test]
async fn the_openapi_document_lists_the_chat_dm_key_and_websocket_endpoints() {
    let app = spawn_app().await;
    let (_, doc) = json_of(app.get("/api/openapi.json", None).await).await;
    for path in [
        "/api/v1/rooms/{id}/ws",
        "/api/v1/ws",
        "/api/v1/rooms/{id}/messages",
        "/api/v1/rooms/{id}/members/{user_id}",
        "/api/v1/rooms/{id}/presence",
        "/api/v1/keys",
        "/api/v1/keys/{username}",
        "/api/v1/dm",
        "/api/v1/dm/{username}",
        "/api/v1/dm/{username}/read",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
}

/// Two servers on one database and one Redis: a chat message sent on node A reaches a socket
/// on node B, and so does a DM. Runs when `WEBCALL_TEST_REDIS_URL` is set.
#[tokio::test]
async fn two_nodes_on_one_redis_deliver_chat_and_dms_across_nodes() {
    let Some(redis_url) = crate::helpers::shared_redis_url("cross-node delivery") else {
        return;
    };
    let (mut env, _data) = test_env().await;
    env.insert("REDIS_URL".into(), redis_url);
    let node_a = spawn_from(env.clone()).await;
    let node_b = spawn_from(env).await;
    let alice = node_a.register("alice").await;
    let bob = node_a.register("bob").await;
    let room = node_a.create_room(&alice, "Across").await;
    node_a.add_member(&alice, room, "bob", "member").await;

    let mut a = node_a.room_ws(&alice, room).await;
    a.join().await;
    let mut b = node_b.room_ws(&bob, room).await;
    let joined = b.join().await;
    // Node B learned from the bus that alice is in the call on node A.
    let names: Vec<&str> = joined["participants"]
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p["username"].as_str().expect("name"))
        .collect();
    assert!(
        names.contains(&"alice") && names.contains(&"bob"),
        "{joined}"
    );
    assert_eq!(
        a.recv_type("participant_joined").await["participant"]["username"],
        "bob"
    );

    a.send(json!({"type": "chat", "request_id": "x", "text": "hello from A"}))
        .await;
    let got = b.recv_type("chat").await;
    assert_eq!(got["message"]["text"], "hello from A");
    // alice sees her own message first, then bob's from node B.
    assert_eq!(
        a.recv_type("chat").await["message"]["id"],
        got["message"]["id"]
    );
    let via_http = node_b.post_chat(&bob, room, "hello from B").await;
    assert_eq!(a.recv_type("chat").await["message"]["id"], via_http["id"]);

    let mut bob_user = node_b.user_ws(&bob).await;
    // Online is known on the other node too.
    let p = wait_presence(&node_a, &alice, room, "bob", |p| p["online"] == true).await;
    assert_eq!(p["in_call"], true);
    node_a
        .post("/api/v1/dm/bob", Some(&alice), json!({"text": "dm across"}))
        .await;
    assert_eq!(
        bob_user.recv_type("dm").await["message"]["text"],
        "dm across"
    );

    b.close().await;
    assert_eq!(a.recv_type("participant_left").await["reason"], "closed");
}

/// A node killed mid-call (SIGKILL: no goodbye on the bus) leaves no ghost: the other node
/// clears its participants after the heartbeat expiry and tells its sockets. Runs when
/// `WEBCALL_TEST_REDIS_URL` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_call_leaves_no_ghost_on_the_others() {
    let Some(redis_url) = crate::helpers::shared_redis_url("node expiry") else {
        return;
    };
    let (mut env, _data) = test_env().await;
    env.insert("REDIS_URL".into(), redis_url);
    let node_a = spawn_from(env.clone()).await;
    // Node B is the real binary, so that it can be killed like a crashed box.
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node_b, base_b) = crate::binary::serve(dir.path(), &vars).await;

    let alice = node_a.register("alice").await;
    let bob = node_a.register("bob").await;
    let room = node_a.create_room(&alice, "Across").await;
    node_a.add_member(&alice, room, "bob", "member").await;
    let mut a = node_a.room_ws(&alice, room).await;
    a.join().await;
    let mut b = Ws::connect(
        &format!(
            "{}/api/v1/rooms/{room}/ws",
            base_b.replacen("http://", "ws://", 1)
        ),
        &bob,
    )
    .await;
    let joined = b.join().await;
    let bob_participant = joined["participant_id"].clone();
    assert_eq!(
        a.recv_type("participant_joined").await["participant"]["username"],
        "bob"
    );

    node_b.start_kill().expect("SIGKILL");
    let killed = std::time::Instant::now();
    let left = a
        .recv_type_within("participant_left", Duration::from_secs(30))
        .await;
    let after = killed.elapsed();
    eprintln!("node killed: its participant cleared on the other node after {after:?}");
    assert_eq!(left["participant_id"], bob_participant);
    assert_eq!(left["reason"], "timeout");
    assert!(
        after >= Duration::from_secs(10),
        "not before the expiry: {after:?}"
    );
    // A newcomer on node A sees alice only.
    let carol = node_a.register("carol").await;
    node_a.add_member(&alice, room, "carol", "member").await;
    let mut c = node_a.room_ws(&carol, room).await;
    let joined = c.join().await;
    let names: Vec<&str> = joined["participants"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["username"].as_str())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "alice and carol, no ghost of bob: {names:?}"
    );
    assert!(!names.contains(&"bob"));
}
