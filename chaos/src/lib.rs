//! Chaos for idem: a seeded workload of duplicated, raced, redelivered, paused and abandoned operations run by
//! many workers against a store that fails on purpose, and a checker that counts what must never happen.
//!
//! The side effect of each operation goes to a [`Ledger`] that behaves like a downstream system checking fencing
//! tokens: it refuses a write carrying a lower token than one it has already seen for that operation. A worker
//! whose acquisition is `recovered` first presents its token to the ledger (raising the bar for every older
//! holder) and resumes from an effect that is already there instead of writing another one, as `wit/guard.wit`
//! asks of a recovered attempt. With that protocol every operation's effect must be written exactly once; the
//! checker counts every deviation.
//!
//! What the seed fixes: the workload (which operations are duplicated, how, which deliveries pause past their
//! lease, are killed or fail) and the fault stream of each worker thread. What it cannot fix: the interleaving of
//! threads, so two runs with one seed inject the same kinds and rates of trouble but not at the same instants.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use idem_host::store::{Entry, InsertResult, Store, StoreError, SwapResult};
use idem_host::{
    ClaimDecision, Error, Failure, FingerprintInput, Guard, GuardError, Operation, Options, Outcome, OutcomeKind,
};

// ---------------------------------------------------------------------------------------------------------
// Randomness: SplitMix64, small and good enough to schedule chaos. No dependency, fully determined by the seed.
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// An independent stream for `(seed, stream)`.
    pub fn derive(seed: u64, stream: u64) -> Self {
        let mut r = Self::new(seed.wrapping_mul(0x100_0000_01b3) ^ stream.rotate_left(29));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo { lo } else { lo + self.next_u64() % (hi - lo) }
    }
}

// ---------------------------------------------------------------------------------------------------------
// A store that fails on purpose.
// ---------------------------------------------------------------------------------------------------------

/// How often and how a [`ChaosStore`] fails. Probabilities are per store call.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Fail with `unavailable` before touching the store: nothing was written.
    pub unavailable: f64,
    /// Sleep `timeout` (a server that stopped answering), then fail with `unavailable`: nothing was written.
    pub timeout: f64,
    /// Do the call, then sleep `timeout` and fail with `unavailable`: the write happened but the caller was told
    /// it failed (a reply lost to a timeout). The hardest case for a caller.
    pub ambiguous: f64,
    pub timeout_after: Duration,
}

impl Faults {
    pub const NONE: Faults = Faults { unavailable: 0.0, timeout: 0.0, ambiguous: 0.0, timeout_after: Duration::ZERO };
}

#[derive(Debug, Default)]
pub struct FaultCounts {
    pub calls: AtomicU64,
    pub unavailable: AtomicU64,
    pub timeout: AtomicU64,
    pub ambiguous: AtomicU64,
}

impl FaultCounts {
    pub fn total(&self) -> u64 {
        self.unavailable.load(Ordering::Relaxed)
            + self.timeout.load(Ordering::Relaxed)
            + self.ambiguous.load(Ordering::Relaxed)
    }
}

thread_local! {
    /// Faults injected on this thread so far: a caller compares before and after a guard call (the guest calls
    /// the store on the calling thread) to know whether the store failed under that call.
    static FAULTS_HERE: Cell<u64> = const { Cell::new(0) };
    static FAULT_RNG: RefCell<Option<Rng>> = const { RefCell::new(None) };
}

static THREAD_STREAMS: AtomicU64 = AtomicU64::new(0);

/// Faults injected on the current thread so far.
pub fn faults_on_this_thread() -> u64 {
    FAULTS_HERE.with(Cell::get)
}

/// Wraps a store and injects the [`Faults`] on random calls, from a seeded stream per thread.
pub struct ChaosStore {
    inner: Arc<dyn Store>,
    faults: Faults,
    seed: u64,
    pub enabled: AtomicBool,
    pub counts: FaultCounts,
}

enum Injected {
    None,
    Before(StoreError),
    After,
}

impl ChaosStore {
    pub fn new(inner: Arc<dyn Store>, faults: Faults, seed: u64) -> Self {
        Self { inner, faults, seed, enabled: AtomicBool::new(true), counts: FaultCounts::default() }
    }

    fn draw(&self) -> Injected {
        self.counts.calls.fetch_add(1, Ordering::Relaxed);
        if !self.enabled.load(Ordering::Relaxed) {
            return Injected::None;
        }
        let roll = FAULT_RNG.with(|r| {
            let mut r = r.borrow_mut();
            let rng = r.get_or_insert_with(|| {
                Rng::derive(self.seed, 1_000_000 + THREAD_STREAMS.fetch_add(1, Ordering::Relaxed))
            });
            (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        });
        let f = &self.faults;
        let injected = if roll < f.unavailable {
            self.counts.unavailable.fetch_add(1, Ordering::Relaxed);
            Injected::Before(StoreError::Unavailable("chaos: connection refused".into()))
        } else if roll < f.unavailable + f.timeout {
            self.counts.timeout.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(f.timeout_after);
            Injected::Before(StoreError::Unavailable("chaos: timed out".into()))
        } else if roll < f.unavailable + f.timeout + f.ambiguous {
            self.counts.ambiguous.fetch_add(1, Ordering::Relaxed);
            Injected::After
        } else {
            return Injected::None;
        };
        FAULTS_HERE.with(|c| c.set(c.get() + 1));
        injected
    }

    fn run<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        match self.draw() {
            Injected::None => f(),
            Injected::Before(e) => Err(e),
            Injected::After => {
                let _ = f();
                std::thread::sleep(self.faults.timeout_after);
                Err(StoreError::Unavailable("chaos: timed out waiting for the reply".into()))
            }
        }
    }
}

impl Store for ChaosStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.run(|| self.inner.get(key))
    }
    fn insert_or_get(&self, key: &str, value: &[u8], ttl: u64) -> Result<InsertResult, StoreError> {
        self.run(|| self.inner.insert_or_get(key, value, ttl))
    }
    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8], ttl: u64) -> Result<SwapResult, StoreError> {
        self.run(|| self.inner.compare_and_swap(key, expected, value, ttl))
    }
    fn delete_if_version(&self, key: &str, expected: u64) -> Result<bool, StoreError> {
        self.run(|| self.inner.delete_if_version(key, expected))
    }
}

// ---------------------------------------------------------------------------------------------------------
// The downstream system: effects guarded by fencing tokens.
// ---------------------------------------------------------------------------------------------------------

#[derive(Default)]
struct OpBook {
    /// Highest fencing token presented to the ledger for this operation.
    max_token: u64,
    /// The effect written, and by which token.
    effect: Option<(u64, Vec<u8>)>,
    /// Accepted effect writes: exactly 1 at the end, or the operation ran twice (or never).
    applies: u32,
    /// Highest fencing token the guard issued, as reported by the workers.
    max_acquired: u64,
    /// The completion the guard acknowledged: token and body.
    acked: Option<(u64, Vec<u8>)>,
}

/// What the checker found. Every field after the first block must be 0.
#[derive(Debug, Default, Clone)]
pub struct Violations {
    pub double_executions: u64,
    pub lost_completions: u64,
    pub replay_mismatches: u64,
    pub stale_completions: u64,
    pub fail_closed_breaches: u64,
    pub fencing_regressions: u64,
    pub unexpected_decisions: u64,
    pub unfinished: u64,
    pub notes: Vec<String>,
}

impl Violations {
    pub fn total(&self) -> u64 {
        self.double_executions
            + self.lost_completions
            + self.replay_mismatches
            + self.stale_completions
            + self.fail_closed_breaches
            + self.fencing_regressions
            + self.unexpected_decisions
            + self.unfinished
    }

    fn note(&mut self, s: String) {
        if self.notes.len() < 20 {
            self.notes.push(s);
        }
    }
}

pub struct Ledger {
    books: Vec<Mutex<OpBook>>,
    violations: Mutex<Violations>,
    pub stale_writes_rejected: AtomicU64,
    pub resumed: AtomicU64,
}

enum Begin {
    Fresh,
    Existing(Vec<u8>),
    Stale,
}

impl Ledger {
    fn new(ops: usize) -> Self {
        Self {
            books: (0..ops).map(|_| Mutex::default()).collect(),
            violations: Mutex::default(),
            stale_writes_rejected: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
        }
    }

    fn book(&self, i: usize) -> std::sync::MutexGuard<'_, OpBook> {
        self.books[i].lock().unwrap()
    }

    fn violation(&self, f: impl FnOnce(&mut Violations)) {
        f(&mut self.violations.lock().unwrap())
    }

    /// A recovered attempt presents its token before looking for an earlier attempt's effect.
    fn begin(&self, i: usize, token: u64) -> Begin {
        let mut b = self.book(i);
        if token < b.max_token {
            self.stale_writes_rejected.fetch_add(1, Ordering::Relaxed);
            return Begin::Stale;
        }
        b.max_token = token;
        match &b.effect {
            Some((_, effect)) => Begin::Existing(effect.clone()),
            None => Begin::Fresh,
        }
    }

    /// Writes the effect unless a higher token was seen. Returns whether it was accepted.
    fn apply(&self, i: usize, token: u64, effect: &[u8]) -> bool {
        let mut b = self.book(i);
        if token < b.max_token {
            self.stale_writes_rejected.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        b.max_token = token;
        b.applies += 1;
        if b.applies > 1 {
            let by = b.effect.as_ref().map(|e| e.0);
            self.violation(|v| {
                v.double_executions += 1;
                v.note(format!("op {i}: effect written again by token {token} (first by {by:?})"));
            });
        }
        b.effect = Some((token, effect.to_vec()));
        true
    }

    fn acquired(&self, i: usize, token: u64) {
        let mut b = self.book(i);
        if token <= b.max_acquired {
            let prev = b.max_acquired;
            self.violation(|v| {
                v.fencing_regressions += 1;
                v.note(format!("op {i}: acquired with token {token} after token {prev}"));
            });
        }
        if let Some((t, _)) = &b.acked {
            let t = *t;
            self.violation(|v| {
                v.lost_completions += 1;
                v.note(format!("op {i}: acquired again (token {token}) after completion by {t}"));
            });
        }
        b.max_acquired = b.max_acquired.max(token);
    }

    fn completed(&self, i: usize, token: u64, body: &[u8]) {
        let mut b = self.book(i);
        if token < b.max_acquired {
            let max = b.max_acquired;
            self.violation(|v| {
                v.stale_completions += 1;
                v.note(format!("op {i}: token {token} completed although {max} was issued"));
            });
        }
        match &b.acked {
            Some((t, first)) if *t != token || first != body => {
                let t = *t;
                self.violation(|v| {
                    v.stale_completions += 1;
                    v.note(format!("op {i}: completed by {token} and by {t}"));
                });
            }
            Some(_) => {}
            None => b.acked = Some((token, body.to_vec())),
        }
        if b.effect.as_ref().map(|e| e.1.as_slice()) != Some(body) {
            self.violation(|v| {
                v.replay_mismatches += 1;
                v.note(format!("op {i}: completed with a body that is not the ledger's effect"));
            });
        }
    }

    fn replayed(&self, i: usize, body: &[u8]) {
        let b = self.book(i);
        let expected = b.acked.as_ref().map(|a| &a.1).or(b.effect.as_ref().map(|e| &e.1));
        if expected.map(Vec::as_slice) != Some(body) {
            self.violation(|v| {
                v.replay_mismatches += 1;
                v.note(format!("op {i}: replay of {} bytes differs from the first outcome", body.len()));
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The chaos run.
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub ops: usize,
    pub workers: usize,
    pub lease_ms: u64,
    /// Share of operations that get one or more duplicate deliveries.
    pub duplicate_rate: f64,
    /// Per first processing of a delivery.
    pub pause_rate: f64,
    pub kill_rate: f64,
    pub retryable_fail_rate: f64,
    pub faults: Faults,
    pub time_limit: Duration,
}

impl Config {
    /// The CI mode: small, under half a minute per backend on two cores.
    pub fn ci(seed: u64) -> Self {
        Self {
            seed,
            ops: 2_000,
            workers: 16,
            lease_ms: 300,
            duplicate_rate: 0.30,
            pause_rate: 0.01,
            kill_rate: 0.02,
            retryable_fail_rate: 0.01,
            faults: Faults {
                unavailable: 0.01,
                timeout: 0.004,
                ambiguous: 0.01,
                timeout_after: Duration::from_millis(50),
            },
            time_limit: Duration::from_secs(120),
        }
    }

    pub fn long(seed: u64) -> Self {
        Self { ops: 100_000, time_limit: Duration::from_secs(3600), ..Self::ci(seed) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behavior {
    Normal,
    /// Sleep past the lease between claim and effect: a stalled worker (GC pause, swapped out, network blip).
    Pause,
    /// Abandon right after the claim: the process died before doing anything.
    KillBefore,
    /// Abandon after writing the effect, before `complete`: the process died mid-operation.
    KillAfter,
    /// Release with a retryable failure before writing anything.
    RetryableFail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Original,
    ConcurrentDuplicate,
    DelayedDuplicate,
}

#[derive(Debug, Clone)]
struct Delivery {
    op: usize,
    kind: Kind,
    behavior: Behavior,
    /// Delayed duplicates of this op to schedule once this (original) delivery is first taken.
    delayed: Vec<u64>,
    attempt: u32,
}

struct Queue {
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    slots: Vec<Option<Delivery>>,
    seq: u64,
    outstanding: usize,
}

struct Scheduler {
    q: Mutex<Queue>,
    cv: Condvar,
    deadline: Instant,
}

impl Scheduler {
    fn push(&self, d: Delivery, at: Instant) {
        self.enqueue(d, at, 1);
    }

    /// Puts back a delivery that is still outstanding (counted once).
    fn requeue(&self, d: Delivery, at: Instant) {
        self.enqueue(d, at, 0);
    }

    fn enqueue(&self, d: Delivery, at: Instant, new_outstanding: usize) {
        let mut q = self.q.lock().unwrap();
        let slot = q.slots.len();
        q.slots.push(Some(d));
        let seq = q.seq;
        q.seq += 1;
        q.heap.push(Reverse((at, seq, slot)));
        q.outstanding += new_outstanding;
        drop(q);
        self.cv.notify_one();
    }

    fn done(&self) {
        let mut q = self.q.lock().unwrap();
        q.outstanding -= 1;
        if q.outstanding == 0 {
            self.cv.notify_all();
        }
    }

    fn next(&self) -> Option<Delivery> {
        let mut q = self.q.lock().unwrap();
        loop {
            if q.outstanding == 0 || Instant::now() > self.deadline {
                self.cv.notify_all();
                return None;
            }
            let now = Instant::now();
            match q.heap.peek().copied() {
                Some(Reverse((at, _, slot))) if at <= now => {
                    q.heap.pop();
                    return q.slots[slot].take();
                }
                Some(Reverse((at, _, _))) => {
                    let wait = (at - now).min(Duration::from_millis(50));
                    q = self.cv.wait_timeout(q, wait).unwrap().0;
                }
                None => q = self.cv.wait_timeout(q, Duration::from_millis(50)).unwrap().0,
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Counters {
    pub deliveries: AtomicU64,
    pub duplicates: AtomicU64,
    pub concurrent_duplicates: AtomicU64,
    pub delayed_duplicates: AtomicU64,
    pub redeliveries: AtomicU64,
    pub claims: AtomicU64,
    pub acquired: AtomicU64,
    pub recovered: AtomicU64,
    pub replays: AtomicU64,
    pub in_progress: AtomicU64,
    pub claim_store_errors: AtomicU64,
    pub claim_other_errors: AtomicU64,
    pub pauses: AtomicU64,
    pub kills_before: AtomicU64,
    pub kills_after: AtomicU64,
    pub retryable_fails: AtomicU64,
    pub completions: AtomicU64,
    pub complete_retries: AtomicU64,
    pub completes_refused_lease_lost: AtomicU64,
    pub gave_up: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

pub struct Report {
    pub backend: String,
    pub config: Config,
    pub counters: Counters,
    pub faults: FaultCounts,
    pub stale_writes_rejected: u64,
    pub resumed: u64,
    pub violations: Violations,
    pub elapsed: Duration,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.total() == 0
    }

    pub fn render(&self) -> String {
        let c = &self.counters;
        let v = &self.violations;
        let ops = self.config.ops as u64;
        let dups = get(&c.duplicates);
        let mut s = String::new();
        use std::fmt::Write;
        let _ = writeln!(
            s,
            "idem chaos run: backend={} seed={} workers={} lease={}ms",
            self.backend, self.config.seed, self.config.workers, self.config.lease_ms
        );
        let _ = writeln!(s, "  operations                      {ops}");
        let _ = writeln!(
            s,
            "  duplicates injected             {dups} ({:.1}% of operations; {} concurrent, {} delayed)",
            dups as f64 * 100.0 / ops.max(1) as f64,
            get(&c.concurrent_duplicates),
            get(&c.delayed_duplicates)
        );
        let _ = writeln!(
            s,
            "  deliveries processed            {} (+{} redeliveries)",
            get(&c.deliveries),
            get(&c.redeliveries)
        );
        let _ = writeln!(
            s,
            "  claims                          {} (acquired {}, recovered {}, replayed {}, in progress {})",
            get(&c.claims),
            get(&c.acquired),
            get(&c.recovered),
            get(&c.replays),
            get(&c.in_progress)
        );
        let _ = writeln!(
            s,
            "  faults injected                 {} of {} store calls ({} unavailable, {} timeouts, {} ambiguous writes)",
            self.faults.total(),
            get(&self.faults.calls),
            get(&self.faults.unavailable),
            get(&self.faults.timeout),
            get(&self.faults.ambiguous)
        );
        let _ =
            writeln!(s, "  claims refused on store error   {} (fail-closed; nothing ran)", get(&c.claim_store_errors));
        let _ = writeln!(s, "  pauses past the lease           {}", get(&c.pauses));
        let _ = writeln!(
            s,
            "  worker kills                    {} before the effect, {} after it",
            get(&c.kills_before),
            get(&c.kills_after)
        );
        let _ = writeln!(s, "  retryable failures              {}", get(&c.retryable_fails));
        let _ = writeln!(s, "  stale writes fenced off         {}", self.stale_writes_rejected);
        let _ = writeln!(s, "  recovered attempts resumed      {}", self.resumed);
        let _ = writeln!(s, "  completes refused (lease lost)  {}", get(&c.completes_refused_lease_lost));
        let _ = writeln!(s, "  completes retried after errors  {}", get(&c.complete_retries));
        let _ = writeln!(s, "  double executions found         {}", v.double_executions);
        let _ = writeln!(s, "  lost completions                {}", v.lost_completions);
        let _ = writeln!(s, "  replays differing from first    {}", v.replay_mismatches);
        let _ = writeln!(s, "  stale workers completed         {}", v.stale_completions);
        let _ = writeln!(s, "  fail-closed breaches            {}", v.fail_closed_breaches);
        let _ = writeln!(s, "  fencing regressions             {}", v.fencing_regressions);
        let _ = writeln!(s, "  unexpected decisions            {}", v.unexpected_decisions);
        let _ = writeln!(s, "  unfinished operations           {}", v.unfinished);
        let _ = writeln!(s, "  elapsed                         {:.1} s", self.elapsed.as_secs_f64());
        for n in &v.notes {
            let _ = writeln!(s, "  ! {n}");
        }
        let _ = writeln!(s, "RESULT: {}", if self.passed() { "PASS" } else { "FAIL" });
        s
    }
}

pub fn operation(i: usize) -> Operation {
    Operation { scope: "chaos".into(), key: format!("order-{i}/charge") }
}

fn payload(i: usize) -> FingerprintInput {
    FingerprintInput::Raw(format!("amount={}&order={i}", 100 + i % 997).into_bytes())
}

fn outcome(body: &[u8]) -> Outcome {
    Outcome {
        body: body.to_vec(),
        status: Some(201),
        content_type: Some("application/octet-stream".into()),
        metadata: vec![("x-chaos".into(), "1".into())],
    }
}

/// Runs the workload against `store` (wrapped in a [`ChaosStore`]) and checks it.
pub fn run(backend: &str, store: Arc<dyn Store>, config: Config) -> Report {
    let started = Instant::now();
    let chaos = Arc::new(ChaosStore::new(store, config.faults, config.seed));
    let guard = Guard::builder().shared_store(chaos.clone()).deadline(Duration::from_secs(5)).build().expect("guard");
    let ledger = Ledger::new(config.ops);
    let counters = Counters::default();
    let sched = Scheduler {
        q: Mutex::new(Queue { heap: BinaryHeap::new(), slots: Vec::new(), seq: 0, outstanding: 0 }),
        cv: Condvar::new(),
        deadline: started + config.time_limit,
    };

    // The workload, fully determined by the seed.
    let mut plan = Rng::derive(config.seed, 0);
    let behavior = |r: &mut Rng| {
        let x = (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let c = &config;
        if x < c.pause_rate {
            Behavior::Pause
        } else if x < c.pause_rate + c.kill_rate / 2.0 {
            Behavior::KillBefore
        } else if x < c.pause_rate + c.kill_rate {
            Behavior::KillAfter
        } else if x < c.pause_rate + c.kill_rate + c.retryable_fail_rate {
            Behavior::RetryableFail
        } else {
            Behavior::Normal
        }
    };
    let t0 = Instant::now();
    for i in 0..config.ops {
        let mut delayed = Vec::new();
        let mut concurrent = 0;
        if plan.chance(config.duplicate_rate) {
            let extra = 1 + (plan.chance(0.3) as u64) + (plan.chance(0.1) as u64);
            for _ in 0..extra {
                if plan.chance(0.5) {
                    concurrent += 1;
                } else {
                    delayed.push(plan.range(10, 4 * config.lease_ms));
                }
            }
        }
        counters.duplicates.fetch_add(concurrent + delayed.len() as u64, Ordering::Relaxed);
        counters.concurrent_duplicates.fetch_add(concurrent, Ordering::Relaxed);
        counters.delayed_duplicates.fetch_add(delayed.len() as u64, Ordering::Relaxed);
        let b = behavior(&mut plan);
        sched.push(Delivery { op: i, kind: Kind::Original, behavior: b, delayed, attempt: 0 }, t0);
        for _ in 0..concurrent {
            let b = behavior(&mut plan);
            sched.push(
                Delivery { op: i, kind: Kind::ConcurrentDuplicate, behavior: b, delayed: vec![], attempt: 0 },
                t0,
            );
        }
    }
    let behavior_seed = plan.next_u64();

    let opts = Options {
        lease_ms: Some(config.lease_ms),
        retention_ms: Some(3_600_000),
        max_outcome_bytes: None,
        on_store_failure: None,
    };
    let worker_ids = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..config.workers {
            s.spawn(|| {
                let w = worker_ids.fetch_add(1, Ordering::Relaxed);
                let mut rng = Rng::derive(config.seed, 10 + w as u64);
                while let Some(mut d) = sched.next() {
                    let first = d.attempt == 0;
                    if first {
                        bump(&counters.deliveries);
                        if !d.delayed.is_empty() {
                            let now = Instant::now();
                            for delay in std::mem::take(&mut d.delayed) {
                                let b = behavior(&mut Rng::derive(behavior_seed, (d.op as u64) << 8 | delay));
                                sched.push(
                                    Delivery {
                                        op: d.op,
                                        kind: Kind::DelayedDuplicate,
                                        behavior: b,
                                        delayed: vec![],
                                        attempt: 0,
                                    },
                                    now + Duration::from_millis(delay),
                                );
                            }
                        }
                    } else {
                        bump(&counters.redeliveries);
                    }
                    let behavior = if first { d.behavior } else { Behavior::Normal };
                    match process(&guard, &opts, &ledger, &counters, &mut rng, w, d.op, behavior, config.lease_ms) {
                        None => sched.done(),
                        Some(_) if d.attempt >= 200 => {
                            bump(&counters.gave_up);
                            sched.done();
                        }
                        Some(after) => {
                            d.attempt += 1;
                            let _ = d.kind;
                            sched.requeue(d, Instant::now() + after);
                        }
                    }
                }
            });
        }
    });

    // The checker: faults off, every operation must replay exactly the completion that was acknowledged.
    chaos.enabled.store(false, Ordering::SeqCst);
    let mut violations = ledger.violations.lock().unwrap().clone();
    for i in 0..config.ops {
        let b = ledger.book(i);
        match guard.claim(&operation(i), &payload(i), &opts) {
            Ok(ClaimDecision::Replay(r)) if r.kind == OutcomeKind::Succeeded => {
                let acked = b.acked.as_ref().map(|a| a.1.as_slice());
                if acked.is_some_and(|a| a != r.outcome.body.as_slice()) || r.outcome != outcome(&r.outcome.body) {
                    violations.replay_mismatches += 1;
                    violations.note(format!("op {i}: final replay differs from the acknowledged completion"));
                }
                if b.applies != 1 {
                    violations.note(format!("op {i}: effect written {} times", b.applies));
                    if b.applies == 0 {
                        violations.unfinished += 1;
                    }
                }
            }
            other => {
                if b.acked.is_some() {
                    violations.lost_completions += 1;
                    violations.note(format!("op {i}: acknowledged completion missing, claim gave {other:?}"));
                } else {
                    violations.unfinished += 1;
                    violations.note(format!("op {i}: never completed, claim gives {other:?}"));
                }
            }
        }
    }
    let gave_up = get(&counters.gave_up);
    if gave_up > 0 {
        violations.note(format!("{gave_up} deliveries gave up after 200 attempts"));
    }
    if Instant::now() > sched.deadline {
        violations.note(format!("time limit of {:?} reached", config.time_limit));
    }
    let faults = FaultCounts {
        calls: AtomicU64::new(get(&chaos.counts.calls)),
        unavailable: AtomicU64::new(get(&chaos.counts.unavailable)),
        timeout: AtomicU64::new(get(&chaos.counts.timeout)),
        ambiguous: AtomicU64::new(get(&chaos.counts.ambiguous)),
    };
    Report {
        backend: backend.into(),
        config: config.clone(),
        stale_writes_rejected: get(&ledger.stale_writes_rejected),
        resumed: get(&ledger.resumed),
        counters,
        faults,
        violations,
        elapsed: started.elapsed(),
    }
}

/// One delivery. `None`: acknowledged (done). `Some(delay)`: redeliver after `delay`.
#[allow(clippy::too_many_arguments)]
fn process(
    guard: &Guard,
    opts: &Options,
    ledger: &Ledger,
    c: &Counters,
    rng: &mut Rng,
    worker: usize,
    i: usize,
    behavior: Behavior,
    lease_ms: u64,
) -> Option<Duration> {
    let op = operation(i);
    let redeliver = |ms: u64| Some(Duration::from_millis(ms));
    let faults_before = faults_on_this_thread();
    bump(&c.claims);
    let decision = guard.claim(&op, &payload(i), opts);
    let faulted = faults_on_this_thread() != faults_before;
    let decision = match decision {
        Ok(d) => d,
        Err(Error::Guard(GuardError::Store(_))) => {
            if !faulted {
                ledger.violation(|v| v.note(format!("op {i}: store error without an injected fault")));
            }
            bump(&c.claim_store_errors);
            return redeliver(rng.range(5, 50));
        }
        Err(e) => {
            // Contended, or a deadline: not a decision, nothing ran. Retry, but make it visible.
            bump(&c.claim_other_errors);
            if !matches!(e, Error::Guard(GuardError::Contended)) {
                ledger.violation(|v| {
                    v.unexpected_decisions += 1;
                    v.note(format!("op {i}: claim failed with {e}"));
                });
            }
            return redeliver(rng.range(5, 50));
        }
    };
    if faulted {
        // A store error under the claim must surface as an error: anything else ran on a store that failed.
        ledger.violation(|v| {
            v.fail_closed_breaches += 1;
            v.note(format!("op {i}: claim answered {decision:?} although the store failed under it"));
        });
    }
    let acquired = match decision {
        ClaimDecision::Acquired(a) => a,
        ClaimDecision::Replay(r) => {
            bump(&c.replays);
            if r.kind != OutcomeKind::Succeeded {
                ledger.violation(|v| {
                    v.unexpected_decisions += 1;
                    v.note(format!("op {i}: replayed a failure"));
                });
            }
            ledger.replayed(i, &r.outcome.body);
            return None;
        }
        ClaimDecision::InProgress(p) => {
            bump(&c.in_progress);
            return redeliver(p.retry_after_ms.clamp(5, 100) + rng.range(0, 20));
        }
        other => {
            ledger.violation(|v| {
                v.unexpected_decisions += 1;
                v.note(format!("op {i}: unexpected decision {other:?}"));
            });
            return None;
        }
    };
    bump(&c.acquired);
    let token = acquired.lease.fencing_token;
    let lease = acquired.lease.token.clone();
    ledger.acquired(i, token);
    match behavior {
        Behavior::KillBefore => {
            bump(&c.kills_before);
            return redeliver(lease_ms + 20);
        }
        Behavior::RetryableFail => {
            bump(&c.retryable_fails);
            let _ = guard.fail(&op, &lease, &Failure::Retryable, opts);
            return redeliver(5);
        }
        Behavior::Pause => {
            bump(&c.pauses);
            std::thread::sleep(Duration::from_millis(lease_ms + lease_ms / 2 + rng.range(0, lease_ms)));
        }
        Behavior::Normal | Behavior::KillAfter => {}
    }
    let body = if acquired.recovered {
        bump(&c.recovered);
        match ledger.begin(i, token) {
            Begin::Existing(effect) => {
                ledger.resumed.fetch_add(1, Ordering::Relaxed);
                Some(effect)
            }
            Begin::Fresh => None,
            Begin::Stale => return redeliver(10),
        }
    } else {
        None
    };
    let body = match body {
        Some(b) => b,
        None => {
            let effect =
                format!("charged order {i}: worker {worker}, fencing token {token}, receipt {:016x}", rng.next_u64())
                    .into_bytes();
            if !ledger.apply(i, token, &effect) {
                // Fenced off downstream; the guard must refuse this stale holder too.
                match guard.complete(&op, &lease, &outcome(&effect), opts) {
                    Ok(_) => ledger.violation(|v| {
                        v.stale_completions += 1;
                        v.note(format!("op {i}: a fenced-off worker (token {token}) completed"));
                    }),
                    Err(_) => bump(&c.completes_refused_lease_lost),
                }
                return redeliver(10);
            }
            effect
        }
    };
    if behavior == Behavior::KillAfter {
        bump(&c.kills_after);
        return redeliver(lease_ms + 20);
    }
    for attempt in 0..6 {
        match guard.complete(&op, &lease, &outcome(&body), opts) {
            Ok(_) => {
                bump(&c.completions);
                ledger.completed(i, token, &body);
                return None;
            }
            Err(Error::Guard(GuardError::LeaseLost(_))) => {
                bump(&c.completes_refused_lease_lost);
                return redeliver(10);
            }
            Err(Error::Guard(GuardError::Store(_))) if attempt < 5 => {
                bump(&c.complete_retries);
                std::thread::sleep(Duration::from_millis(rng.range(1, 20)));
            }
            Err(_) => break,
        }
    }
    // Could not record the outcome: like a crash after the effect. A later attempt recovers and resumes.
    redeliver(lease_ms + 20)
}

// ---------------------------------------------------------------------------------------------------------
// A redis-server the caller controls: kill, freeze, thaw and restart it on the same port and directory.
// ---------------------------------------------------------------------------------------------------------

pub struct RedisProc {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    extra: Vec<String>,
}

impl RedisProc {
    /// Starts `redis-server` on `port` keeping its files in `dir`. Panics when it is missing or does not answer.
    pub fn start(port: u16, dir: &Path, extra: &[&str]) -> Self {
        let mut r =
            Self { child: None, port, dir: dir.to_path_buf(), extra: extra.iter().map(|s| s.to_string()).collect() };
        r.restart();
        r
    }

    /// Persistent: every write is fsynced to the append-only file before Redis acknowledges it.
    pub fn start_durable(port: u16, dir: &Path) -> Self {
        Self::start(port, dir, &["--appendonly", "yes", "--appendfsync", "always"])
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server running").id()
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server still running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.extra)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it (Debian: apt-get install redis-server)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if redis_command(self.port, &[b"PING"]).is_ok_and(|r| r == b"+PONG\r\n") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer PING within 15 s", self.port);
    }

    /// SIGKILL: no shutdown save, no flush beyond what `appendfsync` already did.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the server keeps its socket open but answers nothing, like a hung or partitioned server.
    pub fn freeze(&self) {
        signal(self.pid(), "STOP");
    }

    pub fn thaw(&self) {
        signal(self.pid(), "CONT");
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            signal(c.id(), "CONT");
        }
        self.kill();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().expect("kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Sends one command in RESP and returns the raw reply (read until the server has sent something and paused).
pub fn redis_command(port: u16, args: &[&[u8]]) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a);
        req.extend_from_slice(b"\r\n");
    }
    s.write_all(&req)?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------------------
// Worker mode for the crash tests: a process that completes operations and says so on stdout.
// ---------------------------------------------------------------------------------------------------------

/// Processes operations `0..ops` with `threads` threads (thread `t` takes `i % threads == t`), each: claim until
/// acquired or replayed, work a little, complete. Prints, flushing each line:
/// `CLAIMED i fencing recovered`, `ACK i fencing recovered body`, `REPLAY i body`. Store errors are retried for
/// up to `patience`, so a worker outlives a store restart.
pub fn worker(
    guard: &Guard,
    ops: usize,
    threads: usize,
    lease_ms: u64,
    seed: u64,
    patience: Duration,
) -> Result<(), String> {
    use std::io::Write;
    let opts = Options {
        lease_ms: Some(lease_ms),
        retention_ms: Some(3_600_000),
        max_outcome_bytes: None,
        on_store_failure: None,
    };
    let out = Mutex::new(std::io::stdout());
    let say = |line: String| {
        let out = out.lock().unwrap();
        let mut out = out.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let pid = std::process::id();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (say, opts) = (&say, &opts);
                s.spawn(move || -> Result<(), String> {
                    let mut rng = Rng::derive(seed, t as u64);
                    for i in (t..ops).step_by(threads) {
                        let op = operation(i);
                        let started = Instant::now();
                        loop {
                            if started.elapsed() > patience {
                                return Err(format!("op {i}: no decision within {patience:?}"));
                            }
                            let a = match guard.claim(&op, &payload(i), opts) {
                                Ok(ClaimDecision::Acquired(a)) => a,
                                Ok(ClaimDecision::Replay(r)) => {
                                    say(format!("REPLAY {i} {}", hex(&r.outcome.body)));
                                    break;
                                }
                                Ok(ClaimDecision::InProgress(p)) => {
                                    std::thread::sleep(Duration::from_millis(p.retry_after_ms.clamp(5, 100)));
                                    continue;
                                }
                                Ok(other) => return Err(format!("op {i}: unexpected {other:?}")),
                                Err(Error::Guard(GuardError::Store(_) | GuardError::Contended))
                                | Err(Error::Deadline(_)) => {
                                    std::thread::sleep(Duration::from_millis(50));
                                    continue;
                                }
                                Err(e) => return Err(format!("op {i}: claim: {e}")),
                            };
                            let (token, recovered) = (a.lease.fencing_token, a.recovered as u8);
                            say(format!("CLAIMED {i} {token} {recovered}"));
                            std::thread::sleep(Duration::from_millis(rng.range(1, 15)));
                            let body = format!("op {i} done by pid {pid} with token {token}");
                            loop {
                                if started.elapsed() > patience {
                                    return Err(format!("op {i}: could not complete within {patience:?}"));
                                }
                                match guard.complete(&op, &a.lease.token, &outcome(body.as_bytes()), opts) {
                                    Ok(_) => {
                                        say(format!("ACK {i} {token} {recovered} {}", hex(body.as_bytes())));
                                        break;
                                    }
                                    Err(Error::Guard(GuardError::Store(_))) | Err(Error::Deadline(_)) => {
                                        std::thread::sleep(Duration::from_millis(50))
                                    }
                                    Err(e) => return Err(format!("op {i}: complete: {e}")),
                                }
                            }
                            break;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Result<Vec<_>, _>>()
    })?;
    say("DONE".into());
    Ok(())
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The idem `Outcome` the worker and the chaos run store for `body`.
pub fn stored_outcome(body: &[u8]) -> Outcome {
    outcome(body)
}

/// The fingerprint input of operation `i`.
pub fn operation_payload(i: usize) -> FingerprintInput {
    payload(i)
}

/// Guards a mutable map shared across threads; re-exported for tests that keep their own books.
pub type Shared<T> = Arc<Mutex<HashMap<usize, T>>>;
