//! The server's dependencies failing under a live call: PostgreSQL and Redis restarting, and
//! the disk under the SQLite data directory filling up. Each test owns its PostgreSQL, Redis
//! or filesystem, so stopping it touches nobody else, and it puts everything back at the end.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bench::call_client::CallClient;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::{json_of, spawn_with, TestApp, PASSWORD};
use crate::private_redis::{free_port, PrivateRedis};

/// The longest a single request may take while a dependency is down: the pool's acquire
/// timeout (5 s) plus slack for a loaded machine. More than that is a hang.
const REQUEST_LIMIT: Duration = Duration::from_secs(15);

/// How long the Redis test waits for an answer before calling it a hang: past the server's
/// own 30 s request timeout, so a hang shows as what the server answers then.
const OBSERVE_LIMIT: Duration = Duration::from_secs(40);

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// The newest PostgreSQL server binaries installed the Debian way.
fn postgres_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

/// A PostgreSQL cluster of this test's own on a free port, so it can be stopped and started
/// under a running server. PostgreSQL refuses to run as root, so as root its tools run as
/// the `postgres` user (`runuser`) in a directory that user owns.
struct PrivatePostgres {
    bin: PathBuf,
    as_postgres: bool,
    dir: tempfile::TempDir,
    port: u16,
    running: bool,
}

impl PrivatePostgres {
    /// Creates, starts and fills in a cluster with one database, `webcall`; `Err` says why
    /// that can't be done on this machine.
    async fn start() -> Result<Self, String> {
        let bin = postgres_bin_dir().ok_or("no /usr/lib/postgresql/*/bin with initdb")?;
        let as_postgres = running_as_root();
        let dir = if as_postgres {
            // Under /tmp, not $TMPDIR: the postgres user must be able to reach it.
            tempfile::Builder::new()
                .prefix("webcall-pg-")
                .tempdir_in("/tmp")
        } else {
            tempfile::Builder::new().prefix("webcall-pg-").tempdir()
        }
        .map_err(|e| format!("tempdir: {e}"))?;
        let mut pg = Self {
            bin,
            as_postgres,
            dir,
            port: free_port(),
            running: false,
        };
        if as_postgres {
            pg.run_plain("chown", &["postgres:".into(), pg.dir.path().into()])
                .await?;
        }
        let data = pg.data();
        pg.run_tool(
            "initdb",
            &[
                "-D".into(),
                data.into(),
                "-A".into(),
                "trust".into(),
                "-U".into(),
                "postgres".into(),
                "-E".into(),
                "UTF8".into(),
                "--locale=C".into(),
                // No fsync: the cluster lives for one test.
                "-N".into(),
            ],
        )
        .await?;
        // A port found free can be taken before PostgreSQL binds it: try a few.
        let mut started = pg.start_again().await;
        for _ in 0..4 {
            if started.is_ok() {
                break;
            }
            pg.port = free_port();
            started = pg.start_again().await;
        }
        started?;
        let mut admin = sqlx::PgConnection::connect(&pg.url_of("postgres"))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        sqlx::query("CREATE DATABASE webcall")
            .execute(&mut admin)
            .await
            .map_err(|e| format!("create database: {e}"))?;
        let _ = admin.close().await;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn url(&self) -> String {
        self.url_of("webcall")
    }

    /// The program and leading arguments that run `tool` as a user PostgreSQL accepts.
    fn argv(&self, tool: &str) -> (OsString, Vec<OsString>) {
        let path = self.bin.join(tool).into_os_string();
        if self.as_postgres {
            (
                "runuser".into(),
                vec!["-u".into(), "postgres".into(), "--".into(), path],
            )
        } else {
            (path, Vec::new())
        }
    }

    async fn run_tool(&self, tool: &str, args: &[OsString]) -> Result<(), String> {
        let (program, mut argv) = self.argv(tool);
        argv.extend_from_slice(args);
        self.run_plain(program, &argv).await
    }

    async fn run_plain(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[OsString],
    ) -> Result<(), String> {
        let program = program.as_ref().to_owned();
        let out = tokio::process::Command::new(&program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("{}: {e}", program.to_string_lossy()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {:?}: {}{}",
                program.to_string_lossy(),
                args,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn ctl_args(&self, action: &str) -> Vec<OsString> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        vec![
            "-D".into(),
            self.data().into(),
            "-l".into(),
            self.dir.path().join("log").into(),
            "-w".into(),
            "-t".into(),
            "30".into(),
            "-o".into(),
            options.into(),
            action.into(),
        ]
    }

    /// Starts the cluster and waits until it accepts connections.
    async fn start_again(&mut self) -> Result<(), String> {
        self.run_tool("pg_ctl", &self.ctl_args("start")).await?;
        self.running = true;
        Ok(())
    }

    /// Stops it the way an operator restarting it would: sessions are cut at once.
    async fn stop(&mut self) {
        let mut args = self.ctl_args("stop");
        args.splice(0..0, ["-m".into(), "fast".into()]);
        self.run_tool("pg_ctl", &args).await.expect("pg_ctl stop");
        self.running = false;
    }
}

impl Drop for PrivatePostgres {
    /// A failing test still stops its cluster (then the directory goes with `TempDir`).
    fn drop(&mut self) {
        if self.running {
            let (program, mut argv) = self.argv("pg_ctl");
            argv.extend(self.ctl_args("stop"));
            argv.splice(
                argv.len() - 1..argv.len() - 1,
                ["-m".into(), "immediate".into()],
            );
            let _ = std::process::Command::new(program)
                .args(argv)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A small tmpfs of this test's own: a disk that can be filled without filling the machine's.
/// Only root (with `CAP_SYS_ADMIN`) can mount one.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("webcall-disk-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` until the filesystem is full; returns the bytes written.
    fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path().join(name)).expect("filler file");
        let chunk = vec![0x5a_u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let _ = file.flush();
        written
    }
}

impl Drop for SmallDisk {
    /// Lazy, so a failing test whose server still holds files open doesn't leave a mount.
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

async fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {within:?} waiting until {what}");
}

/// alice and bob in a call, each hearing the other.
async fn call_of_two(app: &TestApp) -> (i64, Vec<String>, CallClient, CallClient) {
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let alice = CallClient::join(&app.base, room, &tokens[0], 300.0)
        .await
        .expect("alice joins");
    let bob = CallClient::join(&app.base, room, &tokens[1], 410.0)
        .await
        .expect("bob joins");
    wait_until("audio flows both ways", Duration::from_secs(20), || {
        alice.packets_from(&bob) >= 25 && bob.packets_from(&alice) >= 25
    })
    .await;
    (room, tokens, alice, bob)
}

/// Packets alice got from bob and bob from alice.
fn counts(alice: &CallClient, bob: &CallClient) -> (u64, u64) {
    (alice.packets_from(bob), bob.packets_from(alice))
}

/// Asserts that both directions gained at least 25 packets a second (of 50 sent) since
/// `before`, over `since.elapsed()` (waiting until at least `min` has passed).
async fn assert_media_kept_flowing(
    alice: &CallClient,
    bob: &CallClient,
    before: (u64, u64),
    since: Instant,
    min: Duration,
    what: &str,
) {
    if let Some(rest) = min.checked_sub(since.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let secs = since.elapsed().as_secs_f64();
    let now = counts(alice, bob);
    let gained = (now.0 - before.0, now.1 - before.1);
    eprintln!(
        "{what}: over {secs:.1} s, alice got {} packets from bob, bob {} from alice",
        gained.0, gained.1
    );
    let floor = (25.0 * secs) as u64;
    assert!(
        gained.0 >= floor && gained.1 >= floor,
        "{what}: audio stalled: {gained:?} packets in {secs:.1} s (want {floor} each way)"
    );
}

/// Posts `text` to the room's chat with a hang limit; the status, the body and how long it
/// took. Every answer must have a JSON body (`json_of` panics otherwise).
async fn try_chat(
    app: &TestApp,
    token: &str,
    room: i64,
    text: &str,
) -> (StatusCode, Value, Duration) {
    try_chat_within(REQUEST_LIMIT, app, token, room, text).await
}

async fn try_chat_within(
    limit: Duration,
    app: &TestApp,
    token: &str,
    room: i64,
    text: &str,
) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let res = tokio::time::timeout(
        limit,
        app.post(
            &format!("/api/v1/rooms/{room}/messages"),
            Some(token),
            json!({ "text": text }),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("a chat post hung for {limit:?}"));
    let (status, body) = json_of(res).await;
    (status, body, started.elapsed())
}

/// `/readyz`'s status, with a hang limit.
async fn readyz(app: &TestApp) -> (StatusCode, Value, Duration) {
    readyz_within(REQUEST_LIMIT, app).await
}

async fn readyz_within(limit: Duration, app: &TestApp) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let res = tokio::time::timeout(limit, app.get("/readyz", None))
        .await
        .unwrap_or_else(|_| panic!("/readyz hung for {limit:?}"));
    let (status, body) = json_of(res).await;
    (status, body, started.elapsed())
}

/// A server error with the documented JSON error shape.
fn assert_clear_server_error(what: &str, status: StatusCode, body: &Value) {
    assert!(status.is_server_error(), "{what}: {status} {body}");
    assert!(
        body["error"]["code"].is_string() && body["error"]["message"].is_string(),
        "{what}: the error says what happened: {status} {body}"
    );
}

/// The room's whole history, page by page, as (id, text), oldest first.
async fn history(app: &TestApp, token: &str, room: i64) -> Vec<(i64, String)> {
    let mut messages = Vec::new();
    let mut after = 0;
    loop {
        let (status, body) = json_of(
            app.get(
                &format!("/api/v1/rooms/{room}/messages?after={after}&limit=200"),
                Some(token),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for m in body["messages"].as_array().expect("messages") {
            after = m["id"].as_i64().expect("id");
            messages.push((after, m["text"].as_str().expect("text").to_owned()));
        }
        if body["has_more"] != true {
            return messages;
        }
    }
}

/// Every acknowledged message is in the history, under its id and with its text.
fn assert_none_lost(acknowledged: &[(i64, String)], stored: &[(i64, String)]) {
    for message in acknowledged {
        assert!(
            stored.contains(message),
            "acknowledged chat {message:?} is not in the history: {stored:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_mid_call_keeps_the_call_up_loses_no_acknowledged_chat_and_recovers_by_itself(
) {
    let mut pg = match PrivatePostgres::start().await {
        Ok(pg) => pg,
        Err(why) => {
            crate::helpers::unavailable(&format!("no private PostgreSQL here: {why}"));
            return;
        }
    };
    let app = spawn_with(&[("DATABASE_URL", &pg.url())]).await;
    let (room, tokens, alice, bob) = call_of_two(&app).await;
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        let text = format!("before {i}");
        let sent = app.post_chat(&tokens[0], room, &text).await;
        acknowledged.push((sent["id"].as_i64().expect("id"), text));
    }

    pg.stop().await;
    let down = Instant::now();
    let before = counts(&alice, &bob);

    let (status, body, took) = readyz(&app).await;
    eprintln!("PostgreSQL down: /readyz {status} in {took:?}: {body}");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body, took) = try_chat(&app, &tokens[1], room, "while the database is down").await;
    eprintln!("PostgreSQL down: chat post {status} in {took:?}: {body}");
    assert_ne!(
        status,
        StatusCode::CREATED,
        "acknowledged without a database: {body}"
    );
    assert_clear_server_error("chat while the database is down", status, &body);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("database_unavailable")
        ),
        "an outage, not a bug: {body}"
    );
    assert_media_kept_flowing(
        &alice,
        &bob,
        before,
        down,
        Duration::from_secs(3),
        "while PostgreSQL is down",
    )
    .await;

    pg.start_again().await.expect("PostgreSQL starts again");
    let restarted = Instant::now();
    let recovery_limit = Duration::from_secs(20);
    let mut ready_after = None;
    let mut chat_after = None;
    let mut attempts = Vec::new();
    while restarted.elapsed() < recovery_limit && chat_after.is_none() {
        if ready_after.is_none() {
            let (status, _, _) = readyz(&app).await;
            if status == StatusCode::OK {
                ready_after = Some(restarted.elapsed());
            }
        }
        if ready_after.is_some() {
            let text = format!("after {}", attempts.len());
            let (status, body, _) = try_chat(&app, &tokens[1], room, &text).await;
            attempts.push(status);
            if status == StatusCode::CREATED {
                acknowledged.push((body["id"].as_i64().expect("id"), text));
                chat_after = Some(restarted.elapsed());
                break;
            }
            assert_clear_server_error("chat while the database comes back", status, &body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "PostgreSQL back: /readyz 200 after {ready_after:?}, chat 201 after {chat_after:?} \
         (chat attempts: {attempts:?}; outage lasted {:?})",
        restarted - down
    );
    assert!(
        ready_after.is_some(),
        "/readyz is 200 again within {recovery_limit:?}"
    );
    assert!(
        chat_after.is_some(),
        "chat is acknowledged again within {recovery_limit:?}"
    );

    let after = counts(&alice, &bob);
    assert_media_kept_flowing(
        &alice,
        &bob,
        after,
        Instant::now(),
        Duration::from_secs(1),
        "after PostgreSQL came back",
    )
    .await;
    let stored = history(&app, &tokens[0], room).await;
    assert_none_lost(&acknowledged, &stored);
    assert!(
        !stored
            .iter()
            .any(|(_, t)| t == "while the database is down"),
        "a refused message is not stored: {stored:?}"
    );

    alice.leave();
    bob.leave();
    app.stop().await;
    pg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_mid_call_keeps_the_call_up_and_chat_acknowledged_meanwhile_is_not_lost() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let port = redis.port;
    let url = format!("redis://127.0.0.1:{port}");
    let app = spawn_with(&[("REDIS_URL", &url)]).await;
    let (room, tokens, alice, bob) = call_of_two(&app).await;
    let heard_by_bob =
        |text: &str| bob.saw(|m| m["type"] == "chat" && m["message"]["text"] == text);
    let mut acknowledged = Vec::new();
    let sent = app.post_chat(&tokens[0], room, "before").await;
    acknowledged.push((sent["id"].as_i64().expect("id"), "before".to_owned()));
    wait_until("bob's socket gets the chat", Duration::from_secs(5), || {
        heard_by_bob("before")
    })
    .await;

    redis.stop().await;
    let down = Instant::now();
    let before = counts(&alice, &bob);

    // What the outage looks like is recorded first and judged at the end, so one run shows
    // all of it.
    let ready_while_down = readyz_within(OBSERVE_LIMIT, &app).await;
    eprintln!(
        "Redis down: /readyz {} in {:?}: {}",
        ready_while_down.0, ready_while_down.2, ready_while_down.1
    );
    let mut during = Vec::new();
    for i in 0..2 {
        let text = format!("during {i}");
        let (status, body, took) =
            try_chat_within(OBSERVE_LIMIT, &app, &tokens[0], room, &text).await;
        eprintln!("Redis down: chat post {status} in {took:?}: {body}");
        if status == StatusCode::CREATED {
            acknowledged.push((body["id"].as_i64().expect("id"), text.clone()));
        }
        during.push((text, status, body, took));
    }
    let started = Instant::now();
    let login = tokio::time::timeout(OBSERVE_LIMIT, app.login("alice", PASSWORD))
        .await
        .unwrap_or_else(|_| panic!("login hung for {OBSERVE_LIMIT:?}"));
    let (login_status, login_body) = json_of(login).await;
    eprintln!(
        "Redis down: login {login_status} in {:?} (not asserted: the limiter's policy is \
         changing): {}",
        started.elapsed(),
        login_body["error"]
    );
    assert_media_kept_flowing(
        &alice,
        &bob,
        before,
        down,
        Duration::from_secs(3),
        "while Redis is down",
    )
    .await;
    for (text, status, _, _) in &during {
        eprintln!(
            "Redis down: {text:?} ({status}) reached bob's socket meanwhile: {}",
            heard_by_bob(text)
        );
        if *status == StatusCode::CREATED {
            // Alice and bob are on this node: the outage must not silence their room.
            assert!(
                heard_by_bob(text),
                "{text:?} was acknowledged but not delivered to bob"
            );
        }
    }

    let mut redis = PrivateRedis::start_on(port)
        .await
        .expect("Redis starts again");
    let restarted = Instant::now();
    // The bus subscribes again by itself, backing off up to 5 s.
    let limit = Duration::from_secs(20);
    let mut crossed_after = None;
    let mut i = 0;
    while restarted.elapsed() < limit {
        let text = format!("after {i}");
        i += 1;
        let (status, body, _) = try_chat(&app, &tokens[0], room, &text).await;
        if status == StatusCode::CREATED {
            acknowledged.push((body["id"].as_i64().expect("id"), text.clone()));
            let sent = Instant::now();
            while sent.elapsed() < Duration::from_millis(700) && !heard_by_bob(&text) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if heard_by_bob(&text) {
                crossed_after = Some(restarted.elapsed());
                break;
            }
        }
    }
    eprintln!(
        "Redis back: chat reached bob's socket {crossed_after:?} after the restart \
         ({i} posts; outage lasted {:?})",
        restarted - down
    );
    assert!(
        crossed_after.is_some(),
        "chat reaches the room's sockets again within {limit:?} of Redis coming back"
    );
    let (status, body, _) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = counts(&alice, &bob);
    assert_media_kept_flowing(
        &alice,
        &bob,
        after,
        Instant::now(),
        Duration::from_secs(1),
        "after Redis came back",
    )
    .await;
    let stored = history(&app, &tokens[1], room).await;
    assert_none_lost(&acknowledged, &stored);

    alice.leave();
    bob.leave();
    app.stop().await;
    redis.stop().await;
    // While Redis was down the server answered at once and clearly: readiness said so, and
    // chat was either acknowledged (stored, checked above) or refused with a JSON error.
    let (status, body, took) = ready_while_down;
    assert!(
        status == StatusCode::SERVICE_UNAVAILABLE && took < Duration::from_secs(10),
        "/readyz with Redis down: {status} after {took:?} (want 503 within 10 s): {body}"
    );
    for (text, status, body, took) in &during {
        assert!(
            *took < Duration::from_secs(10),
            "chat {text:?} with Redis down took {took:?} ({status} {body})"
        );
        if *status != StatusCode::CREATED {
            assert_clear_server_error("chat while Redis is down", *status, body);
        }
    }
}

#[tokio::test]
async fn a_full_disk_in_data_dir_gives_clear_errors_and_no_half_written_rows() {
    let disk = match SmallDisk::mount("8m") {
        Ok(disk) => disk,
        Err(why) => {
            crate::helpers::unavailable(&format!("can't make a small filesystem here: {why}"));
            return;
        }
    };
    let data_dir = disk.path().display().to_string();
    // SQLite in the data directory (an empty value removes a configured PostgreSQL).
    let app = spawn_with(&[
        ("DATA_DIR", &data_dir),
        ("DATABASE_URL", ""),
        ("RATE_LIMIT_CHAT", "100000"),
    ])
    .await;
    let (room, tokens) = app.room_with(&["alice", "bob"]).await;
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        let text = format!("before {i}");
        let sent = app.post_chat(&tokens[0], room, &text).await;
        acknowledged.push((sent["id"].as_i64().expect("id"), text));
    }

    let filled = disk.fill("filler");
    eprintln!("disk full after {filled} more bytes");
    // SQLite may still have free pages in its files: post long messages until it needs more.
    let long = "x".repeat(3_900);
    let mut refused = Vec::new();
    let mut failure = None;
    for i in 0..1000 {
        let text = format!("{i} {long}");
        let (status, body, took) = try_chat(&app, &tokens[0], room, &text).await;
        if status == StatusCode::CREATED {
            // Acknowledged means stored: read it back straight away.
            let id = body["id"].as_i64().expect("id");
            let (_, page) = json_of(
                app.get(
                    &format!("/api/v1/rooms/{room}/messages?after={}&limit=1", id - 1),
                    Some(&tokens[1]),
                )
                .await,
            )
            .await;
            assert!(
                page["messages"][0]["id"] == id && page["messages"][0]["text"] == text.as_str(),
                "chat post {i} on a full disk was acknowledged as id {id} but is not stored \
                 (the write failed after the 201): {}",
                page["messages"][0]["id"]
            );
            acknowledged.push((id, text));
        } else {
            eprintln!("disk full: chat post {i} got {status} in {took:?}: {body}");
            refused.push(text);
            failure = Some((status, body));
            break;
        }
    }
    let (status, body) = failure.expect("a write fails once the disk is full");
    assert_clear_server_error("chat on a full disk", status, &body);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        ["storage_full", "database_unavailable"]
            .contains(&body["error"]["code"].as_str().unwrap_or("")),
        "the error names the cause: {body}"
    );
    // The server stays up and still reads.
    let res = app.get("/healthz", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let stored = history(&app, &tokens[1], room).await;
    assert_none_lost(&acknowledged, &stored);
    // Another user's post is refused as clearly.
    let (status, body, _) = try_chat(&app, &tokens[1], room, "still full").await;
    if status == StatusCode::CREATED {
        acknowledged.push((body["id"].as_i64().expect("id"), "still full".to_owned()));
    } else {
        assert_clear_server_error("chat on a full disk, again", status, &body);
        refused.push("still full".to_owned());
    }

    std::fs::remove_file(disk.path().join("filler")).expect("free the disk");
    let freed = Instant::now();
    let mut recovered_after = None;
    while freed.elapsed() < Duration::from_secs(10) {
        let (status, body, _) = try_chat(&app, &tokens[1], room, "space again").await;
        if status == StatusCode::CREATED {
            acknowledged.push((body["id"].as_i64().expect("id"), "space again".to_owned()));
            recovered_after = Some(freed.elapsed());
            break;
        }
        assert_clear_server_error("chat after freeing space", status, &body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("disk freed: chat 201 again after {recovered_after:?}");
    assert!(
        recovered_after.is_some(),
        "chat works again once space is free"
    );

    // Exactly the acknowledged messages are stored: nothing lost, nothing half-written.
    let stored = history(&app, &tokens[0], room).await;
    assert_none_lost(&acknowledged, &stored);
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "only acknowledged messages are stored"
    );
    for text in &refused {
        assert!(
            !stored.iter().any(|(_, t)| t == text),
            "a refused message is not stored"
        );
    }
    app.stop().await;
    drop(disk);
}
