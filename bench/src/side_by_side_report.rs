//! `side-by-side-report`: turns the JSON lines of `scripts/side-by-side.sh` (one `load` and
//! one `janus-load` result per scenario) into a Markdown report with the ratio of the two
//! SFUs' costs, and SVG plots of server CPU against load.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::Value;

/// The loss, and the 99th-percentile latency, above which a scenario is past an SFU's
/// capacity (the knee).
const KNEE_LOSS: f64 = 0.005;
const KNEE_P99_MS: f64 = 20.0;

#[derive(clap::Parser)]
pub struct ReportArgs {
    /// The JSON lines the runs printed.
    #[arg(long)]
    runs: PathBuf,
    /// Where side-by-side.md and the plots go.
    #[arg(long)]
    out: PathBuf,
}

/// One scenario's two results.
#[derive(Default)]
struct Pair {
    webcall: Option<Value>,
    janus: Option<Value>,
}

fn num(run: &Value, field: &str) -> Option<f64> {
    run[field].as_f64()
}

fn cell(run: Option<&Value>, field: &str, decimals: usize) -> String {
    run.and_then(|r| num(r, field))
        .map_or("-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// Whether a run kept every stream flowing with loss and latency under the knee.
fn healthy(run: &Value) -> bool {
    num(run, "loss_ratio").is_some_and(|l| l <= KNEE_LOSS)
        && run["latency_ms"]["p99"]
            .as_f64()
            .is_some_and(|p| p <= KNEE_P99_MS)
        && run["stalled_streams"].as_u64() == Some(0)
        && run["failed_peers"].as_u64().unwrap_or(0) == 0
}

/// Participants of a conference scenario (`conference 1xP`), for the capacity sweep.
fn sweep_size(label: &str) -> Option<u32> {
    label.strip_prefix("conference 1x")?.parse().ok()
}

pub fn run(args: ReportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.runs)
        .with_context(|| format!("reading {}", args.runs.display()))?;
    let mut order = Vec::new();
    let mut pairs: BTreeMap<String, Pair> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let run: Value = serde_json::from_str(line).context("a run's JSON")?;
        let label = run["scenario"].as_str().unwrap_or_default().to_owned();
        if !pairs.contains_key(&label) {
            order.push(label.clone());
        }
        let pair = pairs.entry(label).or_default();
        match run["sfu"].as_str() {
            Some("janus") => pair.janus = Some(run),
            _ => pair.webcall = Some(run),
        }
    }
    std::fs::create_dir_all(&args.out)?;
    let markdown = render_markdown(&order, &pairs);
    std::fs::write(args.out.join("side-by-side.md"), &markdown)?;
    plot_cpu(&order, &pairs, &args.out.join("side-by-side-cpu.svg"))?;
    plot_latency(&order, &pairs, &args.out.join("side-by-side-latency.svg"))?;
    print!("{markdown}");
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    format!("{cpu}, {cores} cores, Linux {kernel}")
}

fn render_markdown(order: &[String], pairs: &BTreeMap<String, Pair>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# WebCall and Janus side by side\n");
    let _ = writeln!(
        md,
        "Written by `scripts/side-by-side.sh` (`webcall-bench side-by-side-report`). Machine: {}. \
         Each scenario ran once on each SFU, back to back in one run: the server alone on one core \
         (`taskset`, WebCall with `SFU_SHARDS=1`), the bench's WebRTC clients on the other, all on \
         127.0.0.1 in a private network namespace. Janus is Debian's 1.1.2 VideoRoom (each \
         participant publishes on one PeerConnection and receives the others on one multistream \
         subscriber PeerConnection, as Janus's demo does); WebCall is the release build. Cost is \
         server CPU time over a 20 s window divided by the packets subscribers received. \
         The ratio is WebCall's server CPU over Janus's for the same call: below 1 WebCall is \
         cheaper. In the conference rows both forward every stream, so it is also the ratio \
         of CPU per forwarded packet; in the large-room rows WebCall forwards only the 3 \
         loudest (its default above 12 participants) while Janus forwards every stream, \
         silence included: the listeners hear the same talkers either way.\n",
        machine()
    );
    let _ = writeln!(
        md,
        "| scenario | µs/packet WebCall | µs/packet Janus | CPU ratio | packets/s WebCall | packets/s Janus | loss WebCall | loss Janus | server CPU % WebCall | server CPU % Janus | latency p50 / p99 ms WebCall | latency p50 / p99 ms Janus | join p50 ms WebCall | join p50 ms Janus | KiB RSS/participant above idle WebCall | KiB RSS/participant above idle Janus | bench CPU % |"
    );
    let _ = writeln!(md, "|{}", "---|".repeat(17));
    for label in order {
        let pair = &pairs[label];
        let (w, j) = (pair.webcall.as_ref(), pair.janus.as_ref());
        // Both delivered the same call to the same listeners, so the CPU each spent on it
        // compares directly (per forwarded packet would not in large rooms, where WebCall
        // holds back the silent and Janus forwards them).
        let cpu = |r: Option<&Value>| r.and_then(|r| num(r, "server_cpu_percent_of_one_core"));
        let ratio = match (cpu(w), cpu(j)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".to_owned(),
        };
        let loss = |r: Option<&Value>| {
            r.and_then(|r| num(r, "loss_ratio"))
                .map_or("-".to_owned(), |l| format!("{:.2} %", l * 100.0))
        };
        let join = |r: Option<&Value>| {
            r.and_then(|r| r["join_ms"]["p50"].as_f64())
                .map_or("-".to_owned(), |v| format!("{v:.0}"))
        };
        let latency = |r: Option<&Value>| {
            let at = |p: &str| {
                r.and_then(|r| r["latency_ms"][p].as_f64())
                    .map_or("-".to_owned(), |v| format!("{v:.2}"))
            };
            format!("{} / {}", at("p50"), at("p99"))
        };
        let bench_cpu = [w, j]
            .iter()
            .map(|r| cell(*r, "client_cpu_percent_of_one_core", 0))
            .collect::<Vec<_>>()
            .join(" / ");
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {ratio} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {bench_cpu} |",
            cell(w, "server_cpu_us_per_forwarded_packet", 1),
            cell(j, "server_cpu_us_per_forwarded_packet", 1),
            cell(w, "forwarded_packets_per_second", 0),
            cell(j, "forwarded_packets_per_second", 0),
            loss(w),
            loss(j),
            cell(w, "server_cpu_percent_of_one_core", 0),
            cell(j, "server_cpu_percent_of_one_core", 0),
            latency(w),
            latency(j),
            join(w),
            join(j),
            cell(w, "server_rss_kib_per_participant", 0),
            cell(j, "server_rss_kib_per_participant", 0),
        );
    }
    let knee = |pick: fn(&Pair) -> Option<&Value>| -> String {
        let mut last_good = None;
        for label in order {
            let Some(size) = sweep_size(label) else {
                continue;
            };
            match pick(&pairs[label]) {
                Some(run) if healthy(run) => last_good = Some((size, run)),
                Some(_) => {
                    return last_good.map_or(format!("below 1x{size}"), |(s, r)| {
                        format!(
                            "1x{s} ({} packets/s); 1x{size} lost more than {} %, stalled or \
                             had p99 latency above {KNEE_P99_MS} ms",
                            cell(Some(r), "forwarded_packets_per_second", 0),
                            KNEE_LOSS * 100.0
                        )
                    })
                }
                None => {}
            }
        }
        last_good.map_or("not measured".to_owned(), |(s, r)| {
            format!(
                "not reached: 1x{s} was clean ({} packets/s)",
                cell(Some(r), "forwarded_packets_per_second", 0)
            )
        })
    };
    let _ = writeln!(
        md,
        "\nCapacity (the largest conference 1xP with loss ≤ {} %, p99 latency ≤ {KNEE_P99_MS} ms \
         and no stalled stream): \
         WebCall {}; Janus {}. The bench's clients share one core; `bench CPU %` near 100 means \
         the generator, not the server, was the limit.\n",
        KNEE_LOSS * 100.0,
        knee(|p| p.webcall.as_ref()),
        knee(|p| p.janus.as_ref())
    );
    render_churn(&mut md, order, pairs);
    let _ = writeln!(
        md,
        "Latency is from a sender client stamping a packet to a receiver client reading it \
         (one clock: the clients share a process), so it includes both clients' SRTP and \
         their core's queueing, not only the server.\n"
    );
    let _ = writeln!(
        md,
        "![server CPU against forwarded packets](side-by-side-cpu.svg)\n\n\
         ![latency CDF](side-by-side-latency.svg)\n\nRaw results: \
         `side-by-side.jsonl` (one `load` / `janus-load` JSON object per run)."
    );
    md
}

/// The churn scenarios: joins and leaves while the others talk, and what is left after.
fn render_churn(md: &mut String, order: &[String], pairs: &BTreeMap<String, Pair>) {
    let churns: Vec<&String> = order
        .iter()
        .filter(|l| {
            let p = &pairs[*l];
            [&p.webcall, &p.janus]
                .iter()
                .any(|r| r.as_ref().is_some_and(|r| r["churn"].is_object()))
        })
        .collect();
    if churns.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "Churn: extra participants with a muted microphone join, stay, leave and join again \
         for the whole window while the others hold the call. A join counts from the first \
         request to connected media (failed: no media within 10 s). The stable call's loss and \
         stalls are in the table above; below, what the churn cost and what was left once \
         everyone had left (the leak check: memory and open files against the idle server).\n"
    );
    let _ = writeln!(
        md,
        "| scenario | SFU | joins/s | failed joins | join p50 / p95 ms | server CPU % | stable call loss | stalled streams | RSS KiB idle -> after all left | open files idle -> after |"
    );
    let _ = writeln!(md, "|{}", "---|".repeat(10));
    for label in churns {
        let pair = &pairs[label];
        for (name, run) in [("WebCall", &pair.webcall), ("Janus", &pair.janus)] {
            let Some(run) = run else { continue };
            let churn = &run["churn"];
            let left = &run["after_everyone_left"];
            let pair_of = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
                (Some(a), Some(b)) => format!("{a:.0} -> {b:.0}"),
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                md,
                "| {label} | {name} | {} | {} | {} / {} | {} | {} | {} | {} | {} |",
                churn["joins_per_second"],
                churn["failed_joins"],
                churn["join_ms"]["p50"],
                churn["join_ms"]["p95"],
                cell(Some(run), "server_cpu_percent_of_one_core", 0),
                run["loss_ratio"]
                    .as_f64()
                    .map_or("-".to_owned(), |l| format!("{:.2} %", l * 100.0)),
                run["stalled_streams"],
                pair_of(&left["idle_rss_kib"], &left["rss_kib"]),
                pair_of(&left["idle_fds"], &left["fds"]),
            );
        }
    }
    let _ = writeln!(md);
}

/// Server CPU (% of one core) against forwarded packets/s, one line per SFU, over every run.
fn plot_cpu(order: &[String], pairs: &BTreeMap<String, Pair>, path: &Path) -> Result<()> {
    let series = |pick: fn(&Pair) -> Option<&Value>| -> Vec<(f64, f64)> {
        let mut points: Vec<(f64, f64)> = order
            .iter()
            .filter_map(|l| pick(&pairs[l]))
            .filter_map(|r| {
                Some((
                    num(r, "forwarded_packets_per_second")?,
                    num(r, "server_cpu_percent_of_one_core")?,
                ))
            })
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points
    };
    let webcall = series(|p| p.webcall.as_ref());
    let janus = series(|p| p.janus.as_ref());
    let max_x = webcall
        .iter()
        .chain(&janus)
        .map(|p| p.0)
        .fold(1000.0, f64::max);
    line_chart(
        path,
        "Server CPU against forwarded audio packets",
        ("packets/s received by subscribers", max_x),
        ("server CPU, % of one core", 110.0),
        [&webcall, &janus],
        true,
    )
}

/// The forwarding-latency CDF of both SFUs in the largest scenario both carried cleanly
/// (else the first one).
fn plot_latency(order: &[String], pairs: &BTreeMap<String, Pair>, path: &Path) -> Result<()> {
    let clean =
        |p: &Pair| p.webcall.as_ref().is_some_and(healthy) && p.janus.as_ref().is_some_and(healthy);
    let load = |p: &Pair| {
        p.janus
            .as_ref()
            .and_then(|r| num(r, "forwarded_packets_per_second"))
            .unwrap_or(0.0)
    };
    let Some(label) = order
        .iter()
        .filter(|l| clean(&pairs[*l]))
        .max_by(|a, b| load(&pairs[*a]).total_cmp(&load(&pairs[*b])))
        .or_else(|| order.first())
    else {
        return Ok(());
    };
    let pair = &pairs[label];
    let cdf = |run: Option<&Value>| -> Vec<(f64, f64)> {
        run.and_then(|r| r["latency_ms"]["cdf"].as_array())
            .map(|points| {
                points
                    .iter()
                    .filter_map(|p| Some((p[1].as_f64()?, p[0].as_f64()? / 100.0)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let webcall = cdf(pair.webcall.as_ref());
    let janus = cdf(pair.janus.as_ref());
    let max_x = webcall
        .iter()
        .chain(&janus)
        .map(|p| p.0)
        .fold(1.0, f64::max);
    line_chart(
        path,
        &format!("Forwarding latency, {label}"),
        ("send -> receive, ms", max_x),
        ("fraction of packets", 1.0),
        [&webcall, &janus],
        false,
    )
}

/// An SVG chart with WebCall's line (blue) and Janus's (red) from 0 to each axis's maximum
/// (`(description, max)`), with a dot on each point if `dots`.
fn line_chart(
    path: &Path,
    caption: &str,
    x: (&str, f64),
    y: (&str, f64),
    [webcall, janus]: [&Vec<(f64, f64)>; 2],
    dots: bool,
) -> Result<()> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x.1 * 1.05, 0.0..y.1)?;
    chart.configure_mesh().x_desc(x.0).y_desc(y.0).draw()?;
    for (name, points, color) in [("WebCall", webcall, &BLUE), ("Janus 1.1.2", janus, &RED)] {
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        if dots {
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}
