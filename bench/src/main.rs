//! `idem-bench`: every benchmark in one run, as ratios measured side by side, written into
//! BENCHMARKS.md with the command and the machine that produced them.
//!
//! ```text
//! cargo build --release -p idem-cli        # the `idem` binary section 5 starts
//! cargo run --release -p idem-bench        # full run (~10 min), rewrites the results block of BENCHMARKS.md
//! cargo run --release -p idem-bench -- --quick   # smoke run (~1 min), written to target/bench-tmp/quick.md
//! ```

mod http;
mod native;
mod peer;
mod redisb;
mod report;
mod scale;
mod sqlite;
mod stats;
mod wasm;
mod workload;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::report::Report;

/// How much each benchmark does.
pub struct Scale {
    pub mem_cycles: usize,
    pub dup_keys: usize,
    pub inst: usize,
    pub sqlite_full: usize,
    pub sqlite_normal: usize,
    pub threads: Vec<usize>,
    pub concurrent_cycles: usize,
    pub redis_cycles: usize,
    pub rt_ops: usize,
    pub http_requests: usize,
    pub http_conns: usize,
    pub python_cycles: usize,
    pub scale_levels: Vec<usize>,
    pub scale_claims: usize,
}

impl Scale {
    fn quick() -> Self {
        Self {
            mem_cycles: 2_000,
            dup_keys: 200,
            inst: 2_000,
            sqlite_full: 200,
            sqlite_normal: 1_000,
            threads: vec![1, 4],
            concurrent_cycles: 400,
            redis_cycles: 1_000,
            rt_ops: 200,
            http_requests: 400,
            http_conns: 4,
            python_cycles: 200,
            scale_levels: vec![1_000, 10_000],
            scale_claims: 100,
        }
    }

    fn full() -> Self {
        Self {
            mem_cycles: 50_000,
            dup_keys: 1_000,
            inst: 20_000,
            sqlite_full: 2_000,
            sqlite_normal: 10_000,
            threads: vec![1, 2, 4, 8],
            concurrent_cycles: 2_000,
            redis_cycles: 10_000,
            rt_ops: 1_000,
            http_requests: 8_000,
            http_conns: 4,
            python_cycles: 2_000,
            scale_levels: vec![1_000, 10_000, 100_000, 1_000_000],
            scale_claims: 300,
        }
    }
}

struct Args {
    quick: bool,
    only: Option<Vec<u32>>,
    out: Option<PathBuf>,
    idem_bin: Option<PathBuf>,
    redis_url: Option<String>,
    /// `--loop KIND N`: only run one operation N times, for `perf stat` / `perf record`.
    profile: Option<(String, usize)>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args { quick: false, only: None, out: None, idem_bin: None, redis_url: None, profile: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--only" => a.only = Some(value()?.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?),
            "--out" => a.out = Some(value()?.into()),
            "--idem-bin" => a.idem_bin = Some(value()?.into()),
            "--redis-url" => a.redis_url = Some(value()?),
            "--loop" => {
                let kind = value()?;
                a.profile = Some((kind, value()?.parse()?));
            }
            "-h" | "--help" => {
                println!(
                    "idem-bench [--quick] [--only 1,2,...,7] [--out FILE] [--idem-bin PATH] [--redis-url URL]\n\n\
                     Sections: 1 wasm overhead, 2 instantiation, 3 SQLite, 4 Redis, 5 HTTP, 6 Python peer, 7 scale.\n\
                     Without --redis-url a redis-server is started on a free loopback port.\n\
                     The default run rewrites the results block of BENCHMARKS.md; --quick writes target/bench-tmp/quick.md."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(a)
}

/// A `redis-server` of our own on a free loopback port, without persistence; killed when dropped.
struct RedisServer {
    child: Child,
    url: String,
}

impl RedisServer {
    fn start() -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (apt-get install redis-server, or pass --redis-url)")?;
        let server = Self { child, url: format!("redis://127.0.0.1:{port}/0") };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = redisb::connect(&server.url)
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn machine(redis_url: &str) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "?".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
        .and_then(|v| v.trim_end_matches(" kB").parse::<u64>().ok())
        .map_or("?".into(), |kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)));
    let redis_version = redisb::connect(redis_url)
        .ok()
        .and_then(|mut c| redis::cmd("INFO").arg("server").query::<String>(&mut c).ok())
        .and_then(|i| i.lines().find_map(|l| l.strip_prefix("redis_version:").map(str::to_string)))
        .unwrap_or_else(|| "?".into());
    format!(
        "- nproc: {}\n- CPU: {cpu}\n- memory: {mem}\n- kernel: {}\n- {}\n- redis-server {redis_version}, SQLite {} (bundled by rusqlite)\n- host profile: the workspace `[profile.release]` (opt-level 3, thin LTO); the component: `[profile.component]` (opt-level \"s\", LTO)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        sh("uname", &["-sr"]),
        sh("rustc", &["--version"]),
        rusqlite::version(),
    )
}

const START: &str = "<!-- idem-bench:results:start -->";
const END: &str = "<!-- idem-bench:results:end -->";

fn write_results(path: &Path, block: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(START), old.find(END)) {
        (Some(s), Some(e)) if s < e => format!("{}{START}\n{block}\n{}", &old[..s], &old[e..]),
        _ => format!("# Benchmarks\n\n{START}\n{block}\n{END}\n"),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let dir = root.join("target/bench-tmp");
    std::fs::create_dir_all(&dir)?;
    let s = if args.quick { Scale::quick() } else { Scale::full() };
    let on = |n: u32| args.only.as_ref().is_none_or(|o| o.contains(&n));
    let started = Instant::now();
    if let Some((kind, n)) = &args.profile {
        return profile_loop(kind, *n);
    }

    let own_redis = match &args.redis_url {
        Some(_) => None,
        None if (4..=7).any(on) => Some(RedisServer::start()?),
        None => None,
    };
    let redis_url = args.redis_url.clone().or_else(|| own_redis.as_ref().map(|r| r.url.clone())).unwrap_or_default();
    let idem_bin = args.idem_bin.clone().unwrap_or_else(|| root.join("target/release/idem"));
    if on(5) && !idem_bin.exists() {
        bail!("{} not found: run `cargo build --release -p idem-cli` first (or pass --idem-bin)", idem_bin.display());
    }

    let compile = Instant::now();
    let runtime = idem_host::Runtime::new()?;
    let compile = compile.elapsed();

    let mut r = Report::default();
    if on(1) {
        wasm::overhead(&mut r, &s, &runtime)?;
    }
    if on(2) {
        wasm::instantiation(&mut r, &s, &runtime)?;
    }
    if on(3) {
        sqlite::run(&mut r, &s, &dir, &runtime)?;
    }
    if on(4) {
        redisb::run(&mut r, &s, &redis_url, &runtime)?;
    }
    if on(5) {
        http::run(&mut r, &s, &idem_bin, &dir)?;
    }
    if on(6) {
        peer::run(&mut r, &s, &root, &redis_url, &dir)?;
    }
    if on(7) {
        scale::run(&mut r, &s, &dir, &redis_url, &runtime)?;
    }

    let mut command = String::from("cargo build --release -p idem-cli && cargo run --release -p idem-bench");
    let extra: Vec<String> = std::env::args().skip(1).collect();
    if !extra.is_empty() {
        command.push_str(" -- ");
        command.push_str(&extra.join(" "));
    }
    let block = format!(
        "## Results\n\nProduced by `{command}` at commit `{}`{} on {} (mode: {}, {:.0} s; compiling the component took {} ms).\n\n**Machine**\n\n{}\n**Headlines**\n\n{}{}",
        sh("git", &["-C", root.to_str().unwrap_or("."), "rev-parse", "--short", "HEAD"]),
        if sh("git", &["-C", root.to_str().unwrap_or("."), "status", "--porcelain"]).is_empty() {
            ""
        } else {
            " (with uncommitted changes)"
        },
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        if args.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64(),
        compile.as_millis(),
        machine(&redis_url),
        r.render_headlines(),
        r.body,
    );
    let out = args.out.clone().unwrap_or_else(|| {
        if args.quick || args.only.is_some() { dir.join("quick.md") } else { root.join("BENCHMARKS.md") }
    });
    write_results(&out, &block)?;
    eprintln!("wrote {} in {:.0} s", out.display(), started.elapsed().as_secs_f64());
    Ok(())
}

/// One operation in a loop and nothing else, so that `perf stat -e page-faults` or `perf record` can be pinned on
/// it: `status` (a whole `Guard` call), `cycle` (claim + complete through the component), `native-cycle`.
fn profile_loop(kind: &str, n: usize) -> Result<()> {
    use crate::workload::Cycle;
    let runtime = idem_host::Runtime::new()?;
    let guard = idem_host::Guard::builder().runtime(runtime).store(idem_host::store::MemoryStore::new()).build()?;
    let wasm = workload::Wasm(guard.clone());
    let native = workload::Native(native::guard(std::sync::Arc::new(idem_host::store::MemoryStore::new())));
    let op = workload::Wasm::op("absent");
    let start = Instant::now();
    for i in 0..n {
        match kind {
            "status" => drop(guard.status(&op)?),
            "cycle" => wasm.claim_complete(&format!("k-{i}"), i)?,
            "native-cycle" => native.claim_complete(&format!("k-{i}"), i)?,
            other => bail!("--loop takes status, cycle or native-cycle, not {other:?}"),
        }
    }
    eprintln!("{kind}: {n} in {:?} ({:.2} µs each)", start.elapsed(), start.elapsed().as_secs_f64() * 1e6 / n as f64);
    Ok(())
}
