//! Hooks for the integration tests, active only when the app's `test_hooks` variable is `true`
//! (`SPIN_VARIABLE_TEST_HOOKS=true spin up ...`). Off, the headers are ignored and the routes are 404.
//!
//! - `x-test-lease-ms: N` claims with an N ms lease, so a test can watch one expire.
//! - `x-test-abandon: true` claims and then returns without completing: a worker that died.
//! - `x-test-delay-ms: N` holds the lease N ms before the side effect, so racing duplicates see it in progress.
//! - `POST /_test/claim/{key}`: a bare claim (60 s lease, never completed) answering `acquired`,
//!   `in-progress`, ... so a test can race many claims of one fresh key and count the winners.

use std::time::Duration;

use http::{HeaderMap, Method};

use crate::guard::{self, ClaimDecision, FingerprintInput, Operation, Options};
use crate::reply::Reply;

const MAX_DELAY_MS: u64 = 10_000;

async fn enabled() -> bool {
    matches!(
        spin_sdk::variables::get("test_hooks").await.as_deref(),
        Ok("true")
    )
}

#[derive(Default)]
pub struct Hooks {
    pub lease_ms: Option<u64>,
    pub abandon: bool,
    delay_ms: u64,
}

impl Hooks {
    pub async fn from_request(headers: &HeaderMap) -> Self {
        let number = |name: &str| headers.get(name)?.to_str().ok()?.parse::<u64>().ok();
        if !headers
            .keys()
            .any(|name| name.as_str().starts_with("x-test-"))
            || !enabled().await
        {
            return Self::default();
        }
        Self {
            lease_ms: number("x-test-lease-ms"),
            abandon: headers.get("x-test-abandon").is_some_and(|v| v == "true"),
            delay_ms: number("x-test-delay-ms").unwrap_or(0).min(MAX_DELAY_MS),
        }
    }

    pub async fn delay(&self) {
        if self.delay_ms > 0 {
            spin_sdk::time::sleep(Duration::from_millis(self.delay_ms)).await;
        }
    }
}

pub async fn route(method: &Method, rest: &[&str]) -> Reply {
    if !enabled().await {
        return Reply::error(404, "no such route");
    }
    match (method, rest) {
        (&Method::POST, ["claim", key]) => claim(key),
        _ => Reply::error(404, "no such test route"),
    }
}

fn claim(key: &str) -> Reply {
    let op = Operation {
        scope: "test-claim-race".into(),
        key: (*key).to_owned(),
    };
    let opts = Options {
        lease_ms: Some(60_000),
        retention_ms: Some(600_000),
        max_outcome_bytes: None,
        on_store_failure: None,
    };
    match guard::claim(&op, &FingerprintInput::Raw(Vec::new()), opts) {
        Ok(ClaimDecision::Acquired(a)) => {
            Reply::text(200, format!("acquired {}", a.lease.fencing_token))
        }
        Ok(ClaimDecision::InProgress(_)) => Reply::text(200, "in-progress"),
        Ok(ClaimDecision::Replay(_)) => Reply::text(200, "replay"),
        Ok(ClaimDecision::Mismatch) => Reply::text(200, "mismatch"),
        Ok(ClaimDecision::Unguarded(e)) => Reply::text(503, format!("unguarded {e:?}")),
        Err(e) => Reply::text(503, format!("error {e:?}")),
    }
}
