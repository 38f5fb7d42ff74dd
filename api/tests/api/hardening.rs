use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{expect_error, json_of, raw_get, spawn_app, PASSWORD, REGISTRATION_SECRET};

const REGISTER: &str = "/api/v1/auth/register";

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let res = app
        .request(Method::POST, REGISTER, None)
        .header("content-type", "application/json")
        .body("{\"username\": \"alice\",")
        .send()
        .await
        .expect("send");
    let err = expect_error(res, StatusCode::BAD_REQUEST).await;
    assert_eq!(err["code"], "malformed_json");
}

#[tokio::test]
async fn a_body_without_json_content_type_is_415() {
    let app = spawn_app().await;
    let body = json!({"username": "alice", "password": PASSWORD, "registration_secret": REGISTRATION_SECRET}).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = app.request(Method::POST, REGISTER, None).body(body.clone());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let err = expect_error(
            req.send().await.expect("send"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        )
        .await;
        assert_eq!(err["code"], "unsupported_media_type");
    }
}

#[tokio::test]
async fn an_oversized_body_is_413_and_the_server_goes_on() {
    let app = spawn_app().await;
    let huge = json!({"username": "alice", "password": "p".repeat(200_000), "registration_secret": REGISTRATION_SECRET});
    let err = expect_error(
        app.post(REGISTER, None, huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(err["code"], "payload_too_large");
    app.register("alice").await;
}

#[tokio::test]
async fn missing_fields_and_wrong_types_are_422() {
    let app = spawn_app().await;
    for body in [
        json!({"username": "alice"}),
        json!({"username": 5, "password": PASSWORD, "registration_secret": "x"}),
        json!([1, 2]),
    ] {
        let err = expect_error(
            app.post(REGISTER, None, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(err["code"], "invalid_body");
    }
}

#[tokio::test]
async fn hostile_and_overlong_fields_get_clear_errors_and_store_nothing() {
    let app = spawn_app().await;
    let hostile = [
        "admin'--",
        "' OR '1'='1",
        "alice\u{0}",
        "<script>alert(1)</script>",
        "ａｌｉｃｅ",
        "al\u{200b}ice",
        &"a".repeat(10_000),
    ];
    for name in hostile {
        let err = expect_error(
            app.register_raw(name, PASSWORD, REGISTRATION_SECRET).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(err["field"], "username");
        expect_error(app.login(name, PASSWORD).await, StatusCode::UNAUTHORIZED).await;
    }
    let alice = app.register("alice").await;
    let long_name = "r".repeat(10_000);
    expect_error(
        app.post("/api/v1/rooms", Some(&alice), json!({"name": long_name}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let (status, rooms) = json_of(app.get("/api/v1/rooms", Some(&alice)).await).await;
    assert_eq!((status, rooms), (StatusCode::OK, json!([])));
}

#[tokio::test]
async fn nul_bytes_and_unknown_routes_get_json_404s_and_wrong_methods_405() {
    let app = spawn_app().await;
    for path in ["/api/v1/%00", "/api/v1/nope", "/api/v1/auth/%00", "/%00"] {
        let (status, text) = raw_get(&app.base, path).await;
        assert_eq!(status, 404, "{path}: {text}");
        assert!(text.contains("\"code\":\"not_found\""), "{path}: {text}");
    }
    let res = app
        .request(Method::PUT, "/api/v1/auth/login", None)
        .send()
        .await
        .expect("send");
    let err = expect_error(res, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(err["code"], "method_not_allowed");
    let (status, _) = json_of(app.get("/healthz", None).await).await;
    assert_eq!(status, StatusCode::OK, "still serving");
}
