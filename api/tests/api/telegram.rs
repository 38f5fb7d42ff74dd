//! Telegram through the real server and a stand-in Bot API: linking with single-use tokens
//! through the secret-checked webhook, the delivery rules (never outside the room), message
//! splitting and escaping, and `webcall telegram set-webhook`.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{expect_error, json_of, spawn_with, TestApp};
use crate::standin::StandIn;

pub const BOT_TOKEN: &str = "123456:test-bot-token";
pub const WEBHOOK_SECRET: &str = "webhook-secret-for-tests";

async fn spawn_bot(bot: &StandIn, extra: &[(&str, &str)]) -> TestApp {
    let mut pairs = vec![
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN),
        ("TELEGRAM_BOT_USERNAME", "webcall_test_bot"),
        ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("TELEGRAM_API_BASE", bot.base.as_str()),
    ];
    pairs.extend_from_slice(extra);
    spawn_with(&pairs).await
}

/// What Telegram posts to the webhook when someone sends `text` in chat `chat_id`.
async fn webhook(app: &TestApp, secret: Option<&str>, chat_id: i64, text: &str) -> StatusCode {
    let mut req = app
        .client
        .post(app.url("/api/v1/telegram/webhook"))
        .json(&json!({
            "update_id": 1,
            "message": {
                "message_id": 7,
                "date": 1_700_000_000,
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": chat_id, "is_bot": false, "first_name": "T"},
                "text": text,
            }
        }));
    if let Some(secret) = secret {
        req = req.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    req.send().await.expect("webhook").status()
}

async fn link_token(app: &TestApp, token: &str) -> String {
    let (status, body) = json_of(
        app.post("/api/v1/telegram/link", Some(token), json!({}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let deep = body["deep_link"].as_str().expect("deep link");
    let link_token = body["token"].as_str().expect("token").to_owned();
    assert_eq!(
        deep,
        format!("https://t.me/webcall_test_bot?start={link_token}")
    );
    link_token
}

async fn status(app: &TestApp, token: &str) -> Value {
    let (_, body) = json_of(app.get("/api/v1/telegram/status", Some(token)).await).await;
    body["status"].clone()
}

/// Links the user's chat the way Telegram does it.
pub async fn link(app: &TestApp, token: &str, chat_id: i64) {
    let t = link_token(app, token).await;
    let got = webhook(app, Some(WEBHOOK_SECRET), chat_id, &format!("/start {t}")).await;
    assert_eq!(got, StatusCode::OK);
    assert_eq!(status(app, token).await, "confirmed");
}

#[tokio::test]
async fn a_link_needs_the_webhook_secret_and_a_fresh_token_that_works_once() {
    let bot = StandIn::bot_api().await;
    let app = spawn_bot(&bot, &[]).await;
    let alice = app.register("alice").await;
    assert_eq!(status(&app, &alice).await, "absent");
    let token = link_token(&app, &alice).await;
    assert_eq!(status(&app, &alice).await, "pending");

    // Without or with a wrong secret nothing changes and the bot says nothing.
    let start = format!("/start {token}");
    assert_eq!(
        webhook(&app, None, 111, &start).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        webhook(&app, Some("wrong-secret-wrong-secret"), 111, &start).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&app, &alice).await, "pending");
    assert!(bot.sent_messages().is_empty());

    // A bad token is answered in the chat, and links nothing.
    assert_eq!(
        webhook(&app, Some(WEBHOOK_SECRET), 111, "/start not-a-token").await,
        StatusCode::OK
    );
    assert_eq!(status(&app, &alice).await, "pending");

    assert_eq!(
        webhook(&app, Some(WEBHOOK_SECRET), 111, &start).await,
        StatusCode::OK
    );
    assert_eq!(status(&app, &alice).await, "confirmed");

    // Reused from another chat: refused, the first chat stays linked.
    assert_eq!(
        webhook(&app, Some(WEBHOOK_SECRET), 999, &start).await,
        StatusCode::OK
    );
    let sent = bot.sent_messages();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[0].0, json!(111));
    assert!(sent[0].1.contains("invalid"), "{sent:?}");
    assert!(sent[1].1.contains("Linked"), "{sent:?}");
    assert_eq!(sent[2].0, json!(999));
    assert!(sent[2].1.contains("invalid"), "{sent:?}");
    for req in bot.requests() {
        assert_eq!(req.path, format!("/bot{BOT_TOKEN}/sendMessage"));
    }

    let res = app.delete("/api/v1/telegram/link", Some(&alice)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(status(&app, &alice).await, "absent");
}

#[tokio::test]
async fn an_expired_token_links_nothing() {
    let bot = StandIn::bot_api().await;
    let app = spawn_bot(&bot, &[]).await;
    let alice = app.register("alice").await;
    let token = link_token(&app, &alice).await;
    let store = app.store().await;
    let id = app.user_id(&alice).await;
    let hash = sha_hex(&token);
    // Age the pending token past its expiry, as fifteen minutes would.
    store
        .put_telegram_token(
            id,
            &hash,
            api::db::now_millis() - 1,
            api::db::now_millis() - 900_000,
        )
        .await
        .expect("age");
    store.close().await;
    assert_eq!(status(&app, &alice).await, "absent");
    webhook(&app, Some(WEBHOOK_SECRET), 111, &format!("/start {token}")).await;
    assert_eq!(status(&app, &alice).await, "absent");
}

fn sha_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn telegram_endpoints_without_a_bot_are_404_not_enabled() {
    let app = spawn_with(&[]).await;
    let alice = app.register("alice").await;
    let err = expect_error(
        app.post("/api/v1/telegram/link", Some(&alice), json!({}))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(err["code"], "not_enabled", "{err}");
    assert!(err["message"]
        .as_str()
        .unwrap_or("")
        .contains("TELEGRAM_BOT_TOKEN"));
    assert_eq!(
        webhook(&app, Some(WEBHOOK_SECRET), 1, "/start x").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(status(&app, &alice).await, "absent");
}

pub async fn summary_of(app: &TestApp, token: &str, room: i64) -> Value {
    let (status, body) = json_of(
        app.post(
            &format!("/api/v1/rooms/{room}/summary"),
            Some(token),
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn a_summary_goes_to_the_initiator_else_to_linked_members_never_outside_the_room() {
    let bot = StandIn::bot_api().await;
    let app = spawn_bot(&bot, &[]).await;
    let (room, tokens) = app.room_with(&["alice", "bob", "carol"]).await;
    let dave = app.register("dave").await;
    link(&app, &tokens[1], 222).await;
    link(&app, &tokens[2], 333).await;
    link(&app, &dave, 444).await;
    let chats = |from: usize| -> Vec<Value> {
        let mut chats: Vec<Value> = bot.sent_messages()[from..]
            .iter()
            .map(|(c, _)| c.clone())
            .collect();
        chats.dedup();
        chats
    };

    // Alice has no chat: the members who linked one get it, dave (not a member) doesn't.
    app.post_chat(&tokens[0], room, "First meeting: we agreed on the budget.")
        .await;
    let before = bot.sent_messages().len();
    let body = summary_of(&app, &tokens[0], room).await;
    assert_eq!(body["telegram"], json!({"status": "sent", "chats": 2}));
    assert_eq!(chats(before), [json!(222), json!(333)]);

    // Once alice links her own chat, only she gets what she triggers.
    link(&app, &tokens[0], 111).await;
    let store = app.store().await;
    let alice_id = app.user_id(&tokens[0]).await;
    store
        .open_agent_session(room, alice_id, api::db::now_millis())
        .await
        .expect("session");
    store.close().await;
    app.post_chat(&tokens[0], room, "Second meeting: the budget is final now.")
        .await;
    let before = bot.sent_messages().len();
    let body = summary_of(&app, &tokens[0], room).await;
    assert_eq!(body["telegram"]["chats"], 1);
    assert_eq!(chats(before), [json!(111)]);
    let (_, text) = &bot.sent_messages()[before];
    assert!(text.starts_with("<b>Call — meeting summary</b>"), "{text}");
    for req in bot.requests() {
        assert_eq!(req.body["parse_mode"], "HTML");
    }
}

#[tokio::test]
async fn without_any_linked_chat_the_deprecated_fallback_chat_is_used_or_nothing_is_sent() {
    let bot = StandIn::bot_api().await;
    let app = spawn_bot(&bot, &[("TELEGRAM_CHAT_ID", "-100999")]).await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    app.post_chat(&tokens[0], room, "Nobody here linked a Telegram chat.")
        .await;
    let body = summary_of(&app, &tokens[0], room).await;
    assert_eq!(body["telegram"]["status"], "sent");
    assert_eq!(bot.sent_messages()[0].0, json!(-100_999));

    let bot = StandIn::bot_api().await;
    let app = spawn_bot(&bot, &[]).await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    app.post_chat(&tokens[0], room, "Nobody here linked a Telegram chat.")
        .await;
    let body = summary_of(&app, &tokens[0], room).await;
    assert_eq!(body["telegram"]["status"], "not_linked");
    assert!(bot.sent_messages().is_empty());
}

#[tokio::test]
async fn a_long_summary_is_split_under_telegrams_limit_and_escaped() {
    let long: String = (0..120)
        .map(|i| format!("Point {i}: the <script> & tags stay text, as agreed in item {i}.\n\n"))
        .collect();
    let reply = long.clone();
    let llm = StandIn::llm(move |_, _| Ok(reply.clone())).await;
    let bot = StandIn::bot_api().await;
    let base = format!("{}/v1", llm.base);
    let app = spawn_bot(
        &bot,
        &[
            ("AI_SUMMARY_ENABLED", "true"),
            ("AI_MODEL_PROVIDER", "openai:m"),
            ("AI_BASE_URL", &base),
        ],
    )
    .await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    link(&app, &tokens[0], 111).await;
    let before = bot.sent_messages().len();
    app.post_chat(
        &tokens[1],
        room,
        "A long enough chat message for the model to be asked about it.",
    )
    .await;
    summary_of(&app, &tokens[0], room).await;
    let parts: Vec<String> = bot.sent_messages()[before..]
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    assert!(
        parts.len() >= 2,
        "{} characters in {} parts",
        long.len(),
        parts.len()
    );
    let n = parts.len();
    let mut visible = String::new();
    for (k, part) in parts.iter().enumerate() {
        let text = part
            .replace("<b>", "")
            .replace("</b>", "")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        assert!(
            text.chars().count() <= 4096,
            "part {k} is {} chars",
            text.chars().count()
        );
        assert!(!part.contains("<script>"), "escaped: {part}");
        if k > 0 {
            assert!(part.starts_with(&format!("({}/{n}) ", k + 1)), "{part}");
        }
        visible.push_str(&text);
    }
    let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    for i in [0, 60, 119] {
        assert!(
            squash(&visible).contains(&squash(&format!("Point {i}: the <script> & tags"))),
            "point {i} arrives"
        );
    }
}

#[tokio::test]
async fn set_webhook_registers_the_url_and_secret_with_the_bot_api() {
    let bot = StandIn::bot_api().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |vars: Vec<(&'static str, String)>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_webcall"));
        cmd.args([
            "telegram",
            "set-webhook",
            "--url",
            "https://call.example.org/api/v1/telegram/webhook",
        ])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output()
    };
    let out = run(vec![
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN.to_owned()),
        ("TELEGRAM_API_BASE", bot.base.clone()),
    ])
    .await
    .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TELEGRAM_WEBHOOK_SECRET"));

    let out = run(vec![
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN.to_owned()),
        ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("TELEGRAM_API_BASE", bot.base.clone()),
    ])
    .await
    .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = bot.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, format!("/bot{BOT_TOKEN}/setWebhook"));
    assert_eq!(
        requests[0].body["url"],
        "https://call.example.org/api/v1/telegram/webhook"
    );
    assert_eq!(requests[0].body["secret_token"], WEBHOOK_SECRET);
}
