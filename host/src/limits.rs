//! What one guest instance may take from the host: linear memory up to a cap, and a handful of instances and
//! tables. Unlike wasmtime's `StoreLimits`, the cap remembers being hit, so the caller learns that the memory cap
//! stopped the guest rather than an anonymous trap.

use wasmtime::ResourceLimiter;

pub(crate) struct MemoryCap {
    limit: usize,
    hit: bool,
}

impl MemoryCap {
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit, hit: false }
    }

    /// Whether the guest asked for more memory than the cap and was refused.
    pub(crate) fn hit(&self) -> bool {
        self.hit
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // The guard's tables hold a few dozen function references; anything near this is a runaway guest.
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        8
    }

    fn tables(&self) -> usize {
        8
    }

    fn memories(&self) -> usize {
        2
    }
}
