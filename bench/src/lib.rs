//! Clients that talk to a WebCall server the way a browser does, for tests and load runs.
//!
//! - [`rtc_client`]: a WebRTC audio client on the sans-I/O `rtc` core with its own UDP socket:
//!   offers one Opus track, answers server offers, publishes a tone, counts what it receives
//!   per remote participant.
//! - [`call_client`]: a participant as a browser is one: room WebSocket + `RtcClient`.
//! - [`janus`]: the same participant in a Janus VideoRoom, for the side-by-side bench.
//! - [`latency`]: send-time stamps in load runs' payloads and the receivers' delay histogram.
//! - [`impair`]: a lossy, reordering link for a client's media.
//! - [`tone`]: Opus frame sources, 20 ms per packet: a test tone, or PCM (speech from a WAV).
//! - [`ws_request`]: a room WebSocket request with the bearer header.

pub mod call_client;
pub mod impair;
pub mod janus;
pub mod latency;
pub mod rtc_client;
pub mod tone;

/// A WebSocket request to `url` that signs in with `Authorization: Bearer <token>` (a JWT in
/// the URL is refused: it would end up in access logs).
///
/// # Errors
/// When `url` isn't a WebSocket URL or the token can't be a header value.
pub fn ws_request(
    url: &str,
    token: &str,
) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
    use anyhow::Context;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().context("websocket URL")?;
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .context("token as a header")?,
    );
    Ok(req)
}
