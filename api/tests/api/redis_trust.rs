//! Whoever can write to the shared Redis but holds no cluster key (`CLUSTER_SECRET`) can't
//! make a node act: a media call on a node's channel (to listen in), a WebSocket ticket (to
//! be someone else), an invite (to get into a room), a node record (to have rooms placed on
//! it). Each test also writes the same thing sealed with the key and sees it work, so it
//! shows the forgery would have worked without the seal. Run on the shared Redis
//! (`WEBCALL_TEST_REDIS_URL`, CI's PostgreSQL + Redis pass).

use std::time::Duration;

use api::cluster::registry::{NodeRecord, Registry};
use api::sealed::ClusterKey;
use futures_util::StreamExt;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{json_of, spawn_from, test_env, Env, TestApp};

const CLUSTER_SECRET: &str = "redis-trust-test-cluster-secret-0123456789";

fn key() -> ClusterKey {
    ClusterKey::from_secret(&SecretString::from(CLUSTER_SECRET.to_owned()))
}

async fn node() -> Option<(TestApp, Env, redis::aio::ConnectionManager)> {
    let url = crate::helpers::shared_redis_url("a Redis other parties write to")?;
    let (mut env, data) = test_env().await;
    env.insert("REDIS_URL".into(), url.clone());
    env.insert("CLUSTER_SECRET".into(), CLUSTER_SECRET.into());
    let app = spawn_from(env.clone()).await;
    std::mem::forget(data);
    let client = redis::Client::open(url).expect("redis url");
    let conn = redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis connects");
    Some((app, env, conn))
}

async fn cmd<T: redis::FromRedisValue>(
    conn: &mut redis::aio::ConnectionManager,
    c: &mut redis::Cmd,
) -> T {
    c.query_async(conn).await.expect("redis command")
}

/// The body of a sealed value (`wc1.{time}.{mac}.{body}`).
fn body_of(sealed: &str) -> &str {
    sealed.splitn(4, '.').nth(3).expect("a sealed value")
}

#[tokio::test]
async fn a_media_call_no_node_sealed_is_not_answered() {
    let Some((app, env, mut conn)) = node().await else {
        return;
    };
    let prefix = &env["REDIS_PREFIX"];
    let tags: Vec<u32> = cmd(
        &mut conn,
        redis::cmd("SMEMBERS").arg(format!("{prefix}:nodes")),
    )
    .await;
    let [tag] = tags[..] else {
        panic!("one node in the registry, got {tags:?}");
    };
    // The attacker listens where a "node 4242" would hear its replies.
    let client = redis::Client::open(env["REDIS_URL"].as_str()).expect("redis url");
    let mut replies = client.get_async_pubsub().await.expect("pubsub");
    replies
        .subscribe(format!("{prefix}:media:4242"))
        .await
        .expect("subscribe");
    let mut replies = replies.into_on_message();

    let call = |id: u64| {
        json!({
            "kind": "call", "id": id, "from": 4242,
            "command": {
                "op": "join", "room": 77, "peer": 99_000 + id,
                "sdp": include_str!("../../../fuzz/fuzz_targets/chromium_offer.sdp"),
            },
        })
        .to_string()
    };
    let channel = format!("{prefix}:media:{tag}");
    let _: i64 = cmd(&mut conn, redis::cmd("PUBLISH").arg(&channel).arg(call(1))).await;
    let heard = tokio::time::timeout(Duration::from_secs(3), replies.next()).await;
    assert!(
        heard.is_err(),
        "a forged join was answered: {:?}",
        heard.ok().flatten().map(|m| m.get_payload::<String>())
    );
    let metrics = app.metrics().await;
    assert!(
        metrics
            .contains("cluster_messages_refused_total{what=\"media_relay\",reason=\"unsealed\"} 1"),
        "the refusal is counted:\n{metrics}"
    );

    // Sealed by a node, the same call is answered with an SDP: what the forgery would get.
    let sealed = key().seal(&channel, &call(2));
    let _: i64 = cmd(&mut conn, redis::cmd("PUBLISH").arg(&channel).arg(sealed)).await;
    let reply = tokio::time::timeout(Duration::from_secs(5), replies.next())
        .await
        .expect("a sealed join is answered")
        .expect("subscription open");
    let reply: String = reply.get_payload().expect("text");
    let opened = key()
        .open(&format!("{prefix}:media:4242"), &reply, None)
        .expect("the reply is sealed");
    let reply: Value = serde_json::from_str(opened).expect("json");
    assert_eq!(reply["kind"], "reply", "{reply}");
    assert!(
        reply["result"]["Ok"]
            .as_str()
            .is_some_and(|s| s.starts_with("v=0")),
        "{reply}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bus_event_no_node_sealed_reaches_nobody() {
    use signaling::bus::{BusEvent, Envelope};
    use signaling::protocol::{InviteOutcome, ServerMessage};
    let Some((app, env, mut conn)) = node().await else {
        return;
    };
    let channel = format!("{}:bus", env["REDIS_PREFIX"]);
    let alice = app.register("alice").await;
    let alice_id = app.user_id(&alice).await;
    let mut ws = app.user_ws(&alice).await;
    let event = |n: u32| {
        serde_json::to_string(&Envelope {
            origin: 4242,
            event: BusEvent::User {
                user_id: alice_id,
                message: ServerMessage::InviteEnded {
                    invite_id: format!("forged-{n}"),
                    room_id: 1,
                    outcome: InviteOutcome::Accepted,
                    by_user_id: alice_id,
                },
            },
        })
        .expect("json")
    };
    let _: i64 = cmd(&mut conn, redis::cmd("PUBLISH").arg(&channel).arg(event(1))).await;
    let heard = tokio::time::timeout(Duration::from_secs(2), ws.recv_type("invite_ended")).await;
    assert!(
        heard.is_err(),
        "a forged bus event reached alice: {heard:?}"
    );

    let sealed = key().seal(&channel, &event(2));
    let _: i64 = cmd(&mut conn, redis::cmd("PUBLISH").arg(&channel).arg(sealed)).await;
    let heard = ws.recv_type("invite_ended").await;
    assert_eq!(
        heard["invite_id"], "forged-2",
        "a sealed event is delivered: {heard}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_ws_ticket_no_node_sealed_opens_nothing() {
    let Some((app, env, mut conn)) = node().await else {
        return;
    };
    let prefix = &env["REDIS_PREFIX"];
    let alice = app.register("alice").await;
    let mallory = app.register("mallory").await;
    let alice_id = app.user_id(&alice).await;

    // Mallory's own ticket's grant, rewritten to name Alice, under a ticket Mallory picked.
    let own = app.ws_ticket(&mallory).await;
    let own_key = format!("{prefix}:wsticket:{}", hex(&Sha256::digest(own.as_bytes())));
    let sealed: String = cmd(&mut conn, redis::cmd("GET").arg(&own_key)).await;
    let mut grant: Value = serde_json::from_str(body_of(&sealed)).expect("grant");
    grant["user_id"] = json!(alice_id);
    let grant = grant.to_string();

    let forged = "mallorys-own-ticket-aaaaaaaaaaaaaaaaaaaaaaaaa";
    let forged_key = format!(
        "{prefix}:wsticket:{}",
        hex(&Sha256::digest(forged.as_bytes()))
    );
    let _: () = cmd(
        &mut conn,
        redis::cmd("SET")
            .arg(&forged_key)
            .arg(&grant)
            .arg("EX")
            .arg(30),
    )
    .await;
    let status = upgrade_status(&app, forged).await;
    assert_eq!(status, 401, "a forged ticket must not open a WebSocket");

    let _: () = cmd(
        &mut conn,
        redis::cmd("SET")
            .arg(&forged_key)
            .arg(key().seal(&forged_key, &grant))
            .arg("EX")
            .arg(30),
    )
    .await;
    assert_eq!(
        upgrade_status(&app, forged).await,
        101,
        "a sealed grant is a ticket"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_invite_no_node_sealed_lets_nobody_in() {
    let Some((app, env, mut conn)) = node().await else {
        return;
    };
    let prefix = &env["REDIS_PREFIX"];
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let mallory = app.register("mallory").await;
    let mallory_id = app.user_id(&mallory).await;
    let (status, invite) = json_of(
        app.post(
            &format!("/api/v1/rooms/{room}/invites"),
            Some(&tokens[0]),
            json!({ "username": "bob" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{invite}");
    let real: String = cmd(
        &mut conn,
        redis::cmd("GET").arg(format!(
            "{prefix}:invite:{}",
            invite["id"].as_str().expect("id")
        )),
    )
    .await;
    // Bob's invite, copied for Mallory under an id of Mallory's choosing.
    let mut stored: Value = serde_json::from_str(body_of(&real)).expect("stored invite");
    let forged_id = "0123456789abcdef0123456789abcdef";
    stored["invite"]["id"] = json!(forged_id);
    stored["invite"]["to_user_id"] = json!(mallory_id);
    stored["invite"]["to_username"] = json!("mallory");
    let stored = stored.to_string();
    let forged_key = format!("{prefix}:invite:{forged_id}");
    let expires = stored_expiry(&stored);
    let write = |value: String| {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&forged_key)
            .arg(value)
            .arg("EX")
            .arg(60)
            .ignore();
        pipe.cmd("ZADD")
            .arg(format!("{prefix}:invites"))
            .arg(expires)
            .arg(forged_id)
            .ignore();
        pipe
    };
    let _: () = write(stored.clone())
        .query_async(&mut conn)
        .await
        .expect("write");
    let accept = format!("/api/v1/invites/{forged_id}/accept");
    let res = app.post(&accept, Some(&mallory), json!({})).await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "a forged invite must not be accepted"
    );
    let res = app
        .get(&format!("/api/v1/rooms/{room}"), Some(&mallory))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "mallory is not in the room"
    );

    let _: () = write(key().seal(&forged_key, &stored))
        .query_async(&mut conn)
        .await
        .expect("write");
    let (status, body) = json_of(app.post(&accept, Some(&mallory), json!({})).await).await;
    assert!(
        status.is_success(),
        "a sealed invite is one: {status} {body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_push_notice_no_node_queued_is_never_sent() {
    use crate::push::{subscribe, Receiver, ALLOW_PRIVATE};
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let Some(url) = crate::helpers::shared_redis_url("a Redis other parties write to") else {
        return;
    };
    let (mut env, _data) = test_env().await;
    env.insert("REDIS_URL".into(), url.clone());
    env.insert("CLUSTER_SECRET".into(), CLUSTER_SECRET.into());
    env.insert(ALLOW_PRIVATE.0.into(), ALLOW_PRIVATE.1.into());
    let app = spawn_from(env.clone()).await;
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis connects");
    let bob = app.register("bob").await;
    let bob_id = app.user_id(&bob).await;
    let sub = receiver.subscription().await;
    subscribe(&app, &bob, &sub).await;

    // A "message" of the attacker's making, with a link, queued for Bob.
    let stream = format!("{}:push_queue", env["REDIS_PREFIX"]);
    let notice = |text: &str| {
        json!({"kind": "chat", "room_id": 1, "room_name": "Payroll", "from": "ceo", "text": text})
            .to_string()
    };
    let queue = |value: String| {
        let mut add = redis::cmd("XADD");
        add.arg(&stream)
            .arg("*")
            .arg("user")
            .arg(bob_id)
            .arg("notice")
            .arg(value)
            .arg("count")
            .arg(1);
        add
    };
    let _: String = cmd(
        &mut conn,
        &mut queue(notice("forged: log in at https://evil.example")),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        receiver.attempts(&sub).await,
        0,
        "a forged notice was pushed"
    );

    let context = format!("{stream}:{bob_id}:1");
    let _: String = cmd(
        &mut conn,
        &mut queue(key().seal(&context, &notice("sealed"))),
    )
    .await;
    let got = receiver.received(&sub, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0]["payload"]["body"]
            .as_str()
            .map(|b| b.contains("sealed")),
        Some(true),
        "{got:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_node_record_no_node_sealed_is_no_live_node() {
    let Some((app, env, mut conn)) = node().await else {
        return;
    };
    let prefix = &env["REDIS_PREFIX"];
    let registry = Registry::new(conn.clone(), prefix, key());
    let real = registry.live().await.expect("registry");
    assert_eq!(real.len(), 1, "{real:?}");
    let fake = NodeRecord {
        node: 4243,
        media: vec!["203.0.113.9:3478".into()],
        capacity: 1_000_000,
        peers: 0,
        packets_per_sec: 0.0,
        cpu: 0.0,
        draining: false,
        version: "9.9.9".into(),
    };
    let record_key = format!("{prefix}:node:4243");
    let json = serde_json::to_string(&fake).expect("json");
    let _: () = cmd(
        &mut conn,
        redis::cmd("SET")
            .arg(&record_key)
            .arg(&json)
            .arg("EX")
            .arg(30),
    )
    .await;
    let _: () = cmd(
        &mut conn,
        redis::cmd("SADD").arg(format!("{prefix}:nodes")).arg(4243),
    )
    .await;
    let live = registry.live().await.expect("registry");
    assert!(
        live.iter().all(|n| n.node != 4243),
        "a forged node is listed: {live:?}"
    );

    // Another node's sealed record copied under the fake node's key doesn't open there.
    let other = format!("{prefix}:node:{}", real[0].node);
    let copied: String = cmd(&mut conn, redis::cmd("GET").arg(&other)).await;
    let _: () = cmd(
        &mut conn,
        redis::cmd("SET")
            .arg(&record_key)
            .arg(copied)
            .arg("EX")
            .arg(30),
    )
    .await;
    let live = registry.live().await.expect("registry");
    assert_eq!(live.len(), 1, "a copied record is no second node: {live:?}");

    let _: () = cmd(
        &mut conn,
        redis::cmd("SET")
            .arg(&record_key)
            .arg(key().seal(&record_key, &json))
            .arg("EX")
            .arg(30),
    )
    .await;
    let live = registry.live().await.expect("registry");
    assert!(
        live.iter().any(|n| n.node == 4243),
        "a sealed record is a node: {live:?}"
    );
    app.stop().await;
}

/// The HTTP status of a WebSocket upgrade with `?ticket=` (101 when it opens).
async fn upgrade_status(app: &TestApp, ticket: &str) -> u16 {
    let url = app.ws_url(&format!("/api/v1/ws?ticket={ticket}"));
    match tokio_tungstenite::connect_async(url).await {
        Ok((_, res)) => res.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
        Err(other) => panic!("upgrade: {other}"),
    }
}

fn stored_expiry(stored: &str) -> i64 {
    serde_json::from_str::<Value>(stored).expect("json")["expires_at_ms"]
        .as_i64()
        .expect("expires_at_ms")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
