//! An in-process store: for tests and single-process use. Nothing survives the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Entry, InsertResult, Store, StoreError, SwapResult};
use crate::clock::{Clock, SystemClock};

/// Sharded by key so that racing callers on different keys rarely wait on each other; each shard's mutex makes
/// every operation on a key one atomic step.
pub struct MemoryStore {
    clock: Arc<dyn Clock>,
    shards: Box<[Mutex<HashMap<String, Slot>>]>,
    // One counter for the whole store: a version is never reissued, also after a key is deleted and rewritten.
    next_version: AtomicU64,
}

struct Slot {
    entry: Entry,
    expires_at: u64,
}

const SHARDS: usize = 32;

impl MemoryStore {
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// Expiry follows `clock`; give it the same clock as the guard so a simulated clock moves both.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self { clock, shards: (0..SHARDS).map(|_| Mutex::default()).collect(), next_version: AtomicU64::new(1) }
    }

    /// Number of live entries (expired ones are dropped as they are found).
    pub fn len(&self) -> usize {
        let now = self.clock.now_ms();
        self.shards.iter().map(|s| lock(s).values().filter(|slot| slot.expires_at > now).count()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, Slot>> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(key) as usize;
        lock(&self.shards[h % SHARDS])
    }

    fn write(&self, map: &mut HashMap<String, Slot>, key: &str, value: &[u8], ttl_ms: u64) -> u64 {
        let version = self.next_version.fetch_add(1, Ordering::Relaxed);
        let expires_at = self.clock.now_ms().saturating_add(ttl_ms);
        map.insert(key.to_owned(), Slot { entry: Entry { value: value.to_vec(), version }, expires_at });
        version
    }

    fn live<'m>(&self, map: &'m mut HashMap<String, Slot>, key: &str) -> Option<&'m Entry> {
        if map.get(key).is_some_and(|slot| slot.expires_at <= self.clock.now_ms()) {
            map.remove(key);
        }
        map.get(key).map(|slot| &slot.entry)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// A poisoned shard only means another thread panicked between statements that each leave the map whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self.live(&mut self.shard(key), key).cloned())
    }

    fn insert_or_get(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<InsertResult, StoreError> {
        let mut map = self.shard(key);
        if let Some(existing) = self.live(&mut map, key) {
            return Ok(InsertResult::Exists(existing.clone()));
        }
        Ok(InsertResult::Inserted(self.write(&mut map, key, value, ttl_ms)))
    }

    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8], ttl_ms: u64) -> Result<SwapResult, StoreError> {
        let mut map = self.shard(key);
        match self.live(&mut map, key) {
            Some(current) if current.version == expected => {}
            other => return Ok(SwapResult::Conflict(other.cloned())),
        }
        Ok(SwapResult::Swapped(self.write(&mut map, key, value, ttl_ms)))
    }

    fn delete_if_version(&self, key: &str, expected: u64) -> Result<bool, StoreError> {
        let mut map = self.shard(key);
        match self.live(&mut map, key) {
            Some(current) if current.version == expected => Ok(map.remove(key).is_some()),
            _ => Ok(false),
        }
    }
}
