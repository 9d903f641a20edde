//! Section 4, idem on Redis against raw `SET NX PX` + `SET XX PX` through the same redis crate, with round trips
//! counted by the server (`INFO commandstats`, before and after).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, ensure};
use idem_host::store::RedisStore;

use crate::Scale;
use crate::report::{Report, per_sec, us};
use crate::stats::interleaved;
use crate::workload::{Cycle, Native, Wasm, claimed_record, completed_record, now_ms};

const TTL_MS: u64 = 30_000 + 86_400_000;

pub fn connect(url: &str) -> Result<redis::Connection> {
    Ok(redis::Client::open(url)?.get_connection()?)
}

/// `cmdstat_<name>` → calls.
pub fn commandstats(conn: &mut redis::Connection) -> Result<BTreeMap<String, u64>> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn)?;
    let mut out = BTreeMap::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else { continue };
        let Some((name, stats)) = rest.split_once(':') else { continue };
        let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls=")).and_then(|v| v.parse().ok()).unwrap_or(0);
        out.insert(name.to_string(), calls);
    }
    Ok(out)
}

pub fn info_field(conn: &mut redis::Connection, section: &str, field: &str) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg(section).query(conn)?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in INFO {section}"))
}

/// Commands per operation over `n` operations run by `f`, and the client round trips they amount to.
/// Every idem script (`insert_or_get`, `compare_and_swap`) calls `HMGET` exactly once and is the only caller of
/// `HSET` and `PEXPIRE`, so client round trips = all calls − `HSET` − `PEXPIRE` − one `HMGET` per script run.
fn count(admin: &mut redis::Connection, n: usize, mut f: impl FnMut(usize) -> Result<()>) -> Result<(f64, String)> {
    let before = commandstats(admin)?;
    for i in 0..n {
        f(i)?;
    }
    let after = commandstats(admin)?;
    let mut diff = BTreeMap::new();
    for (k, v) in &after {
        let d = v - before.get(k).copied().unwrap_or(0);
        if d > 0 && k != "info" {
            diff.insert(k.clone(), d);
        }
    }
    let get = |k: &str| diff.get(k).copied().unwrap_or(0);
    let scripts = get("evalsha") + get("eval");
    let total: u64 = diff.values().sum();
    let client = total - get("hset") - get("pexpire") - get("hmget").min(scripts);
    let detail = diff
        .iter()
        .map(|(k, v)| format!("{} {:.2}", k.to_uppercase(), *v as f64 / n as f64))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((client as f64 / n as f64, detail))
}

pub struct Raw(std::sync::Mutex<redis::Connection>);

impl Raw {
    fn claim(&self, key: &str, i: usize) -> Result<bool> {
        let mut c = self.0.lock().unwrap();
        let r: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(claimed_record(i, now_ms()))
            .arg("NX")
            .arg("PX")
            .arg(TTL_MS)
            .query(&mut *c)?;
        Ok(r.is_some())
    }
    fn complete(&self, key: &str, i: usize) -> Result<bool> {
        let mut c = self.0.lock().unwrap();
        let r: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(completed_record(i, now_ms()))
            .arg("XX")
            .arg("PX")
            .arg(86_400_000u64)
            .query(&mut *c)?;
        Ok(r.is_some())
    }
}

impl Cycle for Raw {
    fn claim_complete(&self, key: &str, i: usize) -> Result<()> {
        ensure!(self.claim(key, i)? && self.complete(key, i)?, "raw cycle refused");
        Ok(())
    }
    /// `SET NX PX GET` (Redis ≥ 7): refused, and the stored value returned, in one round trip.
    fn duplicate(&self, key: &str, i: usize) -> Result<()> {
        let mut c = self.0.lock().unwrap();
        let r: Option<Vec<u8>> = redis::cmd("SET")
            .arg(key)
            .arg(claimed_record(i, now_ms()))
            .arg("NX")
            .arg("PX")
            .arg(TTL_MS)
            .arg("GET")
            .query(&mut *c)?;
        ensure!(r.is_some_and(|v| v.len() > 40), "raw duplicate found nothing");
        Ok(())
    }
}

pub fn run(r: &mut Report, s: &Scale, url: &str, runtime: &idem_host::Runtime) -> Result<()> {
    r.section("4. Redis: idem vs raw SET NX PX + SET XX PX");
    let mut admin = connect(url)?;
    let _: () = redis::cmd("FLUSHALL").query(&mut admin)?;
    let raw = Raw(std::sync::Mutex::new(connect(url)?));
    let store = || -> Result<RedisStore> { Ok(RedisStore::open(url)?) };
    let native = Native(crate::native::guard(Arc::new(store()?)));
    let wasm = Wasm(idem_host::Guard::builder().runtime(runtime.clone()).store(store()?).build()?);
    let sides: [&dyn Cycle; 3] = [&raw, &native, &wasm];
    let names = [
        "raw `SET NX PX` + `SET XX PX` (dup: `SET NX PX GET`)",
        "native guard + `RedisStore`",
        "idem (component) + `RedisStore`",
    ];
    for (v, side) in sides.iter().enumerate() {
        for i in 0..s.dup_keys {
            side.claim_complete(&format!("dup-{v}-{i}"), i)?;
        }
    }
    let mut failed = None;
    let c = interleaved(3, s.redis_cycles, 10, |v, i| {
        if let Err(e) = sides[v].claim_complete(&format!("cycle-{v}-{i}"), i) {
            failed.get_or_insert(e);
        }
    });
    let d = interleaved(3, s.redis_cycles, 10, |v, i| {
        let k = i % s.dup_keys;
        if let Err(e) = sides[v].duplicate(&format!("dup-{v}-{k}"), k) {
            failed.get_or_insert(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    r.line(format!("Single thread, sequential, one local `redis-server` (no persistence) on loopback, {} bytes stored per completed record.\n", completed_record(0, 0).len()));
    r.line("**claim + complete cycle**\n");
    r.table("variant", &names.iter().zip(&c).map(|(n, s)| (n.to_string(), s.summary())).collect::<Vec<_>>());
    r.line("**duplicate (replay) cycle**\n");
    r.table("variant", &names.iter().zip(&d).map(|(n, s)| (n.to_string(), s.summary())).collect::<Vec<_>>());
    let tp = c[0].summary().mean_us / c[2].summary().mean_us;
    let dp = d[0].summary().mean_us / d[2].summary().mean_us;
    r.headline(
        "4. Redis: idem / raw throughput, claim+complete",
        format!("{tp:.2}× ({} vs {} cycles/s)", per_sec(c[2].summary().per_sec), per_sec(c[0].summary().per_sec)),
        "≥ 0.8×",
        Some(tp >= 0.8),
    );
    r.headline(
        "4. Redis: idem / raw throughput, duplicate",
        format!("{dp:.2}× ({} vs {} µs)", us(d[2].summary().mean_us), us(d[0].summary().mean_us)),
        "≥ 0.8×",
        Some(dp >= 0.8),
    );

    // Round trips, counted by the server.
    let n = s.rt_ops;
    let mut tokens = Vec::with_capacity(n);
    let (claim_rt, claim_detail) = count(&mut admin, n, |i| {
        tokens.push(wasm.claim(&format!("rt-{i}"), i)?);
        Ok(())
    })?;
    let (complete_rt, complete_detail) = count(&mut admin, n, |i| {
        wasm.0.complete(&Wasm::op(&format!("rt-{i}")), &tokens[i], &Wasm::outcome(), &Default::default())?;
        Ok(())
    })?;
    let (dup_rt, dup_detail) = count(&mut admin, n, |i| wasm.duplicate(&format!("rt-{i}"), i))?;
    let (raw_claim_rt, raw_claim_detail) = count(&mut admin, n, |i| {
        ensure!(raw.claim(&format!("rrt-{i}"), i)?);
        Ok(())
    })?;
    let (raw_complete_rt, raw_complete_detail) = count(&mut admin, n, |i| {
        ensure!(raw.complete(&format!("rrt-{i}"), i)?);
        Ok(())
    })?;
    let (raw_dup_rt, raw_dup_detail) = count(&mut admin, n, |i| raw.duplicate(&format!("rrt-{i}"), i))?;
    r.line(format!("**Round trips** (`INFO commandstats` diffed around {n} operations of each kind; commands run inside Lua scripts are counted by Redis too, and subtracted to get client round trips):\n"));
    r.line("| operation | client round trips per op | commands per op (server) |");
    r.line("|---|---:|---|");
    for (what, rt, detail) in [
        ("idem `claim` (new key)", claim_rt, claim_detail),
        ("idem `complete`", complete_rt, complete_detail),
        ("idem `claim` (duplicate → replay)", dup_rt, dup_detail),
        ("raw claim `SET NX PX`", raw_claim_rt, raw_claim_detail),
        ("raw complete `SET XX PX`", raw_complete_rt, raw_complete_detail),
        ("raw duplicate `SET NX PX GET`", raw_dup_rt, raw_dup_detail),
    ] {
        let row = format!("| {what} | {rt:.2} | {detail} |");
        eprintln!("   {row}");
        r.line(row);
    }
    r.line("");
    r.headline("4. Redis round trips per claim", format!("{claim_rt:.2}"), "1", Some(claim_rt <= 1.0));
    r.headline("4. Redis round trips per complete", format!("{complete_rt:.2}"), "1", Some(complete_rt <= 1.0));
    Ok(())
}
