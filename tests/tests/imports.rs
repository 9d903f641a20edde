//! What the built component asks of its host: the idem store and the few WASI interfaces std needs for time and
//! random bits. Never files, sockets or HTTP.

use wasmparser::{Parser, Payload};

fn top_level_imports(wasm: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.expect("the component parses") {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    names.push(import.expect("import parses").name.0.to_string());
                }
            }
            _ => {}
        }
    }
    names
}

/// The guard uses the store, the wall clock and random bits. Rust's std runtime adds the stdio, terminal,
/// environment and exit interfaces (for its panic message and process plumbing); a host may give those empty
/// implementations. The list is exact, so any new import fails here until it is justified.
const EXPECTED: &[&str] = &[
    "idem:guard/store",
    "wasi:clocks/wall-clock",
    "wasi:random/insecure-seed",
    "wasi:clocks/monotonic-clock",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

#[test]
fn imports_only_the_store_and_harmless_wasi() {
    let imports = top_level_imports(idem_host::GUARD_WASM);
    let mut unversioned: Vec<&str> = imports.iter().map(|i| i.split('@').next().unwrap()).collect();
    unversioned.sort();
    let mut expected = EXPECTED.to_vec();
    expected.sort();
    assert_eq!(unversioned, expected, "imports: {imports:?}");
    assert!(imports.contains(&"idem:guard/store@0.1.0".to_string()));
    for import in &imports {
        for forbidden in ["wasi:filesystem", "wasi:sockets", "wasi:http"] {
            assert!(!import.starts_with(forbidden), "{import}");
        }
    }
}

#[test]
fn exports_the_guard_interface() {
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(idem_host::GUARD_WASM) {
        match payload.unwrap() {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(reader) if depth == 0 => {
                exports.extend(reader.into_iter().map(|e| e.unwrap().name.0.to_string()));
            }
            _ => {}
        }
    }
    assert_eq!(exports, ["idem:guard/guard@0.1.0"]);
}

#[test]
fn release_component_stays_small() {
    let size = idem_host::GUARD_WASM.len();
    assert!(size <= 250 * 1024, "the guard component is {size} bytes, over the 250 KB budget");
}
