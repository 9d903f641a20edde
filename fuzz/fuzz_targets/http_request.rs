//! `idem serve`'s front end with hostile requests: the very router the binary serves (JSON API, or the
//! Idempotency-Key proxy in front of a small upstream on loopback), over an in-memory store, driven in process.
//! A few requests per input share one server, and `TOKEN` in a body stands for the last lease token handed out,
//! so complete / fail / renew reach a live lease. Nothing panics, and no request earns a 5xx other than the
//! proxy's 502 when its upstream answers badly: a bad request is the client's fault and is answered as such.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode};
use idem_cli::app::App;
use idem_cli::config::ProxyConfig;
use idem_host::store::MemoryStore;
use idem_host::{Guard, Options};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Debug, Arbitrary)]
struct Input {
    proxy: bool,
    requests: Vec<Req>,
}

#[derive(Debug, Arbitrary)]
struct Req {
    method: u8,
    path: PathChoice,
    headers: Vec<(HeaderName, String)>,
    body: BodyChoice,
}

#[derive(Debug, Arbitrary)]
enum PathChoice {
    Claim,
    Complete,
    Fail,
    Renew,
    Record(String, String),
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum HeaderName {
    IdempotencyKey,
    ContentType,
    ContentLength,
    Other(String),
}

/// JSON shaped like the API's requests, with every field free to be missing, mistyped or absurd.
#[derive(Debug, Arbitrary)]
enum BodyChoice {
    Raw(Vec<u8>),
    Fields(Vec<(FieldName, FieldValue)>),
}

#[derive(Debug, Arbitrary)]
enum FieldName {
    Scope,
    Key,
    Payload,
    PayloadBase64,
    Json,
    Exclude,
    Fingerprint,
    Token,
    Outcome,
    Retryable,
    ExtendByMs,
    LeaseMs,
    RetentionMs,
    MaxOutcomeBytes,
    OnStoreFailure,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum FieldValue {
    Str(String),
    Token,
    Int(i64),
    Big(u64),
    Float(f64),
    Bool(bool),
    Null,
    Strings(Vec<String>),
    Outcome { body: Option<String>, body_base64: Option<String>, status: Option<i64>, content_type: Option<String> },
    Document(String),
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap())
}

/// An upstream on loopback that answers with a status chosen by the request body's first byte, echoing the body.
fn upstream() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
                    let status = match body.first() {
                        Some(b'5') => StatusCode::SERVICE_UNAVAILABLE,
                        Some(b'4') => StatusCode::CONFLICT,
                        _ => StatusCode::CREATED,
                    };
                    (status, [("x-upstream", "1")], body)
                });
                axum::serve(listener, app).await.unwrap();
            });
        });
        url
    })
}

fn method(m: u8) -> Method {
    match m % 6 {
        0 => Method::GET,
        1 | 2 => Method::POST,
        3 => Method::DELETE,
        4 => Method::PATCH,
        _ => Method::PUT,
    }
}

fn value(v: &FieldValue, token: &str) -> Value {
    match v {
        FieldValue::Str(s) => json!(s),
        FieldValue::Token => json!(token),
        FieldValue::Int(i) => json!(i),
        FieldValue::Big(u) => json!(u),
        FieldValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        FieldValue::Bool(b) => json!(b),
        FieldValue::Null => Value::Null,
        FieldValue::Strings(v) => json!(v),
        FieldValue::Outcome { body, body_base64, status, content_type } => {
            json!({"body": body, "body_base64": body_base64, "status": status, "content_type": content_type})
        }
        // Raw JSON text where it parses (the `json` field keeps documents as written), else a string.
        FieldValue::Document(text) => serde_json::from_str(text).unwrap_or_else(|_| json!(text)),
    }
}

fn body(b: &BodyChoice, token: &str) -> Vec<u8> {
    match b {
        BodyChoice::Raw(bytes) => bytes.clone(),
        BodyChoice::Fields(fields) => {
            let mut object = serde_json::Map::new();
            for (name, v) in fields {
                let name = match name {
                    FieldName::Scope => "scope",
                    FieldName::Key => "key",
                    FieldName::Payload => "payload",
                    FieldName::PayloadBase64 => "payload_base64",
                    FieldName::Json => "json",
                    FieldName::Exclude => "exclude",
                    FieldName::Fingerprint => "fingerprint",
                    FieldName::Token => "token",
                    FieldName::Outcome => "outcome",
                    FieldName::Retryable => "retryable",
                    FieldName::ExtendByMs => "extend_by_ms",
                    FieldName::LeaseMs => "lease_ms",
                    FieldName::RetentionMs => "retention_ms",
                    FieldName::MaxOutcomeBytes => "max_outcome_bytes",
                    FieldName::OnStoreFailure => "on_store_failure",
                    FieldName::Other(s) => s,
                };
                object.insert(name.to_string(), value(v, token));
            }
            serde_json::to_vec(&object).unwrap()
        }
    }
}

fuzz_target!(|input: Input| {
    let proxy = input.proxy.then(|| ProxyConfig {
        upstream: upstream().to_string(),
        scope: "http".into(),
        methods: vec!["POST".into(), "PATCH".into()],
        paths: vec![],
        require_key: true,
    });
    let guard = Guard::builder().store(MemoryStore::new()).build().unwrap();
    let app = App::new(guard, Options::default(), proxy);
    let router = idem_cli::router(app);
    let prefix = if input.proxy { "/_idem" } else { "" };
    let mut token = String::from("1.0000000000000000");

    runtime().block_on(async {
        for req in input.requests.iter().take(4) {
            let uri = match &req.path {
                PathChoice::Claim => format!("{prefix}/v1/claim"),
                PathChoice::Complete => format!("{prefix}/v1/complete"),
                PathChoice::Fail => format!("{prefix}/v1/fail"),
                PathChoice::Renew => format!("{prefix}/v1/renew"),
                PathChoice::Record(scope, key) => format!("{prefix}/v1/records/{scope}/{key}"),
                PathChoice::Other(path) => path.clone(),
            };
            let mut builder = Request::builder().method(method(req.method)).uri(uri.as_str());
            builder = builder.header("content-type", "application/json");
            for (name, value) in req.headers.iter().take(8) {
                let name = match name {
                    HeaderName::IdempotencyKey => "idempotency-key",
                    HeaderName::ContentType => "content-type",
                    HeaderName::ContentLength => "content-length",
                    HeaderName::Other(s) => s,
                };
                builder = builder.header(name, value.as_str());
            }
            // An unrepresentable URI or header is refused by the client side before any server sees it.
            let Ok(request) = builder.body(Body::from(body(&req.body, &token))) else { continue };
            let response = router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
            let bad_gateway = input.proxy && status == StatusCode::BAD_GATEWAY;
            let upstream_said = input.proxy && status == StatusCode::SERVICE_UNAVAILABLE && bytes.first() == Some(&b'5');
            assert!(
                !status.is_server_error() || bad_gateway || upstream_said,
                "{uri} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                if let Some(t) = v["lease"]["token"].as_str() {
                    token = t.to_string();
                }
            }
        }
    });
});
