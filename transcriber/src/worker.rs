//! Whisper on dedicated OS threads behind a bounded queue with two classes of work.
//!
//! Whisper takes hundreds of milliseconds of CPU per utterance, so it never runs on the async
//! runtime: a [`Pool`] owns `workers` threads, each with its own whisper state (the model
//! weights are shared). Producers [`Queue::push`] jobs and never block.
//!
//! - **Finals** (a finished utterance, the caption people keep) always go first. When the
//!   workers fall behind, finals are dropped by what they are [`Worth`]: a speaker holds at
//!   most [`PER_SPEAKER`] queued (more drops that speaker's oldest); a full queue drops the
//!   least worth among what waits and the newcomer, the oldest of equals. Audio the room heard
//!   (in a large room, only its slots' speakers are heard) is worth more than audio it didn't,
//!   and a louder voice more than a quieter one, so an overloaded transcriber keeps the
//!   meeting's current speakers and loses side talk first. Heard finals are also taken first.
//!   Drops are counted in `transcriber_dropped_utterances_total{heard}` and
//!   `transcriber_dropped_audio_seconds`, with a log line.
//! - **Partials** (the utterance so far, while someone speaks) only use spare capacity: a
//!   worker takes one only when no final waits, a speaker has at most one queued (a newer
//!   one replaces it), one older than [`PARTIAL_MAX_AGE`] is skipped, and a partial being
//!   decoded is aborted the moment a final is queued. So an overloaded box degrades to
//!   finals only, and a final never waits behind a partial.
//!
//! Every pushed job reaches its sink exactly once (done, dropped or skipped), so a producer
//! can count what is in flight. [`Worker::try_execute_task`] runs one queued job on the
//! caller's thread, so tests can drive the pool step by step.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::language::{Detected, LanguageRequest};
use crate::segment::{Segment, Speaker};
use crate::vad::Utterance;
use crate::whisper::Whisper;
use crate::Error;

/// Queued finals per speaker before that speaker's oldest is dropped: one being
/// transcribed soon and one behind it; more only adds latency.
pub const PER_SPEAKER: usize = 2;
/// A partial that waited longer than this is out of date: the next one is coming.
pub const PARTIAL_MAX_AGE: Duration = Duration::from_millis(1000);

/// Where a finished job goes (called on the worker thread, or on the pushing thread for a
/// dropped or replaced job; must not block).
pub type SegmentSink = Arc<dyn Fn(Transcribed) + Send + Sync>;

/// A finished utterance, or the utterance so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Final,
    Partial,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Final => "final",
            Self::Partial => "partial",
        }
    }
}

/// One utterance to transcribe.
pub struct Job {
    pub speaker: Speaker,
    pub kind: JobKind,
    pub utterance: Utterance,
    pub language: LanguageRequest,
    pub enqueued: Instant,
    /// Whether the room heard this audio (see [`Worth`]).
    pub heard: bool,
    pub sink: SegmentSink,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("speaker", &self.speaker)
            .field("kind", &self.kind)
            .field("start", &self.utterance.start)
            .field("samples", &self.utterance.samples.len())
            .finish_non_exhaustive()
    }
}

/// What became of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Whisper ran; `segment` holds the words, if any passed the guard.
    Done,
    /// A final the queue dropped unheard because the workers were behind.
    Dropped,
    /// A partial not run to the end: replaced by a newer one, out of date, or aborted for
    /// a final.
    Skipped,
}

/// A finished job: the segment (`None` without words) and what it cost.
#[derive(Debug, Clone)]
pub struct Transcribed {
    pub speaker: Speaker,
    pub kind: JobKind,
    /// The utterance's first sample on the track's 16 kHz clock (ties a partial to its final).
    pub utterance_start: u64,
    pub segment: Option<Segment>,
    pub outcome: Outcome,
    /// The language it was decoded in.
    pub language: Option<String>,
    /// A language detection, when the job asked for one.
    pub detected: Option<Detected>,
    /// Time spent waiting in the queue.
    pub queued: Duration,
    /// Time whisper took.
    pub took: Duration,
    /// Length of the audio.
    pub audio: Duration,
}

impl Transcribed {
    fn unheard(job: &Job, outcome: Outcome) -> Self {
        Self {
            speaker: job.speaker,
            kind: job.kind,
            utterance_start: job.utterance.start,
            segment: None,
            outcome,
            language: None,
            detected: None,
            queued: job.enqueued.elapsed(),
            took: Duration::ZERO,
            audio: audio_of(&job.utterance),
        }
    }
}

fn audio_of(u: &Utterance) -> Duration {
    Duration::from_secs_f64(u.samples.len() as f64 / f64::from(crate::WHISPER_RATE))
}

/// The bounded queue between the pipelines and the workers.
#[derive(Debug)]
pub struct Queue {
    inner: Mutex<Inner>,
    ready: Condvar,
    capacity: usize,
    dropped: AtomicU64,
    /// Finals waiting: a running partial's abort signal.
    finals_waiting: AtomicUsize,
}

#[derive(Debug, Default)]
struct Inner {
    finals: VecDeque<(Worth, Job)>,
    partials: VecDeque<Job>,
    closed: bool,
}

/// How much a final is worth keeping when the workers are behind: audio the room heard before
/// audio it didn't, then the louder in [`LEVEL_STEP_DB`] steps, so voices at a normal
/// speaking level count as equals (and the oldest of them goes first, as it is the latest
/// caption already).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Worth {
    heard: bool,
    level_step: i32,
}

/// Loudness steps of [`Worth`]: speech levels within this many dB are treated as equal.
pub const LEVEL_STEP_DB: f32 = 6.0;

impl Worth {
    pub fn of(heard: bool, samples: &[f32]) -> Self {
        Self {
            heard,
            level_step: level_step(samples),
        }
    }
}

/// The utterance's RMS level in [`LEVEL_STEP_DB`] steps of dBFS (digital silence lowest).
fn level_step(samples: &[f32]) -> i32 {
    if samples.is_empty() {
        return i32::MIN;
    }
    let power = samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64;
    if power <= 0.0 {
        return i32::MIN;
    }
    let db = 10.0 * power.log10();
    (db / f64::from(LEVEL_STEP_DB)).floor() as i32
}

/// Jobs taken out of the queue unheard, reported to their sinks after the lock is released.
#[derive(Default)]
struct Unheard {
    dropped: Vec<Job>,
    skipped: Vec<Job>,
}

impl Unheard {
    fn report(self, queue: &Queue) -> usize {
        for old in &self.dropped {
            let seconds = audio_of(&old.utterance).as_secs_f64();
            queue.dropped.fetch_add(1, Ordering::Relaxed);
            let heard = if old.heard { "true" } else { "false" };
            metrics::counter!("transcriber_dropped_utterances_total", "heard" => heard)
                .increment(1);
            metrics::histogram!("transcriber_dropped_audio_seconds").record(seconds);
            tracing::warn!(
                participant_id = old.speaker.participant,
                seconds,
                heard = old.heard,
                "transcriber behind: dropped queued audio"
            );
        }
        let dropped = self.dropped.len();
        for old in self.dropped {
            (old.sink)(Transcribed::unheard(&old, Outcome::Dropped));
        }
        for old in self.skipped {
            metrics::counter!("transcriber_partials_total", "outcome" => "skipped").increment(1);
            (old.sink)(Transcribed::unheard(&old, Outcome::Skipped));
        }
        dropped
    }
}

impl Queue {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            finals_waiting: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking worker can't leave the deques inconsistent: keep going.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Enqueues a job. A final replaces the speaker's queued partial; if the speaker's share
    /// is full it drops that speaker's oldest final, and if the queue is full the final of
    /// least [`Worth`] (itself, if it is worth less than all that wait). A partial replaces
    /// the speaker's queued partial. Returns how many finals were dropped. Never blocks on the
    /// workers.
    pub fn push(&self, job: Job) -> usize {
        // Measured before taking the lock (a pass over the samples), and only for finals:
        // partials are never dropped for room, only replaced.
        let worth =
            (job.kind == JobKind::Final).then(|| Worth::of(job.heard, &job.utterance.samples));
        let mut unheard = Unheard::default();
        {
            let mut inner = self.lock();
            let speaker = job.speaker;
            if let Some(i) = inner.partials.iter().position(|j| j.speaker == speaker) {
                if let Some(old) = inner.partials.remove(i) {
                    unheard.skipped.push(old);
                }
            }
            match worth {
                None => inner.partials.push_back(job),
                Some(worth) => {
                    self.admit_final(&mut inner, worth, job, &mut unheard);
                    self.finals_waiting
                        .store(inner.finals.len(), Ordering::Relaxed);
                }
            }
        }
        self.ready.notify_one();
        unheard.report(self)
    }

    /// Queues a final, first making room: the speaker's own oldest if its share is full,
    /// else, in a full queue, the least worth waiting (the oldest of equals), unless the
    /// newcomer is worth less than all of them, which is then the one dropped.
    fn admit_final(&self, inner: &mut Inner, worth: Worth, job: Job, unheard: &mut Unheard) {
        let speaker = job.speaker;
        let own: Vec<usize> = (0..inner.finals.len())
            .filter(|i| inner.finals[*i].1.speaker == speaker)
            .collect();
        let victim = if own.len() >= PER_SPEAKER {
            own.first().copied()
        } else if inner.finals.len() >= self.capacity {
            let least = (0..inner.finals.len()).min_by_key(|i| (inner.finals[*i].0, *i));
            if least.is_some_and(|i| inner.finals[i].0 > worth) {
                unheard.dropped.push(job);
                return;
            }
            least
        } else {
            None
        };
        if let Some((_, old)) = victim.and_then(|i| inner.finals.remove(i)) {
            unheard.dropped.push(old);
        }
        inner.finals.push_back((worth, job));
    }

    /// Finals dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Jobs waiting, finals and partials.
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.finals.len() + inner.partials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops the workers once the finals are done (waiting partials are skipped).
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// The next job: the oldest final the room heard, else the oldest final, else a partial
    /// that isn't out of date.
    fn next(inner: &mut Inner, unheard: &mut Unheard, queue: &Queue) -> Option<Job> {
        let first = inner.finals.iter().position(|(w, _)| w.heard).unwrap_or(0);
        if let Some((_, job)) = inner.finals.remove(first) {
            queue
                .finals_waiting
                .store(inner.finals.len(), Ordering::Relaxed);
            return Some(job);
        }
        while let Some(job) = inner.partials.pop_front() {
            if inner.closed || job.enqueued.elapsed() > PARTIAL_MAX_AGE {
                unheard.skipped.push(job);
            } else {
                return Some(job);
            }
        }
        None
    }

    fn try_pop(&self) -> Option<Job> {
        let mut unheard = Unheard::default();
        let job = Self::next(&mut self.lock(), &mut unheard, self);
        unheard.report(self);
        job
    }

    fn pop_blocking(&self) -> Option<Job> {
        let mut unheard = Unheard::default();
        let mut inner = self.lock();
        let job = loop {
            if let Some(job) = Self::next(&mut inner, &mut unheard, self) {
                break Some(job);
            }
            if inner.closed {
                break None;
            }
            inner = self
                .ready
                .wait(inner)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        };
        drop(inner);
        unheard.report(self);
        job
    }
}

/// One whisper state and the queue it serves.
pub struct Worker {
    whisper: Arc<Whisper>,
    state: whisper_rs::WhisperState,
    queue: Arc<Queue>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl Worker {
    /// # Errors
    /// [`Error::Whisper`] if the state can't be allocated.
    pub fn new(whisper: Arc<Whisper>, queue: Arc<Queue>) -> Result<Self, Error> {
        Ok(Self {
            state: whisper.state()?,
            whisper,
            queue,
        })
    }

    /// See [`Whisper::warm_up`].
    ///
    /// # Errors
    /// As [`Whisper::warm_up`].
    pub fn warm_up(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        self.whisper.warm_up(&mut self.state)?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            "whisper worker warmed up"
        );
        Ok(())
    }

    /// Runs one queued job on this thread, if there is one; `None` when the queue is empty.
    pub fn try_execute_task(&mut self) -> Option<Transcribed> {
        let job = self.queue.try_pop()?;
        Some(self.execute(job))
    }

    fn execute(&mut self, job: Job) -> Transcribed {
        let started = Instant::now();
        let queued = started.duration_since(job.enqueued);
        let audio = audio_of(&job.utterance);
        let kind = job.kind;
        if kind == JobKind::Partial && self.queue.finals_waiting.load(Ordering::Relaxed) > 0 {
            let out = Transcribed::unheard(&job, Outcome::Skipped);
            metrics::counter!("transcriber_partials_total", "outcome" => "skipped").increment(1);
            (job.sink)(out.clone());
            return out;
        }
        let abort = (kind == JobKind::Partial).then_some(&self.queue.finals_waiting);
        let heard = self.whisper.transcribe(
            &mut self.state,
            &job.utterance.samples,
            &job.language,
            abort,
        );
        let took = started.elapsed();
        let (outcome, heard) = match heard {
            Ok(heard) => (Outcome::Done, Some(heard)),
            Err(_) if abort.is_some_and(|a| a.load(Ordering::Relaxed) > 0) => {
                (Outcome::Skipped, None)
            }
            Err(err) => {
                tracing::error!(error = %err, participant_id = job.speaker.participant, "whisper failed on an utterance");
                (Outcome::Done, None)
            }
        };
        let label = kind.as_str();
        match (kind, outcome) {
            (JobKind::Final, _) => {
                metrics::counter!("transcriber_utterances_total").increment(1);
                if audio > Duration::ZERO {
                    metrics::histogram!("transcriber_real_time_factor")
                        .record(took.as_secs_f64() / audio.as_secs_f64());
                }
            }
            (JobKind::Partial, Outcome::Skipped) => {
                metrics::counter!("transcriber_partials_total", "outcome" => "aborted")
                    .increment(1);
            }
            (JobKind::Partial, _) => {
                metrics::counter!("transcriber_partials_total", "outcome" => "run").increment(1);
            }
        }
        metrics::histogram!("transcriber_whisper_seconds", "kind" => label)
            .record(took.as_secs_f64());
        metrics::histogram!("transcriber_queue_wait_seconds", "kind" => label)
            .record(queued.as_secs_f64());
        let (language, detected) = heard
            .as_ref()
            .map_or((None, None), |h| (h.language.clone(), h.detected.clone()));
        let segment = heard.filter(|h| !h.text.is_empty()).map(|h| Segment {
            speaker: job.speaker,
            start_ms: job.utterance.start_ms(),
            end_ms: job.utterance.end_ms(),
            text: h.text,
        });
        let out = Transcribed {
            speaker: job.speaker,
            kind,
            utterance_start: job.utterance.start,
            segment,
            outcome,
            language,
            detected,
            queued,
            took,
            audio,
        };
        (job.sink)(out.clone());
        out
    }
}

/// Worker threads over one queue. Dropping the pool closes the queue and joins the threads
/// after they finish what is queued.
pub struct Pool {
    queue: Arc<Queue>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts `workers` threads over a queue of `capacity` utterances. (Tests drive a
    /// [`Worker`] of their own with [`Worker::try_execute_task`].)
    ///
    /// # Errors
    /// [`Error::Whisper`] if a worker's state can't be allocated, [`Error::Io`] if a thread
    /// can't be spawned.
    pub fn start(whisper: Arc<Whisper>, workers: usize, capacity: usize) -> Result<Self, Error> {
        let queue = Queue::new(capacity);
        let mut threads = Vec::with_capacity(workers);
        for n in 0..workers {
            let mut worker = Worker::new(whisper.clone(), queue.clone())?;
            let queue = queue.clone();
            let handle = std::thread::Builder::new()
                .name(format!("whisper-{n}"))
                .spawn(move || {
                    if let Err(err) = worker.warm_up() {
                        tracing::warn!(error = %err, "whisper warm-up failed");
                    }
                    while let Some(job) = queue.pop_blocking() {
                        worker.execute(job);
                    }
                })?;
            threads.push(handle);
        }
        Ok(Self { queue, threads })
    }

    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.queue.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_of(kind: JobKind, participant: u64, start: u64) -> Job {
        Job {
            speaker: Speaker {
                participant,
                user: participant as i64,
            },
            kind,
            utterance: Utterance {
                start,
                samples: vec![0.0; 16_000],
            },
            language: LanguageRequest::Fixed("en".to_owned()),
            enqueued: Instant::now(),
            heard: true,
            sink: Arc::new(|_| {}),
        }
    }

    fn job(participant: u64, start: u64) -> Job {
        job_of(JobKind::Final, participant, start)
    }

    fn queued(q: &Queue) -> Vec<(u64, u64)> {
        q.lock()
            .finals
            .iter()
            .map(|(_, j)| (j.speaker.participant, j.utterance.start))
            .collect()
    }

    type Seen = Arc<Mutex<Vec<(u64, JobKind, Outcome)>>>;

    fn logged(mut job: Job, seen: &Seen) -> Job {
        let log = seen.clone();
        job.sink = Arc::new(move |t: Transcribed| {
            log.lock()
                .expect("lock")
                .push((t.speaker.participant, t.kind, t.outcome));
        });
        job
    }

    #[test]
    fn a_speaker_over_its_share_loses_its_oldest_audio_only() {
        let q = Queue::new(10);
        assert_eq!(q.push(job(1, 0)), 0);
        assert_eq!(q.push(job(2, 0)), 0);
        assert_eq!(q.push(job(1, 1)), 0);
        assert_eq!(q.push(job(1, 2)), 1);
        assert_eq!(queued(&q), vec![(2, 0), (1, 1), (1, 2)]);
        assert_eq!(q.dropped(), 1);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let q = Queue::new(2);
        q.push(job(1, 0));
        q.push(job(2, 0));
        assert_eq!(q.push(job(3, 0)), 1);
        assert_eq!(queued(&q), vec![(2, 0), (3, 0)]);
        assert_eq!(q.dropped(), 1);
    }

    /// A final of a 300 Hz tone at `amplitude`, heard by the room or not.
    fn spoken(participant: u64, start: u64, amplitude: f32, heard: bool) -> Job {
        let mut j = job(participant, start);
        j.utterance.samples = (0..16_000)
            .map(|i| amplitude * (i as f32 * 300.0 / 16_000.0 * std::f32::consts::TAU).sin())
            .collect();
        j.heard = heard;
        j
    }

    #[test]
    fn a_full_queue_drops_what_the_room_did_not_hear_before_what_it_heard() {
        let q = Queue::new(3);
        q.push(spoken(1, 0, 0.3, true));
        q.push(spoken(2, 0, 0.3, false));
        q.push(spoken(3, 0, 0.3, true));
        assert_eq!(q.push(spoken(4, 0, 0.3, true)), 1);
        assert_eq!(queued(&q), vec![(1, 0), (3, 0), (4, 0)]);
    }

    #[test]
    fn a_full_queue_drops_the_quietest_voice_and_the_oldest_of_equals() {
        let q = Queue::new(3);
        q.push(spoken(1, 0, 0.3, true));
        // -40 dB below the others: side talk, a far-away microphone.
        q.push(spoken(2, 0, 0.003, true));
        q.push(spoken(3, 0, 0.25, true));
        q.push(spoken(4, 0, 0.3, true));
        assert_eq!(
            queued(&q),
            vec![(1, 0), (3, 0), (4, 0)],
            "the quiet one went"
        );
        q.push(spoken(5, 0, 0.28, true));
        assert_eq!(
            queued(&q),
            vec![(3, 0), (4, 0), (5, 0)],
            "within a few dB, the oldest goes, as before"
        );
    }

    #[test]
    fn a_newcomer_worth_less_than_all_that_wait_is_the_one_dropped() {
        let seen = Seen::default();
        let q = Queue::new(2);
        q.push(spoken(1, 0, 0.3, true));
        q.push(spoken(2, 0, 0.3, true));
        assert_eq!(q.push(logged(spoken(3, 0, 0.3, false), &seen)), 1);
        assert_eq!(queued(&q), vec![(1, 0), (2, 0)]);
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![(3, JobKind::Final, Outcome::Dropped)],
            "its producer still hears back"
        );
    }

    #[test]
    fn a_speaker_over_its_share_loses_its_own_oldest_even_when_heard_less() {
        let q = Queue::new(10);
        q.push(spoken(1, 0, 0.3, false));
        q.push(spoken(1, 1, 0.3, false));
        q.push(spoken(1, 2, 0.3, false));
        assert_eq!(queued(&q), vec![(1, 1), (1, 2)]);
    }

    #[test]
    fn heard_finals_are_transcribed_before_unheard_ones() {
        let q = Queue::new(10);
        q.push(spoken(1, 0, 0.3, false));
        q.push(spoken(2, 0, 0.3, true));
        let order: Vec<u64> = std::iter::from_fn(|| q.try_pop())
            .map(|j| j.speaker.participant)
            .collect();
        assert_eq!(order, vec![2, 1]);
    }

    #[test]
    fn a_dropped_job_still_reaches_its_sink_marked_dropped() {
        let seen = Seen::default();
        let q = Queue::new(1);
        q.push(logged(job(1, 0), &seen));
        q.push(job(2, 0));
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![(1, JobKind::Final, Outcome::Dropped)]
        );
    }

    #[test]
    fn finals_go_before_partials_whatever_the_order_they_came_in() {
        let q = Queue::new(10);
        q.push(job_of(JobKind::Partial, 1, 0));
        q.push(job(2, 0));
        assert_eq!(q.try_pop().map(|j| j.kind), Some(JobKind::Final));
        assert_eq!(q.try_pop().map(|j| j.kind), Some(JobKind::Partial));
        assert!(q.try_pop().is_none());
    }

    #[test]
    fn a_newer_partial_or_the_final_replaces_the_speakers_queued_partial() {
        let seen = Seen::default();
        let q = Queue::new(10);
        q.push(logged(job_of(JobKind::Partial, 1, 0), &seen));
        q.push(logged(job_of(JobKind::Partial, 1, 0), &seen));
        q.push(logged(job_of(JobKind::Partial, 2, 0), &seen));
        q.push(logged(job(2, 0), &seen));
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![
                (1, JobKind::Partial, Outcome::Skipped),
                (2, JobKind::Partial, Outcome::Skipped)
            ]
        );
        assert_eq!(
            q.len(),
            2,
            "speaker 1's newest partial and speaker 2's final"
        );
        assert_eq!(q.finals_waiting.load(Ordering::Relaxed), 1);
        q.try_pop();
        assert_eq!(q.finals_waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_out_of_date_partial_is_skipped_not_run() {
        let seen = Seen::default();
        let q = Queue::new(10);
        let mut old = logged(job_of(JobKind::Partial, 1, 0), &seen);
        old.enqueued = Instant::now() - PARTIAL_MAX_AGE - Duration::from_millis(1);
        q.push(old);
        assert!(q.try_pop().is_none());
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![(1, JobKind::Partial, Outcome::Skipped)]
        );
    }

    #[test]
    fn a_closed_queue_lets_blocked_workers_go() {
        let q = Queue::new(2);
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.pop_blocking().is_none());
        q.close();
        assert!(t.join().expect("joins"));
    }
}
