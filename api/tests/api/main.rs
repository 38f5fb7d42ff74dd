//! End-to-end tests of the HTTP API through real sockets, on SQLite by default or on
//! PostgreSQL when `WEBCALL_TEST_DATABASE_URL` is set (see README: Tests).

mod agent;
mod auth;
mod binary;
mod caps;
mod captions;
mod chat;
mod cluster;
mod dm;
mod faults;
mod hardening;
mod helpers;
mod hostile;
mod invites;
mod lossy_network;
mod media;
mod models;
mod moderation;
mod observability;
mod private_redis;
mod push;
mod push_egress;
mod push_sessions;
mod ratelimit;
mod realtime;
mod redis_trust;
mod reliability;
mod rooms;
mod sessions;
mod standin;
mod static_files;
mod telegram;
mod transcription;
mod transcription_load;
mod turn;
