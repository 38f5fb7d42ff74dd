use reqwest::StatusCode;

use crate::helpers::{raw_get, spawn_app};

#[tokio::test]
async fn the_page_and_its_module_are_served_from_static() {
    let app = spawn_app().await;
    let res = app.get("/", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/html"));
    let html = res.text().await.expect("html");
    assert!(html.contains(r#"<script type="module" src="/app.js">"#));
    assert!(!html.contains("<script>"), "no inline script");
    let js = app.get("/app.js", None).await;
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .contains("javascript"));
}

#[tokio::test]
async fn path_traversal_attempts_are_404() {
    let app = spawn_app().await;
    for path in [
        "/../Cargo.toml",
        "/../../etc/passwd",
        "/%2e%2e/Cargo.toml",
        "/%2e%2e%2fCargo.toml",
        "/..%2f..%2fetc%2fpasswd",
        "/static/../../Cargo.toml",
        "/..\\Cargo.toml",
        "/%5c..%5cCargo.toml",
        "//etc/passwd",
        "/app.js%00.html",
    ] {
        let (status, text) = raw_get(&app.base, path).await;
        assert!(status == 404 || status == 400, "{path}: {status}");
        assert!(
            !text.contains("[workspace]") && !text.contains("root:"),
            "{path} leaked a file"
        );
    }
}

#[tokio::test]
async fn app_routes_answer_the_entry_page_and_api_paths_stay_json_404() {
    let app = spawn_app().await;
    for path in ["/rooms/3", "/dm/bob", "/settings", "/login"] {
        let res = app.get(path, None).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let html = res.text().await.expect("html");
        assert!(
            html.contains(r#"<script type="module" src="/app.js">"#),
            "{path}"
        );
    }
    for path in ["/api/v1/no-such-thing", "/missing.js"] {
        let res = app.get(path, None).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        let body: serde_json::Value = res.json().await.expect("json error body");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}
