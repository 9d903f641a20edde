//! A store and an environment for native tests: an in-memory store whose TTLs run on a simulated clock shared
//! with the guard, and a switch that makes every store call fail.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::store::{Entry, Environment, InsertResult, Store, SwapResult};
use crate::types::StoreError;

#[derive(Default)]
pub struct SimClock {
    now: AtomicU64,
    random: AtomicU64,
}

impl SimClock {
    pub fn at(ms: u64) -> Self {
        Self { now: AtomicU64::new(ms), random: AtomicU64::new(0x9e37_79b9_7f4a_7c15) }
    }
    pub fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Environment for &SimClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    fn random_u64(&self) -> u64 {
        // splitmix64: distinct values on every call, reproducible across runs.
        let mut z = self.random.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::SeqCst);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

pub struct MemStore<'c> {
    clock: &'c SimClock,
    entries: Mutex<HashMap<String, (Entry, u64)>>,
    next_version: AtomicU64,
    pub down: AtomicBool,
}

impl<'c> MemStore<'c> {
    pub fn new(clock: &'c SimClock) -> Self {
        Self { clock, entries: Mutex::default(), next_version: AtomicU64::new(1), down: AtomicBool::new(false) }
    }

    /// Writes raw bytes, as a foreign writer or a corrupted disk would.
    pub fn put_raw(&self, key: &str, value: &[u8]) {
        let version = self.next_version.fetch_add(1, Ordering::SeqCst);
        self.entries.lock().unwrap().insert(key.into(), (Entry { value: value.to_vec(), version }, u64::MAX));
    }

    pub fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.live(&mut self.entries.lock().unwrap(), key).map(|e| e.value)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) { Err(StoreError::Unavailable("store is down".into())) } else { Ok(()) }
    }

    fn live(&self, map: &mut HashMap<String, (Entry, u64)>, key: &str) -> Option<Entry> {
        let now = (&*self.clock).now_ms();
        match map.get(key) {
            Some((_, expires)) if *expires <= now => {
                map.remove(key);
                None
            }
            other => other.map(|(e, _)| e.clone()),
        }
    }

    fn write(&self, map: &mut HashMap<String, (Entry, u64)>, key: &str, value: &[u8], ttl_ms: u64) -> u64 {
        let version = self.next_version.fetch_add(1, Ordering::SeqCst);
        let expires = (&*self.clock).now_ms().saturating_add(ttl_ms);
        map.insert(key.into(), (Entry { value: value.to_vec(), version }, expires));
        version
    }
}

impl Store for MemStore<'_> {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.check()?;
        Ok(self.live(&mut self.entries.lock().unwrap(), key))
    }

    fn insert_or_get(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<InsertResult, StoreError> {
        self.check()?;
        let mut map = self.entries.lock().unwrap();
        Ok(match self.live(&mut map, key) {
            Some(e) => InsertResult::Exists(e),
            None => InsertResult::Inserted(self.write(&mut map, key, value, ttl_ms)),
        })
    }

    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8], ttl_ms: u64) -> Result<SwapResult, StoreError> {
        self.check()?;
        let mut map = self.entries.lock().unwrap();
        Ok(match self.live(&mut map, key) {
            Some(e) if e.version == expected => SwapResult::Swapped(self.write(&mut map, key, value, ttl_ms)),
            other => SwapResult::Conflict(other),
        })
    }

    fn delete_if_version(&self, key: &str, expected: u64) -> Result<bool, StoreError> {
        self.check()?;
        let mut map = self.entries.lock().unwrap();
        Ok(match self.live(&mut map, key) {
            Some(e) if e.version == expected => map.remove(key).is_some(),
            _ => false,
        })
    }
}
