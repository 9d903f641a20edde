//! `idem serve` end to end over loopback: the JSON API, and the proxy in front of an upstream that counts its
//! side effects. After sequential, concurrent and mismatched duplicates the upstream saw each operation once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use idem_contract_tests::free_port;
use serde_json::{Value, json};

struct Server {
    child: Child,
    base: String,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::start_on(dir.path(), extra);
        server._dir = Some(dir);
        server
    }

    fn start_on(data: &std::path::Path, extra: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_idem"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data)
            .args(extra)
            .env("IDEM_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start idem serve");
        let base = format!("http://127.0.0.1:{port}");
        let server = Self { child, base, _dir: None };
        let health = if extra.contains(&"--upstream") { "/_idem/healthz" } else { "/healthz" };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if agent().get(format!("{}{health}", server.base)).call().is_ok_and(|r| r.status() == 200) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("idem serve did not become healthy");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

fn post(url: &str, body: Value) -> (u16, Value) {
    let mut r = agent().post(url).content_type("application/json").send(body.to_string()).unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap())
}

#[test]
fn json_api_claims_replays_refuses_and_counts() {
    let s = Server::start(&[]);
    let claim = json!({"scope": "payments", "key": "order-7/charge", "json": {"amount": 100, "sent_at": "10:00"}, "exclude": ["/sent_at"]});
    let (status, first) = post(&format!("{}/v1/claim", s.base), claim.clone());
    assert_eq!((status, first["decision"].as_str()), (200, Some("acquired")), "{first}");
    let token = first["lease"]["token"].as_str().unwrap().to_string();
    assert_eq!(first["lease"]["fencing_token"], 1);

    let (_, again) = post(&format!("{}/v1/claim", s.base), claim.clone());
    assert_eq!(again["decision"], "in_progress");
    let (status, renewed) = post(
        &format!("{}/v1/renew", s.base),
        json!({"scope": "payments", "key": "order-7/charge", "token": token, "extend_by_ms": 60000}),
    );
    assert_eq!(status, 200, "{renewed}");

    let outcome = json!({"body_base64": "AAEC/w==", "status": 201, "content_type": "application/octet-stream", "metadata": [["location", "/charges/9"]]});
    let (status, done) = post(
        &format!("{}/v1/complete", s.base),
        json!({"scope": "payments", "key": "order-7/charge", "token": token, "outcome": outcome}),
    );
    assert_eq!(status, 200, "{done}");

    let reordered = json!({"scope": "payments", "key": "order-7/charge", "json": {"sent_at": "11:00", "amount": 100}, "exclude": ["/sent_at"]});
    let (_, replay) = post(&format!("{}/v1/claim", s.base), reordered);
    assert_eq!(replay["decision"], "replay", "{replay}");
    assert_eq!(replay["outcome"]["body_base64"], "AAEC/w==");
    assert_eq!(replay["outcome"]["metadata"], json!([["location", "/charges/9"]]));

    let changed = json!({"scope": "payments", "key": "order-7/charge", "json": {"amount": 999}});
    assert_eq!(post(&format!("{}/v1/claim", s.base), changed).1["decision"], "mismatch");

    let (status, stale) = post(
        &format!("{}/v1/complete", s.base),
        json!({"scope": "payments", "key": "order-7/charge", "token": "1.0000000000000000", "outcome": {"body": "x"}}),
    );
    assert_eq!((status, stale["error"]["kind"].as_str()), (409, Some("lease_lost")), "{stale}");

    let (status, bad) =
        post(&format!("{}/v1/claim", s.base), json!({"scope": "pay ments", "key": "k", "payload": "p"}));
    assert_eq!((status, bad["error"]["kind"].as_str()), (400, Some("invalid_scope")));
    let (status, bad) = post(&format!("{}/v1/claim", s.base), json!({"scope": "payments", "key": "k"}));
    assert_eq!((status, bad["error"]["kind"].as_str()), (400, Some("bad_request")));
    let (status, bad) =
        post(&format!("{}/v1/claim", s.base), json!({"scope": "payments", "key": "k".repeat(1025), "payload": "p"}));
    assert_eq!((status, bad["error"]["kind"].as_str()), (400, Some("invalid_key")));

    let mut r = agent().get(format!("{}/v1/records/payments/order-7/charge", s.base)).call().unwrap();
    let record: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(
        (record["state"].as_str(), record["outcome_bytes"].as_u64()),
        (Some("succeeded"), Some(4 + 24 + 8 + 10))
    );
    assert_eq!(agent().get(format!("{}/v1/records/payments/nothing", s.base)).call().unwrap().status(), 404);

    let metrics = agent().get(format!("{}/metrics", s.base)).call().unwrap().body_mut().read_to_string().unwrap();
    for line in [
        r#"idem_decisions_total{scope="payments",decision="acquired"} 1"#,
        r#"idem_decisions_total{scope="payments",decision="in_progress"} 1"#,
        r#"idem_decisions_total{scope="payments",decision="replayed"} 1"#,
        r#"idem_decisions_total{scope="payments",decision="mismatch"} 1"#,
        r#"idem_errors_total{scope="payments",kind="lease_lost"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    assert!(metrics.contains("idem_call_duration_seconds_bucket"), "{metrics}");
}

/// An upstream service that counts the side effects of each request body and answers slowly enough for
/// duplicates to overlap. `POST /fail` answers 500 without a side effect.
struct Upstream {
    port: u16,
    effects: Arc<Mutex<Vec<String>>>,
}

fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let effects = Arc::new(Mutex::new(Vec::new()));
    let seen = effects.clone();
    let counter = Arc::new(AtomicU32::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (seen, counter) = (seen.clone(), counter.clone());
            std::thread::spawn(move || serve_upstream(stream, &seen, &counter));
        }
    });
    Upstream { port, effects }
}

fn serve_upstream(stream: TcpStream, seen: &Mutex<Vec<String>>, counter: &AtomicU32) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut length = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    std::thread::sleep(Duration::from_millis(150));
    let (status, reply) = if target == "/fail" {
        ("500 Internal Server Error", "{\"error\":\"down\"}".to_string())
    } else {
        seen.lock().unwrap().push(format!("{target} {}", String::from_utf8_lossy(&body)));
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        ("201 Created", format!("{{\"charge\":{n}}}"))
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nx-charge-seq: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        counter.load(Ordering::SeqCst),
        reply.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(response.as_bytes());
}

fn send(base: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String, Option<String>, Option<String>) {
    let mut req = agent().post(format!("{base}{path}")).content_type("application/json");
    if let Some(k) = key {
        req = req.header("Idempotency-Key", format!("\"{k}\""));
    }
    let mut r = req.send(body).unwrap();
    let header = |name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    let (replayed, retry_after) = (header("idempotent-replayed"), header("retry-after"));
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap(), replayed, retry_after)
}

#[test]
fn proxy_runs_each_operation_upstream_exactly_once() {
    let up = upstream();
    let s = Server::start(&["--upstream", &format!("http://127.0.0.1:{}", up.port), "--lease-ms", "10000"]);
    let base = s.base.as_str();

    // Sequential duplicates: one side effect, identical replays marked as such.
    let (status, first, replayed, _) = send(base, "/charges", Some("seq-1"), r#"{"amount":5}"#);
    assert_eq!((status, replayed), (201, None));
    for _ in 0..3 {
        let (status, body, replayed, _) = send(base, "/charges", Some("seq-1"), r#"{"amount":5}"#);
        assert_eq!((status, body.as_str(), replayed.as_deref()), (201, first.as_str(), Some("true")));
    }

    // Concurrent duplicates: 16 at once, one side effect; the others wait (409) or replay.
    let barrier = Barrier::new(16);
    let statuses = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..16 {
            sc.spawn(|| {
                barrier.wait();
                let (status, _, _, retry_after) = send(base, "/charges", Some("race-1"), r#"{"amount":7}"#);
                if status == 409 {
                    assert!(retry_after.is_some(), "409 must say when to retry");
                }
                statuses.lock().unwrap().push(status);
            });
        }
    });
    let statuses = statuses.into_inner().unwrap();
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");

    // Mismatched duplicate: refused, no side effect.
    assert_eq!(send(base, "/charges", Some("seq-1"), r#"{"amount":500}"#).0, 422);
    assert_eq!(send(base, "/refunds", Some("seq-1"), r#"{"amount":5}"#).0, 422, "the key is bound to its route too");
    // A guarded route without a key is refused; an upstream failure is not stored, so a retry runs again.
    assert_eq!(send(base, "/charges", None, r#"{"amount":1}"#).0, 400);
    assert_eq!(send(base, "/fail", Some("f-1"), "{}").0, 500);
    assert_eq!(send(base, "/fail", Some("f-1"), "{}").0, 500);
    // GET is not guarded and goes straight through.
    assert_eq!(agent().get(format!("{base}/anything")).call().unwrap().status(), 201);

    let effects = up.effects.lock().unwrap().clone();
    let count = |needle: &str| effects.iter().filter(|e| e.as_str() == needle).count();
    assert_eq!(count(r#"/charges {"amount":5}"#), 1, "{effects:?}");
    assert_eq!(count(r#"/charges {"amount":7}"#), 1, "{effects:?}");
    assert_eq!(count(r#"/charges {"amount":500}"#), 0);
    assert_eq!(count(r#"/refunds {"amount":5}"#), 0);

    let metrics = agent().get(format!("{base}/_idem/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(metrics.contains(r#"idem_decisions_total{scope="http",decision="mismatch"} 2"#), "{metrics}");
}

#[test]
fn records_survive_a_restart_and_are_inspectable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let token = {
        let s = Server::start_on(dir.path(), &[]);
        let (_, d) =
            post(&format!("{}/v1/claim", s.base), json!({"scope": "inventory", "key": "move/1", "payload": "p"}));
        let token = d["lease"]["token"].as_str().unwrap().to_string();
        post(
            &format!("{}/v1/complete", s.base),
            json!({"scope": "inventory", "key": "move/1", "token": token, "outcome": {"body": "moved"}}),
        );
        token
    };
    assert!(!token.is_empty());
    let s = Server::start_on(dir.path(), &[]);
    let (_, replay) =
        post(&format!("{}/v1/claim", s.base), json!({"scope": "inventory", "key": "move/1", "payload": "p"}));
    assert_eq!((replay["decision"].as_str(), replay["outcome"]["body"].as_str()), (Some("replay"), Some("moved")));
    drop(s);
    let out = Command::new(env!("CARGO_BIN_EXE_idem"))
        .args(["inspect", "--data-dir", &data, "inventory", "move/1"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["attempts"].as_u64(), v["fencing_token"].as_u64()),
        (Some("succeeded"), Some(1), Some(1))
    );
    let out = Command::new(env!("CARGO_BIN_EXE_idem"))
        .args(["status", "--data-dir", &data, "inventory", "move/1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("state          succeeded"));
}
