//! Start-up: resolve secrets, open the database and Redis, build the app, serve until a
//! shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use secrecy::SecretString;
use tokio::net::TcpListener;

use sfu::{Sfu, SfuConfig};
use signaling::ice::{IceServers, TurnRest};
use signaling::protocol::{IceServer, ParticipantId};
use signaling::{Bus, Hub, HubConfig, LocalBus, Media};

use crate::agent::provider::ModelChain;
use crate::app::chat::RoomLocks;
use crate::app::summaries::Summaries;
use crate::app::telegram::Telegram;
use crate::app::transcription::Transcription;
use crate::auth::{PasswordHasher, TokenService, WsTickets};
use crate::cluster::{Cluster, NodeIdentity};
use crate::config::{AppEnv, Settings};
use crate::context::ApiContext;
use crate::db::{Store, StoreError};
use crate::http;
use crate::invites::{CallInviteService, InviteStore, MemoryInvites, RedisInvites};
use crate::push::{
    EgressPolicy, PushConfig, PushService, PushStream, PushWorker, UnseenCounts, VapidKeys,
};
use crate::ratelimit::{LocalLimiter, RateLimiter, RedisLimiter};
use crate::realtime::RedisBus;
use crate::sealed::ClusterKey;
use crate::secrets::{self, SecretError, SecretOrigin};
use crate::telemetry;

/// Why the server could not start. Each displays as one line that says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("secrets: {0}")]
    Secret(#[from] SecretError),
    #[error("DATABASE_URL: {0}")]
    Database(#[from] StoreError),
    #[error("REDIS_URL: {0}")]
    Redis(String),
    #[error("BIND/PORT: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("SFU_BIND/SFU_UDP_PORT/SFU_TCP_PORT: {0}")]
    Media(String),
    #[error("BCRYPT_COST: {0}")]
    Hasher(crate::error::Error),
    #[error("WHISPER_MODEL: {0}")]
    Transcription(String),
    #[error("AI summaries / Telegram: {0}")]
    Agent(String),
    #[error("WebPush: {0}")]
    Push(String),
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The database the settings point at: `DATABASE_URL`, or SQLite under `DATA_DIR`.
///
/// # Errors
/// [`StartError::Database`] when it can't be opened, [`StartError::Secret`] when `DATA_DIR`
/// can't be created.
pub async fn open_store(settings: &Settings) -> Result<Store, StartError> {
    let url = match &settings.database_url {
        Some(url) => url.clone(),
        None => {
            // Password hashes, chat and transcripts: readable by this user only.
            crate::secrets::private_dir(&settings.data_dir)?;
            crate::secrets::private_database_file(&Store::sqlite_path_in(&settings.data_dir))?;
            Store::sqlite_url_in(&settings.data_dir)
        }
    };
    Ok(Store::connect(&url).await?)
}

async fn connect_redis(
    url: &str,
) -> Result<(redis::Client, redis::aio::ConnectionManager), StartError> {
    let client = redis::Client::open(url).map_err(|e| StartError::Redis(e.to_string()))?;
    let conn = connect_redis_with(&client, Duration::from_secs(2)).await?;
    Ok((client, conn))
}

/// `response_timeout`: the longest a command may take (a blocking read needs its block time
/// and more).
async fn connect_redis_with(
    client: &redis::Client,
    response_timeout: Duration,
) -> Result<redis::aio::ConnectionManager, StartError> {
    // After Redis restarts, the manager reconnects on the next command. Its defaults retry
    // with a growing backoff (up to 6.4 s between tries, ~13 s in all) with no timeout per
    // try, so commands kept failing long after Redis was back
    // (`faults::redis_restarting_mid_call…`). Short tries, capped at half a second apart,
    // bring it back within a second of Redis.
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(1))
        .set_response_timeout(response_timeout)
        .set_number_of_retries(4)
        .set_max_delay(500);
    tokio::time::timeout(
        Duration::from_secs(5),
        redis::aio::ConnectionManager::new_with_config(client.clone(), config),
    )
    .await
    .map_err(|_| StartError::Redis("no answer within 5 s".to_owned()))?
    .map_err(|e| StartError::Redis(e.to_string()))
}

/// Starts the SFU and collects the ICE servers handed to browsers in `joined`.
async fn start_media(settings: &Settings) -> Result<Media, StartError> {
    let config = SfuConfig {
        bind_ip: settings.media.bind,
        public_ip: settings.media.public_ip,
        port: settings.media.udp_port,
        tcp_port: settings.media.tcp_port,
        shards: settings.media.shards,
        disconnect_grace: settings.media.disconnect_grace,
        audio_slots: settings.media.audio_slots,
        ..SfuConfig::default()
    };
    let sfu = Sfu::start(config)
        .await
        .map_err(|e| StartError::Media(e.to_string()))?;
    let ice = &settings.ice;
    let mut fixed = Vec::new();
    if !ice.stun_urls.is_empty() {
        fixed.push(IceServer {
            urls: ice.stun_urls.clone(),
            username: None,
            credential: None,
        });
    }
    let mut turn_rest = None;
    if !ice.turn_urls.is_empty() {
        match &ice.turn_shared_secret {
            Some(secret) => {
                turn_rest = Some(TurnRest {
                    urls: ice.turn_urls.clone(),
                    secret: secret.clone(),
                    ttl: ice.turn_credential_ttl,
                });
            }
            None => fixed.push(IceServer {
                urls: ice.turn_urls.clone(),
                username: ice.turn_username.clone(),
                credential: ice
                    .turn_password
                    .as_ref()
                    .map(|p| secrecy::ExposeSecret::expose_secret(p).to_owned()),
            }),
        }
    }
    Ok(Media {
        sfu,
        ice: Arc::new(IceServers { fixed, turn_rest }),
        relay: None,
    })
}

/// The UDP addresses browsers are told to send this node media to (its record in the
/// cluster registry): `SFU_PUBLIC_IP`, or the bound address, with each shard's port.
fn advertised_media(settings: &Settings, sfu: &Sfu) -> Vec<String> {
    sfu.local_addrs()
        .into_iter()
        .map(|addr| {
            let ip = settings.media.public_ip.unwrap_or(addr.ip());
            SocketAddr::new(ip, addr.port()).to_string()
        })
        .collect()
}

/// The summary writer with its model and the Telegram bot, as configured.
fn start_agent(settings: &Settings) -> Result<(Arc<Summaries>, Option<Arc<Telegram>>), StartError> {
    let agent_error = |e: reqwest::Error| StartError::Agent(e.to_string());
    let model = match &settings.summary.model {
        Some(model) => {
            tracing::info!(
                base_url = %model.base_url,
                model = %model.model,
                fallback = model.fallback.as_deref().unwrap_or(""),
                "AI summaries by an OpenAI-compatible model"
            );
            Some(ModelChain::new(model).map_err(agent_error)?)
        }
        None => {
            tracing::info!("AI summaries are heuristic: AI_SUMMARY_ENABLED is off");
            None
        }
    };
    let telegram = match &settings.telegram {
        Some(t) => {
            if t.webhook_secret.is_none() {
                tracing::warn!(
                    "TELEGRAM_WEBHOOK_SECRET is not set: the bot can send summaries but nobody can link a chat"
                );
            }
            Some(Arc::new(Telegram::new(t.clone()).map_err(agent_error)?))
        }
        None => None,
    };
    let summaries = Summaries::new(settings.summary.clone(), model, telegram.clone());
    Ok((Arc::new(summaries), telegram))
}

fn announce_secret(name: &str, origin: &SecretOrigin, secret: &SecretString) {
    use secrecy::ExposeSecret;
    match origin {
        SecretOrigin::Configured => {}
        SecretOrigin::Stored(path) => {
            tracing::info!(path = %path.display(), "{name}: using the generated secret kept in DATA_DIR");
        }
        SecretOrigin::Generated(path) => {
            tracing::info!(path = %path.display(), "{name}: generated a new secret and kept it in DATA_DIR");
            if name == "REGISTRATION_SECRET" {
                // Printed once, now, so the operator can hand it out; later starts only say
                // where it is kept.
                eprintln!(
                    "\n  Registration secret (generated; kept in {}):\n\n      {}\n\n  Anyone with it can register. Set REGISTRATION_SECRET to choose your own.\n",
                    path.display(),
                    secret.expose_secret()
                );
            }
        }
    }
}

/// Invites and WebPush: in process, or shared through Redis with the other nodes.
fn start_invites_and_push(
    settings: &Settings,
    redis: Option<&redis::aio::ConnectionManager>,
    push_stream: Option<PushStream>,
    cluster_key: &ClusterKey,
) -> Result<(Arc<CallInviteService>, PushService, PushWorker), StartError> {
    let push_settings = &settings.push;
    let (vapid, origin) = VapidKeys::load(
        push_settings.vapid_private_key.as_ref(),
        push_settings.vapid_public_key.as_deref(),
        &push_settings.vapid_subject,
        &settings.data_dir,
    )
    .map_err(|e| StartError::Push(e.to_string()))?;
    if let SecretOrigin::Generated(path) = &origin {
        tracing::info!(path = %path.display(), "VAPID_PRIVATE_KEY: generated a WebPush key and kept it in DATA_DIR");
    }
    let prefix = &settings.redis_prefix;
    let (counts, invite_store) = match redis {
        Some(conn) => (
            UnseenCounts::Redis {
                conn: conn.clone(),
                prefix: prefix.clone(),
            },
            InviteStore::Redis(RedisInvites::new(conn.clone(), prefix, cluster_key.clone())),
        ),
        None => (
            UnseenCounts::memory(),
            InviteStore::Memory(MemoryInvites::default()),
        ),
    };
    let config = PushConfig {
        retry_base: push_settings.retry_base,
        egress: EgressPolicy {
            allow_private: push_settings.allow_private,
            production: settings.app_env == AppEnv::Prod,
        },
        ..PushConfig::default()
    }
    .with_claim_idle(push_settings.claim_idle);
    if push_settings.allow_private {
        tracing::warn!("PUSH_ALLOW_PRIVATE is set: push endpoints on loopback and private addresses are contacted (tests and development only)");
    }
    let (push, worker) = PushService::new(vapid, counts, push_stream, config)
        .map_err(|e| StartError::Push(e.to_string()))?;
    let invites = Arc::new(CallInviteService::new(
        invite_store,
        settings.invite_timeout,
    ));
    Ok((invites, push, worker))
}

/// The key that seals what this node tells the others through Redis: `CLUSTER_SECRET`, or
/// derived from the JWT secret, which every node of a deployment already shares.
fn cluster_key(settings: &Settings, jwt_secret: &secrecy::SecretString) -> ClusterKey {
    match &settings.cluster_secret {
        Some(secret) => ClusterKey::from_secret(secret),
        None => {
            if settings.redis_url.is_some() {
                tracing::info!("CLUSTER_SECRET is not set: what nodes tell each other through Redis is sealed with a key derived from JWT_SECRET (docs/security.md)");
            }
            ClusterKey::derived_from(jwt_secret)
        }
    }
}

/// A ready-to-serve application.
pub struct Server {
    ctx: ApiContext,
    push_worker: PushWorker,
}

impl Server {
    /// Prepares everything `serve` needs: secrets, migrated database, Redis, rate limits, and
    /// the hub of WebSocket connections with its bus.
    ///
    /// # Errors
    /// A [`StartError`] naming what is wrong.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        // The recorder first: a metric reported before it is installed (the node's info,
        // anything counted while the server is built) would go nowhere.
        let metrics = telemetry::metrics_handle();
        // Before anything is written: a model named in WHISPER_MODEL but never fetched is the
        // operator's next command, not a load error.
        if let Some(path) = &settings.whisper.model {
            if let Some(name) = crate::models::missing_download(path, &settings.data_dir) {
                return Err(StartError::Transcription(format!(
                    "model {name} is not downloaded ({} is missing): run `webcall model fetch {name}`",
                    path.display()
                )));
            }
        }
        let (jwt_secret, origin) = secrets::load_or_generate(
            settings.jwt_secret.as_ref(),
            &settings.data_dir,
            "jwt_secret",
            32,
        )?;
        announce_secret("JWT_SECRET", &origin, &jwt_secret);
        let cluster_key = cluster_key(&settings, &jwt_secret);
        let (registration_secret, origin) = secrets::load_or_generate(
            settings.registration_secret.as_ref(),
            &settings.data_dir,
            "registration_secret",
            12,
        )?;
        announce_secret("REGISTRATION_SECRET", &origin, &registration_secret);

        let store = open_store(&settings).await?;
        let versions = store.migrate().await?;
        tracing::info!(backend = ?store.backend(), migrations = ?versions, "database ready");

        let redis = match &settings.redis_url {
            Some(url) => Some(connect_redis(url).await?),
            None => None,
        };
        // With Redis, events cross nodes through it; without, they stay in this process.
        let bus: Arc<dyn Bus> = match &redis {
            Some((client, conn)) => Arc::new(
                RedisBus::connect(
                    client,
                    conn.clone(),
                    &settings.redis_prefix,
                    cluster_key.clone(),
                )
                .await
                .map_err(|e| StartError::Redis(format!("bus subscription: {e}")))?,
            ),
            None => Arc::new(LocalBus::new()),
        };
        let mut media = start_media(&settings).await?;
        // Hub::new keeps the low 20 bits (participant ids carry them); the registry and the
        // relay name the node by the same tag.
        let node_tag = rand::random::<u32>() & ((1 << ParticipantId::NODE_TAG_BITS) - 1);
        let cluster = match &redis {
            Some((client, conn)) => {
                let identity = NodeIdentity {
                    tag: node_tag,
                    media: advertised_media(&settings, &media.sfu),
                    capacity: settings.media.node_capacity,
                };
                let cluster = Cluster::start(
                    client,
                    conn.clone(),
                    &settings.redis_prefix,
                    identity,
                    media.sfu.clone(),
                    cluster_key.clone(),
                )
                .await
                .map_err(|e| StartError::Redis(format!("media relay subscription: {e}")))?;
                media.relay = Some(Arc::new(cluster.relay()));
                Some(cluster)
            }
            None => None,
        };
        let hub_config = HubConfig {
            send_timeout: settings.limits.ws_send_timeout,
            max_sockets_per_user: settings.limits.ws_sockets_per_user,
            ..HubConfig::with_idle_timeout(settings.ws_idle_timeout)
        };
        let hub = Hub::with_media(node_tag, hub_config, bus, media);
        hub.start();
        // The node id on /metrics, as an info metric (Prometheus's convention: join on it by
        // `instance`): the recorder is process-wide, so a label on every series would be the
        // first app's in a process that runs several (the tests).
        metrics::gauge!(
            "webcall_node_info",
            "node" => format!("node-{:05x}", hub.node_tag()),
            "version" => env!("CARGO_PKG_VERSION"),
        )
        .set(1.0);
        // The push queue's blocking reads get a connection of their own.
        let push_reader = match &redis {
            Some((client, _)) => Some(connect_redis_with(client, Duration::from_secs(10)).await?),
            None => None,
        };
        let redis = redis.map(|(_, conn)| conn);
        let limiter = match &redis {
            Some(conn) => RateLimiter::Redis(RedisLimiter::new(
                conn.clone(),
                &settings.redis_prefix,
                settings.rate_limits,
            )),
            None => RateLimiter::Local(Arc::new(LocalLimiter::new(&settings.rate_limits))),
        };
        let passwords = PasswordHasher::new(settings.bcrypt_cost)
            .await
            .map_err(StartError::Hasher)?;
        let tokens = Arc::new(TokenService::new(&jwt_secret, settings.jwt_ttl));
        // whisper.cpp loads synchronously (0.1 s for base, longer for big models).
        let whisper = settings.whisper.clone();
        let transcription = tokio::task::spawn_blocking(move || Transcription::start(&whisper))
            .await
            .map_err(|e| StartError::Transcription(e.to_string()))?
            .map_err(|e| StartError::Transcription(e.to_string()))?;
        let transcription = Arc::new(transcription);
        transcription.follow(store.clone(), hub.clone());
        let (summaries, telegram) = start_agent(&settings)?;
        let push_stream = redis.clone().zip(push_reader).map(|(conn, reader)| {
            PushStream::new(
                conn,
                reader,
                &settings.redis_prefix,
                format!("node-{:05x}", hub.node_tag()),
                settings.push.claim_idle,
                cluster_key.clone(),
            )
        });
        let (invites, push, push_worker) =
            start_invites_and_push(&settings, redis.as_ref(), push_stream, &cluster_key)?;
        let tickets = match &redis {
            Some(conn) => WsTickets::redis(
                conn.clone(),
                &settings.redis_prefix,
                settings.ws_ticket_ttl,
                cluster_key.clone(),
            ),
            None => WsTickets::memory(settings.ws_ticket_ttl),
        };

        Ok(Self {
            ctx: ApiContext {
                settings: Arc::new(settings),
                store,
                tokens,
                passwords,
                registration_secret: Arc::new(registration_secret),
                limiter,
                redis,
                metrics,
                hub,
                chat_locks: Arc::new(RoomLocks::new()),
                transcription,
                summaries,
                telegram,
                invites,
                push,
                tickets,
                cluster,
                draining: Arc::new(AtomicBool::new(false)),
            },
            push_worker,
        })
    }

    pub fn router(&self) -> Router {
        http::app(self.ctx.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then drains in order: stop
    /// accepting and finish HTTP requests in flight (up to `SHUTDOWN_TIMEOUT_SECS`); tell
    /// every WebSocket client (participants leave with reason `shutdown`) and wait for the
    /// sockets and their work; let speech already heard become transcript
    /// (`TRANSCRIPTION_FLUSH_SECS`); close media (DTLS close_notify to every browser);
    /// stop the background workers; close the database last, when nothing writes anymore.
    ///
    /// # Errors
    /// [`StartError::Serve`] when the listener fails.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let app = self.router();
        let ctx = &self.ctx;
        let limits = ctx.settings.limits;
        // These stop at the hub's shutdown signal; waited for below.
        let sweeper = ctx
            .invites
            .clone()
            .run_sweeper(ctx.hub.clone(), ctx.hub.shutdown_signal());
        let pusher = self.push_worker.run(
            ctx.store.clone(),
            ctx.hub.clone(),
            ctx.hub.shutdown_signal(),
        );
        let idle_stop = ctx.summaries.clone().run_idle_stop(
            ctx.store.clone(),
            ctx.hub.clone(),
            ctx.transcription.clone(),
            ctx.hub.shutdown_signal(),
        );
        let upkeep =
            crate::telemetry::run_metrics_upkeep(ctx.metrics.clone(), ctx.hub.shutdown_signal());
        let heartbeat = ctx
            .cluster
            .as_ref()
            .map(|cluster| cluster.run(ctx.hub.shutdown_signal()));
        // WebSockets outlive their HTTP request, so the HTTP drain doesn't cover them: the
        // hub's signal tells them to close, at the same moment accepting stops. Before that,
        // a draining node keeps its calls up to DRAIN_TIMEOUT_SECS, then hands them over.
        let hub = ctx.hub.clone();
        let drain = Drain {
            cluster: ctx.cluster.clone(),
            sfu: ctx.hub.media_plane().map(|m| m.sfu.clone()),
            flag: ctx.draining.clone(),
            timeout: ctx.settings.media.drain_timeout,
        };
        let shutdown = async move {
            shutdown.await;
            drain.run().await;
            tracing::info!("shutting down: no new connections; closing WebSockets");
            hub.shutdown();
        };
        crate::listener::serve(listener, app, limits.http, shutdown)
            .await
            .map_err(StartError::Serve)?;

        // Sockets leave while speech already heard is transcribed: both have deadlines.
        let tasks = ctx.hub.tasks();
        tasks.close();
        let (unfinished, waited) = tokio::join!(
            ctx.transcription.finish_all(limits.transcription_flush),
            tokio::time::timeout(
                limits.http.shutdown_timeout + limits.transcription_flush,
                tasks.wait()
            ),
        );
        if unfinished > 0 {
            tracing::warn!(
                utterances = unfinished,
                "speech not transcribed by the flush deadline (TRANSCRIPTION_FLUSH_SECS)"
            );
        }
        if waited.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "sockets or their work still running at the shutdown deadline"
            );
        }
        if let Some(plane) = ctx.hub.media_plane() {
            plane.sfu.shutdown().await;
        }
        if let Some(heartbeat) = heartbeat {
            let _ = heartbeat.await;
        }
        if let Some(cluster) = &ctx.cluster {
            cluster.stop(limits.http.shutdown_timeout).await;
        }
        let _ = sweeper.await;
        let _ = pusher.await;
        let _ = idle_stop.await;
        let _ = upkeep.await;
        self.ctx.store.close().await;
        Ok(())
    }
}

/// The node's last calls before it stops: what SIGTERM does before the sockets close.
struct Drain {
    cluster: Option<Arc<Cluster>>,
    sfu: Option<Sfu>,
    flag: Arc<AtomicBool>,
    timeout: Duration,
}

impl Drain {
    /// With a drain timeout: `/readyz` turns 503 and no new room is placed here, while the
    /// calls already here go on until they end or the timeout passes. Then (always) the node
    /// leaves the registry and its calls move: participants whose sockets are on other
    /// nodes are told their media closed and rejoin there; this node's own sockets close
    /// next, and their browsers reconnect through the proxy.
    async fn run(self) {
        if !self.timeout.is_zero() {
            // The registry record first: once `/readyz` says draining, no node places a new
            // room here either (a test saw the record lag the 503 by a heartbeat).
            if let Some(cluster) = &self.cluster {
                cluster.start_draining().await;
            }
            self.flag.store(true, Ordering::Relaxed);
            let deadline = tokio::time::Instant::now() + self.timeout;
            tracing::info!(timeout = ?self.timeout, "draining: no new rooms here; waiting for this node's calls to end");
            while let Some(sfu) = &self.sfu {
                let peers = sfu.counts().await.peers;
                if peers == 0 {
                    tracing::info!("drained: no calls left on this node");
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::info!(peers, "drain deadline reached; moving the calls still here");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        if let Some(cluster) = &self.cluster {
            cluster.withdraw().await;
        }
    }
}

/// `webcall serve`: bind, announce, serve until SIGINT/SIGTERM.
///
/// # Errors
/// A [`StartError`] naming what is wrong.
pub async fn run(settings: Settings) -> Result<(), StartError> {
    let addr = SocketAddr::new(settings.bind, settings.port);
    let server = Server::build(settings).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(StartError::Serve)?;
    tracing::info!(addr = %local, "webcall listening on http://{local}");
    server.serve(listener, shutdown_signal()).await?;
    tracing::info!("webcall stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM (what `docker stop` sends).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
