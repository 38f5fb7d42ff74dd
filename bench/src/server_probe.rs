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
