//! Timestamps: Unix milliseconds in the database (portable across SQLite and PostgreSQL),
//! RFC 3339 strings on the wire. Used by the use cases and the HTTP layer alike, so it lives
//! below both.

/// RFC 3339 text of a Unix-millisecond timestamp.
pub fn timestamp(millis: i64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
