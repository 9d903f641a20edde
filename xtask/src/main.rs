//! `cargo xtask test` runs every suite the project has, in order, and stops at the first failure:
//! the Rust workspace, then the Python and JavaScript bindings on the very component the Rust host embeds, then
//! the Spin adapter under a real Spin, then a short fuzz run. `cargo xtask test rust|python|js|spin|fuzz` runs
//! the named suites only.
//!
//! The Python and JavaScript suites install their locked dependencies from PyPI and npm on first use
//! (into `target/python-venv` and `examples/js/node_modules`); nothing is fetched while tests run.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

const SUITES: &[&str] = &["rust", "python", "js", "spin", "fuzz"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => {
            let chosen: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            if let Some(bad) = chosen.iter().find(|s| !SUITES.contains(s)) {
                bail!("unknown suite {bad:?}; suites are {SUITES:?}");
            }
            test(if chosen.is_empty() { SUITES.to_vec() } else { chosen })
        }
        _ => {
            eprintln!("usage: cargo xtask test [{}]...", SUITES.join("|"));
            std::process::exit(2)
        }
    }
}

fn test(suites: Vec<&str>) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    if suites.contains(&"rust") {
        run(cargo().current_dir(&root).args(["test", "--workspace", "--exclude", "xtask"]))?;
    }
    if suites.contains(&"python") || suites.contains(&"js") {
        let env = export_component(&root)?;
        if suites.contains(&"python") {
            python(&root, &env)?;
        }
        if suites.contains(&"js") {
            javascript(&root, &env)?;
        }
    }
    if suites.contains(&"spin") {
        spin(&root)?;
    }
    if suites.contains(&"fuzz") {
        // A short libFuzzer run of each target; `fuzz/run.sh 3600 TARGET` is the long one (RELIABILITY.md).
        run(Command::new("bash").arg(root.join("fuzz/run.sh")).arg("15"))?;
    }
    eprintln!("all suites passed: {}", suites.join(", "));
    Ok(())
}

/// The environment the binding suites run in: the component's path and SHA-256, and the `idem` binary that wrote
/// it (the interop tests run the Rust host beside each binding).
type BindingEnv = [(&'static str, OsString); 3];

/// Writes out the component the Rust host embeds, so the other languages load exactly those bytes, and returns
/// its path and SHA-256 as the `idem` binary reports them.
fn export_component(root: &Path) -> Result<BindingEnv> {
    let wasm = root.join("target/idem-guard.wasm");
    let out = cargo()
        .current_dir(root)
        .args(["run", "--quiet", "--package", "idem-cli", "--bin", "idem", "--", "component", "--write"])
        .arg(&wasm)
        .output()
        .context("running idem component")?;
    if !out.status.success() {
        bail!("idem component failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let sha256 = String::from_utf8(out.stdout)?.trim().to_string();
    eprintln!("guard component {} sha256 {sha256}", wasm.display());
    Ok([
        ("IDEM_GUARD_WASM", wasm.into()),
        ("IDEM_GUARD_SHA256", sha256.into()),
        // `cargo run` above just built it.
        ("IDEM_BIN", root.join("target/debug/idem").into()),
    ])
}

fn python(root: &Path, env: &BindingEnv) -> Result<()> {
    let venv = root.join("target/python-venv");
    if !venv.join("bin/python").exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    let python = venv.join("bin/python");
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(root.join("examples/python/requirements.txt")))?;
    run(Command::new(&python)
        .current_dir(root)
        .args(["-m", "pytest", "examples/python", "-p", "no:cacheprovider"])
        .envs(env.clone()))
}

fn javascript(root: &Path, env: &BindingEnv) -> Result<()> {
    let dir = root.join("examples/js");
    // `npm install` rather than `npm ci`: the registry lacks some optional platform packages of jco's
    // dependencies, which npm leaves out of the lock and `npm ci` then reports as a mismatch. The lock still
    // pins every package that is installed.
    run(Command::new("npm").current_dir(&dir).args(["install", "--no-audit", "--no-fund", "--loglevel=error"]))?;
    for script in ["build", "test"] {
        run(Command::new("npm").current_dir(&dir).args(["run", "--silent", script]).envs(env.clone()))?;
    }
    Ok(())
}

fn spin(root: &Path) -> Result<()> {
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["test", "--manifest-path", "spin/Cargo.toml"])
        .env("CARGO_TARGET_DIR", root.join("target/spin"));
    // The workplace keeps a Spin CLI beside the checkout; an explicit SPIN or one on PATH wins.
    let shared = root.join("../shared/tools/spin/spin");
    if std::env::var_os("SPIN").is_none() && shared.exists() {
        cmd.env("SPIN", shared.canonicalize()?);
    }
    run(&mut cmd)
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
