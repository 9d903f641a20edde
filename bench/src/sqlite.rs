//! 3. idem on SQLite against the bare SQL it needs, and durable throughput with concurrent callers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use idem_host::store::{Durability, SqliteOptions, SqliteStore};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::Scale;
use crate::report::{Report, per_sec, us};
use crate::stats::{concurrent, interleaved};
use crate::workload::{Cycle, Native, Wasm, claimed_record, completed_record, now_ms};

const TTL_MS: u64 = 30_000 + 86_400_000;

pub fn open_store(path: &Path, durability: Durability) -> Result<SqliteStore> {
    let options = SqliteOptions { durability, sweep_every: None, ..SqliteOptions::default() };
    Ok(SqliteStore::open_with(path, options, Arc::new(idem_host::SystemClock))?)
}

/// A connection configured as `host/src/store/sqlite.rs` configures its own, on the same schema.
pub fn bare_connection(path: &Path, durability: Durability) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!("PRAGMA journal_mode=WAL; PRAGMA synchronous={sync};"))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS idem_records (
            key TEXT PRIMARY KEY, value BLOB NOT NULL, version INTEGER NOT NULL, expires_at INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS idem_records_expiry ON idem_records (expires_at);",
    )?;
    Ok(conn)
}

static VERSION: AtomicU64 = AtomicU64::new(1);

fn version() -> i64 {
    VERSION.fetch_add(1, Ordering::Relaxed) as i64
}

/// The statements idem's SQLite store runs for a cycle, each in the same `BEGIN IMMEDIATE` transaction, but
/// prepared once and cached, with no guard around them.
pub struct SameSql;

impl SameSql {
    fn live(conn: &Connection, key: &str, now: i64) -> rusqlite::Result<Option<(Vec<u8>, i64)>> {
        conn.prepare_cached("SELECT value, version FROM idem_records WHERE key = ?1 AND expires_at > ?2")?
            .query_row(params![key, now], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    }

    /// `insert_or_get`: true when inserted.
    pub fn claim(conn: &mut Connection, key: &str, value: &[u8]) -> rusqlite::Result<bool> {
        let now = now_ms() as i64;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx
            .prepare_cached(
                "INSERT INTO idem_records (key, value, version, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version,
                     expires_at = excluded.expires_at
                 WHERE idem_records.expires_at <= ?5",
            )?
            .execute(params![key, value, version(), now + TTL_MS as i64, now])?;
        if changed == 0 {
            std::hint::black_box(Self::live(&tx, key, now)?);
        }
        tx.commit()?;
        Ok(changed == 1)
    }

    /// `get` then `compare_and_swap`.
    pub fn complete(conn: &mut Connection, key: &str, value: &[u8]) -> rusqlite::Result<bool> {
        let now = now_ms() as i64;
        let Some((_, expected)) = Self::live(conn, key, now)? else {
            return Ok(false);
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx
            .prepare_cached(
                "UPDATE idem_records SET value = ?1, version = ?2, expires_at = ?3
                 WHERE key = ?4 AND version = ?5 AND expires_at > ?6",
            )?
            .execute(params![value, version(), now + 86_400_000, key, expected, now])?;
        tx.commit()?;
        Ok(changed == 1)
    }
}

/// The least SQL that does the job: an insert that does nothing on conflict, then an update; a duplicate is
/// the refused insert and a select. Autocommit, so one implicit transaction per statement.
pub struct MinimalSql;

impl MinimalSql {
    pub fn claim(conn: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<bool> {
        let now = now_ms() as i64;
        let changed = conn
            .prepare_cached(
                "INSERT INTO idem_records (key, value, version, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO NOTHING",
            )?
            .execute(params![key, value, version(), now + TTL_MS as i64])?;
        if changed == 0 {
            let v: Option<Vec<u8>> = conn
                .prepare_cached("SELECT value FROM idem_records WHERE key = ?1")?
                .query_row(params![key], |r| r.get(0))
                .optional()?;
            std::hint::black_box(v);
        }
        Ok(changed == 1)
    }

    pub fn complete(conn: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<bool> {
        let changed = conn
            .prepare_cached("UPDATE idem_records SET value = ?1, version = ?2 WHERE key = ?3")?
            .execute(params![value, version(), key])?;
        Ok(changed == 1)
    }
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

pub fn run(r: &mut Report, s: &Scale, dir: &Path, runtime: &idem_host::Runtime) -> Result<()> {
    r.section("3. SQLite: idem vs the bare SQL it needs");
    r.line("Single thread, sequential, each variant on its own database file in `target/bench-tmp` (same disk). *same SQL*: the statements `host/src/store/sqlite.rs` runs (`BEGIN IMMEDIATE` + upsert; `SELECT` then `BEGIN IMMEDIATE` + conditional `UPDATE`), prepared once. *minimal SQL*: `INSERT … ON CONFLICT DO NOTHING` + `UPDATE`, autocommit. *native guard*: the guard logic compiled natively over the real `SqliteStore`, which separates the wasm cost from the store's.\n");
    for (durability, cycles) in [(Durability::Full, s.sqlite_full), (Durability::Normal, s.sqlite_normal)] {
        let tag = match durability {
            Durability::Full => "full",
            Durability::Normal => "normal",
        };
        let same = std::sync::Mutex::new(bare_connection(&fresh(dir, &format!("same-{tag}.db")), durability)?);
        let minimal = bare_connection(&fresh(dir, &format!("minimal-{tag}.db")), durability)?;
        let native =
            Native(crate::native::guard(Arc::new(open_store(&fresh(dir, &format!("native-{tag}.db")), durability)?)));
        let wasm = Wasm(
            idem_host::Guard::builder()
                .runtime(runtime.clone())
                .store(open_store(&fresh(dir, &format!("idem-{tag}.db")), durability)?)
                .build()?,
        );
        let now = now_ms();
        let op = |v: usize, cycle: bool, key: &str, i: usize| -> Result<()> {
            match v {
                0 => {
                    let mut c = same.lock().unwrap();
                    let ok = SameSql::claim(&mut c, key, &claimed_record(i, now))?;
                    if cycle {
                        anyhow::ensure!(ok && SameSql::complete(&mut c, key, &completed_record(i, now))?);
                    } else {
                        anyhow::ensure!(!ok);
                    }
                }
                1 => {
                    let ok = MinimalSql::claim(&minimal, key, &claimed_record(i, now))?;
                    if cycle {
                        anyhow::ensure!(ok && MinimalSql::complete(&minimal, key, &completed_record(i, now))?);
                    } else {
                        anyhow::ensure!(!ok);
                    }
                }
                2 if cycle => native.claim_complete(key, i)?,
                2 => native.duplicate(key, i)?,
                _ if cycle => wasm.claim_complete(key, i)?,
                _ => wasm.duplicate(key, i)?,
            }
            Ok(())
        };
        let dup_keys = s.dup_keys.min(cycles);
        for v in 0..4 {
            for i in 0..dup_keys {
                op(v, true, &format!("dup-{i}"), i)?;
            }
        }
        let mut failed = None;
        let c = interleaved(4, cycles, 10, |v, i| {
            if let Err(e) = op(v, true, &format!("cycle-{i}"), i) {
                failed.get_or_insert(e);
            }
        });
        let d = interleaved(4, cycles, 10, |v, i| {
            let k = i % dup_keys;
            if let Err(e) = op(v, false, &format!("dup-{k}"), k) {
                failed.get_or_insert(e);
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let names =
            ["same SQL, no guard", "minimal SQL", "native guard + `SqliteStore`", "idem (component) + `SqliteStore`"];
        r.line(format!("**synchronous={} — claim + complete cycle**\n", tag.to_uppercase()));
        r.table("variant", &names.iter().zip(&c).map(|(n, s)| (n.to_string(), s.summary())).collect::<Vec<_>>());
        r.line(format!("**synchronous={} — duplicate (replay) cycle**\n", tag.to_uppercase()));
        r.table("variant", &names.iter().zip(&d).map(|(n, s)| (n.to_string(), s.summary())).collect::<Vec<_>>());
        let tp = c[0].summary().mean_us / c[3].summary().mean_us;
        r.headline(
            &format!("3. SQLite {tag}: idem / same bare SQL throughput, claim+complete"),
            format!("{tp:.2}× ({} vs {} cycles/s)", per_sec(c[3].summary().per_sec), per_sec(c[0].summary().per_sec)),
            "≥ 0.7×",
            Some(tp >= 0.7),
        );
        let tpm = c[1].summary().mean_us / c[3].summary().mean_us;
        r.headline(
            &format!("3. SQLite {tag}: idem / minimal SQL throughput, claim+complete"),
            format!("{tpm:.2}×"),
            "≥ 0.7×",
            Some(tpm >= 0.7),
        );
        let dp = d[0].summary().mean_us / d[3].summary().mean_us;
        r.headline(
            &format!("3. SQLite {tag}: idem / same bare SQL throughput, duplicate"),
            format!("{dp:.2}× ({} vs {} µs)", us(d[3].summary().mean_us), us(d[0].summary().mean_us)),
            "≥ 0.7×",
            Some(dp >= 0.7),
        );
    }

    // Durable throughput with concurrent callers: synchronous=FULL, one shared `Guard` (its pool hands each
    // thread a connection) against one bare connection per thread.
    r.line("**Durable (synchronous=FULL) throughput with concurrent callers**: claim + complete cycles on distinct keys; idem shares one `Guard` (its pool gives each thread a connection), bare SQL opens one connection per thread.\n");
    r.line("| callers | idem cycles/s | idem p50 µs | idem p99 µs | same SQL cycles/s | same SQL p50 µs | same SQL p99 µs | idem / SQL |");
    r.line("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &threads in &s.threads {
        let per = s.concurrent_cycles / threads;
        let wasm = Wasm(
            idem_host::Guard::builder()
                .runtime(runtime.clone())
                .store(open_store(&fresh(dir, &format!("conc-idem-{threads}.db")), Durability::Full)?)
                .build()?,
        );
        let idem = concurrent(threads, per, |t, i| {
            wasm.claim_complete(&format!("c-{t}-{i}"), i).expect("idem cycle");
        });
        let path = fresh(dir, &format!("conc-sql-{threads}.db"));
        drop(bare_connection(&path, Durability::Full)?);
        let conns: Vec<_> = (0..threads)
            .map(|_| bare_connection(&path, Durability::Full).map(std::sync::Mutex::new))
            .collect::<Result<_>>()?;
        let now = now_ms();
        let sql = concurrent(threads, per, |t, i| {
            let mut c = conns[t].lock().unwrap();
            let key = format!("c-{t}-{i}");
            assert!(SameSql::claim(&mut c, &key, &claimed_record(i, now)).expect("sql claim"));
            assert!(SameSql::complete(&mut c, &key, &completed_record(i, now)).expect("sql complete"));
        });
        let (a, b) = (idem.summary(), sql.summary());
        let row = format!(
            "| {threads} | {} | {} | {} | {} | {} | {} | {:.2}× |",
            per_sec(a.per_sec),
            us(a.p50_us),
            us(a.p99_us),
            per_sec(b.per_sec),
            us(b.p50_us),
            us(b.p99_us),
            a.per_sec / b.per_sec
        );
        eprintln!("   {row}");
        r.line(row);
        if threads == *s.threads.last().unwrap() {
            r.headline(
                &format!("3. SQLite full, {threads} concurrent callers: idem / same SQL throughput"),
                format!("{:.2}× ({} vs {} cycles/s)", a.per_sec / b.per_sec, per_sec(a.per_sec), per_sec(b.per_sec)),
                "≥ 0.7×",
                Some(a.per_sec / b.per_sec >= 0.7),
            );
        }
    }
    r.line("");
    Ok(())
}
