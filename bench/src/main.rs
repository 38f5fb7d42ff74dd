//! `webcall-bench`: load generators for a running WebCall server.
//!
//! `load` fills rooms with WebRTC participants publishing Opus (see `load.rs`).
//!
//! `soak` holds many room sockets and media participants for minutes with churn and chat, and
//! checks nothing was lost and the server came back to idle (see `soak.rs`).
//!
//! `chat-fanout` registers users, puts them in one room, opens one room WebSocket per user,
//! has one of them send chat messages and measures, for every (message, client) pair, the
//! time from the send to the moment that client reads it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use signaling::protocol::{ClientMessage, ServerMessage};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(name = "webcall-bench", about = "Load generators for a WebCall server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Chat fan-out latency: one sender, N room WebSockets receiving.
    ChatFanout(FanoutArgs),
    /// Calls: R rooms x P WebRTC participants publishing Opus; loss, join time, server CPU.
    Load(load::LoadArgs),
    /// The `load` scenario against a Janus VideoRoom (the side-by-side report).
    JanusLoad(janus_load::JanusLoadArgs),
    /// The Markdown report and plots of `scripts/side-by-side.sh`'s runs.
    SideBySideReport(side_by_side_report::ReportArgs),
    /// Soak: many room sockets and media participants held for minutes with churn and chat;
    /// fails on anything a user would notice and on a server that doesn't return to idle.
    Soak(soak::SoakArgs),
}

mod churn;
mod janus_load;
mod load;
mod progress;
mod server_probe;
mod side_by_side_report;
mod soak;

#[derive(Parser)]
struct FanoutArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Room WebSockets (users) in the room, the sender included.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Chat messages the sender sends.
    #[arg(long, default_value_t = 100)]
    messages: usize,
    /// Pause between two messages, in milliseconds.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// The server's registration secret.
    #[arg(long, env = "REGISTRATION_SECRET")]
    registration_secret: String,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::ChatFanout(args) => chat_fanout(args).await,
        Command::Load(args) => load::run(args).await,
        Command::JanusLoad(args) => janus_load::run(args).await,
        Command::SideBySideReport(args) => side_by_side_report::run(args),
        Command::Soak(args) => soak::run(args).await,
    }
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Result<Value> {
    let mut req = http.post(&url).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.with_context(|| format!("POST {url}"))?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

/// Registers `users` users named `<prefix>_<i>`, has the first create a room and adds the
/// others as members. Returns the room id and the users' tokens, in order.
async fn populate_room(
    http: &reqwest::Client,
    api: &str,
    registration_secret: &str,
    prefix: &str,
    users: usize,
    room_name: &str,
) -> Result<(i64, Vec<String>)> {
    let mut tokens = Vec::with_capacity(users);
    for i in 0..users {
        let body = post(
            http,
            format!("{api}/auth/register"),
            None,
            json!({"username": format!("{prefix}_{i}"), "password": "bench password 1", "registration_secret": registration_secret}),
        )
        .await?;
        tokens.push(body["token"].as_str().context("token")?.to_owned());
    }
    let room = post(
        http,
        format!("{api}/rooms"),
        Some(&tokens[0]),
        json!({"name": room_name}),
    )
    .await?;
    let room_id = room["id"].as_i64().context("room id")?;
    for i in 1..users {
        post(
            http,
            format!("{api}/rooms/{room_id}/members"),
            Some(&tokens[0]),
            json!({"username": format!("{prefix}_{i}")}),
        )
        .await?;
    }
    Ok((room_id, tokens))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

async fn chat_fanout(args: FanoutArgs) -> Result<()> {
    if args.clients < 1 || args.messages < 1 {
        bail!("--clients and --messages must be at least 1");
    }
    let http = reqwest::Client::builder().no_proxy().build()?;
    let api = format!("{}/api/v1", args.url.trim_end_matches('/'));
    let ws_base = format!(
        "ws{}",
        args.url.trim_end_matches('/').trim_start_matches("http")
    );
    let run = std::process::id();

    // Users, one room, memberships.
    let setup = Instant::now();
    let (room_id, tokens) = populate_room(
        &http,
        &api,
        &args.registration_secret,
        &format!("b{run}"),
        args.clients,
        "fan-out bench",
    )
    .await?;

    // One room WebSocket per user, joined.
    let mut sockets = Vec::with_capacity(args.clients);
    for token in &tokens {
        let url = format!("{ws_base}/api/v1/rooms/{room_id}/ws");
        let (mut ws, _) = tokio_tungstenite::connect_async(bench::ws_request(&url, token)?)
            .await
            .context("websocket")?;
        let join = serde_json::to_string(&ClientMessage::Join { request_id: None })?;
        ws.send(Message::Text(join.into())).await?;
        loop {
            let frame = ws.next().await.context("socket closed before joined")??;
            if let Message::Text(text) = frame {
                if let Ok(ServerMessage::Joined { .. }) = serde_json::from_str(text.as_str()) {
                    break;
                }
            }
        }
        sockets.push(ws);
    }
    let setup_time = setup.elapsed();

    // Readers: each records when it reads message `seq`.
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut readers = Vec::new();
    let mut sender = None;
    let mut idle_write_halves = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let (sink, mut stream) = ws.split();
        if i == 0 {
            sender = Some(sink);
        } else {
            // Kept until the end: dropping a write half must not look like a closing client.
            idle_write_halves.push(sink);
        }
        let expected = args.messages;
        readers.push(tokio::spawn(async move {
            let mut seen: HashMap<usize, Instant> = HashMap::with_capacity(expected);
            while seen.len() < expected {
                let left = deadline.saturating_duration_since(Instant::now());
                let Ok(Some(Ok(frame))) = tokio::time::timeout(left, stream.next()).await else {
                    break;
                };
                let Message::Text(text) = frame else { continue };
                if let Ok(ServerMessage::Chat { message }) = serde_json::from_str(text.as_str()) {
                    if let Some(seq) = message
                        .text
                        .strip_prefix("bench:")
                        .and_then(|s| s.parse().ok())
                    {
                        seen.entry(seq).or_insert_with(Instant::now);
                    }
                }
            }
            seen
        }));
    }
    let mut sender = sender.context("no sender")?;
    let sent_at = Arc::new(Mutex::new(vec![None; args.messages]));
    let started = Instant::now();
    for seq in 0..args.messages {
        let chat = ClientMessage::Chat {
            request_id: None,
            text: format!("bench:{seq}"),
        };
        let text = serde_json::to_string(&chat)?;
        sent_at.lock().await[seq] = Some(Instant::now());
        sender.send(Message::Text(text.into())).await?;
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }

    let sent_at = sent_at.lock().await.clone();
    let mut samples = Vec::new();
    let mut last_per_message: Vec<Option<Instant>> = vec![None; args.messages];
    let mut missing = 0usize;
    for reader in readers {
        let seen = reader.await?;
        missing += args.messages - seen.len();
        for (seq, at) in seen {
            if let Some(Some(sent)) = sent_at.get(seq) {
                samples.push(at.saturating_duration_since(*sent));
                let last = &mut last_per_message[seq];
                *last = Some(last.map_or(at, |l: Instant| l.max(at)));
            }
        }
    }
    let elapsed = started.elapsed();
    drop(idle_write_halves);
    samples.sort_unstable();
    let mut all_delivered: Vec<Duration> = last_per_message
        .iter()
        .zip(&sent_at)
        .filter_map(|(last, sent)| Some(last.as_ref()?.saturating_duration_since((*sent)?)))
        .collect();
    all_delivered.sort_unstable();

    let result = json!({
        "clients": args.clients,
        "messages": args.messages,
        "interval_ms": args.interval_ms,
        "deliveries": samples.len(),
        "missing": missing,
        "setup_s": setup_time.as_secs_f64(),
        "run_s": elapsed.as_secs_f64(),
        "latency_ms": {
            "p50": ms(percentile(&samples, 50.0)),
            "p99": ms(percentile(&samples, 99.0)),
            "max": ms(samples.last().copied().unwrap_or_default()),
        },
        "last_client_ms": {
            "p50": ms(percentile(&all_delivered, 50.0)),
            "p99": ms(percentile(&all_delivered, 99.0)),
        },
    });
    if args.json {
        println!("{result}");
    } else {
        println!(
            "chat fan-out: {} clients, {} messages every {} ms: {} deliveries, {} missing",
            args.clients,
            args.messages,
            args.interval_ms,
            samples.len(),
            missing
        );
        println!(
            "  send -> received, per client:  p50 {} ms   p99 {} ms   max {} ms",
            result["latency_ms"]["p50"], result["latency_ms"]["p99"], result["latency_ms"]["max"]
        );
        println!(
            "  send -> received by all {}:   p50 {} ms   p99 {} ms",
            args.clients, result["last_client_ms"]["p50"], result["last_client_ms"]["p99"]
        );
    }
    if missing > 0 {
        bail!("{missing} deliveries missing");
    }
    Ok(())
}
