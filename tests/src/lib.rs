//! Helpers shared by the contract suite: operations, payloads and a store wrapper that injects faults.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use idem_host::store::{Entry, InsertResult, Store, StoreError, SwapResult};
use idem_host::{ClaimDecision, FingerprintInput, Lease, Operation, Outcome};

pub fn op(scope: &str, key: &str) -> Operation {
    Operation {
        scope: scope.into(),
        key: key.into(),
    }
}

pub fn raw(payload: &[u8]) -> FingerprintInput {
    FingerprintInput::Raw(payload.to_vec())
}

pub fn outcome(body: &[u8]) -> Outcome {
    Outcome {
        body: body.to_vec(),
        status: Some(200),
        content_type: Some("application/json".into()),
        metadata: vec![],
    }
}

/// The lease of an `acquired` decision; anything else fails the test with the decision it got.
pub fn expect_acquired(d: ClaimDecision) -> Lease {
    match d {
        ClaimDecision::Acquired(a) => a.lease,
        other => panic!("expected acquired, got {other:?}"),
    }
}

/// Wraps a store; while `down` is set every call fails with `unavailable`, as a dead server would.
pub struct FaultyStore<S> {
    inner: S,
    down: Arc<AtomicBool>,
}

impl<S: Store> FaultyStore<S> {
    pub fn new(inner: S) -> (Self, Arc<AtomicBool>) {
        let down = Arc::new(AtomicBool::new(false));
        (
            Self {
                inner,
                down: down.clone(),
            },
            down,
        )
    }

    fn check(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StoreError::Unavailable("injected: store is down".into())),
            false => Ok(()),
        }
    }
}

impl<S: Store> Store for FaultyStore<S> {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.check()?;
        self.inner.get(key)
    }
    fn insert_or_get(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: u64,
    ) -> Result<InsertResult, StoreError> {
        self.check()?;
        self.inner.insert_or_get(key, value, ttl_ms)
    }
    fn compare_and_swap(
        &self,
        key: &str,
        expected: u64,
        value: &[u8],
        ttl_ms: u64,
    ) -> Result<SwapResult, StoreError> {
        self.check()?;
        self.inner.compare_and_swap(key, expected, value, ttl_ms)
    }
    fn delete_if_version(&self, key: &str, expected: u64) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete_if_version(key, expected)
    }
}
