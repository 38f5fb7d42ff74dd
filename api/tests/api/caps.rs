//! What one signed-in user may hold or ask for (docs/security.md, "Signed-in users: caps and
//! budgets"): public keys, invites, rooms, a call's participants, model-written summaries.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::dm::put_key;
use crate::helpers::{expect_error, json_of, spawn_with, TestApp};

/// A fresh P-256 public key as WebCrypto exports it.
fn public_jwk() -> Value {
    crate::dm::keypair().1
}

#[tokio::test]
async fn a_user_keeps_only_the_newest_keys_and_get_keys_lists_no_more() {
    let app = spawn_with(&[("E2EE_KEYS_PER_USER", "3"), ("RATE_LIMIT_KEYS", "1000")]).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    for n in 1..=5 {
        let (status, body) = put_key(&app, &alice, &format!("k{n}"), &public_jwk()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, keys) = json_of(app.get("/api/v1/keys/alice", Some(&bob)).await).await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let ids: Vec<&str> = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["key_id"].as_str().expect("key id"))
        .collect();
    assert_eq!(ids, ["k5", "k4", "k3"], "{keys}");
    assert_eq!(keys["current"]["key_id"], "k5");
    // The rows are gone, not only hidden: the oldest can't be looked up any more.
    let store = app.store().await;
    let alice_id = app.user_id(&alice).await;
    assert!(store.key(alice_id, "k1").await.expect("query").is_none());
    assert!(store.key(alice_id, "k3").await.expect("query").is_some());
}

#[tokio::test]
async fn publishing_new_keys_is_rate_limited_and_resending_a_published_key_is_free() {
    let app = spawn_with(&[("RATE_LIMIT_KEYS", "2")]).await;
    let alice = app.register("alice").await;
    let first = public_jwk();
    for (id, jwk) in [("k1", &first), ("k2", &public_jwk())] {
        let (status, body) = put_key(&app, &alice, id, jwk).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let res = app
        .request(Method::PUT, "/api/v1/keys", Some(&alice))
        .json(&json!({ "key_id": "k3", "jwk": public_jwk() }))
        .send()
        .await
        .expect("send");
    assert!(res.headers().contains_key("retry-after"));
    let error = expect_error(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(error["code"], "rate_limited", "{error}");
    // What the web app does on every start: re-send its key. That costs nothing.
    for _ in 0..3 {
        let (status, body) = put_key(&app, &alice, "k1", &first).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

async fn invite(app: &TestApp, token: &str, room: i64, username: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/rooms/{room}/invites"),
        Some(token),
        json!({ "username": username }),
    )
    .await
}

async fn invite_id(app: &TestApp, token: &str, room: i64, username: &str) -> String {
    let (status, body) = json_of(invite(app, token, room, username).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

async fn accept(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/invites/{id}/accept"),
        Some(token),
        json!({}),
    )
    .await
}

async fn is_member(app: &TestApp, token: &str, room: i64) -> bool {
    app.get(&format!("/api/v1/rooms/{room}"), Some(token))
        .await
        .status()
        == StatusCode::OK
}

#[tokio::test]
async fn a_member_cannot_invite_back_someone_a_moderator_removed_but_a_moderator_can() {
    let app = spawn_with(&[("RATE_LIMIT_INVITE", "1000")]).await;
    let (room, tokens) = app.room_with(&["alice", "bob", "carol"]).await;
    let (alice, bob, carol) = (&tokens[0], &tokens[1], &tokens[2]);
    let carol_id = app.user_id(carol).await;
    let res = app
        .delete(
            &format!("/api/v1/rooms/{room}/members/{carol_id}"),
            Some(alice),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    let error = expect_error(
        invite(&app, bob, room, "carol").await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(error["code"], "forbidden", "{error}");
    assert!(!is_member(&app, carol, room).await);

    // The owner can bring her back, and then she is an ordinary member again: a later
    // removal is sticky again, an invite from bob after that is refused again.
    let id = invite_id(&app, alice, room, "carol").await;
    assert_eq!(accept(&app, carol, &id).await.status(), StatusCode::OK);
    assert!(is_member(&app, carol, room).await);
    let res = app
        .delete(
            &format!("/api/v1/rooms/{room}/members/{carol_id}"),
            Some(alice),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_error(
        invite(&app, bob, room, "carol").await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // Adding her (a moderator's or the owner's act) lifts the removal too.
    let (status, body) = app.add_member(alice, room, "carol", "member").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(is_member(&app, carol, room).await);
}

#[tokio::test]
async fn an_invite_from_a_member_pending_when_a_moderator_removes_the_callee_cannot_be_accepted() {
    let app = spawn_with(&[("RATE_LIMIT_INVITE", "1000")]).await;
    let (room, tokens) = app.room_with(&["alice", "bob", "carol"]).await;
    let (alice, bob, carol) = (&tokens[0], &tokens[1], &tokens[2]);
    let carol_id = app.user_id(carol).await;
    // Bob rings carol into the call (she is a member), then the owner removes her.
    let id = invite_id(&app, bob, room, "carol").await;
    let res = app
        .delete(
            &format!("/api/v1/rooms/{room}/members/{carol_id}"),
            Some(alice),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_error(accept(&app, carol, &id).await, StatusCode::FORBIDDEN).await;
    assert!(!is_member(&app, carol, room).await);
    // The refused invite is over, not left ringing.
    let (_, pending) = json_of(app.get("/api/v1/invites", Some(carol)).await).await;
    assert_eq!(pending["incoming"], json!([]), "{pending}");
}

#[tokio::test]
async fn invites_have_their_own_per_user_budget_tighter_than_chat() {
    let app = spawn_with(&[("RATE_LIMIT_INVITE", "2")]).await;
    let (room, tokens) = app.room_with(&["alice"]).await;
    for name in ["bob", "carol", "dave"] {
        app.register(name).await;
    }
    for name in ["bob", "carol"] {
        invite_id(&app, &tokens[0], room, name).await;
    }
    let error = expect_error(
        invite(&app, &tokens[0], room, "dave").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(error["code"], "rate_limited");
    // Chat has a budget of its own, untouched.
    let (status, body) = json_of(
        app.post(
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&tokens[0]),
            json!({"text": "still here"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_user_owns_at_most_max_rooms_per_user_and_is_told_so() {
    let app = spawn_with(&[("MAX_ROOMS_PER_USER", "2")]).await;
    let alice = app.register("alice").await;
    let first = app.create_room(&alice, "One").await;
    app.create_room(&alice, "Two").await;
    let error = expect_error(
        app.post("/api/v1/rooms", Some(&alice), json!({"name": "Three"}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(error["code"], "room_limit", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("MAX_ROOMS_PER_USER")),
        "{error}"
    );
    let res = app
        .delete(&format!("/api/v1/rooms/{first}"), Some(&alice))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    app.create_room(&alice, "Three").await;
}

/// The `before` of a `Link: <…?before=ID&limit=N>; rel="next"` header.
fn next_page(res: &reqwest::Response) -> Option<String> {
    let link = res.headers().get("link")?.to_str().expect("ascii");
    assert!(link.ends_with("rel=\"next\""), "{link}");
    let url = link.trim_start_matches('<').split('>').next()?;
    Some(url.to_owned())
}

#[tokio::test]
async fn get_rooms_pages_with_a_next_link_and_without_parameters_still_lists_a_bare_array() {
    let app = spawn_with(&[]).await;
    let alice = app.register("alice").await;
    let mut made = Vec::new();
    for n in 0..5 {
        made.push(app.create_room(&alice, &format!("Room {n}")).await);
    }
    made.reverse();
    // What the web app asks: no parameters, a bare array, newest first.
    let (status, all) = json_of(app.get("/api/v1/rooms", Some(&alice)).await).await;
    assert_eq!(status, StatusCode::OK);
    let ids = |page: &Value| -> Vec<i64> {
        page.as_array()
            .expect("an array")
            .iter()
            .map(|r| r["id"].as_i64().expect("id"))
            .collect()
    };
    assert_eq!(ids(&all), made);

    let mut seen = Vec::new();
    let mut url = "/api/v1/rooms?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let res = app.get(&url, Some(&alice)).await;
        let next = next_page(&res);
        let (status, page) = json_of(res).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(ids(&page).len() <= 2);
        seen.extend(ids(&page));
        pages += 1;
        match next {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!((seen, pages), (made, 3));
}

#[tokio::test]
async fn the_next_joiner_of_a_full_call_gets_room_full_and_a_rejoin_still_fits() {
    let app = spawn_with(&[("ROOM_MAX_PARTICIPANTS", "2")]).await;
    let (room, tokens) = app.room_with(&["alice", "bob", "carol"]).await;
    let mut alice = app.room_ws(&tokens[0], room).await;
    alice.join().await;
    let mut bob = app.room_ws(&tokens[1], room).await;
    bob.join().await;
    let mut carol = app.room_ws(&tokens[2], room).await;
    carol
        .send(json!({"type": "join", "request_id": "j1"}))
        .await;
    let err = carol.recv_type("error").await;
    assert_eq!(
        (err["code"].as_str(), err["request_id"].as_str()),
        (Some("room_full"), Some("j1")),
        "{err}"
    );
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("full")),
        "{err}"
    );
    // Bob's second tab replaces his first participant: the call still holds two.
    let mut bob_again = app.room_ws(&tokens[1], room).await;
    bob_again.join().await;
}

/// An agent session of `room` that started a minute ago and heard `text` from `user`.
async fn seed_session(app: &TestApp, room: i64, user: i64, text: &str) {
    let store = app.store().await;
    let started = api::db::now_millis() - 60_000;
    let session = store
        .open_agent_session(room, user, started)
        .await
        .expect("session");
    store
        .insert_segment(
            &api::db::NewSegment {
                room_id: room,
                session_id: Some(session.id),
                user_id: user,
                participant_id: 1,
                start_ms: started + 2_000,
                end_ms: started + 4_500,
                text,
            },
            api::db::now_millis(),
        )
        .await
        .expect("segment");
    store.close().await;
}

#[tokio::test]
async fn the_hourly_ai_summary_budget_is_shared_by_every_node_on_the_database() {
    let llm = crate::standin::StandIn::llm(|_, _| Ok("- Release ships on Friday.".into())).await;
    let base = format!("{}/v1", llm.base);
    let app = spawn_with(&[
        ("AI_SUMMARY_ENABLED", "true"),
        ("AI_MODEL_PROVIDER", "openai:main-model"),
        ("OPENAI_API_KEY", "sk-test-key"),
        ("AI_BASE_URL", &base),
        ("AI_SUMMARIES_PER_USER_PER_HOUR", "1"),
    ])
    .await;
    let (room, tokens) = app.room_with(&["alice"]).await;
    let alice = app.user_id(&tokens[0]).await;
    let speech =
        "Good morning everyone, we decided to ship the release on Friday after the review.";
    seed_session(&app, room, alice, speech).await;
    let first = crate::telegram::summary_of(&app, &tokens[0], room).await;
    assert_eq!(first["summary"]["source"], "ai", "{first}");

    // A second node on the same database (or this one restarted): its budget is the same.
    let other = crate::helpers::spawn_from(app.env.clone()).await;
    seed_session(&other, room, alice, speech).await;
    let second = crate::telegram::summary_of(&other, &tokens[0], room).await;
    assert_eq!(
        (
            second["summary"]["source"].as_str(),
            second["summary"]["reason"].as_str()
        ),
        (Some("heuristic"), Some("limited")),
        "{second}"
    );
    assert_eq!(llm.requests().len(), 1, "the model was asked once");
}

#[tokio::test]
async fn with_redis_get_invites_reads_the_callers_invites_however_many_others_ring() {
    let Some(redis_url) = crate::helpers::shared_redis_url("the Redis invite store") else {
        return;
    };
    let app = spawn_with(&[("REDIS_URL", &redis_url)]).await;
    let (room, tokens) = app.room_with(&["alice"]).await;
    let bob = app.register("bob").await;
    // 2,500 invites ringing elsewhere on the deployment, all due before bob's: a listing
    // that reads every pending invite (and stops at some count) never reaches his.
    let client = redis::Client::open(redis_url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let prefix = &app.env["REDIS_PREFIX"];
    let soon = api::db::now_millis() + 30_000;
    let mut add = redis::cmd("ZADD");
    add.arg(format!("{prefix}:invites"));
    for n in 0..2_500 {
        add.arg(soon + n).arg(format!("{n:032x}"));
    }
    let _: () = add.query_async(&mut conn).await.expect("zadd");

    let id = invite_id(&app, &tokens[0], room, "bob").await;
    let (status, pending) = json_of(app.get("/api/v1/invites", Some(&bob)).await).await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert_eq!(pending["incoming"][0]["id"], id.as_str(), "{pending}");
    let (_, mine) = json_of(app.get("/api/v1/invites", Some(&tokens[0])).await).await;
    assert_eq!(mine["outgoing"][0]["id"], id.as_str(), "{mine}");
    assert_eq!(mine["incoming"], json!([]), "{mine}");
}
