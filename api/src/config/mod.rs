//! Typed configuration, read once at start from the environment (and an optional `.env`).
//!
//! Every variable is parsed here; a bad value stops the server with one line that names the
//! variable, so an operator never has to guess which setting was wrong.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::HeaderValue;
use secrecy::SecretString;

pub mod agent;
pub mod caps;
pub mod limits;

pub use agent::{ModelSettings, SummarySettings, TelegramSettings};
pub use caps::UserCaps;
pub use limits::ServerLimits;

/// Where the server runs. `prod` refuses generated secrets and turns on HSTS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Dev,
    Prod,
}

/// A configuration value that can't be used. Displays as `VARIABLE: reason`.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        reason: reason.into(),
    }
}

/// Requests per minute allowed per client address for the endpoints that attract abuse.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub register_per_min: u32,
    pub login_per_min: u32,
    /// Login attempts per minute per account (whatever the address), so guesses spread over
    /// many addresses still meet a limit.
    pub login_account_per_min: u32,
    pub room_create_per_min: u32,
    /// Chat messages and DMs per minute per user.
    pub chat_per_min: u32,
    /// `RATE_LIMIT_KEYS`: public keys published (`PUT /keys`) per minute per user.
    pub keys_per_min: u32,
    /// `RATE_LIMIT_INVITE`: invites sent per minute per user.
    pub invite_per_min: u32,
}

/// Where the SFU's UDP sockets listen and what address they advertise to browsers.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// `SFU_BIND`, default `BIND`.
    pub bind: IpAddr,
    /// `SFU_PUBLIC_IP`: the address browsers reach (behind 1:1 NAT); default the bind address.
    pub public_ip: Option<IpAddr>,
    /// `SFU_UDP_PORT`: first UDP port (shard i uses port + i); 0 picks free ports.
    pub udp_port: u16,
    /// `SFU_TCP_PORT`: the ICE-TCP port (one for all shards), for browsers whose network
    /// drops UDP; default 0 (a free port), `off` offers no TCP candidate.
    pub tcp_port: Option<u16>,
    /// `SFU_SHARDS`: media loops (one UDP socket each); default the number of cores.
    pub shards: usize,
    /// `SFU_DISCONNECT_GRACE_SECS`: how long a participant whose network went silent keeps
    /// its place in the call (ICE restart or a blip resumes it); default 20 s.
    pub disconnect_grace: std::time::Duration,
    /// `SFU_AUDIO_SLOTS` (default 3; 0: no room is ever large) and `SFU_AUDIO_SLOTS_ABOVE`
    /// (default 12; 0: every room is large): a room that has had more than ABOVE participants
    /// gives each listener SLOTS audio streams carrying the loudest current speakers, so it
    /// costs N x SLOTS streams instead of N², and joins renegotiate with nobody else.
    /// `SFU_AUDIO_FORWARD_TOP` / `SFU_AUDIO_FORWARD_ABOVE` are the old names, still read.
    pub audio_slots: Option<sfu::AudioSlots>,
    /// `NODE_CAPACITY` (default 500): participants this node's SFU is sized for. With
    /// several nodes, a new room goes to the node with the lowest share of its capacity in
    /// use; a node past it still takes rooms when every node is.
    pub node_capacity: usize,
    /// `DRAIN_TIMEOUT_SECS` (default 0): at SIGTERM, how long this node keeps carrying its
    /// rooms' media (placing no new ones) so calls can end on their own; the calls still
    /// running then move to another node. 0 moves them at once.
    pub drain_timeout: std::time::Duration,
}

/// STUN/TURN servers handed to clients so they can reach the SFU.
#[derive(Debug, Clone, Default)]
pub struct IceServers {
    pub stun_urls: Vec<String>,
    pub turn_urls: Vec<String>,
    pub turn_username: Option<String>,
    pub turn_password: Option<SecretString>,
    /// `TURN_SHARED_SECRET`: coturn's `static-auth-secret`; each join then gets its own
    /// time-limited credential (TURN REST convention) instead of the static password.
    pub turn_shared_secret: Option<SecretString>,
    /// `TURN_CREDENTIAL_TTL_SECS`: how long such a credential can make new allocations;
    /// default 1 h. coturn checks the expiry only when an allocation is made and refreshes
    /// it with the key it derived then, so a call outlives its credential; a later ICE
    /// restart needs a fresh one, which the browser gets by joining again (`static/js/call.js`).
    pub turn_credential_ttl: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub app_env: AppEnv,
    pub bind: IpAddr,
    pub port: u16,
    /// `None`: generated once and kept in `data_dir`.
    pub jwt_secret: Option<SecretString>,
    /// `None`: generated once, kept in `data_dir` and printed at first start.
    pub registration_secret: Option<SecretString>,
    /// `None`: SQLite file under `data_dir`.
    pub database_url: Option<String>,
    /// `None`: in-process rate limits (and, later, bus).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several deployments (or tests) can share one Redis.
    pub redis_prefix: String,
    /// The key that seals what nodes tell each other through Redis (`api::sealed`).
    /// `None`: derived from the JWT secret, which every node of a deployment shares.
    pub cluster_secret: Option<SecretString>,
    pub data_dir: PathBuf,
    pub static_dir: PathBuf,
    pub ice: IceServers,
    pub media: MediaSettings,
    pub cors_origins: Vec<HeaderValue>,
    pub bcrypt_cost: u32,
    pub jwt_ttl: Duration,
    pub rate_limits: RateLimits,
    /// Take the client address from `X-Forwarded-For` (only behind a reverse proxy you run).
    pub trust_proxy: bool,
    pub max_body_bytes: usize,
    /// A WebSocket that sends nothing, not even a pong, for this long is dropped.
    pub ws_idle_timeout: Duration,
    pub whisper: WhisperSettings,
    /// AI summaries: the model (if any) and the limits.
    pub summary: SummarySettings,
    /// The Telegram bot that delivers summaries (if any).
    pub telegram: Option<TelegramSettings>,
    /// `INVITE_TIMEOUT_SECS`: how long an invite rings before it times out (default 45 s).
    pub invite_timeout: Duration,
    pub push: PushSettings,
    /// Connections, sockets per user, stall and shutdown timers.
    pub limits: ServerLimits,
    /// Keys, rooms and call participants one user may hold.
    pub caps: UserCaps,
    /// `WS_TICKET_TTL_SECS`: how long a WebSocket ticket stays usable (default 30 s).
    pub ws_ticket_ttl: Duration,
    /// `METRICS_TOKEN`: when set, `/metrics` wants `Authorization: Bearer <it>`; when not,
    /// `/metrics` is open (keep it on a private network).
    pub metrics_token: Option<SecretString>,
}

/// WebPush (VAPID keys and sending).
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// `VAPID_PRIVATE_KEY`: base64url of the 32-byte P-256 scalar; `None`: generated once
    /// into `DATA_DIR/vapid_private_key`.
    pub vapid_private_key: Option<SecretString>,
    /// `VAPID_PUBLIC_KEY`: checked against the private key when given.
    pub vapid_public_key: Option<String>,
    /// `VAPID_SUBJECT`: a `mailto:` or `https:` contact push services can reach.
    pub vapid_subject: String,
    /// `PUSH_RETRY_BASE_MS`: the first retry's backoff, doubled per try (default 1000).
    pub retry_base: Duration,
    /// `PUSH_CLAIM_IDLE_SECS`: with Redis, a queued push another node took and left unsent
    /// this long (that node stopped) is sent by this one (default 300: longer than a push
    /// with all its retries takes, so a slow push isn't sent twice).
    pub claim_idle: Duration,
    /// `PUSH_ALLOW_PRIVATE=1`: push endpoints on loopback, private and link-local addresses
    /// are contacted too. For tests and development against a local stand-in push service
    /// only; refused with `APP_ENV=prod`, where it would let any user make the server POST
    /// into its own network.
    pub allow_private: bool,
}

/// `WHISPER_LANGUAGE`: `auto` (default), one code (`ru`), or the codes a detection may
/// choose from (`ru,en`), each one whisper knows.
fn parse_languages(value: Option<String>) -> Result<(Option<String>, Vec<String>), ConfigError> {
    let Some(value) = value else {
        return Ok((None, Vec::new()));
    };
    if value.eq_ignore_ascii_case("auto") {
        return Ok((None, Vec::new()));
    }
    let codes: Vec<String> = value
        .split(',')
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(bad) = codes.iter().find(|c| !transcriber::language::is_known(c)) {
        return Err(invalid(
            "WHISPER_LANGUAGE",
            format!("expected auto, a language code such as en or ru, or a list such as ru,en; {bad:?} is not one the speech model knows"),
        ));
    }
    Ok(match codes.as_slice() {
        [one] => (Some(one.clone()), Vec::new()),
        _ => (None, codes),
    })
}

/// The VAD unless `WHISPER_VAD` says otherwise (the comparison: docs/transcription.md).
pub const DEFAULT_VAD: &str = "earshot";

/// Server-side transcription. Without a model, transcription is unavailable and the rest of
/// the server works as before.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperSettings {
    /// `WHISPER_MODEL`: a whisper.cpp ggml model file (e.g. ggml-base.bin), or the name of one
    /// in the catalog (`base`), which means `DATA_DIR/models/ggml-base.bin` (see
    /// [`resolve_model`]).
    pub model: Option<PathBuf>,
    /// `WHISPER_LANGUAGE` as one ISO 639-1 code: every speaker in that language. `None`:
    /// each speaker's language is detected over their first utterances and kept.
    pub language: Option<String>,
    /// `WHISPER_LANGUAGE` as a list (`ru,en`): the languages a detection may choose. Empty
    /// (`auto`, the default): any language the model knows.
    pub languages: Vec<String>,
    /// `WHISPER_THREADS`: threads per worker (default: 2 or the cores, whichever is fewer).
    pub threads: usize,
    /// `WHISPER_WORKERS`: utterances transcribed in parallel (default 1).
    pub workers: usize,
    /// `WHISPER_VAD`: `energy` or `earshot` (default; see docs/transcription.md).
    pub vad: transcriber::vad::Detector,
    /// `WHISPER_PARTIALS`: partial captions while someone speaks (default `on`; `off` sends
    /// finals only).
    pub partials: bool,
    /// `TRANSCRIPTION_IDLE_STOP_SECS`: a transcription whose room has had nobody in the call
    /// this long stops by itself and is summarised (default 120, 10–86400).
    pub idle_stop: Duration,
}

impl WhisperSettings {
    /// Reads the `WHISPER_*` variables (also used by `webcall transcribe`).
    ///
    /// # Errors
    /// The first `WHISPER_*` variable whose value can't be used.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let (language, languages) = parse_languages(get("WHISPER_LANGUAGE"))?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = parse_or(
            "WHISPER_THREADS",
            get("WHISPER_THREADS"),
            cores.min(2),
            "a number of threads",
        )?;
        if !(1..=64).contains(&threads) {
            return Err(invalid("WHISPER_THREADS", "must be between 1 and 64"));
        }
        let workers = parse_or(
            "WHISPER_WORKERS",
            get("WHISPER_WORKERS"),
            1usize,
            "a number of workers",
        )?;
        if !(1..=32).contains(&workers) {
            return Err(invalid("WHISPER_WORKERS", "must be between 1 and 32"));
        }
        let vad = match get("WHISPER_VAD") {
            None => transcriber::vad::Detector::from_name(DEFAULT_VAD),
            Some(name) => transcriber::vad::Detector::from_name(&name.to_ascii_lowercase()),
        }
        .ok_or_else(|| invalid("WHISPER_VAD", "expected energy or earshot"))?;
        let partials = match get("WHISPER_PARTIALS").map(|v| v.to_ascii_lowercase()) {
            None => true,
            Some(v) if ["on", "true", "1", "yes"].contains(&v.as_str()) => true,
            Some(v) if ["off", "false", "0", "no"].contains(&v.as_str()) => false,
            Some(_) => return Err(invalid("WHISPER_PARTIALS", "expected on or off")),
        };
        let idle_stop: u64 = parse_or(
            "TRANSCRIPTION_IDLE_STOP_SECS",
            get("TRANSCRIPTION_IDLE_STOP_SECS"),
            120,
            "a number of seconds",
        )?;
        if !(10..=86_400).contains(&idle_stop) {
            return Err(invalid(
                "TRANSCRIPTION_IDLE_STOP_SECS",
                "must be between 10 and 86400",
            ));
        }
        Ok(Self {
            languages,
            vad,
            partials,
            idle_stop: Duration::from_secs(idle_stop),
            model: get("WHISPER_MODEL").map(|m| resolve_model(&m, &data_dir(&get))),
            language,
            threads,
            workers,
        })
    }
}

/// `DATA_DIR` (default `./data`) from a lookup that already treats empty as unset.
pub(crate) fn data_dir(get: &impl Fn(&str) -> Option<String>) -> PathBuf {
    get("DATA_DIR").map_or_else(|| PathBuf::from("./data"), PathBuf::from)
}

/// Where `webcall model fetch` puts models and where model names resolve: `DATA_DIR/models`.
#[must_use]
pub fn models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}

/// `WHISPER_MODEL` as a file: a catalog name (`base`, `small.en-q8_0`: no path separator and
/// no `.bin`) is the file `webcall model fetch NAME` writes, `DATA_DIR/models/ggml-NAME.bin`;
/// anything else is a path, as before (a file without an extension in the working directory
/// is `./name`).
#[must_use]
pub fn resolve_model(value: &str, data_dir: &Path) -> PathBuf {
    if transcriber::catalog::is_model_name(value) {
        models_dir(data_dir).join(transcriber::catalog::file_name(value))
    } else {
        PathBuf::from(value)
    }
}

impl Settings {
    /// Reads the process environment.
    ///
    /// # Errors
    /// The first variable whose value can't be used.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of the real environment.
    ///
    /// # Errors
    /// The first variable whose value can't be used.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // An empty variable means "not set": that is what `FOO=` in a .env file says.
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let app_env = match get("APP_ENV").as_deref() {
            None | Some("dev") | Some("development") => AppEnv::Dev,
            Some("prod") | Some("production") => AppEnv::Prod,
            Some(other) => {
                return Err(invalid(
                    "APP_ENV",
                    format!("expected dev or prod, got {other:?}"),
                ))
            }
        };
        let port = parse_or("PORT", get("PORT"), 8080u16, "a port number 0-65535")?;
        let bind = parse_or(
            "BIND",
            get("BIND"),
            IpAddr::from([127, 0, 0, 1]),
            "an IP address such as 127.0.0.1 or 0.0.0.0",
        )?;

        let jwt_secret = get("JWT_SECRET");
        if let Some(secret) = &jwt_secret {
            if secret.len() < 32 {
                return Err(invalid("JWT_SECRET", "must be at least 32 characters long"));
            }
        }
        let registration_secret = get("REGISTRATION_SECRET");
        if let Some(secret) = &registration_secret {
            if secret.len() < 8 {
                return Err(invalid(
                    "REGISTRATION_SECRET",
                    "must be at least 8 characters long",
                ));
            }
        }
        if app_env == AppEnv::Prod {
            if jwt_secret.is_none() {
                return Err(invalid("JWT_SECRET", "must be set when APP_ENV=prod"));
            }
            if registration_secret.is_none() {
                return Err(invalid(
                    "REGISTRATION_SECRET",
                    "must be set when APP_ENV=prod",
                ));
            }
        }

        let database_url = get("DATABASE_URL");
        if let Some(url) = &database_url {
            let known = ["postgres://", "postgresql://", "sqlite:"];
            if !known.iter().any(|p| url.starts_with(p)) {
                return Err(invalid(
                    "DATABASE_URL",
                    "expected a postgres://… or sqlite:… URL",
                ));
            }
        }
        let redis_url = get("REDIS_URL");
        if let Some(url) = &redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid("REDIS_URL", "expected a redis://… URL"));
            }
        }
        let cluster_secret = get("CLUSTER_SECRET");
        if cluster_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(invalid(
                "CLUSTER_SECRET",
                "must be at least 32 characters long",
            ));
        }

        let ice = IceServers {
            stun_urls: url_list("STUN_SERVERS", get("STUN_SERVERS"), &["stun:", "stuns:"])?,
            turn_urls: fallback_order(url_list(
                "TURN_URLS",
                get("TURN_URLS"),
                &["turn:", "turns:"],
            )?),
            turn_username: get("TURN_USERNAME"),
            turn_password: get("TURN_PASSWORD").map(SecretString::from),
            turn_shared_secret: get("TURN_SHARED_SECRET").map(SecretString::from),
            turn_credential_ttl: std::time::Duration::from_secs(parse_or(
                "TURN_CREDENTIAL_TTL_SECS",
                get("TURN_CREDENTIAL_TTL_SECS"),
                3_600u64,
                "a number of seconds",
            )?),
        };
        let static_credential = ice.turn_username.is_some() || ice.turn_password.is_some();
        if ice.turn_shared_secret.is_some() && static_credential {
            return Err(invalid(
                "TURN_SHARED_SECRET",
                "use either TURN_SHARED_SECRET or TURN_USERNAME/TURN_PASSWORD, not both",
            ));
        }
        if ice.turn_shared_secret.is_some() && ice.turn_urls.is_empty() {
            return Err(invalid(
                "TURN_SHARED_SECRET",
                "is set but TURN_URLS is empty: the secret is for those servers",
            ));
        }
        if !ice.turn_urls.is_empty()
            && ice.turn_shared_secret.is_none()
            && (ice.turn_username.is_none() || ice.turn_password.is_none())
        {
            return Err(invalid(
                "TURN_USERNAME",
                "TURN_URLS is set, so TURN_SHARED_SECRET (or TURN_USERNAME and TURN_PASSWORD) must be set too",
            ));
        }
        if !(60..=7 * 86_400).contains(&ice.turn_credential_ttl.as_secs()) {
            return Err(invalid(
                "TURN_CREDENTIAL_TTL_SECS",
                "must be between 60 and 604800 (7 days)",
            ));
        }

        let cors_origins = get("CORS_ORIGINS")
            .map(|v| split_list(&v))
            .unwrap_or_default()
            .into_iter()
            .map(|origin| {
                let well_formed = (origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/');
                match HeaderValue::from_str(&origin) {
                    Ok(value) if well_formed => Ok(value),
                    _ => Err(invalid(
                        "CORS_ORIGINS",
                        format!("{origin:?} is not an origin like https://call.example.org"),
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;

        let bcrypt_cost = parse_or(
            "BCRYPT_COST",
            get("BCRYPT_COST"),
            bcrypt::DEFAULT_COST,
            "a number 4-31",
        )?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(invalid("BCRYPT_COST", "must be between 4 and 31"));
        }
        let jwt_ttl_secs = parse_or(
            "JWT_TTL_SECS",
            get("JWT_TTL_SECS"),
            7 * 24 * 3600u64,
            "a number of seconds",
        )?;
        if jwt_ttl_secs == 0 {
            return Err(invalid("JWT_TTL_SECS", "must be positive"));
        }
        let rate_limits = RateLimits {
            register_per_min: per_minute("RATE_LIMIT_REGISTER", get("RATE_LIMIT_REGISTER"), 10)?,
            login_per_min: per_minute("RATE_LIMIT_LOGIN", get("RATE_LIMIT_LOGIN"), 20)?,
            login_account_per_min: per_minute(
                "RATE_LIMIT_LOGIN_ACCOUNT",
                get("RATE_LIMIT_LOGIN_ACCOUNT"),
                10,
            )?,
            room_create_per_min: per_minute(
                "RATE_LIMIT_ROOM_CREATE",
                get("RATE_LIMIT_ROOM_CREATE"),
                30,
            )?,
            chat_per_min: per_minute("RATE_LIMIT_CHAT", get("RATE_LIMIT_CHAT"), 60)?,
            keys_per_min: per_minute("RATE_LIMIT_KEYS", get("RATE_LIMIT_KEYS"), 5)?,
            invite_per_min: per_minute("RATE_LIMIT_INVITE", get("RATE_LIMIT_INVITE"), 10)?,
        };
        let trust_proxy = parse_or("TRUST_PROXY", get("TRUST_PROXY"), false, "true or false")?;
        let max_body_bytes = parse_or(
            "MAX_BODY_BYTES",
            get("MAX_BODY_BYTES"),
            64 * 1024usize,
            "a number of bytes",
        )?;

        let media = media_settings(&get, bind)?;
        let ws_idle_secs = parse_or(
            "WS_IDLE_TIMEOUT_SECS",
            get("WS_IDLE_TIMEOUT_SECS"),
            30u64,
            "a number of seconds",
        )?;
        if !(1..=3600).contains(&ws_idle_secs) {
            return Err(invalid(
                "WS_IDLE_TIMEOUT_SECS",
                "must be between 1 and 3600",
            ));
        }

        let invite_secs = parse_or(
            "INVITE_TIMEOUT_SECS",
            get("INVITE_TIMEOUT_SECS"),
            45u64,
            "a number of seconds",
        )?;
        if !(5..=600).contains(&invite_secs) {
            return Err(invalid("INVITE_TIMEOUT_SECS", "must be between 5 and 600"));
        }
        let push = push_settings(&get, app_env)?;
        let ws_ticket_secs = parse_or(
            "WS_TICKET_TTL_SECS",
            get("WS_TICKET_TTL_SECS"),
            30u64,
            "a number of seconds",
        )?;
        if !(1..=300).contains(&ws_ticket_secs) {
            return Err(invalid("WS_TICKET_TTL_SECS", "must be between 1 and 300"));
        }
        let metrics_token = get("METRICS_TOKEN");
        if metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(invalid(
                "METRICS_TOKEN",
                "must be at least 16 characters long",
            ));
        }

        Ok(Self {
            app_env,
            bind,
            port,
            jwt_secret: jwt_secret.map(SecretString::from),
            registration_secret: registration_secret.map(SecretString::from),
            database_url,
            redis_url,
            redis_prefix: get("REDIS_PREFIX").unwrap_or_else(|| "webcall".to_owned()),
            cluster_secret: cluster_secret.map(SecretString::from),
            data_dir: data_dir(&get),
            static_dir: get("STATIC_DIR").map_or_else(|| PathBuf::from("./static"), PathBuf::from),
            ice,
            media,
            cors_origins,
            bcrypt_cost,
            jwt_ttl: Duration::from_secs(jwt_ttl_secs),
            rate_limits,
            trust_proxy,
            max_body_bytes,
            ws_idle_timeout: Duration::from_secs(ws_idle_secs),
            whisper: WhisperSettings::from_lookup(&lookup)?,
            summary: SummarySettings::from_lookup(&get)?,
            telegram: TelegramSettings::from_lookup(&get)?,
            invite_timeout: Duration::from_secs(invite_secs),
            push,
            limits: ServerLimits::from_lookup(&get)?,
            caps: UserCaps::from_lookup(&get)?,
            ws_ticket_ttl: Duration::from_secs(ws_ticket_secs),
            metrics_token: metrics_token.map(SecretString::from),
        })
    }
}

fn push_settings(
    get: &impl Fn(&str) -> Option<String>,
    app_env: AppEnv,
) -> Result<PushSettings, ConfigError> {
    let vapid_subject =
        get("VAPID_SUBJECT").unwrap_or_else(|| "mailto:webcall@localhost".to_owned());
    if !(vapid_subject.starts_with("mailto:") || vapid_subject.starts_with("https://")) {
        return Err(invalid(
            "VAPID_SUBJECT",
            "must be a mailto: address or an https:// URL",
        ));
    }
    let retry_ms = parse_or(
        "PUSH_RETRY_BASE_MS",
        get("PUSH_RETRY_BASE_MS"),
        1000u64,
        "a number of milliseconds",
    )?;
    if !(10..=60_000).contains(&retry_ms) {
        return Err(invalid(
            "PUSH_RETRY_BASE_MS",
            "must be between 10 and 60000",
        ));
    }
    let claim_secs = parse_or(
        "PUSH_CLAIM_IDLE_SECS",
        get("PUSH_CLAIM_IDLE_SECS"),
        300u64,
        "a number of seconds",
    )?;
    if !(1..=3600).contains(&claim_secs) {
        return Err(invalid(
            "PUSH_CLAIM_IDLE_SECS",
            "must be between 1 and 3600",
        ));
    }
    if get("VAPID_PUBLIC_KEY").is_some() && get("VAPID_PRIVATE_KEY").is_none() {
        return Err(invalid(
            "VAPID_PUBLIC_KEY",
            "is only used with VAPID_PRIVATE_KEY (the key pair is generated when neither is set)",
        ));
    }
    let allow_private = match get("PUSH_ALLOW_PRIVATE").as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => return Err(invalid("PUSH_ALLOW_PRIVATE", "expected 1 or 0")),
    };
    if allow_private && app_env == AppEnv::Prod {
        return Err(invalid(
            "PUSH_ALLOW_PRIVATE",
            "is for tests and development only and can't be set with APP_ENV=prod \
             (any user could make the server POST into its private network)",
        ));
    }
    Ok(PushSettings {
        vapid_private_key: get("VAPID_PRIVATE_KEY").map(SecretString::from),
        vapid_public_key: get("VAPID_PUBLIC_KEY"),
        vapid_subject,
        retry_base: Duration::from_millis(retry_ms),
        claim_idle: Duration::from_secs(claim_secs),
        allow_private,
    })
}

fn media_settings(
    get: &impl Fn(&str) -> Option<String>,
    bind: IpAddr,
) -> Result<MediaSettings, ConfigError> {
    let media_bind = parse_or("SFU_BIND", get("SFU_BIND"), bind, "an IP address")?;
    let public_ip: Option<IpAddr> = match get("SFU_PUBLIC_IP") {
        None => None,
        Some(raw) => Some(raw.parse().map_err(|_| {
            invalid(
                "SFU_PUBLIC_IP",
                format!("expected an IP address, got {raw:?}"),
            )
        })?),
    };
    if media_bind.is_unspecified() && public_ip.is_none() {
        // 0.0.0.0 can't be put in an ICE candidate: browsers need the address to send to.
        return Err(invalid(
            "SFU_PUBLIC_IP",
            "must be set (the address browsers reach) when the media plane binds to all interfaces",
        ));
    }
    let udp_port = parse_or(
        "SFU_UDP_PORT",
        get("SFU_UDP_PORT"),
        0u16,
        "a UDP port number (0 = any free port)",
    )?;
    let tcp_port = match get("SFU_TCP_PORT") {
        Some(raw) if raw.trim().eq_ignore_ascii_case("off") => None,
        raw => Some(parse_or(
            "SFU_TCP_PORT",
            raw,
            0u16,
            "a TCP port number (0 = any free port) or off",
        )?),
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let shards = parse_or(
        "SFU_SHARDS",
        get("SFU_SHARDS"),
        cores,
        "a number of media loops",
    )?;
    if !(1..=64).contains(&shards) {
        return Err(invalid("SFU_SHARDS", "must be between 1 and 64"));
    }
    let grace_secs = parse_or(
        "SFU_DISCONNECT_GRACE_SECS",
        get("SFU_DISCONNECT_GRACE_SECS"),
        20u64,
        "a number of seconds",
    )?;
    if !(1..=600).contains(&grace_secs) {
        return Err(invalid(
            "SFU_DISCONNECT_GRACE_SECS",
            "must be between 1 and 600",
        ));
    }
    let defaults = sfu::AudioSlots::default();
    // The names before audio slots still work (same meaning), so an upgrade keeps its setting.
    let (slots_var, slots_raw) = renamed(get, "SFU_AUDIO_SLOTS", "SFU_AUDIO_FORWARD_TOP");
    let slots = parse_or(
        slots_var,
        slots_raw,
        defaults.slots,
        "a number of audio slots (0 = no room is ever large)",
    )?;
    if slots > MAX_AUDIO_SLOTS {
        return Err(invalid(slots_var, "must be at most 8"));
    }
    let (above_var, above_raw) = renamed(get, "SFU_AUDIO_SLOTS_ABOVE", "SFU_AUDIO_FORWARD_ABOVE");
    let above = parse_or(
        above_var,
        above_raw,
        defaults.above,
        "a number of participants",
    )?;
    let node_capacity = parse_or(
        "NODE_CAPACITY",
        get("NODE_CAPACITY"),
        500usize,
        "a number of participants",
    )?;
    if node_capacity == 0 {
        return Err(invalid("NODE_CAPACITY", "must be at least 1"));
    }
    let drain_secs = parse_or(
        "DRAIN_TIMEOUT_SECS",
        get("DRAIN_TIMEOUT_SECS"),
        0u64,
        "a number of seconds",
    )?;
    if drain_secs > 3600 {
        return Err(invalid("DRAIN_TIMEOUT_SECS", "must be at most 3600"));
    }
    Ok(MediaSettings {
        node_capacity,
        drain_timeout: std::time::Duration::from_secs(drain_secs),
        bind: media_bind,
        public_ip,
        udp_port,
        tcp_port,
        shards,
        disconnect_grace: std::time::Duration::from_secs(grace_secs),
        audio_slots: (slots > 0).then_some(sfu::AudioSlots { slots, above }),
    })
}

/// More voices at once than anyone follows; each slot is an m-line every listener holds.
const MAX_AUDIO_SLOTS: usize = 8;

/// A setting read under its current name, or else under the name it had before.
fn renamed(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    old: &'static str,
) -> (&'static str, Option<String>) {
    match get(name) {
        Some(v) => (name, Some(v)),
        None => (old, get(old)),
    }
}

fn parse_or<T: std::str::FromStr>(
    var: &'static str,
    raw: Option<String>,
    default: T,
    expected: &str,
) -> Result<T, ConfigError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|_| invalid(var, format!("expected {expected}, got {raw:?}"))),
    }
}

fn per_minute(var: &'static str, raw: Option<String>, default: u32) -> Result<u32, ConfigError> {
    let value = parse_or(var, raw, default, "requests per minute (a positive number)")?;
    if value == 0 {
        return Err(invalid(var, "must be at least 1 request per minute"));
    }
    Ok(value)
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn url_list(
    var: &'static str,
    raw: Option<String>,
    schemes: &[&str],
) -> Result<Vec<String>, ConfigError> {
    let urls = raw.map(|v| split_list(&v)).unwrap_or_default();
    for url in &urls {
        if !schemes.iter().any(|s| url.starts_with(s)) {
            return Err(invalid(
                var,
                format!("{url:?} must start with {}", schemes.join(" or ")),
            ));
        }
    }
    Ok(urls)
}

/// TURN URLs in the order a client should fall back through them: UDP (the cheapest path
/// that works), then TCP, then TLS (`turns:`, usually on 443, which gets through networks that
/// pass nothing else). Otherwise the operator's order is kept.
fn fallback_order(mut urls: Vec<String>) -> Vec<String> {
    let rank = |url: &String| {
        let transport = url
            .split_once("?transport=")
            .map_or("udp", |(_, t)| t)
            .to_ascii_lowercase();
        match (url.starts_with("turns:"), transport.as_str()) {
            (true, _) => 2,
            (false, "tcp") => 1,
            _ => 0,
        }
    };
    urls.sort_by_key(rank);
    urls
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn turn_urls_are_handed_out_udp_then_tcp_then_tls() {
        let urls = fallback_order(
            [
                "turns:t.example:443?transport=tcp",
                "turn:t.example:3478?transport=tcp",
                "turn:t.example:3478",
                "turn:u.example:3478?transport=udp",
            ]
            .map(str::to_owned)
            .to_vec(),
        );
        assert_eq!(
            urls,
            [
                "turn:t.example:3478",
                "turn:u.example:3478?transport=udp",
                "turn:t.example:3478?transport=tcp",
                "turns:t.example:443?transport=tcp",
            ]
        );
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn no_configuration_gives_the_embedded_defaults() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.port, 8080);
        assert_eq!(s.bind.to_string(), "127.0.0.1");
        assert_eq!(s.app_env, AppEnv::Dev);
        assert!(s.database_url.is_none() && s.redis_url.is_none());
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.whisper.model, None);
        assert_eq!(s.whisper.language, None, "auto-detect by default");
        assert_eq!(s.whisper.workers, 1);
        assert!((1..=2).contains(&s.whisper.threads));
        assert!(s.summary.model.is_none(), "heuristic summaries by default");
        assert_eq!((s.summary.max_messages, s.summary.min_chars), (200, 60));
        assert!(s.telegram.is_none());
        assert_eq!(
            s.media.audio_slots,
            Some(sfu::AudioSlots {
                slots: 3,
                above: 12
            }),
            "rooms of more than 12 give each listener 3 audio slots"
        );
        let never_large = settings(&[("SFU_AUDIO_SLOTS", "0")]).expect("valid");
        assert_eq!(never_large.media.audio_slots, None);
        let old_names = settings(&[
            ("SFU_AUDIO_FORWARD_TOP", "2"),
            ("SFU_AUDIO_FORWARD_ABOVE", "0"),
        ])
        .expect("valid");
        assert_eq!(
            old_names.media.audio_slots,
            Some(sfu::AudioSlots { slots: 2, above: 0 }),
            "the names before audio slots are still read"
        );
    }

    #[test]
    fn the_model_name_drops_an_openai_prefix_but_keeps_local_tags() {
        let s = settings(&[
            ("AI_SUMMARY_ENABLED", "true"),
            ("AI_MODEL_PROVIDER", "openai:gpt-4o-mini"),
            ("AI_MODEL_FALLBACK", "llama3.1:8b"),
            ("AI_BASE_URL", "http://127.0.0.1:8080/v1/"),
        ])
        .expect("valid");
        let model = s.summary.model.expect("model configured");
        assert_eq!(model.model, "gpt-4o-mini");
        assert_eq!(model.fallback.as_deref(), Some("llama3.1:8b"));
        assert_eq!(model.base_url, "http://127.0.0.1:8080/v1");
        assert!(model.api_key.is_none());
    }

    #[test]
    fn whisper_settings_are_read_and_auto_means_detect() {
        let s = settings(&[
            ("WHISPER_MODEL", "/models/ggml-base.bin"),
            ("WHISPER_LANGUAGE", "ru"),
            ("WHISPER_THREADS", "4"),
            ("WHISPER_WORKERS", "3"),
        ])
        .expect("valid");
        assert_eq!(
            s.whisper.model,
            Some(PathBuf::from("/models/ggml-base.bin"))
        );
        assert_eq!(s.whisper.language.as_deref(), Some("ru"));
        assert_eq!((s.whisper.threads, s.whisper.workers), (4, 3));
        let s = settings(&[("WHISPER_LANGUAGE", "Auto")]).expect("valid");
        assert_eq!(s.whisper.language, None);
        let s = settings(&[("WHISPER_LANGUAGE", "ru, en")]).expect("valid");
        assert_eq!(s.whisper.language, None, "a list is detected among");
        assert_eq!(s.whisper.languages, vec!["ru".to_owned(), "en".to_owned()]);
        assert!(settings(&[("WHISPER_LANGUAGE", "ru,xx")]).is_err());
    }

    #[test]
    fn a_whisper_model_name_resolves_under_data_dir_models() {
        let s =
            settings(&[("WHISPER_MODEL", "base"), ("DATA_DIR", "/srv/webcall")]).expect("valid");
        assert_eq!(
            s.whisper.model,
            Some(PathBuf::from("/srv/webcall/models/ggml-base.bin"))
        );
        let s = settings(&[("WHISPER_MODEL", " small.en-q8_0 ")]).expect("valid");
        assert_eq!(
            s.whisper.model,
            Some(PathBuf::from("./data/models/ggml-small.en-q8_0.bin")),
            "default DATA_DIR, value trimmed"
        );
        // `webcall transcribe` reads only the WHISPER_* settings and DATA_DIR.
        let w = WhisperSettings::from_lookup(&|k: &str| {
            (k == "WHISPER_MODEL").then(|| "large-v3-turbo".to_owned())
        })
        .expect("valid");
        assert_eq!(
            w.model,
            Some(PathBuf::from("./data/models/ggml-large-v3-turbo.bin"))
        );
    }

    #[test]
    fn a_whisper_model_path_stays_a_path() {
        for path in [
            "/models/ggml-base.bin",
            "ggml-base.bin",
            "models/base",
            "./base",
            "../models/base.en",
        ] {
            let s =
                settings(&[("WHISPER_MODEL", path), ("DATA_DIR", "/srv/webcall")]).expect("valid");
            assert_eq!(s.whisper.model, Some(PathBuf::from(path)), "{path}");
        }
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("PORT", "eighty")], "PORT"),
            (&[("PORT", "70000")], "PORT"),
            (&[("BIND", "localhost:80")], "BIND"),
            (&[("APP_ENV", "staging")], "APP_ENV"),
            (&[("APP_ENV", "prod")], "JWT_SECRET"),
            (
                &[("APP_ENV", "prod"), ("JWT_SECRET", &"s".repeat(40))],
                "REGISTRATION_SECRET",
            ),
            (&[("JWT_SECRET", "short")], "JWT_SECRET"),
            (&[("CLUSTER_SECRET", "short")], "CLUSTER_SECRET"),
            (&[("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (&[("REDIS_URL", "localhost")], "REDIS_URL"),
            (&[("STUN_SERVERS", "stun:a:3478,http://b")], "STUN_SERVERS"),
            (&[("TURN_URLS", "turn:t:3478")], "TURN_USERNAME"),
            (&[("TURN_SHARED_SECRET", "s")], "TURN_SHARED_SECRET"),
            (
                &[
                    ("TURN_URLS", "turn:t:3478"),
                    ("TURN_SHARED_SECRET", "s"),
                    ("TURN_PASSWORD", "p"),
                ],
                "TURN_SHARED_SECRET",
            ),
            (
                &[
                    ("TURN_URLS", "turn:t:3478"),
                    ("TURN_SHARED_SECRET", "s"),
                    ("TURN_CREDENTIAL_TTL_SECS", "5"),
                ],
                "TURN_CREDENTIAL_TTL_SECS",
            ),
            (&[("CORS_ORIGINS", "https://a.example/")], "CORS_ORIGINS"),
            (&[("BCRYPT_COST", "40")], "BCRYPT_COST"),
            (&[("RATE_LIMIT_LOGIN", "0")], "RATE_LIMIT_LOGIN"),
            (&[("BIND", "0.0.0.0")], "SFU_PUBLIC_IP"),
            (&[("SFU_PUBLIC_IP", "example.org")], "SFU_PUBLIC_IP"),
            (&[("SFU_UDP_PORT", "99999")], "SFU_UDP_PORT"),
            (&[("SFU_TCP_PORT", "tcp")], "SFU_TCP_PORT"),
            (&[("SFU_SHARDS", "0")], "SFU_SHARDS"),
            (
                &[("SFU_DISCONNECT_GRACE_SECS", "0")],
                "SFU_DISCONNECT_GRACE_SECS",
            ),
            (
                &[("SFU_DISCONNECT_GRACE_SECS", "soon")],
                "SFU_DISCONNECT_GRACE_SECS",
            ),
            (&[("SFU_AUDIO_SLOTS", "three")], "SFU_AUDIO_SLOTS"),
            (&[("SFU_AUDIO_SLOTS", "9")], "SFU_AUDIO_SLOTS"),
            (
                &[("SFU_AUDIO_FORWARD_TOP", "three")],
                "SFU_AUDIO_FORWARD_TOP",
            ),
            (&[("SFU_AUDIO_SLOTS_ABOVE", "-1")], "SFU_AUDIO_SLOTS_ABOVE"),
            (&[("RATE_LIMIT_CHAT", "-1")], "RATE_LIMIT_CHAT"),
            (&[("WS_IDLE_TIMEOUT_SECS", "0")], "WS_IDLE_TIMEOUT_SECS"),
            (&[("WHISPER_LANGUAGE", "english")], "WHISPER_LANGUAGE"),
            (&[("WHISPER_THREADS", "0")], "WHISPER_THREADS"),
            (&[("WHISPER_THREADS", "two")], "WHISPER_THREADS"),
            (&[("WHISPER_WORKERS", "0")], "WHISPER_WORKERS"),
            (&[("WHISPER_WORKERS", "100")], "WHISPER_WORKERS"),
            (&[("AI_SUMMARY_ENABLED", "yes")], "AI_SUMMARY_ENABLED"),
            (&[("AI_SUMMARY_ENABLED", "true")], "AI_MODEL_PROVIDER"),
            (
                &[
                    ("AI_SUMMARY_ENABLED", "true"),
                    ("AI_MODEL_PROVIDER", "openai:m"),
                    ("AI_BASE_URL", "localhost:8000"),
                ],
                "AI_BASE_URL",
            ),
            (
                &[
                    ("AI_SUMMARY_ENABLED", "true"),
                    ("AI_MODEL_PROVIDER", "m"),
                    ("AI_TIMEOUT_SECS", "0"),
                ],
                "AI_TIMEOUT_SECS",
            ),
            (
                &[("AI_SUMMARY_MAX_MESSAGES", "0")],
                "AI_SUMMARY_MAX_MESSAGES",
            ),
            (&[("AI_SUMMARY_MIN_CHARS", "-5")], "AI_SUMMARY_MIN_CHARS"),
            (
                &[("AI_SUMMARY_FLUSH_SECS", "1000")],
                "AI_SUMMARY_FLUSH_SECS",
            ),
            (
                &[("TELEGRAM_WEBHOOK_SECRET", "a-secret-of-twenty-chars")],
                "TELEGRAM_BOT_TOKEN",
            ),
            (
                &[("TELEGRAM_BOT_TOKEN", "no colon here")],
                "TELEGRAM_BOT_TOKEN",
            ),
            (
                &[
                    ("TELEGRAM_BOT_TOKEN", "1:abc"),
                    ("TELEGRAM_WEBHOOK_SECRET", "short"),
                ],
                "TELEGRAM_WEBHOOK_SECRET",
            ),
            (
                &[
                    ("TELEGRAM_BOT_TOKEN", "1:abc"),
                    ("TELEGRAM_CHAT_ID", "my chat"),
                ],
                "TELEGRAM_CHAT_ID",
            ),
            (
                &[
                    ("TELEGRAM_BOT_TOKEN", "1:abc"),
                    ("TELEGRAM_API_BASE", "api.telegram.org"),
                ],
                "TELEGRAM_API_BASE",
            ),
        ];
        for (pairs, var) in cases {
            let err = settings(pairs).expect_err(var);
            assert_eq!(err.var, *var, "{pairs:?} -> {err}");
            assert!(err.to_string().starts_with(var));
        }
    }

    #[test]
    fn push_to_private_addresses_is_off_by_default_and_refused_in_prod() {
        assert!(!settings(&[]).expect("valid").push.allow_private);
        let dev = settings(&[("PUSH_ALLOW_PRIVATE", "1")]).expect("valid");
        assert!(dev.push.allow_private);
        let err = settings(&[
            ("APP_ENV", "prod"),
            ("JWT_SECRET", &"j".repeat(32)),
            ("REGISTRATION_SECRET", "let-me-in-please"),
            ("PUSH_ALLOW_PRIVATE", "1"),
        ])
        .expect_err("refused in prod");
        assert_eq!(err.var, "PUSH_ALLOW_PRIVATE");
        assert_eq!(
            settings(&[("PUSH_ALLOW_PRIVATE", "yes")])
                .expect_err("not a flag")
                .var,
            "PUSH_ALLOW_PRIVATE"
        );
    }

    #[test]
    fn lists_are_split_on_commas_and_prod_accepts_explicit_secrets() {
        let s = settings(&[
            ("APP_ENV", "prod"),
            ("JWT_SECRET", &"j".repeat(32)),
            ("REGISTRATION_SECRET", "let-me-in-please"),
            ("STUN_SERVERS", "stun:a.example:3478, stun:b.example:3478"),
            ("CORS_ORIGINS", "https://a.example,http://localhost:5173"),
        ])
        .expect("valid");
        assert_eq!(s.ice.stun_urls.len(), 2);
        assert_eq!(s.cors_origins.len(), 2);
        assert_eq!(s.app_env, AppEnv::Prod);
    }
}
