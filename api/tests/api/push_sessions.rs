//! A push subscription belongs to the session that saved it: it ends when that session
//! signs out or a password change ends it, and its user can list and remove theirs.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{expect_error, json_of, TestApp, PASSWORD};
use crate::push::{dm, spawn_push, subscribe, Receiver};

async fn login(app: &TestApp, username: &str) -> String {
    let (status, body) = json_of(app.login(username, PASSWORD).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = json_of(app.get("/api/v1/push/subscriptions", Some(token)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["subscriptions"].as_array().expect("array").clone()
}

/// Gives the worker time to push to a subscription that should get nothing.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(800)).await;
}

#[tokio::test]
async fn a_sessions_subscription_ends_when_it_signs_out_or_a_password_change_ends_it() {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let app = spawn_push().await;
    let alice = app.register("alice").await;
    let stolen = app.register("bob").await;
    let phone = login(&app, "bob").await;
    let thief_sub = receiver.subscription().await;
    subscribe(&app, &stolen, &thief_sub).await;
    let phone_sub = receiver.subscription().await;
    subscribe(&app, &phone, &phone_sub).await;

    // Signing the stolen session out ends its subscription.
    let res = app
        .post("/api/v1/auth/logout", Some(&stolen), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    dm(&app, &alice, "bob", "first").await;
    receiver.received(&phone_sub, 1).await;
    settle().await;
    assert_eq!(
        receiver.attempts(&thief_sub).await,
        0,
        "a signed-out session's browser got a push"
    );

    // Another stolen session subscribes; bob changes his password on the phone, which ends
    // every other session: the phone's subscription goes on, the thief's ends.
    let stolen = login(&app, "bob").await;
    let thief_sub = receiver.subscription().await;
    subscribe(&app, &stolen, &thief_sub).await;
    let (status, body) = json_of(
        app.post(
            "/api/v1/auth/password",
            Some(&phone),
            json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let phone = body["token"].as_str().expect("token").to_owned();
    dm(&app, &alice, "bob", "second").await;
    receiver.received(&phone_sub, 2).await;
    settle().await;
    assert_eq!(
        receiver.attempts(&thief_sub).await,
        0,
        "a session the password change ended got a push"
    );
    let subs = list(&app, &phone).await;
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0]["current"], true);
}

#[tokio::test]
async fn a_user_lists_their_subscriptions_and_removes_one_by_id() {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let app = spawn_push().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let laptop = login(&app, "bob").await;
    let lost = receiver.subscription().await;
    subscribe(&app, &bob, &lost).await;
    let kept = receiver.subscription().await;
    subscribe(&app, &laptop, &kept).await;

    let subs = list(&app, &laptop).await;
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert_eq!(subs[0]["push_service"], receiver.base.as_str());
    assert_eq!(
        subs.iter()
            .map(|s| s["current"].clone())
            .collect::<Vec<_>>(),
        [json!(false), json!(true)]
    );
    assert!(subs[0]["created_at"]
        .as_str()
        .is_some_and(|t| t.contains('T')));
    assert!(
        !subs[0].to_string().contains("/push/"),
        "the endpoint (a capability) is listed: {subs:?}"
    );
    let lost_id = subs[0]["id"].as_i64().expect("id");

    // Nobody else can see or remove them.
    assert_eq!(list(&app, &alice).await, Vec::<Value>::new());
    let path = format!("/api/v1/push/subscriptions/{lost_id}");
    expect_error(app.delete(&path, Some(&alice)).await, StatusCode::NOT_FOUND).await;
    expect_error(
        app.delete("/api/v1/push/subscriptions/abc", Some(&laptop))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        app.delete(&path, None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Bob removes the lost device's from his laptop.
    assert_eq!(
        app.delete(&path, Some(&laptop)).await.status(),
        StatusCode::NO_CONTENT
    );
    expect_error(
        app.delete(&path, Some(&laptop)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(list(&app, &laptop).await.len(), 1);
    dm(&app, &alice, "bob", "hello").await;
    receiver.received(&kept, 1).await;
    settle().await;
    assert_eq!(receiver.attempts(&lost).await, 0);
}

/// Past ten subscriptions the oldest is dropped (docs/security.md says why), and a new
/// one is never refused.
#[tokio::test]
async fn an_eleventh_subscription_drops_the_oldest() {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let app = spawn_push().await;
    let bob = app.register("bob").await;
    let mut ids = Vec::new();
    for _ in 0..11 {
        let sub = receiver.subscription().await;
        subscribe(&app, &bob, &sub).await;
        let subs = list(&app, &bob).await;
        ids.push(
            subs.last().expect("the new one")["id"]
                .as_i64()
                .expect("id"),
        );
        // created_at is in milliseconds: keep the order unambiguous.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let now: Vec<i64> = list(&app, &bob)
        .await
        .iter()
        .map(|s| s["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(now, ids[1..].to_vec());
}
