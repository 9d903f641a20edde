//! Helpers shared by the contract suite: operations, payloads and a store wrapper that injects faults.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use idem_host::store::{Entry, InsertResult, Store, StoreError, SwapResult};
use idem_host::{ClaimDecision, FingerprintInput, Lease, Operation, Outcome};

pub fn op(scope: &str, key: &str) -> Operation {
    Operation { scope: scope.into(), key: key.into() }
}

pub fn raw(payload: &[u8]) -> FingerprintInput {
    FingerprintInput::Raw(payload.to_vec())
}

pub fn outcome(body: &[u8]) -> Outcome {
    Outcome { body: body.to_vec(), status: Some(200), content_type: Some("application/json".into()), metadata: vec![] }
}

/// The lease of an `acquired` decision; anything else fails the test with the decision it got.
pub fn expect_acquired(d: ClaimDecision) -> Lease {
    match d {
        ClaimDecision::Acquired(a) => a.lease,
        other => panic!("expected acquired, got {other:?}"),
    }
}

/// Wraps a store; while `down` is set every call fails with `unavailable`, as a dead server would.
pub struct FaultyStore<S> {
    inner: S,
    down: Arc<AtomicBool>,
}

impl<S: Store> FaultyStore<S> {
    pub fn new(inner: S) -> (Self, Arc<AtomicBool>) {
        let down = Arc::new(AtomicBool::new(false));
        (Self { inner, down: down.clone() }, down)
    }

    fn check(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StoreError::Unavailable("injected: store is down".into())),
            false => Ok(()),
        }
    }
}

impl<S: Store> Store for FaultyStore<S> {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.check()?;
        self.inner.get(key)
    }
    fn insert_or_get(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<InsertResult, StoreError> {
        self.check()?;
        self.inner.insert_or_get(key, value, ttl_ms)
    }
    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8], ttl_ms: u64) -> Result<SwapResult, StoreError> {
        self.check()?;
        self.inner.compare_and_swap(key, expected, value, ttl_ms)
    }
    fn delete_if_version(&self, key: &str, expected: u64) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete_if_version(key, expected)
    }
}

/// A `redis-server` of the test's own on a free loopback port, killed on drop. A machine without
/// `redis-server` fails the test: the Redis backend is part of the contract, not an optional extra.
pub struct RedisServer {
    child: std::process::Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_on(free_port(), extra)
    }

    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it (Debian: apt-get install redis-server)")
            });
        let server = Self { child, port, dir };
        server.wait_ready();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer PING within 10 s", self.port);
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on right now (the OS picks it; the listener is closed before returning).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
