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

/// Spawns a server from exactly `env` (e.g. a second node sharing the first one's database).
pub async fn spawn_from(env: Env) -> TestApp {
    api::telemetry::init_logging();
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
