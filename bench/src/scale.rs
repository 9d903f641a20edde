//! 7. Claim latency as the store grows from 10^3 to 10^6 records, bytes per record, and the component's size.

use std::path::Path;

use anyhow::Result;
use idem_host::store::{Durability, RedisStore};
use rusqlite::params;

use crate::Scale;
use crate::report::{Report, us};
use crate::stats::Samples;
use crate::workload::{Wasm, completed_record, now_ms};

/// A fixed pseudo-random walk over `0..n`, so every level samples existing keys the same way.
fn pick(j: usize, n: usize) -> usize {
    ((j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as usize % n
}

fn measure(wasm: &Wasm, n: usize, m: usize, level: usize) -> Result<(Samples, Samples)> {
    let mut fresh = Samples::with_capacity(m);
    let mut dup = Samples::with_capacity(m);
    for j in 0..m {
        let key = format!("fresh-{level}-{j}");
        fresh.time(|| wasm.claim(&key, j)).map(drop)?;
        let k = pick(j, n);
        dup.time(|| crate::workload::Cycle::duplicate(wasm, &format!("scale-{k:08}"), k))?;
    }
    Ok((fresh, dup))
}

/// One table row: a store at `n` records, its bytes per record and the claim latencies measured there.
fn row(r: &mut Report, store: &str, n: usize, bytes: f64, (fresh, dup): (Samples, Samples)) {
    let (f, d) = (fresh.summary(), dup.summary());
    let line = format!(
        "| {store} | {n} | {bytes:.0} | {} | {} | {} | {} |",
        us(f.p50_us),
        us(f.p99_us),
        us(d.p50_us),
        us(d.p99_us)
    );
    eprintln!("   {line}");
    r.line(line);
}

pub fn run(r: &mut Report, s: &Scale, dir: &Path, url: &str, runtime: &idem_host::Runtime) -> Result<()> {
    r.section("7. Scale: claim latency from 10^3 to 10^6 records, bytes per record");
    let size = idem_host::GUARD_WASM.len();
    r.line(format!("Component (`idem_host::GUARD_WASM`, the embedded release build): **{size} bytes**.\n"));
    r.headline("7. component size", format!("{size} bytes"), "-", None);
    r.line(format!("Records are preloaded in batches (SQLite: one transaction per 10,000 rows with `synchronous=OFF`; Redis: pipelined `HSET` + `PEXPIRE`), encoded exactly as the guard encodes a completed record ({} bytes of value), under the keys the guard uses. At each size, {} claims of fresh keys (*new*: insert) and {} claims of existing keys (*dup*: replay) through `idem_host::Guard`, single thread. SQLite runs with `synchronous=FULL`. Bytes per record: the database file after `wal_checkpoint(TRUNCATE)`, and Redis `used_memory`, each over the empty baseline.\n", completed_record(0, 0).len(), s.scale_claims, s.scale_claims));
    r.line("| store | records | bytes / record | new p50 µs | new p99 µs | dup p50 µs | dup p99 µs |");
    r.line("|---|---:|---:|---:|---:|---:|---:|");

    // SQLite.
    let path = dir.join("scale.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = crate::sqlite::open_store(&path, Durability::Full)?;
    let wasm = Wasm(idem_host::Guard::builder().runtime(runtime.clone()).store(store).build()?);
    let mut bulk = crate::sqlite::bare_connection(&path, Durability::Full)?;
    bulk.execute_batch("PRAGMA synchronous=OFF; PRAGMA wal_checkpoint(TRUNCATE);")?;
    let empty = std::fs::metadata(&path)?.len();
    let now = now_ms();
    let mut loaded = 0usize;
    for &n in &s.scale_levels {
        while loaded < n {
            let tx = bulk.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO idem_records (key, value, version, expires_at) VALUES (?1, ?2, ?3, ?4)",
                )?;
                let end = (loaded + 10_000).min(n);
                for i in loaded..end {
                    st.execute(params![
                        format!("bench/scale-{i:08}"),
                        completed_record(i, now),
                        i as i64 + 1,
                        (now + 86_400_000) as i64
                    ])?;
                }
                loaded = end;
            }
            tx.commit()?;
        }
        bulk.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        let bytes = std::fs::metadata(&path)?.len().saturating_sub(empty) as f64 / n as f64;
        row(r, "SQLite", n, bytes, measure(&wasm, n, s.scale_claims, n)?);
    }
    drop(wasm);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }

    // Redis.
    let mut admin = crate::redisb::connect(url)?;
    let _: () = redis::cmd("FLUSHALL").query(&mut admin)?;
    let wasm = Wasm(idem_host::Guard::builder().runtime(runtime.clone()).store(RedisStore::open(url)?).build()?);
    wasm.claim("warm", 0)?;
    let _: () = redis::cmd("FLUSHALL").query(&mut admin)?;
    let base = crate::redisb::info_field(&mut admin, "memory", "used_memory")?;
    let mut loaded = 0usize;
    for &n in &s.scale_levels {
        while loaded < n {
            let end = (loaded + 2_000).min(n);
            let mut pipe = redis::pipe();
            for i in loaded..end {
                let key = format!("idem:{{bench/scale-{i:08}}}");
                pipe.cmd("HSET")
                    .arg(&key)
                    .arg("v")
                    .arg(completed_record(i, now))
                    .arg("n")
                    .arg((i + 1).to_string())
                    .ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(86_400_000u64).ignore();
            }
            let _: () = pipe.query(&mut admin)?;
            loaded = end;
        }
        let used = crate::redisb::info_field(&mut admin, "memory", "used_memory")?;
        let bytes = used.saturating_sub(base) as f64 / n as f64;
        row(r, "Redis", n, bytes, measure(&wasm, n, s.scale_claims, n)?);
    }
    let _: () = redis::cmd("FLUSHALL").query(&mut admin)?;
    r.line("");
    Ok(())
}
