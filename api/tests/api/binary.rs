//! The `webcall` binary as an operator runs it: configuration errors, `migrate`, and `serve`
//! from an empty directory with no configuration at all.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WEBCALL: &str = env!("CARGO_BIN_EXE_webcall");

/// A command with a clean environment (no variables from the developer's shell) in `dir`.
pub fn webcall(dir: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(WEBCALL);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true);
    cmd
}

/// Starts `webcall serve` in `dir` with `vars` on a port it binds itself (`PORT=0`) and
/// returns it with its base URL, read from its "webcall listening" log line, so no port is
/// picked free here and taken by someone else before the child binds it. The rest of its log
/// goes to the file `WEBCALL_TEST_NODE_LOG` names, if any, to see why a test failed.
pub async fn serve(
    dir: &std::path::Path,
    vars: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    let mut vars: Vec<(&str, &str)> = vars
        .iter()
        .copied()
        .filter(|(k, _)| !["PORT", "BIND"].contains(k))
        .collect();
    vars.extend([("PORT", "0"), ("BIND", "127.0.0.1")]);
    let mut child = webcall(dir, &["serve"], &vars)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("webcall serve starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    const LISTENING: &str = "webcall listening on http://";
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read the log") {
            if let Some(at) = line.find(LISTENING) {
                let addr: String = line[at + LISTENING.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                return format!("http://{addr}");
            }
        }
        panic!("webcall serve exited before it listened");
    })
    .await
    .expect("webcall serve listens within 30 s");
    let mut log = std::env::var("WEBCALL_TEST_NODE_LOG")
        .ok()
        .and_then(|path| std::fs::File::create(path).ok());
    // Drained to the end (the child's exit) so a full pipe never stalls its logging.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(file) = log.as_mut() {
                use std::io::Write;
                let _ = writeln!(file, "{line}");
            }
        }
    });
    (child, base)
}

#[tokio::test]
async fn bad_configuration_stops_the_server_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("PORT", "eighty")], "PORT"),
        (&[("APP_ENV", "prod")], "JWT_SECRET"),
        (&[("DATABASE_URL", "mysql://db/x")], "DATABASE_URL"),
        (&[("CORS_ORIGINS", "not an origin")], "CORS_ORIGINS"),
        (&[("TURN_URLS", "turn:turn.example:3478")], "TURN_USERNAME"),
    ];
    for (vars, var) in cases {
        let out = webcall(dir.path(), &["serve"], vars)
            .output()
            .await
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{vars:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].contains(var), "{stderr}");
    }
    assert!(
        !dir.path().join("data").exists(),
        "nothing written before the configuration is valid"
    );
}

#[tokio::test]
async fn an_unreachable_database_fails_start_naming_database_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = webcall(
        dir.path(),
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
            ("PORT", "0"),
        ],
    )
    .output()
    .await
    .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.starts_with("error: DATABASE_URL")),
        "{stderr}"
    );
}

#[tokio::test]
async fn migrate_creates_the_embedded_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = webcall(dir.path(), &["migrate"], &[])
        .output()
        .await
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("database is at migration 8"));
    assert!(dir.path().join("data/webcall.db").exists());
    // Idempotent.
    let again = webcall(dir.path(), &["migrate"], &[])
        .output()
        .await
        .expect("run");
    assert!(again.status.success());
}

/// The README's promise: start with no configuration, register with the printed secret, log
/// in, create and delete a room, and find the request id in the JSON log lines.
#[tokio::test]
async fn serve_with_no_configuration_prints_a_secret_that_registers_a_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../static"),
        dir.path().join("static"),
    )
    .expect("link static");
    let mut child = webcall(
        dir.path(),
        &["serve"],
        &[("PORT", "0"), ("BCRYPT_COST", "4")],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();

    // The secret is printed on stderr, on its own indented line after the heading; the
    // listening address is in the JSON log, on stderr too (stdout is for results only).
    let (secret, base) = tokio::time::timeout(Duration::from_secs(20), async {
        let (mut heading_seen, mut secret, mut base) = (false, None, None);
        while let Ok(Some(line)) = stderr.next_line().await {
            if line.contains("Registration secret") {
                heading_seen = true;
            } else if heading_seen && secret.is_none() && !line.trim().is_empty() {
                secret = Some(line.trim().to_owned());
            } else if let Ok(entry) = serde_json::from_str::<Value>(&line) {
                // Other listeners log their addresses too (the media plane's); the HTTP one is
                // the line that says so.
                let http = entry["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("webcall listening"));
                if let (true, Some(addr)) = (http, entry["addr"].as_str()) {
                    base = Some(format!("http://{addr}"));
                }
            }
            if let (Some(secret), Some(base)) = (&secret, &base) {
                return (secret.clone(), base.clone());
            }
        }
        panic!("no secret or no listening line");
    })
    .await
    .expect("secret and listening line in time");
    // Nothing on stdout: a server has no result to print.
    let quiet = tokio::time::timeout(Duration::from_millis(300), stdout.next_line()).await;
    assert!(
        !matches!(quiet, Ok(Ok(Some(_)))),
        "stdout stays empty: {quiet:?}"
    );

    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let res = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"username": "alice", "password": "correct horse", "registration_secret": secret}))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = http
        .post(format!("{base}/api/v1/auth/login"))
        .header("x-request-id", "binary-test-login-1")
        .json(&json!({"username": "alice", "password": "correct horse"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), StatusCode::OK);
    let token = res.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let room: Value = http
        .post(format!("{base}/api/v1/rooms"))
        .bearer_auth(&token)
        .json(&json!({"name": "Standup"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let deleted = http
        .delete(format!("{base}/api/v1/rooms/{}", room["id"]))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    // The login's log line carries its request id, method, route, status and latency.
    let entry = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = stderr.next_line().await {
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if entry["span"]["request_id"] == "binary-test-login-1" && entry["status"].is_number() {
                return entry;
            }
        }
        panic!("no log line for the request id");
    })
    .await
    .expect("log line in time");
    assert_eq!(entry["span"]["method"], "POST");
    assert_eq!(entry["span"]["path"], "/api/v1/auth/login");
    assert_eq!(entry["status"], 200);
    assert!(entry["latency_ms"].is_number());

    // What it wrote (password hashes, chat, secrets) is readable by this user only.
    use std::os::unix::fs::PermissionsExt;
    let data = dir.path().join("data");
    let mode = |name: &str| {
        std::fs::metadata(data.join(name))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    assert_eq!(mode(""), 0o700, "DATA_DIR");
    for file in [
        "webcall.db",
        "webcall.db-wal",
        "webcall.db-shm",
        "registration_secret",
        "jwt_secret",
    ] {
        if data.join(file).exists() || file == "webcall.db" {
            assert_eq!(mode(file), 0o600, "{file}");
        }
    }
    child.kill().await.expect("kill");
}

#[tokio::test]
async fn transcribe_without_a_model_says_how_to_give_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = webcall(dir.path(), &["transcribe", "speech.wav"], &[])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--model") && stderr.contains("WHISPER_MODEL"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_missing_whisper_model_fails_start_naming_whisper_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = webcall(
        dir.path(),
        &["serve"],
        &[
            ("PORT", "0"),
            ("WHISPER_MODEL", "/nonexistent/ggml-base.bin"),
        ],
    )
    .output()
    .await
    .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WHISPER_MODEL") && stderr.contains("/nonexistent/ggml-base.bin"),
        "{stderr}"
    );
}

/// `webcall transcribe` on a WAV: timestamped lines with the spoken words (needs the test
/// model, espeak-ng and sox; skipped without `WEBCALL_TEST_WHISPER_MODEL`).
#[tokio::test]
async fn transcribe_prints_timestamped_segments_of_a_wav_file() {
    let Some(model) = crate::transcription::test_model() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("speech.wav");
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg("Good morning everyone. Let us begin the meeting.")
        .status()
        .expect("espeak-ng runs");
    assert!(ok.success());
    let out = webcall(
        dir.path(),
        &["transcribe", "speech.wav", "--model", &model],
        // The default log level: its info lines must not land among the segments.
        &[("WHISPER_LANGUAGE", "en")],
    )
    .output()
    .await
    .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l.starts_with("[00:00:")), "{stdout}");
    // The log (JSON lines) went to stderr: `webcall transcribe x.wav > x.txt` is clean.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"transcribed\""), "{stderr}");
    let wer = transcriber::wer::wer("Good morning everyone. Let us begin the meeting.", &stdout);
    assert!(wer <= 0.4, "WER {wer}: {stdout}");
}
