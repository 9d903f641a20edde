//! Nested cargo builds of the WebAssembly pieces, each in a target directory of its own so that none waits on
//! the lock of the build that invoked it (a build script, `cargo run`, or the main workspace's build).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("could not run cargo: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("cargo build of {0} for wasm32-wasip2 failed")]
    Failed(String),
    #[error("cargo reported success but {0} is missing")]
    Missing(PathBuf),
}

/// Where the pieces live, found from this crate's own location in the repository.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The idem repository (the main workspace).
    pub repo: PathBuf,
    /// Target directory for the guard: the main workspace's, so `cargo build -p idem-host` and this share one
    /// build of it.
    pub guard_target: PathBuf,
    /// Target directory for the adapter and the example app.
    pub guest_target: PathBuf,
}

impl Layout {
    /// `IDEM_COMPONENT_TARGET_DIR` (as host/build.rs reads it) and `IDEM_SPIN_GUEST_TARGET_DIR` override the
    /// defaults `target/component` and `target/spin/guest`.
    pub fn from_env() -> Self {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let repo = repo.canonicalize().unwrap_or(repo);
        let dir = |var: &str, default: &[&str]| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| default.iter().fold(repo.clone(), |p, part| p.join(part)))
        };
        Self {
            guard_target: dir("IDEM_COMPONENT_TARGET_DIR", &["target", "component"]),
            guest_target: dir("IDEM_SPIN_GUEST_TARGET_DIR", &["target", "spin", "guest"]),
            repo,
        }
    }

    pub fn example_dir(&self) -> PathBuf {
        self.repo.join("examples").join("spin")
    }

    /// Files whose change should rebuild what this module builds (for `cargo:rerun-if-changed`).
    pub fn sources(&self) -> Vec<PathBuf> {
        let spin = self.repo.join("spin");
        let example = self.example_dir();
        vec![
            self.repo.join("wit"),
            self.repo.join("component/src"),
            self.repo.join("component/Cargo.toml"),
            self.repo.join("Cargo.lock"),
            spin.join("store-sqlite/src"),
            spin.join("store-sqlite/wit"),
            spin.join("store-sqlite/Cargo.toml"),
            spin.join("Cargo.lock"),
            example.join("src"),
            example.join("Cargo.toml"),
            example.join("Cargo.lock"),
        ]
    }

    /// The guard component, built exactly as host/build.rs builds it, so the two share one fresh build.
    pub fn build_guard(&self) -> Result<PathBuf, BuildError> {
        let mut cmd = cargo(&self.repo);
        cmd.args([
            "build",
            "--profile",
            "component",
            "--package",
            "idem-component",
            "--target",
            WASM_TARGET,
            "--target-dir",
        ])
        .arg(&self.guard_target);
        run(cmd, "the guard (idem-component)")?;
        existing(
            self.guard_target
                .join(WASM_TARGET)
                .join("component/idem_component.wasm"),
        )
    }

    /// The `spin:sqlite` store adapter.
    pub fn build_sqlite_adapter(&self) -> Result<PathBuf, BuildError> {
        let mut cmd = cargo(&self.repo.join("spin"));
        cmd.args([
            "build",
            "--release",
            "--package",
            "idem-spin-store-sqlite",
            "--target",
            WASM_TARGET,
            "--target-dir",
        ])
        .arg(&self.guest_target);
        run(cmd, "the sqlite store adapter")?;
        existing(
            self.guest_target
                .join(WASM_TARGET)
                .join("release/idem_spin_store_sqlite.wasm"),
        )
    }

    /// The example Spin app's HTTP component.
    pub fn build_example(&self) -> Result<PathBuf, BuildError> {
        let mut cmd = cargo(&self.example_dir());
        cmd.args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--target-dir",
        ])
        .arg(&self.guest_target);
        run(cmd, "the example app")?;
        existing(
            self.guest_target
                .join(WASM_TARGET)
                .join("release/idem_spin_example.wasm"),
        )
    }
}

fn cargo(dir: &Path) -> Command {
    let mut cmd =
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")));
    cmd.current_dir(dir)
        // Flags meant for the calling build (coverage, sanitizers, target-cpu) must not reach a guest build,
        // and the caller's target directory is locked by the caller.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_MAKEFLAGS");
    cmd
}

fn run(mut cmd: Command, what: &str) -> Result<(), BuildError> {
    if cmd.status()?.success() {
        Ok(())
    } else {
        Err(BuildError::Failed(what.to_owned()))
    }
}

fn existing(path: PathBuf) -> Result<PathBuf, BuildError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(BuildError::Missing(path))
    }
}
