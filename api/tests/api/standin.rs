//! Local stand-ins for services that live on the internet (an OpenAI-compatible endpoint, the
//! Telegram Bot API): real HTTP servers on 127.0.0.1 that record every request and answer as
//! the test says, so tests check what WebCall sends.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{json, Value};

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type Responder = dyn Fn(&Recorded) -> (u16, Value) + Send + Sync;

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Vec<Recorded>>>,
    respond: Arc<Responder>,
}

pub struct StandIn {
    pub base: String,
    seen: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let recorded = Recorded {
        method,
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let (status, answer) = (shared.respond)(&recorded);
    shared.seen.lock().expect("lock").push(recorded);
    (
        StatusCode::from_u16(status).expect("status"),
        axum::Json(answer),
    )
}

impl StandIn {
    /// Starts a stand-in that answers every request with `respond(request)`.
    pub async fn start(
        respond: impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static,
    ) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            seen: seen.clone(),
            respond: Arc::new(respond),
        };
        let app = axum::Router::new().fallback(record).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, seen, task }
    }

    /// A Bot API stand-in: every method succeeds.
    pub async fn bot_api() -> Self {
        Self::start(|_| (200, json!({"ok": true, "result": true}))).await
    }

    /// An OpenAI-compatible stand-in whose answer `reply(model, request)` gives: `Ok(text)`
    /// is a completion, `Err(status)` an error status.
    pub async fn llm(
        reply: impl Fn(&str, &Recorded) -> Result<String, u16> + Send + Sync + 'static,
    ) -> Self {
        Self::start(move |req| {
            let model = req.body["model"].as_str().unwrap_or("").to_owned();
            match reply(&model, req) {
                Ok(text) => (
                    200,
                    json!({
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "model": model,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}],
                    }),
                ),
                Err(status) => (status, json!({"error": {"message": "stand-in refuses"}})),
            }
        })
        .await
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().expect("lock").clone()
    }

    /// Bot API `sendMessage` calls as `(chat_id, text)`.
    pub fn sent_messages(&self) -> Vec<(Value, String)> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/sendMessage"))
            .map(|r| {
                (
                    r.body["chat_id"].clone(),
                    r.body["text"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }
}

/// An address nothing listens on: a model endpoint that is down.
pub async fn dead_base() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}
