//! Runs the idem guard component under wasmtime.
//!
//! ```no_run
//! use idem_host::{ClaimDecision, FingerprintInput, Guard, Operation, Options};
//!
//! let guard = Guard::builder().build()?; // in-memory store, system clock
//! let op = Operation { scope: "payments".into(), key: "order-42/charge".into() };
//! match guard.claim(&op, &FingerprintInput::Raw(b"amount=100".to_vec()), &Options::default())? {
//!     ClaimDecision::Acquired(a) => { /* run it, then guard.complete(&op, &a.lease.token, ...) */ }
//!     ClaimDecision::Replay(r) => { /* return r.outcome */ }
//!     ClaimDecision::InProgress(_) | ClaimDecision::Mismatch | ClaimDecision::Unguarded(_) => {}
//! }
//! # Ok::<(), idem_host::Error>(())
//! ```

mod bindings;
pub mod clock;
mod error;
mod guard;
mod limits;
mod once;
mod runtime;
pub mod store;

pub use bindings::exports::idem::guard::guard::{
    Acquired, CanonicalJson, ClaimDecision, Failure, FingerprintInput, GuardError, InProgress, Lease, LeaseLost,
    Operation, Options, Outcome, OutcomeKind, RecordState, Replay, SizeLimit, StatusReport, StoreFailurePolicy,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use guard::{DEFAULT_DEADLINE, DEFAULT_MEMORY_LIMIT, Guard, GuardBuilder};
pub use once::{Attempt, Ran, RunError};
pub use runtime::{GUARD_WASM, MAX_CONCURRENT_CALLS, MAX_MEMORY_LIMIT, Runtime, engine_config, pooling_config};
