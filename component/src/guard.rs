//! The claim state machine. Every function reads the record, decides, and writes only through one atomic store
//! step conditioned on what it read; when that step loses a race it decides again from what the store returned,
//! a bounded number of times. See the table in `wit/guard.wit` for what `claim` answers in each state.

use crate::fingerprint::{Fingerprint, fingerprint};
use crate::limits::{Settings, check_lease_extension, store_key};
use crate::record::{Record, State, StoredKind, StoredOutcome, Token};
use crate::store::{Entry, Environment, InsertResult, Store, SwapResult};
use crate::types::{
    Acquired, ClaimDecision, Failure, FingerprintInput, GuardError, InProgress, Lease, Operation, Options, Outcome,
    Replay, StatusReport, StoreError, StoreFailurePolicy,
};

/// How many times one call decides again after losing a race. Each lost race means another attempt changed the
/// record, so running out needs that many writers on one key within one call.
pub const MAX_ROUNDS: usize = 16;
/// The longest `retry-after-ms` suggested to a caller that finds the operation in progress.
pub const MAX_RETRY_AFTER_MS: u64 = 5_000;

pub struct Guard<S, E> {
    store: S,
    env: E,
}

impl<S: Store, E: Environment> Guard<S, E> {
    pub fn new(store: S, env: E) -> Self {
        Self { store, env }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn claim(&self, op: &Operation, input: &FingerprintInput, opts: &Options) -> Result<ClaimDecision, GuardError> {
        let key = store_key(op)?;
        let settings = Settings::resolve(opts)?;
        let fp = fingerprint(input)?;
        match self.claim_record(&key, fp, &settings) {
            Err(GuardError::Store(e)) if settings.on_store_failure == StoreFailurePolicy::FailOpen => {
                Ok(ClaimDecision::Unguarded(e))
            }
            other => other,
        }
    }

    fn claim_record(&self, key: &str, fp: Fingerprint, settings: &Settings) -> Result<ClaimDecision, GuardError> {
        let now = self.env.now_ms();
        let lease_expires_at = now.saturating_add(settings.lease_ms);
        let ttl = settings.lease_ms.saturating_add(settings.retention_ms);
        // `None` means the key looked absent: try to insert a fresh record.
        let mut seen: Option<Entry> = None;
        for _ in 0..MAX_ROUNDS {
            let entry = match seen.take() {
                Some(entry) => entry,
                None => {
                    let fresh = Record {
                        fingerprint: fp,
                        fencing: 1,
                        nonce: self.env.random_u64(),
                        attempts: 1,
                        created_at: now,
                        updated_at: now,
                        state: State::InProgress { lease_expires_at },
                    };
                    match self.store.insert_or_get(key, &fresh.encode(), ttl)? {
                        InsertResult::Inserted(_) => {
                            return Ok(acquired(&fresh, lease_expires_at, false));
                        }
                        InsertResult::Exists(entry) => entry,
                    }
                }
            };
            // The read bytes go as soon as they are decoded: with a large outcome every copy counts against
            // the guest's memory cap.
            let Entry { value, version } = entry;
            let record = Record::decode(&value)?;
            drop(value);
            if record.fingerprint != fp {
                return Ok(ClaimDecision::Mismatch);
            }
            let recovered = match record.state {
                State::Finished { kind, outcome, finished_at } => {
                    return Ok(ClaimDecision::Replay(Replay {
                        kind: kind.into(),
                        outcome: outcome.into(),
                        finished_at,
                        attempts: record.attempts,
                    }));
                }
                State::InProgress { lease_expires_at: held_until } if now < held_until => {
                    return Ok(ClaimDecision::InProgress(InProgress {
                        attempt: record.attempts,
                        lease_expires_at: held_until,
                        retry_after_ms: (held_until - now).min(MAX_RETRY_AFTER_MS),
                    }));
                }
                State::InProgress { .. } => true,
                State::Released => false,
            };
            let next = Record {
                fencing: record.fencing + 1,
                nonce: self.env.random_u64(),
                attempts: record.attempts.saturating_add(1),
                updated_at: now,
                state: State::InProgress { lease_expires_at },
                ..record
            };
            match self.store.compare_and_swap(key, version, &next.encode(), ttl)? {
                SwapResult::Swapped(_) => return Ok(acquired(&next, lease_expires_at, recovered)),
                SwapResult::Conflict(current) => seen = current,
            }
        }
        Err(GuardError::Contended)
    }

    pub fn complete(&self, op: &Operation, token: &str, outcome: Outcome, opts: &Options) -> Result<u64, GuardError> {
        self.finish(op, token, StoredKind::Succeeded, outcome, opts)
    }

    pub fn fail(&self, op: &Operation, token: &str, failure: Failure, opts: &Options) -> Result<u64, GuardError> {
        match failure {
            Failure::Terminal(outcome) => self.finish(op, token, StoredKind::Failed, outcome, opts),
            Failure::Retryable => {
                let settings = Settings::resolve(opts)?;
                let now = self.env.now_ms();
                self.update_held(op, token, settings.retention_ms, |held| {
                    Record { updated_at: now, state: State::Released, ..held.clone() }.encode()
                })?;
                Ok(now)
            }
        }
    }

    fn finish(
        &self,
        op: &Operation,
        token: &str,
        kind: StoredKind,
        outcome: Outcome,
        opts: &Options,
    ) -> Result<u64, GuardError> {
        let settings = Settings::resolve(opts)?;
        settings.check_outcome(&outcome)?;
        let now = self.env.now_ms();
        // One record holds the outcome for every round; each round copies in only the held record's small
        // fields, because a clone of a large outcome per round could break the guest's memory cap.
        let mut next = Record {
            fingerprint: [0; 32],
            fencing: 0,
            nonce: 0,
            attempts: 0,
            created_at: 0,
            updated_at: now,
            state: State::Finished { kind, outcome: StoredOutcome::from(outcome), finished_at: now },
        };
        let result = self.update_held(op, token, settings.retention_ms, |held| {
            (next.fingerprint, next.fencing, next.nonce) = (held.fingerprint, held.fencing, held.nonce);
            (next.attempts, next.created_at) = (held.attempts, held.created_at);
            next.encode()
        });
        match result {
            Ok(()) => Ok(now),
            // The same holder finishing again with the same outcome (a retry after a lost reply) is answered
            // as the first time, so callers can retry `complete` safely.
            Err(lost @ GuardError::LeaseLost { .. }) => match self.read(op)? {
                Some(stored) if Token::parse(token)?.holds(&stored) => match (stored.state, next.state) {
                    (State::Finished { kind: k, outcome: o, finished_at }, State::Finished { outcome: wanted, .. })
                        if k == kind && o == wanted =>
                    {
                        Ok(finished_at)
                    }
                    _ => Err(lost),
                },
                _ => Err(lost),
            },
            Err(e) => Err(e),
        }
    }

    pub fn renew(&self, op: &Operation, token: &str, extend_by_ms: u64, opts: &Options) -> Result<u64, GuardError> {
        let settings = Settings::resolve(opts)?;
        check_lease_extension(extend_by_ms)?;
        let now = self.env.now_ms();
        let lease_expires_at = now.saturating_add(extend_by_ms);
        let ttl = extend_by_ms.saturating_add(settings.retention_ms);
        self.update_held(op, token, ttl, |held| {
            Record { updated_at: now, state: State::InProgress { lease_expires_at }, ..held.clone() }.encode()
        })?;
        Ok(lease_expires_at)
    }

    /// Replaces the record held in progress by `token` with the encoding `change(record)` returns, or says the
    /// lease is lost.
    fn update_held(
        &self,
        op: &Operation,
        token: &str,
        ttl_ms: u64,
        mut change: impl FnMut(&Record) -> Vec<u8>,
    ) -> Result<(), GuardError> {
        let key = store_key(op)?;
        let token = Token::parse(token)?;
        let mut seen = self.store.get(&key)?;
        for _ in 0..MAX_ROUNDS {
            let Some(entry) = seen.take() else {
                return Err(GuardError::LeaseLost { current_fencing_token: None });
            };
            let record = Record::decode(&entry.value)?;
            if !token.holds(&record) || !matches!(record.state, State::InProgress { .. }) {
                return Err(GuardError::LeaseLost { current_fencing_token: Some(record.fencing) });
            }
            match self.store.compare_and_swap(&key, entry.version, &change(&record), ttl_ms)? {
                SwapResult::Swapped(_) => return Ok(()),
                // Lost to a takeover (refused next round) or to this holder's own concurrent renew (retried).
                SwapResult::Conflict(current) => seen = current,
            }
        }
        Err(GuardError::Contended)
    }

    pub fn status(&self, op: &Operation) -> Result<Option<StatusReport>, GuardError> {
        Ok(self.read(op)?.map(|r| r.status_report()))
    }

    fn read(&self, op: &Operation) -> Result<Option<Record>, GuardError> {
        let key = store_key(op)?;
        self.store.get(&key)?.map(|e| Record::decode(&e.value)).transpose()
    }

    /// Deletes without decoding, so an operator can also clear a corrupt record.
    pub fn forget(&self, op: &Operation) -> Result<bool, GuardError> {
        let key = store_key(op)?;
        for _ in 0..MAX_ROUNDS {
            let Some(entry) = self.store.get(&key)? else {
                return Ok(false);
            };
            if self.store.delete_if_version(&key, entry.version)? {
                return Ok(true);
            }
        }
        Err(GuardError::Contended)
    }
}

fn acquired(record: &Record, expires_at: u64, recovered: bool) -> ClaimDecision {
    ClaimDecision::Acquired(Acquired {
        lease: Lease { token: record.token(), fencing_token: record.fencing, attempt: record.attempts, expires_at },
        recovered,
    })
}

impl<T: Store + ?Sized> Store for &T {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        (**self).get(key)
    }
    fn insert_or_get(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<InsertResult, StoreError> {
        (**self).insert_or_get(key, value, ttl_ms)
    }
    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8], ttl_ms: u64) -> Result<SwapResult, StoreError> {
        (**self).compare_and_swap(key, expected, value, ttl_ms)
    }
    fn delete_if_version(&self, key: &str, expected: u64) -> Result<bool, StoreError> {
        (**self).delete_if_version(key, expected)
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
