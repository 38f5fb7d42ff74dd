//! Revocable sessions (logout, password change, account deletion), the 72-byte password
//! rule at login, single-use WebSocket tickets and the `/metrics` token.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    expect_error, json_of, spawn_from, spawn_with, test_env, PASSWORD, REGISTRATION_SECRET,
};

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn me_status(app: &crate::helpers::TestApp, token: &str) -> StatusCode {
    app.get("/api/v1/auth/me", Some(token)).await.status()
}

async fn login_token(app: &crate::helpers::TestApp, name: &str, password: &str) -> String {
    let (status, body) = json_of(app.login(name, password).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn logout_ends_the_presented_token_and_no_other() {
    let app = spawn_with(&[]).await;
    let first = app.register("alice").await;
    let second = login_token(&app, "alice", PASSWORD).await;

    let res = app
        .post("/api/v1/auth/logout", Some(&first), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let err = expect_error(
        app.get("/api/v1/auth/me", Some(&first)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(err["code"], "unauthorized");
    // Logged out once is enough: the token can't even log out again.
    expect_error(
        app.post("/api/v1/auth/logout", Some(&first), json!({}))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(me_status(&app, &second).await, StatusCode::OK);
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_and_returns_a_working_token() {
    let app = spawn_with(&[]).await;
    let first = app.register("alice").await;
    let second = login_token(&app, "alice", PASSWORD).await;

    let (status, body) = json_of(
        app.post(
            "/api/v1/auth/password",
            Some(&second),
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["username"], "alice");
    let fresh = body["token"].as_str().expect("token");

    assert_eq!(me_status(&app, &first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, &second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, fresh).await, StatusCode::OK);
    let err = expect_error(app.login("alice", PASSWORD).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(err["code"], "invalid_credentials");
    login_token(&app, "alice", NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_password_change_with_a_wrong_current_password_or_a_weak_new_one_changes_nothing() {
    let app = spawn_with(&[]).await;
    let token = app.register("alice").await;
    let wrong_login = expect_error(
        app.login("alice", "not the password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let wrong_current = expect_error(
        app.post(
            "/api/v1/auth/password",
            Some(&token),
            json!({"current_password": "not the password", "new_password": NEW_PASSWORD}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(wrong_current, wrong_login, "the same 401 as a failed login");
    let weak = expect_error(
        app.post(
            "/api/v1/auth/password",
            Some(&token),
            json!({"current_password": PASSWORD, "new_password": "password"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(weak["field"], "new_password");
    assert_eq!(me_status(&app, &token).await, StatusCode::OK);
    login_token(&app, "alice", PASSWORD).await;
}

#[tokio::test]
async fn a_login_password_over_72_bytes_is_wrong_even_when_its_first_72_bytes_are_right() {
    let app = spawn_with(&[]).await;
    let exact = "seventy-two bytes of passphrase, which is what bcrypt reads at most.....";
    assert_eq!(exact.len(), 72);
    let (status, body) = json_of(app.register_raw("alice", exact, REGISTRATION_SECRET).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    login_token(&app, "alice", exact).await;

    let wrong = expect_error(
        app.login("alice", "not the password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let longer = expect_error(
        app.login("alice", &format!("{exact}and anything after it"))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(longer, wrong);
}

#[tokio::test]
async fn deleting_the_account_ends_its_tokens_and_hands_shared_rooms_over() {
    let app = spawn_with(&[]).await;
    let (shared, tokens) = app.room_with(&["alice", "bob", "carol"]).await;
    let (alice, bob, carol) = (&tokens[0], &tokens[1], &tokens[2]);
    // carol is made a moderator after bob joined: a moderator inherits before a member.
    let carol_id = app.user_id(carol).await;
    let res = app
        .request(
            Method::PATCH,
            &format!("/api/v1/rooms/{shared}/members/{carol_id}"),
            Some(alice),
        )
        .json(&json!({"role": "moderator"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let solo = app.create_room(alice, "Solo").await;
    app.post_chat(alice, shared, "from alice").await;
    app.post_chat(bob, shared, "from bob").await;
    let second_alice = login_token(&app, "alice", PASSWORD).await;
    let mut alice_socket = app.room_ws(alice, shared).await;
    alice_socket.join().await;

    let delete = |password: &str| {
        app.request(Method::DELETE, "/api/v1/auth/me", Some(alice))
            .json(&json!({"password": password}))
            .send()
    };
    let wrong = delete("not the password").await.expect("request");
    assert_eq!(
        expect_error(wrong, StatusCode::UNAUTHORIZED).await["code"],
        "invalid_credentials"
    );
    assert_eq!(me_status(&app, alice).await, StatusCode::OK);

    let res = delete(PASSWORD).await.expect("request");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Every token of the account stops at once, and its open room socket is closed.
    assert_eq!(me_status(&app, alice).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me_status(&app, &second_alice).await,
        StatusCode::UNAUTHORIZED
    );
    // Removed from its rooms and signed out at once: either code says "don't reconnect".
    let code = alice_socket.closed().await.1;
    assert!(matches!(code, Some(4003 | 4005)), "{code:?}");
    expect_error(app.login("alice", PASSWORD).await, StatusCode::UNAUTHORIZED).await;

    // The shared room lives on, owned by the moderator, with the others' messages.
    let (status, room) = json_of(
        app.get(&format!("/api/v1/rooms/{shared}"), Some(carol))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(
        (room["role"].as_str(), room["owner_id"].as_i64()),
        (Some("owner"), Some(carol_id))
    );
    let (_, members) = json_of(
        app.get(&format!("/api/v1/rooms/{shared}/members"), Some(bob))
            .await,
    )
    .await;
    let names: Vec<&str> = members
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["username"].as_str())
        .collect();
    assert_eq!(names, ["carol", "bob"]);
    let (_, history) = json_of(
        app.get(&format!("/api/v1/rooms/{shared}/messages"), Some(bob))
            .await,
    )
    .await;
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["from bob"]);

    // The name is free again, and the new alice inherits nothing: the solo room is gone.
    let new_alice = app.register("alice").await;
    let (_, rooms) = json_of(app.get("/api/v1/rooms", Some(&new_alice)).await).await;
    assert_eq!(rooms, json!([]));
    expect_error(
        app.get(&format!("/api/v1/rooms/{solo}"), Some(&new_alice))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_ws_ticket_opens_one_socket_once() {
    let app = spawn_with(&[]).await;
    let (room, tokens) = app.room_with(&["alice"]).await;
    let alice = &tokens[0];

    let (status, body) = json_of(app.post("/api/v1/ws-ticket", Some(alice), json!({})).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 30);
    let ticket = body["ticket"].as_str().expect("ticket");
    let path = format!("/api/v1/rooms/{room}/ws");
    let mut socket = app.ws_with_ticket(&path, ticket).await;
    assert_eq!(socket.join().await["role"], "owner");

    let (status, body) = app
        .ws_refused(&format!("{path}?ticket={ticket}"), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = app.ws_refused("/api/v1/ws?ticket=made-up", None).await;
    assert_eq!(status, 401);
    // The user socket takes tickets too.
    let ticket = app.ws_ticket(alice).await;
    let mut user = app.ws_with_ticket("/api/v1/ws", &ticket).await;
    user.send(json!({"type": "ping"})).await;
    user.recv_type("pong").await;
    // Only a signed-in user gets one.
    expect_error(
        app.post("/api/v1/ws-ticket", None, json!({})).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn an_expired_ws_ticket_or_one_of_a_logged_out_token_is_refused() {
    let app = spawn_with(&[("WS_TICKET_TTL_SECS", "1")]).await;
    let alice = app.register("alice").await;
    let expired = app.ws_ticket(&alice).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = app
        .ws_refused(&format!("/api/v1/ws?ticket={expired}"), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );

    let ticket = app.ws_ticket(&alice).await;
    let res = app
        .post("/api/v1/auth/logout", Some(&alice), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (status, _) = app
        .ws_refused(&format!("/api/v1/ws?ticket={ticket}"), None)
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_jwt_in_the_websocket_url_is_refused_with_a_pointer_to_tickets() {
    let app = spawn_with(&[]).await;
    let (room, tokens) = app.room_with(&["alice"]).await;
    for path in [format!("/api/v1/rooms/{room}/ws"), "/api/v1/ws".to_owned()] {
        let (status, body) = app
            .ws_refused(&format!("{path}?token={}", tokens[0]), None)
            .await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["error"]["code"], "ws_ticket_required", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("/api/v1/ws-ticket")),
            "{body}"
        );
    }
}

/// A ticket is single use across nodes: it lives in the shared Redis. Runs when
/// `WEBCALL_TEST_REDIS_URL` is set.
#[tokio::test]
async fn a_ws_ticket_issued_on_one_node_is_used_once_on_any() {
    let Some(redis_url) = crate::helpers::shared_redis_url("cross-node tickets") else {
        return;
    };
    let (mut env, _data) = test_env().await;
    env.insert("REDIS_URL".into(), redis_url);
    let node_a = spawn_from(env.clone()).await;
    let node_b = spawn_from(env).await;
    let alice = node_a.register("alice").await;
    let ticket = node_a.ws_ticket(&alice).await;
    let mut socket = node_b.ws_with_ticket("/api/v1/ws", &ticket).await;
    socket.send(json!({"type": "ping"})).await;
    socket.recv_type("pong").await;
    for node in [&node_a, &node_b] {
        let (status, _) = node
            .ws_refused(&format!("/api/v1/ws?ticket={ticket}"), None)
            .await;
        assert_eq!(status, 401);
    }
}

#[tokio::test]
async fn metrics_want_the_metrics_token_when_one_is_set() {
    let secret = "metrics-token-for-the-test";
    let app = spawn_with(&[("METRICS_TOKEN", secret)]).await;
    let scrape = |bearer: Option<&'static str>| app.get("/metrics", bearer);
    let err = expect_error(scrape(None).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(err["code"], "unauthorized");
    expect_error(
        scrape(Some("metrics-token-for-the-tesT")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // A user's session token is no metrics token.
    let user = app.register("alice").await;
    expect_error(
        app.get("/metrics", Some(&user)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let res = scrape(Some(secret)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("body");
    assert!(text.contains("http_requests_total"), "{text}");
}

#[tokio::test]
async fn metrics_stay_open_without_a_metrics_token() {
    let app = spawn_with(&[]).await;
    app.get("/healthz", None).await;
    let res = app.get("/metrics", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .text()
        .await
        .expect("body")
        .contains("http_requests_total"));
}

#[tokio::test]
async fn the_openapi_document_describes_the_session_endpoints_and_their_refusals() {
    let app = spawn_with(&[]).await;
    let (_, doc) = json_of(app.get("/api/openapi.json", None).await).await;
    for (path, method, statuses) in [
        ("/api/v1/auth/logout", "post", &["204", "401"][..]),
        (
            "/api/v1/auth/password",
            "post",
            &["200", "401", "422", "429", "503"],
        ),
        (
            "/api/v1/auth/me",
            "delete",
            &["204", "401", "422", "429", "503"],
        ),
        ("/api/v1/auth/login", "post", &["200", "401", "429", "503"]),
        ("/api/v1/ws-ticket", "post", &["200", "401", "503"]),
        ("/metrics", "get", &["200", "401"]),
    ] {
        let responses = &doc["paths"][path][method]["responses"];
        for status in statuses {
            assert!(
                responses.get(status).is_some(),
                "{method} {path} documents {status}: {responses}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_session_closes_its_open_sockets_and_leaves_the_others() {
    let app = spawn_with(&[]).await;
    let laptop = app.register("alice").await;
    let phone = login_token(&app, "alice", PASSWORD).await;
    let tablet = login_token(&app, "alice", PASSWORD).await;
    let bob = app.register("bob").await;
    let room = app.create_room(&laptop, "standup").await;
    app.add_member(&laptop, room, "bob", "member").await;
    let mut bob_room = app.room_ws(&bob, room).await;
    bob_room.join().await;

    // The laptop is in the call and has its DM socket open; the phone has its DM socket, the
    // tablet the room open (one call presence per user: only the laptop joins).
    let mut laptop_room = app.room_ws(&laptop, room).await;
    laptop_room.join().await;
    let mut laptop_user = app.user_ws(&laptop).await;
    let mut phone_user = app.user_ws(&phone).await;
    let mut tablet_room = app.room_ws(&tablet, room).await;

    // Signing out on the laptop closes the laptop's sockets, at once, and only those.
    let res = app
        .post("/api/v1/auth/logout", Some(&laptop), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(laptop_room.closed().await.1, Some(4005));
    assert_eq!(laptop_user.closed().await.1, Some(4005));
    let left = bob_room.recv_type("participant_left").await;
    assert_eq!(left["user_id"], app.user_id(&phone).await);
    for (socket, id) in [(&mut phone_user, "p"), (&mut tablet_room, "t")] {
        socket.send(json!({"type": "ping", "request_id": id})).await;
        socket.recv_type("pong").await;
    }

    // A password change on the tablet ends the phone's session; the tablet's socket goes on.
    let (status, body) = json_of(
        app.post(
            "/api/v1/auth/password",
            Some(&tablet),
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(phone_user.closed().await.1, Some(4005));
    tablet_room
        .send(json!({"type": "ping", "request_id": "t2"}))
        .await;
    tablet_room.recv_type("pong").await;

    // Deleting the account closes everything it still has open.
    let fresh = body["token"].as_str().expect("token").to_owned();
    let mut fresh_user = app.user_ws(&fresh).await;
    let res = app
        .request(Method::DELETE, "/api/v1/auth/me", Some(&fresh))
        .json(&json!({"password": NEW_PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(fresh_user.closed().await.1, Some(4005));
    // Removed from the room and signed out at once: either code says "don't reconnect".
    let code = tablet_room.closed().await.1;
    assert!(matches!(code, Some(4003 | 4005)), "{code:?}");
}
