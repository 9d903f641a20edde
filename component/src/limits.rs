//! Input limits and defaults. Every value that reaches the store passes through here first, so a bad input is
//! refused with a typed error before anything is read or written.

use crate::types::{GuardError, Operation, Options, Outcome, StoreFailurePolicy};

pub const MAX_SCOPE_CHARS: usize = 64;
pub const MAX_KEY_BYTES: usize = 1024;

pub const DEFAULT_LEASE_MS: u64 = 30_000;
pub const DEFAULT_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;
pub const DEFAULT_MAX_OUTCOME_BYTES: u32 = 1024 * 1024;

pub const MAX_LEASE_MS: u64 = 7 * 24 * 60 * 60 * 1000;
pub const MAX_RETENTION_MS: u64 = 366 * 24 * 60 * 60 * 1000;
pub const MAX_OUTCOME_BYTES_LIMIT: u32 = 16 * 1024 * 1024;

/// Options with every default filled in and every range checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub lease_ms: u64,
    pub retention_ms: u64,
    pub max_outcome_bytes: u32,
    pub on_store_failure: StoreFailurePolicy,
}

impl Settings {
    pub fn resolve(opts: &Options) -> Result<Self, GuardError> {
        let lease_ms = opts.lease_ms.unwrap_or(DEFAULT_LEASE_MS);
        check_duration("lease-ms", lease_ms, MAX_LEASE_MS)?;
        let retention_ms = opts.retention_ms.unwrap_or(DEFAULT_RETENTION_MS);
        check_duration("retention-ms", retention_ms, MAX_RETENTION_MS)?;
        let max_outcome_bytes = opts.max_outcome_bytes.unwrap_or(DEFAULT_MAX_OUTCOME_BYTES);
        if max_outcome_bytes > MAX_OUTCOME_BYTES_LIMIT {
            return Err(GuardError::InvalidOptions(format!(
                "max-outcome-bytes is {max_outcome_bytes}, above the limit of {MAX_OUTCOME_BYTES_LIMIT}"
            )));
        }
        Ok(Self {
            lease_ms,
            retention_ms,
            max_outcome_bytes,
            on_store_failure: opts.on_store_failure.unwrap_or_default(),
        })
    }

    pub fn check_outcome(&self, outcome: &Outcome) -> Result<(), GuardError> {
        let size = outcome.counted_bytes();
        let limit = u64::from(self.max_outcome_bytes);
        if size > limit {
            return Err(GuardError::OutcomeTooLarge { size, limit });
        }
        Ok(())
    }
}

/// A lease or renewal length: 1 ms to 7 days.
pub fn check_lease_extension(ms: u64) -> Result<(), GuardError> {
    check_duration("extend-by-ms", ms, MAX_LEASE_MS)
}

fn check_duration(name: &str, ms: u64, max: u64) -> Result<(), GuardError> {
    if ms == 0 || ms > max {
        return Err(GuardError::InvalidOptions(format!("{name} is {ms}, must be between 1 and {max}")));
    }
    Ok(())
}

/// Checks an operation's identity and returns the store key it lives under. The scope cannot contain `/`, so
/// `SCOPE/KEY` is unambiguous and no key can reach into another scope's records.
pub fn store_key(op: &Operation) -> Result<String, GuardError> {
    let scope = &op.scope;
    if scope.is_empty() {
        return Err(GuardError::InvalidScope("scope is empty".into()));
    }
    if scope.chars().count() > MAX_SCOPE_CHARS {
        return Err(GuardError::InvalidScope(format!("scope is longer than {MAX_SCOPE_CHARS} characters")));
    }
    if let Some(c) = scope.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(GuardError::InvalidScope(format!(
            "scope has the character {c:?}; allowed are a-z, A-Z, 0-9, '_', '-' and '.'"
        )));
    }
    let key = &op.key;
    if key.is_empty() {
        return Err(GuardError::InvalidKey("key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(GuardError::InvalidKey(format!("key is {} bytes, longer than {MAX_KEY_BYTES}", key.len())));
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(GuardError::InvalidKey(format!("key has the control character {c:?}")));
    }
    Ok(format!("{scope}/{key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(scope: &str, key: &str) -> GuardError {
        store_key(&Operation::new(scope, key)).unwrap_err()
    }

    #[test]
    fn store_key_joins_scope_and_key() {
        assert_eq!(store_key(&Operation::new("payments", "a/b")).unwrap(), "payments/a/b");
    }

    #[test]
    fn bad_scopes_are_refused() {
        assert!(matches!(err("", "k"), GuardError::InvalidScope(_)));
        assert!(matches!(err("pay/ments", "k"), GuardError::InvalidScope(_)));
        assert!(matches!(err("pay ments", "k"), GuardError::InvalidScope(_)));
        assert!(matches!(err("zahlungsverkehr-ä", "k"), GuardError::InvalidScope(_)));
        assert!(matches!(err(&"s".repeat(65), "k"), GuardError::InvalidScope(_)));
        assert!(store_key(&Operation::new("s".repeat(64), "k")).is_ok());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(err("s", ""), GuardError::InvalidKey(_)));
        assert!(matches!(err("s", &"k".repeat(1025)), GuardError::InvalidKey(_)));
        assert!(matches!(err("s", "a\0b"), GuardError::InvalidKey(_)));
        assert!(matches!(err("s", "a\nb"), GuardError::InvalidKey(_)));
        assert!(store_key(&Operation::new("s", "k".repeat(1024))).is_ok());
    }

    #[test]
    fn options_out_of_range_are_refused() {
        let bad = [
            Options { lease_ms: Some(0), ..Default::default() },
            Options { lease_ms: Some(MAX_LEASE_MS + 1), ..Default::default() },
            Options { retention_ms: Some(0), ..Default::default() },
            Options { max_outcome_bytes: Some(MAX_OUTCOME_BYTES_LIMIT + 1), ..Default::default() },
        ];
        for opts in bad {
            assert!(matches!(Settings::resolve(&opts), Err(GuardError::InvalidOptions(_))), "{opts:?}");
        }
        let s = Settings::resolve(&Options::default()).unwrap();
        assert_eq!((s.lease_ms, s.retention_ms, s.max_outcome_bytes), (30_000, 86_400_000, 1 << 20));
        assert_eq!(s.on_store_failure, StoreFailurePolicy::FailClosed);
    }

    #[test]
    fn outcome_limit_counts_body_type_and_metadata() {
        let s = Settings::resolve(&Options { max_outcome_bytes: Some(10), ..Default::default() }).unwrap();
        let fits = Outcome {
            body: vec![0; 4],
            content_type: Some("ab".into()),
            metadata: vec![("c".into(), "def".into())],
            status: None,
        };
        assert_eq!(fits.counted_bytes(), 10);
        assert!(s.check_outcome(&fits).is_ok());
        let over = Outcome { body: vec![0; 5], ..fits };
        assert_eq!(s.check_outcome(&over), Err(GuardError::OutcomeTooLarge { size: 11, limit: 10 }));
    }
}
