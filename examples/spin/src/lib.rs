//! A Spin app whose `POST /work-orders/{id}/release` runs once per Idempotency-Key, however often a client
//! retries it, guarded by idem through a Spin component dependency.
//!
//! Routes:
//! - `POST /work-orders/{id}/release` with an `Idempotency-Key` header: releases the work order (the side
//!   effect: one row in `work_order_releases`) and stores the response, which every retry gets replayed.
//! - `GET /work-orders/{id}/releases`: how many times the side effect ran for the work order.
//! - `/_test/...`: only when the `test_hooks` variable is `true` (see `testing.rs`).

mod effects;
mod guard;
mod idempotency;
mod release;
mod reply;
mod testing;

use http::Method;
use spin_sdk::http::{IntoResponse, Request};

use reply::Reply;

#[spin_sdk::http_service]
async fn handle(req: Request) -> impl IntoResponse {
    route(req).await.into_http()
}

async fn route(req: Request) -> Reply {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (&Method::POST, ["work-orders", id, "release"]) => release::release(id, req).await,
        (&Method::GET, ["work-orders", id, "releases"]) => release::count(id).await,
        (_, ["_test", rest @ ..]) => testing::route(req.method(), rest).await,
        (_, ["work-orders", _, "release" | "releases"]) => Reply::error(405, "method not allowed"),
        _ => Reply::error(404, "no such route"),
    }
}
