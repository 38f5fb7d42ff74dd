//! `spawn_app()`: a real server on 127.0.0.1:0 with its own data directory and its own
//! database (a fresh SQLite file, or a fresh PostgreSQL database per test).

use std::collections::HashMap;
use std::path::PathBuf;

use api::config::Settings;
use api::server::Server;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use tokio::sync::oneshot;

pub const REGISTRATION_SECRET: &str = "test-registration-secret";
pub const PASSWORD: &str = "correct horse battery";

/// Settings of one test server, as environment variables.
pub type Env = HashMap<String, String>;

pub struct TestApp {
    pub base: String,
    pub client: Client,
    /// The settings it runs with, to start a second node on the same database and Redis.
    #[allow(dead_code)]
    pub env: Env,
    pub data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _data: Option<tempfile::TempDir>,
}

/// Whether a test that can't run here (a missing model, tool, service, root capability or
/// port) fails instead of skipping: `WEBCALL_TEST_REQUIRE_ALL=1`, which `.ci/run` sets, so a
/// green CI run never hides a test that did not run.
pub fn require_all() -> bool {
    std::env::var("WEBCALL_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Says that a test can't run here and why: a printed skip on a developer's machine, a
/// failure naming what is missing under `WEBCALL_TEST_REQUIRE_ALL=1`.
#[track_caller]
pub fn unavailable(why: &str) {
    assert!(
        !require_all(),
        "WEBCALL_TEST_REQUIRE_ALL=1 but this test can't run: {why}"
    );
    eprintln!("skipped: {why}");
}

/// The shared Redis of a test with several nodes (`WEBCALL_TEST_REDIS_URL`), or `None` with
/// a skip. CI's SQLite pass leaves these tests out (`.config/nextest.toml`, `shared-redis`)
/// and its PostgreSQL + Redis pass runs them.
#[track_caller]
pub fn shared_redis_url(what: &str) -> Option<String> {
    let url = std::env::var("WEBCALL_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        unavailable(&format!(
            "WEBCALL_TEST_REDIS_URL is not set: {what} needs a shared Redis \
             (in CI: list the test in .config/nextest.toml's shared-Redis filter)"
        ));
    }
    url
}

/// A fresh database for one test: `None` means SQLite in the data dir.
async fn fresh_database_url() -> Option<String> {
    let admin = std::env::var("WEBCALL_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())?;
    // CI gives each run its own prefix so it can drop exactly the databases it made.
    let prefix =
        std::env::var("WEBCALL_TEST_DB_PREFIX").unwrap_or_else(|_| "webcall_t_".to_owned());
    let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to WEBCALL_TEST_DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (server, _) = admin.rsplit_once('/').expect("database URL has a path");
    Some(format!("{server}/{name}"))
}

/// The base settings of a test server; tests add or override variables.
pub async fn test_env() -> (Env, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("tempdir");
    let mut env: Env = [
        ("DATA_DIR", data.path().display().to_string()),
        (
            "STATIC_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../static").to_owned(),
        ),
        ("REGISTRATION_SECRET", REGISTRATION_SECRET.to_owned()),
        ("BCRYPT_COST", "4".to_owned()),
        ("RATE_LIMIT_REGISTER", "10000".to_owned()),
        ("RATE_LIMIT_LOGIN", "10000".to_owned()),
        ("RATE_LIMIT_LOGIN_ACCOUNT", "10000".to_owned()),
        ("RATE_LIMIT_ROOM_CREATE", "10000".to_owned()),
        (
            "REDIS_PREFIX",
            format!("webcall-test-{}", uuid::Uuid::new_v4().simple()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(url) = fresh_database_url().await {
        env.insert("DATABASE_URL".into(), url);
    }
    if let Ok(url) = std::env::var("WEBCALL_TEST_REDIS_URL") {
        if !url.is_empty() {
            env.insert("REDIS_URL".into(), url);
        }
    }
    (env, data)
}

pub async fn spawn_app() -> TestApp {
    spawn_with(&[]).await
}

/// Spawns a server with the base settings plus `overrides` (an empty value removes a variable).
pub async fn spawn_with(overrides: &[(&str, &str)]) -> TestApp {
    let (mut env, data) = test_env().await;
    for (k, v) in overrides {
        if v.is_empty() {
            env.remove(*k);
        } else {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
    }
    let mut app = spawn_from(env).await;
    app._data = Some(data);
    app
}

/// Logs go through the test harness's capture (shown only for failing tests); `RUST_LOG`
/// picks the level.
fn init_test_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(api::telemetry::DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Spawns a server from exactly `env` (e.g. a second node sharing the first one's database).
pub async fn spawn_from(env: Env) -> TestApp {
    init_test_logging();
    let settings = Settings::from_lookup(|k| env.get(k).cloned()).expect("valid test settings");
    let data_dir = settings.data_dir.clone();
    let server = Server::build(settings).await.expect("server builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
    });
    TestApp {
        base: format!("http://{addr}"),
        client: Client::builder().no_proxy().build().expect("client"),
        env,
        data_dir,
        shutdown: Some(tx),
        task: Some(task),
        _data: None,
    }
}

impl TestApp {
    /// Registers `names`; the first creates a room ("Call") and adds the others as members.
    /// Returns the room id and the tokens, in order.
    pub async fn room_with(&self, names: &[&str]) -> (i64, Vec<String>) {
        let mut tokens = Vec::new();
        for name in names {
            tokens.push(self.register(name).await);
        }
        let room = self.create_room(&tokens[0], "Call").await;
        for name in &names[1..] {
            self.add_member(&tokens[0], room, name, "member").await;
        }
        (room, tokens)
    }

    /// The server's own database, for tests that set up state no API creates (a transcript
    /// without a speech model, say).
    #[allow(dead_code)]
    pub async fn store(&self) -> api::db::Store {
        let url = match self.env.get("DATABASE_URL") {
            Some(url) => url.clone(),
            None => api::db::Store::sqlite_url_in(&self.data_dir),
        };
        api::db::Store::connect(&url).await.expect("test database")
    }

    /// The Prometheus text of `/metrics`.
    #[allow(dead_code)]
    pub async fn metrics(&self) -> String {
        self.get("/metrics", None)
            .await
            .text()
            .await
            .expect("metrics")
    }

    /// Stops the server and waits until it has closed its database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let req = self.client.request(method, self.url(path));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::POST, path, token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::DELETE, path, token)
            .send()
            .await
            .expect("request")
    }

    pub async fn register_raw(&self, username: &str, password: &str, secret: &str) -> Response {
        self.post(
            "/api/v1/auth/register",
            None,
            json!({"username": username, "password": password, "registration_secret": secret}),
        )
        .await
    }

    /// Registers `username` and returns its token.
    pub async fn register(&self, username: &str) -> String {
        let res = self
            .register_raw(username, PASSWORD, REGISTRATION_SECRET)
            .await;
        let (status, body) = json_of(res).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post(
            "/api/v1/auth/login",
            None,
            json!({"username": username, "password": password}),
        )
        .await
    }

    /// Creates a room owned by the token's user; returns its id.
    pub async fn create_room(&self, token: &str, name: &str) -> i64 {
        let (status, body) = json_of(
            self.post("/api/v1/rooms", Some(token), json!({"name": name}))
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().expect("id")
    }

    pub async fn add_member(
        &self,
        token: &str,
        room: i64,
        username: &str,
        role: &str,
    ) -> (StatusCode, Value) {
        json_of(
            self.post(
                &format!("/api/v1/rooms/{room}/members"),
                Some(token),
                json!({"username": username, "role": role}),
            )
            .await,
        )
        .await
    }
}

/// Status and JSON body; every error of this API has a JSON body, so this also checks that.
pub async fn json_of(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text}"))
    };
    (status, body)
}

/// Asserts an error status with the documented JSON error shape; returns `error.code`.
pub async fn expect_error(res: Response, status: StatusCode) -> Value {
    let (got, body) = json_of(res).await;
    assert_eq!(got, status, "{body}");
    assert!(
        body["error"]["code"].is_string(),
        "error body has a code: {body}"
    );
    assert!(
        body["error"]["message"].is_string(),
        "error body has a message: {body}"
    );
    body["error"].clone()
}

/// Sends a raw HTTP/1.1 request line, bypassing the client's URL normalisation (for path
/// traversal tests). Returns the status code and the whole response text.
pub async fn raw_get(base: &str, raw_path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {raw_path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A WebSocket client of the test server.
pub struct Ws {
    inner: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    /// Opens `url` (any server's, e.g. a second node run as a process) with
    /// `Authorization: Bearer`; panics unless the upgrade succeeds.
    pub async fn connect(url: &str, token: &str) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (inner, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket upgrade");
        Ws { inner }
    }
}

/// How long a test waits for an expected WebSocket message.
pub const WS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl TestApp {
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws{}{path}", self.base.trim_start_matches("http"))
    }

    /// Opens `path` with `Authorization: Bearer`; panics unless the upgrade succeeds.
    pub async fn ws(&self, path: &str, token: &str) -> Ws {
        Ws::connect(&self.ws_url(path), token).await
    }

    /// Opens `path` with `?ticket=` as a browser does; panics unless the upgrade succeeds.
    #[allow(dead_code)]
    pub async fn ws_with_ticket(&self, path: &str, ticket: &str) -> Ws {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = self.ws_url(&format!("{path}{sep}ticket={ticket}"));
        let (inner, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket upgrade");
        Ws { inner }
    }

    /// A WebSocket ticket for the token's user (`POST /api/v1/ws-ticket`).
    #[allow(dead_code)]
    pub async fn ws_ticket(&self, token: &str) -> String {
        let (status, body) =
            json_of(self.post("/api/v1/ws-ticket", Some(token), json!({})).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["ticket"].as_str().expect("ticket").to_owned()
    }

    pub async fn room_ws(&self, token: &str, room: i64) -> Ws {
        self.ws(&format!("/api/v1/rooms/{room}/ws"), token).await
    }

    pub async fn user_ws(&self, token: &str) -> Ws {
        self.ws("/api/v1/ws", token).await
    }

    /// A WebSocket request that must be refused before the upgrade: its status and body.
    pub async fn ws_refused(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = self.ws_url(path).into_client_request().expect("request");
        if let Some(token) = bearer {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok(_) => panic!("{path}: upgrade was accepted"),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                let status = res.status().as_u16();
                let body = res
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                (status, body)
            }
            Err(other) => panic!("{path}: {other}"),
        }
    }

    /// Posts a chat message over HTTP; returns the stored message.
    pub async fn post_chat(&self, token: &str, room: i64, text: &str) -> Value {
        let (status, body) = json_of(
            self.post(
                &format!("/api/v1/rooms/{room}/messages"),
                Some(token),
                json!({ "text": text }),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// The user id of a token.
    pub async fn user_id(&self, token: &str) -> i64 {
        let (_, me) = json_of(self.get("/api/v1/auth/me", Some(token)).await).await;
        me["id"].as_i64().expect("id")
    }
}

impl Ws {
    pub async fn send(&mut self, message: Value) {
        self.send_text(message.to_string()).await;
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        let text: String = text.into();
        self.inner
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next JSON message (pings and pongs skipped); panics after [`WS_WAIT`].
    pub async fn recv(&mut self) -> Value {
        match tokio::time::timeout(WS_WAIT, self.next_text()).await {
            Ok(Some(text)) => serde_json::from_str(&text).expect("server sends JSON"),
            Ok(None) => panic!("socket closed while a message was expected"),
            Err(_) => panic!("no message within {WS_WAIT:?}"),
        }
    }

    async fn next_text(&mut self) -> Option<String> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match self.inner.next().await? {
                Ok(Message::Text(text)) => return Some(text.as_str().to_owned()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next message of type `kind`, skipping others.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let message = self.recv().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// The next message of type `kind` within `wait` (for events that come by themselves
    /// later than [`WS_WAIT`], such as a timeout).
    #[allow(dead_code)]
    pub async fn recv_type_within(&mut self, kind: &str, wait: std::time::Duration) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.next_text()).await {
                Ok(Some(text)) => {
                    let message: Value = serde_json::from_str(&text).expect("server sends JSON");
                    if message["type"] == kind {
                        return message;
                    }
                }
                Ok(None) => panic!("socket closed while {kind} was expected"),
                Err(_) => panic!("no {kind} within {wait:?}"),
            }
        }
    }

    /// Sends `join` and returns `joined`.
    pub async fn join(&mut self) -> Value {
        self.send(json!({"type": "join"})).await;
        self.recv_type("joined").await
    }

    /// Asserts that no text message arrives within `ms`.
    pub async fn expect_silence(&mut self, ms: u64) {
        let got =
            tokio::time::timeout(std::time::Duration::from_millis(ms), self.next_text()).await;
        if let Ok(Some(text)) = got {
            panic!("unexpected message: {text}");
        }
    }

    /// Reads until the server closes; returns the close code (messages before it are kept).
    pub async fn closed(&mut self) -> (Vec<Value>, Option<u16>) {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let mut seen = Vec::new();
        let read = async {
            while let Some(frame) = self.inner.next().await {
                match frame {
                    Ok(Message::Text(text)) => {
                        seen.push(serde_json::from_str(text.as_str()).expect("JSON"));
                    }
                    Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            None
        };
        let code = tokio::time::timeout(WS_WAIT, read)
            .await
            .expect("socket closes in time");
        (seen, code)
    }

    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
    }
}
