//! Section 5, `idem serve`: the JSON API and the Idempotency-Key proxy, against the upstream called directly. The load
//! generator and the upstream are here: keep-alive HTTP/1.1 over plain sockets, one thread per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::Scale;
use crate::report::{Report, per_sec, us};
use crate::stats::{Samples, concurrent};
use crate::workload::{OUTCOME_BODY, payload};

/// A keep-alive HTTP/1.1 client connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Result<Self> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self { reader: BufReader::new(s.try_clone()?), writer: s })
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.writer.write_all(&bytes)?;
        read_response(&mut self.reader)
    }
}

fn read_head(r: &mut impl BufRead) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            bail!("connection closed");
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            return Ok(lines);
        }
        ensure!(lines.len() < 200, "too many header lines");
        lines.push(line);
    }
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn read_response(r: &mut impl BufRead) -> Result<(u16, Vec<u8>)> {
    let head = read_head(r)?;
    let status: u16 = head[0].split(' ').nth(1).and_then(|s| s.parse().ok()).context("bad status line")?;
    let body = if let Some(len) = header(&head, "content-length") {
        let mut body = vec![0; len.parse()?];
        r.read_exact(&mut body)?;
        body
    } else if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        for _ in 0..100_000 {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16)?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body
    } else {
        bail!("response without a length: {head:?}")
    };
    Ok((status, body))
}

/// The upstream: answers every request with 201 and the benchmark's outcome body.
pub struct Upstream {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                std::thread::spawn(move || serve_conn(conn));
            }
        });
        Ok(Self { addr, stop })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_conn(conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(w) = conn.try_clone() else { return };
    let mut w = w;
    let mut r = BufReader::new(conn);
    let response = {
        let mut out = format!(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            OUTCOME_BODY.len()
        )
        .into_bytes();
        out.extend_from_slice(OUTCOME_BODY);
        out
    };
    loop {
        let Ok(head) = read_head(&mut r) else { return };
        let len = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0usize);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() || w.write_all(&response).is_err() {
            return;
        }
    }
}

/// An `idem serve` process, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(bin: &Path, data_dir: &Path, extra: &[String], log: PathBuf) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let _ = std::fs::remove_dir_all(data_dir);
        let child = Command::new(bin)
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("IDEM_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut c) = Conn::open(addr) {
                let health = if extra.iter().any(|a| a == "--upstream") { "/_idem/healthz" } else { "/healthz" };
                if let Ok((200, _)) = c.request("GET", health, &[], b"") {
                    return Ok(server);
                }
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("idem serve exited with {status}; see {}", log.display());
            }
            ensure!(Instant::now() < deadline, "idem serve did not become healthy in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn api_claim(c: &mut Conn, key: &str, i: usize) -> Result<serde_json::Value> {
    let body = format!(r#"{{"scope":"bench","key":"{key}","json":{}}}"#, String::from_utf8(payload(i))?);
    let (status, resp) = c.request("POST", "/v1/claim", &[("Content-Type", "application/json")], body.as_bytes())?;
    ensure!(status == 200, "claim answered {status}: {}", String::from_utf8_lossy(&resp));
    Ok(serde_json::from_slice(&resp)?)
}

fn api_cycle(c: &mut Conn, key: &str, i: usize) -> Result<()> {
    let claim = api_claim(c, key, i)?;
    let token = claim["lease"]["token"].as_str().with_context(|| format!("not acquired: {claim}"))?;
    let body = serde_json::json!({
        "scope": "bench", "key": key, "token": token,
        "outcome": {"body": std::str::from_utf8(OUTCOME_BODY)?, "status": 201, "content_type": "application/json"},
    })
    .to_string();
    let (status, resp) = c.request("POST", "/v1/complete", &[("Content-Type", "application/json")], body.as_bytes())?;
    ensure!(status == 200, "complete answered {status}: {}", String::from_utf8_lossy(&resp));
    Ok(())
}

fn api_duplicate(c: &mut Conn, key: &str, i: usize) -> Result<()> {
    let d = api_claim(c, key, i)?;
    ensure!(d["decision"] == "replay", "expected replay: {d}");
    Ok(())
}

fn post_order(c: &mut Conn, key: Option<&str>, i: usize) -> Result<()> {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(k) = key {
        headers.push(("Idempotency-Key", k));
    }
    let (status, resp) = c.request("POST", "/orders", &headers, &payload(i))?;
    ensure!(status == 201 && resp == OUTCOME_BODY, "order answered {status}: {}", String::from_utf8_lossy(&resp));
    Ok(())
}

/// `threads` connections, each sending `per` requests (or cycles) through `f`.
fn load(
    addr: SocketAddr,
    threads: usize,
    per: usize,
    f: impl Fn(&mut Conn, usize, usize) -> Result<()> + Sync,
) -> Result<Samples> {
    let conns: Vec<_> = (0..threads).map(|_| Conn::open(addr).map(std::sync::Mutex::new)).collect::<Result<_>>()?;
    let failed = std::sync::Mutex::new(None);
    let s = concurrent(threads, per, |t, i| {
        if let Err(e) = f(&mut conns[t].lock().unwrap(), t, i) {
            failed.lock().unwrap().get_or_insert(e);
        }
    });
    if let Some(e) = failed.into_inner().unwrap() {
        return Err(e);
    }
    Ok(s)
}

pub fn run(r: &mut Report, s: &Scale, bin: &Path, dir: &Path) -> Result<()> {
    r.section("5. HTTP: `idem serve` JSON API and proxy vs the upstream directly");
    let upstream = Upstream::start()?;
    let api = Server::start(
        bin,
        &dir.join("http-api"),
        &["--durability".into(), "normal".into()],
        dir.join("serve-api.log"),
    )?;
    let proxy = Server::start(
        bin,
        &dir.join("http-proxy"),
        &["--durability".into(), "normal".into(), "--upstream".into(), format!("http://{}", upstream.addr)],
        dir.join("serve-proxy.log"),
    )?;
    let n = s.http_requests;
    // Completed keys for the duplicate rows.
    let dup_keys = s.dup_keys.min(n);
    {
        let mut c = Conn::open(api.addr)?;
        let mut p = Conn::open(proxy.addr)?;
        for i in 0..dup_keys {
            api_cycle(&mut c, &format!("dup-{i}"), i)?;
            post_order(&mut p, Some(&format!("dup-{i}")), i)?;
        }
    }
    r.line(format!("`idem serve` (release build, SQLite store with `--durability normal`, so the disk does not dominate) on loopback; the load generator is in `bench/src/http.rs` (keep-alive HTTP/1.1, one thread per connection) and shares the {} cores with the server, so absolute throughput is a floor. *API cycle* = `POST /v1/claim` + `POST /v1/complete` (2 requests); *proxy, new key* = one `POST /orders` with a fresh `Idempotency-Key` (claim, forward, complete); *proxy, replay* = the same request again.\n", std::thread::available_parallelism().map_or(0, |n| n.get())));
    r.line("| variant | connections | n | p50 µs | p99 µs | per second | time vs upstream direct |");
    r.line("|---|---:|---:|---:|---:|---:|---:|");
    let mut headline = None;
    for &conns in &[1usize, s.http_conns] {
        let per = n / conns;
        let round = conns;
        let direct = load(upstream.addr, conns, per, |c, _, i| post_order(c, None, i))?;
        let proxied_new =
            load(proxy.addr, conns, per, |c, t, i| post_order(c, Some(&format!("new-{round}-{t}-{i}")), i))?;
        let proxied_replay = load(proxy.addr, conns, per, |c, _, i| {
            let k = i % dup_keys;
            post_order(c, Some(&format!("dup-{k}")), k)
        })?;
        let api_cycles = load(api.addr, conns, per, |c, t, i| api_cycle(c, &format!("cycle-{round}-{t}-{i}"), i))?;
        let api_dups = load(api.addr, conns, per, |c, _, i| {
            let k = i % dup_keys;
            api_duplicate(c, &format!("dup-{k}"), k)
        })?;
        let base = direct.summary();
        for (name, smp) in [
            ("upstream directly", &direct),
            ("proxy, new key", &proxied_new),
            ("proxy, replay", &proxied_replay),
            ("JSON API, claim+complete cycle", &api_cycles),
            ("JSON API, duplicate claim", &api_dups),
        ] {
            let x = smp.summary();
            let row = format!(
                "| {name} | {conns} | {} | {} | {} | {} | {:.1}× |",
                x.n,
                us(x.p50_us),
                us(x.p99_us),
                per_sec(x.per_sec),
                base.per_sec / x.per_sec
            );
            eprintln!("   {row}");
            r.line(row);
        }
        headline = Some((conns, base, proxied_new.summary(), proxied_replay.summary(), api_cycles.summary()));
    }
    r.line("");
    if let Some((conns, base, new, replay, cycles)) = headline {
        r.headline(
            &format!("5. HTTP proxy, new key / upstream direct ({conns} connections)"),
            format!(
                "{:.2}× throughput ({} vs {} req/s), p50 +{} µs",
                new.per_sec / base.per_sec,
                per_sec(new.per_sec),
                per_sec(base.per_sec),
                us(new.p50_us - base.p50_us)
            ),
            "-",
            None,
        );
        r.headline(
            &format!("5. HTTP proxy, replay / upstream direct ({conns} connections)"),
            format!(
                "{:.2}× throughput ({} vs {} req/s)",
                replay.per_sec / base.per_sec,
                per_sec(replay.per_sec),
                per_sec(base.per_sec)
            ),
            "-",
            None,
        );
        r.headline(
            &format!("5. HTTP JSON API claim+complete cycles ({conns} connections)"),
            format!("{} cycles/s, p50 {} µs", per_sec(cycles.per_sec), us(cycles.p50_us)),
            "-",
            None,
        );
    }
    Ok(())
}
