//! The store the guard needs, as a Rust trait mirroring the `store` WIT interface. The component implements it
//! over the imported functions; tests implement it in memory, with faults where they want them.

use crate::types::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertResult {
    Inserted(u64),
    Exists(Entry),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapResult {
    Swapped(u64),
    Conflict(Option<Entry>),
}

/// See `wit/store.wit` for the contract, above all what must be atomic.
pub trait Store {
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

/// Where the guard reads the time and fresh random bits.
pub trait Environment {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    fn random_u64(&self) -> u64;
}
