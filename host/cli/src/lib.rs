//! What `idem serve` serves, as a library: the JSON API, the Idempotency-Key proxy and their router, so the
//! binary, its tests and the HTTP fuzz target all drive the same code.

pub mod api;
pub mod app;
pub mod config;
pub mod metrics;
pub mod proxy;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};

use crate::app::App;

/// The largest request body the server reads; larger ones get 413 before any guard call.
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// Every route of `idem serve` for this app: the JSON API at the root, or under `/_idem/` when the app proxies
/// (every other path then belongs to the upstream).
pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/v1/claim", post(api::claim))
        .route("/v1/complete", post(api::complete))
        .route("/v1/fail", post(api::fail))
        .route("/v1/renew", post(api::renew))
        .route("/v1/records/{scope}/{*key}", get(api::status).delete(api::forget))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }));
    let mut router = Router::new().nest("/_idem", api.clone());
    router = match app.proxy {
        Some(_) => router.fallback(proxy::handle),
        None => router.merge(api),
    };
    router.layer(DefaultBodyLimit::max(MAX_BODY_BYTES)).with_state(app)
}

async fn metrics(State(app): State<Arc<App>>) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        app.metrics.render(),
    )
}
