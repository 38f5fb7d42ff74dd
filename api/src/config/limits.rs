//! What one client may hold or ask of the server: HTTP connections and their timers, sockets
//! per user, and how long a socket may stall. Each limit protects the other users from one
//! client, so every default leaves a real browser far below it.

use std::time::Duration;

use super::{invalid, parse_or, ConfigError};
use crate::listener::HttpLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub http: HttpLimits,
    /// `WS_MAX_SOCKETS_PER_USER`: room sockets per user on this node, and user sockets
    /// likewise (default 16: a user with a dozen tabs still fits).
    pub ws_sockets_per_user: usize,
    /// `WS_SEND_TIMEOUT_SECS`: a socket whose client stops reading for this long is closed
    /// (1013), so it can't stall its own loop or hold memory (default 10).
    pub ws_send_timeout: Duration,
    /// `TRANSCRIPTION_FLUSH_SECS`: at shutdown, speech still in the transcriber gets this long
    /// to become transcript (default 10).
    pub transcription_flush: Duration,
}

fn seconds(
    var: &'static str,
    raw: Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let secs = parse_or(var, raw, default, "a number of seconds")?;
    if !range.contains(&secs) {
        return Err(invalid(
            var,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(Duration::from_secs(secs))
}

impl ServerLimits {
    /// # Errors
    /// The first variable whose value can't be used.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = HttpLimits::default();
        let max_connections = parse_or(
            "HTTP_MAX_CONNECTIONS",
            get("HTTP_MAX_CONNECTIONS"),
            defaults.max_connections,
            "a number of connections",
        )?;
        if !(1..=1_000_000).contains(&max_connections) {
            return Err(invalid(
                "HTTP_MAX_CONNECTIONS",
                "must be between 1 and 1000000",
            ));
        }
        let sockets = parse_or(
            "WS_MAX_SOCKETS_PER_USER",
            get("WS_MAX_SOCKETS_PER_USER"),
            16usize,
            "a number of sockets",
        )?;
        if !(1..=1000).contains(&sockets) {
            return Err(invalid(
                "WS_MAX_SOCKETS_PER_USER",
                "must be between 1 and 1000",
            ));
        }
        Ok(Self {
            http: HttpLimits {
                header_timeout: seconds(
                    "HTTP_HEADER_TIMEOUT_SECS",
                    get("HTTP_HEADER_TIMEOUT_SECS"),
                    defaults.header_timeout.as_secs(),
                    1..=600,
                )?,
                max_connections,
                shutdown_timeout: seconds(
                    "SHUTDOWN_TIMEOUT_SECS",
                    get("SHUTDOWN_TIMEOUT_SECS"),
                    defaults.shutdown_timeout.as_secs(),
                    1..=600,
                )?,
            },
            ws_sockets_per_user: sockets,
            ws_send_timeout: seconds(
                "WS_SEND_TIMEOUT_SECS",
                get("WS_SEND_TIMEOUT_SECS"),
                10,
                1..=600,
            )?,
            transcription_flush: seconds(
                "TRANSCRIPTION_FLUSH_SECS",
                get("TRANSCRIPTION_FLUSH_SECS"),
                10,
                0..=600,
            )?,
        })
    }
}
