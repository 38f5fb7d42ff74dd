//! A participant of a Janus VideoRoom (Janus 1.1, HTTP transport), for the side-by-side
//! bench: the same WebRTC client as against WebCall, publishing on one handle and receiving
//! every other participant on a second (multistream) handle, as Janus's own demo does.
//!
//! Janus's HTTP API: `POST /janus` makes a session, `POST /janus/<session>` attaches a
//! plugin handle, `POST /janus/<session>/<handle>` sends a plugin message; answers to slow
//! requests (a join with an SDP) come later as events, read by long-polling
//! `GET /janus/<session>`.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::latency::LatencyHistogram;
use crate::rtc_client::{ClientStats, RtcClient};
use crate::tone::ToneSource;

/// How long a join may take before the bench gives up on it.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// One Janus session (one per participant, so each waits only for its own events).
#[derive(Clone)]
pub struct JanusSession {
    http: reqwest::Client,
    url: String,
    id: u64,
}

fn transaction() -> String {
    format!("t{:x}", rand::random::<u64>())
}

/// The `data` object of a VideoRoom answer, or the error Janus or the plugin gave.
fn plugin_data(reply: &Value) -> Result<&Value> {
    if reply["janus"] == "error" {
        bail!("janus: {}", reply["error"]);
    }
    let data = &reply["plugindata"]["data"];
    if data.get("error_code").is_some() {
        bail!("videoroom: {}", data["error"]);
    }
    Ok(data)
}

impl JanusSession {
    /// Creates a session on the Janus at `url` (e.g. `http://127.0.0.1:8088/janus`).
    ///
    /// # Errors
    /// When Janus can't be reached or refuses.
    pub async fn create(http: &reqwest::Client, url: &str) -> Result<Self> {
        let url = url.trim_end_matches('/').to_owned();
        let reply = post(http, &url, json!({"janus": "create"})).await?;
        let id = reply["data"]["id"].as_u64().context("session id")?;
        Ok(Self {
            http: http.clone(),
            url,
            id,
        })
    }

    /// Attaches a VideoRoom handle.
    ///
    /// # Errors
    /// When Janus refuses.
    pub async fn attach(&self) -> Result<u64> {
        let reply = post(
            &self.http,
            &format!("{}/{}", self.url, self.id),
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
        )
        .await?;
        reply["data"]["id"].as_u64().context("handle id")
    }

    /// Sends a VideoRoom request (with an SDP when `jsep` is given); returns Janus's
    /// immediate reply: the result of a quick request, or an `ack` for a slow one.
    ///
    /// # Errors
    /// When Janus or the plugin refuses.
    pub async fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value> {
        let mut request = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        let reply = post(
            &self.http,
            &format!("{}/{}/{handle}", self.url, self.id),
            request,
        )
        .await?;
        plugin_data(&reply)?;
        Ok(reply)
    }

    /// Waits for the next VideoRoom event of `handle` whose data has `videoroom == kind`;
    /// other events (`webrtcup`, `media`, ...) are passed over.
    ///
    /// # Errors
    /// On an error event, or when none comes within [`EVENT_TIMEOUT`].
    pub async fn event(&self, handle: u64, kind: &str) -> Result<Value> {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        while Instant::now() < deadline {
            let polled: Value = self
                .http
                .get(format!("{}/{}?maxev=10", self.url, self.id))
                .timeout(Duration::from_secs(40))
                .send()
                .await?
                .json()
                .await?;
            let events = match polled {
                Value::Array(events) => events,
                one => vec![one],
            };
            for event in events {
                if event["janus"] != "event" || event["sender"].as_u64() != Some(handle) {
                    continue;
                }
                let data = plugin_data(&event)?;
                if data["videoroom"] == kind {
                    return Ok(event);
                }
            }
        }
        bail!("no `{kind}` event from Janus within {EVENT_TIMEOUT:?}")
    }

    /// Ends the session (and its handles and PeerConnections).
    pub async fn destroy(&self) {
        let _ = post(
            &self.http,
            &format!("{}/{}", self.url, self.id),
            json!({"janus": "destroy"}),
        )
        .await;
    }
}

async fn post(http: &reqwest::Client, url: &str, mut body: Value) -> Result<Value> {
    body["transaction"] = json!(transaction());
    let reply: Value = http
        .post(url)
        .json(&body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?
        .json()
        .await?;
    if reply["janus"] == "error" {
        bail!("janus: {}", reply["error"]);
    }
    Ok(reply)
}

/// Creates VideoRoom `room` for up to `publishers` publishers, audio only (Opus).
///
/// # Errors
/// When Janus refuses (e.g. the room exists).
pub async fn create_room(session: &JanusSession, room: u64, publishers: usize) -> Result<()> {
    let handle = session.attach().await?;
    let reply = session
        .message(
            handle,
            json!({
                "request": "create", "room": room, "publishers": publishers,
                "audiocodec": "opus", "audiolevel_ext": true, "notify_joining": false,
                "description": format!("bench {room}"),
            }),
            None,
        )
        .await?;
    let data = plugin_data(&reply)?;
    if data["videoroom"] != "created" {
        bail!("room not created: {reply}");
    }
    Ok(())
}

/// A participant: publishes a tone as feed `feed`, and receives the other feeds it
/// subscribes to.
pub struct JanusParticipant {
    pub feed: u64,
    pub publisher: RtcClient,
    pub subscriber: Option<RtcClient>,
    session: JanusSession,
    subscriber_handle: u64,
    /// From the first request to the publisher's answer (join round trip).
    published_after: Duration,
}

impl JanusParticipant {
    /// Joins `room` as publisher `feed`, sending a `tone_hz` tone.
    ///
    /// # Errors
    /// When the session, the join or the SDP exchange fails.
    pub async fn publish(
        http: &reqwest::Client,
        url: &str,
        room: u64,
        feed: u64,
        tone_hz: f32,
    ) -> Result<Self> {
        let started = Instant::now();
        let session = JanusSession::create(http, url).await?;
        let publisher_handle = session.attach().await?;
        let subscriber_handle = session.attach().await?;
        let (publisher, offer) =
            RtcClient::start_with_source(Box::new(ToneSource::new(tone_hz)?)).await?;
        session
            .message(
                publisher_handle,
                json!({
                    "request": "joinandconfigure", "room": room, "ptype": "publisher",
                    "id": feed, "display": format!("p{feed}"), "audio": true, "video": false,
                }),
                Some(json!({"type": "offer", "sdp": offer})),
            )
            .await?;
        let joined = session.event(publisher_handle, "joined").await?;
        let answer = joined["jsep"]["sdp"]
            .as_str()
            .ok_or_else(|| anyhow!("joined without an answer: {joined}"))?;
        publisher.set_answer(answer.to_owned()).await?;
        Ok(Self {
            feed,
            publisher,
            subscriber: None,
            session,
            subscriber_handle,
            published_after: started.elapsed(),
        })
    }

    /// Subscribes to `feeds` on one PeerConnection: Janus offers, the client answers.
    ///
    /// # Errors
    /// When the join or the SDP exchange fails.
    pub async fn subscribe(&mut self, room: u64, feeds: &[u64]) -> Result<()> {
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        self.session
            .message(
                self.subscriber_handle,
                json!({"request": "join", "room": room, "ptype": "subscriber", "streams": streams}),
                None,
            )
            .await?;
        let attached = self
            .session
            .event(self.subscriber_handle, "attached")
            .await?;
        let offer = attached["jsep"]["sdp"]
            .as_str()
            .ok_or_else(|| anyhow!("attached without an offer: {attached}"))?;
        let subscriber = RtcClient::receive_only().await?;
        let answer = subscriber.handle_offer(offer.to_owned()).await?;
        self.session
            .message(
                self.subscriber_handle,
                json!({"request": "start"}),
                Some(json!({"type": "answer", "sdp": answer})),
            )
            .await?;
        self.subscriber = Some(subscriber);
        Ok(())
    }

    /// Time from the first request to a connected publisher (the join as a user sees it:
    /// their voice reaches the SFU).
    pub fn join_time(&self) -> Option<Duration> {
        self.publisher
            .stats()
            .connected_after
            .map(|rtc| rtc + self.published_after)
    }

    /// Whether both PeerConnections are up.
    pub fn connected(&self) -> bool {
        self.publisher.stats().connected_after.is_some()
            && self
                .subscriber
                .as_ref()
                .is_some_and(|s| s.stats().connected_after.is_some())
    }

    /// What the subscriber received, per stream (keyed by SSRC).
    pub fn received(&self) -> ClientStats {
        self.subscriber
            .as_ref()
            .map(RtcClient::stats)
            .unwrap_or_default()
    }

    /// Delays of the stamped packets the subscriber received.
    pub fn latency(&self) -> LatencyHistogram {
        self.subscriber
            .as_ref()
            .map(RtcClient::latency)
            .unwrap_or_default()
    }

    /// Leaves: closes both PeerConnections and ends the session.
    pub async fn leave(&self) {
        self.publisher.stop();
        if let Some(s) = &self.subscriber {
            s.stop();
        }
        self.session.destroy().await;
    }
}
