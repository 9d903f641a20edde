use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Barrier, Mutex};

use proptest::prelude::*;

use super::*;
use crate::testing::{MemStore, SimClock};
use crate::types::{OutcomeKind, RecordState};

const T0: u64 = 1_700_000_000_000;

fn op(key: &str) -> Operation {
    Operation::new("payments", key)
}

fn raw(payload: &str) -> FingerprintInput {
    FingerprintInput::Raw(payload.as_bytes().to_vec())
}

fn body(b: &str) -> Outcome {
    Outcome {
        body: b.as_bytes().to_vec(),
        status: Some(201),
        content_type: Some("text/plain".into()),
        metadata: vec![],
    }
}

fn lease_of(d: ClaimDecision) -> Lease {
    match d {
        ClaimDecision::Acquired(a) => a.lease,
        other => panic!("expected acquired, got {other:?}"),
    }
}

fn opts() -> Options {
    Options { lease_ms: Some(1_000), retention_ms: Some(60_000), ..Default::default() }
}

#[test]
fn case_1_first_claim_acquires() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    let d = g.claim(&op("a"), &raw("p"), &opts()).unwrap();
    let ClaimDecision::Acquired(a) = d else { panic!("{d:?}") };
    assert_eq!((a.lease.fencing_token, a.lease.attempt, a.lease.expires_at, a.recovered), (1, 1, T0 + 1_000, false));
}

#[test]
fn case_2_live_lease_is_in_progress_and_never_a_second_execution() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    clock.advance(400);
    let d = g.claim(&op("a"), &raw("p"), &opts()).unwrap();
    assert_eq!(
        d,
        ClaimDecision::InProgress(InProgress { attempt: 1, lease_expires_at: T0 + 1_000, retry_after_ms: 600 })
    );
}

#[test]
fn case_3_expired_lease_is_taken_over_with_higher_fencing() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    let first = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    clock.advance(1_000);
    let ClaimDecision::Acquired(second) = g.claim(&op("a"), &raw("p"), &opts()).unwrap() else { panic!() };
    assert!(second.recovered);
    assert_eq!((second.lease.fencing_token, second.lease.attempt), (2, 2));
    assert_ne!(first.token, second.lease.token);
    // The stale worker wakes up: every write it tries is refused and the record is untouched.
    let before = store.raw("payments/a").unwrap();
    let lost = GuardError::LeaseLost { current_fencing_token: Some(2) };
    assert_eq!(g.complete(&op("a"), &first.token, body("stale"), &opts()), Err(lost.clone()));
    assert_eq!(g.renew(&op("a"), &first.token, 5_000, &opts()), Err(lost.clone()));
    assert_eq!(g.fail(&op("a"), &first.token, Failure::Retryable, &opts()), Err(lost.clone()));
    assert_eq!(g.fail(&op("a"), &first.token, Failure::Terminal(body("x")), &opts()), Err(lost));
    assert_eq!(store.raw("payments/a").unwrap(), before);
    g.complete(&op("a"), &second.lease.token, body("fresh"), &opts()).unwrap();
    let ClaimDecision::Replay(r) = g.claim(&op("a"), &raw("p"), &opts()).unwrap() else { panic!() };
    assert_eq!((r.outcome.body.as_slice(), r.attempts), (b"fresh".as_slice(), 2));
}

#[test]
fn case_4_completed_replays_the_outcome_byte_for_byte() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    let lease = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    let outcome = Outcome {
        body: (0..=255u8).collect(),
        status: Some(200),
        content_type: Some("application/octet-stream".into()),
        metadata: vec![("x-b".into(), "2".into()), ("x-a".into(), "1".into())],
    };
    clock.advance(10);
    assert_eq!(g.complete(&op("a"), &lease.token, outcome.clone(), &opts()).unwrap(), T0 + 10);
    for _ in 0..3 {
        clock.advance(5_000);
        let d = g.claim(&op("a"), &raw("p"), &opts()).unwrap();
        assert_eq!(
            d,
            ClaimDecision::Replay(Replay {
                kind: OutcomeKind::Succeeded,
                outcome: outcome.clone(),
                finished_at: T0 + 10,
                attempts: 1
            })
        );
    }
}

#[test]
fn case_5_different_fingerprint_is_a_mismatch_in_every_state() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    let check = |g: &Guard<&MemStore, &SimClock>| {
        let before = store.raw("payments/a");
        assert_eq!(g.claim(&op("a"), &raw("other"), &opts()).unwrap(), ClaimDecision::Mismatch);
        assert_eq!(store.raw("payments/a"), before, "a mismatch must not write");
    };
    let lease = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    check(&g); // in progress, live
    clock.advance(2_000);
    check(&g); // in progress, expired
    let lease2 = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    assert_eq!(lease2.fencing_token, 2);
    g.fail(&op("a"), &lease2.token, Failure::Retryable, &opts()).unwrap();
    check(&g); // released
    let lease3 = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    g.complete(&op("a"), &lease3.token, body("done"), &opts()).unwrap();
    check(&g); // completed
    assert!(g.complete(&op("a"), &lease.token, body("x"), &opts()).is_err());
}

#[test]
fn case_6_terminal_failure_replays_the_failure() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    let lease = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    let declined = Outcome { status: Some(402), ..body("card declined") };
    g.fail(&op("a"), &lease.token, Failure::Terminal(declined.clone()), &opts()).unwrap();
    let ClaimDecision::Replay(r) = g.claim(&op("a"), &raw("p"), &opts()).unwrap() else { panic!() };
    assert_eq!((r.kind, r.outcome), (OutcomeKind::Failed, declined));
}

#[test]
fn retryable_failure_releases_at_once_with_fencing_rising() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    let lease = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    g.fail(&op("a"), &lease.token, Failure::Retryable, &opts()).unwrap();
    assert_eq!(g.status(&op("a")).unwrap().unwrap().state, RecordState::Released);
    let ClaimDecision::Acquired(a) = g.claim(&op("a"), &raw("p"), &opts()).unwrap() else { panic!() };
    assert_eq!((a.lease.fencing_token, a.lease.attempt, a.recovered), (2, 2, false));
}

#[test]
fn renew_extends_a_live_lease_and_revives_an_untaken_one() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    let lease = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    clock.advance(900);
    assert_eq!(g.renew(&op("a"), &lease.token, 1_000, &opts()).unwrap(), T0 + 1_900);
    clock.advance(800);
    assert!(matches!(g.claim(&op("a"), &raw("p"), &opts()).unwrap(), ClaimDecision::InProgress(_)));
    clock.advance(5_000);
    // Expired, but nobody took over: the holder may still renew and complete.
    assert_eq!(g.renew(&op("a"), &lease.token, 1_000, &opts()).unwrap(), T0 + 7_700);
    g.complete(&op("a"), &lease.token, body("ok"), &opts()).unwrap();
    assert!(matches!(g.renew(&op("a"), &lease.token, 1_000, &opts()), Err(GuardError::LeaseLost { .. })));
    assert!(matches!(g.renew(&op("a"), &lease.token, 0, &opts()), Err(GuardError::InvalidOptions(_))));
}

#[test]
fn complete_is_safe_to_retry_with_the_same_outcome_only() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    let lease = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    let at = g.complete(&op("a"), &lease.token, body("ok"), &opts()).unwrap();
    clock.advance(50);
    assert_eq!(g.complete(&op("a"), &lease.token, body("ok"), &opts()).unwrap(), at);
    assert!(matches!(
        g.complete(&op("a"), &lease.token, body("different"), &opts()),
        Err(GuardError::LeaseLost { .. })
    ));
    let failed = g.fail(&op("a"), &lease.token, Failure::Terminal(body("ok")), &opts());
    assert!(matches!(failed, Err(GuardError::LeaseLost { .. })));
}

#[test]
fn retention_expiry_forgets_and_starts_afresh() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    let lease = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    g.complete(&op("a"), &lease.token, body("ok"), &opts()).unwrap();
    clock.advance(59_999);
    assert!(matches!(g.claim(&op("a"), &raw("p"), &opts()).unwrap(), ClaimDecision::Replay(_)));
    clock.advance(1);
    assert_eq!(g.status(&op("a")).unwrap(), None);
    // A fresh record: fencing restarts, and the old token (different nonce) is still refused.
    let fresh = lease_of(g.claim(&op("a"), &raw("new payload"), &opts()).unwrap());
    assert_eq!(fresh.fencing_token, 1);
    assert_ne!(fresh.token, lease.token);
    assert!(matches!(g.complete(&op("a"), &lease.token, body("x"), &opts()), Err(GuardError::LeaseLost { .. })));
}

#[test]
fn abandoned_in_progress_record_lives_for_lease_plus_retention() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    clock.advance(60_999);
    assert_eq!(g.status(&op("a")).unwrap().unwrap().state, RecordState::InProgress);
    clock.advance(1);
    assert_eq!(g.status(&op("a")).unwrap(), None);
}

#[test]
fn status_reports_without_claiming() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    assert_eq!(g.status(&op("a")).unwrap(), None);
    let lease = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    let s = g.status(&op("a")).unwrap().unwrap();
    assert_eq!(
        (s.state, s.attempts, s.fencing_token, s.lease_expires_at),
        (RecordState::InProgress, 1, 1, Some(T0 + 1_000))
    );
    clock.advance(7);
    g.complete(&op("a"), &lease.token, body("12345"), &opts()).unwrap();
    let s = g.status(&op("a")).unwrap().unwrap();
    assert_eq!(
        (s.state, s.created_at, s.updated_at, s.finished_at),
        (RecordState::Succeeded, T0, T0 + 7, Some(T0 + 7))
    );
    assert_eq!(s.outcome_bytes, Some(5 + "text/plain".len() as u64));
    assert_eq!(s.fingerprint, fingerprint(&raw("p")).unwrap().to_vec());
}

#[test]
fn forget_clears_any_record_and_refuses_the_old_holder() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    assert!(!g.forget(&op("a")).unwrap());
    let lease = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    assert!(g.forget(&op("a")).unwrap());
    assert_eq!(
        g.complete(&op("a"), &lease.token, body("x"), &opts()),
        Err(GuardError::LeaseLost { current_fencing_token: None })
    );
    store.put_raw("payments/b", b"not a record");
    assert!(g.forget(&op("b")).unwrap());
}

#[test]
fn scopes_never_meet() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    let l = lease_of(g.claim(&Operation::new("tenant-a", "k"), &raw("p"), &opts()).unwrap());
    g.complete(&Operation::new("tenant-a", "k"), &l.token, body("a"), &opts()).unwrap();
    assert!(matches!(
        g.claim(&Operation::new("tenant-b", "k"), &raw("q"), &opts()).unwrap(),
        ClaimDecision::Acquired(_)
    ));
    // A key that looks like a path into another scope stays in its own scope.
    assert!(matches!(
        g.claim(&Operation::new("tenant-b", "../tenant-a/k"), &raw("p"), &opts()).unwrap(),
        ClaimDecision::Acquired(_)
    ));
    assert!(matches!(g.claim(&Operation::new("tenant-a", "k"), &raw("p"), &opts()).unwrap(), ClaimDecision::Replay(_)));
}

#[test]
fn bad_input_is_refused_before_the_store_is_touched() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    store.down.store(true, Ordering::SeqCst); // any store call would fail with `store`, not the error below
    let claim = |o: Operation, f: FingerprintInput, opts: Options| g.claim(&o, &f, &opts).unwrap_err();
    assert!(matches!(claim(op(""), raw("p"), opts()), GuardError::InvalidKey(_)));
    assert!(matches!(claim(op(&"k".repeat(1025)), raw("p"), opts()), GuardError::InvalidKey(_)));
    assert!(matches!(claim(Operation::new("pay ments", "k"), raw("p"), opts()), GuardError::InvalidScope(_)));
    let bad_json = FingerprintInput::CanonicalJson { document: "{\"a\":".into(), exclude: vec![] };
    assert!(matches!(claim(op("k"), bad_json, opts()), GuardError::InvalidFingerprint(_)));
    let zero_lease = Options { lease_ms: Some(0), ..opts() };
    assert!(matches!(claim(op("k"), raw("p"), zero_lease), GuardError::InvalidOptions(_)));
    let small = Options { max_outcome_bytes: Some(4), ..opts() };
    let too_big = g.complete(&op("k"), "1.0000000000000001", body("12345"), &small).unwrap_err();
    assert_eq!(too_big, GuardError::OutcomeTooLarge { size: 15, limit: 4 });
    assert!(matches!(g.complete(&op("k"), "junk", body(""), &opts()), Err(GuardError::InvalidToken(_))));
}

#[test]
fn oversized_outcome_leaves_the_lease_usable() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    let lease = lease_of(g.claim(&op("a"), &raw("p"), &opts()).unwrap());
    let huge = Outcome { body: vec![1; (1 << 20) + 1], ..Default::default() };
    assert!(matches!(g.complete(&op("a"), &lease.token, huge, &opts()), Err(GuardError::OutcomeTooLarge { .. })));
    g.complete(&op("a"), &lease.token, body("fits"), &opts()).unwrap();
}

#[test]
fn corrupt_or_foreign_records_are_typed_errors_and_left_alone() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    let mut newer = b"IDEM\x02".to_vec();
    newer.extend([0; 40]);
    for junk in [b"{\"foreign\":1}".to_vec(), b"IDEM\x01\xff\xff".to_vec(), newer, vec![]] {
        store.put_raw("payments/a", &junk);
        assert!(matches!(g.claim(&op("a"), &raw("p"), &opts()), Err(GuardError::CorruptRecord(_))));
        assert!(matches!(g.status(&op("a")), Err(GuardError::CorruptRecord(_))));
        assert!(matches!(
            g.complete(&op("a"), "1.0000000000000000", body(""), &opts()),
            Err(GuardError::CorruptRecord(_))
        ));
        assert_eq!(store.raw("payments/a").unwrap(), junk);
    }
}

#[test]
fn store_down_fails_closed_by_default_and_open_only_when_asked() {
    let clock = SimClock::at(T0);
    let store = MemStore::new(&clock);
    let g = Guard::new(&store, &clock);
    store.down.store(true, Ordering::SeqCst);
    assert!(matches!(g.claim(&op("a"), &raw("p"), &opts()), Err(GuardError::Store(StoreError::Unavailable(_)))));
    let open = Options { on_store_failure: Some(StoreFailurePolicy::FailOpen), ..opts() };
    assert!(matches!(g.claim(&op("a"), &raw("p"), &open), Ok(ClaimDecision::Unguarded(StoreError::Unavailable(_)))));
    // Validation still comes first under fail-open: bad input is never "unguarded".
    assert!(matches!(g.claim(&op(""), &raw("p"), &open), Err(GuardError::InvalidKey(_))));
    assert!(matches!(g.status(&op("a")), Err(GuardError::Store(_))));
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(g.status(&op("a")).unwrap(), None, "nothing was stored while down");
}

#[test]
fn racing_claimers_on_one_key_yield_exactly_one_acquired() {
    for round in 0..20 {
        let clock = SimClock::at(T0);
        let store = MemStore::new(&clock);
        let barrier = Barrier::new(64);
        let decisions = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..64 {
                s.spawn(|| {
                    let g = Guard::new(&store, &clock);
                    barrier.wait();
                    let d = g.claim(&op("race"), &raw("p"), &opts()).unwrap();
                    if let ClaimDecision::Acquired(a) = &d {
                        g.complete(&op("race"), &a.lease.token, body("won"), &opts()).unwrap();
                    }
                    decisions.lock().unwrap().push(d);
                });
            }
        });
        let decisions = decisions.into_inner().unwrap();
        let acquired = decisions.iter().filter(|d| matches!(d, ClaimDecision::Acquired(_))).count();
        assert_eq!(acquired, 1, "round {round}: {decisions:?}");
        assert!(decisions.iter().all(|d| matches!(
            d,
            ClaimDecision::Acquired(_) | ClaimDecision::InProgress(_) | ClaimDecision::Replay(_)
        )));
    }
}

#[test]
fn racing_takeovers_of_an_expired_lease_yield_exactly_one_winner() {
    for _ in 0..20 {
        let clock = SimClock::at(T0);
        let store = MemStore::new(&clock);
        lease_of(Guard::new(&store, &clock).claim(&op("a"), &raw("p"), &opts()).unwrap());
        clock.advance(1_000);
        let barrier = Barrier::new(32);
        let winners = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..32 {
                s.spawn(|| {
                    let g = Guard::new(&store, &clock);
                    barrier.wait();
                    if let ClaimDecision::Acquired(a) = g.claim(&op("a"), &raw("p"), &opts()).unwrap() {
                        winners.lock().unwrap().push(a);
                    }
                });
            }
        });
        let winners = winners.into_inner().unwrap();
        assert_eq!(winners.len(), 1);
        assert!(winners[0].recovered && winners[0].lease.fencing_token == 2);
    }
}

// ---- a model of the state machine, checked against the real guard over random histories ----

#[derive(Debug, Clone)]
enum Action {
    Claim { key: usize, payload: usize },
    Complete { key: usize, token: usize, body: u8 },
    FailRetryable { key: usize, token: usize },
    FailTerminal { key: usize, token: usize, body: u8 },
    Renew { key: usize, token: usize, by: u64 },
    Advance(u64),
    Forget { key: usize },
}

fn action() -> impl Strategy<Value = Action> {
    let key = 0..2usize;
    let token = 0..4usize;
    prop_oneof![
        4 => (key.clone(), 0..2usize).prop_map(|(key, payload)| Action::Claim { key, payload }),
        2 => (key.clone(), token.clone(), 0..3u8).prop_map(|(key, token, body)| Action::Complete { key, token, body }),
        1 => (key.clone(), token.clone()).prop_map(|(key, token)| Action::FailRetryable { key, token }),
        1 => (key.clone(), token.clone(), 0..3u8).prop_map(|(key, token, body)| Action::FailTerminal { key, token, body }),
        1 => (key.clone(), token.clone(), 1..300u64).prop_map(|(key, token, by)| Action::Renew { key, token, by }),
        3 => (0..400u64).prop_map(Action::Advance),
        1 => key.prop_map(|key| Action::Forget { key }),
    ]
}

const LEASE: u64 = 100;
const RETENTION: u64 = 1_000;

#[derive(Debug, Clone, PartialEq)]
enum MState {
    InProgress { until: u64 },
    Released,
    Finished { kind: OutcomeKind, body: u8, at: u64 },
}

#[derive(Debug, Clone)]
struct MRecord {
    payload: usize,
    fencing: u64,
    attempts: u32,
    holder: String,
    state: MState,
    gone_at: u64,
}

#[derive(Default)]
struct Model {
    records: HashMap<usize, MRecord>,
    tokens: HashMap<usize, Vec<String>>,
}

impl Model {
    fn live(&mut self, key: usize, now: u64) -> Option<&mut MRecord> {
        if self.records.get(&key).is_some_and(|r| r.gone_at <= now) {
            self.records.remove(&key);
        }
        self.records.get_mut(&key)
    }
}

fn out(b: u8) -> Outcome {
    Outcome { body: vec![b; 3], status: Some(200 + u16::from(b)), content_type: None, metadata: vec![] }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn guard_follows_the_model(actions in prop::collection::vec(action(), 1..60)) {
        let clock = SimClock::at(T0);
        let store = MemStore::new(&clock);
        let g = Guard::new(&store, &clock);
        let o = Options { lease_ms: Some(LEASE), retention_ms: Some(RETENTION), ..Default::default() };
        let mut m = Model::default();
        let token_at = |m: &Model, key: usize, i: usize| {
            m.tokens.get(&key).and_then(|t| t.get(i)).cloned().unwrap_or_else(|| "7.00000000000000aa".into())
        };
        for a in actions {
            let now = (&clock).now_ms();
            match a {
                Action::Advance(ms) => clock.advance(ms),
                Action::Claim { key, payload } => {
                    let got = g.claim(&op(&key.to_string()), &raw(&payload.to_string()), &o).unwrap();
                    match m.live(key, now) {
                        None => {
                            let l = lease_of(got);
                            prop_assert_eq!((l.fencing_token, l.attempt, l.expires_at), (1, 1, now + LEASE));
                            m.tokens.entry(key).or_default().push(l.token.clone());
                            m.records.insert(key, MRecord { payload, fencing: 1, attempts: 1, holder: l.token, state: MState::InProgress { until: now + LEASE }, gone_at: now + LEASE + RETENTION });
                        }
                        Some(r) if r.payload != payload => prop_assert_eq!(got, ClaimDecision::Mismatch),
                        Some(r) => match r.state.clone() {
                            MState::Finished { kind, body, at } => prop_assert_eq!(got, ClaimDecision::Replay(Replay { kind, outcome: out(body), finished_at: at, attempts: r.attempts })),
                            MState::InProgress { until } if now < until => prop_assert_eq!(got, ClaimDecision::InProgress(InProgress { attempt: r.attempts, lease_expires_at: until, retry_after_ms: until - now })),
                            state => {
                                let ClaimDecision::Acquired(acq) = got else { panic!("expected acquired, got {got:?}") };
                                prop_assert_eq!(acq.recovered, matches!(state, MState::InProgress { .. }));
                                prop_assert_eq!((acq.lease.fencing_token, acq.lease.attempt), (r.fencing + 1, r.attempts + 1));
                                r.fencing += 1;
                                r.attempts += 1;
                                r.holder = acq.lease.token.clone();
                                r.state = MState::InProgress { until: now + LEASE };
                                r.gone_at = now + LEASE + RETENTION;
                                m.tokens.entry(key).or_default().push(acq.lease.token);
                            }
                        },
                    }
                }
                Action::Complete { key, token, body } | Action::FailTerminal { key, token, body } => {
                    let kind = if matches!(a, Action::Complete { .. }) { OutcomeKind::Succeeded } else { OutcomeKind::Failed };
                    let t = token_at(&m, key, token);
                    let got = match kind {
                        OutcomeKind::Succeeded => g.complete(&op(&key.to_string()), &t, out(body), &o),
                        OutcomeKind::Failed => g.fail(&op(&key.to_string()), &t, Failure::Terminal(out(body)), &o),
                    };
                    match m.live(key, now) {
                        Some(r) if r.holder == t && matches!(r.state, MState::InProgress { .. }) => {
                            prop_assert_eq!(got, Ok(now));
                            r.state = MState::Finished { kind, body, at: now };
                            r.gone_at = now + RETENTION;
                        }
                        Some(MRecord { holder, state: MState::Finished { kind: k, body: b, at }, .. })
                            if *holder == t && *k == kind && *b == body => prop_assert_eq!(got, Ok(*at)),
                        r => prop_assert_eq!(got, Err(GuardError::LeaseLost { current_fencing_token: r.map(|r| r.fencing) })),
                    }
                }
                Action::FailRetryable { key, token } => {
                    let t = token_at(&m, key, token);
                    let got = g.fail(&op(&key.to_string()), &t, Failure::Retryable, &o);
                    match m.live(key, now) {
                        Some(r) if r.holder == t && matches!(r.state, MState::InProgress { .. }) => {
                            prop_assert_eq!(got, Ok(now));
                            r.state = MState::Released;
                            r.gone_at = now + RETENTION;
                        }
                        r => prop_assert_eq!(got, Err(GuardError::LeaseLost { current_fencing_token: r.map(|r| r.fencing) })),
                    }
                }
                Action::Renew { key, token, by } => {
                    let t = token_at(&m, key, token);
                    let got = g.renew(&op(&key.to_string()), &t, by, &o);
                    match m.live(key, now) {
                        Some(r) if r.holder == t && matches!(r.state, MState::InProgress { .. }) => {
                            prop_assert_eq!(got, Ok(now + by));
                            r.state = MState::InProgress { until: now + by };
                            r.gone_at = now + by + RETENTION;
                        }
                        r => prop_assert_eq!(got, Err(GuardError::LeaseLost { current_fencing_token: r.map(|r| r.fencing) })),
                    }
                }
                Action::Forget { key } => {
                    let existed = m.live(key, now).is_some();
                    prop_assert_eq!(g.forget(&op(&key.to_string())).unwrap(), existed);
                    m.records.remove(&key);
                }
            }
            // Status always agrees with the model.
            let now = (&clock).now_ms();
            for key in 0..2 {
                let s = g.status(&op(&key.to_string())).unwrap();
                match m.live(key, now) {
                    None => prop_assert_eq!(s, None),
                    Some(r) => {
                        let s = s.unwrap();
                        prop_assert_eq!((s.fencing_token, s.attempts), (r.fencing, r.attempts));
                        let state = match r.state { MState::InProgress { .. } => RecordState::InProgress, MState::Released => RecordState::Released, MState::Finished { kind: OutcomeKind::Succeeded, .. } => RecordState::Succeeded, MState::Finished { .. } => RecordState::Failed };
                        prop_assert_eq!(s.state, state);
                    }
                }
            }
        }
    }
}
