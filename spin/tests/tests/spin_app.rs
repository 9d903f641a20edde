//! idem's promises, checked over HTTP against the example app running under a real `spin up`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Barrier;
use std::time::Duration;

use idem_spin_tests::{AppDir, Response, Server, request};

const RACERS: usize = 32;
const ROUNDS: usize = 6;

fn release(
    server: &Server,
    work_order: &str,
    key: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> Response {
    let mut headers = vec![
        ("idempotency-key", key),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    server.request(
        "POST",
        &format!("/work-orders/{work_order}/release"),
        &headers,
        body.as_bytes(),
    )
}

fn releases(server: &Server, work_order: &str) -> serde_json::Value {
    let r = server.request(
        "GET",
        &format!("/work-orders/{work_order}/releases"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Sends `n` copies of one request at once (all threads released by one barrier) and returns every response.
fn race(
    addr: SocketAddr,
    n: usize,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<Response> {
    let barrier = Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    request(addr, method, path, headers, body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("racer panicked")
                    .expect("racer's request failed")
            })
            .collect()
    })
}

fn replayed(r: &Response) -> bool {
    r.header("idempotent-replayed") == Some("true")
}

#[test]
fn sequential_duplicates_replay_byte_identical_and_run_once() {
    let app = AppDir::new("sequential");
    let server = Server::start(&app);

    let missing = server.request("POST", "/work-orders/WO-1/release", &[], b"{}");
    assert_eq!(
        missing.status,
        400,
        "missing Idempotency-Key: {}",
        missing.text()
    );

    let first = release(&server, "WO-1", "k-seq", r#"{"released_by":"ana"}"#, &[]);
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(!replayed(&first));
    assert_eq!(first.json()["fencing_token"], 1);
    for _ in 0..3 {
        let again = release(&server, "WO-1", "k-seq", r#"{"released_by":"ana"}"#, &[]);
        assert!(
            replayed(&again),
            "a duplicate must be a replay: {:?}",
            again.headers
        );
        assert_eq!(again.status, first.status);
        assert_eq!(
            again.body, first.body,
            "replayed body must be byte-identical"
        );
        assert_eq!(again.replayable_headers(), first.replayable_headers());
    }
    assert_eq!(releases(&server, "WO-1")["releases"], 1);
}

#[test]
fn changed_payload_is_refused_and_canonical_json_is_not_a_change() {
    let app = AppDir::new("mismatch");
    let server = Server::start(&app);

    let first = release(
        &server,
        "WO-2",
        "k-body",
        r#"{"released_by":"ana","note":"x","sent_at":"t1"}"#,
        &[],
    );
    assert_eq!(first.status, 200, "{}", first.text());
    // Key order, whitespace and the excluded `/sent_at` do not change the request's identity.
    let same = release(
        &server,
        "WO-2",
        "k-body",
        r#"{ "note": "x", "released_by": "ana", "sent_at": "t2" }"#,
        &[],
    );
    assert!(
        replayed(&same) && same.body == first.body,
        "{} {:?}",
        same.status,
        same.headers
    );

    let changed = release(
        &server,
        "WO-2",
        "k-body",
        r#"{"released_by":"bob","note":"x"}"#,
        &[],
    );
    assert_eq!(changed.status, 422, "{}", changed.text());
    let not_json = release(&server, "WO-2", "k-other", "{not json", &[]);
    assert_eq!(not_json.status, 400, "{}", not_json.text());
    assert_eq!(releases(&server, "WO-2")["releases"], 1);
}

#[test]
fn concurrent_first_requests_run_once() {
    let app = AppDir::new("concurrent");
    let server = Server::start(&app);

    for round in 0..ROUNDS {
        let work_order = format!("WO-race-{round}");
        let path = format!("/work-orders/{work_order}/release");
        // Even rounds: the winner holds its lease a moment, so duplicates meet it in progress. Odd rounds: it
        // finishes at once, so late duplicates race its completion and get replays.
        let delay = if round % 2 == 0 { "300" } else { "0" };
        let headers = [("idempotency-key", "k-race"), ("x-test-delay-ms", delay)];
        let responses = race(
            server.addr,
            RACERS,
            "POST",
            &path,
            &headers,
            br#"{"released_by":"ana"}"#,
        );

        let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
        let winners: Vec<&Response> = responses
            .iter()
            .filter(|r| r.status == 200 && !replayed(r))
            .collect();
        for r in &responses {
            let kind = match (r.status, replayed(r)) {
                (200, false) => "ran",
                (200, true) => "replayed",
                (409, _) => {
                    let retry_after: u64 = r
                        .header("retry-after")
                        .and_then(|v| v.parse().ok())
                        .expect("409 needs Retry-After");
                    assert!(retry_after >= 1);
                    "in-progress"
                }
                _ => panic!("round {round}: unexpected {} {}", r.status, r.text()),
            };
            *by_kind.entry(kind).or_default() += 1;
        }
        assert_eq!(winners.len(), 1, "round {round}: {by_kind:?}");
        for r in responses.iter().filter(|r| replayed(r)) {
            assert_eq!(
                r.body, winners[0].body,
                "round {round}: a replay differs from the original"
            );
        }
        assert_eq!(
            releases(&server, &work_order)["releases"],
            1,
            "round {round}: {by_kind:?}"
        );
        eprintln!("round {round}: {by_kind:?}");
    }
}

#[test]
fn expired_lease_is_taken_over_once_with_a_higher_fencing_token() {
    let app = AppDir::new("takeover");
    let server = Server::start(&app);

    for round in 0..3 {
        let work_order = format!("WO-lease-{round}");
        let body = r#"{"released_by":"ana"}"#;
        let dead = release(
            &server,
            &work_order,
            "k-lease",
            body,
            &[("x-test-lease-ms", "800"), ("x-test-abandon", "true")],
        );
        assert_eq!(dead.status, 500, "the abandoning worker: {}", dead.text());
        let early = release(&server, &work_order, "k-lease", body, &[]);
        assert_eq!(
            early.status,
            409,
            "round {round}: lease still live: {}",
            early.text()
        );

        std::thread::sleep(Duration::from_millis(1_000));
        let path = format!("/work-orders/{work_order}/release");
        let headers = [("idempotency-key", "k-lease"), ("x-test-delay-ms", "200")];
        let responses = race(
            server.addr,
            RACERS / 2,
            "POST",
            &path,
            &headers,
            body.as_bytes(),
        );
        let winners: Vec<&Response> = responses
            .iter()
            .filter(|r| r.status == 200 && !replayed(r))
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {:?}",
            responses.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        let won = winners[0].json();
        assert_eq!(
            (won["fencing_token"].as_u64(), won["attempt"].as_u64()),
            (Some(2), Some(2)),
            "{won}"
        );
        assert_eq!(won["recovered"], true);
        assert!(
            responses.iter().all(|r| r.status == 409 || r.status == 200),
            "round {round}"
        );

        let effects = releases(&server, &work_order);
        assert_eq!(effects["releases"], 1, "round {round}");
        assert_eq!(effects["fencing_tokens"], serde_json::json!([2]));
    }
}

#[test]
fn restart_keeps_completed_records() {
    let app = AppDir::new("restart");
    let first = {
        let server = Server::start(&app);
        let first = release(
            &server,
            "WO-3",
            "k-restart",
            r#"{"released_by":"ana"}"#,
            &[],
        );
        assert_eq!(first.status, 200, "{}", first.text());
        first
    };
    assert!(
        app.path().join(".spin").is_dir(),
        "state lives under the app's .spin/"
    );

    let server = Server::start(&app);
    let again = release(
        &server,
        "WO-3",
        "k-restart",
        r#"{"released_by":"ana"}"#,
        &[],
    );
    assert!(
        replayed(&again),
        "after a restart the record must still replay: {} {}",
        again.status,
        again.text()
    );
    assert_eq!(again.body, first.body);
    assert_eq!(releases(&server, "WO-3")["releases"], 1);
}

/// The store adapter's `insert-or-get` under real concurrency: every claim of a fresh key inserts or finds the
/// record in one step, so exactly one of many racing claims acquires, round after round.
#[test]
fn racing_first_claims_have_exactly_one_winner() {
    let app = AppDir::new("store-race");
    let server = Server::start(&app);

    for round in 0..20 {
        let path = format!("/_test/claim/fresh-{round}");
        let responses = race(server.addr, RACERS, "POST", &path, &[], b"");
        let mut by_answer: BTreeMap<String, usize> = BTreeMap::new();
        for r in &responses {
            assert_eq!(r.status, 200, "round {round}: {}", r.text());
            *by_answer.entry(r.text()).or_default() += 1;
        }
        assert_eq!(
            by_answer.get("acquired 1"),
            Some(&1),
            "round {round}: {by_answer:?}"
        );
        assert_eq!(
            by_answer.get("in-progress"),
            Some(&(RACERS - 1)),
            "round {round}: {by_answer:?}"
        );
    }
}
