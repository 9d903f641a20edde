//! The guard's entry points with hostile input, natively (the same state machine the component runs): scope,
//! key, token, fingerprint input and options from the fuzzer. Nothing panics; a refused input changes nothing;
//! an accepted claim can be completed and is then replayed byte for byte.
#![no_main]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use idem_component::guard::Guard;
use idem_component::store::{Entry, Environment, InsertResult, Store, SwapResult};
use idem_component::types::{ClaimDecision, FingerprintInput, Operation, Options, Outcome, StoreError};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Mem {
    map: RefCell<HashMap<String, Entry>>,
    next: Cell<u64>,
}

impl Mem {
    fn version(&self) -> u64 {
        self.next.set(self.next.get() + 1);
        self.next.get()
    }
}

impl Store for Mem {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self.map.borrow().get(key).cloned())
    }
    fn insert_or_get(&self, key: &str, value: &[u8], _: u64) -> Result<InsertResult, StoreError> {
        if let Some(e) = self.map.borrow().get(key) {
            return Ok(InsertResult::Exists(e.clone()));
        }
        let version = self.version();
        self.map.borrow_mut().insert(key.into(), Entry { value: value.to_vec(), version });
        Ok(InsertResult::Inserted(version))
    }
    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8], _: u64) -> Result<SwapResult, StoreError> {
        let current = self.map.borrow().get(key).cloned();
        match current {
            Some(e) if e.version == expected => {
                let version = self.version();
                self.map.borrow_mut().insert(key.into(), Entry { value: value.to_vec(), version });
                Ok(SwapResult::Swapped(version))
            }
            other => Ok(SwapResult::Conflict(other)),
        }
    }
    fn delete_if_version(&self, key: &str, expected: u64) -> Result<bool, StoreError> {
        let hit = self.map.borrow().get(key).is_some_and(|e| e.version == expected);
        if hit {
            self.map.borrow_mut().remove(key);
        }
        Ok(hit)
    }
}

struct Env(Cell<u64>);

impl Environment for Env {
    fn now_ms(&self) -> u64 {
        self.0.set(self.0.get() + 1);
        1_700_000_000_000 + self.0.get()
    }
    fn random_u64(&self) -> u64 {
        self.0.get().wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

fn field<'a>(parts: &mut impl Iterator<Item = &'a [u8]>) -> String {
    String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut parts = rest.split(|b| *b == 0xff);
    let op = Operation { scope: field(&mut parts), key: field(&mut parts) };
    let token = field(&mut parts);
    let body = parts.next().unwrap_or_default().to_vec();
    let input = match mode % 3 {
        0 => FingerprintInput::Raw(body.clone()),
        1 => FingerprintInput::Precomputed(body.clone()),
        _ => FingerprintInput::CanonicalJson {
            document: String::from_utf8_lossy(&body).into_owned(),
            exclude: parts.map(|p| String::from_utf8_lossy(p).into_owned()).collect(),
        },
    };
    let opts = Options {
        lease_ms: (mode & 0x10 != 0).then_some(u64::from(mode)),
        max_outcome_bytes: (mode & 0x20 != 0).then_some(u32::from(mode) * 3),
        ..Options::default()
    };
    let guard = Guard::new(Mem::default(), Env(Cell::new(0)));
    let outcome = Outcome { body: body.clone(), status: Some(200), content_type: None, metadata: vec![] };
    // A forged token is refused, whatever it says.
    let _ = guard.complete(&op, &token, outcome.clone(), &opts);
    let _ = guard.renew(&op, &token, u64::from(mode), &opts);
    match guard.claim(&op, &input, &opts) {
        Ok(ClaimDecision::Acquired(a)) => {
            if guard.complete(&op, &a.lease.token, outcome.clone(), &opts).is_ok() {
                match guard.claim(&op, &input, &opts) {
                    Ok(ClaimDecision::Replay(r)) => assert_eq!(r.outcome, outcome),
                    other => panic!("completed, then {other:?}"),
                }
            }
        }
        Ok(other) => panic!("a fresh store answered {other:?}"),
        Err(_) => assert!(guard.store().map.borrow().is_empty(), "a refused claim wrote"),
    }
});
