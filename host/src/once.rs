//! `Guard::run_once`: the helper most callers want. Claim; run the closure if acquired, renewing the lease in the
//! background while it runs; store its outcome; replay on duplicates; refuse to report success when the lease
//! was lost while running.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::error::Error;
use crate::guard::Guard;
use crate::{
    Acquired, ClaimDecision, Failure, FingerprintInput, GuardError, InProgress, Operation, Options, Outcome, Replay,
};

/// What `run_once` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// This call ran the operation and stored its outcome. `recovered` says an earlier attempt had died mid-way.
    Executed { outcome: Outcome, fencing_token: u64, recovered: bool },
    /// The operation had already run; this is its stored outcome, which may be a stored failure.
    Replayed(Replay),
    /// The store failed under `fail-open`: the operation ran without a guard and nothing was stored.
    Unguarded(Outcome),
}

/// Why `run_once` did not produce an outcome.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E> {
    /// Another attempt holds the operation now. Ask again after `retry_after_ms`.
    #[error("the operation is in progress elsewhere (attempt {}), retry in {} ms", .0.attempt, .0.retry_after_ms)]
    InProgress(InProgress),
    /// The key was first used with a different payload.
    #[error("the key was first used with a different payload")]
    Mismatch,
    /// The closure failed. Its claim was released (retryable) so a later attempt can run it again.
    #[error("the operation failed")]
    Failed(#[source] E),
    /// The guard refused or failed a call, including `lease-lost` when the lease was taken over while the
    /// closure ran: then its outcome was not stored and the caller must not report it as the result.
    #[error(transparent)]
    Guard(#[from] Error),
}

/// How the closure's result is stored.
pub enum Attempt<E> {
    /// Store this outcome and replay it to every duplicate.
    Done(Outcome),
    /// Store this outcome as a terminal failure and replay it to every duplicate.
    FailedTerminally(Outcome),
    /// Release the claim so the next attempt runs again; `run_once` returns `RunError::Failed`.
    Retry(E),
}

impl Guard {
    /// Runs `work` at most once per operation across every caller sharing the store. While it runs the lease is
    /// renewed every third of its length; `work` receives the acquisition (fencing token included, to pass on
    /// to systems that can check it).
    pub fn run_once<E>(
        &self,
        op: &Operation,
        fingerprint: &FingerprintInput,
        opts: &Options,
        work: impl FnOnce(&Acquired) -> Attempt<E>,
    ) -> Result<Ran, RunError<E>> {
        let acquired = match self.claim(op, fingerprint, opts)? {
            ClaimDecision::Acquired(a) => a,
            ClaimDecision::Replay(r) => return Ok(Ran::Replayed(r)),
            ClaimDecision::InProgress(p) => return Err(RunError::InProgress(p)),
            ClaimDecision::Mismatch => return Err(RunError::Mismatch),
            ClaimDecision::Unguarded(_) => {
                return match work(&unguarded_acquisition()) {
                    Attempt::Done(o) | Attempt::FailedTerminally(o) => Ok(Ran::Unguarded(o)),
                    Attempt::Retry(e) => Err(RunError::Failed(e)),
                };
            }
        };
        let token = acquired.lease.token.clone();
        let lease_ms = opts.lease_ms.unwrap_or(30_000);
        let attempt = std::thread::scope(|scope| {
            let (stop, stopped) = mpsc::channel::<()>();
            scope.spawn(|| self.heartbeat(op, &token, lease_ms, opts, stopped));
            let attempt = work(&acquired);
            drop(stop);
            attempt
        });
        match attempt {
            Attempt::Done(outcome) => {
                self.complete(op, &token, &outcome, opts)?;
                Ok(Ran::Executed {
                    outcome,
                    fencing_token: acquired.lease.fencing_token,
                    recovered: acquired.recovered,
                })
            }
            Attempt::FailedTerminally(outcome) => {
                self.fail(op, &token, &Failure::Terminal(outcome.clone()), opts)?;
                Ok(Ran::Executed {
                    outcome,
                    fencing_token: acquired.lease.fencing_token,
                    recovered: acquired.recovered,
                })
            }
            Attempt::Retry(e) => {
                self.fail(op, &token, &Failure::Retryable, opts)?;
                Err(RunError::Failed(e))
            }
        }
    }

    /// Renews until `stopped` closes. A lost lease ends the heartbeat; `complete` then reports `lease-lost`.
    fn heartbeat(&self, op: &Operation, token: &str, lease_ms: u64, opts: &Options, stopped: mpsc::Receiver<()>) {
        let every = Duration::from_millis((lease_ms / 3).max(1));
        loop {
            match stopped.recv_timeout(every) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            match self.renew(op, token, Duration::from_millis(lease_ms), opts) {
                Ok(_) => {}
                Err(Error::Guard(GuardError::LeaseLost(_))) => {
                    tracing::warn!(scope = %op.scope, key = %op.key, "lease lost while the operation ran");
                    return;
                }
                // A store hiccup: the lease may still hold; try again next beat.
                Err(e) => {
                    tracing::warn!(scope = %op.scope, key = %op.key, error = %e, "lease renewal failed")
                }
            }
        }
    }
}

fn unguarded_acquisition() -> Acquired {
    Acquired {
        lease: crate::Lease { token: String::new(), fencing_token: 0, attempt: 0, expires_at: 0 },
        recovered: false,
    }
}
