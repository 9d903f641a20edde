//! Store outage: Redis killed, then frozen (SIGSTOP: socket open, no answers) in the middle of a run. Every
//! caller gets a store error within a bounded time, nothing runs under fail-closed, fail-open says `unguarded`,
//! and the service recovers by itself when Redis returns, with every completion from before the outage intact.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use idem_chaos::{RedisProc, free_port};
use idem_host::store::RedisStore;
use idem_host::{
    ClaimDecision, Error, FingerprintInput, Guard, GuardError, Operation, Options, Outcome, StoreFailurePolicy,
};

fn op(key: String) -> Operation {
    Operation { scope: "outage".into(), key }
}

fn opts(policy: Option<StoreFailurePolicy>) -> Options {
    Options { lease_ms: Some(10_000), retention_ms: None, max_outcome_bytes: None, on_store_failure: policy }
}

fn body(key: &str) -> Outcome {
    Outcome { body: format!("done {key}").into_bytes(), status: Some(200), content_type: None, metadata: vec![] }
}

/// Each of 6 threads claims 3 new operations while the store is down. Returns the slowest call.
fn hammer_while_down(guard: &Guard, phase: &str, policy: Option<StoreFailurePolicy>) -> Duration {
    let executed = AtomicU64::new(0);
    let slowest = std::sync::Mutex::new(Duration::ZERO);
    std::thread::scope(|s| {
        for t in 0..6 {
            let (executed, slowest) = (&executed, &slowest);
            s.spawn(move || {
                for n in 0..3 {
                    let key = format!("{phase}-{t}-{n}");
                    let started = Instant::now();
                    let r = guard.claim(&op(key.clone()), &FingerprintInput::Raw(b"p".to_vec()), &opts(policy));
                    let took = started.elapsed();
                    {
                        let mut s = slowest.lock().unwrap();
                        *s = (*s).max(took);
                    }
                    match (policy, r) {
                        (None, Err(Error::Guard(GuardError::Store(_)))) => {}
                        (Some(StoreFailurePolicy::FailOpen), Ok(ClaimDecision::Unguarded(_))) => {}
                        (_, Ok(ClaimDecision::Acquired(_))) => {
                            executed.fetch_add(1, Ordering::Relaxed);
                        }
                        (_, other) => panic!("{phase} {key}: {other:?} after {took:?}"),
                    }
                }
            });
        }
    });
    assert_eq!(executed.load(Ordering::Relaxed), 0, "{phase}: an operation was acquired while the store was down");
    slowest.into_inner().unwrap()
}

fn complete_some(guard: &Guard, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let key = format!("{prefix}-{i}");
            let ClaimDecision::Acquired(a) =
                guard.claim(&op(key.clone()), &FingerprintInput::Raw(b"p".to_vec()), &opts(None)).unwrap()
            else {
                panic!("{key}: not acquired")
            };
            guard.complete(&op(key.clone()), &a.lease.token, &body(&key), &opts(None)).unwrap();
            key
        })
        .collect()
}

fn assert_replays(guard: &Guard, keys: &[String]) {
    for key in keys {
        match guard.claim(&op(key.clone()), &FingerprintInput::Raw(b"p".to_vec()), &opts(None)) {
            Ok(ClaimDecision::Replay(r)) => assert_eq!(r.outcome, body(key)),
            other => panic!("{key}: completion from before the outage: {other:?}"),
        }
    }
}

fn wait_recovered(guard: &Guard, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let key = format!("probe-{what}-{}", started.elapsed().as_nanos());
        match guard.claim(&op(key), &FingerprintInput::Raw(b"p".to_vec()), &opts(None)) {
            Ok(ClaimDecision::Acquired(_)) => return started.elapsed(),
            Err(Error::Guard(GuardError::Store(_))) => {}
            other => panic!("{what}: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{what}: no recovery within 15 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn redis_outage_fails_closed_within_bounds_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisProc::start_durable(free_port(), dir.path());
    // The shipped default: a 2 s bound on connecting and on each round trip.
    let guard = Guard::builder().shared_store(Arc::new(RedisStore::open(&redis.url()).unwrap())).build().unwrap();
    let before = complete_some(&guard, "before", 20);

    // Killed: connections are refused at once.
    redis.kill();
    let slowest = hammer_while_down(&guard, "killed", None);
    eprintln!("redis killed: slowest fail-closed claim {slowest:?}");
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
    let slowest = hammer_while_down(&guard, "killed-open", Some(StoreFailurePolicy::FailOpen));
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
    redis.restart();
    eprintln!("recovered after restart in {:?}", wait_recovered(&guard, "restart"));
    assert_replays(&guard, &before);

    // Frozen: the socket accepts, nothing answers; the client's timeout must end every call.
    let during = complete_some(&guard, "between", 5);
    redis.freeze();
    let slowest = hammer_while_down(&guard, "frozen", None);
    eprintln!("redis frozen: slowest fail-closed claim {slowest:?}");
    assert!(slowest < Duration::from_secs(7), "a frozen Redis must not hang callers: {slowest:?}");
    redis.thaw();
    eprintln!("recovered after thaw in {:?}", wait_recovered(&guard, "thaw"));
    assert_replays(&guard, &before);
    assert_replays(&guard, &during);
    // Nothing was stored for the refused claims... except where the frozen server received the command and ran
    // it after thawing: those records are in progress with a lease nobody holds, and are taken over after it.
    let mut orphaned = 0;
    for t in 0..6 {
        for n in 0..3 {
            if guard.status(&op(format!("frozen-{t}-{n}"))).unwrap().is_some() {
                orphaned += 1;
            }
            assert!(guard.status(&op(format!("killed-{t}-{n}"))).unwrap().is_none());
        }
    }
    eprintln!("claims a frozen Redis executed after thawing (in progress, unheld): {orphaned}");
}
