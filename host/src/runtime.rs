//! The compiled guard: one `Engine`, one `Component`, one `InstancePre`, shared by every `Guard` built on it.
//! Instantiating from the `InstancePre` is cheap, so each call gets a fresh instance and no state leaks between
//! calls or callers.
//!
//! Instances come from wasmtime's pooling allocator: their memory and tables live in slots reserved once, so a
//! call does not pay for `mmap`/`munmap` of a fresh linear memory (that was most of an instantiation's cost).
//! The pool has `MAX_CONCURRENT_CALLS` slots; callers beyond that wait for a slot instead of failing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{GuardComponent, GuardComponentPre, HostState};
use crate::error::Error;

/// The guard component embedded in this library at build time.
pub const GUARD_WASM: &[u8] = include_bytes!(env!("IDEM_GUARD_WASM"));

/// How many guard calls run at once on one `Runtime`: the pooling allocator's instance slots.
pub const MAX_CONCURRENT_CALLS: u32 = 128;

/// The largest linear memory a guest may have, the ceiling for `GuardBuilder::memory_limit`.
pub const MAX_MEMORY_LIMIT: usize = 1 << 30;

/// How often the deadline clock ticks: the granularity of `GuardBuilder::deadline`.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine configuration every `Runtime` compiles with: epoch interruption for the deadline, and the pooling
/// allocator of `pooling_config`. Public so that benchmarks and embedders that link the component themselves
/// measure and run exactly what the host runs.
pub fn engine_config() -> Config {
    let mut config = Config::new();
    // Epoch interruption bounds how long one guest call may run, at a far lower cost than fuel.
    config.epoch_interruption(true);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config()));
    config
}

/// The pool behind `engine_config`: `MAX_CONCURRENT_CALLS` guard instances of at most `MAX_MEMORY_LIMIT` each.
pub fn pooling_config() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    // Per guard instance: one component instance of a few core instances, one memory, a few tables. Each memory
    // slot reserves 4 GiB of address space (so bounds checks stay free), never backed until used.
    pool.total_component_instances(MAX_CONCURRENT_CALLS)
        .total_core_instances(MAX_CONCURRENT_CALLS * 8)
        .total_memories(MAX_CONCURRENT_CALLS)
        .total_tables(MAX_CONCURRENT_CALLS * 8)
        .max_memory_size(MAX_MEMORY_LIMIT);
    pool
}

/// A loaded, compiled guard component. Cheap to clone; clones share the compiled code.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    pre: GuardComponentPre<HostState>,
    ticker_stop: Arc<AtomicBool>,
    free_slots: Mutex<u32>,
    slot_freed: Condvar,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Compiles the embedded guard component.
    pub fn new() -> Result<Self, Error> {
        Self::from_bytes(GUARD_WASM)
    }

    /// The embedded guard component, compiled once per process: what a `Guard` uses unless given a runtime.
    pub fn shared() -> Result<Self, Error> {
        static SHARED: Mutex<Option<Runtime>> = Mutex::new(None);
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(runtime) = &*shared {
            return Ok(runtime.clone());
        }
        let runtime = Self::new()?;
        *shared = Some(runtime.clone());
        Ok(runtime)
    }

    /// Compiles a guard component from its bytes (for instance another build of the same WIT world).
    pub fn from_bytes(wasm: &[u8]) -> Result<Self, Error> {
        let engine = Engine::new(&engine_config()).map_err(Error::Load)?;
        let component = Component::new(&engine, wasm).map_err(Error::Load)?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(Error::Load)?;
        GuardComponent::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(Error::Load)?;
        let pre =
            GuardComponentPre::new(linker.instantiate_pre(&component).map_err(Error::Load)?).map_err(Error::Load)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (ticking, stop) = (engine.clone(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("idem-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| Error::Load(e.into()))?;
        let free_slots = Mutex::new(MAX_CONCURRENT_CALLS);
        Ok(Self { inner: Arc::new(Inner { engine, pre, ticker_stop, free_slots, slot_freed: Condvar::new() }) })
    }

    /// Waits for one of the pool's instance slots; the slot is free again when the returned guard drops, which
    /// must be after the `wasmtime::Store` holding the instance.
    pub(crate) fn slot(&self) -> Slot<'_> {
        let mut free = self.inner.free_slots.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.inner.slot_freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(&self.inner)
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn pre(&self) -> &GuardComponentPre<HostState> {
        &self.inner.pre
    }
}

/// One instance slot of the pool, held for the length of one guard call.
pub(crate) struct Slot<'a>(&'a Inner);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free_slots.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.slot_freed.notify_one();
    }
}
