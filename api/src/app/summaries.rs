//! The AI agent's summary of a session: stop the agent, wait for the transcriber, read the
//! session's transcript and chat, have a model (or the heuristic) write it, store it once,
//! tell the room and deliver it to Telegram.
//!
//! One summary per agent session: the database's unique constraint decides, so a repeated
//! trigger, a concurrent one, or one on another node gets the stored summary. On this node a
//! per-room lock also keeps two triggers from both asking the model.
//!
//! Which session: the room's open one (the agent is running: stopping it needs the same
//! right as `transcription_stop`); else the latest ended one; else, for a room whose agent
//! never ran (no speech model, say), a session covering the chat since the room was created.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use signaling::bus::RoomEvent;
use signaling::hub::Hub;
use signaling::protocol::{Summary, SummarySource};

use crate::agent::heuristic::{heuristic_summary, HeuristicReason, Line};
use crate::agent::input::SummaryInput;
use crate::agent::provider::ModelChain;
use crate::app::permissions::{authorize, Action};
use crate::app::prompts;
use crate::app::telegram::{Delivery, Telegram};
use crate::app::transcription::{Transcription, TRANSCRIPT_LIMIT};
use crate::config::SummarySettings;
use crate::db::{now_millis, AgentSessionRow, NewSummary, RoomRow, Store, SummaryRow};
use crate::domain::Role;
use crate::error::{Error, Result};
use crate::timestamps::timestamp;

/// At most this many summaries in a list answer.
pub const LIST_LIMIT: i64 = 100;
/// How often rooms whose call emptied are looked for.
const IDLE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// A summary as a trigger returns it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub summary: Summary,
    /// `false`: the session's stored summary (nothing was written or sent).
    pub created: bool,
    pub delivery: Delivery,
}

/// The summary writer: the model (if configured), the bot (if configured), and a lock per
/// room so one node asks the model once per session.
pub struct Summaries {
    settings: SummarySettings,
    model: Option<ModelChain>,
    telegram: Option<Arc<Telegram>>,
    building: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Summaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summaries")
            .field("model", &self.model.is_some())
            .field("telegram", &self.telegram.is_some())
            .finish_non_exhaustive()
    }
}

/// The stores and services a summary touches.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub store: &'a Store,
    pub hub: &'a Arc<Hub>,
    pub transcription: &'a Transcription,
}

pub fn to_wire(row: SummaryRow) -> Summary {
    Summary {
        id: row.id,
        room_id: row.room_id,
        session_id: row.session_id,
        requested_by: row.requested_by,
        requested_by_name: row.requested_by_name,
        source: if row.source == "ai" {
            SummarySource::Ai
        } else {
            SummarySource::Heuristic
        },
        model: row.model,
        reason: row.reason,
        text: row.body,
        segments: row.segments,
        messages: row.messages,
        started_at: timestamp(row.started_at),
        ended_at: timestamp(row.ended_at.unwrap_or(row.created_at)),
        created_at: timestamp(row.created_at),
    }
}

/// What a model or the heuristic wrote.
struct Written {
    source: &'static str,
    model: Option<String>,
    reason: Option<HeuristicReason>,
    text: String,
}

impl Summaries {
    pub fn new(
        settings: SummarySettings,
        model: Option<ModelChain>,
        telegram: Option<Arc<Telegram>>,
    ) -> Self {
        Self {
            settings,
            model,
            telegram,
            building: Mutex::new(HashMap::new()),
        }
    }

    fn room_lock(&self, room_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut building = self
            .building
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Locks nobody holds or waits for are dropped, so the map stays as small as the
        // number of summaries in progress.
        building.retain(|_, lock| Arc::strong_count(lock) > 1);
        building.entry(room_id).or_default().clone()
    }

    /// Ends transcriptions nobody is left to hear: a room transcribed on this node whose call
    /// has been empty for `TRANSCRIPTION_IDLE_STOP_SECS` is stopped and summarised as if the
    /// member who started it had asked (everyone in the room's chat and linked Telegram gets
    /// it, as with "Summarise"). Stops at the hub's shutdown; the server waits for it.
    pub fn run_idle_stop(
        self: Arc<Self>,
        store: Store,
        hub: Arc<Hub>,
        transcription: Arc<Transcription>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(IDLE_CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => break,
                }
                for (room_id, by_user) in transcription.idle_rooms(&hub) {
                    tracing::info!(
                        room_id,
                        "nobody is in the call: transcription stops and is summarised"
                    );
                    let deps = Deps {
                        store: &store,
                        hub: &hub,
                        transcription: &transcription,
                    };
                    if let Err(err) = self.summarise(deps, room_id, by_user).await {
                        tracing::warn!(room_id, error = %err, "could not summarise an idle transcription; stopping it");
                        let _ = transcription
                            .finish(&hub, room_id, by_user, std::time::Duration::ZERO)
                            .await;
                        // Ended in the database too, or a node a joiner lands on would
                        // find it open and start it again.
                        if let Ok(Some(agent)) = store.latest_agent_session(room_id).await {
                            if agent.ended_at.is_none() {
                                let _ = store.end_agent_session(agent.id, now_millis()).await;
                            }
                        }
                    }
                }
            }
        })
    }

    /// Stops the room's agent (if it runs) and returns its session's summary, writing,
    /// storing, publishing and delivering it if it is new.
    ///
    /// # Errors
    /// `not_found` for a non-member, `forbidden` for a member who may not stop the running
    /// agent; internal errors.
    pub async fn summarise(&self, deps: Deps<'_>, room_id: i64, user_id: i64) -> Result<Outcome> {
        let Deps { store, hub, .. } = deps;
        let role = store.member_role(room_id, user_id).await?;
        authorize(role, Action::ReadTranscript)?;
        let room = store.room(room_id).await?.ok_or(Error::NotFound("room"))?;
        let lock = self.room_lock(room_id);
        let _one_at_a_time = lock.lock().await;

        let session = self
            .session_to_summarise(deps, &room, role, user_id)
            .await?;
        if let Some(stored) = store.summary_of_session(session.id).await? {
            return Ok(Outcome {
                summary: to_wire(stored),
                created: false,
                delivery: Delivery::Repeat,
            });
        }
        let input = self.input_of(store, &session, room.name).await?;
        let written = self.write(store, user_id, &input).await;
        let segments = i64::try_from(input.utterances.len()).unwrap_or(i64::MAX);
        let messages = i64::try_from(input.chat.len()).unwrap_or(i64::MAX);
        let inserted = store
            .insert_summary(
                &NewSummary {
                    room_id,
                    session_id: session.id,
                    requested_by: user_id,
                    source: written.source,
                    model: written.model.as_deref(),
                    reason: written.reason.map(HeuristicReason::code),
                    body: &written.text,
                    segments,
                    messages,
                },
                now_millis(),
            )
            .await?;
        let stored = store
            .summary_of_session(session.id)
            .await?
            .ok_or_else(|| Error::internal("a stored summary vanished"))?;
        let summary = to_wire(stored);
        if inserted.is_none() {
            // Another node wrote this session's summary first: theirs stands.
            return Ok(Outcome {
                summary,
                created: false,
                delivery: Delivery::Repeat,
            });
        }
        tracing::info!(
            room_id,
            session_id = session.id,
            source = written.source,
            model = written.model.as_deref().unwrap_or(""),
            segments,
            messages,
            "summary written"
        );
        if let Err(err) = hub
            .publish_room(
                room_id,
                RoomEvent::Summary {
                    summary: summary.clone(),
                },
            )
            .await
        {
            // Stored all the same: members read it with GET …/summaries.
            tracing::error!(room_id, error = %err, "could not publish a summary");
        }
        let delivery = match &self.telegram {
            None => Delivery::Disabled,
            Some(telegram) => {
                let title = format!("{} — meeting summary", input.room_name);
                telegram
                    .deliver(store, room_id, user_id, &title, &summary.text)
                    .await?
            }
        };
        Ok(Outcome {
            summary,
            created: true,
            delivery,
        })
    }

    /// Finds (and if it runs, stops) the session a trigger summarises.
    async fn session_to_summarise(
        &self,
        deps: Deps<'_>,
        room: &RoomRow,
        role: Option<Role>,
        user_id: i64,
    ) -> Result<AgentSessionRow> {
        let room_id = room.id;
        let Deps {
            store,
            hub,
            transcription,
        } = deps;
        let now = now_millis();
        match store.latest_agent_session(room_id).await? {
            Some(open) if open.ended_at.is_none() => {
                let own = open.started_by == Some(user_id)
                    || transcription.started_by(room_id) == Some(user_id);
                authorize(role, Action::StopTranscription { own })?;
                // The session ends when the stop came; speech from before it that is still
                // in whisper is waited for (bounded), chat after it belongs to the next one.
                let ended = store.end_agent_session(open.id, now).await?;
                let unfinished = transcription
                    .finish(hub, room_id, user_id, self.settings.flush_timeout)
                    .await?;
                if let Some(n) = unfinished.filter(|n| *n > 0) {
                    tracing::warn!(
                        room_id,
                        unfinished = n,
                        "summarising without speech the transcriber had not finished"
                    );
                }
                Ok(ended.unwrap_or(open))
            }
            Some(ended) => Ok(ended),
            None => Ok(store
                .insert_ended_session(room_id, user_id, room.created_at, now)
                .await?),
        }
    }

    async fn input_of(
        &self,
        store: &Store,
        session: &AgentSessionRow,
        room_name: String,
    ) -> Result<SummaryInput> {
        let ended_at = session.ended_at.unwrap_or_else(now_millis);
        let utterances = store
            .session_transcript(session.id, TRANSCRIPT_LIMIT)
            .await?
            .into_iter()
            .map(|s| Line {
                speaker: s.username,
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                text: s.text,
            })
            .collect();
        let chat = store
            .chat_between(
                session.room_id,
                session.started_at,
                ended_at,
                i64::from(self.settings.max_messages),
            )
            .await?
            .into_iter()
            .map(|m| Line {
                speaker: m.username,
                start_ms: m.created_at,
                end_ms: m.created_at,
                text: m.body,
            })
            .collect();
        Ok(SummaryInput {
            room_name,
            started_at: session.started_at,
            ended_at,
            utterances,
            chat,
        })
    }

    /// The model's summary, or the heuristic when the content is short, no model is
    /// configured, or the model (and its fallback) failed.
    async fn write(&self, store: &Store, user_id: i64, input: &SummaryInput) -> Written {
        let heuristic = |reason| Written {
            source: "heuristic",
            model: None,
            reason: Some(reason),
            text: heuristic_summary(&input.utterances, &input.chat, reason),
        };
        if input.content_chars() < self.settings.min_chars {
            return heuristic(HeuristicReason::Short);
        }
        let Some(model) = &self.model else {
            return heuristic(HeuristicReason::NoProvider);
        };
        match store
            .take_ai_summary_budget(user_id, model.per_user_per_hour(), now_millis())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                metrics::counter!("ai_requests_refused_total", "reason" => "user_budget")
                    .increment(1);
                tracing::info!(
                    user_id,
                    "AI summary budget spent this hour; writing the heuristic summary"
                );
                return heuristic(HeuristicReason::Limited);
            }
            Err(err) => {
                // Unknown spend: don't call the paid model on a guess.
                tracing::error!(user_id, error = %err, "AI summary budget unreadable; writing the heuristic summary");
                return heuristic(HeuristicReason::Limited);
            }
        }
        let system = match prompts::system_prompt_for(store, user_id).await {
            Ok(prompt) => prompt,
            Err(err) => {
                tracing::error!(error = %err, "could not read the custom prompt; using the default");
                crate::agent::prompt::DEFAULT_PROMPT.to_owned()
            }
        };
        match model.complete(&system, &input.to_prompt()).await {
            Ok(done) => Written {
                source: "ai",
                model: Some(done.model),
                reason: None,
                text: done.text,
            },
            Err(err) => {
                tracing::warn!(error = %err, "AI summary failed; writing the heuristic summary");
                heuristic(HeuristicReason::ProviderFailed)
            }
        }
    }
}

/// The room's summaries, newest first, for a member.
///
/// # Errors
/// `not_found` for a non-member; internal errors.
pub async fn list(store: &Store, user_id: i64, room_id: i64, limit: i64) -> Result<Vec<Summary>> {
    authorize(
        store.member_role(room_id, user_id).await?,
        Action::ReadTranscript,
    )?;
    Ok(store
        .summaries(room_id, limit.clamp(1, LIST_LIMIT))
        .await?
        .into_iter()
        .map(to_wire)
        .collect())
}
