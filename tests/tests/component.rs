//! The built guard component, exercised through wasmtime: duplicates, races, mismatches, takeovers, bad input
//! and store failure, all through the WIT boundary.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use idem_contract_tests::{FaultyStore, expect_acquired, op, outcome, raw};
use idem_host::store::{MemoryStore, Store};
use idem_host::{
    CanonicalJson, ClaimDecision, Error, Failure, FingerprintInput, Guard, GuardError, ManualClock, Options,
    OutcomeKind, RecordState, Runtime, StoreFailurePolicy,
};

const T0: u64 = 1_700_000_000_000;

fn runtime() -> Runtime {
    static RUNTIME: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().expect("compile the guard")).clone()
}

fn guard_on_clock(clock: &ManualClock) -> Guard {
    let store = MemoryStore::with_clock(Arc::new(clock.clone()));
    Guard::builder().runtime(runtime()).store(store).clock(clock.clone()).build().unwrap()
}

fn opts() -> Options {
    Options { lease_ms: Some(5_000), retention_ms: None, max_outcome_bytes: None, on_store_failure: None }
}

#[test]
fn sequential_duplicates_replay_the_outcome_byte_for_byte() {
    let guard = guard_on_clock(&ManualClock::at(T0));
    let op = op("payments", "order-1/charge");
    let lease = expect_acquired(guard.claim(&op, &raw(b"amount=100"), &opts()).unwrap());
    let stored = idem_host::Outcome {
        body: (0..=255u8).cycle().take(70_000).collect(),
        status: Some(201),
        content_type: Some("application/octet-stream".into()),
        metadata: vec![("location".into(), "/charges/1".into()), ("x-request-id".into(), "r-1".into())],
    };
    guard.complete(&op, &lease.token, &stored, &opts()).unwrap();
    for _ in 0..5 {
        match guard.claim(&op, &raw(b"amount=100"), &opts()).unwrap() {
            ClaimDecision::Replay(r) => {
                assert_eq!(r.kind, OutcomeKind::Succeeded);
                assert_eq!(r.outcome, stored, "the replay must be the stored outcome, byte for byte");
                assert_eq!(r.attempts, 1);
            }
            other => panic!("expected a replay, got {other:?}"),
        }
    }
}

/// A store whose `get` holds each caller for a while and records how many were inside at once.
struct SlowGet {
    inside: std::sync::atomic::AtomicU32,
    most: std::sync::atomic::AtomicU32,
}

impl Store for SlowGet {
    fn get(&self, _key: &str) -> Result<Option<idem_host::store::Entry>, idem_host::store::StoreError> {
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        self.inside.fetch_sub(1, Ordering::SeqCst);
        Ok(None)
    }
    fn insert_or_get(
        &self,
        _: &str,
        _: &[u8],
        _: u64,
    ) -> Result<idem_host::store::InsertResult, idem_host::store::StoreError> {
        unreachable!("status only reads")
    }
    fn compare_and_swap(
        &self,
        _: &str,
        _: u64,
        _: &[u8],
        _: u64,
    ) -> Result<idem_host::store::SwapResult, idem_host::store::StoreError> {
        unreachable!("status only reads")
    }
    fn delete_if_version(&self, _: &str, _: u64) -> Result<bool, idem_host::store::StoreError> {
        unreachable!("status only reads")
    }
}

/// The pooling allocator has `MAX_CONCURRENT_CALLS` instance slots; callers beyond that wait for one and still get
/// their answer, never an allocation error.
#[test]
fn more_callers_than_instance_slots_all_get_answers() {
    let store = Arc::new(SlowGet { inside: 0.into(), most: 0.into() });
    let guard = Guard::builder().runtime(runtime()).shared_store(store.clone()).build().unwrap();
    let callers = 2 * idem_host::MAX_CONCURRENT_CALLS as usize + 16;
    let barrier = Barrier::new(callers);
    std::thread::scope(|s| {
        for i in 0..callers {
            let (guard, barrier) = (&guard, &barrier);
            s.spawn(move || {
                barrier.wait();
                assert_eq!(guard.status(&op("payments", &format!("slot-{i}"))).unwrap(), None);
            });
        }
    });
    let most = store.most.load(Ordering::SeqCst);
    assert!(most <= idem_host::MAX_CONCURRENT_CALLS, "{most} calls ran at once");
    assert!(most > 1, "the calls did overlap");
}

#[test]
fn sixty_four_threads_racing_one_key_yield_exactly_one_acquired() {
    for round in 0..5 {
        let guard = Guard::builder().runtime(runtime()).build().unwrap();
        let barrier = Barrier::new(64);
        let executions = Mutex::new(0u32);
        let decisions = Mutex::new(Vec::new());
        let op = op("payments", &format!("race-{round}"));
        std::thread::scope(|s| {
            for _ in 0..64 {
                s.spawn(|| {
                    barrier.wait();
                    let d = guard.claim(&op, &raw(b"same payload"), &opts()).unwrap();
                    if let ClaimDecision::Acquired(a) = &d {
                        *executions.lock().unwrap() += 1;
                        guard.complete(&op, &a.lease.token, &outcome(b"charged"), &opts()).unwrap();
                    }
                    decisions.lock().unwrap().push(d);
                });
            }
        });
        let decisions = decisions.into_inner().unwrap();
        let acquired = decisions.iter().filter(|d| matches!(d, ClaimDecision::Acquired(_))).count();
        assert_eq!(acquired, 1, "round {round}");
        assert_eq!(executions.into_inner().unwrap(), 1);
        for d in &decisions {
            match d {
                ClaimDecision::Acquired(_) | ClaimDecision::InProgress(_) => {}
                ClaimDecision::Replay(r) => assert_eq!(r.outcome.body, b"charged"),
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn a_mismatched_payload_is_refused_and_changes_nothing() {
    let guard = guard_on_clock(&ManualClock::at(T0));
    let op = op("payments", "order-2/charge");
    let json = |doc: &str| {
        FingerprintInput::CanonicalJson(CanonicalJson { document: doc.into(), exclude: vec!["/sent_at".into()] })
    };
    let lease = expect_acquired(guard.claim(&op, &json(r#"{"amount":100,"sent_at":1}"#), &opts()).unwrap());
    assert_eq!(guard.claim(&op, &json(r#"{"amount":999}"#), &opts()).unwrap(), ClaimDecision::Mismatch);
    guard.complete(&op, &lease.token, &outcome(b"ok"), &opts()).unwrap();
    let before = guard.status(&op).unwrap().unwrap();
    assert_eq!(guard.claim(&op, &json(r#"{"amount":999}"#), &opts()).unwrap(), ClaimDecision::Mismatch);
    assert_eq!(guard.status(&op).unwrap().unwrap(), before);
    // Same payload with keys reordered, whitespace and an excluded timestamp changed: still a replay.
    let again = guard.claim(&op, &json("{ \"sent_at\": 99,\n  \"amount\": 100 }"), &opts()).unwrap();
    assert!(matches!(again, ClaimDecision::Replay(_)), "{again:?}");
}

#[test]
fn a_stale_worker_cannot_complete_after_takeover() {
    let clock = ManualClock::at(T0);
    let guard = guard_on_clock(&clock);
    let op = op("shipments", "work-order/WO-123/release");
    let stale = expect_acquired(guard.claim(&op, &raw(b"wo-123"), &opts()).unwrap());
    clock.advance(Duration::from_secs(6)); // the first worker stalls past its 5 s lease
    let ClaimDecision::Acquired(fresh) = guard.claim(&op, &raw(b"wo-123"), &opts()).unwrap() else { panic!() };
    assert!(fresh.recovered);
    assert!(fresh.lease.fencing_token > stale.fencing_token);
    let lost = |r: Result<u64, Error>| match r {
        Err(Error::Guard(GuardError::LeaseLost(l))) => {
            assert_eq!(l.current_fencing_token, Some(fresh.lease.fencing_token))
        }
        other => panic!("expected lease-lost, got {other:?}"),
    };
    lost(guard.complete(&op, &stale.token, &outcome(b"second truck"), &opts()));
    lost(guard.fail(&op, &stale.token, &Failure::Terminal(outcome(b"x")), &opts()));
    lost(guard.renew(&op, &stale.token, Duration::from_secs(30), &opts()));
    guard.complete(&op, &fresh.lease.token, &outcome(b"one truck"), &opts()).unwrap();
    match guard.claim(&op, &raw(b"wo-123"), &opts()).unwrap() {
        ClaimDecision::Replay(r) => assert_eq!((r.outcome.body.as_slice(), r.attempts), (b"one truck".as_slice(), 2)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn status_renew_fail_and_forget_work_through_the_boundary() {
    let clock = ManualClock::at(T0);
    let guard = guard_on_clock(&clock);
    let op = op("inventory", "move/42");
    assert_eq!(guard.status(&op).unwrap(), None);
    let lease = expect_acquired(guard.claim(&op, &raw(b"p"), &opts()).unwrap());
    clock.advance(Duration::from_secs(4));
    assert_eq!(guard.renew(&op, &lease.token, Duration::from_secs(10), &opts()).unwrap(), T0 + 14_000);
    guard.fail(&op, &lease.token, &Failure::Retryable, &opts()).unwrap();
    let s = guard.status(&op).unwrap().unwrap();
    assert_eq!((s.state, s.attempts, s.fencing_token), (RecordState::Released, 1, 1));
    let retry = expect_acquired(guard.claim(&op, &raw(b"p"), &opts()).unwrap());
    assert_eq!((retry.fencing_token, retry.attempt), (2, 2));
    guard.fail(&op, &retry.token, &Failure::Terminal(outcome(b"out of stock")), &opts()).unwrap();
    match guard.claim(&op, &raw(b"p"), &opts()).unwrap() {
        ClaimDecision::Replay(r) => {
            assert_eq!((r.kind, r.outcome.body.as_slice()), (OutcomeKind::Failed, b"out of stock".as_slice()))
        }
        other => panic!("{other:?}"),
    }
    assert!(guard.forget(&op).unwrap());
    assert_eq!(expect_acquired(guard.claim(&op, &raw(b"new"), &opts()).unwrap()).fencing_token, 1);
}

#[test]
fn bad_input_is_a_typed_error_never_a_trap() {
    let guard = guard_on_clock(&ManualClock::at(T0));
    let claim = |scope: &str, key: &str, fp: FingerprintInput, o: Options| match guard.claim(&op(scope, key), &fp, &o) {
        Err(Error::Guard(e)) => e,
        other => panic!("expected a guard error, got {other:?}"),
    };
    assert!(matches!(claim("payments", "", raw(b"p"), opts()), GuardError::InvalidKey(_)));
    assert!(matches!(claim("payments", &"k".repeat(1025), raw(b"p"), opts()), GuardError::InvalidKey(_)));
    assert!(matches!(claim("pay/ments", "k", raw(b"p"), opts()), GuardError::InvalidScope(_)));
    assert!(matches!(claim("", "k", raw(b"p"), opts()), GuardError::InvalidScope(_)));
    let bad_json =
        FingerprintInput::CanonicalJson(CanonicalJson { document: "{\"amount\": 1,".into(), exclude: vec![] });
    assert!(matches!(claim("payments", "k", bad_json, opts()), GuardError::InvalidFingerprint(_)));
    let short = FingerprintInput::Precomputed(vec![1; 16]);
    assert!(matches!(claim("payments", "k", short, opts()), GuardError::InvalidFingerprint(_)));
    let zero = Options { lease_ms: Some(0), ..opts() };
    assert!(matches!(claim("payments", "k", raw(b"p"), zero), GuardError::InvalidOptions(_)));

    let op = op("payments", "big");
    let lease = expect_acquired(guard.claim(&op, &raw(b"p"), &opts()).unwrap());
    let huge = outcome(&vec![7; (1 << 20) + 1]);
    match guard.complete(&op, &lease.token, &huge, &opts()) {
        Err(Error::Guard(GuardError::OutcomeTooLarge(s))) => assert_eq!(s.limit, 1 << 20),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        guard.complete(&op, "not-a-token", &outcome(b""), &opts()),
        Err(Error::Guard(GuardError::InvalidToken(_)))
    ));
    guard.complete(&op, &lease.token, &outcome(b"fits"), &opts()).unwrap();
}

#[test]
fn corrupt_bytes_in_the_store_are_a_typed_error_and_stay_untouched() {
    let clock = ManualClock::at(T0);
    let store = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    let guard = Guard::builder().runtime(runtime()).shared_store(store.clone()).clock(clock).build().unwrap();
    for junk in [&b"{\"foreign\":\"json\"}"[..], b"IDEM\x01\xff\xff\xff", b"IDEM\x07newer-format", b""] {
        let _ = store.insert_or_get("payments/k", junk, 60_000).unwrap();
        for result in [
            guard.claim(&op("payments", "k"), &raw(b"p"), &opts()).map(|_| ()),
            guard.status(&op("payments", "k")).map(|_| ()),
        ] {
            assert!(matches!(result, Err(Error::Guard(GuardError::CorruptRecord(_)))), "{junk:?}: {result:?}");
        }
        assert_eq!(store.get("payments/k").unwrap().unwrap().value, junk);
        assert!(guard.forget(&op("payments", "k")).unwrap(), "an operator can clear it");
    }
}

#[test]
fn store_down_fails_closed_and_open_only_when_asked() {
    let (store, down) = FaultyStore::new(MemoryStore::new());
    let guard = Guard::builder().runtime(runtime()).store(store).build().unwrap();
    let op = op("payments", "k");
    down.store(true, Ordering::SeqCst);
    assert!(matches!(guard.claim(&op, &raw(b"p"), &opts()), Err(Error::Guard(GuardError::Store(_)))));
    let open = Options { on_store_failure: Some(StoreFailurePolicy::FailOpen), ..opts() };
    assert!(matches!(guard.claim(&op, &raw(b"p"), &open), Ok(ClaimDecision::Unguarded(_))));
    down.store(false, Ordering::SeqCst);
    assert_eq!(guard.status(&op).unwrap(), None);
    expect_acquired(guard.claim(&op, &raw(b"p"), &opts()).unwrap());
}

#[test]
fn the_guest_cannot_exceed_its_memory_cap() {
    let guard = Guard::builder().runtime(runtime()).memory_limit(2 << 20).build().unwrap();
    let op = op("payments", "mem");
    let lease = expect_acquired(guard.claim(&op, &raw(b"p"), &opts()).unwrap());
    let big = Options { max_outcome_bytes: Some(16 << 20), ..opts() };
    let result = guard.complete(&op, &lease.token, &outcome(&vec![1; 4 << 20]), &big);
    assert!(matches!(result, Err(Error::MemoryLimit(l)) if l == 2 << 20), "{result:?}");
    // The host survives and the record is untouched: the lease is still usable with a smaller outcome.
    guard.complete(&op, &lease.token, &outcome(b"small"), &opts()).unwrap();
}
