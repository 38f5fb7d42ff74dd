//! Several nodes as one deployment (one PostgreSQL or SQLite file, one Redis): a room entered
//! through different nodes is one call with its media on one node, concurrent first joins
//! agree on that node, a node killed or drained hands its rooms over. Run when
//! `WEBCALL_TEST_REDIS_URL` is set (CI's PostgreSQL + Redis pass).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use api::cluster::placement::Placement;
use api::cluster::registry::{NodeRecord, Registry};
use api::sealed::ClusterKey;
use bench::call_client::CallClient;
use serde_json::Value;

use crate::helpers::{spawn_from, test_env, Env, TestApp};

fn redis_url() -> Option<String> {
    crate::helpers::shared_redis_url("several nodes")
}

async fn redis(url: &str) -> redis::aio::ConnectionManager {
    let client = redis::Client::open(url).expect("redis url");
    redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis connects")
}

/// Base settings for nodes of one deployment: the test's database and Redis prefix.
async fn cluster_env(redis_url: &str) -> (Env, tempfile::TempDir) {
    let (mut env, data) = test_env().await;
    env.insert("REDIS_URL".into(), redis_url.to_owned());
    env.insert(
        "JWT_SECRET".into(),
        "cluster-test-jwt-secret-0123456789abcdef".into(),
    );
    (env, data)
}

/// The key the nodes seal with: they set no `CLUSTER_SECRET`, so it is derived from their
/// shared JWT secret.
fn cluster_key(env: &Env) -> ClusterKey {
    ClusterKey::derived_from(&secrecy::SecretString::from(env["JWT_SECRET"].clone()))
}

/// The live nodes' records.
async fn live_nodes(env: &Env) -> Vec<NodeRecord> {
    let conn = redis(&env["REDIS_URL"]).await;
    Registry::new(conn, &env["REDIS_PREFIX"], cluster_key(env))
        .live()
        .await
        .expect("registry readable")
}

/// The node tag recorded as carrying `room`'s media.
async fn room_owner(env: &Env, room: i64) -> Option<u32> {
    let mut conn = redis(&env["REDIS_URL"]).await;
    let key = format!("{}:room:{room}:media", env["REDIS_PREFIX"]);
    let owner: Option<String> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("GET");
    owner.and_then(|o| o.parse().ok())
}

/// The UDP port an SFU answer tells the client to send media to.
fn answer_port(client: &CallClient) -> Option<u16> {
    let answer = client
        .messages()
        .into_iter()
        .find(|m| m["type"] == "answer")?;
    let sdp = answer["sdp"].as_str()?;
    sdp.lines()
        .find(|l| l.starts_with("a=candidate:"))
        .and_then(|l| l.split_whitespace().nth(5))
        .and_then(|p| p.parse().ok())
}

/// The node whose record lists `port` among its media addresses.
fn node_with_port(live: &[NodeRecord], port: u16) -> Option<u32> {
    live.iter()
        .find(|n| n.media.iter().any(|a| a.ends_with(&format!(":{port}"))))
        .map(|n| n.node)
}

async fn wait_until(what: &str, seconds: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the clients were told, for a failure message.
fn told(calls: &[&CallClient]) -> String {
    calls
        .iter()
        .map(|c| {
            let messages = c.messages();
            let kinds: Vec<String> = messages[messages.len().saturating_sub(12)..]
                .iter()
                .map(|m| match m["code"].as_str() {
                    Some(code) => format!("{}:{code}", m["type"].as_str().unwrap_or("?")),
                    None => m["type"].as_str().unwrap_or("?").to_owned(),
                })
                .collect();
            format!(
                "{} heard {:?}, last told {kinds:?}",
                c.participant_id,
                c.stats().streams.keys().collect::<Vec<_>>()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until every client hears every other (`packets` each), telling what they were
/// told when they don't.
async fn wait_hearing(calls: &[&CallClient], packets: u64, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !hear_each_other(calls, packets) {
        assert!(
            Instant::now() < deadline,
            "they don't hear each other within {seconds} s:\n{}",
            told(calls)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hear_each_other(calls: &[&CallClient], packets: u64) -> bool {
    calls.iter().all(|me| {
        calls
            .iter()
            .filter(|o| o.participant_id != me.participant_id)
            .all(|o| me.packets_from(o) >= packets)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_entered_through_three_nodes_is_one_call_on_one_node() {
    let Some(url) = redis_url() else { return };
    let (env, _data) = cluster_env(&url).await;
    let nodes = [
        spawn_from(env.clone()).await,
        spawn_from(env.clone()).await,
        spawn_from(env.clone()).await,
    ];
    let live = live_nodes(&env).await;
    assert_eq!(live.len(), 3, "every node is in the registry: {live:?}");
    let (room, tokens) = nodes[0].room_with(&["alice", "bob", "carol"]).await;
    let mut calls = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let tone = 300.0 + 110.0 * i as f32;
        calls.push(
            CallClient::join(&nodes[i].base, room, token, tone)
                .await
                .expect("join"),
        );
    }
    let all: Vec<&CallClient> = calls.iter().collect();
    wait_hearing(&all, 100, 15).await;

    // One SFU carries the room: every answer names the same media port, the owner's.
    let owner = room_owner(&env, room).await.expect("the room is placed");
    let ports: HashSet<Option<u16>> = calls.iter().map(answer_port).collect();
    assert_eq!(ports.len(), 1, "one media address for everyone: {ports:?}");
    let port = ports
        .into_iter()
        .next()
        .flatten()
        .expect("a candidate port");
    assert_eq!(node_with_port(&live, port), Some(owner));
    for me in &calls {
        for other in calls
            .iter()
            .filter(|o| o.participant_id != me.participant_id)
        {
            assert_eq!(
                me.stats().streams[&other.stream_id()].missing,
                0,
                "no loss on loopback"
            );
        }
    }

    // The owner's record counts the room's peers on its next heartbeat.
    let mut counted = false;
    for _ in 0..50 {
        let live = live_nodes(&env).await;
        if live.iter().any(|n| n.node == owner && n.peers == 3) {
            counted = live
                .iter()
                .filter(|n| n.node != owner)
                .all(|n| n.peers == 0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        counted,
        "the owner carries all three peers, the others none"
    );

    // Moderation crosses nodes too: alice (owner of the room, on node 1) mutes carol,
    // whose media is relayed from node 3: her audio stops reaching bob.
    calls[0]
        .send(serde_json::json!({"type": "mute", "participant_id": calls[2].participant_id}))
        .expect("send");
    let carol = calls[2].participant_id;
    wait_until("bob is told carol is muted", 10, || {
        calls[1].saw(|m| {
            m["type"] == "mute_changed"
                && m["muted"] == true
                && m["participant_id"].as_u64() == Some(carol)
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = calls[1].packets_from(&calls[2]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = calls[1].packets_from(&calls[2]);
    assert!(
        after - before < 10,
        "muted audio stops at the owner's SFU: {before} -> {after}"
    );

    for call in &calls {
        call.leave();
    }
    for node in nodes {
        node.stop().await;
    }
}

/// What routing adds to joining: the same joins, the room carried by the entry node versus
/// by another node. Printed for the scale-out note; the assertion is only that both work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_through_a_node_that_relays_costs_one_redis_round_trip() {
    let Some(url) = redis_url() else { return };
    let (env, _data) = cluster_env(&url).await;
    let a = spawn_from(env.clone()).await;
    let b = spawn_from(env.clone()).await;
    let (room, tokens) = a.room_with(&["dora", "eve"]).await;
    // The first join places the room; which node gets it is the registry's choice.
    let first = CallClient::join(&a.base, room, &tokens[0], 300.0)
        .await
        .expect("join");
    wait_until("dora's media is up", 10, || first.join_time().is_some()).await;
    let owner = room_owner(&env, room).await.expect("placed");
    let live = live_nodes(&env).await;
    let owner_is_a = answer_port(&first).and_then(|p| node_with_port(&live, p)) == Some(owner);
    let (owning, relaying) = if owner_is_a { (&a, &b) } else { (&b, &a) };

    let mut times = [Vec::new(), Vec::new()];
    for round in 0..6 {
        for (i, node) in [owning, relaying].into_iter().enumerate() {
            let eve = CallClient::join(&node.base, room, &tokens[1], 410.0)
                .await
                .expect("join");
            wait_hearing(&[&first, &eve], 5, 15).await;
            if round > 0 {
                times[i].push(eve.join_time().expect("connected"));
            }
            eve.leave();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let local = median(&mut times[0]);
    let relayed = median(&mut times[1]);
    let metrics = owning.metrics().await;
    let relay_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("media_relay_call_duration_seconds_sum")
                || l.starts_with("media_relay_call_duration_seconds_count")
        })
        .collect();
    println!(
        "RESULT cluster-join {{\"join_local_median_ms\": {}, \"join_relayed_median_ms\": {}, \"joins\": {}}}",
        local.as_millis(),
        relayed.as_millis(),
        times[0].len()
    );
    println!("relay calls: {relay_lines:?}");
    // One relay call (one Redis round trip each way) per join that entered through the node
    // without the media, and none for a join on the owner. Both nodes live in this process and
    // share its metrics registry; only the relaying one makes calls.
    let relayed_joins = 6 + usize::from(!owner_is_a);
    let join_calls = relay_lines
        .iter()
        .find(|l| {
            l.starts_with("media_relay_call_duration_seconds_count") && l.contains("op=\"join\"")
        })
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(
        join_calls,
        Some(relayed_joins as f64),
        "one relay call per relayed join: {relay_lines:?}"
    );
    first.leave();
    a.stop().await;
    b.stop().await;
}

/// Two first joins through different nodes at the same moment, many times over: every
/// pair agrees on one node, whichever each would have chosen alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_joins_through_different_nodes_agree_on_one_owner() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("webcall-test-{}", uuid::Uuid::new_v4().simple());
    let conn = redis(&url).await;
    let record = |node: u32, peers: usize| NodeRecord {
        node,
        media: vec![],
        capacity: 100,
        peers,
        packets_per_sec: 0.0,
        cpu: 0.0,
        draining: false,
        version: String::new(),
    };
    for room in 1..=50 {
        // Each node's (stale) view of the registry makes it prefer itself.
        let views: Vec<Vec<NodeRecord>> = (1..=4u32)
            .map(|me| {
                (1..=4u32)
                    .map(|n| record(n, if n == me { 0 } else { 10 }))
                    .collect()
            })
            .collect();
        let placements = views.iter().enumerate().map(|(i, live)| {
            let placement = Placement::new(conn.clone(), &prefix);
            let live = live.clone();
            async move { placement.owner(room, &live, i as u32 + 1).await }
        });
        let owners: Vec<u32> = futures_util::future::join_all(placements)
            .await
            .into_iter()
            .map(|r| r.expect("placed"))
            .collect();
        assert!(
            owners.windows(2).all(|w| w[0] == w[1]),
            "room {room}: {owners:?}"
        );
    }

    // A room whose recorded owner is gone is placed again, on a live node.
    let placement = Placement::new(conn.clone(), &prefix);
    let first = placement
        .owner(1, &[record(1, 0), record(2, 0)], 1)
        .await
        .expect("owner");
    let survivor = if first == 1 { 2 } else { 1 };
    let again = placement
        .owner(1, &[record(survivor, 5)], survivor)
        .await
        .expect("placed again");
    assert_eq!(again, survivor);
}

/// Records `node` as carrying `room`, as its first join through that node would.
async fn place_room_on(env: &Env, room: i64, node: u32) {
    let mut conn = redis(&env["REDIS_URL"]).await;
    let key = format!("{}:room:{room}:media", env["REDIS_PREFIX"]);
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(node)
        .arg("EX")
        .arg(30)
        .query_async(&mut conn)
        .await
        .expect("SET");
}

/// A room carried by node V, with fay's socket on V and gus's on node S (relayed to V).
/// Returns the room, the tokens (fay, gus, hal) and both clients once they hear each other.
async fn call_owned_by(
    env: &Env,
    owner: &BinaryNode,
    other: &TestApp,
) -> (i64, Vec<String>, CallClient, CallClient) {
    let (room, tokens) = other.room_with(&["fay", "gus", "hal"]).await;
    place_room_on(env, room, owner.tag).await;
    let fay = CallClient::join(&owner.base, room, &tokens[0], 300.0)
        .await
        .expect("join");
    let gus = CallClient::join(&other.base, room, &tokens[1], 410.0)
        .await
        .expect("join");
    wait_hearing(&[&fay, &gus], 50, 15).await;
    assert_eq!(room_owner(env, room).await, Some(owner.tag));
    (room, tokens, fay, gus)
}

/// After the owner went away: gus, whose socket is on the survivor, was told his media
/// closed; he joins again like the browser does, hal joins too, and they hear each other on
/// the survivor. Returns how long after `gone` gus heard `media_closed`, and how long until
/// the new media flowed.
/// A node going away: its tag, when, and how soon its relayed participants must hear it.
struct Departure {
    tag: u32,
    at: Instant,
    notice_within_secs: u64,
}

async fn rejoin_on_survivor(
    env: &Env,
    survivor: &TestApp,
    room: i64,
    tokens: &[String],
    gus: &CallClient,
    departure: Departure,
) -> (Duration, Duration) {
    let Departure {
        tag: gone_tag,
        at: gone,
        notice_within_secs: within,
    } = departure;
    wait_until("gus hears his media closed", within, || {
        gus.saw(|m| m["type"] == "media_closed")
    })
    .await;
    let closed = gone.elapsed();
    let gus = CallClient::join(&survivor.base, room, &tokens[1], 410.0)
        .await
        .expect("rejoin");
    let hal = CallClient::join(&survivor.base, room, &tokens[2], 520.0)
        .await
        .expect("join");
    wait_hearing(&[&gus, &hal], 5, 15).await;
    let back = gone.elapsed();
    let owner = room_owner(env, room).await.expect("placed again");
    assert_ne!(owner, gone_tag, "the room left the node that went away");
    assert!(
        live_nodes(env).await.iter().all(|n| n.node != gone_tag),
        "that node left the registry"
    );
    gus.leave();
    hal.leave();
    (closed, back)
}

/// A room carried by a `webcall serve` process that `kill -<signal>` then ends, relayed to
/// from an in-process survivor; returns [`rejoin_on_survivor`]'s times.
async fn when_the_owner_goes(
    url: &str,
    signal: &str,
    notice_within_secs: u64,
) -> (Duration, Duration) {
    let (env, _data) = cluster_env(url).await;
    let survivor = spawn_from(env.clone()).await;
    let owner = BinaryNode::start(&env).await;
    let (room, tokens, _fay, gus) = call_owned_by(&env, &owner, &survivor).await;
    let pid = owner.child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let departure = Departure {
        tag: owner.tag,
        at: Instant::now(),
        notice_within_secs,
    };
    let times = rejoin_on_survivor(&env, &survivor, room, &tokens, &gus, departure).await;
    survivor.stop().await;
    times
}

/// A node that dies (SIGKILL) with a room on it: a participant whose socket is on the other
/// node is told their media closed once the registry lets the dead node go (their browser
/// then rejoins by itself, see tests/browser/cluster.test.mjs), and the room comes back on
/// the survivor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_killed_mid_call_moves_the_room_to_a_live_node() {
    let Some(url) = redis_url() else { return };
    let (closed, back) = when_the_owner_goes(&url, "KILL", 20).await;
    println!(
        "RESULT cluster-failover {{\"kill_to_media_closed_ms\": {}, \"kill_to_media_back_ms\": {}}}",
        closed.as_millis(),
        back.as_millis()
    );
}

/// A node stopped gracefully (SIGTERM, no drain timeout) hands its rooms over at once:
/// participants relayed to it from another node hear `media_closed` within a second or
/// two, not after the registry's expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_hands_its_rooms_over_at_once() {
    let Some(url) = redis_url() else { return };
    let (closed, back) = when_the_owner_goes(&url, "TERM", 5).await;
    println!(
        "RESULT cluster-handover {{\"sigterm_to_media_closed_ms\": {}, \"sigterm_to_media_back_ms\": {}}}",
        closed.as_millis(),
        back.as_millis()
    );
}

/// With `DRAIN_TIMEOUT_SECS`, SIGTERM first drains: `/readyz` answers 503 so the proxy sends
/// new sessions elsewhere, calls go on, and the node stops as soon as its last call ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_says_so_and_stops_when_its_last_call_ends() {
    let Some(url) = redis_url() else { return };
    let (mut env, _data) = cluster_env(&url).await;
    env.insert("DRAIN_TIMEOUT_SECS".into(), "60".into());
    let node = spawn_from(env.clone()).await;
    let (room, tokens) = node.room_with(&["kim", "lou"]).await;
    let kim = CallClient::join(&node.base, room, &tokens[0], 300.0)
        .await
        .expect("join");
    let lou = CallClient::join(&node.base, room, &tokens[1], 410.0)
        .await
        .expect("join");
    wait_hearing(&[&kim, &lou], 20, 15).await;
    let base = node.base.clone();
    let http = node.client.clone();
    let stopping = tokio::spawn(node.stop());
    let mut draining = false;
    for _ in 0..50 {
        let res = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("answers");
        if res.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            let body: Value = res.json().await.expect("json");
            assert!(body.to_string().contains("draining"), "{body}");
            draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(draining, "readyz says draining");
    let mine: Vec<NodeRecord> = live_nodes(&env).await;
    assert!(
        mine.iter().all(|n| n.draining),
        "its record says draining: {mine:?}"
    );
    // The call goes on while draining.
    let before = kim.packets_from(&lou);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(kim.packets_from(&lou) > before + 50, "audio still flows");
    let ended = Instant::now();
    kim.leave();
    lou.leave();
    tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("stops once the call ended, long before the 60 s deadline")
        .expect("joins");
    println!(
        "RESULT cluster-drain {{\"last_leave_to_stopped_ms\": {}}}",
        ended.elapsed().as_millis()
    );
}

/// A `webcall serve` process of the deployment, to be killed like a crashed box.
struct BinaryNode {
    child: tokio::process::Child,
    base: String,
    _dir: tempfile::TempDir,
    tag: u32,
}

impl BinaryNode {
    async fn start(env: &Env) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // The same DATA_DIR as the in-process node: without DATABASE_URL both use its
        // SQLite file, as one deployment must share one database.
        let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let before: HashSet<u32> = live_nodes(env).await.iter().map(|n| n.node).collect();
        let (child, base) = crate::binary::serve(dir.path(), &vars).await;
        // Listening comes first; the node's first heartbeat follows.
        let deadline = Instant::now() + Duration::from_secs(10);
        let new = loop {
            let after = live_nodes(env).await;
            let new: Vec<u32> = after
                .iter()
                .map(|n| n.node)
                .filter(|n| !before.contains(n))
                .collect();
            if !new.is_empty() || Instant::now() > deadline {
                break new;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(new.len(), 1, "the new node's record: {new:?}");
        Self {
            child,
            base,
            _dir: dir,
            tag: new[0],
        }
    }
}

/// Redis restarting under a call relayed across two nodes (a Redis of the test's own): the
/// call goes on (media never touches Redis), nobody is told their media closed, and within
/// seconds of Redis being back both nodes are in the registry again, the room's record is
/// back on its owner, and a newcomer through either node joins the same call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_drops_no_call_and_the_nodes_recover_by_themselves() {
    let Some(mut redis_server) = crate::private_redis::PrivateRedis::start().await else {
        return;
    };
    let port = redis_server.port;
    let (env, _data) = cluster_env(&redis_server.url()).await;
    let a = spawn_from(env.clone()).await;
    let b = spawn_from(env.clone()).await;
    let (room, tokens) = a.room_with(&["mia", "ned", "ola"]).await;
    let mia = CallClient::join(&a.base, room, &tokens[0], 300.0)
        .await
        .expect("join");
    let ned = CallClient::join(&b.base, room, &tokens[1], 410.0)
        .await
        .expect("join");
    wait_hearing(&[&mia, &ned], 50, 15).await;
    let owner = room_owner(&env, room).await.expect("placed");

    redis_server.stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let heard_during = (mia.packets_from(&ned), ned.packets_from(&mia));
    let Some(restarted) = crate::private_redis::PrivateRedis::start_on(port).await else {
        panic!("redis-server starts again on its port");
    };
    redis_server = restarted;
    let back = Instant::now();
    // Redis kept nothing: the registry and the room's record come back from the nodes.
    let mut recovered = None;
    while back.elapsed() < Duration::from_secs(15) {
        let live = Registry::new(
            redis(&env["REDIS_URL"]).await,
            &env["REDIS_PREFIX"],
            cluster_key(&env),
        )
        .live()
        .await
        .unwrap_or_default();
        if live.len() == 2 && room_owner(&env, room).await == Some(owner) {
            recovered = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered = recovered.expect("registry and room record restored within 15 s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        mia.packets_from(&ned) > heard_during.0 + 50
            && ned.packets_from(&mia) > heard_during.1 + 50,
        "the call went on through the restart"
    );
    for c in [&mia, &ned] {
        assert!(
            !c.saw(|m| m["type"] == "media_closed"),
            "nobody lost media: {}",
            told(&[c])
        );
    }
    // The relay's subscriptions resubscribe with backoff (up to 5 s apart).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ola = CallClient::join(&b.base, room, &tokens[2], 520.0)
        .await
        .expect("join");
    wait_hearing(&[&mia, &ned, &ola], 20, 15).await;
    println!(
        "RESULT cluster-redis-restart {{\"back_to_registry_and_room_record_ms\": {}}}",
        recovered.as_millis()
    );
    drop(redis_server);
    a.stop().await;
    b.stop().await;
}
