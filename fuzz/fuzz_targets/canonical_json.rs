//! Canonical-JSON fingerprinting: never panics; a document it accepts has a canonical form that is itself valid
//! JSON and canonical (canonicalising it again changes nothing), so key order and whitespace never matter.
//! The first byte picks how many exclude pointers are taken from the start of the input (NUL separated).
#![no_main]

use idem_component::fingerprint::canonical_json;
use idem_component::types::GuardError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let mut parts = rest.split(|b| *b == 0);
    let exclude: Vec<String> =
        (0..n % 4).filter_map(|_| parts.next()).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    let doc: Vec<u8> = parts.collect::<Vec<_>>().join(&0u8);
    let Ok(doc) = std::str::from_utf8(&doc) else { return };
    match canonical_json(doc, &exclude) {
        Ok(canon) => {
            let text = std::str::from_utf8(&canon).expect("canonical form is UTF-8");
            assert_eq!(canonical_json(text, &[]).as_deref(), Ok(canon.as_slice()), "not idempotent");
        }
        Err(GuardError::InvalidFingerprint(m)) => assert!(!m.is_empty()),
        Err(other) => panic!("canonical_json failed with {other:?}"),
    }
});
