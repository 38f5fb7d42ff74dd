//! `janus-load`: the `load` scenario against a Janus VideoRoom, for the side-by-side report
//! (scripts/side-by-side.sh): R rooms x P participants, each publishing a tone and receiving
//! everyone else, the same clients and the same measures as `load` against WebCall.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bench::janus::{create_room, JanusParticipant, JanusSession};
use bench::latency::LatencyHistogram;
use bench::rtc_client::ClientStats;
use serde_json::json;

use super::{ms, percentile};
use crate::churn::{self, ChurnArgs};
use crate::progress;
use crate::server_probe::{merge, CostWindow, ServerProbe};

/// RFC 6464 silence, as in `load`.
const SILENT_LEVEL: u8 = 127;

#[derive(clap::Parser)]
pub struct JanusLoadArgs {
    /// Janus's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8088/janus")]
    url: String,
    #[arg(long, default_value_t = 2)]
    rooms: usize,
    #[arg(long, default_value_t = 5)]
    participants: usize,
    /// Talking participants per room; the others send packets announcing silence (Janus
    /// forwards them all the same).
    #[arg(long)]
    speakers: Option<usize>,
    /// Those who don't talk keep their microphone muted (send nothing) instead of sending
    /// silence: a webinar's listeners.
    #[arg(long)]
    muted_listeners: bool,
    /// Milliseconds between two publishers joining.
    #[arg(long, default_value_t = 0)]
    join_every_ms: u64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Janus's process id, for its CPU over the window.
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long)]
    json: bool,
    /// A name for this run, copied into the JSON (`scenario`).
    #[arg(long, default_value = "")]
    label: String,
    #[command(flatten)]
    churn: ChurnArgs,
}

/// Packets and sequence gaps summed over every stream a subscriber received.
fn totals(stats: &ClientStats) -> (u64, u64) {
    stats
        .streams
        .values()
        .fold((0, 0), |(p, m), s| (p + s.packets, m + s.missing))
}

pub async fn run(args: JanusLoadArgs) -> Result<()> {
    if args.rooms == 0 || args.participants < 2 || args.seconds == 0 {
        bail!("--rooms >= 1, --participants >= 2 and --seconds >= 1");
    }
    let idle_rss = CostWindow::idle_rss(args.server_pid);
    let http = reqwest::Client::builder().no_proxy().build()?;
    let control = JanusSession::create(&http, &args.url).await?;
    let first_room = 1_000_000 + u64::from(rand::random::<u16>()) * 100;
    let rooms: Vec<u64> = (0..args.rooms as u64).map(|r| first_room + r).collect();
    for &room in &rooms {
        create_room(&control, room, args.participants + args.churn.churners + 1).await?;
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

    // Everyone publishes, then everyone subscribes to the others of their room on one
    // PeerConnection (Janus's multistream subscriber).
    let muted_listeners = args.muted_listeners;
    let mut joins = Vec::new();
    for &room in &rooms {
        for p in 0..args.participants {
            let (http, url) = (http.clone(), args.url.clone());
            let feed = (p + 1) as u64;
            joins.push(tokio::spawn(async move {
                let tone = 220.0 + 55.0 * p as f32;
                let participant = JanusParticipant::publish(&http, &url, room, feed, tone).await?;
                if p >= speakers && muted_listeners {
                    participant.publisher.set_publishing(false);
                } else if p >= speakers {
                    participant.publisher.set_audio_level(SILENT_LEVEL);
                }
                participant.publisher.stamp_send_times();
                anyhow::Ok((room, participant))
            }));
            if args.join_every_ms > 0 {
                tokio::time::sleep(Duration::from_millis(args.join_every_ms)).await;
            }
        }
    }
    let joined = progress::participants("publishing", joins.len());
    let mut participants = Vec::new();
    for join in joins {
        participants.push(join.await??);
        joined.inc(1);
    }
    joined.finish_and_clear();
    // Janus offers a feed to subscribers only once its publisher's PeerConnection is up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while participants
        .iter()
        .any(|(_, p)| p.publisher.stats().connected_after.is_none())
    {
        if Instant::now() > deadline {
            bail!("publishers did not connect to Janus within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut subscribes = Vec::new();
    for (room, mut participant) in participants {
        let feeds: Vec<u64> = (1..=args.participants as u64)
            .filter(|f| *f != participant.feed)
            .collect();
        subscribes.push(tokio::spawn(async move {
            // A feed whose publisher Janus hasn't marked active yet is refused for a moment.
            let mut tries = 0;
            loop {
                match participant.subscribe(room, &feeds).await {
                    Ok(()) => break,
                    Err(e) if tries < 25 && e.to_string().contains("No such feed") => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            anyhow::Ok(participant)
        }));
    }
    let subscribed = progress::participants("subscribing", subscribes.len());
    let mut clients = Vec::new();
    for subscribe in subscribes {
        clients.push(subscribe.await??);
        subscribed.inc(1);
    }
    subscribed.finish_and_clear();

    let deadline = Instant::now() + Duration::from_secs(30);
    while clients.iter().any(|c| !c.connected()) {
        if Instant::now() > deadline {
            let missing = clients.iter().filter(|c| !c.connected()).count();
            bail!("{missing} participants did not connect within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let cost = CostWindow::start(args.server_pid, idle_rss);
    let before: Vec<_> = clients.iter().map(JanusParticipant::received).collect();
    let latency_before: Vec<_> = clients.iter().map(JanusParticipant::latency).collect();
    let window = Instant::now();
    let mut stalled = 0usize;
    let mut last = before.clone();
    let end = window + Duration::from_secs(args.seconds);
    // Churners: muted publishers (as a browser joins Janus's VideoRoom) that subscribe to the
    // talkers, stay, leave (the session destroyed) and come back under a new feed id.
    let churning = (args.churn.churners > 0).then(|| {
        let per_room = args.churn.churners;
        let seats: Vec<u64> = rooms
            .iter()
            .flat_map(|room| std::iter::repeat_n(*room, per_room))
            .collect();
        let talkers: Vec<u64> = (1..=speakers as u64).collect();
        let (http, url, stay) = (http.clone(), args.url.clone(), args.churn.stay());
        tokio::spawn(churn::drive(
            seats.len(),
            stay,
            end,
            move |churner, attempt| {
                let (http, url, talkers) = (http.clone(), url.clone(), talkers.clone());
                let room = seats[churner];
                async move {
                    let feed = 100_000 + churner as u64 * 10_000 + attempt;
                    let mut participant =
                        JanusParticipant::publish(&http, &url, room, feed, 0.0).await?;
                    participant.publisher.set_publishing(false);
                    let joined = match participant.subscribe(room, &talkers).await {
                        Ok(()) => {
                            churn::connected(|| {
                                participant
                                    .connected()
                                    .then(|| participant.join_time())
                                    .flatten()
                            })
                            .await
                        }
                        Err(e) => Err(e),
                    };
                    if joined.is_ok() {
                        tokio::time::sleep(stay).await;
                    }
                    participant.leave().await;
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
        for (i, c) in clients.iter().enumerate() {
            let now = c.received();
            if slice >= Duration::from_secs(1) {
                stalled += now
                    .streams
                    .iter()
                    .filter(|(k, s)| last[i].streams.get(*k).map(|o| o.packets) == Some(s.packets))
                    .count();
            }
            last[i] = now;
        }
    }
    measuring.finish_and_clear();
    let elapsed = window.elapsed().as_secs_f64();
    let latency_after: Vec<_> = clients.iter().map(JanusParticipant::latency).collect();
    let afters: Vec<_> = clients.iter().map(JanusParticipant::received).collect();
    let churned = match churning {
        Some(task) => Some(task.await?),
        None => None,
    };
    let latency = LatencyHistogram::window(&latency_before, &latency_after);

    let mut received = 0u64;
    let mut missing = 0u64;
    let mut streams = 0usize;
    let mut min_rate = f64::MAX;
    for (i, after) in afters.iter().enumerate() {
        let (p1, m1) = totals(after);
        let (p0, m0) = totals(&before[i]);
        received += p1 - p0;
        missing += m1 - m0;
        for (key, s) in &after.streams {
            let got = s.packets - before[i].streams.get(key).map_or(0, |b| b.packets);
            streams += 1;
            min_rate = min_rate.min(got as f64 / elapsed);
        }
    }
    // Every publisher's stream at every other participant; muted listeners publish none.
    let publishing = if args.muted_listeners {
        speakers
    } else {
        args.participants
    };
    let expected_streams = args.rooms * publishing * (args.participants - 1);
    if streams < expected_streams {
        min_rate = 0.0;
    }
    let forwarded_per_second = received as f64 / elapsed;
    let loss = if received + missing == 0 {
        1.0
    } else {
        missing as f64 / (received + missing) as f64
    };
    let costs = cost.finish(forwarded_per_second, clients.len());
    let mut join_times: Vec<Duration> = clients.iter().filter_map(|c| c.join_time()).collect();
    join_times.sort();
    let mut report = json!({
        "sfu": "janus",
        "scenario": args.label,
        "latency_ms": latency.summary(),
        "stalled_streams": stalled,
        "rooms": args.rooms,
        "participants_per_room": args.participants,
        "speakers_per_room": speakers,
        "muted_listeners": args.muted_listeners,
        "forwarded_packets_per_second": forwarded_per_second.round(),
        "window_seconds": (elapsed * 10.0).round() / 10.0,
        "subscriber_streams": streams,
        "expected_subscriber_streams": expected_streams,
        "packets_received": received,
        "packets_missing": missing,
        "loss_ratio": loss,
        "min_packets_per_second_per_stream": (min_rate * 10.0).round() / 10.0,
        "join_ms": {"p50": ms(percentile(&join_times, 50.0)), "p95": ms(percentile(&join_times, 95.0)), "max": ms(join_times.last().copied().unwrap_or_default())},
    });
    merge(&mut report, costs);
    for c in &clients {
        c.leave().await;
    }
    if let Some(churned) = churned {
        report["churn"] = churned.to_json(&args.churn, Duration::from_secs_f64(elapsed));
        report["after_everyone_left"] =
            churn::after_everyone_left(args.server_pid, idle.as_ref()).await;
    }
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    control.destroy().await;
    Ok(())
}
