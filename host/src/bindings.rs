//! Generated bindings of the guard world, and the host side of its `store` import. Nothing else in the crate
//! touches generated code except through the re-exports in `lib.rs`.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::limits::MemoryCap;
use crate::store::{self, Store};

wasmtime::component::bindgen!({
    world: "guard-component",
    path: "../wit",
    additional_derives: [PartialEq, Eq],
});

use idem::guard::store as wit_store;

/// What each guest instance owns: its store handle, its WASI context (clocks and random only) and its limits.
pub(crate) struct HostState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: MemoryCap,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wit_store::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<wit_store::Entry>, wit_store::StoreError> {
        Ok(self.store.get(&key)?.map(Into::into))
    }

    fn insert_or_get(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: u64,
    ) -> Result<wit_store::InsertResult, wit_store::StoreError> {
        Ok(match self.store.insert_or_get(&key, &value, ttl_ms)? {
            store::InsertResult::Inserted(v) => wit_store::InsertResult::Inserted(v),
            store::InsertResult::Exists(e) => wit_store::InsertResult::Exists(e.into()),
        })
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected_version: u64,
        value: Vec<u8>,
        ttl_ms: u64,
    ) -> Result<wit_store::SwapResult, wit_store::StoreError> {
        Ok(match self.store.compare_and_swap(&key, expected_version, &value, ttl_ms)? {
            store::SwapResult::Swapped(v) => wit_store::SwapResult::Swapped(v),
            store::SwapResult::Conflict(e) => wit_store::SwapResult::Conflict(e.map(Into::into)),
        })
    }

    fn delete_if_version(&mut self, key: String, expected_version: u64) -> Result<bool, wit_store::StoreError> {
        Ok(self.store.delete_if_version(&key, expected_version)?)
    }
}

impl From<store::Entry> for wit_store::Entry {
    fn from(e: store::Entry) -> Self {
        Self { value: e.value, version: e.version }
    }
}

impl From<store::StoreError> for wit_store::StoreError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::Unavailable(m) => Self::Unavailable(m),
            store::StoreError::TooLarge(n) => Self::TooLarge(n),
            store::StoreError::Other(m) => Self::Other(m),
        }
    }
}

impl From<wit_store::StoreError> for store::StoreError {
    fn from(e: wit_store::StoreError) -> Self {
        match e {
            wit_store::StoreError::Unavailable(m) => Self::Unavailable(m),
            wit_store::StoreError::TooLarge(n) => Self::TooLarge(n),
            wit_store::StoreError::Other(m) => Self::Other(m),
        }
    }
}

/// Every option unset: the guard applies its documented defaults.
impl Default for exports::idem::guard::guard::Options {
    fn default() -> Self {
        Self { lease_ms: None, retention_ms: None, max_outcome_bytes: None, on_store_failure: None }
    }
}
