//! Records in Redis, for deployments that outgrow one machine.
//!
//! Each record is a hash `{prefix}{SCOPE/KEY}` with fields `v` (the value) and `n` (the version), expiring by
//! Redis `PEXPIRE`. The braces make the whole name the Cluster hash tag, so a record's key always maps to one
//! slot. `get` is one `HMGET`; every conditional write is one Lua script (`EVALSHA`, loaded on first use): one
//! round trip each, atomic because Redis runs a script without interleaving other commands.
//!
//! Versions are 64 random bits chosen by the client, so they are unique per key without a counter key.

use std::time::Duration;

use redis::{Client, Connection, RedisError, Script, Value};

use super::pool::Pool;
use super::{Entry, InsertResult, Store, StoreError, SwapResult};

#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Prepended to every key, before the hash-tagged part.
    pub prefix: String,
    /// Bound on connecting, and on each command's round trip: a dead Redis yields `unavailable` this quickly.
    pub timeout: Duration,
    pub max_idle_connections: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self { prefix: "idem:".into(), timeout: Duration::from_secs(2), max_idle_connections: 16 }
    }
}

pub struct RedisStore {
    client: Client,
    options: RedisOptions,
    pool: Pool<Connection>,
    insert_or_get: Script,
    compare_and_swap: Script,
    delete_if_version: Script,
}

impl RedisStore {
    /// Connects lazily: a bad URL fails here, an unreachable server on the first call (as `unavailable`).
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, RedisOptions::default())
    }

    pub fn open_with(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(|e| StoreError::Other(format!("invalid Redis URL: {e}")))?;
        Ok(Self {
            client,
            pool: Pool::new(options.max_idle_connections),
            options,
            insert_or_get: Script::new(include_str!("insert_or_get.lua")),
            compare_and_swap: Script::new(include_str!("compare_and_swap.lua")),
            delete_if_version: Script::new(include_str!("delete_if_version.lua")),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{{{key}}}", self.options.prefix)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>) -> Result<T, StoreError> {
        let timeout = self.options.timeout;
        self.pool
            .with(
                || {
                    let conn = self.client.get_connection_with_timeout(timeout)?;
                    conn.set_read_timeout(Some(timeout))?;
                    conn.set_write_timeout(Some(timeout))?;
                    Ok(conn)
                },
                // A server-side error (a script error, OOM) leaves the connection usable; I/O errors do not.
                |e: &RedisError| !is_unavailable(e),
                f,
            )
            .map_err(|e| match is_unavailable(&e) {
                true => StoreError::Unavailable(e.to_string()),
                false => StoreError::Other(e.to_string()),
            })
    }
}

fn is_unavailable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

fn new_version() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

/// `{0, value, version}` or `{0}` / `{1}` from the scripts, into what they mean.
fn current_entry(reply: &[Value]) -> Result<Option<Entry>, StoreError> {
    match reply {
        [_] => Ok(None),
        [_, Value::BulkString(value), Value::BulkString(version)] => {
            let version = std::str::from_utf8(version)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StoreError::Other("a record's version field is not a number".into()))?;
            Ok(Some(Entry { value: value.clone(), version }))
        }
        other => Err(StoreError::Other(format!("unexpected script reply {other:?}"))),
    }
}

fn swapped(reply: &[Value]) -> bool {
    matches!(reply.first(), Some(Value::Int(1)))
}

impl Store for RedisStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let key = self.key(key);
        let (value, version): (Option<Vec<u8>>, Option<String>) =
            self.with(|c| redis::cmd("HMGET").arg(&key).arg("v").arg("n").query(c))?;
        match (value, version) {
            (Some(value), Some(version)) => {
                let version =
                    version.parse().map_err(|_| StoreError::Other(format!("{key}: version is not a number")))?;
                Ok(Some(Entry { value, version }))
            }
            (None, None) => Ok(None),
            _ => Err(StoreError::Other(format!("{key}: record hash is missing a field"))),
        }
    }

    fn insert_or_get(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<InsertResult, StoreError> {
        let version = new_version();
        let key = self.key(key);
        let reply: Vec<Value> = self
            .with(|c| self.insert_or_get.key(&key).arg(value).arg(version.to_string()).arg(ttl_ms.max(1)).invoke(c))?;
        match swapped(&reply) {
            true => Ok(InsertResult::Inserted(version)),
            false => current_entry(&reply)?
                .map(InsertResult::Exists)
                .ok_or_else(|| StoreError::Other("insert refused without a current record".into())),
        }
    }

    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8], ttl_ms: u64) -> Result<SwapResult, StoreError> {
        let version = new_version();
        let key = self.key(key);
        let reply: Vec<Value> = self.with(|c| {
            self.compare_and_swap
                .key(&key)
                .arg(expected.to_string())
                .arg(value)
                .arg(version.to_string())
                .arg(ttl_ms.max(1))
                .invoke(c)
        })?;
        match swapped(&reply) {
            true => Ok(SwapResult::Swapped(version)),
            false => Ok(SwapResult::Conflict(current_entry(&reply)?)),
        }
    }

    fn delete_if_version(&self, key: &str, expected: u64) -> Result<bool, StoreError> {
        let key = self.key(key);
        let deleted: i64 = self.with(|c| self.delete_if_version.key(&key).arg(expected.to_string()).invoke(c))?;
        Ok(deleted == 1)
    }
}
