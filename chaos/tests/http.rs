//! `idem serve` over loopback: scope isolation against crafted keys and paths, oversized input refused with
//! clear errors, and mangled requests answered with 4xx, never a 5xx or a dead server.
//!
//! These tests need the `idem` binary, which belongs to another package: `cargo test --workspace` builds it
//! (idem-cli has integration tests); otherwise run `cargo build -p idem-cli` first, or point `IDEM_BIN` at it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use idem_chaos::{Rng, free_port};
use serde_json::{Value, json};

fn idem_bin() -> PathBuf {
    let bin = std::env::var_os("IDEM_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
        target.join("debug/idem")
    });
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build -p idem-cli` (cargo test --workspace does) or set IDEM_BIN",
        bin.display()
    );
    bin
}

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(idem_bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .env("IDEM_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .expect("start idem serve");
        let server = Self { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if server.request("GET", "/healthz", b"").0 == 200 {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("idem serve did not become healthy");
    }

    /// One raw HTTP/1.1 request: the path goes on the wire exactly as given (no client-side normalisation).
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return (0, vec![]) };
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        if s.write_all(head.as_bytes()).and_then(|_| s.write_all(body)).is_err() {
            return (0, vec![]);
        }
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let text = String::from_utf8_lossy(&resp);
        let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = match resp.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => resp[i + 4..].to_vec(),
            None => vec![],
        };
        (status, body)
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, b) = self.request("POST", path, body.to_string().as_bytes());
        (status, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    fn claim_and_complete(&self, scope: &str, key: &str, secret: &str) {
        let (s, c) = self.post("/v1/claim", &json!({"scope": scope, "key": key, "payload": "p"}));
        assert_eq!((s, c["decision"].as_str()), (200, Some("acquired")), "{scope}/{key}: {c}");
        let token = c["lease"]["token"].as_str().unwrap();
        let (s, r) = self
            .post("/v1/complete", &json!({"scope": scope, "key": key, "token": token, "outcome": {"body": secret}}));
        assert_eq!(s, 200, "{r}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_scope_never_reads_or_overwrites_another() {
    let s = Server::start(&[]);
    s.claim_and_complete("alpha", "k", "alpha-secret");
    s.claim_and_complete("alpha", "dir/k", "alpha-dir-secret");
    s.claim_and_complete("alpha", "{k}", "alpha-brace-secret");

    // Crafted keys claimed in scope beta are beta's own keys: acquired fresh, never alpha's outcome.
    for key in [
        "../alpha/k",
        "..%2Falpha%2Fk",
        "alpha/k",
        "/alpha/k",
        "k/../../alpha/k",
        "{alpha/k}",
        "}{alpha/k",
        "%2e%2e/alpha/k",
        "k",
    ] {
        let (st, c) = s.post("/v1/claim", &json!({"scope": "beta", "key": key, "payload": "p"}));
        assert_eq!(st, 200, "{key}: {c}");
        assert_eq!(c["decision"], "acquired", "beta claiming {key:?} must not see alpha's record: {c}");
        assert!(!c.to_string().contains("alpha-"), "{key}: {c}");
    }
    // Scopes that try to smuggle a separator are refused.
    for scope in ["alpha/k", "../alpha", "alpha%2Fk", "al{pha}", "", " alpha"] {
        let (st, c) = s.post("/v1/claim", &json!({"scope": scope, "key": "k", "payload": "p"}));
        assert_eq!((st, c["error"]["kind"].as_str()), (400, Some("invalid_scope")), "scope {scope:?}: {c}");
    }
    // The record routes: crafted paths read beta's records or nothing, never alpha's.
    for path in [
        "/v1/records/beta/..%2Falpha%2Fk",
        "/v1/records/beta/../alpha/k",
        "/v1/records/beta/%2e%2e/alpha/k",
        "/v1/records/beta%2F..%2Falpha/k",
        "/v1/records/beta/alpha%2Fk",
        "/v1/records/beta/{alpha/k}",
        "/v1/records/alpha%2Fk/x",
        "/v1/records/beta%00/k",
    ] {
        for method in ["GET", "DELETE"] {
            let (st, b) = s.request(method, path, b"");
            let text = String::from_utf8_lossy(&b);
            assert!(!text.contains("\"scope\":\"alpha\""), "{method} {path}: {st} {text}");
            assert!(st != 500 && st != 0, "{method} {path}: {st} {text}");
        }
    }
    // Alpha's records are intact after every attempt above, DELETEs included.
    for (key, secret) in [("k", "alpha-secret"), ("dir/k", "alpha-dir-secret"), ("{k}", "alpha-brace-secret")] {
        let (st, c) = s.post("/v1/claim", &json!({"scope": "alpha", "key": key, "payload": "p"}));
        assert_eq!((st, c["decision"].as_str()), (200, Some("replay")), "alpha/{key}: {c}");
        assert_eq!(c["outcome"]["body"], secret);
    }
    // A key with a slash is reachable through the catch-all route, in its own scope only.
    let (st, b) = s.request("GET", "/v1/records/alpha/dir/k", b"");
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!((st, v["scope"].as_str(), v["key"].as_str()), (200, Some("alpha"), Some("dir/k")), "{v}");
}

#[test]
fn oversized_input_is_refused_with_clear_errors() {
    let s = Server::start(&[]);
    let kind = |v: &Value| v["error"]["kind"].as_str().map(str::to_string);
    let (st, c) = s.post("/v1/claim", &json!({"scope": "s".repeat(65), "key": "k", "payload": "p"}));
    assert_eq!((st, kind(&c).as_deref()), (400, Some("invalid_scope")), "{c}");
    let (st, c) = s.post("/v1/claim", &json!({"scope": "s", "key": "k".repeat(1025), "payload": "p"}));
    assert_eq!((st, kind(&c).as_deref()), (400, Some("invalid_key")), "{c}");
    let (st, c) = s.post("/v1/claim", &json!({"scope": "s", "key": "k", "fingerprint": "ab".repeat(33)}));
    assert_eq!((st, kind(&c).as_deref()), (400, Some("invalid_fingerprint")), "{c}");
    let (st, c) = s.post("/v1/claim", &json!({"scope": "s", "key": "k", "payload": "p", "lease_ms": 0}));
    assert_eq!((st, kind(&c).as_deref()), (400, Some("invalid_options")), "{c}");

    let (_, c) = s.post("/v1/claim", &json!({"scope": "s", "key": "big", "payload": "p"}));
    let token = c["lease"]["token"].as_str().unwrap().to_string();
    let big = "x".repeat((1 << 20) + 1);
    let (st, c) =
        s.post("/v1/complete", &json!({"scope": "s", "key": "big", "token": token, "outcome": {"body": big}}));
    assert_eq!(
        (st, kind(&c).as_deref()),
        (413, Some("outcome_too_large")),
        "{}",
        c.to_string().chars().take(300).collect::<String>()
    );
    // A request body over the server's 32 MiB limit is refused before it is parsed.
    let huge = format!("{{\"scope\":\"s\",\"key\":\"k\",\"payload\":\"{}\"}}", "x".repeat(33 << 20));
    let (st, _) = s.request("POST", "/v1/claim", huge.as_bytes());
    assert_eq!(st, 413, "a 33 MiB request body");
    // A payload just under the body limit is fingerprinted, not a trap or a crash.
    let large = format!("{{\"scope\":\"s\",\"key\":\"large\",\"payload\":\"{}\"}}", "x".repeat(30 << 20));
    let (st, b) = s.request("POST", "/v1/claim", large.as_bytes());
    eprintln!("30 MiB payload: {st} {}", String::from_utf8_lossy(&b).chars().take(300).collect::<String>());
    assert!(
        st == 200 || (400..500).contains(&st),
        "a 30 MiB payload answered {st}: {}",
        String::from_utf8_lossy(&b).chars().take(300).collect::<String>()
    );
    // The lease from before is unharmed by the refusals.
    let (st, c) =
        s.post("/v1/complete", &json!({"scope": "s", "key": "big", "token": token, "outcome": {"body": "fits"}}));
    assert_eq!(st, 200, "{c}");
}

#[test]
fn mangled_requests_get_4xx_and_the_server_stays_up() {
    let s = Server::start(&[]);
    let seeds = [
        json!({"scope": "s", "key": "k", "payload": "p"}),
        json!({"scope": "s", "key": "k", "json": {"a": [1, 2.50, {"b": null}]}, "exclude": ["/a/2/b", "/x~1y"]}),
        json!({"scope": "s", "key": "k", "token": "1.00000000000000ff", "outcome": {"body_base64": "AA==", "metadata": [["a", "b"]]}}),
        json!({"scope": "s", "key": "k", "token": "1.00000000000000ff", "retryable": false, "outcome": {"body": "x"}}),
        json!({"scope": "s", "key": "k", "token": "1.00000000000000ff", "extend_by_ms": 1000}),
    ];
    let paths = ["/v1/claim", "/v1/complete", "/v1/fail", "/v1/renew"];
    let mut rng = Rng::new(77);
    let mut statuses = std::collections::BTreeMap::new();
    for n in 0..400 {
        let mut bytes = seeds[n % seeds.len()].to_string().into_bytes();
        for _ in 0..rng.range(1, 6) {
            if bytes.is_empty() {
                bytes.push(b'{');
            }
            let at = rng.range(0, bytes.len() as u64) as usize;
            match rng.range(0, 5) {
                0 => bytes[at] = rng.next_u64() as u8,
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, b"{}[]\",:\\0-e9"[rng.range(0, 12) as usize]),
                3 => bytes.truncate(at),
                _ => {
                    let chunk = bytes[at..].to_vec();
                    bytes.extend_from_slice(&chunk);
                }
            }
        }
        let path = paths[rng.range(0, 4) as usize];
        let (st, b) = s.request("POST", path, &bytes);
        *statuses.entry(st).or_insert(0) += 1;
        assert!(
            (200..500).contains(&st),
            "{path} with {:?} answered {st}: {}",
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&b)
        );
    }
    eprintln!("statuses for 400 mangled requests: {statuses:?}");
    assert_eq!(s.request("GET", "/healthz", b"").0, 200);
}
