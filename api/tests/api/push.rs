//! WebPush against an independent receiver (`push_receiver.py`: VAPID checked with
//! `cryptography`, payloads decrypted with `http_ece`): delivery while offline, none while a
//! tab is open, collapsing, 410 cleanup, a push service that fails or hangs, and bad input.
//!
//! The receiver listens on 127.0.0.1, which the server refuses to push to by default; these
//! tests start it with `PUSH_ALLOW_PRIVATE=1` ([`spawn_push`]). What the default refuses is
//! tested in `push_egress`; sessions and the subscription list in `push_sessions`.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{expect_error, json_of, spawn_from, spawn_with, test_env, TestApp};

/// The setting that lets the server push to the stand-in receiver on 127.0.0.1.
pub const ALLOW_PRIVATE: (&str, &str) = ("PUSH_ALLOW_PRIVATE", "1");

/// An app that may push to the stand-in receiver on 127.0.0.1.
pub async fn spawn_push() -> TestApp {
    spawn_with(&[ALLOW_PRIVATE]).await
}

/// The stand-in push service (and browser), killed when dropped.
pub struct Receiver {
    pub base: String,
    http: reqwest::Client,
    _child: Child,
}

impl Receiver {
    /// `None` (the test is skipped) when python3 can't import `http_ece`, unless
    /// `WEBCALL_TEST_REQUIRE_ALL=1` (CI), where that is a failure naming it.
    pub async fn start() -> Option<Self> {
        let importable = Command::new("python3")
            .args(["-c", "import http_ece, cryptography"])
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !importable {
            crate::helpers::unavailable(
                "the WebPush receiver needs http_ece: python3 can't import it \
                 (python3 -m pip install http_ece)",
            );
            return None;
        }
        Some(Self::spawn().await)
    }

    async fn spawn() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/push_receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (the push tests need: pip install http_ece)");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::time::timeout(
            Duration::from_secs(20),
            BufReader::new(stdout).lines().next_line(),
        )
        .await
        .expect("the receiver starts (pip install http_ece)")
        .expect("read")
        .expect("the receiver prints its port");
        let port = line.strip_prefix("PORT ").expect("PORT line");
        Self {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            _child: child,
        }
    }

    /// A new browser subscription: the JSON `PushSubscription.toJSON()` gives.
    pub async fn subscription(&self) -> Value {
        let res = self
            .http
            .post(format!("{}/subscribe", self.base))
            .send()
            .await
            .expect("subscribe");
        res.json().await.expect("json")
    }

    pub async fn set_mode(&self, sub: &Value, mode: Value) {
        let id = sub["id"].as_str().expect("id");
        self.http
            .post(format!("{}/mode/{id}", self.base))
            .json(&mode)
            .send()
            .await
            .expect("mode");
    }

    pub async fn state(&self, sub: &Value) -> Value {
        let id = sub["id"].as_str().expect("id");
        let res = self
            .http
            .get(format!("{}/received/{id}", self.base))
            .send()
            .await
            .expect("received");
        let state: Value = res.json().await.expect("json");
        assert_eq!(
            state["errors"],
            json!([]),
            "the receiver refused what we sent"
        );
        state
    }

    /// How many times the server contacted `sub`'s endpoint.
    pub async fn attempts(&self, sub: &Value) -> u64 {
        self.state(sub).await["attempts"]
            .as_u64()
            .expect("attempts")
    }

    /// Waits until `sub` has received at least `n` pushes; returns them.
    pub async fn received(&self, sub: &Value, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let state = self.state(sub).await;
            let got = state["received"].as_array().expect("array").clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} pushes arrived: {state}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub async fn subscribe(app: &TestApp, token: &str, sub: &Value) {
    let res = app
        .post("/api/v1/push/subscriptions", Some(token), sub.clone())
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "{:?}", res.text().await);
}

pub async fn dm(app: &TestApp, token: &str, to: &str, text: &str) {
    let (status, body) = json_of(
        app.post(
            &format!("/api/v1/dm/{to}"),
            Some(token),
            json!({ "text": text }),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_user_with_no_open_tab_gets_encrypted_pushes_for_an_invite_a_dm_and_room_chat() {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let app = spawn_push().await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let (alice, bob) = (&tokens[0], &tokens[1]);
    let carol = app.register("carol").await;
    let sub = receiver.subscription().await;
    subscribe(&app, &carol, &sub).await;
    let bob_sub = receiver.subscription().await;
    subscribe(&app, bob, &bob_sub).await;
    let (_, key) = json_of(app.get("/api/v1/push/vapid-key", None).await).await;
    let vapid_key = key["public_key"].as_str().expect("key").to_owned();

    app.post(
        &format!("/api/v1/rooms/{room}/invites"),
        Some(alice),
        json!({"username": "carol"}),
    )
    .await;
    let got = receiver.received(&sub, 1).await;
    let push = &got[0];
    assert_eq!(push["payload"]["kind"], "invite");
    assert_eq!(push["payload"]["title"], "alice is calling you");
    assert_eq!(push["payload"]["url"], format!("/rooms/{room}"));
    assert_eq!(push["urgency"], "high");
    assert!(push["ttl"].as_u64().expect("ttl") <= 60);
    assert_eq!(push["vapid_key"], vapid_key.as_str());

    dm(&app, alice, "carol", "the secret plan is at noon").await;
    let got = receiver.received(&sub, 2).await;
    let push = &got[1]["payload"];
    assert_eq!(
        (push["kind"].as_str(), push["url"].as_str()),
        (Some("dm"), Some("/dm/alice"))
    );
    assert_eq!(push["body"], "New message from alice");
    assert!(
        !got[1].to_string().contains("secret plan"),
        "DM text leaked into a push: {}",
        got[1]
    );

    app.post_chat(alice, room, "standup moved to 10:30").await;
    let got = receiver.received(&bob_sub, 1).await;
    let push = &got[0]["payload"];
    assert_eq!(
        (push["kind"].as_str(), push["title"].as_str()),
        (Some("chat"), Some("Call"))
    );
    assert_eq!(push["body"], "alice: standup moved to 10:30");
    // The sender gets no push of their own message; carol is not in the room.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.state(&sub).await["received"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn no_push_while_a_tab_is_open_and_offline_messages_collapse_with_a_count() {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let app = spawn_push().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let sub = receiver.subscription().await;
    subscribe(&app, &bob, &sub).await;

    let tab = app.user_ws(&bob).await;
    dm(&app, &alice, "bob", "you there?").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        receiver.state(&sub).await["received"],
        json!([]),
        "pushed while a tab was open"
    );
    tab.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    for text in ["one", "two", "three"] {
        dm(&app, &alice, "bob", text).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        let got = receiver.received(&sub, 1).await;
        if got.last().is_some_and(|p| p["payload"]["count"] == 3)
            || tokio::time::Instant::now() > deadline
        {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let last = &got.last().expect("a push")["payload"];
    assert_eq!(last["body"], "3 new messages from alice", "{got:?}");
    assert!(got.len() <= 3);
    let topics: std::collections::HashSet<&str> =
        got.iter().filter_map(|p| p["topic"].as_str()).collect();
    assert_eq!(topics.len(), 1, "one conversation, one topic: {got:?}");
    assert!(got.iter().all(|p| p["payload"]["tag"] == "dm:alice"));

    // Opening a tab starts the count again.
    app.user_ws(&bob).await.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = got.len();
    dm(&app, &alice, "bob", "four").await;
    let got = receiver.received(&sub, before + 1).await;
    assert_eq!(got.last().expect("push")["payload"]["count"], 1);
}

#[tokio::test]
async fn a_subscription_the_push_service_calls_gone_is_deleted() {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let app = spawn_push().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let gone = receiver.subscription().await;
    let live = receiver.subscription().await;
    subscribe(&app, &bob, &gone).await;
    subscribe(&app, &bob, &live).await;
    receiver.set_mode(&gone, json!({"status": 410})).await;

    dm(&app, &alice, "bob", "hello").await;
    receiver.received(&live, 1).await;
    let store = app.store().await;
    let bob_id = app.user_id(&bob).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let subs = store
            .push_subscriptions(bob_id, api::db::now_millis())
            .await
            .expect("subscriptions");
        if subs.len() == 1 {
            assert_eq!(Some(subs[0].endpoint.as_str()), live["endpoint"].as_str());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "410 subscription kept"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("push_subscriptions_expired_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_failing_push_service_is_retried_and_a_hanging_one_never_slows_chat() {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let app = spawn_with(&[("PUSH_RETRY_BASE_MS", "100"), ALLOW_PRIVATE]).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let flaky = receiver.subscription().await;
    subscribe(&app, &bob, &flaky).await;
    receiver
        .set_mode(&flaky, json!({"status": 503, "fail": 2}))
        .await;
    let stuck = receiver.subscription().await;
    subscribe(&app, &carol, &stuck).await;
    receiver.set_mode(&stuck, json!({"hang": 30})).await;

    dm(&app, &alice, "bob", "are you up?").await;
    let got = receiver.received(&flaky, 1).await;
    assert_eq!(got[0]["payload"]["kind"], "dm");
    assert_eq!(receiver.state(&flaky).await["attempts"], 3);

    // Carol's push service hangs; DMs to her and chat go on at once.
    for i in 0..5 {
        let started = tokio::time::Instant::now();
        dm(&app, &alice, "carol", &format!("ping {i}")).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a DM waited on the push service"
        );
    }
    let metrics = app.metrics().await;
    assert!(metrics.contains("push_retries_total"), "{metrics}");
    assert!(metrics.contains("push_sent_total"), "{metrics}");
    assert!(metrics.contains("push_queue_depth"), "{metrics}");
}

#[tokio::test]
async fn bad_subscriptions_get_clear_errors() {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let app = spawn_push().await;
    let bob = app.register("bob").await;
    let sub = receiver.subscription().await;
    let path = "/api/v1/push/subscriptions";
    let field =
        |res| async { expect_error(res, StatusCode::UNPROCESSABLE_ENTITY).await["field"].clone() };

    let mut bad = sub.clone();
    bad["keys"]["p256dh"] = json!("AAAA");
    assert_eq!(
        field(app.post(path, Some(&bob), bad).await).await,
        "keys.p256dh"
    );
    let mut bad = sub.clone();
    bad["keys"]["auth"] = json!("c2hvcnQ");
    assert_eq!(
        field(app.post(path, Some(&bob), bad).await).await,
        "keys.auth"
    );
    let mut bad = sub.clone();
    bad["endpoint"] = json!("not a url");
    assert_eq!(
        field(app.post(path, Some(&bob), bad).await).await,
        "endpoint"
    );
    let mut bad = sub.clone();
    bad["endpoint"] = json!("ftp://127.0.0.1/push/1");
    assert_eq!(
        field(app.post(path, Some(&bob), bad).await).await,
        "endpoint"
    );
    expect_error(
        app.post(path, Some(&bob), json!({"endpoint": "https://x"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(app.post(path, None, sub.clone()).await.status(), 401);
    let res = app
        .request(reqwest::Method::DELETE, path, Some(&bob))
        .json(&json!({"endpoint": "https://nowhere"}))
        .send()
        .await
        .expect("delete");
    expect_error(res, StatusCode::NOT_FOUND).await;
    subscribe(&app, &bob, &sub).await;
    let res = app
        .request(reqwest::Method::DELETE, path, Some(&bob))
        .json(&json!({"endpoint": sub["endpoint"]}))
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    // In production a push endpoint must be https.
    let prod = spawn_with(&[("APP_ENV", "prod"), ("JWT_SECRET", &"j".repeat(40))]).await;
    let bob = prod.register("bob").await;
    let err = expect_error(
        prod.post(path, Some(&bob), sub.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(err["field"], "endpoint");
    assert!(
        err["message"].as_str().expect("message").contains("https"),
        "{err}"
    );
}

/// With Redis the push queue is a stream every node reads: a push that node A took but had
/// not sent when it stopped (the push service kept failing) is sent by node B.
/// Runs when `WEBCALL_TEST_REDIS_URL` is set.
#[tokio::test]
async fn a_push_left_unsent_by_a_stopped_node_is_sent_by_another() {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let Some(redis_url) = crate::helpers::shared_redis_url("the shared push queue") else {
        return;
    };
    let (mut env, _data) = test_env().await;
    env.insert("REDIS_URL".into(), redis_url);
    env.insert(ALLOW_PRIVATE.0.into(), ALLOW_PRIVATE.1.into());
    // A notice is tried for two thirds of the claim time (2 s here), so node A, stopped
    // while it waits to retry, leaves the entry pending rather than giving it up.
    env.insert("PUSH_CLAIM_IDLE_SECS".into(), "3".into());
    env.insert("PUSH_RETRY_BASE_MS".into(), "1000".into());
    let node_a = spawn_from(env.clone()).await;
    let alice = node_a.register("alice").await;
    let bob = node_a.register("bob").await;
    let sub = receiver.subscription().await;
    subscribe(&node_a, &bob, &sub).await;
    // Node A's first try fails; it waits 1 s to retry and is stopped meanwhile.
    receiver
        .set_mode(&sub, json!({"status": 503, "fail": 2}))
        .await;
    dm(&node_a, &alice, "bob", "still there?").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.state(&sub).await["attempts"].as_u64() < Some(1) {
        assert!(tokio::time::Instant::now() < deadline, "node A never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node_a.stop().await;
    // Past the claim time, node B takes the entry over as it starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let node_b = spawn_from(env).await;
    let got = receiver.received(&sub, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["payload"]["body"], "New message from alice");
    assert_eq!(receiver.state(&sub).await["attempts"], 3);
    node_b.stop().await;
}
