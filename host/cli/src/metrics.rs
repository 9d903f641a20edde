//! Prometheus metrics: every decision and error by kind and scope, and how long each guard call took.

use std::sync::Mutex;
use std::time::Duration;

use idem_host::{ClaimDecision, Error, GuardError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    scope: String,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    scope: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    call: &'static str,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    decisions: Family<DecisionLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: Family<CallLabels, Histogram>,
}

impl Metrics {
    pub fn new() -> Self {
        let decisions = Family::<DecisionLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let latency = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
        });
        let mut registry = Registry::with_prefix("idem");
        registry.register(
            "decisions",
            "Claim decisions: acquired, takeover (acquired after an expired lease), replayed, in_progress, mismatch, unguarded",
            decisions.clone(),
        );
        registry.register(
            "errors",
            "Refused or failed guard calls by kind: lease_lost, store, invalid_input, corrupt_record, contended, trap",
            errors.clone(),
        );
        registry.register(
            "call_duration_seconds",
            "Duration of guard calls, store round trips included",
            latency.clone(),
        );
        Self { registry: Mutex::new(registry), decisions, errors, latency }
    }

    pub fn decision(&self, scope: &str, decision: &ClaimDecision) {
        let decision = match decision {
            ClaimDecision::Acquired(a) if a.recovered => "takeover",
            ClaimDecision::Acquired(_) => "acquired",
            ClaimDecision::Replay(_) => "replayed",
            ClaimDecision::InProgress(_) => "in_progress",
            ClaimDecision::Mismatch => "mismatch",
            ClaimDecision::Unguarded(_) => "unguarded",
        };
        self.decisions.get_or_create(&DecisionLabels { scope: scope.to_string(), decision }).inc();
    }

    pub fn error(&self, scope: &str, error: &Error) {
        let kind = error_kind(error);
        self.errors.get_or_create(&ErrorLabels { scope: scope.to_string(), kind }).inc();
    }

    pub fn observe(&self, call: &'static str, took: Duration) {
        self.latency.get_or_create(&CallLabels { call }).observe(took.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

pub fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::Guard(GuardError::LeaseLost(_)) => "lease_lost",
        Error::Guard(GuardError::Store(_)) => "store",
        Error::Guard(GuardError::CorruptRecord(_)) => "corrupt_record",
        Error::Guard(GuardError::Contended) => "contended",
        Error::Guard(_) => "invalid_input",
        Error::MemoryLimit(_) => "memory_limit",
        Error::Deadline(_) | Error::Trap(_) | Error::Load(_) => "trap",
    }
}
