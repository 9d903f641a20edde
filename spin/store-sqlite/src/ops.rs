//! The four store operations, each one conditional statement plus, when it did not apply, a read of what the
//! key holds now.
//!
//! Reading back after a failed conditional write is two statements, not one, yet still what the WIT asks: the
//! row read is what the key held at the moment of that read, and a call that behaved as "nothing written, here
//! is the live entry" at that moment is a correct atomic answer. Versions are never reused, so a row read back
//! can never carry the version a failed compare-and-swap named.

use crate::bindings::exports::idem::guard::store::{Entry, InsertResult, SwapResult};
use crate::bindings::spin::sqlite::sqlite::Value;
use crate::db::Db;
use crate::error::AdapterError;
use crate::{sql, time};

/// How often `insert-or-get` re-runs when the live row it lost to vanished before it could be read (deleted or
/// expired in between). Each retry means another writer made progress; more than a few means something is wrong.
const INSERT_ATTEMPTS: u32 = 8;

/// One write in this many also sweeps a batch of expired rows, so space is reclaimed without a scheduler.
const SWEEP_ONE_IN: u64 = 16;
const SWEEP_BATCH: i64 = 64;

pub fn get(db: &Db, key: &str) -> Result<Option<Entry>, AdapterError> {
    select_live(db, key, time::now_ms())
}

pub fn insert_or_get(
    db: &Db,
    key: &str,
    value: Vec<u8>,
    ttl_ms: u64,
) -> Result<InsertResult, AdapterError> {
    let now = time::now_ms();
    let mut params = [
        Value::Text(key.to_owned()),
        Value::Blob(value),
        Value::Integer(0),
        Value::Integer(time::expires_at(now, ttl_ms)),
        Value::Integer(now),
    ];
    for _ in 0..INSERT_ATTEMPTS {
        let version = fresh_version();
        params[2] = Value::Integer(version as i64);
        db.execute(sql::INSERT_IF_ABSENT, &params)?;
        if db.changes() == 1 {
            maybe_sweep(db, now, version);
            return Ok(InsertResult::Inserted(version));
        }
        if let Some(entry) = select_live(db, key, now)? {
            return Ok(InsertResult::Exists(entry));
        }
    }
    Err(AdapterError::Contended(INSERT_ATTEMPTS))
}

pub fn compare_and_swap(
    db: &Db,
    key: &str,
    expected: u64,
    value: Vec<u8>,
    ttl_ms: u64,
) -> Result<SwapResult, AdapterError> {
    let now = time::now_ms();
    let version = fresh_version();
    db.execute(
        sql::SWAP_IF_VERSION,
        &[
            Value::Text(key.to_owned()),
            Value::Integer(expected as i64),
            Value::Blob(value),
            Value::Integer(version as i64),
            Value::Integer(time::expires_at(now, ttl_ms)),
            Value::Integer(now),
        ],
    )?;
    if db.changes() == 1 {
        maybe_sweep(db, now, version);
        return Ok(SwapResult::Swapped(version));
    }
    Ok(SwapResult::Conflict(select_live(db, key, now)?))
}

pub fn delete_if_version(db: &Db, key: &str, expected: u64) -> Result<bool, AdapterError> {
    db.execute(
        sql::DELETE_IF_VERSION,
        &[
            Value::Text(key.to_owned()),
            Value::Integer(expected as i64),
            Value::Integer(time::now_ms()),
        ],
    )?;
    Ok(db.changes() == 1)
}

fn select_live(db: &Db, key: &str, now: i64) -> Result<Option<Entry>, AdapterError> {
    let result = db.execute(
        sql::SELECT_LIVE,
        &[Value::Text(key.to_owned()), Value::Integer(now)],
    )?;
    // The key is the primary key: more than one row cannot happen, and the first is the row.
    let Some(row) = result.rows.into_iter().next() else {
        return Ok(None);
    };
    let mut values = row.values.into_iter();
    match (values.next(), values.next()) {
        (Some(Value::Blob(value)), Some(Value::Integer(version))) => Ok(Some(Entry {
            value,
            version: version as u64,
        })),
        // SQLite hands back an empty BLOB as one, but a foreign writer may have stored text.
        (Some(Value::Text(_)), _) => Err(AdapterError::BadRow("value is text, not a blob")),
        _ => Err(AdapterError::BadRow(
            "expected (value BLOB, version INTEGER)",
        )),
    }
}

/// 64 random bits: never reissued for a key in practice, also after the key expired or was deleted, without a
/// shared counter row that every write would have to lock.
fn fresh_version() -> u64 {
    let mut bytes = [0u8; 8];
    // wasi:random does not fail; should it ever, the zeros only risk a clash with another failed draw.
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// Best effort: the write has already succeeded, so a failed sweep is left for a later one.
fn maybe_sweep(db: &Db, now: i64, version: u64) {
    if version.is_multiple_of(SWEEP_ONE_IN) {
        let _ = db.execute(
            sql::SWEEP_EXPIRED,
            &[Value::Integer(now), Value::Integer(SWEEP_BATCH)],
        );
    }
}
