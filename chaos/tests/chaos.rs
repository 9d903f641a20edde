//! The chaos run in its CI size on every backend, through the `idem-chaos` binary exactly as RELIABILITY.md
//! runs it, and a run on a store that breaks its contract to show the checker finds what it claims to find.
//! `IDEM_CHAOS_SEED` picks the seed (default 20240601); a failure prints the seed to reproduce with.

use std::process::Command;
use std::sync::Arc;

use idem_chaos::{Config, Faults, Rng};
use idem_host::store::{Entry, InsertResult, MemoryStore, Store, StoreError, SwapResult};

fn seed() -> u64 {
    std::env::var("IDEM_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20240601)
}

fn chaos_run(store: &str) {
    let seed = seed();
    let out = Command::new(env!("CARGO_BIN_EXE_idem-chaos"))
        .args(["run", "--store", store, "--seed", &seed.to_string()])
        .output()
        .expect("run idem-chaos");
    let summary = String::from_utf8_lossy(&out.stdout);
    eprintln!("{summary}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && summary.contains("RESULT: PASS"),
        "chaos run on {store} failed; reproduce with: idem-chaos run --store {store} --seed {seed}"
    );
    for line in ["double executions found         0", "lost completions                0"] {
        assert!(summary.contains(line), "{line:?} missing from the summary");
    }
}

#[test]
fn chaos_memory() {
    chaos_run("memory")
}

#[test]
fn chaos_sqlite() {
    chaos_run("sqlite")
}

#[test]
fn chaos_redis() {
    chaos_run("redis")
}

/// Breaks "errors are errors": now and then reads a live record as absent, and lets an insert overwrite it.
struct Amnesiac {
    inner: MemoryStore,
    rng: std::sync::Mutex<Rng>,
}

impl Amnesiac {
    fn forgets(&self) -> bool {
        self.rng.lock().unwrap().chance(0.05)
    }
}

impl Store for Amnesiac {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.inner.get(key)
    }
    fn insert_or_get(&self, key: &str, value: &[u8], ttl: u64) -> Result<InsertResult, StoreError> {
        if self.forgets() {
            if let Some(e) = self.inner.get(key)? {
                self.inner.delete_if_version(key, e.version)?;
            }
        }
        self.inner.insert_or_get(key, value, ttl)
    }
    fn compare_and_swap(&self, key: &str, v: u64, value: &[u8], ttl: u64) -> Result<SwapResult, StoreError> {
        self.inner.compare_and_swap(key, v, value, ttl)
    }
    fn delete_if_version(&self, key: &str, v: u64) -> Result<bool, StoreError> {
        self.inner.delete_if_version(key, v)
    }
}

#[test]
fn the_checker_catches_a_store_that_forgets_records() {
    let config = Config { ops: 400, faults: Faults::NONE, ..Config::ci(seed()) };
    let store = Arc::new(Amnesiac { inner: MemoryStore::new(), rng: std::sync::Mutex::new(Rng::new(seed())) });
    let report = idem_chaos::run("amnesiac memory", store, config);
    eprintln!("{}", report.render());
    assert!(!report.passed(), "a store that forgets records must fail the checker");
    assert!(
        report.violations.double_executions > 0 && report.violations.lost_completions > 0,
        "{:?}",
        report.violations
    );
}
