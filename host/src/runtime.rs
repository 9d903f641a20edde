//! The compiled guard: one `Engine`, one `Component`, one `InstancePre`, shared by every `Guard` built on it.
//! Instantiating from the `InstancePre` is cheap, so each call gets a fresh instance and no state leaks between
//! calls or callers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::bindings::{GuardComponent, GuardComponentPre, HostState};
use crate::error::Error;

/// The guard component embedded in this library at build time.
pub const GUARD_WASM: &[u8] = include_bytes!(env!("IDEM_GUARD_WASM"));

/// How often the deadline clock ticks: the granularity of `GuardBuilder::deadline`.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A loaded, compiled guard component. Cheap to clone; clones share the compiled code.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    pre: GuardComponentPre<HostState>,
    ticker_stop: Arc<AtomicBool>,
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

    /// Compiles a guard component from its bytes (for instance another build of the same WIT world).
    pub fn from_bytes(wasm: &[u8]) -> Result<Self, Error> {
        let mut config = Config::new();
        // Epoch interruption bounds how long one guest call may run, at a far lower cost than fuel.
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(Error::Load)?;
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
        Ok(Self { inner: Arc::new(Inner { engine, pre, ticker_stop }) })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn pre(&self) -> &GuardComponentPre<HostState> {
        &self.inner.pre
    }
}
