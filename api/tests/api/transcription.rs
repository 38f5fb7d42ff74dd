//! Server-side transcription through the real server: WebRTC clients publish speech (espeak-ng
//! sentences, Opus-encoded) into a room, the SFU's tap feeds whisper, captions come back over
//! the room socket and the transcript is stored.
//!
//! Tests that need the model read `WEBCALL_TEST_WHISPER_MODEL` (CI builds it once with
//! `scripts/make-test-model.sh`) and skip with a notice when it is unset.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bench::call_client::CallClient;
use bench::tone::{PcmHandle, PcmSource};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{json_of, spawn_from, spawn_with, test_env, TestApp};
use crate::standin::StandIn;
use crate::telegram::{link, BOT_TOKEN, WEBHOOK_SECRET};

pub(crate) fn test_model() -> Option<String> {
    let model = std::env::var("WEBCALL_TEST_WHISPER_MODEL").ok();
    if model.is_none() {
        crate::helpers::unavailable(
            "WEBCALL_TEST_WHISPER_MODEL is not set (scripts/make-test-model.sh)",
        );
    }
    model
}

/// The settings of a transcribing test server: `model`, English, one worker of `threads`.
pub(crate) fn whisper<'a>(model: &'a str, threads: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("WHISPER_MODEL", model),
        ("WHISPER_LANGUAGE", "en"),
        ("WHISPER_WORKERS", "1"),
        ("WHISPER_THREADS", threads),
    ]
}

pub(crate) async fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// espeak-ng speech as 48 kHz 16-bit PCM, with a second of silence after it.
fn speech(text: &str, dir: &Path, name: &str) -> Vec<i16> {
    speech_in("en-us", 150, text, dir, name)
}

/// [`speech`] in an espeak-ng voice (`ru+f2`: Russian) at `speed` words a minute.
pub(crate) fn speech_in(voice: &str, speed: u32, text: &str, dir: &Path, name: &str) -> Vec<i16> {
    let raw = dir.join(format!("{name}.raw.wav"));
    let wav = dir.join(format!("{name}.wav"));
    let ok = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng runs");
    assert!(ok.success());
    let ok = Command::new("sox")
        .arg(&raw)
        .args(["-r", "48000", "-b", "16"])
        .arg(&wav)
        .args(["pad", "0", "1"])
        .status()
        .expect("sox runs");
    assert!(ok.success());
    PcmSource::read_wav(&wav).expect("reads the WAV")
}

pub(crate) async fn speaker(
    app: &TestApp,
    room: i64,
    token: &str,
    pcm: Vec<i16>,
) -> (CallClient, PcmHandle) {
    let (source, handle) = PcmSource::new(pcm).expect("encoder");
    let call = CallClient::join_with_source(&app.base, room, token, Box::new(source))
        .await
        .expect("join");
    (call, handle)
}

pub(crate) fn captions_of(call: &CallClient, user_id: i64) -> Vec<Value> {
    call.messages()
        .into_iter()
        .filter(|m| m["type"] == "caption" && m["user_id"].as_i64() == Some(user_id))
        .collect()
}

/// Waits until `user_id`'s captions on `call` hold three quarters of the words of `said`:
/// whisper has drained what it held of that speaker (a condition to wait for, not a pause).
pub(crate) async fn wait_captioned(call: &CallClient, user_id: i64, said: &str, secs: u64) {
    let want = said.split_whitespace().count() * 3 / 4;
    wait_until(
        &format!("three quarters of {said:?} are captioned"),
        secs,
        || {
            captions_of(call, user_id)
                .iter()
                .filter_map(|c| c["text"].as_str())
                .map(|t| t.split_whitespace().count())
                .sum::<usize>()
                >= want
        },
    )
    .await;
}

/// The room's stored transcript segments, as `token` (a member) reads them.
pub(crate) async fn transcript_segments(app: &TestApp, room: i64, token: &str) -> Vec<Value> {
    let (status, body) = json_of(
        app.get(&format!("/api/v1/rooms/{room}/transcript"), Some(token))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["segments"].as_array().expect("segments").clone()
}

/// One speaker's words in the stored transcript, in order.
fn text_of(segments: &[Value], user_id: i64) -> String {
    segments
        .iter()
        .filter(|s| s["user_id"].as_i64() == Some(user_id))
        .filter_map(|s| s["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `by` turns the room's transcriber on; returns once `by` is told it is on.
async fn start_transcription(by: &CallClient) {
    by.send(json!({"type": "transcription_start"}))
        .expect("send");
    wait_until("the agent is on", 10, || {
        by.saw(|m| m["type"] == "transcription_state" && m["active"] == true)
    })
    .await;
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_transcription_without_a_model_is_a_clear_error_and_calls_still_work() {
    let app = spawn_with(&[]).await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let a = CallClient::join(&app.base, room, &tokens[0], 300.0)
        .await
        .expect("join");
    let b = CallClient::join(&app.base, room, &tokens[1], 500.0)
        .await
        .expect("join");
    a.send(json!({"type": "transcription_start", "request_id": "t1"}))
        .expect("send");
    wait_until("the start is refused", 10, || {
        a.saw(|m| m["type"] == "error" && m["request_id"] == "t1")
    })
    .await;
    let err = a
        .messages()
        .into_iter()
        .find(|m| m["type"] == "error" && m["request_id"] == "t1")
        .expect("error");
    assert_eq!(err["code"], "transcription_unavailable");
    assert!(err["message"].as_str().unwrap_or("").contains("model"));
    wait_until("the call works", 15, || {
        a.packets_from(&b) >= 50 && b.packets_from(&a) >= 50
    })
    .await;
    assert!(!b.saw(|m| m["type"] == "transcription_state"));
    let (status, body) = json_of(
        app.get(
            &format!("/api/v1/rooms/{room}/transcript"),
            Some(&tokens[1]),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["segments"], json!([]));
}

#[tokio::test]
async fn the_transcript_is_for_members_only() {
    let app = spawn_with(&[]).await;
    let (room, _tokens) = app.room_with(&["alice", "bob"]).await;
    let mallory = app.register("mallory").await;
    let (status, body) = json_of(
        app.get(&format!("/api/v1/rooms/{room}/transcript"), Some(&mallory))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = json_of(
        app.get(&format!("/api/v1/rooms/{room}/transcript"), None)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

const ALICE_SAYS: &str = "Good morning everyone, let us begin the meeting.";
const BOB_SAYS: &str = "I will send you the report this afternoon.";
/// espeak-ng's robotic voice alone costs whisper base ~10% WER on average (these two
/// sentences come out exact from `webcall transcribe`); the live path adds Opus and jitter
/// in the VAD's cuts. 0.35 per sentence (3 wrong words of 8-9) leaves room for that and
/// still fails on garbage or on a sentence given to the wrong speaker.
const MAX_WER: f64 = 0.35;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_are_transcribed_live_and_stored_with_the_right_names_in_order() {
    let Some(model) = test_model() else { return };
    let app = spawn_with(&whisper(&model, "2")).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let (alice_id, bob_id) = (app.user_id(&tokens[0]).await, app.user_id(&tokens[1]).await);
    let (alice, alice_voice) =
        speaker(&app, room, &tokens[0], speech(ALICE_SAYS, dir.path(), "a")).await;
    let (bob, bob_voice) = speaker(&app, room, &tokens[1], speech(BOB_SAYS, dir.path(), "b")).await;
    wait_until("media flows both ways", 20, || {
        alice.packets_from(&bob) >= 25 && bob.packets_from(&alice) >= 25
    })
    .await;

    // Bob (a member) turns the agent on; everyone is told.
    bob.send(json!({"type": "transcription_start", "request_id": "on"}))
        .expect("send");
    for call in [&alice, &bob] {
        wait_until("everyone sees the transcription state", 10, || {
            call.saw(|m| {
                m["type"] == "transcription_state"
                    && m["active"] == true
                    && m["by_user_id"] == bob_id
            })
        })
        .await;
    }

    let mut latencies = Vec::new();
    for (voice, user_id, said) in [
        (&alice_voice, alice_id, ALICE_SAYS),
        (&bob_voice, bob_id, BOB_SAYS),
    ] {
        voice.play();
        wait_until("the speech is sent", 20, || voice.finished().is_some()).await;
        // `finished` includes the second of trailing silence: speech ended 1 s before it.
        let speech_end = voice.finished().expect("finished") - Duration::from_secs(1);
        wait_until("the caption arrives", 120, || {
            !captions_of(&alice, user_id).is_empty()
        })
        .await;
        latencies.push(speech_end.elapsed());
        // Whisper drains what it holds of this speaker before the next one talks.
        wait_captioned(&alice, user_id, said, 60).await;
    }
    let wall = |d: Duration| d.as_secs_f64();
    eprintln!(
        "caption latency (end of speech -> caption, upper bound): alice {:.2} s, bob {:.2} s",
        wall(latencies[0]),
        wall(latencies[1])
    );
    // A guard, not the benchmark (bench/reports/caption-latency.md: p95 1.34 s on this
    // machine): past 5 s the deploy/ alert `CaptionLagHigh` fires, so it fails here too.
    assert!(
        latencies.iter().all(|l| *l < Duration::from_secs(5)),
        "a final caption took 5 s or more after the end of speech: {latencies:?}"
    );

    // Captions name the speaker, on both sockets.
    for call in [&alice, &bob] {
        for (user_id, name) in [(alice_id, "alice"), (bob_id, "bob")] {
            let caps = captions_of(call, user_id);
            assert!(!caps.is_empty(), "{name}'s words reach everyone");
            assert!(caps.iter().all(|c| c["username"] == name));
        }
    }
    let caption_participants: Vec<u64> = captions_of(&alice, alice_id)
        .iter()
        .filter_map(|c| c["participant_id"].as_u64())
        .collect();
    assert!(caption_participants
        .iter()
        .all(|p| *p == alice.participant_id));

    // The stored transcript: in time order, each sentence under the right user.
    let segments = transcript_segments(&app, room, &tokens[0]).await;
    let starts: Vec<i64> = segments
        .iter()
        .filter_map(|s| s["start_ms"].as_i64())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "time order: {starts:?}"
    );
    let (alice_text, bob_text) = (text_of(&segments, alice_id), text_of(&segments, bob_id));
    let alice_wer = transcriber::wer::wer(ALICE_SAYS, &alice_text);
    let bob_wer = transcriber::wer::wer(BOB_SAYS, &bob_text);
    eprintln!("live: alice {alice_text:?} WER {alice_wer:.2}; bob {bob_text:?} WER {bob_wer:.2}");
    assert!(
        alice_wer <= MAX_WER,
        "alice: {alice_text:?} WER {alice_wer}"
    );
    assert!(bob_wer <= MAX_WER, "bob: {bob_text:?} WER {bob_wer}");
    let first_bob = segments
        .iter()
        .position(|s| s["user_id"].as_i64() == Some(bob_id))
        .expect("bob spoke");
    let last_alice = segments
        .iter()
        .rposition(|s| s["user_id"].as_i64() == Some(alice_id))
        .expect("alice spoke");
    assert!(last_alice < first_bob, "alice spoke first");

    // Bob started it, so Bob may stop it (who else may: the permission table's test).
    bob.send(json!({"type": "transcription_stop", "request_id": "off2"}))
        .expect("send");
    wait_until("everyone is told it stopped", 10, || {
        alice.saw(|m| m["type"] == "transcription_state" && m["active"] == false)
    })
    .await;
    let mut sorted: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64()).collect();
    sorted.sort_by(f64::total_cmp);
    eprintln!(
        "caption latency p50 {:.2} s p95 {:.2} s over {} utterances",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.95),
        sorted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_transcriber_drops_audio_but_captions_flow_and_forwarding_does_not_suffer() {
    let Some(model) = test_model() else { return };
    let app = spawn_with(&whisper(&model, "1")).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let names = ["speaker1", "speaker2", "speaker3", "speaker4"];
    let (room, tokens) = app.room_with(&names).await;
    // Each speaker says a sentence five times, a second apart (five utterances): four
    // speakers at once is far more audio than one single-threaded worker transcribes in
    // real time.
    let once = speech(
        "The quick brown fox jumps over the lazy dog.",
        dir.path(),
        "fox",
    );
    let pcm: Vec<i16> = std::iter::repeat_n(once, 5).flatten().collect();
    let mut calls = Vec::new();
    for token in &tokens {
        calls.push(speaker(&app, room, token, pcm.clone()).await);
    }
    wait_until("media flows", 20, || {
        calls.iter().all(|(me, _)| {
            calls
                .iter()
                .filter(|(o, _)| o.participant_id != me.participant_id)
                .all(|(o, _)| me.packets_from(o) >= 25)
        })
    })
    .await;
    calls[0]
        .0
        .send(json!({"type": "transcription_start"}))
        .expect("send");
    wait_until("transcription is on", 10, || {
        calls[0]
            .0
            .saw(|m| m["type"] == "transcription_state" && m["active"] == true)
    })
    .await;
    let received = |me: &CallClient| -> u64 {
        calls
            .iter()
            .filter(|(o, _)| o.participant_id != me.participant_id)
            .map(|(o, _)| me.packets_from(o))
            .sum()
    };
    let before: Vec<u64> = calls.iter().map(|(c, _)| received(c)).collect();
    let started = Instant::now();
    for (_, voice) in &calls {
        voice.play();
    }
    wait_until("everyone has spoken", 30, || {
        calls.iter().all(|(_, v)| v.finished().is_some())
    })
    .await;
    let spoken = started.elapsed();
    wait_until("captions keep flowing", 120, || {
        calls[0]
            .0
            .messages()
            .iter()
            .filter(|m| m["type"] == "caption")
            .count()
            >= 2
    })
    .await;
    // Forwarding: each client received ~50 packets/s from each of the 3 others meanwhile.
    for ((call, _), before) in calls.iter().zip(&before) {
        let got = received(call) - before;
        let expected = 3.0 * 50.0 * spoken.as_secs_f64();
        assert!(
            got as f64 >= expected * 0.95,
            "forwarding lost audio under transcription load: {got} of ~{expected:.0}"
        );
    }
    let mut dropped = 0.0;
    for _ in 0..60 {
        let metrics = app.metrics().await;
        dropped = metrics
            .lines()
            .find(|l| l.starts_with("transcriber_dropped_utterances_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if dropped >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("dropped utterances: {dropped}");
    assert!(dropped >= 1.0, "the overload dropped (and counted) audio");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_agent_summarises_the_live_transcript_and_sends_it_to_the_linked_chat() {
    let Some(model) = test_model() else { return };
    let llm = StandIn::llm(|_, req| {
        let input = req.body["messages"][1]["content"].as_str().unwrap_or("");
        let lines = input.lines().filter(|l| l.starts_with('[')).count();
        Ok(format!(
            "Main topics:\n- The meeting started; a report is due this afternoon ({lines} lines read).\nDecisions:\n- Bob sends the report."
        ))
    })
    .await;
    let bot = StandIn::bot_api().await;
    let ai_base = format!("{}/v1", llm.base);
    let mut settings = whisper(&model, "2");
    settings.extend([
        ("AI_SUMMARY_ENABLED", "true"),
        ("AI_MODEL_PROVIDER", "openai:meeting-model"),
        ("AI_BASE_URL", &ai_base),
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN),
        ("TELEGRAM_BOT_USERNAME", "webcall_test_bot"),
        ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("TELEGRAM_API_BASE", &bot.base),
    ]);
    let app = spawn_with(&settings).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    link(&app, &tokens[0], 4242).await;
    let (alice, alice_voice) =
        speaker(&app, room, &tokens[0], speech(ALICE_SAYS, dir.path(), "a")).await;
    let (bob, bob_voice) = speaker(&app, room, &tokens[1], speech(BOB_SAYS, dir.path(), "b")).await;
    wait_until("media flows both ways", 20, || {
        alice.packets_from(&bob) >= 25 && bob.packets_from(&alice) >= 25
    })
    .await;
    alice
        .send(json!({"type": "transcription_start", "request_id": "on"}))
        .expect("send");
    wait_until("the agent is on", 10, || {
        bob.saw(|m| m["type"] == "transcription_state" && m["active"] == true)
    })
    .await;
    for voice in [&alice_voice, &bob_voice] {
        voice.play();
        wait_until("the speech is sent", 20, || voice.finished().is_some()).await;
    }
    app.post_chat(&tokens[1], room, "Report draft: https://example.org/report")
        .await;

    // Stop right away: what whisper still works on must make it into the summary.
    let asked = Instant::now();
    alice
        .send(json!({"type": "agent_summary", "request_id": "sum"}))
        .expect("send");
    wait_until("the summary reaches the room", 120, || {
        bob.saw(|m| m["type"] == "summary")
    })
    .await;
    eprintln!(
        "summary {:.2} s after agent_summary",
        asked.elapsed().as_secs_f64()
    );
    wait_until("the asker's ack", 10, || {
        alice.saw(|m| m["type"] == "ack" && m["request_id"] == "sum")
    })
    .await;
    assert!(bob.saw(|m| m["type"] == "transcription_state" && m["active"] == false));
    let summary = bob
        .messages()
        .into_iter()
        .find(|m| m["type"] == "summary")
        .expect("summary")["summary"]
        .clone();
    assert_eq!(summary["source"], "ai");
    assert_eq!(summary["model"], "meeting-model");

    let requests = llm.requests();
    assert_eq!(requests.len(), 1);
    let input = requests[0].body["messages"][1]["content"]
        .as_str()
        .expect("user message")
        .to_owned();
    let said_by = |name: &str| {
        input
            .lines()
            .filter_map(|l| l.split_once(&format!("] {name}: ")).map(|(_, t)| t))
            .take_while(|t| !t.starts_with("Report draft"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (alice_text, bob_text) = (said_by("alice"), said_by("bob"));
    assert!(
        transcriber::wer::wer(ALICE_SAYS, &alice_text) <= MAX_WER,
        "alice: {input}"
    );
    assert!(
        transcriber::wer::wer(BOB_SAYS, &bob_text) <= MAX_WER,
        "bob: {input}"
    );
    let voice_at = input.find("] bob: ").expect("bob's speech");
    let chat_at = input.find("bob: Report draft").expect("the chat");
    assert!(voice_at < chat_at, "transcript first, then chat:\n{input}");

    let sent = bot.sent_messages();
    let delivered = sent
        .iter()
        .find(|(chat, text)| *chat == json!(4242) && text.contains("meeting summary"))
        .map(|(_, text)| text.clone())
        .expect("sent to alice's chat");
    assert!(delivered.contains("Bob sends the report."), "{delivered}");
    assert!(
        sent.iter().all(|(chat, _)| *chat == json!(4242)),
        "only alice: {sent:?}"
    );

    // The example in the issue's note: the real input, and the heuristic on the same session.
    let (_, transcript) = json_of(
        app.get(
            &format!("/api/v1/rooms/{room}/transcript"),
            Some(&tokens[0]),
        )
        .await,
    )
    .await;
    let line =
        |who: &Value, start: &Value, end: &Value, text: &Value| api::agent::heuristic::Line {
            speaker: who.as_str().unwrap_or("").to_owned(),
            start_ms: start.as_i64().unwrap_or(0),
            end_ms: end.as_i64().unwrap_or(0),
            text: text.as_str().unwrap_or("").to_owned(),
        };
    let utterances: Vec<_> = transcript["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| line(&s["username"], &s["start_ms"], &s["end_ms"], &s["text"]))
        .collect();
    let chat = [line(
        &json!("bob"),
        &json!(0),
        &json!(0),
        &json!("Report draft: https://example.org/report"),
    )];
    let heuristic = api::agent::heuristic::heuristic_summary(
        &utterances,
        &chat,
        api::agent::heuristic::HeuristicReason::NoProvider,
    );
    eprintln!(
        "--- summary input (as the model got it) ---\n{input}--- model output ---\n{}\n--- heuristic on the same session ---\n{heuristic}",
        summary["text"].as_str().unwrap_or("")
    );
}

/// Two nodes on one Redis and one database: alice's socket is on node A, bob's on node B, and
/// the room's media on whichever node it was placed (docs/scale-out.md), so that node's
/// transcriber hears both. Alice turns the agent on at A; every node follows, bob's words go
/// into the room's one session, and the summary triggered at A has both. Runs in CI's
/// PostgreSQL + Redis pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_entered_through_two_nodes_is_transcribed_into_one_session() {
    let Some(model) = test_model() else { return };
    let Some(redis_url) = crate::helpers::shared_redis_url("cross-node transcription") else {
        return;
    };
    let (mut env, _data) = test_env().await;
    for (k, v) in whisper(&model, "1")
        .into_iter()
        .chain([("REDIS_URL", redis_url.as_str())])
    {
        env.insert(k.to_owned(), v.to_owned());
    }
    let node_a = spawn_from(env.clone()).await;
    let node_b = spawn_from(env).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (room, tokens) = node_a.room_with(&["alice", "bob"]).await;
    let bob_id = node_a.user_id(&tokens[1]).await;
    let (alice, alice_voice) = speaker(
        &node_a,
        room,
        &tokens[0],
        speech(ALICE_SAYS, dir.path(), "a"),
    )
    .await;
    let (bob, bob_voice) =
        speaker(&node_b, room, &tokens[1], speech(BOB_SAYS, dir.path(), "b")).await;
    wait_until("both media paths are up", 20, || {
        alice.join_time().is_some() && bob.join_time().is_some()
    })
    .await;
    alice
        .send(json!({"type": "transcription_start", "request_id": "on"}))
        .expect("send");
    wait_until("bob, on the other node, is told", 10, || {
        bob.saw(|m| m["type"] == "transcription_state" && m["active"] == true)
    })
    .await;
    for voice in [&alice_voice, &bob_voice] {
        voice.play();
        wait_until("the speech is sent", 20, || voice.finished().is_some()).await;
    }
    let transcript = || async {
        let (_, body) = json_of(
            node_a
                .get(
                    &format!("/api/v1/rooms/{room}/transcript"),
                    Some(&tokens[0]),
                )
                .await,
        )
        .await;
        body["segments"].as_array().cloned().unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let bob_text = loop {
        let segments = transcript().await;
        let text: Vec<&str> = segments
            .iter()
            .filter(|s| s["user_id"].as_i64() == Some(bob_id))
            .filter_map(|s| s["text"].as_str())
            .collect();
        if !text.is_empty() {
            break text.join(" ");
        }
        assert!(
            Instant::now() < deadline,
            "bob's words never arrived: {segments:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        transcriber::wer::wer(BOB_SAYS, &bob_text) <= MAX_WER,
        "bob: {bob_text:?}"
    );

    alice
        .send(json!({"type": "agent_summary", "request_id": "sum"}))
        .expect("send");
    wait_until("the summary reaches bob on node B", 60, || {
        bob.saw(|m| m["type"] == "summary")
    })
    .await;
    let summary = bob
        .messages()
        .into_iter()
        .find(|m| m["type"] == "summary")
        .expect("summary")["summary"]
        .clone();
    let text = summary["text"].as_str().unwrap_or("");
    assert!(
        text.contains("alice") && text.contains("bob"),
        "both speakers: {text}"
    );
    assert!(summary["segments"].as_i64().unwrap_or(0) >= 2, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_who_rejoins_stays_one_speaker_and_nothing_is_lost_or_doubled() {
    const AGAIN: &str = "Please remember to send the slides before the meeting tomorrow.";
    let Some(model) = test_model() else { return };
    let app = spawn_with(&whisper(&model, "2")).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let bob_id = app.user_id(&tokens[1]).await;
    let (alice, _quiet) = speaker(&app, room, &tokens[0], vec![0; 4800]).await;
    let (bob, bob_voice) = speaker(&app, room, &tokens[1], speech(BOB_SAYS, dir.path(), "b")).await;
    wait_until("media flows", 20, || alice.packets_from(&bob) >= 25).await;
    start_transcription(&alice).await;
    bob_voice.play();
    wait_until("bob's first caption", 120, || {
        !captions_of(&alice, bob_id).is_empty()
    })
    .await;

    // Bob's tab loses its network and comes back: a new socket and media connection while
    // the server still holds the old ones. The new participant replaces the old.
    bob.vanish();
    let (bob2, bob2_voice) = speaker(&app, room, &tokens[1], speech(AGAIN, dir.path(), "b2")).await;
    assert_ne!(bob2.participant_id, bob.participant_id);
    wait_until("alice hears the rejoined bob", 20, || {
        alice.packets_from(&bob2) >= 25
    })
    .await;
    assert!(alice.saw(|m| {
        m["type"] == "participant_left"
            && m["participant_id"].as_u64() == Some(bob.participant_id)
            && m["reason"] == "replaced"
    }));
    bob2_voice.play();
    wait_until("bob's second caption", 120, || {
        captions_of(&alice, bob_id)
            .iter()
            .any(|c| c["participant_id"].as_u64() == Some(bob2.participant_id))
    })
    .await;
    wait_captioned(&alice, bob_id, &format!("{BOB_SAYS} {AGAIN}"), 60).await;

    // One speaker, both sentences, each once, in order.
    let segments = transcript_segments(&app, room, &tokens[0]).await;
    assert!(
        segments
            .iter()
            .all(|s| s["user_id"].as_i64() == Some(bob_id) && s["username"] == "bob"),
        "{segments:?}"
    );
    let texts: Vec<&str> = segments.iter().filter_map(|s| s["text"].as_str()).collect();
    let mut unique = texts.clone();
    unique.dedup();
    assert_eq!(unique.len(), texts.len(), "no segment twice: {texts:?}");
    let said = texts.join(" ");
    let wer = transcriber::wer::wer(&format!("{BOB_SAYS} {AGAIN}"), &said);
    eprintln!("across a rejoin: {said:?} WER {wer:.2}");
    assert!(wer <= MAX_WER, "{said:?} WER {wer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_large_room_a_speaker_nobody_hears_is_still_transcribed() {
    let Some(model) = test_model() else { return };
    // One audio slot, the room large from its first join: while alice holds the slot, bob
    // talking at the same time is forwarded to nobody but alice (the spare place).
    let mut settings = whisper(&model, "2");
    settings.extend([("SFU_AUDIO_SLOTS", "1"), ("SFU_AUDIO_SLOTS_ABOVE", "0")]);
    let app = spawn_with(&settings).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (room, tokens) = app.room_with(&["alice", "bob", "carol"]).await;
    let (alice_id, bob_id) = (app.user_id(&tokens[0]).await, app.user_id(&tokens[1]).await);
    // Alice talks on well past bob's end, so the slot stays hers while bob talks.
    let alice_says = format!("{ALICE_SAYS} We have a long list to go through this morning.");
    let (alice, alice_voice) =
        speaker(&app, room, &tokens[0], speech(&alice_says, dir.path(), "a")).await;
    let (bob, bob_voice) = speaker(&app, room, &tokens[1], speech(BOB_SAYS, dir.path(), "b")).await;
    let carol = CallClient::join(&app.base, room, &tokens[2], 0.0)
        .await
        .expect("carol joins");
    wait_until("everyone is connected", 20, || {
        [&alice, &bob, &carol]
            .iter()
            .all(|c| c.stats().connected_after.is_some())
    })
    .await;
    start_transcription(&carol).await;

    alice_voice.play();
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob_voice.play();
    wait_until("both have spoken", 30, || {
        alice_voice.finished().is_some() && bob_voice.finished().is_some()
    })
    .await;
    // Carol heard alice on her slot and not bob: the room's one slot was taken.
    assert!(carol.packets_from(&alice) >= 50, "carol hears alice");
    assert!(
        carol.packets_from(&bob) < 25,
        "bob was not forwarded to carol: {} packets",
        carol.packets_from(&bob)
    );
    // The transcript has both: the transcriber gets every unmuted track, heard or not.
    wait_captioned(&carol, alice_id, &alice_says, 120).await;
    wait_captioned(&carol, bob_id, BOB_SAYS, 120).await;
    let segments = transcript_segments(&app, room, &tokens[2]).await;
    for (user_id, said) in [(alice_id, alice_says.as_str()), (bob_id, BOB_SAYS)] {
        let text = text_of(&segments, user_id);
        let wer = transcriber::wer::wer(said, &text);
        assert!(wer <= MAX_WER, "{text:?} WER {wer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_still_in_the_transcriber_at_shutdown_is_stored_before_the_server_stops() {
    let Some(model) = test_model() else { return };
    let (mut env, data) = test_env().await;
    for (k, v) in whisper(&model, "2") {
        env.insert(k.to_owned(), v.to_owned());
    }
    env.insert("WHISPER_PARTIALS".into(), "off".into());
    // A slow CI machine gets time; the point is that the deadline isn't zero.
    env.insert("TRANSCRIPTION_FLUSH_SECS".into(), "60".into());
    let store_url = env
        .get("DATABASE_URL")
        .cloned()
        .unwrap_or_else(|| api::db::Store::sqlite_url_in(data.path()));
    let app = spawn_from(env).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (room, tokens) = app.room_with(&["alice"]).await;
    let alice_id = app.user_id(&tokens[0]).await;
    let (alice, voice) = speaker(&app, room, &tokens[0], speech(ALICE_SAYS, dir.path(), "a")).await;
    alice
        .send(json!({"type": "transcription_start", "request_id": "on"}))
        .expect("send");
    wait_until("the transcription runs", 10, || {
        alice.saw(|m| m["type"] == "transcription_state" && m["active"] == true)
    })
    .await;
    voice.play();
    wait_until("the speech is sent", 20, || voice.finished().is_some()).await;
    let captioned_before_stop = !captions_of(&alice, alice_id).is_empty();
    // SIGTERM while whisper may still hold the utterance.
    app.stop().await;
    eprintln!("captioned before the stop: {captioned_before_stop}");

    let store = api::db::Store::connect(&store_url).await.expect("store");
    let segments = store.transcript(room, 100).await.expect("transcript");
    let text: String = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        !segments.is_empty(),
        "the utterance heard before the shutdown is in the transcript"
    );
    assert!(text.to_lowercase().contains("meeting"), "{text}");
    store.close().await;
    drop(data);
}
