//! `Guard`: the typed Rust API over the component, one method per function of `wit/guard.wit`.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Trap;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::WasiCtxBuilder;

use crate::bindings::HostState;
use crate::bindings::exports::idem::guard::guard::Guest;
use crate::clock::{Clock, SystemClock, WasiWallClock};
use crate::error::Error;
use crate::limits::MemoryCap;
use crate::runtime::{EPOCH_TICK, MAX_MEMORY_LIMIT, Runtime};
use crate::store::{MemoryStore, Store};
use crate::{ClaimDecision, Failure, FingerprintInput, Operation, Options, Outcome, StatusReport};

/// Default cap on a guest instance's linear memory: room for a 16 MiB outcome copied in and out.
pub const DEFAULT_MEMORY_LIMIT: usize = 64 << 20;
/// Default bound on one guest call, store round trips included.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// Runs the guard component against one store. Cheap to clone and safe to share between threads: every call
/// instantiates the component afresh from the compiled `Runtime`.
#[derive(Clone)]
pub struct Guard {
    runtime: Runtime,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    memory_limit: usize,
    deadline: Duration,
}

/// Configures a `Guard`. Everything has a default: the embedded component, an in-memory store, the system clock.
pub struct GuardBuilder {
    runtime: Option<Runtime>,
    store: Option<Arc<dyn Store>>,
    clock: Arc<dyn Clock>,
    memory_limit: usize,
    deadline: Duration,
}

impl GuardBuilder {
    /// Share an already compiled component (compiling takes a moment; instantiating does not).
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    pub fn store(self, store: impl Store) -> Self {
        self.shared_store(Arc::new(store))
    }

    pub fn shared_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock the guest reads through `wasi:clocks/wall-clock`. Give a store that expires entries the same one.
    pub fn clock(self, clock: impl Clock) -> Self {
        self.shared_clock(Arc::new(clock))
    }

    pub fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The most linear memory one guest call may use (default 64 MiB, at most `MAX_MEMORY_LIMIT`). A call that
    /// needs more ends in `Error::MemoryLimit`; the store is left as its atomic steps made it.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes.min(MAX_MEMORY_LIMIT);
        self
    }

    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn build(self) -> Result<Guard, Error> {
        let runtime = match self.runtime {
            Some(r) => r,
            None => Runtime::shared()?,
        };
        let clock = self.clock;
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::with_clock(clock.clone())));
        Ok(Guard { runtime, store, clock, memory_limit: self.memory_limit, deadline: self.deadline })
    }
}

impl Guard {
    pub fn builder() -> GuardBuilder {
        GuardBuilder {
            runtime: None,
            store: None,
            clock: Arc::new(SystemClock),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            deadline: DEFAULT_DEADLINE,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Decides whether this attempt runs the operation. See `wit/guard.wit` for every case.
    pub fn claim(
        &self,
        op: &Operation,
        fingerprint: &FingerprintInput,
        opts: &Options,
    ) -> Result<ClaimDecision, Error> {
        self.call(|g, s| g.call_claim(s, op, fingerprint, *opts))
    }

    /// Stores the outcome of the attempt holding `token`; returns when it was stored.
    pub fn complete(&self, op: &Operation, token: &str, outcome: &Outcome, opts: &Options) -> Result<u64, Error> {
        self.call(|g, s| g.call_complete(s, op, token, outcome, *opts))
    }

    /// Ends the attempt holding `token` without success: released for retry, or a terminal failure stored.
    pub fn fail(&self, op: &Operation, token: &str, failure: &Failure, opts: &Options) -> Result<u64, Error> {
        self.call(|g, s| g.call_fail(s, op, token, failure, *opts))
    }

    /// Extends the lease held by `token` to `extend_by` from now; returns the new expiry.
    pub fn renew(&self, op: &Operation, token: &str, extend_by: Duration, opts: &Options) -> Result<u64, Error> {
        let ms = u64::try_from(extend_by.as_millis()).unwrap_or(u64::MAX);
        self.call(|g, s| g.call_renew(s, op, token, ms, *opts))
    }

    /// Where an operation stands, without claiming it.
    pub fn status(&self, op: &Operation) -> Result<Option<StatusReport>, Error> {
        self.call(|g, s| g.call_status(s, op))
    }

    /// Administrative: deletes an operation's record whatever its state.
    pub fn forget(&self, op: &Operation) -> Result<bool, Error> {
        self.call(|g, s| g.call_forget(s, op))
    }

    fn call<R>(
        &self,
        f: impl FnOnce(&Guest, &mut wasmtime::Store<HostState>) -> wasmtime::Result<Result<R, crate::GuardError>>,
    ) -> Result<R, Error> {
        let state = HostState {
            store: self.store.clone(),
            // No preopens, no network, no environment: the guest reads the clock and random bits, nothing else.
            wasi: WasiCtxBuilder::new().wall_clock(WasiWallClock(self.clock.clone())).build(),
            table: ResourceTable::new(),
            limits: MemoryCap::new(self.memory_limit),
        };
        // Declared before the store, so it is dropped after it: the slot is free only once the instance is gone.
        let _slot = self.runtime.slot();
        let mut store = wasmtime::Store::new(self.runtime.engine(), state);
        store.limiter(|s| &mut s.limits);
        let ticks = self.deadline.as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        let result =
            self.runtime.pre().instantiate(&mut store).and_then(|instance| f(instance.idem_guard_guard(), &mut store));
        match result {
            Ok(result) => Ok(result?),
            Err(e) => Err(self.trap(e, &store.data().limits)),
        }
    }

    fn trap(&self, e: wasmtime::Error, limits: &MemoryCap) -> Error {
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Error::Deadline(self.deadline),
            // A guest refused memory aborts; that abort is the cap at work, not a bug in the guard.
            _ if limits.hit() => Error::MemoryLimit(limits.limit()),
            _ => Error::Trap(e),
        }
    }
}
