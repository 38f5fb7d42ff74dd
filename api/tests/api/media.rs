//! Calls through the real server: room WebSocket signaling plus real WebRTC clients (ICE,
//! DTLS, SRTP, Opus) talking to the SFU on loopback.

use std::time::Duration;

use bench::call_client::CallClient;
use serde_json::{json, Value};

use crate::helpers::{spawn_with, TestApp};

/// Every token joins the call, each publishing its own tone.
async fn join_all(app: &TestApp, room: i64, tokens: &[String]) -> Vec<CallClient> {
    let mut calls = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let tone = 300.0 + 110.0 * i as f32;
        calls.push(
            CallClient::join(&app.base, room, token, tone)
                .await
                .expect("join"),
        );
    }
    calls
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..150 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

fn is(kind: &'static str, participant: u64) -> impl Fn(&Value) -> bool {
    move |m| m["type"] == kind && m["participant_id"].as_u64() == Some(participant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_hear_each_other_through_the_server() {
    let app = spawn_with(&[("STUN_SERVERS", "stun:stun.example.org:3478")]).await;
    let (room, tokens) = app.room_with(&["alice", "bob", "carol"]).await;
    let calls = join_all(&app, room, &tokens).await;
    wait_until("everyone hears everyone", || {
        calls.iter().all(|me| {
            calls
                .iter()
                .filter(|o| o.participant_id != me.participant_id)
                .all(|o| me.packets_from(o) >= 50)
        })
    })
    .await;
    for me in &calls {
        assert_eq!(
            me.stats().packets_from(&me.stream_id()),
            0,
            "nobody hears themselves"
        );
        let joined = me
            .messages()
            .into_iter()
            .find(|m| m["type"] == "joined")
            .expect("joined");
        assert_eq!(
            joined["ice_servers"],
            json!([{"urls": ["stun:stun.example.org:3478"]}])
        );
        for other in calls
            .iter()
            .filter(|o| o.participant_id != me.participant_id)
        {
            assert!(
                me.saw(is("track_published", other.participant_id)),
                "told that {} publishes",
                other.participant_id
            );
            assert_eq!(
                me.stats().streams[&other.stream_id()].missing,
                0,
                "no loss on loopback"
            );
        }
    }
    // Every client sends RFC 6464 levels of a talker (-20 dBov, voice): the room hears who
    // speaks and who is loudest.
    wait_until("speaking and active speaker are announced", || {
        calls.iter().all(|me| {
            calls
                .iter()
                .filter(|o| o.participant_id != me.participant_id)
                .all(|o| {
                    me.saw(|m| {
                        m["type"] == "speaking"
                            && m["speaking"] == true
                            && m["participant_id"].as_u64() == Some(o.participant_id)
                    })
                })
                && me.saw(|m| m["type"] == "active_speaker")
        })
    })
    .await;
    // The media plane reports itself in the metrics.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("sfu_packets_in_total")
            && metrics.contains("sfu_forward_duration_seconds")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_mute_stops_forwarding_until_the_participant_unmutes() {
    let app = spawn_with(&[]).await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let mut calls = join_all(&app, room, &tokens[..2]).await.into_iter();
    let (Some(alice), Some(bob)) = (calls.next(), calls.next()) else {
        panic!("two joined");
    };
    wait_until("alice hears bob", || alice.packets_from(&bob) >= 25).await;

    alice
        .send(json!({"type": "mute", "participant_id": bob.participant_id}))
        .expect("send");
    wait_until("bob learns he is muted", || {
        bob.saw(|m| m["type"] == "mute_changed" && m["muted"] == true)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_mute = alice.packets_from(&bob);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        alice.packets_from(&bob),
        at_mute,
        "the server forwards nothing of a muted participant"
    );
    assert!(
        bob.stats().sent_packets > at_mute + 40,
        "even though bob's client keeps sending"
    );

    // Bob can't lift a moderator's mute himself...
    bob.send(json!({"type": "unmute", "request_id": "u1"}))
        .expect("send");
    wait_until("bob's unmute is refused", || {
        bob.saw(|m| m["type"] == "error" && m["code"] == "mute_locked")
    })
    .await;
    // ...until the moderator asks him to.
    alice
        .send(json!({"type": "request_unmute", "participant_id": bob.participant_id}))
        .expect("send");
    wait_until("bob is asked to unmute", || {
        bob.saw(|m| m["type"] == "unmute_requested")
    })
    .await;
    bob.send(json!({"type": "unmute"})).expect("send");
    wait_until("alice hears bob again", || {
        alice.packets_from(&bob) >= at_mute + 25
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_removes_the_track_and_renegotiates_the_others() {
    let app = spawn_with(&[]).await;
    let (room, tokens) = app.room_with(&["alice", "bob", "carol"]).await;
    let mut calls = join_all(&app, room, &tokens).await.into_iter();
    let (Some(alice), Some(bob), Some(carol)) = (calls.next(), calls.next(), calls.next()) else {
        panic!("three joined");
    };
    wait_until("audio flows", || {
        alice.packets_from(&bob) >= 25 && alice.packets_from(&carol) >= 25
    })
    .await;
    let offers_before = alice
        .messages()
        .iter()
        .filter(|m| m["type"] == "offer")
        .count();

    bob.leave();
    wait_until("alice is told bob left", || {
        alice.saw(is("participant_left", bob.participant_id))
            && alice.saw(is("track_unpublished", bob.participant_id))
    })
    .await;
    wait_until("alice gets a new offer", || {
        alice
            .messages()
            .iter()
            .filter(|m| m["type"] == "offer")
            .count()
            > offers_before
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let from_bob = alice.packets_from(&bob);
    let from_carol = alice.packets_from(&carol);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(alice.packets_from(&bob), from_bob, "bob's audio is gone");
    assert!(
        alice.packets_from(&carol) >= from_carol + 25,
        "carol's goes on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_is_cleaned_up_after_the_idle_timeout() {
    let app = spawn_with(&[("WS_IDLE_TIMEOUT_SECS", "2")]).await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let mut calls = join_all(&app, room, &tokens[..2]).await.into_iter();
    let (Some(alice), Some(bob)) = (calls.next(), calls.next()) else {
        panic!("two joined");
    };
    wait_until("alice hears bob", || alice.packets_from(&bob) >= 25).await;
    bob.vanish();
    wait_until("alice is told bob timed out and his track is gone", || {
        alice.saw(|m| {
            m["type"] == "participant_left"
                && m["participant_id"].as_u64() == Some(bob.participant_id)
                && m["reason"] == "timeout"
        }) && alice.saw(is("track_unpublished", bob.participant_id))
    })
    .await;
    let (_, presence) = crate::helpers::json_of(
        app.get(&format!("/api/v1/rooms/{room}/presence"), Some(&tokens[0]))
            .await,
    )
    .await;
    // The vanished bob is still a member, but no longer in the call; alice still is.
    let in_call = |name: &str| {
        presence
            .as_array()
            .and_then(|members| members.iter().find(|m| m["username"] == name))
            .map(|m| (m["in_call"].clone(), m["participants"].clone()))
    };
    assert_eq!(in_call("bob"), Some((json!(false), json!(0))), "{presence}");
    assert_eq!(
        in_call("alice"),
        Some((json!(true), json!(1))),
        "{presence}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_media_messages_get_errors_and_the_call_goes_on() {
    let app = spawn_with(&[]).await;
    let (room, tokens) = app.room_with(&["alice", "bob", "mallory"]).await;
    let mut calls = join_all(&app, room, &tokens[..2]).await.into_iter();
    let (Some(alice), Some(bob)) = (calls.next(), calls.next()) else {
        panic!("two joined");
    };

    let mut ws = app.room_ws(&tokens[2], room).await;
    ws.send(json!({"type": "offer", "sdp": "v=0", "request_id": "early"}))
        .await;
    let err = ws.recv_type("error").await;
    assert_eq!(
        (err["code"].as_str(), err["request_id"].as_str()),
        (Some("not_joined"), Some("early"))
    );
    ws.join().await;
    ws.send(json!({"type": "answer", "sdp": "v=0", "request_id": "a1"}))
        .await;
    assert_eq!(ws.recv_type("error").await["code"], "media_out_of_order");
    ws.send(json!({"type": "offer", "sdp": "not sdp at all", "request_id": "o1"}))
        .await;
    assert_eq!(ws.recv_type("error").await["code"], "bad_sdp");
    ws.send(json!({"type": "offer"})).await;
    assert_eq!(ws.recv_type("error").await["code"], "invalid_message");
    ws.send(json!({"type": "ice_candidate", "candidate": {"candidate": "garbage"}}))
        .await;
    ws.send(json!({"type": "ping", "request_id": "still-there"}))
        .await;
    assert_eq!(ws.recv_type("pong").await["request_id"], "still-there");

    // A flood of trickled candidates is cut off with an error; the media keeps flowing.
    for _ in 0..70 {
        alice
            .send(json!({"type": "ice_candidate", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}}))
            .expect("send");
    }
    wait_until("the candidate flood is refused", || {
        alice.saw(|m| {
            m["type"] == "error"
                && m["message"]
                    .as_str()
                    .is_some_and(|t| t.contains("ICE candidates"))
        })
    })
    .await;
    let before = alice.packets_from(&bob);
    wait_until("alice and bob still hear each other", || {
        alice.packets_from(&bob) >= before + 25 && bob.packets_from(&alice) >= 25
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_that_goes_silent_is_kept_for_the_grace_period_then_leaves_the_call() {
    let app = spawn_with(&[("SFU_DISCONNECT_GRACE_SECS", "1")]).await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let mut calls = join_all(&app, room, &tokens[..2]).await.into_iter();
    let (Some(alice), Some(bob)) = (calls.next(), calls.next()) else {
        panic!("two joined");
    };
    wait_until("alice hears bob", || alice.packets_from(&bob) >= 25).await;
    // Bob's network goes; his socket stays up (a UDP-blocking firewall, a dead Wi-Fi path).
    bob.rtc.vanish();
    let bob_state = |state: &'static str| {
        move |m: &Value| {
            m["type"] == "media_state"
                && m["participant_id"].as_u64() == Some(bob.participant_id)
                && m["state"] == state
        }
    };
    wait_until("alice and bob are told bob's media went silent", || {
        alice.saw(bob_state("disconnected")) && bob.saw(bob_state("disconnected"))
    })
    .await;
    // After the grace period he leaves the call, so nobody is listed whom nobody can hear.
    wait_until("bob's media is closed and he leaves the call", || {
        bob.saw(|m| m["type"] == "media_closed" && m["reason"] == "failed")
            && alice.saw(|m| {
                m["type"] == "participant_left"
                    && m["participant_id"].as_u64() == Some(bob.participant_id)
                    && m["reason"] == "media_failed"
            })
            && alice.saw(is("track_unpublished", bob.participant_id))
    })
    .await;
    let (_, presence) = crate::helpers::json_of(
        app.get(&format!("/api/v1/rooms/{room}/presence"), Some(&tokens[0]))
            .await,
    )
    .await;
    let bob_presence = presence
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["username"] == "bob"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(bob_presence["in_call"], false, "{presence}");
    // The names the browser soak test reads to prove no peer failed or went silent.
    let metrics = app.metrics().await;
    for line in [
        "sfu_peers_closed_total{reason=\"failed\"} 1",
        "sfu_peer_disconnects_total 1",
        "sfu_peers_disconnected 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    // His socket may join again (the browser does, by itself).
    bob.send(json!({"type": "join", "request_id": "again"}))
        .expect("send");
    wait_until("bob is back in the call", || {
        bob.saw(|m| m["type"] == "joined" && m["request_id"] == "again")
    })
    .await;
}
