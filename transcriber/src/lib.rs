//! transcriber
