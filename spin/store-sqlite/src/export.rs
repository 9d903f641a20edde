//! Binds the operations to the exported WIT interface.

use crate::bindings::exports::idem::guard::store::{
    Entry, Guest, InsertResult, StoreError, SwapResult,
};
use crate::error::AdapterError;
use crate::{db, ops};

struct Adapter;

impl Guest for Adapter {
    fn get(key: String) -> Result<Option<Entry>, StoreError> {
        Ok(db::with(|db| ops::get(db, &key))?)
    }

    fn insert_or_get(key: String, value: Vec<u8>, ttl_ms: u64) -> Result<InsertResult, StoreError> {
        Ok(db::with(|db| ops::insert_or_get(db, &key, value, ttl_ms))?)
    }

    fn compare_and_swap(
        key: String,
        expected_version: u64,
        value: Vec<u8>,
        ttl_ms: u64,
    ) -> Result<SwapResult, StoreError> {
        Ok(db::with(|db| {
            ops::compare_and_swap(db, &key, expected_version, value, ttl_ms)
        })?)
    }

    fn delete_if_version(key: String, expected_version: u64) -> Result<bool, StoreError> {
        Ok(db::with(|db| {
            ops::delete_if_version(db, &key, expected_version)
        })?)
    }
}

impl From<AdapterError> for StoreError {
    fn from(e: AdapterError) -> Self {
        let message = e.to_string();
        match e {
            AdapterError::Unavailable(_)
            | AdapterError::ConnectionLost
            | AdapterError::Contended(_) => StoreError::Unavailable(message),
            AdapterError::NotPermitted(_) | AdapterError::Full | AdapterError::BadRow(_) => {
                StoreError::Other(message)
            }
        }
    }
}

crate::bindings::export!(Adapter with_types_in crate::bindings);
