//! Builds everything the tests run under Spin, once per change: the guard, the store adapter, their
//! composition, and the example app. The tests get the exact files as constants, so they never build anything.

use std::path::PathBuf;

use idem_spin_compose::build::Layout;

fn main() {
    let layout = Layout::from_env();
    for source in layout.sources() {
        println!("cargo:rerun-if-changed={}", source.display());
    }
    for var in ["IDEM_COMPONENT_TARGET_DIR", "IDEM_SPIN_GUEST_TARGET_DIR"] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("{e}");
        std::process::exit(1)
    };
    let guard = layout.build_guard().unwrap_or_else(|e| fail(&e));
    let store = layout.build_sqlite_adapter().unwrap_or_else(|e| fail(&e));
    let app = layout.build_example().unwrap_or_else(|e| fail(&e));

    let read = |p: &PathBuf| {
        std::fs::read(p).unwrap_or_else(|e| fail(&format!("read {}: {e}", p.display())))
    };
    let composed =
        idem_spin_compose::compose(&read(&guard), &read(&store)).unwrap_or_else(|e| fail(&e));
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_else(|| fail(&"OUT_DIR is not set")));
    let composed_path = out.join("idem-spin.wasm");
    let app_path = out.join("idem_spin_example.wasm");
    // Copies, so a later guest build cannot change what this test binary was built against.
    std::fs::write(&composed_path, composed).unwrap_or_else(|e| fail(&e));
    std::fs::copy(&app, &app_path).unwrap_or_else(|e| fail(&e));

    println!(
        "cargo:rustc-env=IDEM_SPIN_GUARD_WASM={}",
        composed_path.display()
    );
    println!("cargo:rustc-env=IDEM_SPIN_APP_WASM={}", app_path.display());
    println!(
        "cargo:rustc-env=IDEM_SPIN_MANIFEST={}",
        layout.example_dir().join("spin.toml").display()
    );
}
