//! A participant as a browser is one: the room WebSocket (join, offer/answer, events) plus
//! an [`RtcClient`] for the audio.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::rtc_client::{ClientStats, RtcClient};

/// A participant in a call.
pub struct CallClient {
    pub participant_id: u64,
    pub rtc: RtcClient,
    outgoing: mpsc::UnboundedSender<Message>,
    log: Arc<Mutex<Vec<Value>>>,
    /// Participant id -> the CSRC its audio goes by on a large room's slots.
    sources: Arc<Mutex<HashMap<u64, u32>>>,
    /// From opening the socket to starting the WebRTC client (join round trip).
    rtc_started_after: Duration,
    reader: tokio::task::JoinHandle<()>,
}

impl CallClient {
    /// Opens the room socket, joins the call, starts media publishing a `tone_hz` tone, and
    /// keeps answering the server's offers in the background.
    ///
    /// # Errors
    /// When the socket, the join or the SDP exchange fails.
    pub async fn join(base_url: &str, room_id: i64, token: &str, tone_hz: f32) -> Result<Self> {
        let source = crate::tone::ToneSource::new(tone_hz)?;
        Self::join_with_source(base_url, room_id, token, Box::new(source)).await
    }

    /// As [`CallClient::join`], publishing `source` instead of a tone.
    ///
    /// # Errors
    /// When the socket, the join or the SDP exchange fails.
    pub async fn join_with_source(
        base_url: &str,
        room_id: i64,
        token: &str,
        source: Box<dyn crate::tone::FrameSource>,
    ) -> Result<Self> {
        let started = Instant::now();
        let ws_url = format!(
            "{}/api/v1/rooms/{room_id}/ws",
            base_url.replacen("http", "ws", 1)
        );
        let (socket, _) = tokio_tungstenite::connect_async(crate::ws_request(&ws_url, token)?)
            .await
            .context("room socket")?;
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(msg) = queue.recv().await {
                let close = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() || close {
                    break;
                }
            }
        });
        let send = |v: Value| {
            outgoing
                .send(Message::text(v.to_string()))
                .map_err(|_| anyhow!("socket closed"))
        };
        let log = Arc::new(Mutex::new(Vec::new()));

        send(json!({"type": "join"}))?;
        let joined = next_of(&mut stream, "joined", &log).await?;
        let participant_id = joined["participant_id"]
            .as_u64()
            .context("participant id")?;
        let rtc_started_after = started.elapsed();
        let (rtc, offer) = RtcClient::start_with_source(source).await?;
        send(json!({"type": "offer", "sdp": offer}))?;
        let answer = next_of(&mut stream, "answer", &log).await?;
        rtc.set_answer(answer["sdp"].as_str().context("answer sdp")?.to_owned())
            .await?;

        let reader_rtc = rtc.clone_handle();
        let reader_out = outgoing.clone();
        let reader_log = log.clone();
        let sources = Arc::new(Mutex::new(HashMap::new()));
        let reader_sources = sources.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Message::Text(text) = frame else {
                    continue;
                };
                let Ok(msg) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if msg["type"] == "offer" {
                    if let Some(sdp) = msg["sdp"].as_str() {
                        match reader_rtc.handle_offer(sdp.to_owned()).await {
                            Ok(answer) => {
                                let _ = reader_out.send(Message::text(
                                    json!({"type": "answer", "sdp": answer}).to_string(),
                                ));
                            }
                            Err(err) => {
                                tracing::warn!(error = %err, "could not answer a server offer")
                            }
                        }
                    }
                }
                if msg["type"] == "track_published" {
                    let participant = msg["participant_id"].as_u64();
                    let source = msg["source"].as_u64().and_then(|s| u32::try_from(s).ok());
                    if let (Some(p), Some(s), Ok(mut map)) =
                        (participant, source, reader_sources.lock())
                    {
                        map.insert(p, s);
                    }
                }
                if let Ok(mut log) = reader_log.lock() {
                    log.push(msg);
                }
            }
        });
        Ok(Self {
            participant_id,
            rtc,
            outgoing,
            log,
            sources,
            rtc_started_after,
            reader,
        })
    }

    /// The stream id the SFU gives this participant's audio in other clients.
    pub fn stream_id(&self) -> String {
        format!("p{}", self.participant_id)
    }

    /// Packets received from `other`: on its own stream (a small room) or on any audio
    /// slot whose CSRC names it (a large room).
    pub fn packets_from(&self, other: &CallClient) -> u64 {
        self.received_from(&self.rtc.stats(), other)
    }

    /// As [`Self::packets_from`], out of a snapshot of this client's stats.
    pub fn received_from(&self, stats: &ClientStats, other: &CallClient) -> u64 {
        let on_slots = self
            .source_of(other)
            .map_or(0, |s| stats.packets_from_source(s));
        stats.packets_from(&other.stream_id()) + on_slots
    }

    /// The CSRC `other`'s audio goes by on this client's audio slots, once told.
    pub fn source_of(&self, other: &CallClient) -> Option<u32> {
        self.sources
            .lock()
            .ok()
            .and_then(|m| m.get(&other.participant_id).copied())
    }

    pub fn stats(&self) -> ClientStats {
        self.rtc.stats()
    }

    /// Time from opening the socket (before `join`) to a connected media path.
    pub fn join_time(&self) -> Option<Duration> {
        self.stats()
            .connected_after
            .map(|rtc| rtc + self.rtc_started_after)
    }

    /// Sends a message on the room socket (e.g. `{"type": "mute", ...}`).
    ///
    /// # Errors
    /// When the socket is closed.
    pub fn send(&self, message: Value) -> Result<()> {
        self.outgoing
            .send(Message::text(message.to_string()))
            .map_err(|_| anyhow!("socket closed"))
    }

    /// Whether any server message so far matched `wanted`.
    pub fn saw(&self, wanted: impl Fn(&Value) -> bool) -> bool {
        self.log
            .lock()
            .map(|l| l.iter().any(wanted))
            .unwrap_or(false)
    }

    pub fn messages(&self) -> Vec<Value> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Reads this client's server messages from another task (e.g. to stamp arrivals).
    pub fn log_reader(&self) -> impl Fn() -> Vec<Value> + Send + Sync + 'static {
        let log = self.log.clone();
        move || log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Leaves the call and closes the socket and the media connection politely.
    pub fn leave(&self) {
        let _ = self.send(json!({"type": "leave"}));
        let _ = self.outgoing.send(Message::Close(None));
        self.rtc.stop();
    }

    /// Disappears without a goodbye, like a frozen tab or a laptop that lost its network:
    /// media goes silent and the socket stays open but is no longer read, so not even pings
    /// are answered. Only the server's timeouts can notice.
    pub fn vanish(&self) {
        self.rtc.vanish();
        self.reader.abort();
    }
}

async fn next_of<S>(stream: &mut S, kind: &str, log: &Arc<Mutex<Vec<Value>>>) -> Result<Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| anyhow!("no `{kind}` within 10 s"))?;
        let Some(frame) = frame else {
            bail!("socket closed while waiting for `{kind}`");
        };
        if let Message::Text(text) = frame? {
            let msg: Value = serde_json::from_str(&text)?;
            if let Ok(mut l) = log.lock() {
                l.push(msg.clone());
            }
            if msg["type"] == kind {
                return Ok(msg);
            }
            if msg["type"] == "error" {
                bail!("server error while waiting for `{kind}`: {msg}");
            }
        }
    }
}
