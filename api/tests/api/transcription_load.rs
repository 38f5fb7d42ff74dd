//! Transcription under load: N participants speaking at the same time through the SFU into
//! whisper, for one `WHISPER_WORKERS` setting per run. A measurement, not a check: it prints
//! one JSON line per run that `scripts/transcription-load.sh` sweeps over N and the worker
//! count and writes into `bench/reports/transcription-load.md`, so that the owner of a box can
//! size it. Each run is its own process: the metrics recorder is global, so a run's counters
//! and quantiles are that run's alone.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::spawn_with;
use crate::transcription::{percentile, speaker, speech_in, test_model, wait_until};

/// What each speaker says, one sentence after another, starting at a different line.
const SENTENCES: &[&str] = &[
    "Good morning everyone, let us begin the meeting.",
    "Thanks. I finished the report for the customer yesterday.",
    "Great. Can you send it to the whole team this afternoon?",
    "Yes, and I will add the new numbers from the sales department.",
    "We should also talk about the schedule for next month.",
    "The new schedule starts on Monday and the first release is in two weeks.",
    "Who is going to test the release before it goes out?",
    "Maria and Peter will test it on Thursday and Friday.",
    "Good. Please call me back tomorrow morning if anything breaks.",
    "I will. Let us meet again next week at the same time.",
];

/// Silence between one speaker's sentences: long enough for the VAD to close the utterance.
const PAUSE_S: f64 = 2.0;
/// Speaker i starts i x this late, so that utterances overlap but don't end together.
const STAGGER_S: f64 = 0.7;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value of the first `/metrics` line named `name` that carries every label in `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| {
            let rest = &l[name.len()..];
            rest.starts_with('{') || rest.starts_with(' ')
        })
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Sum of a counter over all its label sets (0 when it never counted).
fn counter_total(text: &str, name: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v.round() as u64)
        .sum()
}

/// This process's CPU time (user + system), which here is the server, whisper and the clients.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for bench/reports/transcription-load.md: scripts/transcription-load.sh"]
async fn transcription_load_of_simultaneous_speakers() {
    let Some(model) = test_model() else { return };
    let speakers = env_usize("LOAD_SPEAKERS", 2).max(1);
    let sentences = env_usize("LOAD_SENTENCES", 4).clamp(1, SENTENCES.len());
    let workers = env_usize("WHISPER_WORKERS", 1).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Each worker gets its share of the cores unless told otherwise, as an owner would set it.
    let threads = env_usize("WHISPER_THREADS", (cores / workers).max(1));
    // LOAD_SLOTS=k: a large room (k audio slots from the first join), where the room hears
    // only its k loudest speakers and the transcriber, when behind, keeps what it heard.
    let slots = env_usize("LOAD_SLOTS", 0);
    let (workers_s, threads_s, slots_s) =
        (workers.to_string(), threads.to_string(), slots.to_string());
    let mut settings = vec![
        ("WHISPER_MODEL", model.as_str()),
        ("WHISPER_LANGUAGE", "en"),
        ("WHISPER_WORKERS", workers_s.as_str()),
        ("WHISPER_THREADS", threads_s.as_str()),
    ];
    if slots > 0 {
        settings.push(("SFU_AUDIO_SLOTS", slots_s.as_str()));
        settings.push(("SFU_AUDIO_SLOTS_ABOVE", "0"));
    }
    let app = spawn_with(&settings).await;
    let names: Vec<String> = (0..speakers).map(|i| format!("speaker{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    // One listener who only hears: the captions are stamped on arrival at their socket.
    let mut everyone = name_refs.clone();
    everyone.push("listener");
    let (room, tokens) = app.room_with(&everyone).await;
    let mut ids = Vec::new();
    for token in &tokens[..speakers] {
        ids.push(app.user_id(token).await);
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let rate = 48_000usize;
    let mut tracks = Vec::new();
    let mut starts: Vec<Vec<f64>> = Vec::new();
    let mut ends: Vec<Vec<f64>> = Vec::new();
    let mut said: Vec<String> = Vec::new();
    for s in 0..speakers {
        let mut track = vec![0i16; (s as f64 * STAGGER_S * rate as f64) as usize];
        let mut my_starts = Vec::new();
        let mut my_ends = Vec::new();
        let mut my_words = Vec::new();
        for k in 0..sentences {
            let text = SENTENCES[(s * 3 + k) % SENTENCES.len()];
            let mut pcm = speech_in("en-us", 150, text, dir.path(), &format!("s{s}k{k}"));
            pcm.truncate(pcm.len().saturating_sub(rate)); // `speech_in`'s trailing second
            my_starts.push(track.len() as f64 / rate as f64);
            track.extend(&pcm);
            my_ends.push(track.len() as f64 / rate as f64);
            track.resize(track.len() + (PAUSE_S * rate as f64) as usize, 0);
            my_words.push(text);
        }
        track.resize(track.len() + 2 * rate, 0);
        tracks.push(track);
        starts.push(my_starts);
        ends.push(my_ends);
        said.push(my_words.join(" "));
    }
    let spoken_seconds: f64 = ends.iter().map(|e| e.last().copied().unwrap_or(0.0)).sum();

    let mut calls = Vec::new();
    let mut voices = Vec::new();
    for (s, track) in tracks.into_iter().enumerate() {
        let (call, voice) = speaker(&app, room, &tokens[s], track).await;
        calls.push(call);
        voices.push(voice);
    }
    let listener = bench::call_client::CallClient::join(&app.base, room, &tokens[speakers], 0.0)
        .await
        .expect("listener joins");
    if slots > 0 {
        // A large room forwards only who speaks, and nobody speaks yet.
        wait_until("everyone is connected", 30, || {
            listener.stats().connected_after.is_some()
                && calls.iter().all(|c| c.stats().connected_after.is_some())
        })
        .await;
    } else {
        wait_until("everyone's media reaches the listener", 30, || {
            calls.iter().all(|c| listener.packets_from(c) >= 25)
        })
        .await;
    }
    listener
        .send(json!({"type": "transcription_start", "request_id": "on"}))
        .expect("send");
    wait_until("transcription is on", 10, || {
        listener.saw(|m| m["type"] == "transcription_state" && m["active"] == true)
    })
    .await;

    let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Instant, Value)>::new()));
    let watcher = {
        let seen = arrivals.clone();
        let log = listener.log_reader();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let all = log();
                for m in all.iter().skip(n) {
                    if m["type"] == "caption" {
                        seen.lock().expect("lock").push((Instant::now(), m.clone()));
                    }
                }
                n = all.len();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let cpu_before = process_cpu();
    let wall_before = Instant::now();
    for voice in &voices {
        voice.play();
    }
    // What the listener received from each speaker over time (10 samples a second), to tell
    // the sentences the room heard from those it didn't (a large room forwards k speakers).
    let mut received: Vec<(Instant, Vec<u64>)> = Vec::new();
    let played_by = Instant::now() + Duration::from_secs(300);
    while !voices.iter().all(|v| v.finished().is_some()) {
        assert!(
            Instant::now() < played_by,
            "the tracks did not finish playing"
        );
        let stats = listener.stats();
        received.push((
            Instant::now(),
            calls
                .iter()
                .map(|c| listener.received_from(&stats, c))
                .collect(),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the queue drain: stop once no final has come for 8 s (a backlog is dropped, not
    // kept, so this ends), or after 90 s.
    let drained_by = Instant::now() + Duration::from_secs(90);
    loop {
        let last = arrivals.lock().expect("lock").last().map(|(at, _)| *at);
        let quiet = last.is_none_or(|at| at.elapsed() > Duration::from_secs(8));
        if quiet || Instant::now() > drained_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    watcher.abort();
    let cpu = process_cpu().saturating_sub(cpu_before).as_secs_f64();
    let wall = wall_before.elapsed().as_secs_f64();
    let arrivals = arrivals.lock().expect("lock").clone();

    // An utterance's final is the first final of that speaker that arrives after it ended
    // and before their next one ended; none in that window counts as late or missing.
    let mut latency = Vec::new();
    let mut missing = 0usize;
    // Sentences the listener heard (at least half their frames arrived), and how many of
    // those and of the others got no final in time.
    let (mut heard_sentences, mut heard_missing, mut unheard_missing) = (0usize, 0usize, 0usize);
    let received_by = |s: usize, at: Instant| {
        received
            .iter()
            .find(|(t, _)| *t >= at)
            .or(received.last())
            .map_or(0, |(_, counts)| counts[s])
    };
    let mut live_wer = Vec::new();
    for s in 0..speakers {
        let t0 = voices[s].started().expect("started");
        let finals: Vec<Instant> = arrivals
            .iter()
            .filter(|(_, m)| m["user_id"].as_i64() == Some(ids[s]))
            .map(|(at, _)| *at)
            .collect();
        for (k, end) in ends[s].iter().enumerate() {
            let spoken_end = t0 + Duration::from_secs_f64(*end);
            let next_end = ends[s].get(k + 1).map(|e| t0 + Duration::from_secs_f64(*e));
            let spoken_start = t0 + Duration::from_secs_f64(starts[s][k]);
            let frames = (end - starts[s][k]) / 0.02;
            let got = received_by(s, spoken_end).saturating_sub(received_by(s, spoken_start));
            let heard = got as f64 >= frames * 0.5;
            heard_sentences += usize::from(heard);
            match finals
                .iter()
                .find(|at| **at > spoken_end && next_end.is_none_or(|n| **at < n))
            {
                Some(at) => latency.push(at.duration_since(spoken_end).as_secs_f64()),
                None if heard => {
                    missing += 1;
                    heard_missing += 1;
                }
                None => {
                    missing += 1;
                    unheard_missing += 1;
                }
            }
        }
        let heard: Vec<&str> = arrivals
            .iter()
            .filter(|(_, m)| m["user_id"].as_i64() == Some(ids[s]))
            .filter_map(|(_, m)| m["text"].as_str())
            .collect();
        live_wer.push(transcriber::wer::wer(&said[s], &heard.join(" ")));
    }
    latency.sort_by(f64::total_cmp);
    let pct = |p: f64| (!latency.is_empty()).then(|| percentile(&latency, p));
    let metrics = app.metrics().await;
    let stage = |stage: &str| {
        metric(
            &metrics,
            "transcriber_stage_seconds",
            &[&format!("stage=\"{stage}\""), "quantile=\"0.5\""],
        )
    };
    let result = json!({
        "speakers": speakers,
        "workers": workers,
        "threads": threads,
        "cores": cores,
        "utterances": speakers * sentences,
        "spoken_seconds": spoken_seconds,
        "final_p50_s": pct(0.5),
        "final_p95_s": pct(0.95),
        "final_max_s": latency.last(),
        "slots": slots,
        "late_or_missing": missing,
        "heard_sentences": heard_sentences,
        "heard_late_or_missing": heard_missing,
        "unheard_late_or_missing": unheard_missing,
        "dropped_utterances": counter_total(&metrics, "transcriber_dropped_utterances_total", &[]),
        "dropped_heard": counter_total(&metrics, "transcriber_dropped_utterances_total", &["heard=\"true\""]),
        "dropped_unheard": counter_total(&metrics, "transcriber_dropped_utterances_total", &["heard=\"false\""]),
        "finals_received": arrivals.len(),
        "partials_sent": counter_total(&metrics, "transcriber_partials_total", &["outcome=\"sent\""]),
        "partials_skipped": counter_total(&metrics, "transcriber_partials_total", &["outcome=\"skipped\""]),
        "whisper_p50_s": stage("whisper"),
        "queue_p50_s": stage("queue"),
        "wer_mean": live_wer.iter().sum::<f64>() / live_wer.len() as f64,
        "cpu_cores_used": cpu / wall,
    });
    println!("RESULT {result}");
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    let room = if slots > 0 {
        format!("large, {slots} slots")
    } else {
        "small".to_owned()
    };
    let unheard_sentences = speakers * sentences - heard_sentences;
    println!(
        "ROW | {speakers} | {room} | {workers} x {threads} | {} | {} / {} / {} | {heard_missing} of {heard_sentences} / {unheard_missing} of {unheard_sentences} | {} ({} / {}) | {} / {} | {:.3} | {:.2} |",
        speakers * sentences,
        secs(pct(0.5)),
        secs(pct(0.95)),
        secs(latency.last().copied()),
        result["dropped_utterances"],
        result["dropped_heard"],
        result["dropped_unheard"],
        secs(stage("queue")),
        secs(stage("whisper")),
        result["wer_mean"].as_f64().unwrap_or(f64::NAN),
        cpu / wall,
    );
    eprintln!("{result:#}");
    for call in calls {
        call.leave();
    }
    listener.leave();
    assert!(
        !arrivals.is_empty(),
        "no final caption reached the listener"
    );
}
