//! Clients that talk to a WebCall server the way a browser does, for tests and load runs.
//!
//! - [`rtc_client`]: a WebRTC audio client on the sans-I/O `rtc` core with its own UDP socket:
//!   offers one Opus track, answers server offers, publishes a tone, counts what it receives
//!   per remote participant.
//! - [`call_client`]: a participant as a browser is one: room WebSocket + `RtcClient`.
//! - [`tone`]: Opus frame sources, 20 ms per packet: a test tone, or PCM (speech from a WAV).

pub mod call_client;
pub mod rtc_client;
pub mod tone;
