//! The AI agent's summaries through the real server: which session is summarised, what the
//! OpenAI-compatible endpoint receives (a local stand-in), the fallback chain down to the
//! heuristic, one summary per session, permissions, the prompt API, and the room socket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use api::db::{now_millis, NewSegment};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{expect_error, json_of, spawn_with, TestApp};
use crate::standin::{dead_base, StandIn};

const CUSTOM_PROMPT: &str = "Summarise as three haiku, in English.";

/// Settings of a server whose model endpoint is `base`.
fn ai_env(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AI_SUMMARY_ENABLED", "true".to_owned()),
        ("AI_MODEL_PROVIDER", "openai:main-model".to_owned()),
        ("AI_MODEL_FALLBACK", "backup-model".to_owned()),
        ("OPENAI_API_KEY", "sk-test-key".to_owned()),
        ("AI_BASE_URL", format!("{base}/v1")),
        ("AI_TIMEOUT_SECS", "5".to_owned()),
    ]
}

async fn spawn_ai(base: &str, extra: &[(&str, &str)]) -> TestApp {
    let env = ai_env(base);
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.extend_from_slice(extra);
    spawn_with(&pairs).await
}

/// An agent session that started a minute ago and heard `lines` (user id, text, seconds
/// after the start), as the transcriber would have stored them. Tests without a speech model
/// use it; the live path is covered by the model test at the end.
async fn seed_session(app: &TestApp, room: i64, starter: i64, lines: &[(i64, &str, i64)]) -> i64 {
    let store = app.store().await;
    let started = now_millis() - 60_000;
    let session = store
        .open_agent_session(room, starter, started)
        .await
        .expect("session");
    for (i, (user, text, at)) in lines.iter().enumerate() {
        store
            .insert_segment(
                &NewSegment {
                    room_id: room,
                    session_id: Some(session.id),
                    user_id: *user,
                    participant_id: i64::try_from(i).unwrap_or(0) + 1,
                    start_ms: started + at * 1000,
                    end_ms: started + at * 1000 + 2500,
                    text,
                },
                now_millis(),
            )
            .await
            .expect("segment");
    }
    store.close().await;
    session.id
}

async fn summarise(app: &TestApp, token: &str, room: i64) -> (StatusCode, Value) {
    json_of(
        app.post(
            &format!("/api/v1/rooms/{room}/summary"),
            Some(token),
            json!({}),
        )
        .await,
    )
    .await
}

/// A room of alice and bob (or the two `names`) with a seeded session and one chat message.
async fn meeting(app: &TestApp) -> (i64, Vec<String>, Vec<i64>) {
    meeting_of(app, ["alice", "bob"]).await
}

async fn meeting_of(app: &TestApp, names: [&str; 2]) -> (i64, Vec<String>, Vec<i64>) {
    let (room, tokens) = app.room_with(&names).await;
    let mut ids = Vec::new();
    for t in &tokens {
        ids.push(app.user_id(t).await);
    }
    seed_session(
        app,
        room,
        ids[0],
        &[
            (
                ids[0],
                "Good morning everyone, let us review the release plan.",
                2,
            ),
            (ids[1], "I will send you the report this afternoon.", 9),
            (ids[0], "We decided to ship the release on Friday.", 15),
        ],
    )
    .await;
    app.post_chat(&tokens[1], room, "Draft notes: https://example.org/notes")
        .await;
    (room, tokens, ids)
}

#[tokio::test]
async fn the_model_gets_the_key_the_model_name_the_custom_prompt_and_the_attributed_transcript() {
    let llm =
        StandIn::llm(|_, _| Ok("- Release ships on Friday.\n- Bob sends the report.".into())).await;
    let app = spawn_ai(&llm.base, &[]).await;
    let (room, tokens, _) = meeting(&app).await;
    let (status, _) = json_of(
        app.request(Method::PUT, "/api/v1/ai/prompt", Some(&tokens[0]))
            .json(&json!({"prompt": CUSTOM_PROMPT}))
            .send()
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = summarise(&app, &tokens[0], room).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let summary = &body["summary"];
    assert_eq!(summary["source"], "ai");
    assert_eq!(summary["model"], "main-model");
    assert_eq!(
        summary["text"],
        "- Release ships on Friday.\n- Bob sends the report."
    );
    assert_eq!(
        (summary["segments"].as_i64(), summary["messages"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(body["telegram"]["status"], "disabled");

    let requests = llm.requests();
    assert_eq!(requests.len(), 1, "one request, no retry");
    let req = &requests[0];
    assert_eq!(
        (&req.method, req.path.as_str()),
        (&Method::POST, "/v1/chat/completions")
    );
    assert_eq!(req.header("authorization"), Some("Bearer sk-test-key"));
    assert_eq!(req.body["model"], "main-model");
    // The operator pays per token: the answer is bounded (AI_MAX_TOKENS, default 1024).
    assert_eq!(req.body["max_tokens"], 1024);
    assert_eq!(req.body["messages"][0]["role"], "system");
    assert_eq!(req.body["messages"][0]["content"], CUSTOM_PROMPT);
    let user = req.body["messages"][1]["content"]
        .as_str()
        .expect("user message");
    let alice = user
        .find("[00:02] alice: Good morning everyone, let us review the release plan.")
        .expect("alice's words, attributed and timed");
    let bob = user
        .find("[00:09] bob: I will send you the report this afternoon.")
        .expect("bob's words");
    let chat = user
        .find("bob: Draft notes: https://example.org/notes")
        .expect("the chat");
    assert!(
        alice < bob && bob < chat,
        "transcript first, in order, then chat:\n{user}"
    );
    assert!(user.contains("Meeting: Call"), "{user}");
}

#[tokio::test]
async fn a_short_session_gets_the_heuristic_summary_without_calling_the_model() {
    let llm = StandIn::llm(|_, _| Ok("never used".into())).await;
    let app = spawn_ai(&llm.base, &[]).await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let alice = app.user_id(&tokens[0]).await;
    seed_session(&app, room, alice, &[(alice, "Hi all.", 1)]).await;
    app.post_chat(&tokens[1], room, "hello").await;

    let (status, body) = summarise(&app, &tokens[0], room).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["summary"]["source"], "heuristic");
    assert_eq!(body["summary"]["reason"], "short");
    let text = body["summary"]["text"].as_str().expect("text");
    assert!(text.contains("too short"), "{text}");
    assert!(text.contains("Hi all.") && text.contains("hello"), "{text}");
    assert!(llm.requests().is_empty(), "the model was not asked");
}

#[tokio::test]
async fn a_failing_model_falls_back_to_the_second_model_and_then_to_the_heuristic() {
    let backup_down = Arc::new(AtomicBool::new(false));
    let down = backup_down.clone();
    let llm = StandIn::llm(move |model, _| match model {
        "backup-model" if !down.load(Ordering::SeqCst) => Ok("Backup summary.".into()),
        _ => Err(503),
    })
    .await;
    let app = spawn_ai(&llm.base, &[]).await;

    let (room, tokens, _) = meeting(&app).await;
    let (status, body) = summarise(&app, &tokens[0], room).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["summary"]["source"], "ai");
    assert_eq!(body["summary"]["model"], "backup-model");
    let models: Vec<String> = llm
        .requests()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        models,
        ["main-model", "main-model", "backup-model"],
        "one retry, then the fallback"
    );

    backup_down.store(true, Ordering::SeqCst);
    let (room, tokens, _) = meeting_of(&app, ["alice2", "bob2"]).await;
    let (status, body) = summarise(&app, &tokens[0], room).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["summary"]["source"], "heuristic");
    assert_eq!(body["summary"]["reason"], "provider_failed");
    let text = body["summary"]["text"].as_str().expect("text");
    assert!(text.contains("could not be reached"), "{text}");
    assert!(
        text.contains("alice2") && text.contains("bob2"),
        "who spoke: {text}"
    );
    assert!(
        text.contains("ship the release on Friday"),
        "the decision: {text}"
    );
    assert_eq!(llm.requests().len(), 3 + 4, "two tries of each model");
}

#[tokio::test]
async fn an_unreachable_endpoint_gives_the_heuristic_and_no_model_configured_too() {
    let app = spawn_ai(&dead_base().await, &[]).await;
    let (room, tokens, _) = meeting(&app).await;
    let (status, body) = summarise(&app, &tokens[0], room).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["summary"]["reason"], "provider_failed");

    let plain = spawn_with(&[]).await;
    let (room, tokens, _) = meeting(&plain).await;
    let (status, body) = summarise(&plain, &tokens[0], room).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["summary"]["source"], "heuristic");
    assert_eq!(body["summary"]["reason"], "no_provider");
}

#[tokio::test]
async fn a_session_is_summarised_once_and_members_read_its_summaries() {
    let llm = StandIn::llm(|_, _| Ok("The summary.".into())).await;
    let app = spawn_ai(&llm.base, &[]).await;
    let (room, tokens, _) = meeting(&app).await;
    let (status, first) = summarise(&app, &tokens[0], room).await;
    assert_eq!(status, StatusCode::CREATED);
    // The agent is stopped now: any member may ask again and gets the stored summary.
    let (status, again) = summarise(&app, &tokens[1], room).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(again["telegram"]["status"], "repeat");
    assert_eq!(again["summary"]["id"], first["summary"]["id"]);
    assert_eq!(llm.requests().len(), 1, "the model wrote it once");

    let (status, list) = json_of(
        app.get(&format!("/api/v1/rooms/{room}/summaries"), Some(&tokens[1]))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["summaries"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["summaries"][0]["text"], "The summary.");
    assert_eq!(list["summaries"][0]["requested_by_name"], "alice");

    let mallory = app.register("mallory").await;
    let res = app
        .get(&format!("/api/v1/rooms/{room}/summaries"), Some(&mallory))
        .await;
    expect_error(res, StatusCode::NOT_FOUND).await;
    let res = app
        .post(
            &format!("/api/v1/rooms/{room}/summary"),
            Some(&mallory),
            json!({}),
        )
        .await;
    expect_error(res, StatusCode::NOT_FOUND).await;
    let res = app
        .post(&format!("/api/v1/rooms/{room}/summary"), None, json!({}))
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn only_the_starter_moderators_and_the_owner_may_stop_a_running_agent() {
    let app = spawn_with(&[]).await;
    let (room, tokens) = app.room_with(&["owner", "starter", "carol"]).await;
    let starter = app.user_id(&tokens[1]).await;
    let session = seed_session(
        &app,
        room,
        starter,
        &[(starter, "Let us start the weekly sync now.", 1)],
    )
    .await;
    let err = expect_error(
        app.post(
            &format!("/api/v1/rooms/{room}/summary"),
            Some(&tokens[2]),
            json!({}),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(err["code"], "forbidden");
    // Nothing happened: the session still runs and has no summary.
    let store = app.store().await;
    let latest = store
        .latest_agent_session(room)
        .await
        .expect("db")
        .expect("session");
    assert_eq!((latest.id, latest.ended_at), (session, None));
    assert!(store
        .summary_of_session(session)
        .await
        .expect("db")
        .is_none());
    store.close().await;

    let (status, body) = summarise(&app, &tokens[1], room).await;
    assert_eq!(status, StatusCode::CREATED, "the starter may: {body}");
    assert_eq!(body["summary"]["session_id"], session);
}

#[tokio::test]
async fn a_room_whose_agent_never_ran_gets_a_summary_of_its_chat() {
    let app = spawn_with(&[]).await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    app.post_chat(&tokens[0], room, "Should we move the demo to Thursday?")
        .await;
    app.post_chat(
        &tokens[1],
        room,
        "Agreed, we will move the demo to Thursday afternoon.",
    )
    .await;
    let (status, body) = summarise(&app, &tokens[1], room).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["summary"]["segments"], 0);
    assert_eq!(body["summary"]["messages"], 2);
    let text = body["summary"]["text"].as_str().expect("text");
    assert!(
        text.contains("Should we move the demo to Thursday?"),
        "open question: {text}"
    );
}

#[tokio::test]
async fn the_prompt_api_keeps_custom_prompts_within_10_to_4000_characters() {
    let app = spawn_with(&[]).await;
    let token = app.register("alice").await;
    let prompt = |method: Method, body: Option<Value>| {
        let mut req = app.request(method, "/api/v1/ai/prompt", Some(&token));
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move { json_of(req.send().await.expect("request")).await }
    };
    let (status, default) = prompt(Method::GET, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(default["is_default"], true);
    assert!(default["prompt"]
        .as_str()
        .unwrap_or("")
        .contains("language"));

    for bad in ["too short", &"x".repeat(4001)] {
        let (status, body) = prompt(Method::PUT, Some(json!({"prompt": bad}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["field"], "prompt");
    }
    let (status, body) = prompt(Method::PUT, Some(json!({"prompt": 42}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let (status, saved) = prompt(Method::PUT, Some(json!({"prompt": CUSTOM_PROMPT}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (saved["prompt"].as_str(), saved["is_default"].as_bool()),
        (Some(CUSTOM_PROMPT), Some(false))
    );
    let (_, now) = prompt(Method::GET, None).await;
    assert_eq!(now["prompt"], CUSTOM_PROMPT);

    // Saving the default text is the same as the default.
    let (_, same) = prompt(Method::PUT, Some(json!({"prompt": default["prompt"]}))).await;
    assert_eq!(same["is_default"], true);
    prompt(Method::PUT, Some(json!({"prompt": CUSTOM_PROMPT}))).await;
    let (status, reset) = prompt(Method::DELETE, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reset["is_default"], true);
    assert_eq!(reset["prompt"], default["prompt"]);

    let res = app.get("/api/v1/ai/prompt", None).await;
    expect_error(res, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn agent_summary_on_the_room_socket_reaches_everyone_and_a_repeat_only_the_asker() {
    let llm = StandIn::llm(|_, _| Ok("Socket summary.".into())).await;
    let app = spawn_ai(&llm.base, &[]).await;
    let (room, tokens, _) = meeting(&app).await;
    let mut alice = app.room_ws(&tokens[0], room).await;
    let mut bob = app.room_ws(&tokens[1], room).await;
    alice.join().await;
    bob.join().await;

    alice
        .send(json!({"type": "agent_summary", "request_id": "s1"}))
        .await;
    let to_bob = bob.recv_type("summary").await;
    assert_eq!(to_bob["summary"]["text"], "Socket summary.");
    assert!(to_bob.get("request_id").is_none());
    // The asker gets the room's `summary` and the `ack` of the command, in either order.
    let (mut summary_id, mut acked) = (None, false);
    while summary_id.is_none() || !acked {
        let m = alice.recv().await;
        match m["type"].as_str() {
            Some("summary") => summary_id = Some(m["summary"]["id"].clone()),
            Some("ack") => acked = m["request_id"] == "s1",
            _ => {}
        }
    }
    assert_eq!(summary_id, Some(to_bob["summary"]["id"].clone()));

    bob.send(json!({"type": "agent_summary", "request_id": "s2"}))
        .await;
    let repeat = bob.recv_type("summary").await;
    assert_eq!(repeat["request_id"], "s2");
    assert_eq!(repeat["summary"]["id"], to_bob["summary"]["id"]);
    alice.expect_silence(300).await;

    // Before joining the call, the socket is told to join first.
    let mut carol = app.room_ws(&tokens[1], room).await;
    carol
        .send(json!({"type": "agent_summary", "request_id": "s3"}))
        .await;
    let err = carol.recv_type("error").await;
    assert_eq!(err["code"], "not_joined");
}

#[tokio::test]
async fn past_a_users_hourly_budget_summaries_are_heuristic_and_the_model_is_not_asked() {
    let llm = StandIn::llm(|_, _| Ok("- Release ships on Friday.".into())).await;
    let app = spawn_ai(
        &llm.base,
        &[
            ("AI_SUMMARIES_PER_USER_PER_HOUR", "1"),
            ("AI_MAX_TOKENS", "200"),
        ],
    )
    .await;
    let (room, tokens, ids) = meeting(&app).await;
    let (status, body) = summarise(&app, &tokens[0], room).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["summary"]["source"], "ai");
    // A second session, summarised by the same user within the hour.
    seed_session(
        &app,
        room,
        ids[0],
        &[(
            ids[0],
            "We decided to move the launch to Monday after all.",
            3,
        )],
    )
    .await;
    app.post_chat(&tokens[1], room, "One more note for the second meeting")
        .await;
    let (status, body) = summarise(&app, &tokens[0], room).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["summary"]["source"], "heuristic");
    assert_eq!(body["summary"]["reason"], "limited");
    let requests = llm.requests();
    assert_eq!(requests.len(), 1, "the model was asked once");
    assert_eq!(requests[0].body["max_tokens"], 200);
}
