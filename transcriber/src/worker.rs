//! Whisper on dedicated OS threads behind a bounded queue.
//!
//! Whisper takes hundreds of milliseconds of CPU per utterance, so it never runs on the async
//! runtime: a [`Pool`] owns `workers` threads, each with its own whisper state (the model
//! weights are shared). Producers [`Queue::push`] utterances and never block. When the
//! workers fall behind, the queue drops audio oldest-first *per speaker* (a speaker holds at
//! most [`PER_SPEAKER`] queued utterances; a full queue drops the pushing speaker's oldest,
//! else the oldest overall) and counts it in `transcriber_dropped_utterances_total` and
//! `transcriber_dropped_audio_seconds_total`, with a log line. [`Worker::try_execute_task`]
//! runs one queued job on the caller's thread, so tests can drive the pool step by step.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::segment::{Segment, Speaker};
use crate::vad::Utterance;
use crate::Error;

/// Queued utterances per speaker before that speaker's oldest is dropped: one being
/// transcribed soon and one behind it; more only adds latency.
pub const PER_SPEAKER: usize = 2;

/// Where a finished job goes (called on the worker thread, or on the pushing thread for a
/// dropped job; must not block). Every pushed job reaches its sink exactly once, so a
/// producer can count what is still in flight.
pub type SegmentSink = Arc<dyn Fn(Transcribed) + Send + Sync>;

/// One utterance to transcribe.
pub struct Job {
    pub speaker: Speaker,
    pub utterance: Utterance,
    pub enqueued: Instant,
    pub sink: SegmentSink,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("speaker", &self.speaker)
            .field("start", &self.utterance.start)
            .field("samples", &self.utterance.samples.len())
            .finish_non_exhaustive()
    }
}

/// A finished job: the segment (`None` when whisper heard no words, or the job was dropped)
/// and what it cost.
#[derive(Debug, Clone)]
pub struct Transcribed {
    pub speaker: Speaker,
    pub segment: Option<Segment>,
    /// The queue dropped it unheard because the workers were behind.
    pub dropped: bool,
    /// Time spent waiting in the queue.
    pub queued: Duration,
    /// Time whisper took.
    pub took: Duration,
    /// Length of the audio.
    pub audio: Duration,
}

/// The bounded, drop-oldest queue between the pipelines and the workers.
#[derive(Debug)]
pub struct Queue {
    inner: Mutex<Inner>,
    ready: Condvar,
    capacity: usize,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl Queue {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking worker can't leave the deque inconsistent: keep going.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Enqueues a job, dropping older audio if the queue or the speaker's share is full.
    /// Returns how many queued jobs were dropped. Never blocks on the workers.
    pub fn push(&self, job: Job) -> usize {
        let mut dropped = Vec::new();
        {
            let mut inner = self.lock();
            let speaker = job.speaker;
            let mine = inner.jobs.iter().filter(|j| j.speaker == speaker).count();
            if mine >= PER_SPEAKER || inner.jobs.len() >= self.capacity {
                let victim = inner
                    .jobs
                    .iter()
                    .position(|j| j.speaker == speaker)
                    .unwrap_or(0);
                if let Some(old) = inner.jobs.remove(victim) {
                    dropped.push(old);
                }
            }
            inner.jobs.push_back(job);
        }
        self.ready.notify_one();
        for old in &dropped {
            let seconds = old.utterance.samples.len() as f64 / f64::from(crate::WHISPER_RATE);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("transcriber_dropped_utterances_total").increment(1);
            metrics::histogram!("transcriber_dropped_audio_seconds").record(seconds);
            tracing::warn!(
                participant_id = old.speaker.participant,
                seconds,
                "transcriber behind: dropped the speaker's oldest queued audio"
            );
        }
        let count = dropped.len();
        for old in dropped {
            (old.sink)(Transcribed {
                speaker: old.speaker,
                segment: None,
                dropped: true,
                queued: old.enqueued.elapsed(),
                took: Duration::ZERO,
                audio: Duration::from_secs_f64(
                    old.utterance.samples.len() as f64 / f64::from(crate::WHISPER_RATE),
                ),
            });
        }
        count
    }

    /// Utterances dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops the workers once the queue is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn try_pop(&self) -> Option<Job> {
        self.lock().jobs.pop_front()
    }

    fn pop_blocking(&self) -> Option<Job> {
        let mut inner = self.lock();
        loop {
            if let Some(job) = inner.jobs.pop_front() {
                return Some(job);
            }
            if inner.closed {
                return None;
            }
            inner = self
                .ready
                .wait(inner)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Decoding choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhisperConfig {
    /// An ISO 639-1 code, or `None` to detect per utterance.
    pub language: Option<String>,
    /// Threads per worker.
    pub threads: usize,
}

/// A loaded model, shared by the workers.
pub struct Whisper {
    ctx: WhisperContext,
    config: WhisperConfig,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The encoder window for `samples` of 16 kHz audio: whisper's encoder sees 50 positions a
/// second and by default always a 30 s window (1500). Short utterances get a window just
/// covering them plus 1.3 s, never under 384 (7.68 s), where accuracy starts to suffer: at
/// 384 a 5 s utterance costs ~0.7 s on 2 cores instead of ~2.5 s.
pub fn audio_ctx_for(samples: usize) -> i32 {
    let needed = samples.div_ceil(320) + 64;
    let rounded = needed.div_ceil(64) * 64;
    rounded.clamp(384, 1500) as i32
}

/// Whisper's output for audio with no words in it.
fn is_noise(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || (t.starts_with('[') && t.ends_with(']'))
        || (t.starts_with('(') && t.ends_with(')'))
        || t.chars().all(|c| !c.is_alphanumeric())
}

impl Whisper {
    /// Loads a ggml model file.
    ///
    /// # Errors
    /// [`Error::Model`] if the file is missing or not a whisper.cpp model.
    pub fn load(path: &Path, config: WhisperConfig) -> Result<Self, Error> {
        install_logging();
        if !path.is_file() {
            return Err(Error::Model {
                path: path.display().to_string(),
                reason: "no such file".to_owned(),
            });
        }
        let params = WhisperContextParameters {
            use_gpu: cfg!(feature = "cuda"),
            // On the GPU flash attention cut a 6 s utterance from 89 to 63 ms on an H100 with
            // the same words (bench/reports/whisper-cuda.md); on this project's CPUs it was
            // slower, so it stays off there.
            flash_attn: cfg!(feature = "cuda"),
            ..Default::default()
        };
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| Error::Model {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { ctx, config })
    }

    /// Logs whisper.cpp's own timings (encode, decode, ...) at info level.
    pub fn log_timings(&self) {
        self.ctx.print_timings();
    }

    pub fn config(&self) -> &WhisperConfig {
        &self.config
    }

    /// A fresh decoding state (one per worker thread).
    ///
    /// # Errors
    /// [`Error::Whisper`] if whisper.cpp can't allocate it.
    pub fn state(&self) -> Result<whisper_rs::WhisperState, Error> {
        Ok(self.ctx.create_state()?)
    }

    /// Transcribes 16 kHz mono audio into text (empty when there are no words).
    ///
    /// # Errors
    /// [`Error::Whisper`] when whisper.cpp fails.
    pub fn transcribe(
        &self,
        state: &mut whisper_rs::WhisperState,
        samples: &[f32],
    ) -> Result<String, Error> {
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_language(Some(self.config.language.as_deref().unwrap_or("auto")));
        params.set_n_threads(self.config.threads.max(1) as i32);
        params.set_no_context(true);
        params.set_single_segment(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_no_timestamps(true);
        params.set_suppress_blank(true);
        // Fallback re-decodes at higher temperature multiply the cost; greedy once is the
        // latency budget.
        params.set_temperature_inc(0.0);
        params.set_audio_ctx(audio_ctx_for(samples.len()));
        // whisper.cpp refuses under 1 s of audio: pad short utterances with silence.
        let min = crate::WHISPER_RATE as usize * 11 / 10;
        let padded;
        let input = if samples.len() < min {
            let mut p = samples.to_vec();
            p.resize(min, 0.0);
            padded = p;
            &padded[..]
        } else {
            samples
        };
        state.full(params, input)?;
        let mut text = String::new();
        for segment in state.as_iter() {
            if let Ok(s) = segment.to_str_lossy() {
                text.push_str(&s);
            }
        }
        let text = text.trim().to_owned();
        Ok(if is_noise(&text) { String::new() } else { text })
    }
}

fn install_logging() {
    // whisper.cpp logs every model load and decode to stderr; route it through `tracing`.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(whisper_rs::install_logging_hooks);
}

/// Per-worker counters, for the real-time factor.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub jobs: AtomicU64,
    pub audio_us: AtomicU64,
    pub busy_us: AtomicU64,
}

impl WorkerStats {
    /// Busy time over audio time: under 1.0 the worker keeps up with one speaker.
    pub fn real_time_factor(&self) -> Option<f64> {
        let audio = self.audio_us.load(Ordering::Relaxed);
        (audio > 0).then(|| self.busy_us.load(Ordering::Relaxed) as f64 / audio as f64)
    }
}

/// One whisper state and the queue it serves.
pub struct Worker {
    whisper: Arc<Whisper>,
    state: whisper_rs::WhisperState,
    queue: Arc<Queue>,
    stats: Arc<WorkerStats>,
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
            stats: Arc::new(WorkerStats::default()),
        })
    }

    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Runs one queued job on this thread, if there is one; `None` when the queue is empty.
    pub fn try_execute_task(&mut self) -> Option<Transcribed> {
        let job = self.queue.try_pop()?;
        Some(self.execute(job))
    }

    fn execute(&mut self, job: Job) -> Transcribed {
        let started = Instant::now();
        let queued = started.duration_since(job.enqueued);
        let audio = Duration::from_secs_f64(
            job.utterance.samples.len() as f64 / f64::from(crate::WHISPER_RATE),
        );
        let text = match self
            .whisper
            .transcribe(&mut self.state, &job.utterance.samples)
        {
            Ok(text) => text,
            Err(err) => {
                tracing::error!(error = %err, participant_id = job.speaker.participant, "whisper failed on an utterance");
                String::new()
            }
        };
        let took = started.elapsed();
        self.stats.jobs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .audio_us
            .fetch_add(audio.as_micros() as u64, Ordering::Relaxed);
        self.stats
            .busy_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        metrics::counter!("transcriber_utterances_total").increment(1);
        metrics::histogram!("transcriber_whisper_seconds").record(took.as_secs_f64());
        if audio > Duration::ZERO {
            metrics::histogram!("transcriber_real_time_factor")
                .record(took.as_secs_f64() / audio.as_secs_f64());
        }
        metrics::histogram!("transcriber_queue_wait_seconds").record(queued.as_secs_f64());
        let segment = (!text.is_empty()).then(|| Segment {
            speaker: job.speaker,
            start_ms: job.utterance.start_ms(),
            end_ms: job.utterance.end_ms(),
            text,
        });
        let out = Transcribed {
            speaker: job.speaker,
            segment,
            dropped: false,
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
    whisper: Arc<Whisper>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<Arc<WorkerStats>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts `workers` threads (0 is allowed: drive it with [`Pool::worker`] and
    /// [`Worker::try_execute_task`]) over a queue of `capacity` utterances.
    ///
    /// # Errors
    /// [`Error::Whisper`] if a worker's state can't be allocated, [`Error::Io`] if a thread
    /// can't be spawned.
    pub fn start(whisper: Arc<Whisper>, workers: usize, capacity: usize) -> Result<Self, Error> {
        let queue = Queue::new(capacity);
        let mut threads = Vec::with_capacity(workers);
        let mut stats = Vec::with_capacity(workers);
        for n in 0..workers {
            let mut worker = Worker::new(whisper.clone(), queue.clone())?;
            stats.push(worker.stats());
            let queue = queue.clone();
            let handle = std::thread::Builder::new()
                .name(format!("whisper-{n}"))
                .spawn(move || {
                    while let Some(job) = queue.pop_blocking() {
                        worker.execute(job);
                    }
                })?;
            threads.push(handle);
        }
        Ok(Self {
            queue,
            whisper,
            threads,
            stats,
        })
    }

    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    pub fn whisper(&self) -> &Arc<Whisper> {
        &self.whisper
    }

    /// A worker over this pool's queue that runs only when the caller asks.
    ///
    /// # Errors
    /// As [`Worker::new`].
    pub fn worker(&self) -> Result<Worker, Error> {
        Worker::new(self.whisper.clone(), self.queue.clone())
    }

    /// Each thread's counters.
    pub fn stats(&self) -> &[Arc<WorkerStats>] {
        &self.stats
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

    fn job(participant: u64, start: u64) -> Job {
        Job {
            speaker: Speaker {
                participant,
                user: participant as i64,
            },
            utterance: Utterance {
                start,
                samples: vec![0.0; 16_000],
            },
            enqueued: Instant::now(),
            sink: Arc::new(|_| {}),
        }
    }

    fn queued(q: &Queue) -> Vec<(u64, u64)> {
        q.lock()
            .jobs
            .iter()
            .map(|j| (j.speaker.participant, j.utterance.start))
            .collect()
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

    #[test]
    fn a_dropped_job_still_reaches_its_sink_marked_dropped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let q = Queue::new(1);
        let mut first = job(1, 0);
        let log = seen.clone();
        first.sink = Arc::new(move |t: Transcribed| {
            log.lock()
                .expect("lock")
                .push((t.speaker.participant, t.dropped, t.segment.is_none()));
        });
        q.push(first);
        q.push(job(2, 0));
        assert_eq!(*seen.lock().expect("lock"), vec![(1, true, true)]);
    }

    #[test]
    fn a_closed_queue_lets_blocked_workers_go() {
        let q = Queue::new(2);
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.pop_blocking().is_none());
        q.close();
        assert!(t.join().expect("joins"));
    }

    #[test]
    fn short_utterances_get_a_small_encoder_window() {
        assert_eq!(audio_ctx_for(16_000), 384);
        assert_eq!(audio_ctx_for(16_000 * 7), 448);
        assert_eq!(audio_ctx_for(16_000 * 30), 1500);
    }

    #[test]
    fn bracketed_and_empty_outputs_are_noise() {
        assert!(is_noise(" [BLANK_AUDIO]"));
        assert!(is_noise("(music)"));
        assert!(is_noise(" ..."));
        assert!(!is_noise(" Hello."));
    }
}
