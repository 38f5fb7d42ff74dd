use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{json_of, spawn_app, spawn_with, REGISTRATION_SECRET};

#[tokio::test]
async fn a_sane_request_id_is_echoed_and_an_insane_one_replaced() {
    let app = spawn_app().await;
    let res = app
        .request(Method::GET, "/healthz", None)
        .header("x-request-id", "trace-42.a_b:c")
        .send()
        .await
        .expect("send");
    assert_eq!(res.headers()["x-request-id"], "trace-42.a_b:c");

    for insane in ["has space", "quote\"", &"x".repeat(200)] {
        let res = app
            .request(Method::GET, "/healthz", None)
            .header("x-request-id", insane)
            .send()
            .await
            .expect("send");
        let id = res.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_ne!(id, insane);
        assert_eq!(id.len(), 36, "a generated UUID: {id}");
    }
    let res = app.get("/api/v1/nope", None).await;
    assert!(
        res.headers().contains_key("x-request-id"),
        "errors carry an id too"
    );
}

#[tokio::test]
async fn every_response_has_security_headers_and_server_timing() {
    let app = spawn_app().await;
    for path in [
        "/",
        "/healthz",
        "/api/v1/auth/me",
        "/api/openapi.json",
        "/no-such-file",
    ] {
        let res = app.get(path, None).await;
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().expect("csp");
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h.contains_key("referrer-policy"), "{path}");
        assert!(
            !h.contains_key("strict-transport-security"),
            "no HSTS outside prod: {path}"
        );
        let timing = h["server-timing"].to_str().expect("timing");
        assert!(timing.starts_with("app;dur="), "{path}: {timing}");
    }
}

#[tokio::test]
async fn hsts_is_sent_in_prod() {
    let secret = "j".repeat(40);
    let app = spawn_with(&[
        ("APP_ENV", "prod"),
        ("JWT_SECRET", &secret),
        ("REGISTRATION_SECRET", REGISTRATION_SECRET),
    ])
    .await;
    let res = app.get("/healthz", None).await;
    assert!(res.headers()["strict-transport-security"]
        .to_str()
        .expect("hsts")
        .contains("max-age="));
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let (status, body) = json_of(app.get("/healthz", None).await).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = json_of(app.get("/readyz", None).await).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
}

#[tokio::test]
async fn metrics_are_labelled_by_route_pattern_never_by_id() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "Metrics").await;
    app.get(&format!("/api/v1/rooms/{room}"), Some(&alice))
        .await;
    app.get("/api/v1/rooms/777777", Some(&alice)).await;
    let text = app.metrics().await;
    assert!(text.contains(r#"path="/api/v1/rooms/{id}""#), "{text}");
    assert!(text.contains("http_requests_total"));
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "latency is a histogram"
    );
    assert!(
        !text.contains(&format!("/rooms/{room}\"")) && !text.contains("777777"),
        "ids are not labels"
    );
    // Which node this is, for a deployment of several behind one Prometheus.
    assert!(
        text.lines()
            .any(|l| l.starts_with("webcall_node_info{") && l.contains("node=\"node-")),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let app = spawn_app().await;
    let (status, doc) = json_of(app.get("/api/openapi.json", None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')));
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/rooms", "post"),
        ("/api/v1/rooms", "get"),
        ("/api/v1/rooms/{id}", "get"),
        ("/api/v1/rooms/{id}", "delete"),
        ("/api/v1/rooms/{id}/members", "post"),
        ("/api/v1/rooms/{id}/members", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} documented"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        Value::from("bearer")
    );
}

#[tokio::test]
async fn the_openapi_document_lists_the_statuses_and_constraints_the_server_enforces() {
    let app = spawn_app().await;
    let (_, doc) = json_of(app.get("/api/openapi.json", None).await).await;
    let responses = |path: &str, method: &str| {
        let op = &doc["paths"][path][method]["responses"];
        op.as_object()
            .unwrap_or_else(|| panic!("{method} {path} documented"))
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    // A bearer route answers 401 and 500; a JSON body adds 400, 413, 415 and 422.
    for status in ["401", "500"] {
        assert!(responses("/api/v1/auth/me", "get")
            .iter()
            .any(|s| s == status));
    }
    for status in ["400", "401", "413", "415", "422", "500"] {
        let listed = responses("/api/v1/rooms/{id}/members/{user_id}", "patch");
        assert!(listed.iter().any(|s| s == status), "{status} in {listed:?}");
    }
    // Query parameters of the wrong type are a 400.
    assert!(responses("/api/v1/rooms/{id}/summaries", "get")
        .iter()
        .any(|s| s == "400"));

    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    assert_eq!(
        schema("AssignableRole")["enum"],
        serde_json::json!(["moderator", "member"])
    );
    let username = &schema("RegisterRequest")["properties"]["username"];
    assert_eq!(username["minLength"], 3);
    assert_eq!(username["maxLength"], 32);
    assert_eq!(
        schema("PostMessageRequest")["properties"]["text"]["maxLength"],
        4000
    );
    // `before` and `after` of the chat history exclude each other.
    let page = doc["paths"]["/api/v1/rooms/{id}/messages"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["in"] == "query")
        .expect("the page parameter")
        .clone();
    assert_eq!(page["explode"], true);
    assert_eq!(
        page["schema"]["not"],
        serde_json::json!({"required": ["before", "after"]})
    );
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let app = spawn_with(&[("CORS_ORIGINS", "https://call.example.org")]).await;
    let preflight = |origin: &'static str| {
        app.request(Method::OPTIONS, "/api/v1/auth/login", None)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://call.example.org").await.expect("send");
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://call.example.org"
    );
    let other = preflight("https://evil.example").await.expect("send");
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}
