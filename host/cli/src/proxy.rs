//! Idempotency-Key semantics in front of an existing HTTP service, after the IETF draft
//! `draft-ietf-httpapi-idempotency-key-header`: a guarded request runs upstream once per key; duplicates get the
//! stored response with `Idempotent-Replayed: true`; a duplicate during the first run gets 409; the same key with
//! another request gets 422.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use idem_host::{ClaimDecision, Failure, FingerprintInput, Operation, Outcome};
use serde_json::json;

use crate::app::App;
use crate::config::ProxyConfig;

/// Requests bodies above this are refused (413) rather than buffered.
const MAX_REQUEST_BYTES: usize = 16 << 20;
/// Upstream responses above this are passed on but cannot be stored; the claim is released.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

pub struct Proxy {
    config: ProxyConfig,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Proxy {
    pub fn new(config: ProxyConfig) -> Self {
        Self { config, client: Client::builder(TokioExecutor::new()).build_http() }
    }

    fn guards(&self, method: &Method, path: &str) -> bool {
        self.config.methods.iter().any(|m| m == method.as_str())
            && self.config.paths.iter().any(|p| path.starts_with(p.as_str()))
    }
}

fn problem(status: StatusCode, title: &str, detail: impl Into<String>) -> Response {
    let body = json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail.into()});
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    r
}

/// The key as sent: the draft makes it a Structured Fields string (`"abc"`); a bare token is accepted too.
fn idempotency_key(headers: &HeaderMap) -> Option<Result<String, &'static str>> {
    let raw = headers.get("idempotency-key")?;
    let Ok(text) = raw.to_str() else {
        return Some(Err("Idempotency-Key must be visible ASCII"));
    };
    let text = text.trim();
    let key = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    Some(if key.is_empty() { Err("Idempotency-Key is empty") } else { Ok(key.to_string()) })
}

/// Headers that describe one hop, not the response: never stored or replayed.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "date"
    )
}

pub async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let Some(proxy) = app.proxy.as_ref() else {
        return problem(StatusCode::NOT_FOUND, "Not Found", "no such route");
    };
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return problem(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", "request body over the proxy's limit");
        }
    };
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    if !proxy.guards(&parts.method, parts.uri.path()) {
        return forward(proxy, &parts.method, &path_and_query, &parts.headers, body)
            .await
            .map_or_else(|r| r, |(r, _)| r);
    }
    let key = match idempotency_key(&parts.headers) {
        Some(Ok(key)) => key,
        Some(Err(why)) => return problem(StatusCode::BAD_REQUEST, "Bad Request", why),
        None if proxy.config.require_key => {
            return problem(StatusCode::BAD_REQUEST, "Bad Request", "this route requires an Idempotency-Key header");
        }
        None => {
            return forward(proxy, &parts.method, &path_and_query, &parts.headers, body)
                .await
                .map_or_else(|r| r, |(r, _)| r);
        }
    };
    let op = Operation { scope: proxy.config.scope.clone(), key };
    // The fingerprint binds the key to this exact request: method, target and body.
    let mut fingerprinted = Vec::with_capacity(body.len() + path_and_query.len() + 16);
    fingerprinted.extend_from_slice(parts.method.as_str().as_bytes());
    fingerprinted.push(b' ');
    fingerprinted.extend_from_slice(path_and_query.as_bytes());
    fingerprinted.push(b'\n');
    fingerprinted.extend_from_slice(&body);
    let opts = app.options(Default::default());
    let decision = match app.claim(&op, FingerprintInput::Raw(fingerprinted), opts).await {
        Ok(d) => d,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    match decision {
        ClaimDecision::Acquired(acquired) => {
            let token = acquired.lease.token.clone();
            let heartbeat = spawn_heartbeat(app.clone(), op.clone(), token.clone(), opts.lease_ms.unwrap_or(30_000));
            let forwarded = forward(proxy, &parts.method, &path_and_query, &parts.headers, body).await;
            heartbeat.abort();
            settle(&app, op, token, opts, forwarded).await
        }
        ClaimDecision::Replay(r) => replay(r.outcome),
        ClaimDecision::InProgress(p) => {
            let mut r =
                problem(StatusCode::CONFLICT, "Conflict", "a request with this Idempotency-Key is being processed");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(p.retry_after_ms.div_ceil(1000).max(1)));
            r
        }
        ClaimDecision::Mismatch => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unprocessable Content",
            "this Idempotency-Key was already used with a different request",
        ),
        ClaimDecision::Unguarded(_) => {
            let mut r = forward(proxy, &parts.method, &path_and_query, &parts.headers, body)
                .await
                .map_or_else(|r| r, |(r, _)| r);
            r.headers_mut().insert("idempotent-unguarded", HeaderValue::from_static("true"));
            r
        }
    }
}

/// Stores a definite upstream answer (2xx-4xx) for replay; releases the claim on 5xx or no answer, so that the
/// client's retry runs again.
async fn settle(
    app: &Arc<App>,
    op: Operation,
    token: String,
    opts: idem_host::Options,
    forwarded: Result<(Response, Option<Outcome>), Response>,
) -> Response {
    let (response, outcome) = match forwarded {
        Ok(pair) => pair,
        Err(bad_gateway) => (bad_gateway, None),
    };
    let stored = match outcome.filter(|o| o.status.is_some_and(|s| s < 500)) {
        Some(outcome) => {
            let (owned, held) = (op.clone(), token.clone());
            match app.call("complete", &op, move |g| g.complete(&owned, &held, &outcome, &opts)).await {
                Err(idem_host::Error::Guard(idem_host::GuardError::OutcomeTooLarge(_))) => false,
                Err(e) => {
                    // The upstream did run; its answer is the truth for this client even if it was not stored.
                    tracing::error!(scope = %op.scope, key = %op.key, error = %e, "upstream ran but its outcome was not stored");
                    true
                }
                Ok(_) => true,
            }
        }
        None => false,
    };
    // Nothing to replay (a 5xx, no answer, or a response over the size limit): release, so a retry runs again.
    if !stored {
        let owned = op.clone();
        if let Err(e) = app.call("fail", &op, move |g| g.fail(&owned, &token, &Failure::Retryable, &opts)).await {
            tracing::error!(scope = %op.scope, key = %op.key, error = %e, "could not release the claim");
        }
    }
    response
}

fn spawn_heartbeat(app: Arc<App>, op: Operation, token: String, lease_ms: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis((lease_ms / 3).max(1)));
        every.tick().await;
        loop {
            every.tick().await;
            let (owned, token, opts) = (op.clone(), token.clone(), app.options(Default::default()));
            let renewed =
                app.call("renew", &op, move |g| g.renew(&owned, &token, Duration::from_millis(lease_ms), &opts)).await;
            if let Err(idem_host::Error::Guard(idem_host::GuardError::LeaseLost(_))) = renewed {
                return;
            }
        }
    })
}

fn replay(outcome: Outcome) -> Response {
    let mut builder = Response::builder().status(outcome.status.unwrap_or(200));
    for (name, value) in &outcome.metadata {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(ct) = &outcome.content_type {
        builder = builder.header(header::CONTENT_TYPE, ct.as_str());
    }
    builder = builder.header("idempotent-replayed", "true");
    builder.body(Body::from(outcome.body)).unwrap_or_else(|e| {
        problem(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", format!("stored response unusable: {e}"))
    })
}

/// Sends the request upstream; returns the response for the client and, when it was read whole, its outcome.
async fn forward(
    proxy: &Proxy,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(Response, Option<Outcome>), Response> {
    let uri = format!("{}{}", proxy.config.upstream, path_and_query);
    let mut request = hyper::Request::builder().method(method.clone()).uri(&uri);
    for (name, value) in headers {
        if !hop_by_hop(name) && name != header::HOST {
            request = request.header(name, value);
        }
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| problem(StatusCode::BAD_REQUEST, "Bad Request", format!("cannot forward: {e}")))?;
    let response = proxy
        .client
        .request(request)
        .await
        .map_err(|e| problem(StatusCode::BAD_GATEWAY, "Bad Gateway", format!("upstream unreachable: {e}")))?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| problem(StatusCode::BAD_GATEWAY, "Bad Gateway", format!("upstream response unreadable: {e}")))?
        .to_bytes();
    let mut metadata = Vec::new();
    let mut content_type = None;
    for (name, value) in &parts.headers {
        if hop_by_hop(name) {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        if name == header::CONTENT_TYPE {
            content_type = Some(value.to_string());
        } else {
            metadata.push((name.as_str().to_string(), value.to_string()));
        }
    }
    let outcome = Outcome { body: body.to_vec(), status: Some(parts.status.as_u16()), content_type, metadata };
    let mut response = Response::from_parts(parts, Body::from(body));
    response.headers_mut().remove(header::TRANSFER_ENCODING);
    Ok((response, Some(outcome)))
}
