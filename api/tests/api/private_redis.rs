//! A Redis server of a test's own, on a port of its own, that the test may stop and start
//! again: the machine's shared Redis must never be restarted under the other tests.

use std::process::Stdio;
use std::time::Duration;

/// A free loopback TCP port (for a server the test starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Whether `program` can be run (it answers `--version`).
pub fn installed(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Whether a server the test started accepts TCP on 127.0.0.1:`port` within 5 s.
pub async fn listening(port: u16) -> bool {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

pub struct PrivateRedis {
    child: tokio::process::Child,
    pub port: u16,
}

impl PrivateRedis {
    /// On a free port of its own; `None` when `redis-server` isn't installed (a skip, or a
    /// failure under `WEBCALL_TEST_REQUIRE_ALL=1`).
    pub async fn start() -> Option<Self> {
        if !installed("redis-server") {
            crate::helpers::unavailable(
                "redis-server is not installed (apt-get install redis-server)",
            );
            return None;
        }
        // A port found free can be taken by someone else before redis-server binds it.
        for _ in 0..5 {
            if let Some(redis) = Self::start_on(free_port()).await {
                return Some(redis);
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// On `port` (again, after [`PrivateRedis::stop`]: a restart keeps the address).
    pub async fn start_on(port: u16) -> Option<Self> {
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        listening(port).await.then_some(Self { child, port })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (as a crash or a restart would) and waits until it is gone.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
}
