use std::fmt;

use crate::GuardError;

/// Why a guard call did not return a decision.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The guard refused the call; the variant says why (lease lost, mismatch of input, store down...).
    #[error("{}", describe(.0))]
    Guard(GuardError),
    /// The guest ran past its deadline and was stopped.
    #[error("the guard ran past its deadline of {0:?} and was stopped")]
    Deadline(std::time::Duration),
    /// The guest needed more linear memory than its cap (`GuardBuilder::memory_limit`) and was stopped: the input
    /// or outcome is too large for the cap. Nothing is known to be stored beyond what the store's atomic steps
    /// made visible.
    #[error("the guard reached its memory cap of {0} bytes and was stopped")]
    MemoryLimit(usize),
    /// The guest trapped: a bug, never a decision. Nothing is known to be stored beyond what the store's atomic steps made visible.
    #[error("the guard trapped: {0:#}")]
    Trap(wasmtime::Error),
    /// The component could not be compiled or linked.
    #[error("could not load the guard component: {0:#}")]
    Load(wasmtime::Error),
}

impl From<GuardError> for Error {
    fn from(e: GuardError) -> Self {
        Error::Guard(e)
    }
}

/// A sentence for an operator; the generated `Display` only prints the variant's fields.
pub fn describe(e: &GuardError) -> String {
    struct D<'a>(&'a GuardError);
    impl fmt::Display for D<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                GuardError::InvalidScope(m) => write!(f, "invalid scope: {m}"),
                GuardError::InvalidKey(m) => write!(f, "invalid key: {m}"),
                GuardError::InvalidFingerprint(m) => write!(f, "invalid fingerprint input: {m}"),
                GuardError::InvalidOptions(m) => write!(f, "invalid options: {m}"),
                GuardError::OutcomeTooLarge(s) => {
                    write!(f, "outcome of {} bytes exceeds the limit of {} bytes", s.size, s.limit)
                }
                GuardError::InvalidToken(m) => write!(f, "invalid lease token: {m}"),
                GuardError::LeaseLost(l) => match l.current_fencing_token {
                    Some(t) => write!(f, "lease lost: the operation's newest fencing token is {t}"),
                    None => write!(f, "lease lost: the operation has no record any more"),
                },
                GuardError::Store(e) => write!(f, "{}", crate::store::StoreError::from(e.clone())),
                GuardError::CorruptRecord(m) => write!(f, "corrupt record in the store: {m}"),
                GuardError::Contended => {
                    write!(f, "record contended: no decision settled; retry shortly")
                }
            }
        }
    }
    D(e).to_string()
}
