//! `idem-spin-compose`: writes `idem-spin.wasm`, the guard plugged with the `spin:sqlite` store adapter, ready to
//! be named in a Spin app's `[component.NAME.dependencies]`.
//!
//!     idem-spin-compose [--out PATH]                          build the guard and the adapter, then compose
//!     idem-spin-compose --guard G --store S [--out PATH]      compose two components already built

use std::path::PathBuf;
use std::process::ExitCode;

use idem_spin_compose::build::Layout;

const USAGE: &str =
    "usage: idem-spin-compose [--guard GUARD.wasm --store STORE.wasm] [--out OUT.wasm]";

struct Args {
    guard: Option<PathBuf>,
    store: Option<PathBuf>,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        guard: None,
        store: None,
        out: None,
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.to_str() {
            Some("--guard") => &mut args.guard,
            Some("--store") => &mut args.store,
            Some("--out") => &mut args.out,
            _ => return Err(format!("unexpected argument {flag:?}")),
        };
        *slot = Some(
            it.next()
                .ok_or_else(|| format!("{flag:?} needs a path"))?
                .into(),
        );
    }
    if args.guard.is_some() != args.store.is_some() {
        return Err("--guard and --store go together".into());
    }
    Ok(args)
}

fn run() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let layout = Layout::from_env();
    let (guard, store) = match (args.guard, args.store) {
        (Some(guard), Some(store)) => (guard, store),
        _ => (layout.build_guard()?, layout.build_sqlite_adapter()?),
    };
    let out = args
        .out
        .unwrap_or_else(|| layout.repo.join("target/spin/idem-spin.wasm"));
    let composed = idem_spin_compose::compose(&std::fs::read(&guard)?, &std::fs::read(&store)?)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, composed)?;
    Ok(out)
}

fn main() -> ExitCode {
    match run() {
        Ok(out) => {
            println!("{}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("idem-spin-compose: {e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}
