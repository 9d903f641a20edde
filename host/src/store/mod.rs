//! The `idem:guard/store` import as one Rust trait, with the backends that implement it. The contract (above all
//! what must be atomic) is the one documented in `wit/store.wit`; every backend passes the same test suite.

mod memory;
mod pool;
mod redis;
mod sqlite;

pub use memory::MemoryStore;
pub use redis::{RedisOptions, RedisStore};
pub use sqlite::{Durability, SqliteOptions, SqliteStore};

// The data that crosses the store interface is the guest's own vocabulary, shared rather than re-declared.
pub use idem_component::store::{Entry, InsertResult, SwapResult};
pub use idem_component::types::StoreError;

/// The atomic key-value store the guard keeps its records in. See `wit/store.wit` for the full contract:
/// `insert_or_get`, `compare_and_swap` and `delete_if_version` are each atomic against every other call on the
/// same key; versions are never reissued for a key; an expired key is absent to every method.
pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError>;
    fn insert_or_get(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<InsertResult, StoreError>;
    fn compare_and_swap(
        &self,
        key: &str,
        expected_version: u64,
        value: &[u8],
        ttl_ms: u64,
    ) -> Result<SwapResult, StoreError>;
    fn delete_if_version(&self, key: &str, expected_version: u64) -> Result<bool, StoreError>;
}
