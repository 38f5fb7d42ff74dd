use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    expect_error, json_of, spawn_from, spawn_with, test_env, TestApp, PASSWORD, REGISTRATION_SECRET,
};
use crate::private_redis::PrivateRedis;

#[tokio::test]
async fn logins_over_the_limit_get_429_with_retry_after() {
    let app = spawn_with(&[("RATE_LIMIT_LOGIN", "3"), ("REDIS_URL", "")]).await;
    for _ in 0..3 {
        assert_eq!(
            app.login("alice", PASSWORD).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let res = app.login("alice", PASSWORD).await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let err = expect_error(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(err["code"], "rate_limited");
    // Other limits keep their own budget.
    app.register("bob").await;
}

#[tokio::test]
async fn registration_and_room_creation_are_limited_too() {
    let app = spawn_with(&[
        ("RATE_LIMIT_REGISTER", "2"),
        ("RATE_LIMIT_ROOM_CREATE", "2"),
        ("REDIS_URL", ""),
    ])
    .await;
    let token = app.register("alice").await;
    app.register("bob").await;
    expect_error(
        app.register_raw("carol", PASSWORD, REGISTRATION_SECRET)
            .await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    app.create_room(&token, "one").await;
    app.create_room(&token, "two").await;
    expect_error(
        app.post("/api/v1/rooms", Some(&token), json!({"name": "three"}))
            .await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
}

/// Two nodes on one Redis draw from one budget. Runs when `WEBCALL_TEST_REDIS_URL` is set
/// (CI's PostgreSQL+Redis pass sets it).
#[tokio::test]
async fn two_nodes_on_one_redis_share_the_login_budget() {
    let Some(redis_url) = crate::helpers::shared_redis_url("shared Redis limit") else {
        return;
    };
    let (mut env, _data) = test_env().await;
    env.insert("REDIS_URL".into(), redis_url);
    env.insert("RATE_LIMIT_LOGIN".into(), "4".into());
    let node_a = spawn_from(env.clone()).await;
    let node_b = spawn_from(env).await;
    for node in [&node_a, &node_b, &node_a, &node_b] {
        assert_eq!(
            node.login("alice", PASSWORD).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // 4 used across both nodes: each of them now refuses.
    for node in [&node_a, &node_b] {
        let res = node.login("alice", PASSWORD).await;
        assert!(res.headers().contains_key("retry-after"));
        expect_error(res, StatusCode::TOO_MANY_REQUESTS).await;
    }
    // A node with another prefix (another deployment on the same Redis) is unaffected.
    let (mut env, _data2) = test_env().await;
    env.insert(
        "REDIS_URL".into(),
        std::env::var("WEBCALL_TEST_REDIS_URL").unwrap_or_default(),
    );
    env.insert("RATE_LIMIT_LOGIN".into(), "4".into());
    let other = spawn_from(env).await;
    assert_eq!(
        other.login("alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let app = spawn_with(&[
        ("RATE_LIMIT_LOGIN", "1"),
        ("TRUST_PROXY", "true"),
        ("REDIS_URL", ""),
    ])
    .await;
    let login_from = |client: &'static str| {
        app.request(reqwest::Method::POST, "/api/v1/auth/login", None)
            .header("x-forwarded-for", format!("6.6.6.6, {client}"))
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
    };
    assert_eq!(
        login_from("10.0.0.1").await.expect("send").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from("10.0.0.2").await.expect("send").status(),
        StatusCode::UNAUTHORIZED
    );
    // The spoofable left-most entry doesn't matter; the proxy's (right-most) one does.
    assert_eq!(
        login_from("10.0.0.1").await.expect("send").status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Logs in as `username` from `client` (behind a trusted proxy).
async fn login_via(app: &TestApp, client: &str, username: &str) -> reqwest::Response {
    app.request(reqwest::Method::POST, "/api/v1/auth/login", None)
        .header("x-forwarded-for", client)
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn guesses_at_one_account_from_many_addresses_meet_the_account_limit() {
    let app = spawn_with(&[("RATE_LIMIT_LOGIN_ACCOUNT", "3"), ("TRUST_PROXY", "true")]).await;
    for client in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        assert_eq!(
            login_via(&app, client, "alice").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // A fresh address doesn't help, nor does another spelling of the name.
    for (client, name) in [("10.0.0.4", "alice"), ("10.0.0.5", "ALICE")] {
        let res = login_via(&app, client, name).await;
        assert!(res.headers().contains_key("retry-after"));
        let err = expect_error(res, StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(err["code"], "rate_limited");
    }
    // Other accounts keep their own budget, from the same addresses too.
    assert_eq!(
        login_via(&app, "10.0.0.1", "bob").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn ipv6_clients_share_a_budget_per_64_prefix() {
    let app = spawn_with(&[("RATE_LIMIT_LOGIN", "2"), ("TRUST_PROXY", "true")]).await;
    for (client, name) in [("2001:db8:1:2::1", "alice"), ("2001:db8:1:2::2", "bob")] {
        assert_eq!(
            login_via(&app, client, name).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Another address of the same /64 is the same client.
    expect_error(
        login_via(&app, "2001:db8:1:2:ffff:1:2:3", "carol").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    // The next /64 is someone else.
    assert_eq!(
        login_via(&app, "2001:db8:1:3::1", "carol").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn with_redis_down_sign_ins_get_503_and_chat_goes_on() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let app = spawn_with(&[("REDIS_URL", &redis.url())]).await;
    let (room, tokens) = app.room_with(&["alice"]).await;
    app.post_chat(&tokens[0], room, "before").await;

    redis.stop().await;
    let res = app.login("alice", PASSWORD).await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let err = expect_error(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(err["code"], "rate_limiter_unavailable");
    assert_eq!(
        err["message"],
        "rate limiter unavailable; try again shortly"
    );
    let err = expect_error(
        app.register_raw("bob", PASSWORD, REGISTRATION_SECRET).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(err["code"], "rate_limiter_unavailable");
    // Chat fails open: the message is stored and readable.
    app.post_chat(&tokens[0], room, "during").await;
    let (status, history) = json_of(
        app.get(&format!("/api/v1/rooms/{room}/messages"), Some(&tokens[0]))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["messages"][0]["text"], "during");
}
