//! Media plane (see the crate README in docs).
