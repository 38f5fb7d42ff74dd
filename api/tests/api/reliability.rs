//! One client can't hurt the others (issue 14): slow or idle HTTP connections, stalled
//! WebSockets, floods of sockets and messages, a deleted room's call, shutdown deadlines and
//! a Redis bus that comes back.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{json_of, spawn_with, TestApp};
use crate::private_redis::PrivateRedis;

async fn raw(app: &TestApp) -> TcpStream {
    let addr = app.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection; how long that took, or `None` past `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_all)
        .await
        .ok()
        .map(|()| started.elapsed())
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed_after_the_header_timeout() {
    let app = spawn_with(&[("HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut slow = raw(&app).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let took = closed_within(&mut slow, Duration::from_secs(5))
        .await
        .expect("closed by the server, not left open");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let app = spawn_with(&[("HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut idle = raw(&app).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut idle, Duration::from_secs(5))
            .await
            .is_some(),
        "an idle keep-alive connection is not kept forever"
    );
    app.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let app = spawn_with(&[
        ("HTTP_MAX_CONNECTIONS", "2"),
        ("HTTP_HEADER_TIMEOUT_SECS", "30"),
    ])
    .await;
    let first = raw(&app).await;
    let _second = raw(&app).await;
    // Give the server a moment to accept both.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waited = tokio::time::timeout(
        Duration::from_millis(800),
        app.client.get(app.url("/healthz")).send(),
    )
    .await;
    assert!(
        waited.is_err(),
        "a third connection is not served while two are held"
    );
    drop(first);
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        app.client.get(app.url("/healthz")).send(),
    )
    .await
    .expect("served once a place is free")
    .expect("response");
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn shutdown_is_not_held_by_a_slowloris_connection() {
    let app = spawn_with(&[
        ("HTTP_HEADER_TIMEOUT_SECS", "120"),
        ("SHUTDOWN_TIMEOUT_SECS", "1"),
    ])
    .await;
    let mut slow = raw(&app).await;
    slow.write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("the server stops by its deadline");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_user_cannot_hold_more_sockets_than_the_cap_and_a_closed_one_frees_its_place() {
    let app = spawn_with(&[("WS_MAX_SOCKETS_PER_USER", "2")]).await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let a1 = app.room_ws(&tokens[0], room).await;
    let _a2 = app.room_ws(&tokens[0], room).await;
    let path = format!("/api/v1/rooms/{room}/ws");
    let (status, body) = app.ws_refused(&path, Some(&tokens[0])).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_sockets");
    // Another user is not affected, nor alice's user sockets.
    let _b = app.room_ws(&tokens[1], room).await;
    let _u = app.user_ws(&tokens[0]).await;
    a1.close().await;
    let mut again = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let url = app.ws_url(&path);
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", tokens[0]).parse().expect("header"),
        );
        if let Ok(socket) = tokio_tungstenite::connect_async(req).await {
            again = Some(socket);
            break;
        }
    }
    assert!(again.is_some(), "the closed socket's place is free again");
    assert!(app.metrics().await.contains("ws_sockets_refused_total"));
    app.stop().await;
}

#[tokio::test]
async fn a_flood_of_joins_is_refused_with_rate_limited_and_counted() {
    let app = spawn_with(&[]).await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let mut alice = app.room_ws(&tokens[0], room).await;
    let mut codes = Vec::new();
    let started = Instant::now();
    for i in 0..15 {
        alice
            .send(json!({"type": "join", "request_id": format!("j{i}")}))
            .await;
        let reply = alice.recv().await;
        let code = reply["code"]
            .as_str()
            .unwrap_or(reply["type"].as_str().unwrap_or_default())
            .to_owned();
        if code == "joined" {
            alice.send(json!({"type": "leave"})).await;
            assert_eq!(alice.recv().await["type"], "ack");
        }
        codes.push(code);
    }
    // The join budget is a burst of 10 refilled at one every 2 s: on a loaded machine the
    // 15 round trips (each join touches the database) may earn a refill or two, never more.
    let refills = (started.elapsed().as_secs_f64() / 2.0).floor() as usize;
    let joined = codes.iter().filter(|c| *c == "joined").count();
    assert!(
        (10..=10 + refills).contains(&joined),
        "{joined} joins in {:?}: {codes:?}",
        started.elapsed()
    );
    assert!(codes[..10].iter().all(|c| c == "joined"), "{codes:?}");
    assert_eq!(
        codes.iter().filter(|c| *c == "rate_limited").count(),
        15 - joined,
        "{codes:?}"
    );
    if refills < 5 {
        assert!(codes.contains(&"rate_limited".to_owned()), "{codes:?}");
    }
    // Bob's budget is his own.
    let mut bob = app.room_ws(&tokens[1], room).await;
    assert_eq!(bob.join().await["type"], "joined");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"ws_messages_refused_total{type="join",reason="rate_limited"}"#)
            || metrics.contains(r#"ws_messages_refused_total{reason="rate_limited",type="join"}"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_room_ends_its_call_for_everyone_at_once() {
    let app = spawn_with(&[]).await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let mut bob = app.room_ws(&tokens[1], room).await;
    bob.join().await;
    let mut watcher = app.room_ws(&tokens[1], room).await;
    let res = app
        .delete(&format!("/api/v1/rooms/{room}"), Some(&tokens[0]))
        .await;
    assert_eq!(res.status(), 204);
    // Straight after the deletion, an offer gets no answer: the call is over.
    bob.send(json!({"type": "offer", "request_id": "o", "sdp": "v=0\r\n"}))
        .await;
    let (seen, code) = bob.closed().await;
    assert_eq!(code, Some(4004), "{seen:?}");
    assert!(seen.iter().any(|m| m["type"] == "room_deleted"), "{seen:?}");
    assert!(!seen.iter().any(|m| m["type"] == "answer"), "{seen:?}");
    // A socket not in the call is closed too.
    let (_, code) = watcher.closed().await;
    assert_eq!(code, Some(4004));
    let (status, _) = json_of(
        app.get(&format!("/api/v1/rooms/{room}/members"), Some(&tokens[1]))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

async fn chat_arrives(ws: &mut crate::helpers::Ws, text: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let Ok(message) = tokio::time::timeout(left, ws.recv_type("chat")).await else {
            return false;
        };
        if message["message"]["text"] == text {
            return true;
        }
    }
}

#[tokio::test]
async fn after_redis_restarts_the_nodes_hear_each_other_again_without_a_hand() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let port = redis.port;
    let url = format!("redis://127.0.0.1:{port}");
    let node1 = spawn_with(&[("REDIS_URL", &url)]).await;
    let node2 = crate::helpers::spawn_from(node1.env.clone()).await;
    let (room, tokens) = node1.room_with(&["alice", "bob"]).await;
    let mut bob = node2.room_ws(&tokens[1], room).await;
    bob.join().await;
    node1.post_chat(&tokens[0], room, "before").await;
    assert!(chat_arrives(&mut bob, "before", Duration::from_secs(5)).await);

    redis.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut redis = PrivateRedis::start_on(port)
        .await
        .expect("redis starts again");
    // The subscriber reconnects by itself (backoff up to 5 s); chat sent after that crosses.
    let mut crossed = false;
    for i in 0..20 {
        let text = format!("after {i}");
        let res = node1
            .post(
                &format!("/api/v1/rooms/{room}/messages"),
                Some(&tokens[0]),
                json!({ "text": text }),
            )
            .await;
        if res.status() == 201 && chat_arrives(&mut bob, &text, Duration::from_millis(700)).await {
            crossed = true;
            break;
        }
    }
    assert!(crossed, "chat crosses nodes again after Redis came back");
    let metrics: String = node2.metrics().await;
    assert!(metrics.contains("bus_reconnects_total"), "{metrics}");
    node2.stop().await;
    node1.stop().await;
    redis.stop().await;
}
