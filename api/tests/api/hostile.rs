//! Hostile input through the real server, message type by message type: every frame gets a
//! clear answer (an `error` with a known code, or the normal reply), and the other people in
//! the call notice nothing. HTTP bodies, paths and webhooks have their own suites
//! (`hardening`, `static_files`, `telegram`); this one covers the WebSocket protocol and the
//! media plane's ICE candidates.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_with, TestApp, Ws};

/// Codes a hostile frame may get back (docs/protocol.md, "Errors").
const KNOWN_CODES: &[&str] = &[
    "malformed_json",
    "invalid_message",
    "unknown_type",
    "frame_too_large",
    "not_joined",
    "already_joined",
    "no_such_participant",
    "mute_locked",
    "validation_failed",
    "not_found",
    "forbidden",
    "rate_limited",
    "media_unavailable",
    "bad_sdp",
    "media_out_of_order",
    "transcription_unavailable",
    "summary_in_progress",
    "invalid_language",
    "busy",
];

/// Replies that are a normal answer to a (strange but valid) message.
const NORMAL_REPLIES: &[&str] = &["ack", "history", "pong", "summary", "answer"];

/// Hostile variants of each client message type: wrong shapes, overlong and odd strings,
/// numbers out of range, unknown fields.
fn variants(kind: &str) -> Vec<Value> {
    let long = "x".repeat(60_000);
    let odd = "\u{202e}gnp.exe\u{0000}\u{feff}😀'; DROP TABLE users;-- %_\\";
    let mut v = vec![
        json!({"type": kind, "request_id": 7}),
        json!({"type": kind, "request_id": long.clone()}),
        json!({"type": kind, "unexpected": {"deeply": [[[[[[[[1]]]]]]]]}}),
    ];
    let specific: Vec<Value> = match kind {
        "chat" => vec![
            json!({"type": "chat"}),
            json!({"type": "chat", "text": 5}),
            json!({"type": "chat", "text": long.clone()}),
            json!({"type": "chat", "text": odd}),
            json!({"type": "chat", "text": "   \n\t  "}),
        ],
        "sync" => vec![
            json!({"type": "sync", "after": "0"}),
            json!({"type": "sync", "after": -1, "limit": 4_294_967_295u64}),
            json!({"type": "sync", "after": 1e300}),
            json!({"type": "sync", "after": i64::MAX, "limit": 0}),
        ],
        "mute" | "request_unmute" => vec![
            json!({"type": kind, "participant_id": "alice"}),
            json!({"type": kind, "participant_id": -1}),
            json!({"type": kind, "participant_id": u64::MAX}),
        ],
        "remove" => vec![
            json!({"type": "remove", "user_id": "1 OR 1=1"}),
            json!({"type": "remove", "user_id": -5}),
            json!({"type": "remove", "user_id": i64::MAX}),
        ],
        "offer" | "answer" => vec![
            json!({"type": kind}),
            json!({"type": kind, "sdp": ""}),
            json!({"type": kind, "sdp": odd}),
            json!({"type": kind, "sdp": format!("v=0\r\n{}", "a=x\r\n".repeat(10_000))}),
        ],
        "ice_candidate" => vec![
            json!({"type": "ice_candidate", "candidate": "nope"}),
            json!({"type": "ice_candidate", "candidate": {"candidate": odd, "sdpMLineIndex": -1}}),
            json!({"type": "ice_candidate", "candidate": {"candidate": "candidate:1 1 udp 1 169.254.1.1 9 typ host", "sdpMid": long.clone()}}),
        ],
        "transcription_start" => vec![
            json!({"type": "transcription_start", "language": "xx"}),
            json!({"type": "transcription_start", "language": odd}),
            json!({"type": "transcription_start", "language": 1}),
        ],
        _ => Vec::new(),
    };
    v.extend(specific);
    v
}

const TYPES: &[&str] = &[
    "join",
    "leave",
    "chat",
    "sync",
    "mute",
    "unmute",
    "request_unmute",
    "remove",
    "offer",
    "answer",
    "ice_candidate",
    "transcription_start",
    "transcription_stop",
    "agent_summary",
    "ping",
];

/// Reads the answer to one frame: its error `code`, or the type of a normal reply. Room
/// events the frame caused (a self-mute's `mute_changed`, say) are skipped. Panics if
/// nothing answers within the helpers' wait.
async fn answer(ws: &mut Ws) -> String {
    loop {
        let reply = ws.recv().await;
        match reply["type"].as_str() {
            Some("error") => return reply["code"].as_str().unwrap_or("?").to_owned(),
            Some(kind) if NORMAL_REPLIES.contains(&kind) || kind == "joined" => {
                return kind.to_owned()
            }
            _ => {}
        }
    }
}

async fn bystander_hears(app: &TestApp, bystander: &mut Ws, talker: &str, room: i64, text: &str) {
    app.post_chat(talker, room, text).await;
    loop {
        let message = bystander.recv_type("chat").await;
        if message["message"]["text"] == text {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_type_answers_hostile_frames_clearly_and_the_call_goes_on() {
    let app = spawn_with(&[]).await;
    // One attacker per message type (each socket has its own strike count), plus a bystander.
    let mut names: Vec<String> = vec!["owner".into(), "bystander".into()];
    names.extend(TYPES.iter().map(|t| format!("x_{t}")));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (room, tokens) = app.room_with(&refs).await;
    let mut bystander = app.room_ws(&tokens[1], room).await;
    bystander.join().await;

    let mut cases = 0;
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for (i, kind) in TYPES.iter().enumerate() {
        let token = &tokens[2 + i];
        let mut ws = app.room_ws(token, room).await;
        if *kind != "join" {
            ws.join().await;
        }
        for frame in variants(kind) {
            cases += 1;
            ws.send_text(frame.to_string()).await;
            // A well-formed candidate with no media to go to is ignored by design (it may race
            // an ICE restart); everything else is answered.
            let got = match tokio::time::timeout(Duration::from_secs(2), answer(&mut ws)).await {
                Ok(got) => got,
                Err(_) if *kind == "ice_candidate" => "ignored".to_owned(),
                Err(_) => panic!("{kind}: no answer to {frame}"),
            };
            assert!(
                got == "ignored"
                    || KNOWN_CODES.contains(&got.as_str())
                    || NORMAL_REPLIES.contains(&got.as_str())
                    || got == "joined",
                "{kind}: {frame} got {got}"
            );
            *codes.entry(got).or_default() += 1;
        }
        // Raw frames that aren't messages at all.
        for raw in ["", "{", "[]", "null", "\"join\"", "{\"type\":null}"] {
            cases += 1;
            ws.send_text(raw).await;
            // (A reply still on its way from the frames above may come first: `agent_summary`
            // answers with `ack` and the room then gets the `summary`.)
            let got = answer(&mut ws).await;
            assert!(
                KNOWN_CODES.contains(&got.as_str()) || NORMAL_REPLIES.contains(&got.as_str()),
                "{raw:?} got {got}"
            );
        }
        // The attacker's socket still works, and the bystander noticed nothing.
        ws.send(json!({"type": "ping", "request_id": "alive"}))
            .await;
        assert_eq!(ws.recv_type("pong").await["request_id"], "alive");
        bystander_hears(
            &app,
            &mut bystander,
            &tokens[0],
            room,
            &format!("still here {i}"),
        )
        .await;
        ws.close().await;
    }
    eprintln!("hostile WebSocket cases: {cases}, answers: {codes:?}");
    assert!(cases > 100);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_candidates_pointing_elsewhere_are_never_contacted() {
    // The SFU is ICE-lite: it answers checks that reach it and never sends checks of its own,
    // so a candidate can't turn it into a packet cannon at someone else's address.
    let app = spawn_with(&[]).await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let alice = bench::call_client::CallClient::join(&app.base, room, &tokens[0], 440.0)
        .await
        .expect("alice joins with media");
    let bob = bench::call_client::CallClient::join(&app.base, room, &tokens[1], 550.0)
        .await
        .expect("bob joins with media");
    crate::transcription::wait_until("media flows", 20, || alice.packets_from(&bob) >= 10).await;

    let target = tokio::net::UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("a UDP target on another loopback address");
    let port = target.local_addr().expect("addr").port();
    for (i, addr) in [
        format!("127.0.0.2 {port}"),
        "169.254.169.254 80".to_owned(),
        "10.0.0.1 9".to_owned(),
        format!("::ffff:127.0.0.2 {port}"),
    ]
    .iter()
    .enumerate()
    {
        alice
            .send(json!({
                "type": "ice_candidate",
                "candidate": {
                    "candidate": format!("candidate:{i} 1 udp 2122260223 {addr} typ host"),
                    "sdpMid": "0",
                    "sdpMLineIndex": 0
                }
            }))
            .expect("send");
    }
    let mut buf = [0u8; 1500];
    let got = tokio::time::timeout(Duration::from_secs(3), target.recv_from(&mut buf)).await;
    assert!(
        got.is_err(),
        "the SFU sent a datagram to a candidate address"
    );
    // And the call is unharmed.
    let before = alice.packets_from(&bob);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(alice.packets_from(&bob) > before + 20, "media still flows");
    app.stop().await;
}
