//! WebCall's HTTP API and the `webcall` server.
//!
//! - [`config`]: typed settings from the environment.
//! - [`context`]: the shared state every handler, use case and worker takes.
//! - [`secrets`]: generated-once JWT and registration secrets kept in `DATA_DIR`.
//! - [`domain`]: validated value types (username, password, room name, role).
//! - [`db`]: the store on SQLite or PostgreSQL, with migrations.
//! - [`auth`]: bcrypt hashing off the runtime, JWT issue and verify.
//! - [`app`]: use cases and the permission rules.
//! - [`agent`]: summary input, OpenAI-compatible models, the heuristic summary, prompts.
//! - [`telegram`]: the Bot API client and message formatting.
//! - [`models`]: whisper models in `DATA_DIR/models`: the catalog, fetch with resume and
//!   SHA-256 check, `webcall model`.
//! - [`invites`]: ringing people into calls (in process or on Redis).
//! - [`push`]: WebPush (VAPID, RFC 8291) through a queue with retries.
//! - [`ratelimit`]: in-process or Redis-shared GCRA limits.
//! - [`http`]: routes, extractors, middleware, OpenAPI.
//! - [`listener`]: the HTTP accept loop with its connection cap and timers.
//! - [`realtime`]: the WebSockets' use cases, axum socket adapter, Redis bus.
//! - [`server`] and [`cli`]: start-up, shutdown, the command line.
//! - [`timestamps`]: Unix milliseconds in the database, RFC 3339 on the wire.

pub mod agent;
pub mod app;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod context;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod invites;
pub mod listener;
pub mod models;
pub mod push;
pub mod ratelimit;
pub mod realtime;
pub mod sealed;
pub mod secrets;
pub mod server;
pub mod telegram;
pub mod telemetry;
pub mod timestamps;
