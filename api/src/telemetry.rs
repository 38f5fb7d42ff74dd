//! Logs (JSON lines through `tracing`) and the process-wide Prometheus recorder.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Our crates at `info`, every other crate at `warn`; the WebRTC stack only at `error`: it
/// warns at every join about DTLS extensions Chrome offers that `rtc` doesn't speak and about
/// SRTP writes racing the handshake, none of which is a problem. whisper.cpp's own lines
/// (model load, per-decode notes) come through `whisper_rs` and stay at `warn`.
pub const DEFAULT_FILTER: &str = "warn,api=info,webcall=info,signaling=info,sfu=info,transcriber=info,rtc=error,rtc_dtls=error,rtc_ice=error,rtc_srtp=error,rtc_interceptor=error,rtc_sctp=error,rtc_datachannel=error";

/// Installs the JSON log subscriber on stderr (stdout is for a command's result, e.g.
/// `webcall transcribe x.wav > x.txt`). `RUST_LOG` filters (default [`DEFAULT_FILTER`]);
/// `LOG_FORMAT=pretty` gives human-readable lines for local work.
pub fn init_logging() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let pretty = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "pretty");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests) keeps the first subscriber instead of panicking.
    let _ = if pretty {
        builder.try_init()
    } else {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init()
    };
}

/// The Prometheus handle. The recorder is global to the process (the `metrics` facade is how
/// every crate reports), so it is installed once and shared by every app in it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".to_owned()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ],
                )
                .map(PrometheusBuilder::build_recorder);
            match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    // Fails only if another recorder is installed; then ours stays empty.
                    let _ = metrics::set_global_recorder(recorder);
                    handle
                }
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// How often histogram samples are folded into their summaries when nobody scrapes.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every few seconds until `stop`.
/// The recorder keeps every sample (the SFU records one per forwarded batch) until a scrape
/// or an upkeep drains them; a server nobody scrapes, the default self-hosted setup, would
/// otherwise grow without bound (`PrometheusBuilder::install` runs this for you; we build
/// the recorder ourselves to share it between apps in one process).
pub fn run_metrics_upkeep(
    handle: PrometheusHandle,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => handle.run_upkeep(),
                _ = stop.changed() => break,
            }
        }
    })
}
