//! What one signed-in user may hold or ask for: public keys, rooms, a room's call, and
//! model-written summaries. Each cap keeps one account from growing a table, a response or
//! the operator's model bill without bound; every default leaves ordinary use far below it.

use super::{invalid, parse_or, ConfigError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCaps {
    /// `E2EE_KEYS_PER_USER` (default 10): public keys kept per user. Publishing one more
    /// deletes the oldest, so `GET /keys/{user}` lists at most this many (newest first).
    pub keys_per_user: usize,
    /// `MAX_ROOMS_PER_USER` (default 100): rooms one user may own; creating one more is a
    /// 409 `room_limit`.
    pub rooms_per_user: usize,
    /// `ROOM_MAX_PARTICIPANTS` (default 200): participants in one room's call; the next joiner
    /// gets the WebSocket error `room_full`.
    pub participants_per_room: usize,
}

fn ranged(
    var: &'static str,
    raw: Option<String>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    let value = parse_or(var, raw, default, "a number")?;
    if !range.contains(&value) {
        return Err(invalid(
            var,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

impl UserCaps {
    /// # Errors
    /// The first variable whose value can't be used.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            keys_per_user: ranged(
                "E2EE_KEYS_PER_USER",
                get("E2EE_KEYS_PER_USER"),
                10,
                1..=1000,
            )?,
            rooms_per_user: ranged(
                "MAX_ROOMS_PER_USER",
                get("MAX_ROOMS_PER_USER"),
                100,
                1..=100_000,
            )?,
            participants_per_room: ranged(
                "ROOM_MAX_PARTICIPANTS",
                get("ROOM_MAX_PARTICIPANTS"),
                200,
                1..=10_000,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_out_of_range_values_name_their_variable() {
        let caps = UserCaps::from_lookup(&|_| None).expect("defaults");
        assert_eq!(
            (
                caps.keys_per_user,
                caps.rooms_per_user,
                caps.participants_per_room
            ),
            (10, 100, 200)
        );
        let err = UserCaps::from_lookup(&|k| (k == "E2EE_KEYS_PER_USER").then(|| "0".to_owned()))
            .expect_err("0 keys");
        assert_eq!(err.var, "E2EE_KEYS_PER_USER");
    }
}
