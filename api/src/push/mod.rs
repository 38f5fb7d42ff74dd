//! WebPush: notifications for users with no open tab (an invite, a DM, a room message).
//!
//! Nothing here runs on the request path but a map update and a `try_send`: [`PushService`]
//! queues a notice, and [`PushWorker`] sends it, with retries and backoff, to every browser
//! the user subscribed, so a slow or dead push service never slows chat. Notices collapse
//! per conversation: while one is queued, a newer one replaces it, and the payload carries the
//! number of unseen messages, so a user gets one notification per conversation.
//!
//! One user's endpoints can't hold up anyone else's: a send slot is held for one request
//! and given back while a delivery waits to retry, every notice has a deadline, and each
//! push host has a circuit breaker.
//!
//! - `breaker`: [`breaker::Breakers`], one circuit breaker per push host.
//! - `counts`: [`UnseenCounts`], the "3 new messages" counters.
//! - `deliver`: one encrypted POST and what its answer means ([`Delivery`]).
//! - `egress`: [`EgressPolicy`] and the resolver that keeps pushes off non-public addresses.
//! - `notice`: [`Notice`] and its payload.
//! - `stream`: [`PushStream`], the queue shared through Redis.
//! - `vapid`: [`VapidKeys`].

mod breaker;
mod counts;
mod deliver;
pub mod egress;
mod notice;
mod stream;
pub mod vapid;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use signaling::Hub;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use self::breaker::{Admit, Breakers};
pub use self::counts::UnseenCounts;
pub use self::deliver::Delivery;
pub use self::egress::{EgressError, EgressPolicy};
pub use self::notice::{Notice, Payload};
pub use self::stream::PushStream;
pub use self::vapid::VapidKeys;
use crate::db::{now_millis, PushSubscriptionRow, Store};

/// Notices waiting to be sent; beyond this they are dropped (and counted).
const QUEUE_CAPACITY: usize = 1024;
/// Requests to push services in flight at once. A slot is held for one request only.
const CONCURRENCY: usize = 16;
/// Notices being delivered at once (most of them waiting to retry, holding no slot).
const NOTICES_IN_PROGRESS: usize = 256;
/// Tries per browser before giving up on a notice.
const MAX_ATTEMPTS: u32 = 5;
/// The longest wait between tries, whatever the backoff or `Retry-After` say.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The longest a notice is tried for (an invite's, no longer than its 60 s TTL).
const MAX_DEADLINE: Duration = Duration::from_secs(120);
/// At shutdown, requests in flight get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Retry and timing knobs (`PUSH_RETRY_BASE_MS`, `PUSH_CLAIM_IDLE_SECS`,
/// `PUSH_ALLOW_PRIVATE`).
#[derive(Debug, Clone, Copy)]
pub struct PushConfig {
    /// First backoff; doubled per try.
    pub retry_base: Duration,
    pub request_timeout: Duration,
    /// How long a notice is tried for before it is given up: [`MAX_DEADLINE`], and with
    /// Redis less than the time after which another node claims it (see
    /// [`PushConfig::with_claim_idle`]), so a slow push is never sent twice.
    pub deadline: Duration,
    /// Which endpoints may be contacted.
    pub egress: EgressPolicy,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            deadline: MAX_DEADLINE,
            egress: EgressPolicy::default(),
        }
    }
}

impl PushConfig {
    /// Fits the notice deadline under the stream's re-claim time: two thirds of it, so a
    /// node has given a notice up (and acknowledged it) well before another node may take
    /// it over.
    #[must_use]
    pub fn with_claim_idle(mut self, claim_idle: Duration) -> Self {
        self.deadline = MAX_DEADLINE.min(claim_idle.mul_f64(2.0 / 3.0));
        self
    }
}

#[derive(Debug)]
enum Work {
    /// Send the queued notice of (user, tag).
    User { user_id: i64, tag: String },
    /// A room message: every member but the sender with no open tab.
    Room(RoomMessage),
}

/// A room chat message, as the push worker needs it.
#[derive(Debug, Clone)]
pub struct RoomMessage {
    pub room_id: i64,
    pub sender_id: i64,
    pub from: String,
    pub text: String,
}

type Key = (i64, String);

/// Notices per (user, tag): the latest one waiting, and which are being sent. One
/// conversation's pushes go out one at a time, so a user never sees "3 new messages"
/// replaced by a late "2 new messages".
#[derive(Debug, Default)]
struct Queue {
    /// The latest notice, its count, and (with Redis) the stream entries it stands for.
    waiting: HashMap<Key, (Notice, u32, Vec<String>)>,
    sending: HashSet<Key>,
}

#[derive(Debug)]
struct Shared {
    vapid: VapidKeys,
    counts: UnseenCounts,
    queue: Mutex<Queue>,
    /// With Redis: the shared queue every node reads.
    stream: Option<PushStream>,
    http: reqwest::Client,
    config: PushConfig,
    breakers: Breakers,
    /// Requests in flight ([`CONCURRENCY`]).
    sends: Semaphore,
}

/// The request side: cheap to clone, never waits on a push service.
#[derive(Debug, Clone)]
pub struct PushService {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Work>,
}

/// Owns the queue's receiving end; [`PushWorker::run`] sends until shutdown.
#[derive(Debug)]
pub struct PushWorker {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Work>,
    tx: mpsc::Sender<Work>,
}

impl PushService {
    /// # Errors
    /// The HTTP client's error when it can't be built.
    pub fn new(
        vapid: VapidKeys,
        counts: UnseenCounts,
        stream: Option<PushStream>,
        config: PushConfig,
    ) -> Result<(Self, PushWorker), reqwest::Error> {
        // No redirects (a push service never needs one, and a redirect would be a second,
        // unchecked destination) and no proxy from the environment (a proxy would resolve
        // the endpoint itself, out of reach of the address check).
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(egress::PublicResolver::new(config.egress)))
            .build()?;
        let shared = Arc::new(Shared {
            vapid,
            counts,
            queue: Mutex::new(Queue::default()),
            stream,
            http,
            config,
            breakers: Breakers::default(),
            sends: Semaphore::new(CONCURRENCY),
        });
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        Ok((
            Self {
                shared: shared.clone(),
                tx: tx.clone(),
            },
            PushWorker { shared, rx, tx },
        ))
    }

    /// The public key browsers subscribe with (`applicationServerKey`).
    pub fn public_key(&self) -> &str {
        self.shared.vapid.public_key()
    }

    /// Queues a push of `notice` to `user_id`'s browsers. The caller has checked that the
    /// user has no open tab.
    pub async fn notify(&self, user_id: i64, notice: Notice) {
        enqueue(&self.shared, &self.tx, user_id, notice).await;
    }

    /// Queues a room message for every member but the sender who has no open tab.
    pub fn notify_room(&self, message: RoomMessage) {
        if self.tx.try_send(Work::Room(message)).is_err() {
            metrics::counter!("push_failures_total", "reason" => "queue_full").increment(1);
        }
    }

    /// The user opened a tab: unseen counts start again from zero.
    pub async fn seen(&self, user_id: i64) {
        self.shared.counts.reset(user_id).await;
    }
}

async fn enqueue(shared: &Shared, tx: &mpsc::Sender<Work>, user_id: i64, notice: Notice) {
    let count = match notice {
        Notice::Invite { .. } => 1,
        _ => shared.counts.bump(user_id, &notice.tag()).await,
    };
    if let Some(stream) = &shared.stream {
        match stream.add(user_id, &notice, count).await {
            Ok(()) => return,
            Err(err) => {
                // Redis is down: this node sends it itself rather than not at all.
                tracing::warn!(error = %err, "push not queued in Redis; sending from this node");
                metrics::counter!("push_failures_total", "reason" => "stream").increment(1);
            }
        }
    }
    enqueue_local(shared, tx, user_id, notice, count, Vec::new());
}

/// Puts a notice in this node's queue (from a request, or read from the Redis stream).
fn enqueue_local(
    shared: &Shared,
    tx: &mpsc::Sender<Work>,
    user_id: i64,
    notice: Notice,
    count: u32,
    entries: Vec<String>,
) {
    let tag = notice.tag();
    let key = (user_id, tag.clone());
    {
        let mut queue = shared.lock_queue();
        if let Some(entry) = queue.waiting.get_mut(&key) {
            // Still waiting: the newer notice and count replace it; no second push.
            entry.0 = notice;
            entry.1 = count;
            entry.2.extend(entries);
            return;
        }
        queue.waiting.insert(key.clone(), (notice, count, entries));
        metrics::gauge!("push_queue_depth").set(queue.waiting.len() as f64);
    }
    if tx.try_send(Work::User { user_id, tag }).is_err() {
        // Dropped here; entries of the Redis stream stay pending for another node to claim.
        let mut queue = shared.lock_queue();
        queue.waiting.remove(&key);
        metrics::gauge!("push_queue_depth").set(queue.waiting.len() as f64);
        metrics::counter!("push_failures_total", "reason" => "queue_full").increment(1);
    }
}

impl Shared {
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The waiting notice of `key`, now marked as being sent; `None` while an earlier one
    /// of the same conversation is still being sent (it picks this one up when done).
    fn start_sending(&self, key: &Key) -> Option<(Notice, u32, Vec<String>)> {
        let mut queue = self.lock_queue();
        if queue.sending.contains(key) {
            return None;
        }
        let taken = queue.waiting.remove(key)?;
        queue.sending.insert(key.clone());
        metrics::gauge!("push_queue_depth").set(queue.waiting.len() as f64);
        Some(taken)
    }

    /// `key` is sent (or given up): its stream entries are done, and a notice that came in
    /// meanwhile goes back into the queue. An `Interrupted` delivery (the node is stopping)
    /// leaves its entries pending, for another node to claim.
    async fn done_sending(
        &self,
        key: Key,
        entries: Vec<String>,
        finish: Finish,
        tx: &mpsc::Sender<Work>,
    ) {
        if let (Some(stream), Finish::Done) = (&self.stream, finish) {
            stream.done(&entries).await;
        }
        let mut queue = self.lock_queue();
        queue.sending.remove(&key);
        if queue.waiting.contains_key(&key) {
            let (user_id, tag) = key;
            if tx
                .try_send(Work::User {
                    user_id,
                    tag: tag.clone(),
                })
                .is_err()
            {
                queue.waiting.remove(&(user_id, tag));
                metrics::counter!("push_failures_total", "reason" => "queue_full").increment(1);
            }
        }
    }
}

impl PushWorker {
    /// Sends queued notices until `stop` turns true, then gives pushes in flight a few
    /// seconds. Notices still queued then are dropped (they are notifications, not data).
    pub fn run(
        self,
        store: Store,
        hub: Arc<Hub>,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let PushWorker { shared, mut rx, tx } = self;
        tokio::spawn(async move {
            let reader = shared
                .stream
                .is_some()
                .then(|| tokio::spawn(read_stream(shared.clone(), tx.clone(), stop.clone())));
            let notices = Arc::new(Semaphore::new(NOTICES_IN_PROGRESS));
            let mut inflight = JoinSet::new();
            loop {
                tokio::select! {
                    work = rx.recv() => {
                        let Some(work) = work else { break };
                        match work {
                            Work::Room(notice) => expand_room(&shared, &tx, &store, &hub, notice).await,
                            Work::User { user_id, tag } => {
                                let key = (user_id, tag);
                                let Some((notice, count, entries)) = shared.start_sending(&key) else { continue };
                                let Ok(permit) = notices.clone().acquire_owned().await else { break };
                                let (shared, store, tx) = (shared.clone(), store.clone(), tx.clone());
                                let stop = stop.clone();
                                inflight.spawn(async move {
                                    let finish = deliver_to_user(&shared, &store, user_id, &notice, count, stop).await;
                                    shared.done_sending(key, entries, finish, &tx).await;
                                    drop(permit);
                                });
                            }
                        }
                    }
                    Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
                    _ = stop.changed() => break,
                }
            }
            if let Some(reader) = reader {
                reader.abort();
                let _ = reader.await;
            }
            let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
                while inflight.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                tracing::warn!(
                    left = inflight.len(),
                    "pushes still in flight at shutdown were dropped"
                );
                inflight.shutdown().await;
            }
        })
    }
}

/// With Redis: feeds this node's queue from the shared stream, new entries and entries a
/// stopped node left pending, until `stop`.
async fn read_stream(shared: Arc<Shared>, tx: mpsc::Sender<Work>, mut stop: watch::Receiver<bool>) {
    let Some(stream) = &shared.stream else {
        return;
    };
    if let Err(err) = stream.ensure_group().await {
        tracing::warn!(error = %err, "push queue group not created; retrying on the next read");
    }
    let mut next_claim = tokio::time::Instant::now();
    loop {
        // Claims and reads take turns, never cancelled halfway (a read cut off would leave
        // its entries pending until claimed again).
        let entries = if tokio::time::Instant::now() >= next_claim {
            next_claim = tokio::time::Instant::now() + stream::CLAIM_EVERY;
            stream.claim_abandoned().await
        } else {
            tokio::select! {
                read = stream.read() => read,
                _ = stop.changed() => break,
            }
        };
        match entries {
            Ok(entries) => {
                for entry in entries {
                    enqueue_local(
                        &shared,
                        &tx,
                        entry.user_id,
                        entry.notice,
                        entry.count,
                        vec![entry.id],
                    );
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "push queue read failed; retrying");
                metrics::counter!("push_failures_total", "reason" => "stream").increment(1);
                let _ = stream.ensure_group().await;
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => break,
                }
            }
        }
        if *stop.borrow() {
            break;
        }
    }
}

async fn expand_room(
    shared: &Shared,
    tx: &mpsc::Sender<Work>,
    store: &Store,
    hub: &Hub,
    message: RoomMessage,
) {
    let room_id = message.room_id;
    // Only members who subscribed and have no tab open: most messages push to nobody, and
    // then cost this one query.
    let recipients: Vec<i64> = match store.push_subscribers_in_room(room_id).await {
        Ok(users) => users
            .into_iter()
            .filter(|&user| user != message.sender_id && !hub.is_online(user))
            .collect(),
        Err(err) => {
            tracing::warn!(room_id, error = %err, "room push skipped: members unavailable");
            return;
        }
    };
    if recipients.is_empty() {
        return;
    }
    let room = match store.room(room_id).await {
        Ok(Some(room)) => room,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(room_id, error = %err, "room push skipped: room unavailable");
            return;
        }
    };
    let notice = Notice::Chat {
        room_id,
        room_name: room.name,
        from: message.from,
        text: message.text,
    };
    for user in recipients {
        enqueue(shared, tx, user, notice.clone()).await;
    }
}

/// How a notice's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// Sent, or given up: it is done with.
    Done,
    /// The node is stopping; with Redis another node sends it.
    Interrupted,
}

/// One notice, on its way to each of one user's browsers.
struct Attempt<'a> {
    shared: &'a Shared,
    store: &'a Store,
    user_id: i64,
    payload: &'a [u8],
    meta: &'a deliver::PushMeta<'a>,
    deadline: Instant,
    stop: watch::Receiver<bool>,
}

/// Sends one notice to each of the user's browsers at once, each retried on its own, all
/// within the notice's deadline.
async fn deliver_to_user(
    shared: &Shared,
    store: &Store,
    user_id: i64,
    notice: &Notice,
    count: u32,
    stop: watch::Receiver<bool>,
) -> Finish {
    let deadline_in = shared
        .config
        .deadline
        .min(Duration::from_secs(notice.ttl_secs()));
    let deadline = Instant::now() + deadline_in;
    let subscriptions = match store.push_subscriptions(user_id, now_millis()).await {
        Ok(subs) => subs,
        Err(err) => {
            tracing::warn!(user_id, error = %err, "push skipped: subscriptions unavailable");
            metrics::counter!("push_failures_total", "reason" => "store").increment(1);
            return Finish::Done;
        }
    };
    if subscriptions.is_empty() {
        return Finish::Done;
    }
    let payload = match serde_json::to_vec(&notice.payload(count)) {
        Ok(p) => p,
        Err(err) => {
            tracing::error!(error = %err, "push payload could not be encoded");
            return Finish::Done;
        }
    };
    let tag = notice.tag();
    let meta = deliver::PushMeta {
        ttl_secs: notice.ttl_secs(),
        urgent: notice.urgent(),
        tag: &tag,
    };
    let attempt = Attempt {
        shared,
        store,
        user_id,
        payload: &payload,
        meta: &meta,
        deadline,
        stop,
    };
    let finished =
        futures_util::future::join_all(subscriptions.iter().map(|sub| attempt.deliver(sub))).await;
    if finished.contains(&Finish::Interrupted) {
        Finish::Interrupted
    } else {
        Finish::Done
    }
}

impl Attempt<'_> {
    /// Tries one browser until it is delivered, refused, or out of tries or time. A send
    /// slot is held for each request only, never while waiting.
    async fn deliver(&self, sub: &PushSubscriptionRow) -> Finish {
        let (shared, user_id) = (self.shared, self.user_id);
        let host = deliver::host_of(&sub.endpoint);
        let mut attempt = 1;
        loop {
            if let Admit::NotBefore(until) = shared.breakers.admit(&host, Instant::now()) {
                if until >= self.deadline {
                    metrics::counter!("push_failures_total", "reason" => "breaker_open")
                        .increment(1);
                    tracing::debug!(user_id, host = %host, "push given up: its host's breaker is open");
                    return Finish::Done;
                }
                if self.pause_until(until).await == Finish::Interrupted {
                    return Finish::Interrupted;
                }
                continue;
            }
            let outcome = match self.send(sub).await {
                Some(outcome) => outcome,
                None => {
                    metrics::counter!("push_failures_total", "reason" => "gave_up").increment(1);
                    tracing::warn!(
                        user_id,
                        attempts = attempt,
                        "push given up: its deadline passed"
                    );
                    return Finish::Done;
                }
            };
            if shared
                .breakers
                .record(&host, outcome.health(), Instant::now())
                && outcome.health() == breaker::Health::Down
            {
                tracing::debug!(host = %host, "push host failing; its breaker is open");
            }
            let wait = match outcome {
                Delivery::Delivered => {
                    metrics::counter!("push_sent_total").increment(1);
                    tracing::debug!(user_id, tag = %self.meta.tag, "push delivered");
                    return Finish::Done;
                }
                Delivery::Gone => {
                    metrics::counter!("push_subscriptions_expired_total").increment(1);
                    tracing::info!(user_id, "push subscription gone (404/410); forgetting it");
                    if let Err(err) = self.store.forget_push_endpoint(&sub.endpoint).await {
                        tracing::warn!(error = %err, "expired push subscription not deleted");
                    }
                    return Finish::Done;
                }
                Delivery::Rejected(why) => {
                    metrics::counter!("push_failures_total", "reason" => "rejected").increment(1);
                    tracing::warn!(user_id, reason = %why, "push refused by the push service");
                    return Finish::Done;
                }
                Delivery::Refused(why) => {
                    metrics::counter!("push_failures_total", "reason" => "refused_address")
                        .increment(1);
                    tracing::warn!(user_id, host = %host, reason = %why, "push endpoint not contacted");
                    return Finish::Done;
                }
                Delivery::Retry { after, why, .. } => {
                    let wait = after
                        .unwrap_or_else(|| backoff(shared.config.retry_base, attempt))
                        .min(MAX_BACKOFF);
                    if attempt >= MAX_ATTEMPTS || Instant::now() + wait >= self.deadline {
                        metrics::counter!("push_failures_total", "reason" => "gave_up")
                            .increment(1);
                        tracing::warn!(user_id, attempts = attempt, reason = %why, "push given up");
                        return Finish::Done;
                    }
                    metrics::counter!("push_retries_total").increment(1);
                    tracing::debug!(user_id, attempt, reason = %why, wait_ms = wait.as_millis() as u64, "push will be retried");
                    wait
                }
            };
            if self.pause_until(Instant::now() + wait).await == Finish::Interrupted {
                return Finish::Interrupted;
            }
            attempt += 1;
        }
    }

    /// One request under a send slot; `None` when the deadline passes first.
    async fn send(&self, sub: &PushSubscriptionRow) -> Option<Delivery> {
        let shared = self.shared;
        tokio::time::timeout_at(self.deadline, async {
            let _slot = shared.sends.acquire().await.ok()?;
            Some(
                deliver::send(
                    &shared.http,
                    &shared.config.egress,
                    &shared.vapid,
                    sub,
                    self.payload,
                    self.meta,
                )
                .await,
            )
        })
        .await
        .ok()
        .flatten()
    }

    /// Waits until `until` holding nothing; `Interrupted` when the node starts stopping.
    async fn pause_until(&self, until: Instant) -> Finish {
        let mut stop = self.stop.clone();
        let stopping = async move {
            if stop.wait_for(|stopped| *stopped).await.is_err() {
                // Nobody can stop us any more: only the sleep ends the wait.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(until) => Finish::Done,
            () = stopping => Finish::Interrupted,
        }
    }
}

/// `base * 2^(attempt-1)`, plus up to a fifth more so retries of many pushes spread out.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1 << (attempt - 1).min(10));
    let jitter = exp.mul_f64(rand::random::<f64>() * 0.2);
    (exp + jitter).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        let b1 = backoff(base, 1);
        let b3 = backoff(base, 3);
        assert!(b1 >= base && b1 <= base.mul_f64(1.2));
        assert!(b3 >= base * 4 && b3 <= (base * 4).mul_f64(1.2));
        assert_eq!(backoff(Duration::from_secs(10), 9), MAX_BACKOFF);
    }
}
