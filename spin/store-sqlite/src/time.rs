//! Expiry arithmetic. Times are milliseconds since the Unix epoch, kept in SQLite's signed 64-bit integers.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock, the one the guard reads too, so a lease and the row that holds it expire together.
pub fn now_ms() -> i64 {
    // A clock before 1970 is a host misconfiguration; 0 makes rows look expired sooner, never live for longer.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// When a row written now with `ttl_ms` stops being live. Saturates: a huge TTL means "never", not a wrap into
/// the past that would make the write vanish at once.
pub fn expires_at(now: i64, ttl_ms: u64) -> i64 {
    now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_saturates_instead_of_wrapping() {
        assert_eq!(expires_at(1_000, 500), 1_500);
        assert_eq!(expires_at(1_000, u64::MAX), i64::MAX);
        assert_eq!(expires_at(i64::MAX - 1, 10), i64::MAX);
    }
}
