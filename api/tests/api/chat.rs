//! Room chat over the room WebSocket and HTTP: acks, one order, history, catch-up, limits.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{expect_error, json_of, spawn_app, spawn_with, TestApp};

/// alice owns a room with bob as a member; returns (alice, bob, room).
async fn room_with_two(app: &TestApp) -> (String, String, i64) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice, "Standup").await;
    let (status, body) = app.add_member(&alice, room, "bob", "member").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (alice, bob, room)
}

fn ids(messages: &[Value]) -> Vec<i64> {
    messages
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test]
async fn chat_is_acked_stored_and_delivered_to_everyone_once_in_one_order() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let mut a = app.room_ws(&alice, room).await;
    let mut b = app.room_ws(&bob, room).await;
    a.join().await;
    b.join().await;
    a.recv_type("participant_joined").await;

    // Interleave WebSocket sends by alice with HTTP posts by bob.
    let mut acked = Vec::new();
    for i in 0..5 {
        a.send(json!({"type": "chat", "request_id": format!("r{i}"), "text": format!("ws {i}")}))
            .await;
        app.post_chat(&bob, room, &format!("http {i}")).await;
    }
    let mut seen_by_alice = Vec::new();
    while seen_by_alice.len() < 10 || acked.len() < 5 {
        let m = a.recv().await;
        match m["type"].as_str() {
            Some("ack") => {
                assert!(
                    m["message_id"].as_i64().is_some() && m["created_at"].is_string(),
                    "{m}"
                );
                acked.push(m["request_id"].as_str().expect("request id").to_owned());
            }
            Some("chat") => seen_by_alice.push(m["message"].clone()),
            _ => panic!("unexpected {m}"),
        }
    }
    assert_eq!(acked, ["r0", "r1", "r2", "r3", "r4"]);
    let mut seen_by_bob = Vec::new();
    for _ in 0..10 {
        seen_by_bob.push(b.recv_type("chat").await["message"].clone());
    }
    // Once each, the same order for everyone, and that order is the id order.
    assert_eq!(seen_by_alice, seen_by_bob);
    let order = ids(&seen_by_alice);
    let mut sorted = order.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(order, sorted, "one order, no duplicates");
    a.expect_silence(200).await;
    b.expect_silence(200).await;

    // History is the same messages, newest first.
    let (status, history) = json_of(
        app.get(&format!("/api/v1/rooms/{room}/messages"), Some(&alice))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut newest_first = ids(history["messages"].as_array().expect("messages"));
    newest_first.reverse();
    assert_eq!(newest_first, order);
    assert_eq!(history["has_more"], false);
    // Alice's socket messages and Bob's HTTP posts interleave; whoever was stored last is first.
    let last = seen_by_alice.last().expect("messages");
    assert_eq!(history["messages"][0]["username"], last["username"]);
}

#[tokio::test]
async fn a_client_that_reconnects_gets_what_it_missed_with_after() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let mut b = app.room_ws(&bob, room).await;
    b.join().await;
    let first = app.post_chat(&alice, room, "one").await;
    assert_eq!(b.recv_type("chat").await["message"]["id"], first["id"]);
    b.close().await;

    app.post_chat(&alice, room, "two").await;
    app.post_chat(&alice, room, "three").await;

    let mut b = app.room_ws(&bob, room).await;
    b.join().await;
    b.send(json!({"type": "sync", "request_id": "s", "after": first["id"]}))
        .await;
    let history = b.recv_type("history").await;
    assert_eq!(history["request_id"], "s");
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["text"].as_str().expect("text"))
        .collect();
    assert_eq!(texts, ["two", "three"], "oldest first, nothing lost");

    // The same over HTTP, paged.
    let (_, page) = json_of(
        app.get(
            &format!(
                "/api/v1/rooms/{room}/messages?after={}&limit=1",
                first["id"]
            ),
            Some(&bob),
        )
        .await,
    )
    .await;
    assert_eq!(page["messages"][0]["text"], "two");
    assert_eq!(page["has_more"], true);
}

#[tokio::test]
async fn history_pages_newest_first_with_a_capped_limit_for_members_only() {
    let app = spawn_app().await;
    let (alice, _bob, room) = room_with_two(&app).await;
    let eve = app.register("eve").await;
    let mut posted = Vec::new();
    for i in 0..5 {
        posted.push(
            app.post_chat(&alice, room, &format!("m{i}")).await["id"]
                .as_i64()
                .expect("id"),
        );
    }
    let path = format!("/api/v1/rooms/{room}/messages");
    let (_, page) = json_of(app.get(&format!("{path}?limit=2"), Some(&alice)).await).await;
    assert_eq!(
        ids(page["messages"].as_array().expect("array")),
        [posted[4], posted[3]]
    );
    assert_eq!(page["has_more"], true);
    let (_, page) = json_of(
        app.get(
            &format!("{path}?limit=2&before={}", posted[3]),
            Some(&alice),
        )
        .await,
    )
    .await;
    assert_eq!(
        ids(page["messages"].as_array().expect("array")),
        [posted[2], posted[1]]
    );
    let (status, page) =
        json_of(app.get(&format!("{path}?limit=100000"), Some(&alice)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(5));

    expect_error(app.get(&path, Some(&eve)).await, StatusCode::NOT_FOUND).await;
    expect_error(
        app.post(&path, Some(&eve), json!({"text": "hi"})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_error(
        app.get(&format!("{path}?before=3&after=1"), Some(&alice))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect_error(app.get(&path, None).await, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn blank_oversized_and_control_messages_are_refused_and_html_is_kept_as_text() {
    let app = spawn_app().await;
    let (alice, _bob, room) = room_with_two(&app).await;
    let path = format!("/api/v1/rooms/{room}/messages");
    for bad in ["", "   \n\t", &"x".repeat(4001), "bell\u{7}"] {
        let err = expect_error(
            app.post(&path, Some(&alice), json!({ "text": bad })).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(
            (err["code"].as_str(), err["field"].as_str()),
            (Some("validation_failed"), Some("text"))
        );
    }
    let html = "<img src=x onerror=alert(1)> & <b>bold</b>";
    let stored = app.post_chat(&alice, room, html).await;
    assert_eq!(stored["text"], html);
    let res = app.get(&path, Some(&alice)).await;
    assert!(res.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("application/json"));
    let (_, page) = json_of(res).await;
    assert_eq!(page["messages"][0]["text"], html);

    // The same rules over the WebSocket, with the request id echoed.
    let mut a = app.room_ws(&alice, room).await;
    a.join().await;
    a.send(json!({"type": "chat", "request_id": "big", "text": "y".repeat(4001)}))
        .await;
    let err = a.recv_type("error").await;
    assert_eq!(
        (err["code"].as_str(), err["request_id"].as_str()),
        (Some("validation_failed"), Some("big"))
    );
}

#[tokio::test]
async fn chat_over_the_per_user_limit_is_refused_on_http_and_websocket() {
    let app = spawn_with(&[("RATE_LIMIT_CHAT", "3"), ("REDIS_URL", "")]).await;
    let (alice, bob, room) = room_with_two(&app).await;
    for i in 0..3 {
        app.post_chat(&alice, room, &format!("{i}")).await;
    }
    let res = app
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&alice),
            json!({"text": "one too many"}),
        )
        .await;
    assert!(res.headers().contains_key("retry-after"));
    expect_error(res, StatusCode::TOO_MANY_REQUESTS).await;
    let mut a = app.room_ws(&alice, room).await;
    a.join().await;
    a.send(json!({"type": "chat", "request_id": "x", "text": "again"}))
        .await;
    assert_eq!(a.recv_type("error").await["code"], "rate_limited");
    // The budget is per user: bob still talks.
    app.post_chat(&bob, room, "hello").await;
}

#[tokio::test]
async fn bad_frames_get_errors_without_disturbing_anyone_and_abuse_closes_the_socket() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let mut a = app.room_ws(&alice, room).await;
    let mut b = app.room_ws(&bob, room).await;
    b.join().await;

    a.send(json!({"type": "chat", "request_id": "early", "text": "hi"}))
        .await;
    let err = a.recv().await;
    assert_eq!(
        (err["code"].as_str(), err["request_id"].as_str()),
        (Some("not_joined"), Some("early"))
    );
    a.send_text("{not json").await;
    assert_eq!(a.recv().await["code"], "malformed_json");
    a.send(json!({"type": "teleport"})).await;
    assert_eq!(a.recv().await["code"], "unknown_type");
    a.send(json!({"type": "chat"})).await;
    assert_eq!(a.recv().await["code"], "invalid_message");
    a.send_text(json!({"type": "chat", "text": "z".repeat(70_000)}).to_string())
        .await;
    assert_eq!(a.recv().await["code"], "frame_too_large");
    b.expect_silence(200).await;

    // The socket still works.
    a.join().await;
    a.send(json!({"type": "chat", "text": "fine now"})).await;
    assert_eq!(b.recv_type("chat").await["message"]["text"], "fine now");

    for _ in 0..30 {
        a.send_text("garbage").await;
    }
    let (_, code) = a.closed().await;
    assert_eq!(code, Some(1008), "policy violation");
    // alice's participant is gone; bob is fine.
    let left = b.recv_type("participant_left").await;
    assert_eq!(left["reason"], "closed");
}
