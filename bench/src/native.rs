//! The guard logic compiled natively: `idem_component::guard::Guard` over any of the host's stores, through an
//! adapter that only converts between the two crates' identical store types.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use idem_component::store as cs;
use idem_component::types::StoreError as CError;
use idem_host::store as hs;

pub type NativeGuard = idem_component::guard::Guard<HostStore, NativeEnv>;

pub fn guard(store: Arc<dyn hs::Store>) -> NativeGuard {
    idem_component::guard::Guard::new(HostStore(store), NativeEnv::default())
}

/// A host store seen through the component's `Store` trait.
pub struct HostStore(pub Arc<dyn hs::Store>);

fn err(e: hs::StoreError) -> CError {
    match e {
        hs::StoreError::Unavailable(m) => CError::Unavailable(m),
        hs::StoreError::TooLarge(n) => CError::TooLarge(n),
        hs::StoreError::Other(m) => CError::Other(m),
    }
}

fn entry(e: hs::Entry) -> cs::Entry {
    cs::Entry { value: e.value, version: e.version }
}

impl cs::Store for HostStore {
    fn get(&self, key: &str) -> Result<Option<cs::Entry>, CError> {
        self.0.get(key).map(|e| e.map(entry)).map_err(err)
    }

    fn insert_or_get(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<cs::InsertResult, CError> {
        Ok(match self.0.insert_or_get(key, value, ttl_ms).map_err(err)? {
            hs::InsertResult::Inserted(v) => cs::InsertResult::Inserted(v),
            hs::InsertResult::Exists(e) => cs::InsertResult::Exists(entry(e)),
        })
    }

    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8], ttl_ms: u64) -> Result<cs::SwapResult, CError> {
        Ok(match self.0.compare_and_swap(key, expected, value, ttl_ms).map_err(err)? {
            hs::SwapResult::Swapped(v) => cs::SwapResult::Swapped(v),
            hs::SwapResult::Conflict(e) => cs::SwapResult::Conflict(e.map(entry)),
        })
    }

    fn delete_if_version(&self, key: &str, expected: u64) -> Result<bool, CError> {
        self.0.delete_if_version(key, expected).map_err(err)
    }
}

/// The system clock and a splitmix64 sequence seeded from the process's random hasher state.
pub struct NativeEnv {
    random: AtomicU64,
}

impl Default for NativeEnv {
    fn default() -> Self {
        use std::hash::{BuildHasher, RandomState};
        Self { random: AtomicU64::new(RandomState::new().hash_one(0u8)) }
    }
}

impl cs::Environment for NativeEnv {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    fn random_u64(&self) -> u64 {
        let mut z = self.random.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
