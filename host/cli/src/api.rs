//! The JSON API: one route per guard function, so a service in any language can use idem over HTTP.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use idem_host::{
    CanonicalJson, ClaimDecision, Error, Failure, FingerprintInput, GuardError, Operation, Options, Outcome,
    OutcomeKind, RecordState, StoreFailurePolicy,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::app::App;

#[derive(Debug, Default, Deserialize)]
pub struct OptionsWire {
    lease_ms: Option<u64>,
    retention_ms: Option<u64>,
    max_outcome_bytes: Option<u32>,
    on_store_failure: Option<PolicyWire>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PolicyWire {
    FailClosed,
    FailOpen,
}

impl From<OptionsWire> for Options {
    fn from(o: OptionsWire) -> Self {
        Options {
            lease_ms: o.lease_ms,
            retention_ms: o.retention_ms,
            max_outcome_bytes: o.max_outcome_bytes,
            on_store_failure: o.on_store_failure.map(|p| match p {
                PolicyWire::FailClosed => StoreFailurePolicy::FailClosed,
                PolicyWire::FailOpen => StoreFailurePolicy::FailOpen,
            }),
        }
    }
}

/// Exactly one of `payload`, `payload_base64`, `json` (with optional `exclude`) or `fingerprint` (64 hex digits).
#[derive(Debug, Deserialize)]
pub struct ClaimRequest {
    scope: String,
    key: String,
    payload: Option<String>,
    payload_base64: Option<String>,
    /// Kept as written: re-encoding would round large numbers and change what is fingerprinted.
    json: Option<Box<RawValue>>,
    #[serde(default)]
    exclude: Vec<String>,
    fingerprint: Option<String>,
    #[serde(flatten)]
    options: OptionsWire,
}

#[derive(Debug, Deserialize)]
pub struct OutcomeWire {
    body: Option<String>,
    body_base64: Option<String>,
    status: Option<u16>,
    content_type: Option<String>,
    #[serde(default)]
    metadata: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
pub struct CompleteRequest {
    scope: String,
    key: String,
    token: String,
    outcome: OutcomeWire,
    #[serde(flatten)]
    options: OptionsWire,
}

#[derive(Debug, Deserialize)]
pub struct FailRequest {
    scope: String,
    key: String,
    token: String,
    /// `true` releases the claim for another attempt; `false` stores `outcome` as a terminal failure.
    retryable: bool,
    outcome: Option<OutcomeWire>,
    #[serde(flatten)]
    options: OptionsWire,
}

#[derive(Debug, Deserialize)]
pub struct RenewRequest {
    scope: String,
    key: String,
    token: String,
    extend_by_ms: u64,
    #[serde(flatten)]
    options: OptionsWire,
}

/// An error response: `{"error": {"kind": ..., "message": ...}}` with a status that matches the kind.
pub struct ApiError {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: json!({"error": {"kind": "bad_request", "message": message.into()}}),
            retry_after: None,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        let kind = crate::metrics::error_kind(&e);
        let (status, kind, retry_after) = match &e {
            Error::Guard(GuardError::OutcomeTooLarge(_)) => (StatusCode::PAYLOAD_TOO_LARGE, "outcome_too_large", None),
            Error::Guard(GuardError::LeaseLost(_)) => (StatusCode::CONFLICT, kind, None),
            Error::Guard(GuardError::Store(_)) => (StatusCode::SERVICE_UNAVAILABLE, kind, Some(1)),
            Error::Guard(GuardError::Contended) => (StatusCode::SERVICE_UNAVAILABLE, kind, Some(1)),
            Error::Guard(GuardError::CorruptRecord(_)) => (StatusCode::INTERNAL_SERVER_ERROR, kind, None),
            Error::Guard(GuardError::InvalidToken(_)) => (StatusCode::BAD_REQUEST, "invalid_token", None),
            Error::Guard(GuardError::InvalidScope(_)) => (StatusCode::BAD_REQUEST, "invalid_scope", None),
            Error::Guard(GuardError::InvalidKey(_)) => (StatusCode::BAD_REQUEST, "invalid_key", None),
            Error::Guard(GuardError::InvalidFingerprint(_)) => (StatusCode::BAD_REQUEST, "invalid_fingerprint", None),
            Error::Guard(GuardError::InvalidOptions(_)) => (StatusCode::BAD_REQUEST, "invalid_options", None),
            Error::MemoryLimit(_) => (StatusCode::PAYLOAD_TOO_LARGE, kind, None),
            Error::Deadline(_) | Error::Trap(_) | Error::Load(_) => (StatusCode::INTERNAL_SERVER_ERROR, kind, None),
        };
        let mut body = json!({"error": {"kind": kind, "message": message}});
        if let Error::Guard(GuardError::LeaseLost(l)) = &e {
            body["error"]["current_fencing_token"] = json!(l.current_fencing_token);
        }
        Self { status, body, retry_after }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn fingerprint_of(req: &mut ClaimRequest) -> Result<FingerprintInput, ApiError> {
    let given = [req.payload.is_some(), req.payload_base64.is_some(), req.json.is_some(), req.fingerprint.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ApiError::bad_request("give exactly one of payload, payload_base64, json or fingerprint"));
    }
    if let Some(p) = req.payload.take() {
        return Ok(FingerprintInput::Raw(p.into_bytes()));
    }
    if let Some(p) = req.payload_base64.take() {
        return Ok(FingerprintInput::Raw(decode_base64("payload_base64", &p)?));
    }
    if let Some(doc) = req.json.take() {
        let exclude = std::mem::take(&mut req.exclude);
        return Ok(FingerprintInput::CanonicalJson(CanonicalJson { document: doc.get().to_string(), exclude }));
    }
    let hex = req.fingerprint.take().unwrap_or_default();
    let bytes = hex::decode(&hex)
        .map_err(|_| ApiError::bad_request("fingerprint must be hexadecimal (64 digits for SHA-256)"))?;
    Ok(FingerprintInput::Precomputed(bytes))
}

fn decode_base64(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    B64.decode(text).map_err(|e| ApiError::bad_request(format!("{field} is not valid base64: {e}")))
}

fn outcome_of(wire: OutcomeWire) -> Result<Outcome, ApiError> {
    let body = match (wire.body, wire.body_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => decode_base64("outcome.body_base64", &b64)?,
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give outcome.body or outcome.body_base64, not both"));
        }
    };
    Ok(Outcome { body, status: wire.status, content_type: wire.content_type, metadata: wire.metadata })
}

pub fn outcome_json(o: &Outcome) -> Value {
    let mut v = json!({
        "body_base64": B64.encode(&o.body),
        "status": o.status,
        "content_type": o.content_type,
        "metadata": o.metadata,
    });
    // Text bodies are also given as text, for humans and for clients that only store strings.
    if let Ok(text) = std::str::from_utf8(&o.body) {
        v["body"] = json!(text);
    }
    v
}

pub fn decision_json(d: &ClaimDecision) -> Value {
    match d {
        ClaimDecision::Acquired(a) => json!({
            "decision": "acquired",
            "recovered": a.recovered,
            "lease": {
                "token": a.lease.token,
                "fencing_token": a.lease.fencing_token,
                "attempt": a.lease.attempt,
                "expires_at": a.lease.expires_at,
            },
        }),
        ClaimDecision::InProgress(p) => json!({
            "decision": "in_progress",
            "attempt": p.attempt,
            "lease_expires_at": p.lease_expires_at,
            "retry_after_ms": p.retry_after_ms,
        }),
        ClaimDecision::Replay(r) => json!({
            "decision": "replay",
            "kind": match r.kind { OutcomeKind::Succeeded => "succeeded", OutcomeKind::Failed => "failed" },
            "outcome": outcome_json(&r.outcome),
            "finished_at": r.finished_at,
            "attempts": r.attempts,
        }),
        ClaimDecision::Mismatch => json!({"decision": "mismatch"}),
        ClaimDecision::Unguarded(e) => {
            json!({"decision": "unguarded", "store_error": format!("{e:?}")})
        }
    }
}

pub async fn claim(State(app): State<Arc<App>>, Json(mut req): Json<ClaimRequest>) -> ApiResult {
    let fingerprint = fingerprint_of(&mut req)?;
    let op = Operation { scope: req.scope, key: req.key };
    let opts = app.options(req.options.into());
    let decision = app.claim(&op, fingerprint, opts).await?;
    Ok(Json(decision_json(&decision)))
}

pub async fn complete(State(app): State<Arc<App>>, Json(req): Json<CompleteRequest>) -> ApiResult {
    let outcome = outcome_of(req.outcome)?;
    let op = Operation { scope: req.scope, key: req.key };
    let (opts, token, owned) = (app.options(req.options.into()), req.token, op.clone());
    let at = app.call("complete", &op, move |g| g.complete(&owned, &token, &outcome, &opts)).await?;
    tracing::info!(scope = %op.scope, key = %op.key, "completed");
    Ok(Json(json!({"finished_at": at})))
}

pub async fn fail(State(app): State<Arc<App>>, Json(req): Json<FailRequest>) -> ApiResult {
    let failure = match (req.retryable, req.outcome) {
        (true, None) => Failure::Retryable,
        (false, Some(o)) => Failure::Terminal(outcome_of(o)?),
        (true, Some(_)) => {
            return Err(ApiError::bad_request("a retryable failure stores no outcome"));
        }
        (false, None) => {
            return Err(ApiError::bad_request("a terminal failure needs the outcome to replay"));
        }
    };
    let op = Operation { scope: req.scope, key: req.key };
    let (opts, token, owned) = (app.options(req.options.into()), req.token, op.clone());
    let at = app.call("fail", &op, move |g| g.fail(&owned, &token, &failure, &opts)).await?;
    Ok(Json(json!({"recorded_at": at})))
}

pub async fn renew(State(app): State<Arc<App>>, Json(req): Json<RenewRequest>) -> ApiResult {
    let op = Operation { scope: req.scope, key: req.key };
    let (opts, token, owned, by) = (app.options(req.options.into()), req.token, op.clone(), req.extend_by_ms);
    let until =
        app.call("renew", &op, move |g| g.renew(&owned, &token, std::time::Duration::from_millis(by), &opts)).await?;
    Ok(Json(json!({"lease_expires_at": until})))
}

pub async fn status(
    State(app): State<Arc<App>>,
    Path((scope, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let op = Operation { scope, key };
    let owned = op.clone();
    match app.call("status", &op, move |g| g.status(&owned)).await? {
        Some(report) => Ok(Json(status_json(&op, &report)).into_response()),
        None => Ok((
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"kind": "not_found", "message": "no record for this operation"}})),
        )
            .into_response()),
    }
}

pub async fn forget(State(app): State<Arc<App>>, Path((scope, key)): Path<(String, String)>) -> ApiResult {
    let op = Operation { scope, key };
    let owned = op.clone();
    let existed = app.call("forget", &op, move |g| g.forget(&owned)).await?;
    tracing::warn!(scope = %op.scope, key = %op.key, existed, "record forgotten by an operator");
    Ok(Json(json!({"forgotten": existed})))
}

pub fn status_json(op: &Operation, s: &idem_host::StatusReport) -> Value {
    json!({
        "scope": op.scope,
        "key": op.key,
        "state": match s.state {
            RecordState::InProgress => "in_progress",
            RecordState::Released => "released",
            RecordState::Succeeded => "succeeded",
            RecordState::Failed => "failed",
        },
        "attempts": s.attempts,
        "fencing_token": s.fencing_token,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "lease_expires_at": s.lease_expires_at,
        "finished_at": s.finished_at,
        "outcome_bytes": s.outcome_bytes,
        "fingerprint": hex::encode(&s.fingerprint),
    })
}
