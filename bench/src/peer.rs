//! 6. From Python: idem through wasmtime-py against AWS Lambda Powertools' idempotency utility, on one Redis.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::Scale;
use crate::report::Report;
use crate::stats::Summary;

pub fn run(r: &mut Report, s: &Scale, root: &Path, url: &str, dir: &Path) -> Result<()> {
    r.section("6. Peer: idem from Python vs AWS Lambda Powertools idempotency (Redis)");
    let python = root.join("target/python-venv/bin/python");
    ensure!(
        python.exists(),
        "{} is missing: python3 -m venv target/python-venv && target/python-venv/bin/pip install -r bench/python/requirements.txt",
        python.display()
    );
    // The very component the Rust host embeds.
    let wasm = dir.join("idem-guard.wasm");
    std::fs::write(&wasm, idem_host::GUARD_WASM)?;
    let out = Command::new(&python)
        .arg(root.join("bench/python/peer_bench.py"))
        .args(["--redis-url", url, "--cycles", &s.python_cycles.to_string()])
        .env("IDEM_GUARD_WASM", &wasm)
        .output()
        .context("running bench/python/peer_bench.py")?;
    ensure!(out.status.success(), "peer_bench.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let get = |side: &str, kind: &str| -> Result<Summary> {
        let x = &v[side][kind];
        let f = |k: &str| x[k].as_f64().with_context(|| format!("{side}.{kind}.{k}"));
        Ok(Summary {
            n: f("n")? as u64,
            mean_us: f("mean_us")?,
            p50_us: f("p50_us")?,
            p99_us: f("p99_us")?,
            per_sec: f("per_sec")?,
        })
    };
    let vers = &v["versions"];
    r.line(format!(
        "Python {}, wasmtime-py {}, aws-lambda-powertools {} (`RedisCachePersistenceLayer`, `use_local_cache=False`), redis-py {}; the same local Redis. Both sides run a trivial operation through their decorator-level API (`Guard.run(scope, key, fn, payload=order)` vs `@idempotent_function(data_keyword_argument=…)`), serialise the result as JSON and key/fingerprint the same order document. Single thread, interleaved.\n",
        vers["python"].as_str().unwrap_or("?"),
        vers["wasmtime"].as_str().unwrap_or("?"),
        vers["aws-lambda-powertools"].as_str().unwrap_or("?"),
        vers["redis"].as_str().unwrap_or("?"),
    ));
    for (kind, title) in [("cycle", "first call (claim + run + store)"), ("duplicate", "duplicate call (replay)")] {
        r.line(format!("**{title}**\n"));
        let rows = vec![
            ("AWS Lambda Powertools".to_string(), get("powertools", kind)?),
            ("idem (wasmtime-py)".to_string(), get("idem", kind)?),
        ];
        r.table("variant", &rows);
        let ratio = rows[1].1.mean_us / rows[0].1.mean_us;
        r.headline(
            &format!("6. Python {kind}: idem / Powertools time"),
            format!("{ratio:.2}× ({:.0} vs {:.0} µs)", rows[1].1.mean_us, rows[0].1.mean_us),
            "< 1× (idem faster)",
            Some(ratio < 1.0),
        );
    }
    Ok(())
}
