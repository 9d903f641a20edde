//! The operation every benchmark performs, through the component in wasmtime (`idem_host::Guard`) or natively
//! (`idem_component::guard::Guard`): the same payload, the same outcome, the same options.

use anyhow::{Result, bail};

use crate::native::NativeGuard;

pub const SCOPE: &str = "bench";

/// A typical request body: what gets fingerprinted.
pub fn payload(i: usize) -> Vec<u8> {
    format!(
        r#"{{"order":"order-{i:08}","amount":1999,"currency":"EUR","customer":"cust-42","items":[{{"sku":"A-1","qty":2}},{{"sku":"B-7","qty":1}}],"note":"benchmark payload"}}"#
    )
    .into_bytes()
}

/// A typical response: what gets stored and replayed.
pub const OUTCOME_BODY: &[u8] =
    br#"{"charge":"ch_0123456789abcdef","status":"succeeded","amount":1999,"currency":"EUR","created":1700000000}"#;
pub const OUTCOME_STATUS: u16 = 201;
pub const CONTENT_TYPE: &str = "application/json";

/// One side of a comparison: something that can run a claim+complete cycle and a duplicate (replay) claim.
pub trait Cycle: Sync {
    /// Claims `key` (expected: acquired) and completes it with the outcome.
    fn claim_complete(&self, key: &str, i: usize) -> Result<()>;
    /// Claims `key`, already completed with payload `i` (expected: replay).
    fn duplicate(&self, key: &str, i: usize) -> Result<()>;
}

pub struct Wasm(pub idem_host::Guard);

impl Wasm {
    pub fn op(key: &str) -> idem_host::Operation {
        idem_host::Operation { scope: SCOPE.into(), key: key.into() }
    }

    pub fn outcome() -> idem_host::Outcome {
        idem_host::Outcome {
            body: OUTCOME_BODY.to_vec(),
            status: Some(OUTCOME_STATUS),
            content_type: Some(CONTENT_TYPE.into()),
            metadata: vec![],
        }
    }

    /// Claim only; returns the lease token.
    pub fn claim(&self, key: &str, i: usize) -> Result<String> {
        let op = Self::op(key);
        let fp = idem_host::FingerprintInput::Raw(payload(i));
        match self.0.claim(&op, &fp, &idem_host::Options::default())? {
            idem_host::ClaimDecision::Acquired(a) => Ok(a.lease.token),
            other => bail!("{key}: expected acquired, got {other:?}"),
        }
    }
}

impl Cycle for Wasm {
    fn claim_complete(&self, key: &str, i: usize) -> Result<()> {
        let token = self.claim(key, i)?;
        self.0.complete(&Self::op(key), &token, &Self::outcome(), &idem_host::Options::default())?;
        Ok(())
    }

    fn duplicate(&self, key: &str, i: usize) -> Result<()> {
        let fp = idem_host::FingerprintInput::Raw(payload(i));
        match self.0.claim(&Self::op(key), &fp, &idem_host::Options::default())? {
            idem_host::ClaimDecision::Replay(r) if r.outcome.body == OUTCOME_BODY => Ok(()),
            other => bail!("{key}: expected replay, got {other:?}"),
        }
    }
}

pub struct Native(pub NativeGuard);

impl Native {
    fn op(key: &str) -> idem_component::types::Operation {
        idem_component::types::Operation { scope: SCOPE.into(), key: key.into() }
    }
}

impl Cycle for Native {
    fn claim_complete(&self, key: &str, i: usize) -> Result<()> {
        use idem_component::types::*;
        let op = Self::op(key);
        let token = match self
            .0
            .claim(&op, &FingerprintInput::Raw(payload(i)), &Options::default())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
        {
            ClaimDecision::Acquired(a) => a.lease.token,
            other => bail!("{key}: expected acquired, got {other:?}"),
        };
        let outcome = Outcome {
            body: OUTCOME_BODY.to_vec(),
            status: Some(OUTCOME_STATUS),
            content_type: Some(CONTENT_TYPE.into()),
            metadata: vec![],
        };
        self.0.complete(&op, &token, outcome, &Options::default()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(())
    }

    fn duplicate(&self, key: &str, i: usize) -> Result<()> {
        use idem_component::types::*;
        match self
            .0
            .claim(&Self::op(key), &FingerprintInput::Raw(payload(i)), &Options::default())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
        {
            ClaimDecision::Replay(r) if r.outcome.body == OUTCOME_BODY => Ok(()),
            other => bail!("{key}: expected replay, got {other:?}"),
        }
    }
}

/// The bytes idem stores for a completed operation `i` (for raw-store baselines and preloading).
pub fn completed_record(i: usize, now: u64) -> Vec<u8> {
    use idem_component::record::{State, StoredKind, StoredOutcome};
    record(
        i,
        now,
        State::Finished {
            kind: StoredKind::Succeeded,
            outcome: StoredOutcome {
                body: OUTCOME_BODY.to_vec(),
                status: Some(OUTCOME_STATUS),
                content_type: Some(CONTENT_TYPE.into()),
                metadata: vec![],
            },
            finished_at: now,
        },
    )
}

/// The bytes idem stores for an operation `i` just claimed.
pub fn claimed_record(i: usize, now: u64) -> Vec<u8> {
    record(i, now, idem_component::record::State::InProgress { lease_expires_at: now + 30_000 })
}

/// Operation `i`'s record, first attempt, in `state`, encoded as the guard encodes it.
fn record(i: usize, now: u64, state: idem_component::record::State) -> Vec<u8> {
    idem_component::record::Record {
        fingerprint: sha2_free::digest(&payload(i)),
        fencing: 1,
        nonce: 0x1234_5678_9abc_def0 ^ i as u64,
        attempts: 1,
        created_at: now,
        updated_at: now,
        state,
    }
    .encode()
}

/// The component's own fingerprint function, so preloaded records match what a claim computes.
mod sha2_free {
    pub fn digest(bytes: &[u8]) -> [u8; 32] {
        idem_component::fingerprint::fingerprint(&idem_component::types::FingerprintInput::Raw(bytes.to_vec()))
            .expect("raw fingerprints always succeed")
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
