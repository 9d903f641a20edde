//! Process crashes: `kill -9` a worker process at random points while it completes operations, restart it, and
//! check that every acknowledged completion is still there and every interrupted operation is taken over once
//! its lease expires. On SQLite (synchronous=FULL), and on Redis with `appendonly yes --appendfsync always`,
//! including a `kill -9` of redis-server itself and a restart on the same port and directory.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idem_chaos::{RedisProc, Rng, free_port, operation, operation_payload, stored_outcome, unhex};
use idem_host::store::{RedisStore, SqliteStore, Store};
use idem_host::{ClaimDecision, Guard, Options};

const OPS: usize = 240;
const LEASE_MS: u64 = 400;

#[derive(Default)]
struct Seen {
    acked: BTreeMap<usize, Vec<u8>>,
    /// Claimed in a run that was killed, with no ACK from that run.
    interrupted: BTreeSet<usize>,
    recovered_acks: BTreeSet<usize>,
    replays: BTreeMap<usize, Vec<u8>>,
}

struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn spawn_worker(store_args: &[String], seed: u64) -> Worker {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idem-chaos"))
        .arg("worker")
        .args(store_args)
        .args(["--ops", &OPS.to_string(), "--threads", "4", "--lease-ms", &LEASE_MS.to_string()])
        .args(["--seed", &seed.to_string(), "--patience-s", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start idem-chaos worker");
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Worker { child, lines }
}

/// Reads every line the worker wrote (until its stdout closes) into `seen`; `killed` marks unacknowledged
/// claims as interrupted.
fn collect(pending: Option<String>, w: Worker, seen: &mut Seen, killed: bool) -> bool {
    let mut claimed = BTreeSet::new();
    let mut acked_here = BTreeSet::new();
    let mut done = false;
    let lines = pending.into_iter().chain(std::iter::from_fn(|| w.lines.recv_timeout(Duration::from_secs(90)).ok()));
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["CLAIMED", i, _, _] => {
                claimed.insert(i.parse::<usize>().unwrap());
            }
            ["ACK", i, _, recovered, body] => {
                let i: usize = i.parse().unwrap();
                let body = unhex(body);
                if let Some(prev) = seen.acked.get(&i) {
                    assert_eq!(prev, &body, "op {i} acknowledged twice with different outcomes");
                }
                seen.acked.insert(i, body);
                acked_here.insert(i);
                if *recovered == "1" {
                    seen.recovered_acks.insert(i);
                }
            }
            ["REPLAY", i, body] => {
                seen.replays.insert(i.parse().unwrap(), unhex(body));
            }
            ["DONE"] => done = true,
            _ => panic!("unexpected worker line {line:?}"),
        }
    }
    if killed {
        seen.interrupted.extend(claimed.difference(&acked_here));
    }
    done
}

fn kill_cycles(store_args: &[String], seed: u64, cycles: usize, mut between: impl FnMut(usize, &mut Worker)) -> Seen {
    let mut rng = Rng::new(seed);
    let mut seen = Seen::default();
    for cycle in 0..cycles {
        let mut w = spawn_worker(store_args, seed + cycle as u64);
        // Let it start (compiling the component takes a moment) and get some work done, then kill it.
        let first = w.lines.recv_timeout(Duration::from_secs(60)).expect("worker output");
        std::thread::sleep(Duration::from_millis(rng.range(50, 700)));
        between(cycle, &mut w);
        w.child.kill().unwrap(); // SIGKILL
        w.child.wait().unwrap();
        collect(Some(first), w, &mut seen, true);
    }
    // A last run to the end: it replays what was done and takes over what was interrupted.
    let mut w = spawn_worker(store_args, seed + 1000);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "final worker run did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "final worker run failed: {status}");
    assert!(collect(None, w, &mut seen, false), "final worker run did not finish its operations");
    seen
}

fn verify(seen: &Seen, store: Arc<dyn Store>) {
    eprintln!(
        "acknowledged {} (by a takeover {}), interrupted {}, replayed in later runs {}",
        seen.acked.len(),
        seen.recovered_acks.len(),
        seen.interrupted.len(),
        seen.replays.len()
    );
    let guard = Guard::builder().shared_store(store).build().unwrap();
    let opts = Options {
        lease_ms: Some(LEASE_MS),
        retention_ms: Some(3_600_000),
        max_outcome_bytes: None,
        on_store_failure: None,
    };
    // Every acknowledged completion is still there, byte for byte.
    for (i, body) in &seen.acked {
        match guard.claim(&operation(*i), &operation_payload(*i), &opts).unwrap() {
            ClaimDecision::Replay(r) => assert_eq!(r.outcome, stored_outcome(body), "op {i}"),
            other => panic!("op {i}: acknowledged completion lost: {other:?}"),
        }
    }
    for (i, body) in &seen.replays {
        if let Some(acked) = seen.acked.get(i) {
            assert_eq!(acked, body, "op {i}: a replay differs from the acknowledged outcome");
        }
    }
    // Every operation ended up completed.
    for i in 0..OPS {
        assert!(seen.acked.contains_key(&i) || seen.replays.contains_key(&i), "op {i} never completed");
    }
    // Every interrupted operation was taken over after its lease (a recovered acquisition), unless its
    // completion reached the store just before the kill (then it replays).
    assert!(!seen.interrupted.is_empty(), "no kill landed mid-operation; the test proved nothing");
    for i in &seen.interrupted {
        assert!(
            seen.recovered_acks.contains(i) || seen.replays.contains_key(i),
            "op {i} was interrupted but neither recovered nor replayed"
        );
    }
    assert!(!seen.recovered_acks.is_empty(), "no interrupted operation was recovered by lease expiry");
}

#[test]
fn kill_9_workers_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idem.db");
    let args = vec!["--sqlite".to_string(), path.display().to_string()];
    let seen = kill_cycles(&args, 11, 5, |_, _| {});
    verify(&seen, Arc::new(SqliteStore::open(&path).unwrap()));
}

#[test]
fn kill_9_workers_and_redis_with_appendfsync_always() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Arc::new(Mutex::new(RedisProc::start_durable(free_port(), dir.path())));
    let url = redis.lock().unwrap().url();
    let args = vec!["--redis".to_string(), url.clone()];
    let r = redis.clone();
    let seen = kill_cycles(&args, 23, 5, move |cycle, _w| {
        // In odd cycles redis-server dies too, while the worker is mid-flight; it comes back on the same port
        // and directory and must still hold every acknowledged completion.
        if cycle % 2 == 1 {
            let mut r = r.lock().unwrap();
            r.kill();
            std::thread::sleep(Duration::from_millis(200));
            r.restart();
        }
    });
    // One more Redis crash after everything, then check from a fresh server process.
    let mut r = redis.lock().unwrap();
    r.kill();
    r.restart();
    verify(&seen, Arc::new(RedisStore::open(&url).unwrap()));
}
