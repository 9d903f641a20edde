//! The SQL behind each store operation. Parameters are numbered so each statement reads like the WIT call it
//! serves. Times are milliseconds since the Unix epoch; versions are u64 stored bit for bit in SQLite's i64.
//!
//! A row whose `expires_at` is not after "now" is absent for every operation: each statement below states
//! liveness in its own `WHERE`, so an expired row can never be returned, matched or deleted as if it were live,
//! whether or not it has been swept yet.

/// The table and its expiry index, one statement each because Spin prepares one statement per `execute`.
/// A rowid table rather than `WITHOUT ROWID`: values can be large (an outcome of up to 16 MiB), and SQLite keeps
/// large rows better out of the primary-key b-tree.
pub const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS idem_store (
        key TEXT NOT NULL PRIMARY KEY,
        value BLOB NOT NULL,
        version INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS idem_store_expires_at ON idem_store (expires_at)",
];

/// `get`: ?1 key, ?2 now.
pub const SELECT_LIVE: &str =
    "SELECT value, version FROM idem_store WHERE key = ?1 AND expires_at > ?2";

/// `insert-or-get`, the write half: ?1 key, ?2 value, ?3 new version, ?4 expires at, ?5 now.
///
/// A live row makes this a no-op (`changes() = 0`), like `ON CONFLICT DO NOTHING`. An expired row still in the
/// table is absent by definition, so the same statement replaces it (`changes() = 1`) instead of needing a
/// separate delete that another writer could slip between.
pub const INSERT_IF_ABSENT: &str = "INSERT INTO idem_store (key, value, version, expires_at)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (key) DO UPDATE
        SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at
        WHERE idem_store.expires_at <= ?5";

/// `compare-and-swap`: ?1 key, ?2 expected version, ?3 value, ?4 new version, ?5 expires at, ?6 now.
/// Never inserts: an absent key has no row to match.
pub const SWAP_IF_VERSION: &str = "UPDATE idem_store SET value = ?3, version = ?4, expires_at = ?5
    WHERE key = ?1 AND version = ?2 AND expires_at > ?6";

/// `delete-if-version`: ?1 key, ?2 expected version, ?3 now.
pub const DELETE_IF_VERSION: &str =
    "DELETE FROM idem_store WHERE key = ?1 AND version = ?2 AND expires_at > ?3";

/// Reclaims space from expired rows, a bounded batch at a time so no caller pays for a large backlog at once:
/// ?1 now, ?2 batch size.
pub const SWEEP_EXPIRED: &str = "DELETE FROM idem_store WHERE rowid IN
    (SELECT rowid FROM idem_store WHERE expires_at <= ?1 LIMIT ?2)";
