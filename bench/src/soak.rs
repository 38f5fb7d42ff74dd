//! `soak`: many room WebSockets and a few dozen media participants held for minutes, with
//! churn (sockets closing and reconnecting, media participants leaving and rejoining) and
//! chat, while the server's memory, file descriptors and gauges are sampled. It fails when
//! anything a user would notice went wrong (a connect refused, a chat without its `ack`, an
//! acknowledged message missing from history, a media stream that stalled) or when the server
//! did not return to its idle state once everyone left.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench::call_client::CallClient;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{watch, Mutex};
use tokio_tungstenite::tungstenite::Message;

use super::{ms, percentile, populate_room};
use crate::server_probe::{ProcessSample, ServerProbe};

#[derive(clap::Parser)]
// `scripts/soak.sh --short -- --seconds 20`: a later value wins.
#[command(args_override_self = true)]
pub struct SoakArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's registration secret.
    #[arg(long, env = "REGISTRATION_SECRET")]
    registration_secret: String,
    /// The server's process id: memory, descriptors and CPU are read from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Room WebSockets held open (one user each), joined to the call as listeners.
    #[arg(long, default_value_t = 1000)]
    sockets: usize,
    /// Rooms the sockets are spread over.
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// WebRTC participants publishing Opus, in rooms of `--media-room-size`.
    #[arg(long, default_value_t = 50)]
    media: usize,
    #[arg(long, default_value_t = 5)]
    media_room_size: usize,
    /// How long the soak runs once everyone is in.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Sockets that close and reconnect, per second, over all sockets.
    #[arg(long, default_value_t = 2.0)]
    churn_per_second: f64,
    /// Every this many seconds one media participant leaves and joins again.
    #[arg(long, default_value_t = 10)]
    media_churn_seconds: u64,
    /// Chat messages per second, over all sockets.
    #[arg(long, default_value_t = 5.0)]
    chat_per_second: f64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// What the socket clients saw, summed over all of them.
#[derive(Default)]
struct SocketCounters {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    churn_closes: AtomicU64,
    /// The server closed a socket (or the stream ended) without the client asking.
    unexpected_closes: AtomicU64,
    chat_sent: AtomicU64,
    chat_acked: AtomicU64,
    chat_broadcasts: AtomicU64,
    server_errors: AtomicU64,
}

/// Acknowledged chat, per room: the ids the server promised to keep.
type Acked = Arc<Mutex<HashMap<i64, Vec<i64>>>>;

struct SocketClient {
    url: String,
    token: String,
    room_id: i64,
    /// Mean time a socket stays before it churns.
    mean_lifetime: Duration,
    /// Mean time between two chats from this socket.
    mean_chat_gap: Duration,
}

pub async fn run(args: SoakArgs) -> Result<()> {
    if args.sockets == 0 || args.rooms == 0 || args.rooms > args.sockets {
        bail!("--sockets >= --rooms >= 1");
    }
    if args.media > 0
        && (args.media_room_size < 2 || !args.media.is_multiple_of(args.media_room_size))
    {
        bail!("--media must be a multiple of --media-room-size (>= 2)");
    }
    let http = reqwest::Client::builder().no_proxy().build()?;
    let base = args.url.trim_end_matches('/').to_owned();
    let api = format!("{base}/api/v1");
    let probe = args.server_pid.map(ServerProbe::new);
    let run = std::process::id();

    eprintln!(
        "soak: setting up {} users in {} rooms and {} media participants",
        args.sockets, args.rooms, args.media
    );
    let mut socket_rooms = Vec::new();
    let per_room = args.sockets.div_ceil(args.rooms);
    let mut left = args.sockets;
    for r in 0..args.rooms {
        let n = per_room.min(left).max(1);
        left = left.saturating_sub(n);
        socket_rooms.push(
            populate_room(
                &http,
                &api,
                &args.registration_secret,
                &format!("s{run}_{r}"),
                n,
                &format!("soak {r}"),
            )
            .await?,
        );
    }
    let mut media_rooms = Vec::new();
    for r in 0..args.media.checked_div(args.media_room_size).unwrap_or(0) {
        media_rooms.push(
            populate_room(
                &http,
                &api,
                &args.registration_secret,
                &format!("m{run}_{r}"),
                args.media_room_size,
                &format!("soak media {r}"),
            )
            .await?,
        );
    }
    // Idle: users and rooms exist, nobody is connected. The leak check compares against this.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = probe.as_ref().and_then(ServerProbe::sample);
    let idle_gauges = scrape_gauges(&http, &base).await;

    let counters = Arc::new(SocketCounters::default());
    let acked: Acked = Arc::default();
    let connect_times = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let ws_base = base.replacen("http", "ws", 1);
    let mean_lifetime =
        Duration::from_secs_f64(args.sockets as f64 / args.churn_per_second.max(1e-6));
    let mean_chat_gap =
        Duration::from_secs_f64(args.sockets as f64 / args.chat_per_second.max(1e-6));
    let mut socket_tasks = Vec::new();
    for (room_id, tokens) in &socket_rooms {
        for token in tokens {
            let client = SocketClient {
                url: format!("{ws_base}/api/v1/rooms/{room_id}/ws"),
                token: token.clone(),
                room_id: *room_id,
                mean_lifetime,
                mean_chat_gap,
            };
            socket_tasks.push(tokio::spawn(socket_client(
                client,
                counters.clone(),
                acked.clone(),
                connect_times.clone(),
                stop_rx.clone(),
            )));
            // Spread the first connects a little, as tabs opening over a morning would.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    // Media participants, one slot each; a churn replaces a slot's client.
    let mut slots: Vec<MediaSlot> = Vec::new();
    for (room_id, tokens) in &media_rooms {
        for (p, token) in tokens.iter().enumerate() {
            let tone = 220.0 + 55.0 * p as f32;
            let client = CallClient::join(&base, *room_id, token, tone).await?;
            slots.push(MediaSlot {
                room_id: *room_id,
                token: token.clone(),
                tone,
                client,
                since: Instant::now(),
            });
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while slots.iter().any(|s| s.client.join_time().is_none())
        || counters.connects.load(Ordering::Relaxed) < args.sockets as u64
    {
        if Instant::now() > deadline {
            bail!(
                "not everyone got in within 60 s: {} of {} sockets joined, {} media participants connected",
                counters.connects.load(Ordering::Relaxed),
                args.sockets,
                slots.iter().filter(|s| s.client.join_time().is_some()).count()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("soak: everyone is in; running {} s", args.seconds);

    let started = Instant::now();
    let end = started + Duration::from_secs(args.seconds);
    let cpu_before = probe.as_ref().and_then(ServerProbe::sample);
    let mut samples: Vec<(f64, ProcessSample)> = Vec::new();
    let mut media_joins: Vec<Duration> = Vec::new();
    let mut media_churns = 0u64;
    // What the replaced media clients received, so churn doesn't hide their loss.
    let mut churned_totals = (0u64, 0u64);
    let mut stalled: HashSet<(u64, u64)> = HashSet::new();
    let mut last_counts: HashMap<(u64, u64), u64> = HashMap::new();
    let mut next_media_churn = started + Duration::from_secs(args.media_churn_seconds);
    let mut next_slice = started + Duration::from_secs(5);
    let mut churn_index = 0usize;
    let mut peak_sockets_open = 0f64;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        if args.media_churn_seconds > 0 && now >= next_media_churn && !slots.is_empty() {
            next_media_churn = now + Duration::from_secs(args.media_churn_seconds);
            let i = churn_index % slots.len();
            churn_index += 1;
            let slot = &mut slots[i];
            media_joins.extend(slot.client.join_time());
            let (r, m) = client_totals(&slot.client);
            churned_totals = (churned_totals.0 + r, churned_totals.1 + m);
            slot.client.leave();
            let client = CallClient::join(&base, slot.room_id, &slot.token, slot.tone).await?;
            slot.client = client;
            slot.since = Instant::now();
            media_churns += 1;
        }
        if now >= next_slice {
            next_slice = now + Duration::from_secs(5);
            stalled.extend(media_stalls(&slots, &mut last_counts, now));
            if let Some(sample) = probe.as_ref().and_then(ServerProbe::sample) {
                samples.push((started.elapsed().as_secs_f64(), sample));
            }
            let gauges = scrape_gauges(&http, &base).await;
            peak_sockets_open = peak_sockets_open.max(gauges.sockets_open);
            eprintln!(
                "soak: {:>4.0} s  sockets {:>5}  connects {:>6}  chats acked {:>6}/{:<6} stalled streams {}  rss {}",
                started.elapsed().as_secs_f64(),
                gauges.sockets_open,
                counters.connects.load(Ordering::Relaxed),
                counters.chat_acked.load(Ordering::Relaxed),
                counters.chat_sent.load(Ordering::Relaxed),
                stalled.len(),
                samples.last().map_or("?".to_owned(), |(_, s)| format!("{:.1} MiB", s.rss_mib())),
            );
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = probe.as_ref().and_then(ServerProbe::sample);
    let media_failed = slots.iter().filter(|s| s.client.stats().failed).count();
    let (received, missing) = slots
        .iter()
        .map(|s| client_totals(&s.client))
        .fold(churned_totals, |(r, m), (r2, m2)| (r + r2, m + m2));
    media_joins.extend(slots.iter().filter_map(|s| s.client.join_time()));

    // Everyone leaves; the server must get back to idle by itself.
    stop_tx.send_replace(true);
    for task in socket_tasks {
        let _ = task.await;
    }
    for slot in &slots {
        slot.client.leave();
    }
    drop(slots);
    let settle = Instant::now();
    let mut after_gauges = scrape_gauges(&http, &base).await;
    while (after_gauges.sockets_open > 0.0 || after_gauges.sfu_participants > 0.0)
        && settle.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after_gauges = scrape_gauges(&http, &base).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = probe.as_ref().and_then(ServerProbe::sample);
    after_gauges = scrape_gauges(&http, &base).await;

    let (acked_total, lost) = missing_from_history(&http, &api, &socket_rooms, &acked).await?;

    let mut connect_times = connect_times.lock().await.clone();
    connect_times.sort_unstable();
    media_joins.sort_unstable();
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let loss = if received + missing == 0 {
        0.0
    } else {
        missing as f64 / (received + missing) as f64
    };
    let cpu_percent = match (&cpu_before, &cpu_after) {
        (Some(a), Some(b)) => {
            Some(((b.cpu_seconds - a.cpu_seconds) / elapsed * 1000.0).round() / 10.0)
        }
        _ => None,
    };
    // Memory during the run: the first sample once everyone is in vs the last before leaving.
    let rss_first = samples.first().map(|(_, s)| s.rss_kib);
    let rss_last = samples.last().map(|(_, s)| s.rss_kib);
    let rss_peak = samples.iter().map(|(_, s)| s.rss_kib).max();

    let mut failures = Vec::new();
    if c(&counters.connect_failures) > 0 {
        failures.push(format!(
            "{} socket connects failed",
            c(&counters.connect_failures)
        ));
    }
    if c(&counters.unexpected_closes) > 0 {
        failures.push(format!(
            "the server closed {} sockets",
            c(&counters.unexpected_closes)
        ));
    }
    if c(&counters.server_errors) > 0 {
        failures.push(format!("{} error replies", c(&counters.server_errors)));
    }
    if c(&counters.chat_acked) < c(&counters.chat_sent) {
        failures.push(format!(
            "{} chats got no ack",
            c(&counters.chat_sent) - c(&counters.chat_acked)
        ));
    }
    if lost > 0 {
        failures.push(format!("{lost} acknowledged chats missing from history"));
    }
    if !stalled.is_empty() {
        failures.push(format!(
            "{} media streams stalled in a 5 s slice",
            stalled.len()
        ));
    }
    if media_failed > 0 {
        failures.push(format!("{media_failed} media connections failed"));
    }
    if loss > 0.01 {
        failures.push(format!("media loss {:.2} %", loss * 100.0));
    }
    if after_gauges.sockets_open > 0.0 || after_gauges.sfu_participants > 0.0 {
        failures.push(format!(
            "not back to idle: {} sockets and {} media participants still open",
            after_gauges.sockets_open, after_gauges.sfu_participants
        ));
    }
    if let (Some(idle), Some(after)) = (&idle, &after) {
        // The database pool and the runtime's threads may keep a few descriptors they opened
        // under load; a leak per connection would show as hundreds.
        if after.fds > idle.fds + 16 {
            failures.push(format!(
                "descriptors: {} idle, {} after",
                idle.fds, after.fds
            ));
        }
    }

    let report = json!({
        "sockets": args.sockets,
        "rooms": args.rooms,
        "media_participants": args.media,
        "media_room_size": args.media_room_size,
        "seconds": (elapsed * 10.0).round() / 10.0,
        "churn_per_second": args.churn_per_second,
        "media_churn_seconds": args.media_churn_seconds,
        "chat_per_second": args.chat_per_second,
        "sockets_peak_open": peak_sockets_open,
        "socket_connects": c(&counters.connects),
        "socket_connect_failures": c(&counters.connect_failures),
        "socket_churn_closes": c(&counters.churn_closes),
        "socket_unexpected_closes": c(&counters.unexpected_closes),
        "connect_join_ms": {"p50": ms(percentile(&connect_times, 50.0)), "p99": ms(percentile(&connect_times, 99.0)), "max": ms(connect_times.last().copied().unwrap_or_default())},
        "chat": {"sent": c(&counters.chat_sent), "acked": c(&counters.chat_acked), "broadcasts_received": c(&counters.chat_broadcasts), "acked_checked_in_history": acked_total, "missing_from_history": lost},
        "error_replies": c(&counters.server_errors),
        "media": {"churns": media_churns, "failed": media_failed, "packets_received": received, "packets_missing": missing, "loss_ratio": loss, "stalled_streams": stalled.len(), "join_ms_p50": ms(percentile(&media_joins, 50.0)), "join_ms_p99": ms(percentile(&media_joins, 99.0))},
        "server": {
            "cpu_percent_of_one_core": cpu_percent,
            "idle": idle.as_ref().map(ProcessSample::to_json),
            "rss_kib_first": rss_first,
            "rss_kib_last": rss_last,
            "rss_kib_peak": rss_peak,
            "after_everyone_left": after.as_ref().map(ProcessSample::to_json),
            "samples": samples.iter().map(|(t, s)| {
                let mut v = s.to_json();
                v["t"] = json!(t);
                v
            }).collect::<Vec<_>>(),
        },
        "gauges": {"idle": idle_gauges.to_json(), "after": after_gauges.to_json()},
        "failures": failures,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if !failures.is_empty() {
        bail!("soak failed: {}", failures.join("; "));
    }
    Ok(())
}

struct MediaSlot {
    room_id: i64,
    token: String,
    tone: f32,
    client: CallClient,
    since: Instant,
}

/// (subscriber, publisher) pairs, both in the call for the whole 5 s slice, whose packet count
/// did not move since the previous slice.
fn media_stalls(
    slots: &[MediaSlot],
    last: &mut HashMap<(u64, u64), u64>,
    now: Instant,
) -> Vec<(u64, u64)> {
    let settled = |s: &MediaSlot| {
        s.client.join_time().is_some() && now.duration_since(s.since) > Duration::from_secs(7)
    };
    let mut stalled = Vec::new();
    let mut seen = HashMap::new();
    for me in slots.iter().filter(|s| settled(s)) {
        for other in slots
            .iter()
            .filter(|o| {
                o.room_id == me.room_id && o.client.participant_id != me.client.participant_id
            })
            .filter(|o| settled(o))
        {
            let key = (me.client.participant_id, other.client.participant_id);
            let count = me.client.packets_from(&other.client);
            if last.get(&key) == Some(&count) {
                stalled.push(key);
            }
            seen.insert(key, count);
        }
    }
    *last = seen;
    stalled
}

/// Packets one media client received and found missing, over all its streams.
fn client_totals(client: &CallClient) -> (u64, u64) {
    client
        .stats()
        .streams
        .values()
        .fold((0, 0), |(r, m), s| (r + s.packets, m + s.missing))
}

/// One room socket for the whole run: joins, chats now and then, and closes and comes back
/// (politely or by dropping the connection) at random, until told to stop.
async fn socket_client(
    client: SocketClient,
    counters: Arc<SocketCounters>,
    acked: Acked,
    connect_times: Arc<Mutex<Vec<Duration>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut chat_seq = 0u64;
    while !*stop.borrow() {
        let connect_started = Instant::now();
        let joined = tokio::time::timeout(Duration::from_secs(10), connect_and_join(&client)).await;
        let mut ws = match joined {
            Ok(Ok(ws)) => ws,
            Ok(Err(err)) => {
                counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %err, "soak socket could not join");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => {
                counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        counters.connects.fetch_add(1, Ordering::Relaxed);
        connect_times.lock().await.push(connect_started.elapsed());
        let lifetime = exponential(client.mean_lifetime);
        let churn_at = tokio::time::Instant::now() + lifetime;
        let mut next_chat = tokio::time::Instant::now() + exponential(client.mean_chat_gap);
        let mut pending: HashMap<String, Instant> = HashMap::new();
        let polite = rand::thread_rng().gen_bool(0.5);
        loop {
            tokio::select! {
                frame = ws.next() => {
                    let Some(Ok(frame)) = frame else {
                        counters.unexpected_closes.fetch_add(1, Ordering::Relaxed);
                        break;
                    };
                    match frame {
                        Message::Text(text) => {
                            let Ok(msg) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                            match msg["type"].as_str() {
                                Some("ack") => {
                                    if let Some(id) = msg["request_id"].as_str() {
                                        if pending.remove(id).is_some() {
                                            counters.chat_acked.fetch_add(1, Ordering::Relaxed);
                                            if let Some(message_id) = msg["message_id"].as_i64() {
                                                acked.lock().await.entry(client.room_id).or_default().push(message_id);
                                            }
                                        }
                                    }
                                }
                                Some("chat") => {
                                    counters.chat_broadcasts.fetch_add(1, Ordering::Relaxed);
                                }
                                Some("error") => {
                                    counters.server_errors.fetch_add(1, Ordering::Relaxed);
                                    tracing::warn!(%msg, "soak socket got an error");
                                }
                                _ => {}
                            }
                        }
                        Message::Close(_) => {
                            counters.unexpected_closes.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        _ => {}
                    }
                }
                () = tokio::time::sleep_until(next_chat) => {
                    next_chat = tokio::time::Instant::now() + exponential(client.mean_chat_gap);
                    chat_seq += 1;
                    let request_id = format!("c{chat_seq}");
                    let text = json!({"type": "chat", "request_id": request_id, "text": format!("soak {chat_seq}")});
                    pending.insert(request_id, Instant::now());
                    counters.chat_sent.fetch_add(1, Ordering::Relaxed);
                    if ws.send(Message::text(text.to_string())).await.is_err() {
                        counters.unexpected_closes.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                () = tokio::time::sleep_until(churn_at), if !pending_blocks_churn(&pending) => {
                    counters.churn_closes.fetch_add(1, Ordering::Relaxed);
                    if polite {
                        let _ = ws.close(None).await;
                    }
                    break;
                }
                _ = stop.changed() => {
                    // Wait for outstanding acks before the polite goodbye.
                    let wait = tokio::time::Instant::now() + Duration::from_secs(5);
                    while !pending.is_empty() {
                        let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout_at(wait, ws.next()).await else { break };
                        if let Ok(msg) = serde_json::from_str::<Value>(text.as_str()) {
                            if msg["type"] == "ack" {
                                if let Some(id) = msg["request_id"].as_str() {
                                    if pending.remove(id).is_some() {
                                        counters.chat_acked.fetch_add(1, Ordering::Relaxed);
                                        if let Some(message_id) = msg["message_id"].as_i64() {
                                            acked.lock().await.entry(client.room_id).or_default().push(message_id);
                                        }
                                    }
                                }
                            }
                        }
                    }
                    let _ = ws.close(None).await;
                    return;
                }
            }
        }
    }
}

/// A socket with a chat awaiting its ack doesn't churn yet: an unacknowledged message is the
/// client's to resend, and counting it as lost would blame the server.
fn pending_blocks_churn(pending: &HashMap<String, Instant>) -> bool {
    !pending.is_empty()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect_and_join(client: &SocketClient) -> Result<Socket> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(bench::ws_request(&client.url, &client.token)?)
            .await
            .context("room socket")?;
    ws.send(Message::text(json!({"type": "join"}).to_string()))
        .await?;
    loop {
        let frame = ws.next().await.context("closed before joined")??;
        if let Message::Text(text) = frame {
            let msg: Value = serde_json::from_str(text.as_str())?;
            match msg["type"].as_str() {
                Some("joined") => return Ok(ws),
                Some("error") => bail!("join refused: {msg}"),
                _ => {}
            }
        }
    }
}

/// A random wait with the given mean (a Poisson process's gaps).
fn exponential(mean: Duration) -> Duration {
    let u: f64 = rand::thread_rng().gen_range(f64::EPSILON..1.0);
    mean.mul_f64(-u.ln()).min(mean * 10)
}

/// Checks every acknowledged chat is in its room's history. Returns (checked, missing).
async fn missing_from_history(
    http: &reqwest::Client,
    api: &str,
    rooms: &[(i64, Vec<String>)],
    acked: &Acked,
) -> Result<(usize, usize)> {
    let acked = acked.lock().await;
    let mut checked = 0;
    let mut missing = 0;
    for (room_id, tokens) in rooms {
        let Some(ids) = acked.get(room_id) else {
            continue;
        };
        let mut stored = HashSet::new();
        let mut after = 0i64;
        loop {
            let page: Value = http
                .get(format!(
                    "{api}/rooms/{room_id}/messages?after={after}&limit=100"
                ))
                .bearer_auth(&tokens[0])
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let messages = page["messages"].as_array().cloned().unwrap_or_default();
            for m in &messages {
                if let Some(id) = m["id"].as_i64() {
                    stored.insert(id);
                    after = after.max(id);
                }
            }
            if page["has_more"] != true || messages.is_empty() {
                break;
            }
        }
        checked += ids.len();
        missing += ids.iter().filter(|id| !stored.contains(id)).count();
    }
    Ok((checked, missing))
}

/// The server's own gauges, from `/metrics`.
#[derive(Default)]
struct Gauges {
    sockets_open: f64,
    sfu_participants: f64,
    slow_consumers_dropped: f64,
    messages_refused: f64,
    peers_failed: f64,
}

impl Gauges {
    fn to_json(&self) -> Value {
        json!({
            "ws_sockets_open": self.sockets_open,
            "sfu_participants": self.sfu_participants,
            "ws_slow_consumers_dropped_total": self.slow_consumers_dropped,
            "ws_messages_refused_total": self.messages_refused,
            "sfu_peers_closed_total_failed": self.peers_failed,
        })
    }
}

async fn scrape_gauges(http: &reqwest::Client, base: &str) -> Gauges {
    let Ok(res) = http.get(format!("{base}/metrics")).send().await else {
        return Gauges::default();
    };
    let Ok(text) = res.text().await else {
        return Gauges::default();
    };
    let mut g = Gauges::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let metric = name.split('{').next().unwrap_or(name);
        match metric {
            "ws_sockets_open" => g.sockets_open += value,
            "sfu_participants" => g.sfu_participants += value,
            "ws_slow_consumers_dropped_total" => g.slow_consumers_dropped += value,
            "ws_messages_refused_total" => g.messages_refused += value,
            "sfu_peers_closed_total" if name.contains("reason=\"failed\"") => {
                g.peers_failed += value
            }
            _ => {}
        }
    }
    g
}
