use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    expect_error, json_of, spawn_app, spawn_from, spawn_with, test_env, PASSWORD,
    REGISTRATION_SECRET,
};

#[tokio::test]
async fn register_returns_201_with_a_token_that_identifies_the_user() {
    let app = spawn_app().await;
    let (status, body) = json_of(
        app.register_raw("alice", PASSWORD, REGISTRATION_SECRET)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(body["token_type"], "Bearer");
    let token = body["token"].as_str().expect("token");
    let (status, me) = json_of(app.get("/api/v1/auth/me", Some(token)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["id"], body["user"]["id"]);
}

#[tokio::test]
async fn register_with_a_wrong_secret_is_403_and_creates_nothing() {
    let app = spawn_app().await;
    let err = expect_error(
        app.register_raw("alice", PASSWORD, "guess").await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(err["code"], "forbidden");
    // The name is still free, and the failed attempt didn't leave a user to log in as.
    expect_error(app.login("alice", PASSWORD).await, StatusCode::UNAUTHORIZED).await;
    app.register("alice").await;
}

#[tokio::test]
async fn register_with_a_taken_name_is_409_regardless_of_case() {
    let app = spawn_app().await;
    app.register("alice").await;
    for name in ["alice", "ALICE", "Alice"] {
        let err = expect_error(
            app.register_raw(name, PASSWORD, REGISTRATION_SECRET).await,
            StatusCode::CONFLICT,
        )
        .await;
        assert_eq!(err["code"], "username_taken");
    }
}

#[tokio::test]
async fn register_with_an_invalid_name_or_weak_password_is_422_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        ("ab", PASSWORD, "username"),
        ("bob'; DROP TABLE users;--", PASSWORD, "username"),
        ("пользователь", PASSWORD, "username"),
        (&"x".repeat(33), PASSWORD, "username"),
        ("bob", "short", "password"),
        ("bob", "password", "password"),
        ("bob", &"p".repeat(73), "password"),
    ];
    for (name, password, field) in cases {
        let err = expect_error(
            app.register_raw(name, password, REGISTRATION_SECRET).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(err["field"], field, "{name} / {password}: {err}");
    }
    // None of them created a user: "bob" is still free.
    app.register("bob").await;
}

#[tokio::test]
async fn login_returns_a_working_token() {
    let app = spawn_app().await;
    app.register("alice").await;
    let (status, body) = json_of(app.login("Alice", PASSWORD).await).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "names are case-insensitive at login too"
    );
    let token = body["token"].as_str().expect("token");
    let (status, me) = json_of(app.get("/api/v1/auth/me", Some(token)).await).await;
    assert_eq!(
        (status, me["username"].as_str()),
        (StatusCode::OK, Some("alice"))
    );
}

#[tokio::test]
async fn login_gives_the_same_401_for_a_wrong_password_and_an_unknown_user() {
    let app = spawn_app().await;
    app.register("alice").await;
    let wrong_password = expect_error(
        app.login("alice", "not the password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let unknown_user = expect_error(
        app.login("mallory", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let impossible_name =
        expect_error(app.login("x", PASSWORD).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(wrong_password, unknown_user);
    assert_eq!(wrong_password, impossible_name);
}

#[tokio::test]
async fn me_refuses_missing_malformed_forged_and_expired_tokens() {
    let app = spawn_app().await;
    let token = app.register("alice").await;
    expect_error(
        app.get("/api/v1/auth/me", None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        app.get("/api/v1/auth/me", Some("not-a-jwt")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Same claims, signed with another key.
    let claims = json!({"sub": "1", "name": "alice", "iat": 0, "exp": 4_000_000_000i64});
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]),
    )
    .expect("encode");
    expect_error(
        app.get("/api/v1/auth/me", Some(&forged)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Signed with the server's own (generated, kept) key, but expired an hour ago.
    let secret = std::fs::read_to_string(app.data_dir.join("jwt_secret"))
        .expect("jwt secret kept in DATA_DIR");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "1", "name": "alice", "iat": now - 7200, "exp": now - 3600}),
        &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
    )
    .expect("encode");
    expect_error(
        app.get("/api/v1/auth/me", Some(&expired)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // The same key with a valid expiry works, which shows the refusal above was the expiry.
    let (status, _) = json_of(app.get("/api/v1/auth/me", Some(&token)).await).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn generated_secrets_are_kept_so_a_restart_keeps_sessions_and_the_registration_secret() {
    let (mut env, _data) = test_env().await;
    env.remove("REGISTRATION_SECRET");
    let app = spawn_from(env.clone()).await;
    let generated =
        std::fs::read_to_string(app.data_dir.join("registration_secret")).expect("secret kept");
    let generated = generated.trim().to_owned();
    assert!(
        generated.len() >= 16,
        "a generated secret is long enough to resist guessing"
    );
    expect_error(
        app.register_raw("alice", PASSWORD, "").await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let (status, body) = json_of(app.register_raw("alice", PASSWORD, &generated).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    app.stop().await;

    let restarted = spawn_from(env).await;
    let (status, me) = json_of(restarted.get("/api/v1/auth/me", Some(&token)).await).await;
    assert_eq!(
        (status, me["username"].as_str()),
        (StatusCode::OK, Some("alice"))
    );
    let again = std::fs::read_to_string(restarted.data_dir.join("registration_secret"))
        .expect("secret kept");
    assert_eq!(again.trim(), generated);
}

#[tokio::test]
async fn an_explicit_registration_secret_is_the_only_one_accepted() {
    let app = spawn_with(&[("REGISTRATION_SECRET", "operator-chosen-secret")]).await;
    expect_error(
        app.register_raw("alice", PASSWORD, REGISTRATION_SECRET)
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let (status, _) = json_of(
        app.register_raw("alice", PASSWORD, "operator-chosen-secret")
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        !app.data_dir.join("registration_secret").exists(),
        "nothing generated when configured"
    );
}
