//! `idem-chaos`: the chaos run, and the worker the crash tests kill.
//!
//! ```text
//! idem-chaos run --store memory|sqlite|redis [--redis URL] [--seed N] [--long] [--ops N] [--workers N]
//! idem-chaos worker (--sqlite PATH | --redis URL) --ops N [--threads N] [--lease-ms N] [--seed N]
//! ```
//!
//! `run --store redis` without `--redis` starts a private redis-server on a free loopback port. Exit status 0
//! means every check passed; 1 means a violation was found (the summary says which); 2 a usage error.

use std::sync::Arc;
use std::time::Duration;

use idem_chaos::{Config, RedisProc, free_port, run, worker};
use idem_host::Guard;
use idem_host::store::{Durability, RedisStore, SqliteOptions, SqliteStore, Store};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let num =
        |name: &str| flag(name).map(|v| v.parse::<u64>().unwrap_or_else(|_| usage(&format!("{name} needs a number"))));
    let seed = num("--seed").unwrap_or(1);
    match args.first().map(String::as_str) {
        Some("run") => {
            let mut config = if args.iter().any(|a| a == "--long") { Config::long(seed) } else { Config::ci(seed) };
            if let Some(n) = num("--ops") {
                config.ops = n as usize;
            }
            if let Some(n) = num("--workers") {
                config.workers = n as usize;
            }
            if let Some(n) = num("--lease-ms") {
                config.lease_ms = n;
            }
            if let Some(n) = num("--time-limit-s") {
                config.time_limit = Duration::from_secs(n);
            }
            let backend = flag("--store").unwrap_or_else(|| "memory".into());
            let dir = tempfile::tempdir().expect("temp dir");
            let mut _redis = None;
            let store: Arc<dyn Store> = match backend.as_str() {
                "memory" => Arc::new(idem_host::store::MemoryStore::new()),
                "sqlite" => {
                    // Durability NORMAL: the chaos run checks logic under concurrency; the crash tests check FULL.
                    let options = SqliteOptions { durability: Durability::Normal, ..SqliteOptions::default() };
                    Arc::new(
                        SqliteStore::open_with(dir.path().join("idem.db"), options, Arc::new(idem_host::SystemClock))
                            .expect("open sqlite"),
                    )
                }
                "redis" => {
                    let url = match flag("--redis") {
                        Some(url) => url,
                        None => {
                            let r = RedisProc::start(free_port(), dir.path(), &[]);
                            let url = r.url();
                            _redis = Some(r);
                            url
                        }
                    };
                    Arc::new(RedisStore::open(&url).expect("redis url"))
                }
                other => usage(&format!("unknown store {other:?}")),
            };
            let report = run(&backend, store, config);
            print!("{}", report.render());
            drop(_redis);
            std::process::exit(if report.passed() { 0 } else { 1 });
        }
        Some("worker") => {
            let store: Arc<dyn Store> = match (flag("--sqlite"), flag("--redis")) {
                (Some(path), None) => Arc::new(SqliteStore::open(path).expect("open sqlite")),
                (None, Some(url)) => Arc::new(RedisStore::open(&url).expect("redis url")),
                _ => usage("worker needs --sqlite PATH or --redis URL"),
            };
            let guard = Guard::builder().shared_store(store).build().expect("guard");
            let ops = num("--ops").unwrap_or_else(|| usage("worker needs --ops")) as usize;
            let threads = num("--threads").unwrap_or(4) as usize;
            let lease_ms = num("--lease-ms").unwrap_or(500);
            let patience = Duration::from_secs(num("--patience-s").unwrap_or(60));
            if let Err(e) = worker(&guard, ops, threads, lease_ms, seed, patience) {
                eprintln!("worker failed: {e}");
                std::process::exit(1);
            }
        }
        _ => usage("give a command: run or worker"),
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("idem-chaos: {msg}");
    eprintln!(
        "usage: idem-chaos run --store memory|sqlite|redis [--redis URL] [--seed N] [--long] [--ops N] [--workers N] [--lease-ms N]"
    );
    eprintln!(
        "       idem-chaos worker (--sqlite PATH | --redis URL) --ops N [--threads N] [--lease-ms N] [--seed N] [--patience-s N]"
    );
    std::process::exit(2)
}
