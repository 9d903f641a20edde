//! Builds the guard component for `wasm32-wasip2` once, so the host, its tests and the `idem` binary all embed
//! the very same file. It runs a nested cargo in its own target directory: sharing the outer one would wait on
//! the outer build's lock forever.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    for watched in ["component/src", "component/Cargo.toml", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=IDEM_COMPONENT_TARGET_DIR");

    let target_dir = std::env::var_os("IDEM_COMPONENT_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("component"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // Profile overrides meant for the host build (debug assertions in a fuzz build, say) must not reach the guest.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CARGO_PROFILE_") {
            command.env_remove(name);
        }
    }
    let status = command
        .current_dir(&root)
        .args([
            "build",
            "--profile",
            "component",
            "--package",
            "idem-component",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir)
        // Flags meant for the host build (coverage, sanitizers, target-cpu) must not leak into the guest build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_MAKEFLAGS")
        .status()
        .expect("could not run cargo to build the guard component");
    assert!(status.success(), "building the guard component for wasm32-wasip2 failed");

    let wasm = target_dir.join("wasm32-wasip2/component/idem_component.wasm");
    assert!(wasm.exists(), "the component build did not produce {}", wasm.display());
    // Copy it beside this build's output so a later component build cannot change what this build embedded.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("idem_guard.wasm");
    std::fs::copy(&wasm, &out).expect("copy the guard component");
    println!("cargo:rustc-env=IDEM_GUARD_WASM={}", out.display());
}
