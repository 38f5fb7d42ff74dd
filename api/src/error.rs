//! The one error type of the HTTP application. Every failure a client can cause maps to a
//! status and a JSON body (see `http::error`); internal failures are logged once and
//! answered with a bare 500 that leaks nothing.

use std::time::Duration;

use crate::db::{Outage, StoreError};
use crate::domain::ValidationError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// The body parsed as JSON but doesn't have the expected shape (missing field, wrong type).
    #[error("{0}")]
    InvalidBody(String),
    #[error("authentication required")]
    Unauthorized,
    /// A WebSocket opened with `?token=`: the JWT would end up in proxy access logs.
    #[error("?token= is not accepted on WebSockets: get a single-use ticket from POST /api/v1/ws-ticket and connect with ?ticket=, or send Authorization: Bearer")]
    TicketRequired,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    /// The user holds as many WebSockets of this kind as allowed.
    #[error("{0}")]
    TooManySockets(String),
    /// The shared rate limiter (Redis) can't be asked, and this endpoint fails closed.
    #[error("rate limiter unavailable; try again shortly")]
    RateLimiterUnavailable { retry_after: Duration },
    /// No speech model is configured (`WHISPER_MODEL`).
    #[error("transcription is unavailable: this server has no speech model configured")]
    TranscriptionUnavailable,
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A feature this server isn't configured for (Telegram without a bot token): 404
    /// `not_enabled`, as for an endpoint that isn't there, not a 503 that says "try later".
    #[error("{0}")]
    NotEnabled(&'static str),
    /// The database is down, restarting or out of connections: nothing was stored.
    #[error("the database is unavailable; nothing was stored, try again shortly")]
    DatabaseUnavailable,
    /// The database's disk is full: nothing was stored.
    #[error("the server's storage is full; nothing was stored")]
    StorageFull,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// An internal failure whose detail goes to the log, never to the client.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Error::Internal(err.to_string())
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        // An outage is the operator's to fix, not a bug: logged as a warning, answered 503.
        match err.outage() {
            Some(Outage::Unavailable) => {
                tracing::warn!(error = %err, "database unavailable");
                Error::DatabaseUnavailable
            }
            Some(Outage::StorageFull) => {
                tracing::warn!(error = %err, "database storage full");
                Error::StorageFull
            }
            None => Error::internal(err),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(err: tokio::task::JoinError) -> Self {
        Error::internal(err)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
