//! Starting and stopping `spin up` on a copy of the example app.
//!
//! Each test gets its own copy of the app directory, so its `.spin/` state (the SQLite database the guard and
//! the app share) starts empty and survives a restart of the server within the test. Servers run one at a
//! time: the machine is small, and racing tests must not race each other for cores.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::http;

const APP_WASM: &str = env!("IDEM_SPIN_APP_WASM");
const GUARD_WASM: &str = env!("IDEM_SPIN_GUARD_WASM");
const MANIFEST: &str = env!("IDEM_SPIN_MANIFEST");

const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The Spin CLI: `$SPIN` (a relative path is tried from the working directory, then from the repository
/// root), else `spin` on `PATH`. Panics with one line saying how to provide it: a missing Spin is never a pass.
pub fn spin_binary() -> PathBuf {
    if let Some(spin) = std::env::var_os("SPIN").filter(|s| !s.is_empty()) {
        let spin = PathBuf::from(spin);
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for candidate in [spin.clone(), repo.join(&spin)] {
            if candidate.is_file() {
                return candidate;
            }
        }
        panic!(
            "Spin not found at SPIN={} (also tried from the repository root); point SPIN at a Spin 4 CLI, e.g. SPIN=$PWD/../shared/tools/spin/spin",
            spin.display()
        );
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("spin"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        let ci = if std::env::var("CI").as_deref() == Ok("true") { " (CI=true)" } else { "" };
        panic!("Spin not found{ci}: set SPIN=/path/to/spin (e.g. SPIN=$PWD/../shared/tools/spin/spin) or put Spin 4 on PATH, then rerun `cargo test --manifest-path spin/Cargo.toml`")
    })
}

/// A private copy of the example app, laid out as `spin.toml` expects, removed when dropped.
pub struct AppDir {
    path: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

impl AppDir {
    pub fn new(name: &str) -> Self {
        // A test that failed while holding the lock poisons it; the next test still gets a fresh app.
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let path = std::env::temp_dir().join(format!("idem-spin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let release = path.join("target/wasm32-wasip2/release");
        std::fs::create_dir_all(&release).expect("create the app directory");
        std::fs::copy(MANIFEST, path.join("spin.toml")).expect("copy spin.toml");
        std::fs::copy(APP_WASM, release.join("idem_spin_example.wasm"))
            .expect("copy the app component");
        std::fs::copy(GUARD_WASM, path.join("target/idem-spin.wasm"))
            .expect("copy the composed guard");
        Self {
            path,
            _serial: serial,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AppDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running `spin up`, stopped with SIGINT (by its PID) when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    pub fn start(app: &AppDir) -> Self {
        let addr = free_port();
        let log = app.path().join(format!("spin-{}.log", addr.port()));
        let out = std::fs::File::create(&log).expect("create the spin log");
        let child = Command::new(spin_binary())
            .arg("up")
            .arg("--from")
            .arg(app.path().join("spin.toml"))
            .arg("--listen")
            .arg(addr.to_string())
            .current_dir(app.path())
            .env("SPIN_VARIABLE_TEST_HOOKS", "true")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the log handle"))
            .stderr(out)
            .spawn()
            .expect("run spin up");
        let mut server = Self { child, addr, log };
        server.wait_ready();
        server
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> http::Response {
        http::request(self.addr, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}\n{}", self.log_text()))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "spin up exited with {status} before serving:\n{}",
                    self.log_text()
                );
            }
            if http::request(self.addr, "GET", "/work-orders/ready/releases", &[], b"")
                .is_ok_and(|r| r.status == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "spin up did not serve within {START_TIMEOUT:?}:\n{}",
            self.log_text()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGINT lets `spin up` stop its `spin trigger http` child too; SIGKILL is the fallback.
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port the kernel just handed out on loopback. Another process could take it before Spin binds it; on this
/// single-user test machine that is rare enough, and a clash shows as a clear start-up failure.
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free loopback port")
}
