//! Idempotency-Key conventions on top of the guard: which HTTP answer each claim decision becomes, and how a
//! finished response is stored for replay. Nothing here knows about work orders.

use http::HeaderMap;

use crate::guard::{
    self, ClaimDecision, FingerprintInput, GuardError, Operation, Options, Outcome,
};
use crate::reply::Reply;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

/// Parts of a request body that do not make it a different request: a client may resend with a new timestamp.
const NOT_IDENTITY: [&str; 1] = ["/sent_at"];

/// What the handler does next.
pub enum Claimed {
    /// Run the operation, then `finish` with this lease.
    Run(guard::Acquired),
    /// Answer with this and run nothing.
    Answer(Reply),
}

/// The key a client sent, as the IETF draft's structured-field string (`"abc"`) or bare.
pub fn key(headers: &HeaderMap) -> Result<String, Reply> {
    let raw = headers
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| Reply::error(400, "the Idempotency-Key header is required"))?;
    let raw = raw
        .to_str()
        .map_err(|_| Reply::error(400, "the Idempotency-Key header must be visible ASCII"))?
        .trim();
    let key = raw
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(raw);
    if key.is_empty() {
        return Err(Reply::error(400, "the Idempotency-Key header is empty"));
    }
    Ok(key.to_owned())
}

/// A JSON body is fingerprinted canonically (key order and whitespace do not matter); an empty body is too.
pub fn fingerprint(body: &[u8]) -> FingerprintInput {
    match std::str::from_utf8(body) {
        Ok(text) if !text.trim().is_empty() => {
            FingerprintInput::CanonicalJson(guard::CanonicalJson {
                document: text.to_owned(),
                exclude: NOT_IDENTITY.iter().map(|p| (*p).to_owned()).collect(),
            })
        }
        Ok(_) => FingerprintInput::Raw(Vec::new()),
        // Not UTF-8, so not JSON: the raw bytes still bind the key to this exact payload.
        Err(_) => FingerprintInput::Raw(body.to_vec()),
    }
}

pub fn claim(op: &Operation, fingerprint: &FingerprintInput, opts: Options) -> Claimed {
    match guard::claim(op, fingerprint, opts) {
        Ok(ClaimDecision::Acquired(acquired)) => Claimed::Run(acquired),
        Ok(ClaimDecision::InProgress(busy)) => Claimed::Answer(
            Reply::error(
                409,
                "a request with this Idempotency-Key is being processed",
            )
            .with_header(
                "retry-after",
                retry_after_seconds(busy.retry_after_ms).to_string(),
            ),
        ),
        Ok(ClaimDecision::Replay(replay)) => Claimed::Answer(replayed(replay.outcome)),
        Ok(ClaimDecision::Mismatch) => Claimed::Answer(Reply::error(
            422,
            "this Idempotency-Key was already used with a different request body",
        )),
        // Only under fail-open, which this app does not ask for; refuse rather than run unguarded.
        Ok(ClaimDecision::Unguarded(e)) => Claimed::Answer(store_unavailable(&e)),
        Err(e) => Claimed::Answer(refused(&e)),
    }
}

/// Stores `reply` as the operation's outcome and returns it. If storing fails the work has run but will not be
/// replayed, so the client is told to look before retrying rather than handed a success it cannot rely on.
pub fn finish(op: &Operation, acquired: &guard::Acquired, reply: Reply, opts: Options) -> Reply {
    let outcome = Outcome {
        body: reply.body.clone(),
        status: Some(reply.status),
        content_type: reply.content_type.clone(),
        metadata: reply.headers.clone(),
    };
    match guard::complete(op, &acquired.lease.token, &outcome, opts) {
        Ok(_) => reply,
        Err(e) => refused(&e),
    }
}

/// Releases the claim so the next retry runs at once (the operation did not happen).
pub fn release_for_retry(op: &Operation, acquired: &guard::Acquired, opts: Options) {
    // If this fails the lease simply expires and the next claim takes over.
    let _ = guard::fail(op, &acquired.lease.token, &guard::Failure::Retryable, opts);
}

fn replayed(outcome: Outcome) -> Reply {
    Reply {
        status: outcome.status.unwrap_or(200),
        content_type: outcome.content_type,
        headers: outcome.metadata,
        body: outcome.body,
    }
    .with_header(REPLAYED, "true")
}

/// Whole seconds, rounded up, and at least one: `Retry-After: 0` would invite a tight loop.
fn retry_after_seconds(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

fn store_unavailable(e: &guard::StoreError) -> Reply {
    Reply::error(503, &format!("the idempotency store is unavailable: {e:?}"))
        .with_header("retry-after", "1")
}

fn refused(e: &GuardError) -> Reply {
    match e {
        GuardError::InvalidScope(m) | GuardError::InvalidKey(m) => {
            Reply::error(400, &format!("invalid Idempotency-Key: {m}"))
        }
        GuardError::InvalidFingerprint(m) => {
            Reply::error(400, &format!("the request body is not valid JSON: {m}"))
        }
        GuardError::OutcomeTooLarge(size) => Reply::error(
            500,
            &format!("the response ({} bytes) is too large to store", size.size),
        ),
        GuardError::LeaseLost(_) => Reply::error(409, "this attempt lost its lease to a newer one")
            .with_header("retry-after", "1"),
        GuardError::Store(e) => store_unavailable(e),
        GuardError::Contended => {
            Reply::error(503, "the idempotency record is contended").with_header("retry-after", "1")
        }
        GuardError::InvalidOptions(m)
        | GuardError::InvalidToken(m)
        | GuardError::CorruptRecord(m) => {
            Reply::error(500, &format!("idempotency guard refused the call: {m}"))
        }
    }
}
