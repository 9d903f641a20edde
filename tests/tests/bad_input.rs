//! Bad input through the Rust API on every backend: corrupt and foreign bytes where a record should be, oversized
//! scopes, keys, payloads and outcomes, a guest pushed against its memory cap, and a store that blocks past the
//! guard's deadline. Every case must end in a typed error, never a panic, a trap taken for a decision, or a run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use idem_contract_tests::{RedisServer, expect_acquired, op, outcome, raw};
use idem_host::store::{Entry, InsertResult, MemoryStore, RedisStore, SqliteStore, Store, StoreError, SwapResult};
use idem_host::{
    ClaimDecision, Error, Failure, FingerprintInput, Guard, GuardError, Options, Outcome, RecordState, Runtime,
};

fn runtime() -> Runtime {
    static RUNTIME: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().unwrap()).clone()
}

fn guard_on(store: Arc<dyn Store>) -> Guard {
    Guard::builder().runtime(runtime()).shared_store(store).build().unwrap()
}

fn opts() -> Options {
    Options { lease_ms: Some(5_000), retention_ms: None, max_outcome_bytes: None, on_store_failure: None }
}

/// Bytes that are not a record this guard can read: empty, foreign, a wrong magic, a newer format, a truncated
/// or padded real record, and random noise.
fn garbage(valid: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut truncated = valid.to_vec();
    truncated.truncate(valid.len() / 2);
    let mut padded = valid.to_vec();
    padded.extend_from_slice(b"tail");
    let mut newer = valid.to_vec();
    newer[4] = 200;
    let mut flipped = valid.to_vec();
    for b in flipped.iter_mut().skip(5) {
        *b ^= 0xff;
    }
    let mut noise = Vec::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push(x as u8);
    }
    vec![
        ("empty", vec![]),
        ("json", br#"{"state":"succeeded","outcome":"hello"}"#.to_vec()),
        ("header only", b"IDEM".to_vec()),
        ("header and version only", b"IDEM\x01".to_vec()),
        ("newer format", newer),
        ("truncated record", truncated),
        ("record with stray bytes", padded),
        ("bit-flipped record", flipped),
        ("noise", noise),
        ("huge varint", [b"IDEM\x01".as_slice(), &[0xff; 20]].concat()),
    ]
}

/// A real record's bytes, as the guard wrote them (read back through the store).
fn a_valid_record(store: &Arc<dyn Store>) -> Vec<u8> {
    let g = guard_on(store.clone());
    let o = op("probe", "valid");
    let lease = expect_acquired(g.claim(&o, &raw(b"p"), &opts()).unwrap());
    g.complete(&o, &lease.token, &outcome(b"done"), &opts()).unwrap();
    store.get("probe/valid").unwrap().unwrap().value
}

fn corrupt_records_give_typed_errors(store: Arc<dyn Store>) {
    let valid = a_valid_record(&store);
    let g = guard_on(store.clone());
    for (i, (what, bytes)) in garbage(&valid).into_iter().enumerate() {
        let key = format!("corrupt-{i}");
        let o = op("bad", &key);
        match store.insert_or_get(&format!("bad/{key}"), &bytes, 60_000).unwrap() {
            InsertResult::Inserted(_) => {}
            other => panic!("{what}: {other:?}"),
        }
        let corrupt = |r: Result<_, Error>, call: &str| match r {
            Err(Error::Guard(GuardError::CorruptRecord(m))) => assert!(!m.is_empty()),
            other => panic!("{what}: {call} must report a corrupt record, got {other:?}"),
        };
        corrupt(g.claim(&o, &raw(b"p"), &opts()).map(|_| ()), "claim");
        corrupt(g.status(&o).map(|_| ()), "status");
        let token = "1.0000000000000001";
        corrupt(g.complete(&o, token, &outcome(b"x"), &opts()).map(|_| ()), "complete");
        corrupt(g.fail(&o, token, &Failure::Retryable, &opts()).map(|_| ()), "fail");
        corrupt(g.renew(&o, token, Duration::from_secs(1), &opts()).map(|_| ()), "renew");
        // Fail-open does not turn a corrupt record into permission to run.
        let open = Options { on_store_failure: Some(idem_host::StoreFailurePolicy::FailOpen), ..opts() };
        corrupt(g.claim(&o, &raw(b"p"), &open).map(|_| ()), "claim (fail-open)");
        // Left untouched for an operator, who can clear it.
        assert_eq!(store.get(&format!("bad/{key}")).unwrap().unwrap().value, bytes, "{what}");
        assert!(g.forget(&o).unwrap(), "{what}: forget clears a corrupt record");
        expect_acquired(g.claim(&o, &raw(b"p"), &opts()).unwrap());
    }
}

fn oversized_input_is_refused_clearly(store: Arc<dyn Store>) {
    let g = guard_on(store);
    let refuse = |r: Result<ClaimDecision, Error>, what: &str| match r {
        Err(Error::Guard(GuardError::InvalidScope(m) | GuardError::InvalidKey(m))) => {
            assert!(!m.is_empty(), "{what}")
        }
        other => panic!("{what}: expected a refusal, got {other:?}"),
    };
    refuse(g.claim(&op(&"s".repeat(65), "k"), &raw(b"p"), &opts()), "65-char scope");
    refuse(g.claim(&op("", "k"), &raw(b"p"), &opts()), "empty scope");
    refuse(g.claim(&op("a/b", "k"), &raw(b"p"), &opts()), "scope with a slash");
    refuse(g.claim(&op("s", &"k".repeat(1025)), &raw(b"p"), &opts()), "1025-byte key");
    refuse(g.claim(&op("s", &"é".repeat(513)), &raw(b"p"), &opts()), "1026-byte key in 513 chars");
    refuse(g.claim(&op("s", "a\nb"), &raw(b"p"), &opts()), "key with a newline");
    refuse(g.claim(&op("s", ""), &raw(b"p"), &opts()), "empty key");
    // Exactly at the limits is accepted.
    expect_acquired(g.claim(&op(&"s".repeat(64), &"k".repeat(1024)), &raw(b"p"), &opts()).unwrap());

    // Outcomes over the limit, at the default and at a chosen limit; the lease survives the refusal.
    let o = op("s", "outcome-limit");
    let lease = expect_acquired(g.claim(&o, &raw(b"p"), &opts()).unwrap());
    let big = Outcome { body: vec![7; (1 << 20) + 1], status: None, content_type: None, metadata: vec![] };
    match g.complete(&o, &lease.token, &big, &opts()) {
        Err(Error::Guard(GuardError::OutcomeTooLarge(s))) => {
            assert_eq!((s.size, s.limit), ((1 << 20) + 1, 1 << 20));
        }
        other => panic!("outcome over the default limit: {other:?}"),
    }
    let small_limit = Options { max_outcome_bytes: Some(10), ..opts() };
    match g.complete(&o, &lease.token, &outcome(b"eleven byte"), &small_limit) {
        Err(Error::Guard(GuardError::OutcomeTooLarge(s))) => assert_eq!(s.limit, 10),
        other => panic!("outcome over a chosen limit: {other:?}"),
    }
    match g.complete(&o, &lease.token, &big, &Options { max_outcome_bytes: Some((16 << 20) + 1), ..opts() }) {
        Err(Error::Guard(GuardError::InvalidOptions(_))) => {}
        other => panic!("a limit above 16 MiB must be refused: {other:?}"),
    }
    g.complete(&o, &lease.token, &outcome(b"fits"), &opts()).unwrap();

    // Fingerprint input that is not usable.
    for (what, fp) in [
        ("31-byte precomputed", FingerprintInput::Precomputed(vec![0; 31])),
        ("33-byte precomputed", FingerprintInput::Precomputed(vec![0; 33])),
        (
            "invalid JSON",
            FingerprintInput::CanonicalJson(idem_host::CanonicalJson { document: "{\"a\":".into(), exclude: vec![] }),
        ),
        (
            "relative pointer",
            FingerprintInput::CanonicalJson(idem_host::CanonicalJson {
                document: "{}".into(),
                exclude: vec!["a".into()],
            }),
        ),
        (
            "JSON nested past the parser's limit",
            FingerprintInput::CanonicalJson(idem_host::CanonicalJson {
                document: format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
                exclude: vec![],
            }),
        ),
    ] {
        match g.claim(&op("s", "fp"), &fp, &opts()) {
            Err(Error::Guard(GuardError::InvalidFingerprint(_))) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
}

macro_rules! backends {
    ($name:ident, $check:ident) => {
        mod $name {
            use super::*;
            #[test]
            fn memory() {
                $check(Arc::new(MemoryStore::new()))
            }
            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                $check(Arc::new(SqliteStore::open(dir.path().join("idem.db")).unwrap()))
            }
            #[test]
            fn redis() {
                let server = RedisServer::start();
                $check(Arc::new(RedisStore::open(&server.url()).unwrap()))
            }
        }
    };
}

backends!(corrupt_records, corrupt_records_give_typed_errors);
backends!(oversized_input, oversized_input_is_refused_clearly);

/// The largest outcome the options allow (16 MiB) must round-trip: completed, then replayed, under the default
/// memory cap. A stored outcome that can never be replayed would turn every duplicate into an error.
///
fn the_largest_allowed_outcome_is_stored_and_replayed_under_the_default_memory_cap() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let g = guard_on(store);
    let o = op("big", "sixteen-mib");
    let limit = Options { max_outcome_bytes: Some(16 << 20), ..opts() };
    let lease = expect_acquired(g.claim(&o, &raw(b"p"), &limit).unwrap());
    let body: Vec<u8> = (0..(16 << 20) - 64).map(|i| (i % 251) as u8).collect();
    let big = Outcome {
        body: body.clone(),
        status: Some(200),
        content_type: Some("application/octet-stream".into()),
        metadata: vec![],
    };
    g.complete(&o, &lease.token, &big, &limit)
        .unwrap_or_else(|e| panic!("completing with a {} byte outcome: {e}", body.len()));
    match g.claim(&o, &raw(b"p"), &limit) {
        Ok(ClaimDecision::Replay(r)) => assert!(r.outcome.body == body),
        Ok(other) => panic!("expected a replay, got {other:?}"),
        Err(e) => panic!("replaying a {} byte outcome: {e}", body.len()),
    }
    let report = g.status(&o).unwrap().unwrap();
    assert_eq!(report.state, RecordState::Succeeded);
}

/// A guest pushed past its memory cap is stopped, reported as `Error::MemoryLimit`, and the guard stays usable.
#[test]
fn the_memory_cap_stops_the_guest_and_the_guard_stays_usable() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let g = Guard::builder().runtime(runtime()).shared_store(store.clone()).memory_limit(4 << 20).build().unwrap();
    let o = op("mem", "k");
    match g.claim(&o, &raw(&vec![1; 8 << 20]), &opts()) {
        Err(Error::MemoryLimit(limit)) => assert_eq!(limit, 4 << 20),
        other => panic!("expected a trap at the memory cap, got {other:?}"),
    }
    assert!(g.status(&o).unwrap().is_none(), "nothing was claimed");
    let lease = expect_acquired(g.claim(&o, &raw(b"small"), &opts()).unwrap());
    g.complete(&o, &lease.token, &outcome(b"ok"), &opts()).unwrap();
    // The default cap (64 MiB) also holds against a payload larger than it.
    let g = guard_on(store);
    match g.claim(&op("mem", "huge"), &raw(&vec![1; 80 << 20]), &opts()) {
        Err(Error::MemoryLimit(limit)) => assert_eq!(limit, idem_host::DEFAULT_MEMORY_LIMIT),
        other => panic!("an 80 MiB payload must hit the default cap, got {other:?}"),
    }
}

/// A store whose calls block: `block` for `insert_or_get` and `compare_and_swap`.
struct Blocking {
    inner: Arc<MemoryStore>,
    block: Duration,
}

impl Store for Blocking {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        std::thread::sleep(self.block);
        self.inner.get(key)
    }
    fn insert_or_get(&self, key: &str, value: &[u8], ttl: u64) -> Result<InsertResult, StoreError> {
        std::thread::sleep(self.block);
        self.inner.insert_or_get(key, value, ttl)
    }
    fn compare_and_swap(&self, key: &str, v: u64, value: &[u8], ttl: u64) -> Result<SwapResult, StoreError> {
        std::thread::sleep(self.block);
        self.inner.compare_and_swap(key, v, value, ttl)
    }
    fn delete_if_version(&self, key: &str, v: u64) -> Result<bool, StoreError> {
        std::thread::sleep(self.block);
        self.inner.delete_if_version(key, v)
    }
}

/// What the deadline really does with a store call that blocks past it: epoch interruption only fires when
/// control is back in wasm, so the call takes as long as the store takes, then ends in `Error::Deadline`. The
/// store's write has happened by then: the claim is refused (nothing may run) but the record is in progress,
/// with a lease nobody holds, recovered after the lease by the next claim. Bounding a store call is the store
/// client's job (the Redis timeout, SQLite's busy timeout), not the deadline's.
#[test]
fn a_store_call_blocking_past_the_deadline_ends_in_deadline_after_the_store_returns() {
    let store = Arc::new(Blocking { inner: Arc::new(MemoryStore::new()), block: Duration::from_millis(600) });
    let g = Guard::builder()
        .runtime(runtime())
        .shared_store(store.clone())
        .deadline(Duration::from_millis(100))
        .build()
        .unwrap();
    let o = op("slow", "k");
    let started = Instant::now();
    let r = g.claim(&o, &raw(b"p"), &opts());
    let took = started.elapsed();
    assert!(matches!(r, Err(Error::Deadline(_))), "{r:?}");
    assert!(took >= Duration::from_millis(600), "the deadline cannot cut a blocking host call short ({took:?})");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The insert happened although the caller was refused.
    let record = store.inner.get("slow/k").unwrap();
    assert!(record.is_some(), "the blocked insert completed in the store");
    let fast = guard_on(store.inner.clone());
    match fast.claim(&o, &raw(b"p"), &opts()).unwrap() {
        ClaimDecision::InProgress(_) => {}
        other => panic!("the orphaned claim holds the lease until it expires: {other:?}"),
    }
}
