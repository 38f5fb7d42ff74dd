//! The room's transcriber ("AI agent"): while on, every participant's audio from this
//! node's SFU goes through the transcriber pipeline; segments are stored and pushed to the
//! room as live captions.
//!
//! Who may: any member in the call starts it (everyone is told with `transcription_state`,
//! joiners too, so it is never secret); the member who started it, moderators and the owner
//! stop it. One session task per room per node: the tap sees the participants whose media
//! lands on this node. Nodes follow each other's starts and stops on the bus
//! ([`Transcription::follow`]), so with several nodes everyone is transcribed, into the
//! room's one agent session.
//!
//! Each start opens (or joins) the room's agent session in the database; its segments carry
//! the session id, so a summary reads exactly what the session heard. A stop finishes what
//! was said: open utterances go to whisper and the session waits for them, up to a limit
//! ([`Transcription::finish`] for a summary waits for that, a plain stop doesn't).
//!
//! Decoding, resampling and VAD (a few percent of a core per speaker) run in the session's
//! task; whisper runs on the worker pool's own threads, never on the async runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signaling::bus::{BusEvent, RoomEvent};
use signaling::hub::Hub;
use signaling::media::room_of;
use signaling::protocol::{ParticipantId, RoomId, ServerMessage, UserId};
use tokio::sync::{mpsc, oneshot};
use transcriber::pipeline::TrackPipeline;
use transcriber::vad::VadConfig;
use transcriber::worker::{Job, Pool, Transcribed, Whisper, WhisperConfig};
use transcriber::Speaker;

use crate::app::permissions::{authorize, Action};
use crate::config::WhisperSettings;
use crate::db::{now_millis, NewSegment, SegmentRow, Store};
use crate::error::{Error, Result};

/// Packets buffered between the SFU and a session: 20 s of one speaker. The tap drops (and
/// counts) beyond that rather than slow forwarding.
const TAP_CAPACITY: usize = 1024;
/// A track silent this long (muted, left, or no DTX packets) ends its utterance.
const IDLE_FLUSH: Duration = Duration::from_millis(600);
/// At most this many segments in a transcript answer.
pub const TRANSCRIPT_LIMIT: i64 = 10_000;
/// How long a plain stop keeps the session alive to store what was still being transcribed.
const STOP_FLUSH: Duration = Duration::from_secs(30);

/// Transcription for this node: the whisper pool (if a model is configured) and the rooms
/// being transcribed.
pub struct Transcription {
    pool: Option<Arc<Pool>>,
    sessions: Mutex<HashMap<RoomId, Session>>,
}

impl std::fmt::Debug for Transcription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcription")
            .field("available", &self.pool.is_some())
            .finish_non_exhaustive()
    }
}

struct Session {
    by_user: UserId,
    stop: oneshot::Sender<Stop>,
}

/// Ends a session task: it stops taking audio, transcribes what is open and waits for
/// whisper until `deadline`, then reports how many utterances were still unfinished.
struct Stop {
    deadline: Instant,
    flushed: Option<oneshot::Sender<usize>>,
}

impl Session {
    fn stop(self, within: Duration, flushed: Option<oneshot::Sender<usize>>) {
        let _ = self.stop.send(Stop {
            deadline: Instant::now() + within,
            flushed,
        });
    }
}

impl Transcription {
    /// Loads the model and starts the workers; without `WHISPER_MODEL`, transcription is
    /// unavailable (one log line) and everything else works.
    ///
    /// # Errors
    /// A model that is configured but can't be loaded.
    pub fn start(settings: &WhisperSettings) -> Result<Self, transcriber::Error> {
        let Some(path) = &settings.model else {
            tracing::info!("transcription unavailable: WHISPER_MODEL is not set");
            return Ok(Self::unavailable());
        };
        let started = Instant::now();
        let whisper = Whisper::load(
            path,
            WhisperConfig {
                language: settings.language.clone(),
                threads: settings.threads,
            },
        )?;
        let capacity = (settings.workers * 4).max(8);
        let pool = Pool::start(Arc::new(whisper), settings.workers, capacity)?;
        tracing::info!(
            model = %path.display(),
            workers = settings.workers,
            threads = settings.threads,
            language = settings.language.as_deref().unwrap_or("auto"),
            load_seconds = started.elapsed().as_secs_f64(),
            "transcription available"
        );
        Ok(Self {
            pool: Some(Arc::new(pool)),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    pub fn unavailable() -> Self {
        Self {
            pool: None,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub fn pool(&self) -> Option<&Arc<Pool>> {
        self.pool.as_ref()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts (or stops) the room's transcription for `user` and tells the room.
    ///
    /// # Errors
    /// [`Error::TranscriptionUnavailable`] without a model; `not_found`/`forbidden` from the
    /// permission rules; internal errors when the bus fails.
    pub async fn set(
        &self,
        store: &Store,
        hub: &Arc<Hub>,
        room_id: RoomId,
        user_id: UserId,
        start: bool,
    ) -> Result<()> {
        let role = store.member_role(room_id, user_id).await?;
        if start {
            authorize(role, Action::StartTranscription)?;
            if !self.start_local(store, hub, room_id, user_id).await? {
                return Ok(());
            }
        } else {
            let by_user = self.sessions().get(&room_id).map(|s| s.by_user);
            let Some(by_user) = by_user else {
                authorize(role, Action::ReadTranscript)?;
                return Ok(());
            };
            authorize(
                role,
                Action::StopTranscription {
                    own: by_user == user_id,
                },
            )?;
            let session = self.sessions().remove(&room_id);
            if let Some(session) = session {
                session.stop(STOP_FLUSH, None);
            }
            if let Some(agent) = store.latest_agent_session(room_id).await? {
                store.end_agent_session(agent.id, now_millis()).await?;
            }
            tracing::info!(room_id, user_id, "transcription stopped");
        }
        hub.publish_room(
            room_id,
            RoomEvent::Transcription {
                active: start,
                by_user_id: user_id,
            },
        )
        .await
        .map_err(Error::internal)
    }

    /// Starts this node's part of the room's transcription: its SFU's tracks of the room go
    /// into the room's agent session. `false` when it runs here already.
    ///
    /// # Errors
    /// [`Error::TranscriptionUnavailable`] without a model or media plane; internal errors.
    async fn start_local(
        &self,
        store: &Store,
        hub: &Arc<Hub>,
        room_id: RoomId,
        user_id: UserId,
    ) -> Result<bool> {
        let (Some(pool), Some(plane)) = (self.pool.clone(), hub.media_plane()) else {
            return Err(Error::TranscriptionUnavailable);
        };
        if self.sessions().contains_key(&room_id) {
            return Ok(false);
        }
        let agent = store
            .open_agent_session(room_id, user_id, now_millis())
            .await?;
        let mut sessions = self.sessions();
        // Another start won the race while we were at the database.
        if sessions.contains_key(&room_id) {
            return Ok(false);
        }
        let (stop, stopped) = oneshot::channel();
        let tap = plane.sfu.tap(room_of(room_id), TAP_CAPACITY);
        let run = SessionTask {
            room_id,
            session_id: agent.id,
            hub: hub.clone(),
            store: store.clone(),
            pool,
            in_flight: 0,
        };
        tokio::spawn(run.run(tap, stopped));
        sessions.insert(
            room_id,
            Session {
                by_user: user_id,
                stop,
            },
        );
        tracing::info!(
            room_id,
            user_id,
            session_id = agent.id,
            "transcription started on this node"
        );
        Ok(true)
    }

    /// Follows the other nodes: when one starts or stops a room's transcription, this node
    /// starts or stops its part too, so participants whose media lands here are transcribed
    /// into the same session. Ends at the hub's shutdown; does nothing without a model.
    pub fn follow(self: &Arc<Self>, store: Store, hub: Arc<Hub>) {
        if self.pool.is_none() || hub.media_plane().is_none() {
            return;
        }
        let this = self.clone();
        let mut events = hub.subscribe_bus();
        let mut shutdown = hub.shutdown_signal();
        tokio::spawn(async move {
            loop {
                let envelope = tokio::select! {
                    got = events.recv() => match got {
                        Ok(envelope) => envelope,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                    _ = shutdown.changed() => break,
                };
                let BusEvent::Room {
                    room_id,
                    event: RoomEvent::Transcription { active, by_user_id },
                } = envelope.event
                else {
                    continue;
                };
                if envelope.origin == hub.node_tag() {
                    continue;
                }
                if active {
                    if let Err(err) = this.start_local(&store, &hub, room_id, by_user_id).await {
                        tracing::error!(room_id, error = %err, "could not follow another node's transcription start");
                    }
                } else {
                    let session = this.sessions().remove(&room_id);
                    if let Some(session) = session {
                        session.stop(STOP_FLUSH, None);
                        tracing::info!(
                            room_id,
                            "transcription stopped here, following another node"
                        );
                    }
                }
            }
        });
    }

    /// Who started the transcription running on this node for the room, if it runs here.
    pub fn started_by(&self, room_id: RoomId) -> Option<UserId> {
        self.sessions().get(&room_id).map(|s| s.by_user)
    }

    /// Stops the room's transcription on this node for a summary: waits up to `within` for
    /// what was said to be transcribed and stored, and tells the room it is off. Returns the
    /// utterances still unfinished at the deadline (0: everything is in), or `None` when it
    /// didn't run on this node. The caller checks permissions and ends the agent session.
    ///
    /// # Errors
    /// Internal errors when the bus fails.
    pub async fn finish(
        &self,
        hub: &Hub,
        room_id: RoomId,
        by_user: UserId,
        within: Duration,
    ) -> Result<Option<usize>> {
        let session = self.sessions().remove(&room_id);
        let unfinished = match session {
            Some(session) => {
                let (tx, rx) = oneshot::channel();
                session.stop(within, Some(tx));
                // The task answers at its deadline at the latest; the extra second covers a
                // task that is mid-write to the database.
                let waited = tokio::time::timeout(within + Duration::from_secs(1), rx).await;
                Some(waited.ok().and_then(Result::ok).unwrap_or(usize::MAX))
            }
            None => None,
        };
        if unfinished.is_some() || hub.transcribed_by(room_id).is_some() {
            hub.publish_room(
                room_id,
                RoomEvent::Transcription {
                    active: false,
                    by_user_id: by_user,
                },
            )
            .await
            .map_err(Error::internal)?;
        }
        Ok(unfinished)
    }

    /// Stops every session (server shutdown) without waiting for whisper.
    pub fn stop_all(&self) {
        for (_, session) in self.sessions().drain() {
            session.stop(Duration::ZERO, None);
        }
    }
}

/// The stored transcript of a room, for a member.
///
/// # Errors
/// `not_found` for a non-member.
pub async fn transcript(
    store: &Store,
    user_id: UserId,
    room_id: RoomId,
) -> Result<Vec<SegmentRow>> {
    authorize(
        store.member_role(room_id, user_id).await?,
        Action::ReadTranscript,
    )?;
    Ok(store.transcript(room_id, TRANSCRIPT_LIMIT).await?)
}

struct SessionTask {
    room_id: RoomId,
    session_id: i64,
    hub: Arc<Hub>,
    store: Store,
    pool: Arc<Pool>,
    /// Utterances given to whisper whose result hasn't come back (each comes back once,
    /// dropped ones too).
    in_flight: usize,
}

struct Track {
    pipeline: TrackPipeline,
    username: String,
    /// Unix ms of the track clock's zero (its first packet's arrival).
    origin_ms: i64,
    last_arrival: Instant,
}

/// The clock origin and name of a segment's speaker; `None` without words, or when the
/// track is gone (its participant left long ago) while whisper worked.
fn speaker_of(tracks: &HashMap<u64, Track>, t: &Transcribed) -> Option<(i64, String)> {
    t.segment
        .as_ref()
        .and_then(|s| tracks.get(&s.speaker.participant))
        .map(|track| (track.origin_ms, track.username.clone()))
}

fn unix_ms_of(at: Instant) -> i64 {
    let ago = Instant::now().saturating_duration_since(at);
    now_millis() - i64::try_from(ago.as_millis()).unwrap_or(0)
}

impl SessionTask {
    async fn run(mut self, mut tap: sfu::TapReceiver, mut stopped: oneshot::Receiver<Stop>) {
        let (done_tx, mut done) = mpsc::unbounded_channel::<Transcribed>();
        let sink: transcriber::worker::SegmentSink = Arc::new(move |t| {
            let _ = done_tx.send(t);
        });
        let mut tracks: HashMap<u64, Track> = HashMap::new();
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        let stop = loop {
            tokio::select! {
                packet = tap.recv() => {
                    let Some(packet) = packet else { break None };
                    self.handle_packet(&mut tracks, &sink, packet);
                }
                Some(t) = done.recv() => {
                    let speaker = speaker_of(&tracks, &t);
                    self.finished(speaker, t).await;
                }
                _ = ticker.tick() => self.flush_idle(&mut tracks, &sink),
                stop = &mut stopped => break stop.ok(),
            }
        };
        let dropped = tap.dropped();
        if dropped > 0 {
            tracing::warn!(
                room_id = self.room_id,
                dropped,
                "transcription tap dropped packets"
            );
        }
        // No more audio; what was being said when the stop came still counts.
        drop(tap);
        for track in tracks.values_mut() {
            if let Some(u) = track.pipeline.flush_utterance() {
                self.submit(track.pipeline.speaker, &sink, u);
            }
        }
        let (deadline, flushed) = match stop {
            Some(stop) => (stop.deadline, stop.flushed),
            None => (Instant::now(), None),
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        let (waited_for, waiting) = (self.in_flight, Instant::now());
        while self.in_flight > 0 {
            match tokio::time::timeout_at(deadline, done.recv()).await {
                Ok(Some(t)) => {
                    let speaker = speaker_of(&tracks, &t);
                    self.finished(speaker, t).await;
                }
                _ => break,
            }
        }
        if self.in_flight > 0 {
            tracing::warn!(
                room_id = self.room_id,
                unfinished = self.in_flight,
                "transcription stopped before whisper finished"
            );
        } else {
            tracing::info!(
                room_id = self.room_id,
                utterances = waited_for,
                waited_ms = waiting.elapsed().as_millis() as u64,
                "transcription stopped after whisper finished what was said"
            );
        }
        if let Some(flushed) = flushed {
            let _ = flushed.send(self.in_flight);
        }
    }

    /// A result came back from whisper: store and publish it if it has words and its
    /// speaker is known (`speaker_of`).
    async fn finished(&mut self, speaker: Option<(i64, String)>, t: Transcribed) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(speaker) = speaker {
            self.publish(speaker, t).await;
        }
    }

    fn submit(
        &mut self,
        speaker: Speaker,
        sink: &transcriber::worker::SegmentSink,
        u: transcriber::vad::Utterance,
    ) {
        self.in_flight += 1;
        self.pool.queue().push(Job {
            speaker,
            utterance: u,
            enqueued: Instant::now(),
            sink: sink.clone(),
        });
    }

    fn handle_packet(
        &mut self,
        tracks: &mut HashMap<u64, Track>,
        sink: &transcriber::worker::SegmentSink,
        packet: sfu::TapPacket,
    ) {
        let peer = packet.peer.0;
        let track = match tracks.entry(peer) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                // Only participants the hub knows are transcribed: their user is the speaker.
                let Some(info) = self.hub.participant(self.room_id, ParticipantId(peer)) else {
                    return;
                };
                let speaker = Speaker {
                    participant: peer,
                    user: info.user_id,
                };
                let Ok(pipeline) = TrackPipeline::new(speaker, VadConfig::default()) else {
                    tracing::error!(room_id = self.room_id, "could not create an Opus decoder");
                    return;
                };
                e.insert(Track {
                    pipeline,
                    username: info.username,
                    origin_ms: unix_ms_of(packet.arrival),
                    last_arrival: packet.arrival,
                })
            }
        };
        track.last_arrival = packet.arrival;
        let speaker = track.pipeline.speaker;
        for u in
            track
                .pipeline
                .handle_packet(packet.sequence, packet.rtp_timestamp, &packet.payload)
        {
            self.submit(speaker, sink, u);
        }
    }

    fn flush_idle(
        &mut self,
        tracks: &mut HashMap<u64, Track>,
        sink: &transcriber::worker::SegmentSink,
    ) {
        let room_id = self.room_id;
        let mut gone = Vec::new();
        for (peer, track) in tracks.iter_mut() {
            let present = self
                .hub
                .participant(room_id, ParticipantId(*peer))
                .is_some();
            if track.last_arrival.elapsed() >= IDLE_FLUSH || !present {
                if let Some(u) = track.pipeline.flush_utterance() {
                    self.submit(track.pipeline.speaker, sink, u);
                }
            }
            // Kept a while after leaving, so captions of its last words still find its name.
            if !present && track.last_arrival.elapsed() >= Duration::from_secs(60) {
                gone.push(*peer);
            }
        }
        for peer in gone {
            tracks.remove(&peer);
        }
    }

    async fn publish(&self, (origin_ms, username): (i64, String), t: Transcribed) {
        let Some(segment) = t.segment else {
            return;
        };
        let room_id = self.room_id;
        let start_ms = origin_ms + i64::try_from(segment.start_ms).unwrap_or(0);
        let end_ms = origin_ms + i64::try_from(segment.end_ms).unwrap_or(0);
        let stored = self
            .store
            .insert_segment(
                &NewSegment {
                    room_id,
                    session_id: Some(self.session_id),
                    user_id: segment.speaker.user,
                    participant_id: i64::try_from(segment.speaker.participant).unwrap_or(0),
                    start_ms,
                    end_ms,
                    text: &segment.text,
                },
                now_millis(),
            )
            .await;
        if let Err(err) = stored {
            tracing::error!(room_id, error = %err, "could not store a transcript segment");
        }
        let latency = (now_millis() - end_ms).max(0) as f64 / 1000.0;
        metrics::histogram!("transcriber_caption_latency_seconds").record(latency);
        let caption = ServerMessage::Caption {
            participant_id: ParticipantId(segment.speaker.participant),
            user_id: segment.speaker.user,
            username,
            start_ms,
            end_ms,
            text: segment.text,
        };
        if let Err(err) = self
            .hub
            .publish_room(room_id, RoomEvent::Caption { caption })
            .await
        {
            tracing::error!(room_id, error = %err, "could not publish a caption");
        }
    }
}
