//! `load`: rooms full of WebRTC participants publishing Opus through the server, and what
//! each subscriber received (packets, loss, join time), plus the server's CPU if its pid is
//! given.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bench::call_client::CallClient;
use bench::latency::LatencyHistogram;
use serde_json::json;

use super::{ms, percentile, populate_room};
use crate::churn::{self, ChurnArgs};
use crate::progress;
use crate::server_probe::{merge, CostWindow, ServerProbe};

/// RFC 6464 silence: a participant whose microphone is open while someone else talks.
const SILENT_LEVEL: u8 = 127;

#[derive(clap::Parser)]
pub struct LoadArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value_t = 2)]
    rooms: usize,
    /// Participants per room; each publishes a tone and receives everyone else.
    #[arg(long, default_value_t = 5)]
    participants: usize,
    /// Talking participants per room (the first ones); the others keep their microphone open
    /// in silence (packets announcing -127 dBov), as most of a large meeting does. Default:
    /// everyone talks. Streams are checked (loss, stalls) only from those who talk.
    #[arg(long)]
    speakers: Option<usize>,
    /// Those who don't talk keep their microphone muted (send nothing) instead of sending
    /// silence: a webinar's listeners.
    #[arg(long)]
    muted_listeners: bool,
    /// Milliseconds between two joins; 0 (default) joins everyone at once, as at the start
    /// of a meeting. Large rooms fill over time: `--join-every-ms 200` is 5 joins a second.
    #[arg(long, default_value_t = 0)]
    join_every_ms: u64,
    /// How long audio flows once everyone has joined.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// The server's registration secret.
    #[arg(long, env = "REGISTRATION_SECRET")]
    registration_secret: String,
    /// The server's process id, to report its CPU use over the run (Linux /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// A name for this run, copied into the JSON (`scenario`), for reports of many runs.
    #[arg(long, default_value = "")]
    label: String,
    #[command(flatten)]
    churn: ChurnArgs,
}

pub async fn run(args: LoadArgs) -> Result<()> {
    if args.rooms == 0 || args.participants < 2 || args.seconds == 0 {
        bail!("--rooms >= 1, --participants >= 2 and --seconds >= 1");
    }
    let idle_rss = CostWindow::idle_rss(args.server_pid);
    let http = reqwest::Client::builder().no_proxy().build()?;
    let base = args.url.trim_end_matches('/').to_owned();
    let api = format!("{base}/api/v1");
    let run = std::process::id();

    let mut rooms = Vec::new();
    for r in 0..args.rooms {
        let prefix = format!("l{run}_{r}");
        rooms.push(
            populate_room(
                &http,
                &api,
                &args.registration_secret,
                &prefix,
                args.participants + args.churn.churners,
                &format!("load {r}"),
            )
            .await?,
        );
    }

    // The leak check's baseline: the server with the accounts and rooms made (its database
    // connections and worker threads warmed) but nobody in a call.
    let idle = args
        .server_pid
        .and_then(|pid| ServerProbe::new(pid).sample());
    let speakers = args
        .speakers
        .unwrap_or(args.participants)
        .min(args.participants);
    // Everyone joins at once, as at the start of a meeting, unless spaced out.
    let muted_listeners = args.muted_listeners;
    let mut joins = Vec::new();
    for (room_id, tokens) in &rooms {
        for (p, token) in tokens.iter().take(args.participants).enumerate() {
            let (base, token, room_id) = (base.clone(), token.clone(), *room_id);
            joins.push(tokio::spawn(async move {
                let client =
                    CallClient::join(&base, room_id, &token, 220.0 + 55.0 * p as f32).await?;
                if p >= speakers && muted_listeners {
                    client.rtc.set_publishing(false);
                } else if p >= speakers {
                    client.rtc.set_audio_level(SILENT_LEVEL);
                }
                client.rtc.stamp_send_times();
                anyhow::Ok((room_id, client, p < speakers))
            }));
            if args.join_every_ms > 0 {
                tokio::time::sleep(Duration::from_millis(args.join_every_ms)).await;
            }
        }
    }
    let joined = progress::participants("joining", joins.len());
    let mut clients = Vec::new();
    let mut talking = Vec::new();
    for join in joins {
        let (room, client, talks) = join.await??;
        clients.push((room, client));
        talking.push(talks);
        joined.inc(1);
    }
    joined.finish_and_clear();
    let connected = progress::participants("connecting", clients.len());
    // Wait until every media path is up, then measure a clean window.
    let deadline = Instant::now() + Duration::from_secs(30);
    while clients.iter().any(|(_, c)| c.join_time().is_none()) {
        if Instant::now() > deadline {
            let missing = clients
                .iter()
                .filter(|(_, c)| c.join_time().is_none())
                .count();
            bail!("{missing} participants did not connect within 30 s after the last join");
        }
        connected.set_position(
            clients
                .iter()
                .filter(|(_, c)| c.join_time().is_some())
                .count() as u64,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    connected.finish_and_clear();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cost = CostWindow::start(args.server_pid, idle_rss);
    let before: Vec<_> = clients.iter().map(|(_, c)| c.stats()).collect();
    let latency_before: Vec<_> = clients.iter().map(|(_, c)| c.rtc.latency()).collect();
    let window = Instant::now();
    // Sample every stream every 5 s: a call that works at second 2 and dies at second 5 is
    // broken, and only a per-slice check shows it.
    let talking = &talking;
    let pairs: Vec<(usize, usize)> = clients
        .iter()
        .enumerate()
        .flat_map(|(i, (room, me))| {
            clients
                .iter()
                .enumerate()
                .filter(move |(j, (r, o))| {
                    r == room && o.participant_id != me.participant_id && talking[*j]
                })
                .map(move |(j, _)| (i, j))
        })
        .collect();
    let mut stalled = std::collections::HashSet::new();
    let mut last: Vec<u64> = pairs
        .iter()
        .map(|&(i, j)| clients[i].1.packets_from(&clients[j].1))
        .collect();
    let end = window + Duration::from_secs(args.seconds);
    // Churners come and go on their own tasks while the call is measured; this one waits for
    // them after the window.
    let churning = (args.churn.churners > 0).then(|| {
        let seats: Vec<(i64, String)> = rooms
            .iter()
            .flat_map(|(room, tokens)| {
                tokens[args.participants..]
                    .iter()
                    .map(|t| (*room, t.clone()))
            })
            .collect();
        let seats = std::sync::Arc::new(seats);
        let (base, stay) = (base.clone(), args.churn.stay());
        tokio::spawn(churn::drive(
            seats.len(),
            stay,
            end,
            move |churner, _attempt| {
                let (seats, base) = (seats.clone(), base.clone());
                async move {
                    let (room, token) = &seats[churner];
                    let client = CallClient::join(&base, *room, token, 0.0).await?;
                    client.rtc.set_publishing(false);
                    let joined = churn::connected(|| client.join_time()).await;
                    if joined.is_ok() {
                        tokio::time::sleep(stay).await;
                    }
                    client.leave();
                    joined
                }
            },
        ))
    });
    let measuring = progress::window(args.seconds);
    while Instant::now() < end {
        let slice = Duration::from_secs(5).min(end.saturating_duration_since(Instant::now()));
        tokio::time::sleep(slice).await;
        measuring.set_position(window.elapsed().as_secs());
        for (k, &(i, j)) in pairs.iter().enumerate() {
            let now = clients[i].1.packets_from(&clients[j].1);
            if slice >= Duration::from_secs(1) && now == last[k] {
                stalled.insert(k);
            }
            last[k] = now;
        }
    }
    measuring.finish_and_clear();
    let elapsed = window.elapsed().as_secs_f64();
    let latency_after: Vec<_> = clients.iter().map(|(_, c)| c.rtc.latency()).collect();
    let latency = LatencyHistogram::window(&latency_before, &latency_after);
    let after: Vec<_> = clients.iter().map(|(_, c)| c.stats()).collect();
    let churned = match churning {
        Some(task) => Some(task.await?),
        None => None,
    };

    // Per (subscriber, publisher) pair: packets within the window, on the publisher's own
    // stream (a small room) or on the subscriber's audio slots by CSRC (a large room); sequence
    // gaps per subscriber over all its streams.
    let mut streams = 0u64;
    let mut received = 0u64;
    let mut missing = 0u64;
    let mut min_rate = f64::MAX;
    let mut from_silent = 0u64;
    for (i, (room, me)) in clients.iter().enumerate() {
        for (j, (_, other)) in clients
            .iter()
            .enumerate()
            .filter(|(_, (r, o))| r == room && o.participant_id != me.participant_id)
        {
            let got = me.received_from(&after[i], other) - me.received_from(&before[i], other);
            if !talking[j] {
                // Forwarded silence: the loudest-speaker selection should have held it back.
                from_silent += got;
                continue;
            }
            streams += 1;
            received += got;
            min_rate = min_rate.min(got as f64 / elapsed);
        }
        missing += after[i].missing_total() - before[i].missing_total();
    }
    let forwarded_per_second = (received + from_silent) as f64 / elapsed;
    let mut join_times: Vec<Duration> = clients.iter().filter_map(|(_, c)| c.join_time()).collect();
    join_times.sort();
    let loss = if received + missing == 0 {
        1.0
    } else {
        missing as f64 / (received + missing) as f64
    };
    let costs = cost.finish(forwarded_per_second, clients.len());
    // A peer failed if the server closed its media or ever saw it go silent.
    let is_mine = |c: &CallClient, m: &serde_json::Value| {
        m["participant_id"].as_u64() == Some(c.participant_id)
    };
    let failed_peers = clients
        .iter()
        .filter(|(_, c)| c.saw(|m| m["type"] == "media_closed"))
        .count();
    let disconnects = clients
        .iter()
        .filter(|(_, c)| {
            c.saw(|m| m["type"] == "media_state" && m["state"] == "disconnected" && is_mine(c, m))
        })
        .count();
    let mut report = json!({
        "sfu": "webcall",
        "scenario": args.label,
        "latency_ms": latency.summary(),
        "failed_peers": failed_peers,
        "peers_seen_disconnected": disconnects,
        "stalled_streams": stalled.len(),
        "rooms": args.rooms,
        "participants_per_room": args.participants,
        "speakers_per_room": speakers,
        "muted_listeners": args.muted_listeners,
        "forwarded_packets_per_second": forwarded_per_second.round(),
        "packets_from_silent_publishers": from_silent,
        "window_seconds": (elapsed * 10.0).round() / 10.0,
        "subscriber_streams": streams,
        "packets_received": received,
        "packets_missing": missing,
        "loss_ratio": loss,
        "min_packets_per_second_per_stream": (min_rate * 10.0).round() / 10.0,
        "join_ms": {"p50": ms(percentile(&join_times, 50.0)), "p95": ms(percentile(&join_times, 95.0)), "max": ms(join_times.last().copied().unwrap_or_default())},
    });
    merge(&mut report, costs);
    for (_, c) in &clients {
        c.leave();
    }
    if let Some(churned) = churned {
        report["churn"] = churned.to_json(&args.churn, Duration::from_secs_f64(elapsed));
        report["after_everyone_left"] =
            churn::after_everyone_left(args.server_pid, idle.as_ref()).await;
    }
    if args.json {
        println!("{report}");
    } else {
        println!(
            "rooms x participants:   {} x {}",
            args.rooms, args.participants
        );
        println!("speakers per room:      {speakers}");
        println!(
            "window:                 {elapsed:.1} s, {streams} subscriber streams from speakers"
        );
        println!(
            "forwarded:              {forwarded_per_second:.0} packets/s ({from_silent} packets of silence)"
        );
        println!(
            "packets received:       {received} ({missing} missing, loss {:.4}%)",
            loss * 100.0
        );
        println!("slowest stream:         {min_rate:.1} packets/s (50 expected)");
        println!(
            "liveness:               {failed_peers} failed peers, {disconnects} seen disconnected, {} of {streams} streams stalled in some 5 s slice",
            stalled.len()
        );
        println!(
            "join (socket -> media): p50 {} ms, p95 {} ms, max {} ms",
            report["join_ms"]["p50"], report["join_ms"]["p95"], report["join_ms"]["max"]
        );
        match report["server_cpu_percent_of_one_core"].as_f64() {
            Some(c) => println!(
                "server CPU:             {c:.1}% of one core ({} µs per forwarded packet, {} KiB RSS per participant)",
                report["server_cpu_us_per_forwarded_packet"],
                report["server_rss_kib_per_participant"]
            ),
            None => println!("server CPU:             (pass --server-pid to measure)"),
        }
        println!(
            "latency (send -> recv): p50 {} ms, p99 {} ms, p99.9 {} ms ({} packets)",
            report["latency_ms"]["p50"],
            report["latency_ms"]["p99"],
            report["latency_ms"]["p999"],
            report["latency_ms"]["samples"]
        );
        println!(
            "bench CPU:              {}% of one core",
            report["client_cpu_percent_of_one_core"]
        );
        if !report["churn"].is_null() {
            println!("churn:                  {}", report["churn"]);
            println!("after everyone left:    {}", report["after_everyone_left"]);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}
