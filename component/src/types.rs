//! The guard's vocabulary as plain Rust types, mirroring `wit/guard.wit` one to one. The binding layer converts
//! at the edge so that everything else stays free of generated code and runs natively in tests.

use thiserror::Error;

/// The identity of one business operation: `scope` + `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub scope: String,
    pub key: String,
}

impl Operation {
    pub fn new(scope: impl Into<String>, key: impl Into<String>) -> Self {
        Self { scope: scope.into(), key: key.into() }
    }
}

/// What the payload fingerprint is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FingerprintInput {
    Raw(Vec<u8>),
    CanonicalJson { document: String, exclude: Vec<String> },
    Precomputed(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreFailurePolicy {
    #[default]
    FailClosed,
    FailOpen,
}

/// Per-call options as the caller gave them; `None` takes the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub lease_ms: Option<u64>,
    pub retention_ms: Option<u64>,
    pub max_outcome_bytes: Option<u32>,
    pub on_store_failure: Option<StoreFailurePolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub body: Vec<u8>,
    pub status: Option<u16>,
    pub content_type: Option<String>,
    pub metadata: Vec<(String, String)>,
}

impl Outcome {
    /// The size `max-outcome-bytes` is compared with.
    pub fn counted_bytes(&self) -> u64 {
        let meta: usize = self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        (self.body.len() + self.content_type.as_ref().map_or(0, String::len) + meta) as u64
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub token: String,
    pub fencing_token: u64,
    pub attempt: u32,
    pub expires_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    pub lease: Lease,
    pub recovered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProgress {
    pub attempt: u32,
    pub lease_expires_at: u64,
    pub retry_after_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub kind: OutcomeKind,
    pub outcome: Outcome,
    pub finished_at: u64,
    pub attempts: u32,
}

/// What a claim decided. The caller must match every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision {
    Acquired(Acquired),
    InProgress(InProgress),
    Replay(Replay),
    Mismatch,
    Unguarded(StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    InProgress,
    Released,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub state: RecordState,
    pub attempts: u32,
    pub fencing_token: u64,
    pub created_at: u64,
    pub updated_at: u64,
    pub lease_expires_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub outcome_bytes: Option<u64>,
    pub fingerprint: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Retryable,
    Terminal(Outcome),
}

/// Why the store could not do what was asked. Never means "absent".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("value too large for the store (limit {0} bytes)")]
    TooLarge(u64),
    #[error("store error: {0}")]
    Other(String),
}

/// Why a guard call was refused. A refused call changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GuardError {
    #[error("invalid scope: {0}")]
    InvalidScope(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("invalid fingerprint input: {0}")]
    InvalidFingerprint(String),
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    #[error("outcome of {size} bytes exceeds the limit of {limit} bytes")]
    OutcomeTooLarge { size: u64, limit: u64 },
    #[error("invalid lease token: {0}")]
    InvalidToken(String),
    #[error("lease lost (newest fencing token: {current_fencing_token:?})")]
    LeaseLost { current_fencing_token: Option<u64> },
    #[error(transparent)]
    Store(StoreError),
    #[error("corrupt record in the store: {0}")]
    CorruptRecord(String),
    #[error("record contended: no decision settled within the retry budget")]
    Contended,
}

impl From<StoreError> for GuardError {
    fn from(e: StoreError) -> Self {
        GuardError::Store(e)
    }
}
