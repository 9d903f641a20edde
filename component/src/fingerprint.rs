//! Payload fingerprints: SHA-256 over raw bytes, over a canonical form of a JSON document, or given by the
//! caller. The fingerprint is what binds an operation's key to one payload.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::types::{FingerprintInput, GuardError};

pub type Fingerprint = [u8; 32];

pub fn fingerprint(input: &FingerprintInput) -> Result<Fingerprint, GuardError> {
    match input {
        FingerprintInput::Raw(bytes) => Ok(Sha256::digest(bytes).into()),
        FingerprintInput::CanonicalJson { document, exclude } => {
            Ok(Sha256::digest(canonical_json(document, exclude)?).into())
        }
        FingerprintInput::Precomputed(bytes) => bytes.as_slice().try_into().map_err(|_| {
            GuardError::InvalidFingerprint(format!("a precomputed fingerprint is 32 bytes, not {}", bytes.len()))
        }),
    }
}

/// The canonical form: excluded parts removed, object keys sorted, no insignificant whitespace, numbers exactly
/// as written. Numbers are kept as text because reading them as floats would make two different large amounts
/// the same payload, and a wrong replay is worse than a refused one.
pub fn canonical_json(document: &str, exclude: &[String]) -> Result<Vec<u8>, GuardError> {
    let mut value: Value =
        serde_json::from_str(document).map_err(|e| GuardError::InvalidFingerprint(format!("invalid JSON: {e}")))?;
    for pointer in exclude {
        remove_pointer(&mut value, pointer)?;
    }
    // serde_json's map is ordered by key unless `preserve_order` is enabled, which this crate never enables.
    serde_json::to_vec(&value).map_err(|e| GuardError::InvalidFingerprint(format!("unserialisable JSON: {e}")))
}

fn remove_pointer(root: &mut Value, pointer: &str) -> Result<(), GuardError> {
    let Some(path) = pointer.strip_prefix('/') else {
        return Err(GuardError::InvalidFingerprint(format!(
            "exclude entry {pointer:?} is not a JSON Pointer starting with '/'"
        )));
    };
    let tokens: Vec<String> = path.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    let (last, parents) = tokens.split_last().expect("split always yields one token");
    let mut node = root;
    for token in parents {
        node = match node {
            Value::Object(map) => match map.get_mut(token) {
                Some(child) => child,
                None => return Ok(()),
            },
            Value::Array(items) => match token.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(child) => child,
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
    }
    match node {
        Value::Object(map) => {
            map.remove(last);
        }
        Value::Array(items) => {
            if let Some(i) = last.parse::<usize>().ok().filter(|&i| i < items.len()) {
                items.remove(i);
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json(doc: &str, exclude: &[&str]) -> Result<Fingerprint, GuardError> {
        fingerprint(&FingerprintInput::CanonicalJson {
            document: doc.into(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn raw_is_plain_sha256() {
        let fp = fingerprint(&FingerprintInput::Raw(b"abc".to_vec())).unwrap();
        assert_eq!(
            fp.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a = json(r#"{"amount": 100, "to": {"iban": "DE1", "name": "A"}}"#, &[]).unwrap();
        let b = json("{\"to\":{\"name\":\"A\",\"iban\":\"DE1\"},\n \"amount\":100}", &[]).unwrap();
        assert_eq!(a, b);
        assert_eq!(canonical_json(r#"{ "b":1, "a":[2, 1] }"#, &[]).unwrap(), br#"{"a":[2,1],"b":1}"#);
    }

    #[test]
    fn values_and_array_order_do_matter() {
        assert_ne!(json(r#"{"amount":100}"#, &[]).unwrap(), json(r#"{"amount":101}"#, &[]).unwrap());
        assert_ne!(json("[1,2]", &[]).unwrap(), json("[2,1]", &[]).unwrap());
    }

    #[test]
    fn large_numbers_are_not_rounded_together() {
        let a = json(r#"{"amount":12345678901234567890123}"#, &[]).unwrap();
        let b = json(r#"{"amount":12345678901234567890124}"#, &[]).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn excluded_fields_do_not_matter() {
        let a = json(r#"{"amount":1,"sent_at":"10:00","meta":{"trace":"x","user":"u"}}"#, &["/sent_at", "/meta/trace"]);
        let b = json(r#"{"amount":1,"sent_at":"11:30","meta":{"trace":"y","user":"u"}}"#, &["/sent_at", "/meta/trace"]);
        assert_eq!(a.unwrap(), b.unwrap());
        let c = json(r#"{"amount":1,"meta":{"user":"v"}}"#, &["/sent_at", "/meta/trace"]);
        assert_ne!(json(r#"{"amount":1,"meta":{"user":"u"}}"#, &[]).unwrap(), c.unwrap());
    }

    #[test]
    fn pointer_escapes_and_missing_paths() {
        let a = json(r#"{"a/b":1,"c~d":2,"e":3}"#, &["/a~1b", "/c~0d", "/nope/deeper"]).unwrap();
        assert_eq!(a, json(r#"{"e":3}"#, &[]).unwrap());
        let arr = json(r#"{"items":[{"id":1,"ts":5},{"id":2}]}"#, &["/items/0/ts", "/items/9"]).unwrap();
        assert_eq!(arr, json(r#"{"items":[{"id":1},{"id":2}]}"#, &[]).unwrap());
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert!(matches!(json("{not json", &[]), Err(GuardError::InvalidFingerprint(_))));
        assert!(matches!(json("", &[]), Err(GuardError::InvalidFingerprint(_))));
        assert!(matches!(json("{} trailing", &[]), Err(GuardError::InvalidFingerprint(_))));
        assert!(matches!(json("{}", &["sent_at"]), Err(GuardError::InvalidFingerprint(_))));
        assert!(matches!(json("{}", &[""]), Err(GuardError::InvalidFingerprint(_))));
        let short = FingerprintInput::Precomputed(vec![0; 31]);
        assert!(matches!(fingerprint(&short), Err(GuardError::InvalidFingerprint(_))));
        assert_eq!(fingerprint(&FingerprintInput::Precomputed(vec![7; 32])).unwrap(), [7; 32]);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let doc = "[".repeat(100_000);
        assert!(matches!(json(&doc, &[]), Err(GuardError::InvalidFingerprint(_))));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::from(n)),
            "[a-z\\u{e9}\"\\\\]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn pretty_and_compact_forms_fingerprint_alike(v in arb_json()) {
            let compact = serde_json::to_string(&v).unwrap();
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            prop_assert_eq!(json(&compact, &[]).unwrap(), json(&pretty, &[]).unwrap());
            // The canonical form is a fixed point: canonicalising it again changes nothing.
            let canon = canonical_json(&pretty, &[]).unwrap();
            prop_assert_eq!(canonical_json(std::str::from_utf8(&canon).unwrap(), &[]).unwrap(), canon);
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,64}", ex in prop::collection::vec("\\PC{0,8}", 0..3)) {
            let _ = json(&s, &ex.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}
