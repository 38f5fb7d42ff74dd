//! TURN with Debian's coturn on loopback: with `TURN_SHARED_SECRET` each join gets its own
//! time-limited credential (the TURN REST convention) that coturn, sharing the secret
//! (`use-auth-secret`), accepts for an allocation and relays through; the same credential
//! tampered with, or expired, is refused. Skipped where `turnserver` isn't installed, a
//! failure under `WEBCALL_TEST_REQUIRE_ALL=1` (CI installs `coturn`).

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::helpers::spawn_with;
use crate::private_redis::{free_port, listening};

const SECRET: &str = "a-secret-shared-with-coturn";

/// coturn on 127.0.0.1:`port`, checking TURN REST credentials made from [`SECRET`].
struct Coturn {
    _child: tokio::process::Child,
    port: u16,
}

impl Coturn {
    /// `None` when `turnserver` can't be run (coturn isn't installed).
    async fn start() -> Option<Self> {
        // A port found free can be taken before coturn binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let child = tokio::process::Command::new("turnserver")
                .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
                .arg(format!("--listening-port={port}"))
                .args([
                    "--use-auth-secret",
                    &format!("--static-auth-secret={SECRET}"),
                ])
                .args(["--realm=webcall.test", "--allow-loopback-peers"])
                .args(["--no-tls", "--no-dtls", "--no-cli", "--log-file=stdout"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .ok()?;
            if listening(port).await {
                return Some(Self {
                    _child: child,
                    port,
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
}

#[tokio::test]
async fn each_join_gets_a_turn_credential_of_its_own_that_coturn_accepts_until_it_expires() {
    let Some(coturn) = Coturn::start().await else {
        crate::helpers::unavailable(
            "coturn's turnserver is not installed (apt-get install coturn)",
        );
        return;
    };
    let turn_url = format!("turn:127.0.0.1:{}?transport=udp", coturn.port);
    let app = spawn_with(&[
        ("TURN_URLS", turn_url.as_str()),
        ("TURN_SHARED_SECRET", SECRET),
        ("TURN_CREDENTIAL_TTL_SECS", "3600"),
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
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let expiry: u64 = expiry.parse().expect("unix time");
    assert!(
        (now + 3590..=now + 3610).contains(&expiry),
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
    let ice = signaling::ice::TurnRest {
        urls: vec![turn_url.clone()],
        secret: SECRET.to_owned().into(),
        ttl: Duration::from_secs(60),
    };
    let (stale_user, stale_password) =
        ice.credential(alice_id, SystemTime::now() - Duration::from_secs(120));
    assert!(!coturn.relays_with(&stale_user, &stale_password).await);
    let (fresh_user, fresh_password) = ice.credential(alice_id, SystemTime::now());
    assert!(coturn.relays_with(&fresh_user, &fresh_password).await);
}
