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
use signaling::service::TranscriptionSwitch;
use tokio::sync::{mpsc, oneshot};
use transcriber::language::SpeakerLanguage;
use transcriber::partial::{PartialText, StablePrefix};
use transcriber::pipeline::TrackPipeline;
use transcriber::vad::{Utterance, VadConfig};
use transcriber::whisper::{Whisper, WhisperConfig};
use transcriber::worker::{Job, JobKind, Outcome, Pool, SegmentSink, Transcribed};
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
/// A partial caption about this often while someone speaks (when a worker is free).
const PARTIAL_EVERY: Duration = Duration::from_millis(1000);
/// The first partial of an utterance once this much of it is in (200 ms of it pre-roll,
/// so ~0.4 s of speech: a word or two). A partial that heard nothing is retried at once.
const FIRST_PARTIAL_AUDIO: Duration = Duration::from_millis(600);
/// How often the session checks for idle tracks and due partials.
const TICK: Duration = Duration::from_millis(100);

/// Transcription for this node: the whisper pool (if a model is configured) and the rooms
/// being transcribed.
pub struct Transcription {
    pool: Option<Arc<Pool>>,
    options: SessionOptions,
    sessions: Mutex<HashMap<RoomId, Session>>,
    /// Rooms whose call was seen empty while transcribed here, since when.
    empty_since: Mutex<HashMap<RoomId, Instant>>,
}

/// What every session of this node does the same way.
#[derive(Debug, Clone)]
struct SessionOptions {
    /// `WHISPER_LANGUAGE`: every speaker in this language unless the room sets one...
    language: Option<String>,
    /// ...or detected among these (empty: any).
    languages: Vec<String>,
    vad: VadConfig,
    partials: bool,
    idle_stop: Duration,
}

impl SessionOptions {
    fn from_settings(settings: &WhisperSettings) -> Self {
        Self {
            language: settings.language.clone(),
            languages: settings.languages.clone(),
            vad: VadConfig {
                detector: settings.vad,
                ..VadConfig::default()
            },
            partials: settings.partials,
            idle_stop: settings.idle_stop,
        }
    }
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
        let options = SessionOptions::from_settings(settings);
        let started = Instant::now();
        let whisper = Whisper::load(
            path,
            WhisperConfig {
                language: settings.language.clone(),
                languages: settings.languages.clone(),
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
            vad = settings.vad.name(),
            partials = settings.partials,
            load_seconds = started.elapsed().as_secs_f64(),
            "transcription available"
        );
        Ok(Self {
            pool: Some(Arc::new(pool)),
            options,
            sessions: Mutex::new(HashMap::new()),
            empty_since: Mutex::new(HashMap::new()),
        })
    }

    pub fn unavailable() -> Self {
        Self {
            pool: None,
            options: SessionOptions {
                language: None,
                languages: Vec::new(),
                vad: VadConfig::default(),
                partials: false,
                idle_stop: Duration::from_secs(120),
            },
            sessions: Mutex::new(HashMap::new()),
            empty_since: Mutex::new(HashMap::new()),
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
        switch: TranscriptionSwitch,
    ) -> Result<()> {
        let role = store.member_role(room_id, user_id).await?;
        let (start, language) = match switch {
            TranscriptionSwitch::Start { language } => (true, language),
            TranscriptionSwitch::Stop => (false, None),
        };
        if start {
            authorize(role, Action::StartTranscription)?;
            if let Some(code) = &language {
                if !transcriber::language::is_known(code) {
                    return Err(Error::BadRequest {
                        code: "invalid_language",
                        message: format!(
                            "{code:?} is not a language the speech model knows; use an ISO 639-1 code such as en or ru"
                        ),
                    });
                }
            }
            if !self
                .start_local(store, hub, room_id, user_id, language.clone())
                .await?
            {
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
                language,
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
        language: Option<String>,
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
        let mut options = self.options.clone();
        if language.is_some() {
            options.language = language;
        }
        let run = SessionTask {
            room_id,
            session_id: agent.id,
            hub: hub.clone(),
            store: store.clone(),
            pool,
            options,
            in_flight: 0,
        };
        hub.tasks().spawn(run.run(tap, stopped));
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
        let tasks = hub.tasks().clone();
        tasks.spawn(async move {
            loop {
                let envelope = tokio::select! {
                    got = events.recv() => match got {
                        Ok(envelope) => envelope,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                    _ = shutdown.changed() => break,
                };
                let BusEvent::Room { room_id, event } = envelope.event else {
                    continue;
                };
                let local = envelope.origin == hub.node_tag();
                match event {
                    RoomEvent::Transcription {
                        active: true,
                        by_user_id,
                        language,
                    } if !local => {
                        let started = this
                            .start_local(&store, &hub, room_id, by_user_id, language)
                            .await;
                        if let Err(err) = started {
                            tracing::error!(room_id, error = %err, "could not follow another node's transcription start");
                        }
                    }
                    RoomEvent::Transcription { active: false, .. } if !local => {
                        let session = this.sessions().remove(&room_id);
                        if let Some(session) = session {
                            session.stop(STOP_FLUSH, None);
                            tracing::info!(
                                room_id,
                                "transcription stopped here, following another node"
                            );
                        }
                    }
                    RoomEvent::RoomDeleted { .. } => {
                        let session = this.sessions().remove(&room_id);
                        if let Some(session) = session {
                            // Nothing to keep: the transcript went with the room.
                            session.stop(Duration::ZERO, None);
                            tracing::info!(room_id, "transcription stopped: the room was deleted");
                        }
                    }
                    RoomEvent::Joined { .. } if local => {
                        if let Err(err) = this.join_running(&store, &hub, room_id).await {
                            tracing::error!(room_id, error = %err, "could not check the room's transcription for a joiner");
                        }
                    }
                    _ => {}
                }
            }
        });
    }

    /// A participant's media landed on this node: if the room's transcription runs (its
    /// agent session is open) but not here — this node started after it, or missed the start
    /// on the bus — start this node's part, and tell the room, so the joiner is transcribed
    /// and sees it. The room's language, if one was given, is not stored: such a late part
    /// uses the server's `WHISPER_LANGUAGE`.
    async fn join_running(&self, store: &Store, hub: &Arc<Hub>, room_id: RoomId) -> Result<()> {
        if self.sessions().contains_key(&room_id) {
            return Ok(());
        }
        let Some(agent) = store.latest_agent_session(room_id).await? else {
            return Ok(());
        };
        let (None, Some(by_user_id)) = (agent.ended_at, agent.started_by) else {
            return Ok(());
        };
        if self
            .start_local(store, hub, room_id, by_user_id, None)
            .await?
        {
            tracing::info!(
                room_id,
                "transcription joined on this node for a late participant"
            );
            hub.publish_room(
                room_id,
                RoomEvent::Transcription {
                    active: true,
                    by_user_id,
                    language: None,
                },
            )
            .await
            .map_err(Error::internal)?;
        }
        Ok(())
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
                    language: None,
                },
            )
            .await
            .map_err(Error::internal)?;
        }
        Ok(unfinished)
    }

    /// Stops every session (server shutdown), giving speech already heard up to `within` to
    /// be transcribed and stored. Returns the utterances still unfinished at the deadline
    /// (logged by the caller: that is speech lost).
    pub async fn finish_all(&self, within: Duration) -> usize {
        let sessions: Vec<Session> = self.sessions().drain().map(|(_, s)| s).collect();
        let mut waits = Vec::with_capacity(sessions.len());
        for session in sessions {
            let (tx, rx) = oneshot::channel();
            session.stop(within, Some(tx));
            waits.push(rx);
        }
        let mut unfinished = 0;
        for wait in waits {
            // As in `finish`: the extra second covers a task mid-write to the database.
            let left = tokio::time::timeout(within + Duration::from_secs(1), wait).await;
            unfinished += left.ok().and_then(Result::ok).unwrap_or(0);
        }
        unfinished
    }

    /// Rooms transcribed here whose call has had nobody in it (on any node) for
    /// `TRANSCRIPTION_IDLE_STOP_SECS`, with who started each: the caller stops and
    /// summarises them (`idle_janitor` in the server). Call it periodically.
    pub fn idle_rooms(&self, hub: &Hub) -> Vec<(RoomId, UserId)> {
        let running: Vec<(RoomId, UserId)> = self
            .sessions()
            .iter()
            .map(|(r, s)| (*r, s.by_user))
            .collect();
        let mut empty = self
            .empty_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        empty.retain(|room, _| running.iter().any(|(r, _)| r == room));
        let now = Instant::now();
        running
            .into_iter()
            .filter(|(room, _)| {
                if hub.participants(*room).is_empty() {
                    let since = *empty.entry(*room).or_insert(now);
                    now.duration_since(since) >= self.options.idle_stop
                } else {
                    empty.remove(room);
                    false
                }
            })
            .collect()
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
    options: SessionOptions,
    /// Finals given to whisper whose result hasn't come back (each comes back once,
    /// dropped ones too). Partials are not counted: nobody waits for them.
    in_flight: usize,
}

struct Track {
    pipeline: TrackPipeline,
    username: String,
    /// Unix ms of the track clock's zero (its first packet's arrival).
    origin_ms: i64,
    last_arrival: Instant,
    language: SpeakerLanguage,
    partial: PartialState,
    /// The room heard some of the utterance in progress (see `sfu::TapPacket::heard`).
    heard: bool,
}

/// Partial captions of the utterance in progress on one track.
#[derive(Default)]
struct PartialState {
    /// The utterance they are for (its start on the track clock).
    utterance: Option<u64>,
    prefix: StablePrefix,
    revision: u32,
    last_sent: PartialText,
    /// When the last partial job was queued; one at a time per track.
    requested: Option<Instant>,
    pending: bool,
}

impl PartialState {
    /// Forgets the utterance (its final was queued): late partial results are dropped. A
    /// partial still in flight stays counted, so there is never more than one per track.
    fn reset(&mut self) {
        *self = Self {
            pending: self.pending,
            ..Self::default()
        };
    }
}

/// Who a result is for, looked up when it comes back.
struct SpeakerInfo {
    origin_ms: i64,
    username: String,
}

fn unix_ms_of(at: Instant) -> i64 {
    let ago = Instant::now().saturating_duration_since(at);
    now_millis() - i64::try_from(ago.as_millis()).unwrap_or(0)
}

fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

impl SessionTask {
    async fn run(mut self, mut tap: sfu::TapReceiver, mut stopped: oneshot::Receiver<Stop>) {
        let (done_tx, mut done) = mpsc::unbounded_channel::<Transcribed>();
        let sink: SegmentSink = Arc::new(move |t| {
            let _ = done_tx.send(t);
        });
        let mut tracks: HashMap<u64, Track> = HashMap::new();
        let mut ticker = tokio::time::interval(TICK);
        let stop = loop {
            tokio::select! {
                packet = tap.recv() => {
                    let Some(packet) = packet else { break None };
                    self.handle_packet(&mut tracks, &sink, packet);
                }
                Some(t) = done.recv() => self.finished(&mut tracks, t).await,
                _ = ticker.tick() => {
                    self.flush_idle(&mut tracks, &sink);
                    if self.options.partials {
                        self.request_partials(&mut tracks, &sink);
                    }
                }
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
                self.submit_final(track, &sink, u);
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
                Ok(Some(t)) => self.finished(&mut tracks, t).await,
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

    /// A result came back from whisper.
    async fn finished(&mut self, tracks: &mut HashMap<u64, Track>, t: Transcribed) {
        let track = tracks.get_mut(&t.speaker.participant);
        match t.kind {
            JobKind::Final => {
                self.in_flight = self.in_flight.saturating_sub(1);
                // The track is gone when its participant left long ago while whisper worked.
                let Some(track) = track else { return };
                if let Some(detected) = &t.detected {
                    if let Some(locked) = track.language.observe(detected) {
                        tracing::info!(
                            room_id = self.room_id,
                            participant_id = t.speaker.participant,
                            language = locked,
                            "speaker's language detected"
                        );
                    }
                }
                let speaker = SpeakerInfo {
                    origin_ms: track.origin_ms,
                    username: track.username.clone(),
                };
                self.publish_final(speaker, t).await;
            }
            JobKind::Partial => {
                let Some(track) = track else { return };
                track.partial.pending = false;
                if t.outcome != Outcome::Done || track.partial.utterance != Some(t.utterance_start)
                {
                    return;
                }
                let text = t.segment.as_ref().map_or("", |s| s.text.as_str());
                if text.is_empty() && track.partial.revision == 0 {
                    // Too early for words: the next try need not wait a whole period.
                    track.partial.requested = None;
                    return;
                }
                let shown = track.partial.prefix.update(text);
                if shown == track.partial.last_sent
                    || (shown.stable.is_empty() && shown.unstable.is_empty())
                {
                    return;
                }
                track.partial.revision += 1;
                track.partial.last_sent = shown.clone();
                let start_ms = track.origin_ms
                    + i64::try_from(Utterance::ms_of(t.utterance_start)).unwrap_or(0);
                let caption = ServerMessage::CaptionPartial {
                    participant_id: ParticipantId(t.speaker.participant),
                    user_id: t.speaker.user,
                    username: track.username.clone(),
                    start_ms,
                    revision: track.partial.revision,
                    stable: shown.stable,
                    unstable: shown.unstable,
                };
                if track.partial.revision == 1 {
                    let latency = seconds(now_millis() - start_ms);
                    metrics::histogram!("transcriber_first_partial_seconds").record(latency);
                }
                metrics::counter!("transcriber_partials_total", "outcome" => "sent").increment(1);
                if let Err(err) = self
                    .hub
                    .publish_room(self.room_id, RoomEvent::Caption { caption })
                    .await
                {
                    tracing::error!(room_id = self.room_id, error = %err, "could not publish a partial caption");
                }
            }
        }
    }

    fn submit_final(&mut self, track: &mut Track, sink: &SegmentSink, u: Utterance) {
        self.in_flight += 1;
        track.partial.reset();
        let heard = std::mem::take(&mut track.heard);
        self.pool.queue().push(Job {
            speaker: track.pipeline.speaker,
            kind: JobKind::Final,
            utterance: u,
            language: track.language.for_final(),
            enqueued: Instant::now(),
            heard,
            sink: sink.clone(),
        });
    }

    /// Queues a partial for every track that has been speaking long enough since its last
    /// one and has none in flight. The queue runs them only when no final waits.
    fn request_partials(&mut self, tracks: &mut HashMap<u64, Track>, sink: &SegmentSink) {
        let first_samples = (FIRST_PARTIAL_AUDIO.as_millis() as usize)
            * (transcriber::WHISPER_RATE as usize)
            / 1000;
        for track in tracks.values_mut() {
            let Some(now) = track.pipeline.in_progress() else {
                continue;
            };
            let partial = &mut track.partial;
            if partial.utterance != Some(now.start) {
                // A new utterance: its first partial doesn't wait out the last one's period
                // (a result still in flight for that one is dropped when it returns).
                *partial = PartialState {
                    utterance: Some(now.start),
                    pending: partial.pending,
                    ..PartialState::default()
                };
            }
            if partial.pending
                || now.samples.len() < first_samples
                || partial
                    .requested
                    .is_some_and(|at| at.elapsed() < PARTIAL_EVERY)
            {
                continue;
            }
            let utterance = Utterance {
                start: now.start,
                samples: now.samples.to_vec(),
            };
            partial.requested = Some(Instant::now());
            partial.pending = true;
            self.pool.queue().push(Job {
                speaker: track.pipeline.speaker,
                kind: JobKind::Partial,
                utterance,
                language: track.language.for_partial(),
                enqueued: Instant::now(),
                heard: track.heard,
                sink: sink.clone(),
            });
        }
    }

    fn handle_packet(
        &mut self,
        tracks: &mut HashMap<u64, Track>,
        sink: &SegmentSink,
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
                let Ok(pipeline) = TrackPipeline::new(speaker, self.options.vad) else {
                    tracing::error!(room_id = self.room_id, "could not create an Opus decoder");
                    return;
                };
                e.insert(Track {
                    pipeline,
                    username: info.username,
                    origin_ms: unix_ms_of(packet.arrival),
                    last_arrival: packet.arrival,
                    language: SpeakerLanguage::for_setting(
                        self.options.language.as_deref(),
                        &self.options.languages,
                    ),
                    partial: PartialState::default(),
                    heard: false,
                })
            }
        };
        track.last_arrival = packet.arrival;
        track.heard |= packet.heard;
        let done =
            track
                .pipeline
                .handle_packet(packet.sequence, packet.rtp_timestamp, &packet.payload);
        for u in done {
            self.submit_final(track, sink, u);
        }
    }

    fn flush_idle(&mut self, tracks: &mut HashMap<u64, Track>, sink: &SegmentSink) {
        let room_id = self.room_id;
        let mut gone = Vec::new();
        for (peer, track) in tracks.iter_mut() {
            let present = self
                .hub
                .participant(room_id, ParticipantId(*peer))
                .is_some();
            if track.last_arrival.elapsed() >= IDLE_FLUSH || !present {
                if let Some(u) = track.pipeline.flush_utterance() {
                    self.submit_final(track, sink, u);
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

    /// Stores and publishes a final, and records where its time went: per stage in
    /// `transcriber_stage_seconds{stage}` and in one debug line per utterance.
    async fn publish_final(&self, speaker: SpeakerInfo, t: Transcribed) {
        let Some(segment) = t.segment else {
            return;
        };
        let room_id = self.room_id;
        let returned = now_millis();
        let start_ms = speaker.origin_ms + i64::try_from(segment.start_ms).unwrap_or(0);
        let end_ms = speaker.origin_ms + i64::try_from(segment.end_ms).unwrap_or(0);
        let whisper_ms = i64::try_from(t.took.as_millis()).unwrap_or(0);
        let queue_ms = i64::try_from(t.queued.as_millis()).unwrap_or(0);
        // When the VAD ended the utterance and it was queued: back from whisper's end.
        let queued_at = returned - whisper_ms - queue_ms;
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
        let stored_at = now_millis();
        let caption = ServerMessage::Caption {
            participant_id: ParticipantId(segment.speaker.participant),
            user_id: segment.speaker.user,
            username: speaker.username,
            start_ms,
            end_ms,
            text: segment.text,
            language: t.language,
        };
        if let Err(err) = self
            .hub
            .publish_room(room_id, RoomEvent::Caption { caption })
            .await
        {
            tracing::error!(room_id, error = %err, "could not publish a caption");
        }
        let sent_at = now_millis();
        let stages = [
            ("vad", queued_at - end_ms),
            ("queue", queue_ms),
            ("whisper", whisper_ms),
            ("store", stored_at - returned),
            ("publish", sent_at - stored_at),
        ];
        for (stage, ms) in stages {
            metrics::histogram!("transcriber_stage_seconds", "stage" => stage).record(seconds(ms));
        }
        let total = seconds(sent_at - end_ms);
        metrics::histogram!("transcriber_caption_latency_seconds").record(total);
        tracing::debug!(
            room_id,
            participant_id = segment.speaker.participant,
            audio_ms = t.audio.as_millis() as u64,
            vad_ms = queued_at - end_ms,
            queue_ms,
            whisper_ms,
            store_ms = stored_at - returned,
            publish_ms = sent_at - stored_at,
            total_ms = sent_at - end_ms,
            "caption timings"
        );
    }
}
