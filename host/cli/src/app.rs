//! Shared server state, and the one path every guard call takes: onto the blocking pool (the guard and its
//! stores block), timed, counted and logged.

use std::sync::Arc;
use std::time::Instant;

use idem_host::{ClaimDecision, Error, FingerprintInput, Guard, Operation, Options};

use crate::config::ProxyConfig;
use crate::metrics::Metrics;

pub struct App {
    pub guard: Guard,
    pub metrics: Metrics,
    pub defaults: Options,
    pub proxy: Option<crate::proxy::Proxy>,
}

impl App {
    pub fn new(guard: Guard, defaults: Options, proxy: Option<ProxyConfig>) -> Arc<Self> {
        Arc::new(Self { guard, metrics: Metrics::new(), defaults, proxy: proxy.map(crate::proxy::Proxy::new) })
    }

    /// Per-call options over the server's defaults, field by field.
    pub fn options(&self, given: Options) -> Options {
        Options {
            lease_ms: given.lease_ms.or(self.defaults.lease_ms),
            retention_ms: given.retention_ms.or(self.defaults.retention_ms),
            max_outcome_bytes: given.max_outcome_bytes.or(self.defaults.max_outcome_bytes),
            on_store_failure: given.on_store_failure.or(self.defaults.on_store_failure),
        }
    }

    pub async fn call<R: Send + 'static>(
        self: &Arc<Self>,
        name: &'static str,
        op: &Operation,
        f: impl FnOnce(&Guard) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        let app = self.clone();
        let started = Instant::now();
        let result = match tokio::task::spawn_blocking(move || f(&app.guard)).await {
            Ok(result) => result,
            // A panic here is a host bug; surface it as the panic it is.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        self.metrics.observe(name, started.elapsed());
        if let Err(e) = &result {
            self.metrics.error(&op.scope, e);
            tracing::warn!(call = name, scope = %op.scope, key = %op.key, error = %e, "refused");
        }
        result
    }

    pub async fn claim(
        self: &Arc<Self>,
        op: &Operation,
        fingerprint: FingerprintInput,
        opts: Options,
    ) -> Result<ClaimDecision, Error> {
        let owned = op.clone();
        let decision = self.call("claim", op, move |g| g.claim(&owned, &fingerprint, &opts)).await?;
        self.metrics.decision(&op.scope, &decision);
        log_decision(op, &decision);
        Ok(decision)
    }
}

/// One line per decision, so an operator can explain why an action ran, replayed or was refused.
fn log_decision(op: &Operation, d: &ClaimDecision) {
    let (scope, key) = (&op.scope, &op.key);
    match d {
        ClaimDecision::Acquired(a) => tracing::info!(
            %scope, %key, decision = if a.recovered { "takeover" } else { "acquired" },
            fencing_token = a.lease.fencing_token, attempt = a.lease.attempt, "claim"
        ),
        ClaimDecision::InProgress(p) => {
            tracing::info!(%scope, %key, decision = "in_progress", attempt = p.attempt, retry_after_ms = p.retry_after_ms, "claim")
        }
        ClaimDecision::Replay(r) => {
            tracing::info!(%scope, %key, decision = "replayed", kind = ?r.kind, attempts = r.attempts, "claim")
        }
        ClaimDecision::Mismatch => {
            tracing::info!(%scope, %key, decision = "mismatch", "claim: payload differs from the first use of this key")
        }
        ClaimDecision::Unguarded(e) => {
            tracing::warn!(%scope, %key, decision = "unguarded", error = ?e, "claim: store failed, running unguarded (fail-open)")
        }
    }
}
