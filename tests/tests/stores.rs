//! One suite, every backend: the store contract of `wit/store.wit` (atomic insert, CAS, delete, expiry, versions
//! never reissued), then the guard component running on each store.

use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use idem_contract_tests::{RedisServer, expect_acquired, op, outcome, raw};
use idem_host::store::{
    InsertResult, MemoryStore, RedisStore, SqliteOptions, SqliteStore, Store, StoreError, SwapResult,
};
use idem_host::{ClaimDecision, Error, Guard, GuardError, ManualClock, Options, Runtime};

const T0: u64 = 1_700_000_000_000;

/// A store under test and a way to let time pass for it: memory and SQLite expire on the shared manual clock,
/// Redis on its own clock, so for Redis the harness also sleeps.
struct Harness {
    store: Arc<dyn Store>,
    clock: ManualClock,
    redis: Option<RedisServer>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    fn memory() -> Self {
        let clock = ManualClock::at(T0);
        Self { store: Arc::new(MemoryStore::with_clock(Arc::new(clock.clone()))), clock, redis: None, _dir: None }
    }

    fn sqlite() -> Self {
        let clock = ManualClock::at(T0);
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open_with(dir.path().join("idem.db"), SqliteOptions::default(), Arc::new(clock.clone()))
                .unwrap();
        Self { store: Arc::new(store), clock, redis: None, _dir: Some(dir) }
    }

    fn redis() -> Self {
        let server = RedisServer::start();
        let store = RedisStore::open(&server.url()).unwrap();
        Self { store: Arc::new(store), clock: ManualClock::at(T0), redis: Some(server), _dir: None }
    }

    fn pass(&self, d: Duration) {
        self.clock.advance(d);
        if self.redis.is_some() {
            std::thread::sleep(d);
        }
    }

    fn guard(&self) -> Guard {
        static RUNTIME: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
        let runtime = RUNTIME.get_or_init(|| Runtime::new().unwrap()).clone();
        Guard::builder().runtime(runtime).shared_store(self.store.clone()).clock(self.clock.clone()).build().unwrap()
    }
}

fn inserted(r: InsertResult) -> u64 {
    match r {
        InsertResult::Inserted(v) => v,
        other => panic!("expected inserted, got {other:?}"),
    }
}

fn insert_or_get_inserts_once_then_reads(h: Harness) {
    let s = &h.store;
    let v1 = inserted(s.insert_or_get("t/a", b"first", 60_000).unwrap());
    match s.insert_or_get("t/a", b"second", 60_000).unwrap() {
        InsertResult::Exists(e) => {
            assert_eq!((e.value.as_slice(), e.version), (b"first".as_slice(), v1))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.get("t/a").unwrap().unwrap().value, b"first");
    assert_eq!(s.get("t/absent").unwrap(), None);
}

fn compare_and_swap_needs_the_current_version_and_never_inserts(h: Harness) {
    let s = &h.store;
    let v1 = inserted(s.insert_or_get("t/a", b"one", 60_000).unwrap());
    let SwapResult::Swapped(v2) = s.compare_and_swap("t/a", v1, b"two", 60_000).unwrap() else { panic!() };
    assert_ne!(v1, v2);
    match s.compare_and_swap("t/a", v1, b"stale", 60_000).unwrap() {
        SwapResult::Conflict(Some(e)) => {
            assert_eq!((e.value.as_slice(), e.version), (b"two".as_slice(), v2))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.compare_and_swap("t/none", v2, b"x", 60_000).unwrap(), SwapResult::Conflict(None));
    assert_eq!(s.get("t/none").unwrap(), None, "a CAS on an absent key must not insert");
}

fn delete_if_version_deletes_only_that_version(h: Harness) {
    let s = &h.store;
    let v1 = inserted(s.insert_or_get("t/a", b"one", 60_000).unwrap());
    assert!(!s.delete_if_version("t/a", v1.wrapping_add(1)).unwrap());
    assert!(s.get("t/a").unwrap().is_some());
    assert!(s.delete_if_version("t/a", v1).unwrap());
    assert_eq!(s.get("t/a").unwrap(), None);
    assert!(!s.delete_if_version("t/a", v1).unwrap());
}

fn expired_keys_are_absent_to_every_call(h: Harness) {
    let s = &h.store;
    let v1 = inserted(s.insert_or_get("t/a", b"short", 300).unwrap());
    inserted(s.insert_or_get("t/long", b"long", 60_000).unwrap());
    h.pass(Duration::from_millis(450));
    assert_eq!(s.get("t/a").unwrap(), None);
    assert_eq!(s.compare_and_swap("t/a", v1, b"x", 60_000).unwrap(), SwapResult::Conflict(None));
    assert!(!s.delete_if_version("t/a", v1).unwrap());
    let v2 = inserted(s.insert_or_get("t/a", b"again", 60_000).unwrap());
    assert_ne!(v1, v2, "a version must not be reissued after expiry");
    assert_eq!(s.get("t/long").unwrap().unwrap().value, b"long");
}

fn versions_are_not_reissued_after_delete(h: Harness) {
    let s = &h.store;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let v = inserted(s.insert_or_get("t/cycle", b"x", 60_000).unwrap());
        assert!(seen.insert(v), "version {v} issued twice");
        assert!(s.delete_if_version("t/cycle", v).unwrap());
    }
}

fn large_values_round_trip(h: Harness) {
    let value: Vec<u8> = (0..(2 << 20)).map(|i| (i % 251) as u8).collect();
    inserted(h.store.insert_or_get("t/big", &value, 60_000).unwrap());
    assert_eq!(h.store.get("t/big").unwrap().unwrap().value, value);
}

fn racing_inserts_have_exactly_one_winner(h: Harness) {
    for round in 0..10 {
        let key = format!("t/race-{round}");
        let barrier = Barrier::new(64);
        let wins = Mutex::new(0);
        std::thread::scope(|sc| {
            for _ in 0..64 {
                sc.spawn(|| {
                    barrier.wait();
                    if let InsertResult::Inserted(_) = h.store.insert_or_get(&key, b"x", 60_000).unwrap() {
                        *wins.lock().unwrap() += 1;
                    }
                });
            }
        });
        assert_eq!(wins.into_inner().unwrap(), 1, "round {round}");
    }
}

fn racing_swaps_of_one_version_have_exactly_one_winner(h: Harness) {
    for round in 0..10 {
        let key = format!("t/cas-{round}");
        let store = &h.store;
        let v = inserted(store.insert_or_get(&key, b"x", 60_000).unwrap());
        let barrier = Barrier::new(32);
        let wins = Mutex::new(0);
        std::thread::scope(|sc| {
            for i in 0..32 {
                let (barrier, wins, key) = (&barrier, &wins, &key);
                sc.spawn(move || {
                    barrier.wait();
                    if let SwapResult::Swapped(_) =
                        store.compare_and_swap(key, v, format!("{i}").as_bytes(), 60_000).unwrap()
                    {
                        *wins.lock().unwrap() += 1;
                    }
                });
            }
        });
        assert_eq!(wins.into_inner().unwrap(), 1, "round {round}");
    }
}

// ---- the guard component on each store ----

fn opts() -> Options {
    Options { lease_ms: Some(5_000), retention_ms: None, max_outcome_bytes: None, on_store_failure: None }
}

fn guard_replays_sequential_duplicates(h: Harness) {
    let g = h.guard();
    let op = op("payments", "seq");
    let lease = expect_acquired(g.claim(&op, &raw(b"p"), &opts()).unwrap());
    let body: Vec<u8> = (0..=255).collect();
    g.complete(&op, &lease.token, &outcome(&body), &opts()).unwrap();
    for _ in 0..3 {
        let ClaimDecision::Replay(r) = g.claim(&op, &raw(b"p"), &opts()).unwrap() else { panic!() };
        assert_eq!(r.outcome, outcome(&body));
    }
    assert_eq!(g.claim(&op, &raw(b"other"), &opts()).unwrap(), ClaimDecision::Mismatch);
}

fn guard_runs_once_under_64_concurrent_claimers(h: Harness) {
    let g = h.guard();
    for round in 0..3 {
        let op = op("payments", &format!("race-{round}"));
        let executions = Mutex::new(0);
        let barrier = Barrier::new(64);
        std::thread::scope(|sc| {
            for _ in 0..64 {
                sc.spawn(|| {
                    barrier.wait();
                    match g.claim(&op, &raw(b"p"), &opts()).unwrap() {
                        ClaimDecision::Acquired(a) => {
                            *executions.lock().unwrap() += 1;
                            g.complete(&op, &a.lease.token, &outcome(b"done"), &opts()).unwrap();
                        }
                        ClaimDecision::InProgress(_) | ClaimDecision::Replay(_) => {}
                        other => panic!("{other:?}"),
                    }
                });
            }
        });
        assert_eq!(executions.into_inner().unwrap(), 1, "round {round}");
    }
}

fn guard_fences_a_crashed_worker_after_takeover(h: Harness) {
    let g = h.guard();
    let op = op("shipments", "WO-1/release");
    let crashed = expect_acquired(g.claim(&op, &raw(b"p"), &opts()).unwrap());
    h.clock.advance(Duration::from_secs(6)); // the lease is judged by the guard's clock on every backend
    let ClaimDecision::Acquired(next) = g.claim(&op, &raw(b"p"), &opts()).unwrap() else { panic!() };
    assert!(next.recovered && next.lease.fencing_token == crashed.fencing_token + 1);
    assert!(matches!(
        g.complete(&op, &crashed.token, &outcome(b"late"), &opts()),
        Err(Error::Guard(GuardError::LeaseLost(_)))
    ));
    g.complete(&op, &next.lease.token, &outcome(b"once"), &opts()).unwrap();
}

macro_rules! suite {
    ($backend:ident) => {
        mod $backend {
            use super::*;
            #[test]
            fn insert_or_get() {
                insert_or_get_inserts_once_then_reads(Harness::$backend())
            }
            #[test]
            fn compare_and_swap() {
                compare_and_swap_needs_the_current_version_and_never_inserts(Harness::$backend())
            }
            #[test]
            fn delete_if_version() {
                delete_if_version_deletes_only_that_version(Harness::$backend())
            }
            #[test]
            fn expiry() {
                expired_keys_are_absent_to_every_call(Harness::$backend())
            }
            #[test]
            fn versions_unique() {
                versions_are_not_reissued_after_delete(Harness::$backend())
            }
            #[test]
            fn large_values() {
                large_values_round_trip(Harness::$backend())
            }
            #[test]
            fn racing_inserts() {
                racing_inserts_have_exactly_one_winner(Harness::$backend())
            }
            #[test]
            fn racing_swaps() {
                racing_swaps_of_one_version_have_exactly_one_winner(Harness::$backend())
            }
            #[test]
            fn guard_sequential() {
                guard_replays_sequential_duplicates(Harness::$backend())
            }
            #[test]
            fn guard_concurrent() {
                guard_runs_once_under_64_concurrent_claimers(Harness::$backend())
            }
            #[test]
            fn guard_takeover() {
                guard_fences_a_crashed_worker_after_takeover(Harness::$backend())
            }
        }
    };
}

suite!(memory);
suite!(sqlite);
suite!(redis);

#[test]
fn sqlite_is_shared_safely_between_connections_like_separate_processes() {
    // Two stores on one file behave as two processes would: separate connections, one file lock.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    let barrier = Barrier::new(16);
    let wins = Mutex::new(0);
    std::thread::scope(|sc| {
        for i in 0..16 {
            let store: &SqliteStore = if i % 2 == 0 { &a } else { &b };
            let (barrier, wins) = (&barrier, &wins);
            sc.spawn(move || {
                barrier.wait();
                if let InsertResult::Inserted(_) = store.insert_or_get("t/shared", b"x", 60_000).unwrap() {
                    *wins.lock().unwrap() += 1;
                }
            });
        }
    });
    assert_eq!(wins.into_inner().unwrap(), 1);
}

#[test]
fn sqlite_keeps_records_across_reopen_and_sweeps_expired_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let clock = ManualClock::at(T0);
    let open = || SqliteStore::open_with(&path, SqliteOptions::default(), Arc::new(clock.clone())).unwrap();
    let v = inserted(open().insert_or_get("t/kept", b"kept", 60_000).unwrap());
    inserted(open().insert_or_get("t/brief", b"brief", 10).unwrap());
    let reopened = open();
    assert_eq!(reopened.get("t/kept").unwrap().unwrap().version, v);
    clock.advance(Duration::from_millis(20));
    assert_eq!(reopened.sweep().unwrap(), 1);
    assert!(reopened.get("t/kept").unwrap().is_some());
}

#[test]
fn redis_down_is_unavailable_quickly_and_recovers() {
    let mut server = RedisServer::start();
    let port = server.port;
    let store = RedisStore::open(&server.url()).unwrap();
    inserted(store.insert_or_get("t/a", b"x", 60_000).unwrap());
    server.stop();
    let started = std::time::Instant::now();
    assert!(matches!(store.get("t/a"), Err(StoreError::Unavailable(_))));
    assert!(matches!(store.insert_or_get("t/b", b"x", 1000), Err(StoreError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(10), "a dead Redis must not hang callers");
    // The guard refuses to run anything while the store is down (fail-closed).
    let g = Guard::builder().store(RedisStore::open(&format!("redis://127.0.0.1:{port}/")).unwrap()).build().unwrap();
    assert!(matches!(g.claim(&op("payments", "k"), &raw(b"p"), &opts()), Err(Error::Guard(GuardError::Store(_)))));
    let _restarted = RedisServer::start_on(port, &[]);
    // A fresh server on the same port: the pooled store reconnects by itself.
    let mut recovered = false;
    for _ in 0..50 {
        if store.insert_or_get("t/c", b"x", 60_000).is_ok() {
            recovered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(recovered, "the store must recover when Redis returns");
}
