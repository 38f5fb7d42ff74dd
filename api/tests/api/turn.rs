//! TURN with Debian's coturn, configured by the very file docker-compose mounts
//! (`deploy/coturn/turnserver.conf`), on loopback:
//! - with `TURN_SHARED_SECRET` each join gets its own time-limited credential (the TURN REST
//!   convention) that coturn accepts for an allocation and relays through; the same
//!   credential tampered with, or expired, is refused for a new allocation, while an
//!   allocation made before the expiry keeps being refreshed (a call outlives its credential);
//! - a relay may reach the SFU and the public Internet, never loopback, private, CGNAT,
//!   link-local (cloud metadata), ULA, IPv4-mapped or multicast peers; there are no TCP
//!   relays; relay ports stay below the SFU's; one credential holds at most 12 allocations.
//!
//! What the tests change on the command line, and why (everything else is the file):
//! - `--listening-ip=127.0.0.1 --listening-port=<free>`: compose listens on every address of
//!   the host at 3478; a test must not, and runs beside other tests.
//! - `--relay-ip=127.0.0.1` (and `::1`): relay sockets on loopback, so no test packet leaves
//!   the machine, even one to a public peer (the kernel refuses to send it from 127.0.0.1).
//! - `--static-auth-secret`: compose passes it on the command line too (TURN_SHARED_SECRET).
//! - For the SFU, `--allowed-peer-ip=127.0.0.1` as compose passes SFU_PUBLIC_IP, plus
//!   `--allow-loopback-peers`, because a test's SFU listens on 127.0.0.1 and compose's never
//!   does. Checks of what is refused run on an instance without these two.
//!
//! Skipped where `turnserver` isn't installed, a failure under `WEBCALL_TEST_REQUIRE_ALL=1`
//! (CI installs `coturn`).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use signaling::ice::TurnRest;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::spawn_with;
use crate::private_redis::{free_port, installed, listening};

const SECRET: &str = "a-secret-shared-with-coturn";

/// The first UDP port of the SFU in docker-compose.yml (app1's SFU_UDP_PORT).
const FIRST_SFU_PORT: u16 = 50_000;

/// The coturn configuration docker-compose mounts.
fn compose_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/coturn/turnserver.conf")
}

/// Whether this machine has IPv6 loopback (some CI containers don't).
fn has_ipv6() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

/// What coturn made of a relay request, read from `turnutils_uclient -v`.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// A channel to the peer was bound: the relay may send there.
    Bound,
    /// coturn answered with this STUN error (403 Forbidden IP, 442 no TCP, 486 quota).
    Error(u16),
    /// Neither before the client ended or gave up; its output.
    Unclear(String),
}

/// One run of `turnutils_uclient`: the verdict and the relay ports it was given.
#[derive(Debug)]
struct Run {
    verdict: Verdict,
    relay_ports: Vec<u16>,
}

/// coturn on 127.0.0.1:`port` with the compose configuration and the overrides above.
struct Coturn {
    _child: tokio::process::Child,
    port: u16,
    /// Its log, when started with `--verbose`.
    log: Option<tempfile::NamedTempFile>,
}

impl Coturn {
    /// As compose runs it, but on loopback. `None` when `turnserver` can't be run.
    async fn compose() -> Option<Self> {
        Self::start(&[], false).await
    }

    /// As compose runs it with the SFU's address allowed, the SFU being on 127.0.0.1.
    async fn with_sfu_on_loopback() -> Option<Self> {
        Self::start(
            &["--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1"],
            false,
        )
        .await
    }

    async fn start(extra: &[&str], verbose: bool) -> Option<Self> {
        if !installed("turnserver") || !installed("turnutils_uclient") {
            crate::helpers::unavailable(
                "coturn's turnserver is not installed (apt-get install coturn)",
            );
            return None;
        }
        // A port found free can be taken before coturn binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let log = verbose.then(|| tempfile::NamedTempFile::new().expect("log file"));
            let mut cmd = tokio::process::Command::new("turnserver");
            cmd.arg("-c")
                .arg(compose_config())
                .args(["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
                .arg(format!("--listening-port={port}"))
                .arg(format!("--static-auth-secret={SECRET}"))
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            if has_ipv6() {
                cmd.arg("--relay-ip=::1");
            }
            if let Some(log) = &log {
                cmd.arg("--verbose").stdout(log.reopen().expect("log file"));
            }
            let child = cmd.spawn().ok()?;
            if listening(port).await {
                return Some(Self {
                    _child: child,
                    port,
                    log,
                });
            }
        }
        panic!("coturn did not start listening on any of 5 free ports");
    }

    /// Allocates with (username, password) and relays 5 messages to a peer of its own
    /// through the allocation (`turnutils_uclient`, from the same package). True if all
    /// of that worked.
    async fn relays_with(&self, username: &str, password: &str) -> bool {
        tokio::process::Command::new("turnutils_uclient")
            .args([
                "-u", username, "-w", password, "-y", "-n", "5", "-m", "1", "-l", "100",
            ])
            .args(["-p", &self.port.to_string(), "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    /// Allocates with a credential of its own and asks for a channel to `peer`:`port` (with
    /// `flags` added, e.g. `-x` for an IPv6 relay, `-T` for a TCP relay). Ends at the first
    /// channel bound or error, or after 10 s.
    async fn relay_to(&self, peer: &str, port: u16, flags: &[&str]) -> Run {
        self.uclient(peer, port, flags, true).await
    }

    /// Like [`Self::relay_to`], but reads on past channels bound, to the first error.
    async fn relay_to_until_error(&self, peer: &str, port: u16, flags: &[&str]) -> Run {
        self.uclient(peer, port, flags, false).await
    }

    async fn uclient(&self, peer: &str, port: u16, flags: &[&str], stop_at_bound: bool) -> Run {
        // A user of its own per run: the allocations of a run ended early linger, and count
        // against the per-user quota of the next.
        static NEXT_USER: AtomicI64 = AtomicI64::new(1000);
        let user = NEXT_USER.fetch_add(1, Ordering::Relaxed);
        let (username, password) =
            turn_rest(Duration::from_secs(600)).credential(user, SystemTime::now());
        let mut child = tokio::process::Command::new("turnutils_uclient")
            .args(["-v", "-u", &username, "-w", &password, "-n", "1", "-c"])
            .args(["-e", peer, "-r", &port.to_string()])
            .args(flags)
            .args(["-p", &self.port.to_string(), "127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("turnutils_uclient runs");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut seen = String::new();
        let mut relay_ports = Vec::new();
        let mut bound = false;
        let read = async {
            while let Ok(Some(line)) = lines.next_line().await {
                seen.push_str(&line);
                seen.push('\n');
                if let Some((_, addr)) = line.split_once("Received relay addr: ") {
                    if let Some(port) = addr.rsplit(':').next().and_then(|p| p.trim().parse().ok())
                    {
                        relay_ports.push(port);
                    }
                }
                if let Some((_, rest)) = line.split_once("error ") {
                    if let Some(code) = rest.get(..3).and_then(|c| c.parse().ok()) {
                        return Some(Verdict::Error(code));
                    }
                }
                if line.contains("success: 0x") {
                    bound = true;
                    if stop_at_bound {
                        return Some(Verdict::Bound);
                    }
                }
            }
            bound.then_some(Verdict::Bound)
        };
        let verdict = tokio::time::timeout(Duration::from_secs(10), read).await;
        let verdict = match verdict {
            Ok(Some(v)) => v,
            _ => Verdict::Unclear(seen),
        };
        Run {
            verdict,
            relay_ports,
        }
    }
}

fn turn_rest(ttl: Duration) -> TurnRest {
    TurnRest {
        urls: vec![],
        secret: SECRET.to_owned().into(),
        ttl,
    }
}

#[tokio::test]
async fn each_join_gets_a_turn_credential_of_its_own_that_coturn_accepts_until_it_expires() {
    let Some(coturn) = Coturn::with_sfu_on_loopback().await else {
        return;
    };
    let turn_url = format!("turn:127.0.0.1:{}?transport=udp", coturn.port);
    let app = spawn_with(&[
        ("TURN_URLS", turn_url.as_str()),
        ("TURN_SHARED_SECRET", SECRET),
        ("TURN_CREDENTIAL_TTL_SECS", "600"),
    ])
    .await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let alice_id = app.user_id(&tokens[0]).await;
    let mut alice = app.room_ws(&tokens[0], room).await;
    let mut bob = app.room_ws(&tokens[1], room).await;
    let joined = alice.join().await;
    let bob_joined = bob.join().await;

    let servers = joined["ice_servers"].as_array().expect("ice_servers");
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_eq!(servers[0]["urls"], serde_json::json!([turn_url]));
    let username = servers[0]["username"].as_str().expect("username");
    let password = servers[0]["credential"].as_str().expect("credential");
    let (expiry, user) = username.split_once(':').expect("expiry:user");
    assert_eq!(user, alice_id.to_string());
    let expiry: u64 = expiry.parse().expect("unix time");
    let now = unix_now();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "expires in TURN_CREDENTIAL_TTL_SECS: {expiry} vs now {now}"
    );
    assert_ne!(
        bob_joined["ice_servers"][0]["credential"], servers[0]["credential"],
        "each user gets a credential of their own"
    );

    assert!(
        coturn.relays_with(username, password).await,
        "coturn allocates and relays with the credential from `joined`"
    );
    // The password is bound to the username: claiming another user or a later expiry fails.
    let other_user = format!("{expiry}:{}", alice_id + 1);
    assert!(!coturn.relays_with(&other_user, password).await);
    let later = format!("{}:{alice_id}", expiry + 86_400);
    assert!(!coturn.relays_with(&later, password).await);
    assert!(!coturn.relays_with(username, "not-the-password").await);

    // A credential whose time has passed is refused: made by the server with a 60 s TTL,
    // presented as if 2 minutes had gone by (coturn checks the expiry in the username).
    let ice = turn_rest(Duration::from_secs(60));
    let (stale_user, stale_password) =
        ice.credential(alice_id, SystemTime::now() - Duration::from_secs(120));
    assert!(!coturn.relays_with(&stale_user, &stale_password).await);
    let (fresh_user, fresh_password) = ice.credential(alice_id, SystemTime::now());
    assert!(coturn.relays_with(&fresh_user, &fresh_password).await);
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn a_turn_credential_makes_new_allocations_for_an_hour_by_default() {
    let Some(coturn) = Coturn::compose().await else {
        return;
    };
    let turn_url = format!("turn:127.0.0.1:{}?transport=udp", coturn.port);
    let app = spawn_with(&[
        ("TURN_URLS", turn_url.as_str()),
        ("TURN_SHARED_SECRET", SECRET),
    ])
    .await;
    let (room, tokens) = app.room_with(&["alice"]).await;
    let joined = app.room_ws(&tokens[0], room).await.join().await;
    let username = joined["ice_servers"][0]["username"]
        .as_str()
        .expect("username");
    let expiry: u64 = username
        .split_once(':')
        .and_then(|(e, _)| e.parse().ok())
        .expect("expiry:user");
    let now = unix_now();
    assert!(
        (now + 3590..=now + 3610).contains(&expiry),
        "a credential expires an hour after the join, not a day: {expiry} vs now {now}"
    );
}

#[tokio::test]
async fn a_relay_reaches_the_public_internet_and_nothing_behind_the_host() {
    let Some(coturn) = Coturn::compose().await else {
        return;
    };
    // The address compose's Redis has on its network, a LAN host, the host's own Redis
    // port, CGNAT, cloud metadata, an mDNS multicast group, broadcast.
    for (peer, port) in [
        ("172.18.0.2", 6379),
        ("10.0.0.5", 5432),
        ("192.168.1.1", 80),
        ("127.0.0.1", 6379),
        ("100.64.0.1", 53),
        ("169.254.169.254", 80),
        ("224.0.0.251", 5353),
        ("255.255.255.255", 9),
    ] {
        let run = coturn.relay_to(peer, port, &[]).await;
        assert_eq!(
            run.verdict,
            Verdict::Error(403),
            "{peer}:{port} is refused (Forbidden IP)"
        );
    }
    // A public address is still a peer (the kernel drops what the loopback relay would send):
    // the deny list doesn't deny everything, as a range starting at `::` would.
    let run = coturn.relay_to("8.8.8.8", 3478, &[]).await;
    assert_eq!(run.verdict, Verdict::Bound, "a public peer gets a channel");

    if has_ipv6() {
        // ULA, link-local, IPv4-mapped private, NAT64 of a private address, loopback.
        for peer in [
            "fd00::2",
            "fe80::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::1",
        ] {
            let run = coturn.relay_to(peer, 6379, &["-x"]).await;
            assert_eq!(run.verdict, Verdict::Error(403), "[{peer}] is refused");
        }
        let run = coturn.relay_to("2001:4860:4860::8888", 3478, &["-x"]).await;
        assert_eq!(
            run.verdict,
            Verdict::Bound,
            "a public IPv6 peer gets a channel"
        );
    } else {
        eprintln!("no IPv6 loopback here: the IPv6 peers were not tried");
    }
}

#[tokio::test]
async fn coturn_makes_no_tcp_relays_keeps_below_the_sfu_ports_and_caps_allocations() {
    let Some(coturn) = Coturn::compose().await else {
        return;
    };
    // RFC 6062: a TCP relay would let a user open TCP connections from the host.
    let run = coturn.relay_to("8.8.8.8", 443, &["-T"]).await;
    assert_eq!(
        run.verdict,
        Verdict::Error(442),
        "no TCP relays (Unsupported Transport)"
    );

    // One credential, 7 clients of two allocations each: the 13th allocation is refused.
    let run = coturn
        .relay_to_until_error("8.8.8.8", 3478, &["-m", "7"])
        .await;
    assert_eq!(
        run.verdict,
        Verdict::Error(486),
        "user-quota (Allocation Quota Reached)"
    );
    assert_eq!(
        run.relay_ports.len(),
        12,
        "12 allocations per credential: {:?}",
        run.relay_ports
    );
    for port in &run.relay_ports {
        assert!(
            (40_000..FIRST_SFU_PORT).contains(port),
            "relay port {port} is in 40000-49999, below the SFU's {FIRST_SFU_PORT}+"
        );
    }
}

#[tokio::test]
async fn an_allocation_keeps_being_refreshed_after_its_credential_expires() {
    let Some(coturn) = Coturn::start(
        &["--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1"],
        true,
    )
    .await
    else {
        return;
    };
    // An echoing peer for the relayed packets (the SFU's place).
    let peer_port = free_port();
    let _peer = tokio::process::Command::new("turnutils_peer")
        .args(["-L", "127.0.0.1", "-p", &peer_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("turnutils_peer runs");
    // Expires 3 s after the allocation; the client refreshes the allocation, its permission
    // and its channel every 30 s, so sending for 32 s makes one refresh well past the expiry.
    let (username, password) = turn_rest(Duration::from_secs(3)).credential(9, SystemTime::now());
    let expiry: u64 = username
        .split_once(':')
        .and_then(|(e, _)| e.parse().ok())
        .expect("expiry");
    let out = tokio::process::Command::new("turnutils_uclient")
        .args([
            "-u", &username, "-w", &password, "-n", "1600", "-z", "20", "-c",
        ])
        .args(["-e", "127.0.0.1", "-r", &peer_port.to_string()])
        .args(["-p", &coturn.port.to_string(), "127.0.0.1"])
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("turnutils_uclient runs");
    let finished = unix_now();
    let client = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the client relayed to the end: {client}"
    );
    assert!(
        finished >= expiry + 25,
        "the client ran well past the credential's expiry"
    );
    assert!(
        client.contains("Total lost packets 0 "),
        "every packet came back through the relay: {client}"
    );
    let log = std::fs::read_to_string(coturn.log.as_ref().expect("log").path()).expect("log");
    let who = format!("user <{username}>: incoming packet");
    for method in ["REFRESH", "CREATE_PERMISSION", "CHANNEL_BIND"] {
        let answered = log
            .lines()
            .filter(|l| l.contains(&who) && l.contains(&format!("packet {method} processed")))
            .collect::<Vec<_>>();
        assert!(
            answered.len() >= 2,
            "{method} at the start and after 30 s: {answered:?}"
        );
        assert!(
            answered.iter().all(|l| l.ends_with("success")),
            "coturn accepted every {method}, the one after the expiry too: {answered:?}"
        );
    }
}
