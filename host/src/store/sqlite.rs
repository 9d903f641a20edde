//! The embedded default: records in one SQLite file, shared safely by threads and by processes.
//!
//! Every atomic store step is one SQL statement inside a `BEGIN IMMEDIATE` transaction, which takes SQLite's
//! write lock before reading, so no other connection (in this process or another) can interleave between the
//! check and the write. Expired rows are treated as absent by every statement and swept in the background.
//!
//! Versions are 64 random bits chosen per write: unique per key without a shared counter that every writer
//! would have to update.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::pool::Pool;
use super::{Entry, InsertResult, Store, StoreError, SwapResult};
use crate::clock::{Clock, SystemClock};

/// When a committed write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: every commit is fsynced before it returns. Nothing acknowledged is lost, even on
    /// power failure. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL` in WAL mode: commits survive a crash of the process, but the last ones before a
    /// power failure or OS crash may be lost (and would then run again). Faster.
    Normal,
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub durability: Durability,
    /// How long a statement waits for another connection's write lock before the store reports `unavailable`.
    pub busy_timeout: Duration,
    /// How often expired rows are deleted; `None` leaves them (they are still never returned).
    pub sweep_every: Option<Duration>,
    pub max_idle_connections: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            sweep_every: Some(Duration::from_secs(60)),
            max_idle_connections: 8,
        }
    }
}

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: SqliteOptions,
    clock: Arc<dyn Clock>,
    pool: Pool<Connection>,
    closed: AtomicBool,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS idem_records (
        key        TEXT PRIMARY KEY,
        value      BLOB NOT NULL,
        version    INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS idem_records_expiry ON idem_records (expires_at);
";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with default options and the system clock.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default(), Arc::new(SystemClock))
    }

    pub fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let inner = Arc::new(Inner {
            pool: Pool::new(options.max_idle_connections),
            path,
            options,
            clock,
            closed: AtomicBool::new(false),
        });
        let conn = inner.connect()?;
        conn.execute_batch(SCHEMA).map_err(store_error)?;
        inner.pool.with(|| Ok(conn), |_| true, |_| Ok::<_, StoreError>(()))?;
        if let Some(every) = inner.options.sweep_every {
            spawn_sweeper(Arc::downgrade(&inner), every);
        }
        Ok(Self { inner })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Deletes expired rows now; returns how many.
    pub fn sweep(&self) -> Result<usize, StoreError> {
        self.inner.sweep()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::Relaxed);
    }
}

impl Inner {
    fn connect(&self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(store_error)?;
        conn.busy_timeout(self.options.busy_timeout).map_err(store_error)?;
        let sync = match self.options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.execute_batch(&format!("PRAGMA journal_mode=WAL; PRAGMA synchronous={sync};")).map_err(store_error)?;
        Ok(conn)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection, u64) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let now = self.clock.now_ms();
        self.pool.with(
            || self.connect(),
            |e| !matches!(e, StoreError::Unavailable(_)),
            |conn| f(conn, now).map_err(store_error),
        )
    }

    fn sweep(&self) -> Result<usize, StoreError> {
        self.with(|conn, now| conn.execute("DELETE FROM idem_records WHERE expires_at <= ?1", params![now as i64]))
    }
}

fn spawn_sweeper(inner: Weak<Inner>, every: Duration) {
    let _ = std::thread::Builder::new().name("idem-sqlite-sweep".into()).spawn(move || {
        loop {
            std::thread::sleep(every);
            let Some(inner) = inner.upgrade() else { return };
            if inner.closed.load(Ordering::Relaxed) {
                return;
            }
            if let Err(e) = inner.sweep() {
                tracing::warn!(error = %e, "sweeping expired idem records failed");
            }
        }
    });
}

fn expiry(now: u64, ttl_ms: u64) -> i64 {
    now.saturating_add(ttl_ms).min(i64::MAX as u64) as i64
}

fn new_version() -> i64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now()) as i64
}

// Every statement goes through the connection's statement cache: parsing and planning them again on each call
// cost more than the lookup itself.
fn live(conn: &Connection, key: &str, now: u64) -> rusqlite::Result<Option<Entry>> {
    conn.prepare_cached("SELECT value, version FROM idem_records WHERE key = ?1 AND expires_at > ?2")?
        .query_row(params![key, now as i64], |row| {
            Ok(Entry { value: row.get(0)?, version: row.get::<_, i64>(1)? as u64 })
        })
        .optional()
}

/// Busy and locked mean another writer held the lock past the timeout; I/O and open failures mean the file
/// is unreachable. Both are "try again later", never "absent".
fn store_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen | ErrorCode::SystemIoFailure,
        ) => StoreError::Unavailable(e.to_string()),
        Some(ErrorCode::TooBig) => StoreError::TooLarge(1_000_000_000),
        Some(ErrorCode::DiskFull) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

impl Store for SqliteStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.inner.with(|conn, now| live(conn, key, now))
    }

    fn insert_or_get(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<InsertResult, StoreError> {
        self.inner.with(|conn, now| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let version = new_version();
            // Inserts when absent, overwrites only an expired row: both are "absent" under the contract.
            let changed = tx
                .prepare_cached(
                    "INSERT INTO idem_records (key, value, version, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version,
                         expires_at = excluded.expires_at
                     WHERE idem_records.expires_at <= ?5",
                )?
                .execute(params![key, value, version, expiry(now, ttl_ms), now as i64])?;
            let result = match changed {
                1 => InsertResult::Inserted(version as u64),
                // The write lock is held, so the row that blocked the insert is still there and live.
                _ => InsertResult::Exists(live(&tx, key, now)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?),
            };
            tx.commit()?;
            Ok(result)
        })
    }

    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8], ttl_ms: u64) -> Result<SwapResult, StoreError> {
        self.inner.with(|conn, now| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let version = new_version();
            let changed = tx
                .prepare_cached(
                    "UPDATE idem_records SET value = ?1, version = ?2, expires_at = ?3
                     WHERE key = ?4 AND version = ?5 AND expires_at > ?6",
                )?
                .execute(params![value, version, expiry(now, ttl_ms), key, expected as i64, now as i64])?;
            let result = match changed {
                1 => SwapResult::Swapped(version as u64),
                _ => SwapResult::Conflict(live(&tx, key, now)?),
            };
            tx.commit()?;
            Ok(result)
        })
    }

    fn delete_if_version(&self, key: &str, expected: u64) -> Result<bool, StoreError> {
        self.inner.with(|conn, now| {
            let deleted = conn
                .prepare_cached("DELETE FROM idem_records WHERE key = ?1 AND version = ?2 AND expires_at > ?3")?
                .execute(params![key, expected as i64, now as i64])?;
            Ok(deleted == 1)
        })
    }
}
