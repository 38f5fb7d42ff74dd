//! What the server process uses, read from Linux's /proc: CPU time, resident memory, open
//! file descriptors and threads.

use serde_json::{json, Value};

/// Reads one process's /proc entries.
pub struct ServerProbe {
    pid: u32,
}

/// One reading of the server process.
#[derive(Debug, Clone)]
pub struct ProcessSample {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    /// Of `rss_kib`: heap and other private memory, mapped files, shared memory (SQLite's
    /// WAL index lives there).
    pub rss_anon_kib: u64,
    pub rss_file_kib: u64,
    pub rss_shmem_kib: u64,
    pub fds: usize,
    pub threads: u64,
}

impl ProcessSample {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "rss_kib": self.rss_kib,
            "rss_anon_kib": self.rss_anon_kib,
            "rss_file_kib": self.rss_file_kib,
            "rss_shmem_kib": self.rss_shmem_kib,
            "fds": self.fds,
            "threads": self.threads,
        })
    }
}

impl ServerProbe {
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }

    /// A reading, or `None` when the process is gone (or this isn't Linux).
    pub fn sample(&self) -> Option<ProcessSample> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some(ProcessSample {
            cpu_seconds: cpu_seconds(self.pid)?,
            rss_kib: field("VmRSS:")?,
            rss_anon_kib: field("RssAnon:").unwrap_or(0),
            rss_file_kib: field("RssFile:").unwrap_or(0),
            rss_shmem_kib: field("RssShmem:").unwrap_or(0),
            threads: field("Threads:")?,
            fds: std::fs::read_dir(format!("/proc/{}/fd", self.pid))
                .ok()?
                .count(),
        })
    }
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0) // USER_HZ is 100 on Linux
}

/// The server's and the bench's own CPU over a measuring window, and the server's memory at
/// its end: the cost columns every load report (WebCall's and Janus's) shares.
pub struct CostWindow {
    server: Option<ServerProbe>,
    server_cpu: Option<f64>,
    own_cpu: Option<f64>,
    idle_rss_kib: Option<u64>,
    started: std::time::Instant,
}

impl CostWindow {
    /// The server's resident memory before anyone joined, for the memory per participant.
    pub fn idle_rss(server_pid: Option<u32>) -> Option<u64> {
        ServerProbe::new(server_pid?).sample().map(|s| s.rss_kib)
    }

    /// Starts the window; without `server_pid` only the bench's own CPU is measured.
    pub fn start(server_pid: Option<u32>, idle_rss_kib: Option<u64>) -> Self {
        let server = server_pid.map(ServerProbe::new);
        Self {
            idle_rss_kib,
            server_cpu: server_pid.and_then(cpu_seconds),
            own_cpu: cpu_seconds(std::process::id()),
            server,
            started: std::time::Instant::now(),
        }
    }

    /// Ends the window: the JSON cost fields for `forwarded_per_second` packets forwarded
    /// on average and `participants` connected.
    pub fn finish(&self, forwarded_per_second: f64, participants: usize) -> Value {
        let elapsed = self.started.elapsed().as_secs_f64();
        let percent = |before: Option<f64>, pid: Option<u32>| -> Option<f64> {
            let after = cpu_seconds(pid?)?;
            Some((after - before?) / elapsed * 100.0)
        };
        let server_cpu = percent(self.server_cpu, self.server.as_ref().map(|s| s.pid));
        let own_cpu = percent(self.own_cpu, Some(std::process::id()));
        let rss = self
            .server
            .as_ref()
            .and_then(ServerProbe::sample)
            .map(|s| s.rss_kib);
        let round1 = |v: f64| (v * 10.0).round() / 10.0;
        json!({
            "server_cpu_percent_of_one_core": server_cpu.map(round1),
            // Receiving, SRTP both ways and sending, per packet a subscriber got.
            "server_cpu_us_per_forwarded_packet": server_cpu
                .filter(|_| forwarded_per_second > 0.0)
                .map(|c| round1(c / 100.0 / forwarded_per_second * 1e6)),
            // The generator must not be the bottleneck: near 100 % it is.
            "client_cpu_percent_of_one_core": own_cpu.map(round1),
            "server_rss_kib": rss,
            "server_idle_rss_kib": self.idle_rss_kib,
            // What each connected participant costs above the idle server.
            "server_rss_kib_per_participant": rss
                .zip(self.idle_rss_kib)
                .filter(|_| participants > 0)
                .map(|(r, idle)| round1(r.saturating_sub(idle) as f64 / participants as f64)),
        })
    }
}

/// Adds every field of `extra` (an object) to `report` (an object).
pub fn merge(report: &mut Value, extra: Value) {
    if let (Some(report), Value::Object(extra)) = (report.as_object_mut(), extra) {
        report.extend(extra);
    }
}
