//! The guarded business operation: releasing a work order.

use spin_sdk::http::Request;
use spin_sdk::http::body::IncomingBodyExt;

use crate::guard::{Operation, Options};
use crate::idempotency::{self, Claimed};
use crate::reply::Reply;
use crate::{effects, testing};

/// Keys of different work orders never meet: the key the guard sees is `{work order}/{Idempotency-Key}`.
const SCOPE: &str = "work-order-release";

/// Larger bodies are refused before anything is claimed.
const MAX_BODY: usize = 64 * 1024;

pub async fn release(work_order: &str, req: Request) -> Reply {
    let key = match idempotency::key(req.headers()) {
        Ok(key) => key,
        Err(reply) => return reply,
    };
    let hooks = testing::Hooks::from_request(req.headers()).await;
    let body = match req.into_body().bytes().await {
        Ok(body) if body.len() <= MAX_BODY => body,
        Ok(_) => return Reply::error(413, "request body too large"),
        Err(_) => return Reply::error(400, "could not read the request body"),
    };

    let op = Operation {
        scope: SCOPE.into(),
        key: format!("{work_order}/{key}"),
    };
    let opts = || Options {
        lease_ms: hooks.lease_ms,
        retention_ms: None,
        max_outcome_bytes: None,
        on_store_failure: None,
    };
    let acquired = match idempotency::claim(&op, &idempotency::fingerprint(&body), opts()) {
        Claimed::Run(acquired) => acquired,
        Claimed::Answer(reply) => return reply,
    };
    if hooks.abandon {
        // A worker that dies holding the lease: nothing runs, nothing is stored, the lease must expire.
        return Reply::error(500, "abandoned holding the lease (test hook)");
    }
    hooks.delay().await;

    let lease = &acquired.lease;
    match effects::release(work_order, &key, lease.fencing_token, lease.attempt).await {
        Ok(release_id) => {
            let reply = Reply::json(
                200,
                &serde_json::json!({
                    "work_order": work_order,
                    "status": "released",
                    "release_id": release_id,
                    "fencing_token": lease.fencing_token,
                    "attempt": lease.attempt,
                    "recovered": acquired.recovered,
                }),
            )
            .with_header("location", format!("/work-orders/{work_order}/releases"));
            idempotency::finish(&op, &acquired, reply, opts())
        }
        Err(e) => {
            idempotency::release_for_retry(&op, &acquired, opts());
            Reply::error(503, &format!("could not release the work order: {e}"))
                .with_header("retry-after", "1")
        }
    }
}

pub async fn count(work_order: &str) -> Reply {
    match effects::releases(work_order).await {
        Ok(rows) => Reply::json(
            200,
            &serde_json::json!({
                "work_order": work_order,
                "releases": rows.len(),
                "fencing_tokens": rows.iter().map(|(_, token)| token).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => Reply::error(503, &format!("could not read releases: {e}")),
    }
}
