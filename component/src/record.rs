//! The record the guard keeps per operation, and its encoding in the store.
//!
//! Encoding: the 4 magic bytes `IDEM`, one format-version byte, then the record in postcard. A reader accepts
//! every format version up to its own and refuses anything else as corrupt rather than guessing, so bytes
//! written by something else (or by a newer guard) are never misread as a decision.

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;
use crate::types::{GuardError, Outcome, OutcomeKind, RecordState, StatusReport};

const MAGIC: &[u8; 4] = b"IDEM";
/// The format this guard writes. Bump it when `Record` changes shape, and keep a decoder for every older one.
pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub fingerprint: Fingerprint,
    /// The newest fencing token issued; the current holder's while in progress.
    pub fencing: u64,
    /// Random bits of the newest acquisition, so a token is never reissued after the record expires.
    pub nonce: u64,
    pub attempts: u32,
    pub created_at: u64,
    pub updated_at: u64,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    InProgress { lease_expires_at: u64 },
    Released,
    Finished { kind: StoredKind, outcome: StoredOutcome, finished_at: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredKind {
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOutcome {
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    pub status: Option<u16>,
    pub content_type: Option<String>,
    pub metadata: Vec<(String, String)>,
}

impl From<Outcome> for StoredOutcome {
    fn from(o: Outcome) -> Self {
        Self { body: o.body, status: o.status, content_type: o.content_type, metadata: o.metadata }
    }
}

impl From<StoredOutcome> for Outcome {
    fn from(o: StoredOutcome) -> Self {
        Self { body: o.body, status: o.status, content_type: o.content_type, metadata: o.metadata }
    }
}

impl From<StoredKind> for OutcomeKind {
    fn from(k: StoredKind) -> Self {
        match k {
            StoredKind::Succeeded => OutcomeKind::Succeeded,
            StoredKind::Failed => OutcomeKind::Failed,
        }
    }
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        // Sized up front: a growing Vec would double, and for a 16 MiB outcome that doubling is what breaks a
        // guest's memory cap.
        let mut out = Vec::with_capacity(self.encoded_len_bound());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        // Serialising plain owned data into a Vec cannot fail; an error here is a bug in this module.
        postcard::to_io(self, &mut out).expect("records always serialise");
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, GuardError> {
        let Some(rest) = bytes.strip_prefix(MAGIC) else {
            return Err(GuardError::CorruptRecord(format!(
                "{} bytes that do not start with the idem record header",
                bytes.len()
            )));
        };
        match rest.split_first() {
            Some((&FORMAT_VERSION, body)) => {
                let (record, tail) = postcard::take_from_bytes::<Record>(body)
                    .map_err(|e| GuardError::CorruptRecord(format!("undecodable format-1 record: {e}")))?;
                if !tail.is_empty() {
                    return Err(GuardError::CorruptRecord(format!("{} stray bytes after the record", tail.len())));
                }
                Ok(record)
            }
            Some((&version, _)) => Err(GuardError::CorruptRecord(format!(
                "record format {version} is not one this guard reads (it reads up to {FORMAT_VERSION})"
            ))),
            None => Err(GuardError::CorruptRecord("record header without a format version".into())),
        }
    }

    /// An upper bound of `encode().len()`: fixed fields, plus each variable-length field and its varint prefix.
    fn encoded_len_bound(&self) -> usize {
        const FIXED: usize = 5 + 32 + 4 * 10 + 2 * 10 + 16;
        match &self.state {
            State::Finished { outcome, .. } => {
                let text: usize = outcome.metadata.iter().map(|(k, v)| k.len() + v.len() + 20).sum();
                FIXED + outcome.body.len() + 10 + outcome.content_type.as_ref().map_or(1, |c| c.len() + 11) + text + 10
            }
            _ => FIXED,
        }
    }

    pub fn token(&self) -> String {
        format!("{}.{:016x}", self.fencing, self.nonce)
    }

    pub fn status_report(&self) -> StatusReport {
        let (state, lease_expires_at, finished_at, outcome_bytes) = match &self.state {
            State::InProgress { lease_expires_at } => (RecordState::InProgress, Some(*lease_expires_at), None, None),
            State::Released => (RecordState::Released, None, None, None),
            State::Finished { kind, outcome, finished_at } => {
                let state = match kind {
                    StoredKind::Succeeded => RecordState::Succeeded,
                    StoredKind::Failed => RecordState::Failed,
                };
                let size = Outcome::from(outcome.clone()).counted_bytes();
                (state, None, Some(*finished_at), Some(size))
            }
        };
        StatusReport {
            state,
            attempts: self.attempts,
            fencing_token: self.fencing,
            created_at: self.created_at,
            updated_at: self.updated_at,
            lease_expires_at,
            finished_at,
            outcome_bytes,
            fingerprint: self.fingerprint.to_vec(),
        }
    }
}

/// A lease token as the guard hands it out: `FENCING.NONCE` with the nonce in 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub fencing: u64,
    pub nonce: u64,
}

impl Token {
    pub fn parse(token: &str) -> Result<Self, GuardError> {
        let bad = || GuardError::InvalidToken(format!("{:?} is not a lease token", truncate(token, 80)));
        let (fencing, nonce) = token.split_once('.').ok_or_else(bad)?;
        if nonce.len() != 16 || fencing.is_empty() || fencing.len() > 20 {
            return Err(bad());
        }
        Ok(Self {
            fencing: fencing.parse().map_err(|_| bad())?,
            nonce: u64::from_str_radix(nonce, 16).map_err(|_| bad())?,
        })
    }

    pub fn holds(&self, record: &Record) -> bool {
        self.fencing == record.fencing && self.nonce == record.nonce
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(state: State) -> Record {
        Record {
            fingerprint: [3; 32],
            fencing: 7,
            nonce: 0xdead_beef,
            attempts: 2,
            created_at: 1,
            updated_at: 2,
            state,
        }
    }

    #[test]
    fn every_state_round_trips() {
        let outcome = StoredOutcome {
            body: vec![0, 255, 10],
            status: Some(201),
            content_type: Some("application/json".into()),
            metadata: vec![("location".into(), "/x".into())],
        };
        for state in [
            State::InProgress { lease_expires_at: 99 },
            State::Released,
            State::Finished { kind: StoredKind::Failed, outcome, finished_at: 5 },
        ] {
            let r = sample(state);
            assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn the_size_bound_holds_so_encoding_never_reallocates() {
        let outcome = StoredOutcome {
            body: vec![7; 70_000],
            status: Some(u16::MAX),
            content_type: Some("x".repeat(300)),
            metadata: (0..50).map(|i| (format!("h{i}"), "v".repeat(200))).collect(),
        };
        let mut r = sample(State::Finished { kind: StoredKind::Succeeded, outcome, finished_at: u64::MAX });
        (r.fencing, r.nonce, r.attempts, r.created_at, r.updated_at) =
            (u64::MAX, u64::MAX, u32::MAX, u64::MAX, u64::MAX);
        let encoded = r.encode();
        assert!(encoded.len() <= r.encoded_len_bound(), "{} > {}", encoded.len(), r.encoded_len_bound());
        assert_eq!(encoded.capacity(), r.encoded_len_bound());
    }

    #[test]
    fn format_one_bytes_stay_readable() {
        // Written by format 1; a future format must still read these exact bytes.
        let r = sample(State::InProgress { lease_expires_at: 1000 });
        let bytes = r.encode();
        assert_eq!(&bytes[..5], b"IDEM\x01");
        let frozen: &[u8] = &[
            73, 68, 69, 77, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
            3, 3, 3, 7, 239, 253, 182, 245, 13, 2, 1, 2, 0, 232, 7,
        ];
        assert_eq!(bytes, frozen);
        assert_eq!(Record::decode(frozen).unwrap(), r);
    }

    #[test]
    fn foreign_and_damaged_bytes_are_corrupt() {
        let good = sample(State::Released).encode();
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            b"{\"json\":true}".to_vec(),
            b"IDEM".to_vec(),
            [b"IDEM".as_slice(), &[9]].concat(),
            good[..good.len() - 1].to_vec(),
            [good.as_slice(), &[0]].concat(),
        ];
        for bytes in cases {
            assert!(matches!(Record::decode(&bytes), Err(GuardError::CorruptRecord(_))), "{bytes:?}");
        }
    }

    #[test]
    fn tokens_round_trip_and_refuse_junk() {
        let r = sample(State::Released);
        let t = Token::parse(&r.token()).unwrap();
        assert!(t.holds(&r));
        for junk in ["", "7", "7.", ".0000000000000000", "x.00000000deadbeef", "7.deadbeef", "7.zzzzzzzzzzzzzzzz"] {
            assert!(matches!(Token::parse(junk), Err(GuardError::InvalidToken(_))), "{junk}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = Record::decode(&bytes);
            let mut with_header = b"IDEM\x01".to_vec();
            with_header.extend(&bytes);
            let _ = Record::decode(&with_header);
        }

        #[test]
        fn arbitrary_tokens_never_panic(s in "\\PC{0,40}") {
            let _ = Token::parse(&s);
        }
    }
}
