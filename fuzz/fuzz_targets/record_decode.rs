//! Any bytes in the store where a record should be: `Record::decode` returns a record or `CorruptRecord`, never
//! panics; whatever it accepts re-encodes to bytes that decode to the same record. (Not necessarily the same
//! bytes: postcard accepts overlong varints. Harmless, as the guard compares store versions, never record bytes.)
#![no_main]

use idem_component::record::Record;
use idem_component::types::GuardError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // An odd first byte puts a valid header in front, so the postcard body gets fuzzed without having to guess
    // the magic first; an even one fuzzes the header too.
    let Some((&mode, rest)) = input.split_first() else { return };
    let with_header;
    let data = if mode & 1 == 1 {
        with_header = [b"IDEM\x01".as_slice(), rest].concat();
        &with_header[..]
    } else {
        rest
    };
    match Record::decode(data) {
        Ok(record) => {
            let again = record.encode();
            assert_eq!(Record::decode(&again).as_ref(), Ok(&record));
        }
        Err(GuardError::CorruptRecord(m)) => assert!(!m.is_empty()),
        Err(other) => panic!("decode failed with {other:?}"),
    }
});
