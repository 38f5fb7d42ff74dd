//! signaling
