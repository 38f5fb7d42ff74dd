//! What a signed-in user's push endpoint can make the server do: by default it never
//! contacts loopback, private or link-local addresses (by IP literal or by a name that
//! resolves there), and one user's failing endpoints can't hold up anyone else's pushes.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{expect_error, spawn_app, spawn_with};
use crate::push::{dm, subscribe, Receiver, ALLOW_PRIVATE};

/// Waits until the metrics show `n` pushes refused for their address.
async fn wait_for_refusals(app: &crate::helpers::TestApp, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = app.metrics().await;
        let refused = metrics
            .lines()
            .find(|l| l.starts_with("push_failures_total") && l.contains("refused_address"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if refused >= n as f64 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pushes were never refused: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn push_endpoints_on_loopback_are_refused_and_never_contacted_by_default() {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let path = "/api/v1/push/subscriptions";

    // An IP-literal loopback endpoint is refused when saved...
    let literal = receiver.subscription().await;
    let err = expect_error(
        app.post(path, Some(&bob), literal.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(err["field"], "endpoint", "{err}");
    for endpoint in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/push",
        "http://10.0.0.1/push",
        "http://2130706433/push",
    ] {
        let mut bad = literal.clone();
        bad["endpoint"] = json!(endpoint);
        let err = expect_error(
            app.post(path, Some(&bob), bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(err["field"], "endpoint", "{endpoint}: {err}");
    }

    // ...a name is checked where it is resolved, when a push is sent: `localhost` is saved
    // but never contacted.
    let named = receiver.subscription().await;
    let mut by_name = named.clone();
    let endpoint = named["endpoint"].as_str().expect("endpoint");
    by_name["endpoint"] = json!(endpoint.replace("127.0.0.1", "localhost"));
    subscribe(&app, &bob, &by_name).await;

    // A loopback literal already in the table (saved before this check existed) is not
    // contacted either.
    let store = app.store().await;
    let bob_id = app.user_id(&bob).await;
    let claims = token_claims(&bob);
    store
        .save_push_subscription(
            bob_id,
            &api::db::PushSubscriptionRow {
                endpoint: literal["endpoint"].as_str().expect("endpoint").to_owned(),
                p256dh: literal["keys"]["p256dh"].as_str().expect("key").to_owned(),
                auth: literal["keys"]["auth"].as_str().expect("auth").to_owned(),
            },
            &api::db::PushSession {
                token_id: claims["jti"].as_str().expect("jti").to_owned(),
                token_version: claims["ver"].as_i64().expect("ver"),
                expires_at: claims["exp"].as_i64().expect("exp") * 1000,
            },
            api::db::now_millis(),
        )
        .await
        .expect("saved");

    dm(&app, &alice, "bob", "meet at the usual place").await;
    wait_for_refusals(&app, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.attempts(&named).await,
        0,
        "localhost was contacted"
    );
    assert_eq!(
        receiver.attempts(&literal).await,
        0,
        "127.0.0.1 was contacted"
    );
}

/// The claims of a token (the test trusts its own server's token).
fn token_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json claims")
}

/// Mallory has ten endpoints that answer 503 with `Retry-After: 30`, and seventeen
/// conversations push to her at once (one more than the worker's send slots). Bob's push,
/// to another push host, still goes out within a few seconds, and Mallory's host's breaker
/// keeps the server from hammering it.
#[tokio::test]
async fn endpoints_answering_503_do_not_delay_another_users_push() {
    let (Some(bad_host), Some(good_host)) = (Receiver::start().await, Receiver::start().await)
    else {
        return;
    };
    let app = spawn_with(&[ALLOW_PRIVATE]).await;
    let mallory = app.register("mallory").await;
    let mut failing = Vec::new();
    for _ in 0..10 {
        let sub = bad_host.subscription().await;
        bad_host
            .set_mode(&sub, json!({"status": 503, "retry_after": 30}))
            .await;
        subscribe(&app, &mallory, &sub).await;
        failing.push(sub);
    }
    let bob = app.register("bob").await;
    let bob_sub = good_host.subscription().await;
    subscribe(&app, &bob, &bob_sub).await;

    for i in 0..17 {
        let sender = app.register(&format!("sender{i}")).await;
        dm(&app, &sender, "mallory", "hi").await;
    }
    // Wait until Mallory's endpoints are being tried (and failing).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while total_attempts(&bad_host, &failing).await < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mallory's endpoints were never tried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let alice = app.register("alice").await;
    let started = tokio::time::Instant::now();
    dm(&app, &alice, "bob", "lunch?").await;
    let got = good_host.received(&bob_sub, 1).await;
    let took = started.elapsed();
    assert_eq!(got[0]["payload"]["body"], "New message from alice");
    assert!(
        took < Duration::from_secs(3),
        "bob's push waited {took:?} behind mallory's"
    );
    // 17 notices x 10 endpoints would be 170 requests (and 850 with retries); the breaker
    // stops them after a handful of failures.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let attempts = total_attempts(&bad_host, &failing).await;
    assert!(attempts <= 40, "{attempts} requests to a failing push host");
    eprintln!("bob's push took {took:?}; mallory's host got {attempts} requests");
    let metrics = app.metrics().await;
    assert!(metrics.contains("push_breaker_opened_total"), "{metrics}");
}

async fn total_attempts(receiver: &Receiver, subs: &[Value]) -> u64 {
    let mut total = 0;
    for sub in subs {
        total += receiver.attempts(sub).await;
    }
    total
}
