//! Binds the pure guard to the WIT world: the imported store becomes a `Store`, the WASI clock and random source
//! an `Environment`, and generated types are converted at this edge only.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::bindings::exports::idem::guard::guard as wit;
use crate::bindings::idem::guard::store as wit_store;
use crate::guard::Guard;
use crate::store::{Entry, Environment, InsertResult, Store, SwapResult};
use crate::types::{self as t, GuardError, StoreError};

struct Component;

crate::bindings::export!(Component with_types_in crate::bindings);

struct ImportedStore;

impl Store for ImportedStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        Ok(wit_store::get(key)?.map(Entry::from))
    }

    fn insert_or_get(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<InsertResult, StoreError> {
        Ok(match wit_store::insert_or_get(key, value, ttl_ms)? {
            wit_store::InsertResult::Inserted(v) => InsertResult::Inserted(v),
            wit_store::InsertResult::Exists(e) => InsertResult::Exists(e.into()),
        })
    }

    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8], ttl_ms: u64) -> Result<SwapResult, StoreError> {
        Ok(match wit_store::compare_and_swap(key, expected, value, ttl_ms)? {
            wit_store::SwapResult::Swapped(v) => SwapResult::Swapped(v),
            wit_store::SwapResult::Conflict(e) => SwapResult::Conflict(e.map(Entry::from)),
        })
    }

    fn delete_if_version(&self, key: &str, expected: u64) -> Result<bool, StoreError> {
        Ok(wit_store::delete_if_version(key, expected)?)
    }
}

/// Time from `wasi:clocks/wall-clock`, random bits from `wasi:random` (through std's seeded hasher keys).
struct Wasi;

impl Environment for Wasi {
    fn now_ms(&self) -> u64 {
        // A clock before 1970 is a host misconfiguration; reading it as 0 makes every lease look expired
        // rather than trapping, and fencing still keeps stale holders out.
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    fn random_u64(&self) -> u64 {
        RandomState::new().build_hasher().finish()
    }
}

fn guard() -> Guard<ImportedStore, Wasi> {
    Guard::new(ImportedStore, Wasi)
}

impl wit::Guest for Component {
    fn claim(
        op: wit::Operation,
        fingerprint: wit::FingerprintInput,
        opts: wit::Options,
    ) -> Result<wit::ClaimDecision, wit::GuardError> {
        Ok(guard().claim(&op.into(), &fingerprint.into(), &opts.into())?.into())
    }

    fn complete(
        op: wit::Operation,
        token: String,
        outcome: wit::Outcome,
        opts: wit::Options,
    ) -> Result<u64, wit::GuardError> {
        Ok(guard().complete(&op.into(), &token, outcome.into(), &opts.into())?)
    }

    fn fail(
        op: wit::Operation,
        token: String,
        failure: wit::Failure,
        opts: wit::Options,
    ) -> Result<u64, wit::GuardError> {
        let failure = match failure {
            wit::Failure::Retryable => t::Failure::Retryable,
            wit::Failure::Terminal(o) => t::Failure::Terminal(o.into()),
        };
        Ok(guard().fail(&op.into(), &token, failure, &opts.into())?)
    }

    fn renew(op: wit::Operation, token: String, extend_by_ms: u64, opts: wit::Options) -> Result<u64, wit::GuardError> {
        Ok(guard().renew(&op.into(), &token, extend_by_ms, &opts.into())?)
    }

    fn status(op: wit::Operation) -> Result<Option<wit::StatusReport>, wit::GuardError> {
        Ok(guard().status(&op.into())?.map(Into::into))
    }

    fn forget(op: wit::Operation) -> Result<bool, wit::GuardError> {
        Ok(guard().forget(&op.into())?)
    }
}

impl From<wit_store::Entry> for Entry {
    fn from(e: wit_store::Entry) -> Self {
        Entry { value: e.value, version: e.version }
    }
}

impl From<wit_store::StoreError> for StoreError {
    fn from(e: wit_store::StoreError) -> Self {
        match e {
            wit_store::StoreError::Unavailable(m) => StoreError::Unavailable(m),
            wit_store::StoreError::TooLarge(n) => StoreError::TooLarge(n),
            wit_store::StoreError::Other(m) => StoreError::Other(m),
        }
    }
}

impl From<StoreError> for wit_store::StoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::TooLarge(n) => Self::TooLarge(n),
            StoreError::Other(m) => Self::Other(m),
        }
    }
}

impl From<wit::Operation> for t::Operation {
    fn from(op: wit::Operation) -> Self {
        t::Operation { scope: op.scope, key: op.key }
    }
}

impl From<wit::FingerprintInput> for t::FingerprintInput {
    fn from(f: wit::FingerprintInput) -> Self {
        match f {
            wit::FingerprintInput::Raw(b) => t::FingerprintInput::Raw(b),
            wit::FingerprintInput::CanonicalJson(c) => {
                t::FingerprintInput::CanonicalJson { document: c.document, exclude: c.exclude }
            }
            wit::FingerprintInput::Precomputed(b) => t::FingerprintInput::Precomputed(b),
        }
    }
}

impl From<wit::Options> for t::Options {
    fn from(o: wit::Options) -> Self {
        t::Options {
            lease_ms: o.lease_ms,
            retention_ms: o.retention_ms,
            max_outcome_bytes: o.max_outcome_bytes,
            on_store_failure: o.on_store_failure.map(|p| match p {
                wit::StoreFailurePolicy::FailClosed => t::StoreFailurePolicy::FailClosed,
                wit::StoreFailurePolicy::FailOpen => t::StoreFailurePolicy::FailOpen,
            }),
        }
    }
}

impl From<wit::Outcome> for t::Outcome {
    fn from(o: wit::Outcome) -> Self {
        t::Outcome { body: o.body, status: o.status, content_type: o.content_type, metadata: o.metadata }
    }
}

impl From<t::Outcome> for wit::Outcome {
    fn from(o: t::Outcome) -> Self {
        wit::Outcome { body: o.body, status: o.status, content_type: o.content_type, metadata: o.metadata }
    }
}

impl From<t::ClaimDecision> for wit::ClaimDecision {
    fn from(d: t::ClaimDecision) -> Self {
        match d {
            t::ClaimDecision::Acquired(a) => wit::ClaimDecision::Acquired(wit::Acquired {
                lease: wit::Lease {
                    token: a.lease.token,
                    fencing_token: a.lease.fencing_token,
                    attempt: a.lease.attempt,
                    expires_at: a.lease.expires_at,
                },
                recovered: a.recovered,
            }),
            t::ClaimDecision::InProgress(p) => wit::ClaimDecision::InProgress(wit::InProgress {
                attempt: p.attempt,
                lease_expires_at: p.lease_expires_at,
                retry_after_ms: p.retry_after_ms,
            }),
            t::ClaimDecision::Replay(r) => wit::ClaimDecision::Replay(wit::Replay {
                kind: match r.kind {
                    t::OutcomeKind::Succeeded => wit::OutcomeKind::Succeeded,
                    t::OutcomeKind::Failed => wit::OutcomeKind::Failed,
                },
                outcome: r.outcome.into(),
                finished_at: r.finished_at,
                attempts: r.attempts,
            }),
            t::ClaimDecision::Mismatch => wit::ClaimDecision::Mismatch,
            t::ClaimDecision::Unguarded(e) => wit::ClaimDecision::Unguarded(e.into()),
        }
    }
}

impl From<t::StatusReport> for wit::StatusReport {
    fn from(s: t::StatusReport) -> Self {
        wit::StatusReport {
            state: match s.state {
                t::RecordState::InProgress => wit::RecordState::InProgress,
                t::RecordState::Released => wit::RecordState::Released,
                t::RecordState::Succeeded => wit::RecordState::Succeeded,
                t::RecordState::Failed => wit::RecordState::Failed,
            },
            attempts: s.attempts,
            fencing_token: s.fencing_token,
            created_at: s.created_at,
            updated_at: s.updated_at,
            lease_expires_at: s.lease_expires_at,
            finished_at: s.finished_at,
            outcome_bytes: s.outcome_bytes,
            fingerprint: s.fingerprint,
        }
    }
}

impl From<GuardError> for wit::GuardError {
    fn from(e: GuardError) -> Self {
        match e {
            GuardError::InvalidScope(m) => Self::InvalidScope(m),
            GuardError::InvalidKey(m) => Self::InvalidKey(m),
            GuardError::InvalidFingerprint(m) => Self::InvalidFingerprint(m),
            GuardError::InvalidOptions(m) => Self::InvalidOptions(m),
            GuardError::OutcomeTooLarge { size, limit } => Self::OutcomeTooLarge(wit::SizeLimit { size, limit }),
            GuardError::InvalidToken(m) => Self::InvalidToken(m),
            GuardError::LeaseLost { current_fencing_token } => {
                Self::LeaseLost(wit::LeaseLost { current_fencing_token })
            }
            GuardError::Store(e) => Self::Store(e.into()),
            GuardError::CorruptRecord(m) => Self::CorruptRecord(m),
            GuardError::Contended => Self::Contended,
        }
    }
}
