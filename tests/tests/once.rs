//! `Guard::run_once`: the closure runs once across racing callers, replays afterwards, keeps its lease alive
//! while it runs, and is refused success when the lease was lost mid-way.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Duration;

use idem_contract_tests::{op, outcome, raw};
use idem_host::{Attempt, ClaimDecision, Error, Guard, GuardError, ManualClock, Options, Ran, RunError};

fn opts(lease_ms: u64) -> Options {
    Options { lease_ms: Some(lease_ms), retention_ms: None, max_outcome_bytes: None, on_store_failure: None }
}

#[test]
fn runs_once_across_racing_callers_and_replays_after() {
    let guard = Guard::builder().build().unwrap();
    let op = op("payments", "once");
    let runs = AtomicU32::new(0);
    let barrier = Barrier::new(16);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                barrier.wait();
                let r = guard.run_once(&op, &raw(b"p"), &opts(5_000), |_| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    Attempt::<()>::Done(outcome(b"charged"))
                });
                results.lock().unwrap().push(r);
            });
        }
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let results = results.into_inner().unwrap();
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(Ran::Executed { .. }))).count(), 1);
    assert!(results.iter().all(|r| matches!(r, Ok(_) | Err(RunError::InProgress(_)))));
    match guard.run_once(&op, &raw(b"p"), &opts(5_000), |_| -> Attempt<()> { panic!("must not run again") }) {
        Ok(Ran::Replayed(r)) => assert_eq!(r.outcome, outcome(b"charged")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        guard.run_once(&op, &raw(b"changed"), &opts(5_000), |_| Attempt::<()>::Done(outcome(b""))),
        Err(RunError::Mismatch)
    ));
}

#[test]
fn a_retryable_failure_releases_for_the_next_attempt() {
    let guard = Guard::builder().build().unwrap();
    let op = op("payments", "flaky");
    let first = guard.run_once(&op, &raw(b"p"), &opts(5_000), |_| Attempt::Retry("upstream timed out"));
    assert!(matches!(first, Err(RunError::Failed("upstream timed out"))));
    match guard.run_once(&op, &raw(b"p"), &opts(5_000), |a| {
        Attempt::<()>::Done(outcome(format!("attempt {}", a.lease.attempt).as_bytes()))
    }) {
        Ok(Ran::Executed { outcome: o, fencing_token, .. }) => {
            assert_eq!((o.body.as_slice(), fencing_token), (b"attempt 2".as_slice(), 2))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_heartbeat_keeps_a_long_operation_from_being_taken_over() {
    let guard = Guard::builder().build().unwrap();
    let op = op("payments", "long");
    std::thread::scope(|s| {
        let runner = s.spawn(|| {
            guard.run_once(&op, &raw(b"p"), &opts(300), |_| {
                std::thread::sleep(Duration::from_millis(1_000)); // three leases long
                Attempt::<()>::Done(outcome(b"slow but once"))
            })
        });
        std::thread::sleep(Duration::from_millis(100));
        for _ in 0..8 {
            let d = guard.claim(&op, &raw(b"p"), &opts(300)).unwrap();
            assert!(matches!(d, ClaimDecision::InProgress(_)), "renewed lease must hold: {d:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(matches!(runner.join().unwrap(), Ok(Ran::Executed { .. })));
    });
}

#[test]
fn success_is_refused_when_the_lease_was_lost_while_running() {
    let clock = ManualClock::at(1_700_000_000_000);
    let guard = Guard::builder().clock(clock.clone()).build().unwrap();
    let op = op("shipments", "truck");
    let result = guard.run_once(&op, &raw(b"p"), &opts(60_000), |_| {
        // While this worker stalls, its lease runs out and another worker takes over.
        clock.advance(Duration::from_secs(61));
        assert!(matches!(guard.claim(&op, &raw(b"p"), &opts(60_000)).unwrap(), ClaimDecision::Acquired(_)));
        Attempt::<()>::Done(outcome(b"second truck"))
    });
    assert!(matches!(result, Err(RunError::Guard(Error::Guard(GuardError::LeaseLost(_))))), "{result:?}");
}
