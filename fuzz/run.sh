#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation on the pinned stable toolchain (no nightly,
# no cargo-fuzz: the -C flags in rustc-sancov.sh are stable, and it applies them to idem's crates only) and runs
# each for SECONDS (default 15; CI: 15, so a minute of fuzzing). Usage: fuzz/run.sh [SECONDS] [TARGET...]. Crashes land in fuzz/artifacts/TARGET/, the corpus
# grows in fuzz/corpus/TARGET/ (both ignored by git). Reproduce a crash: fuzz/run.sh 0 TARGET; then
# fuzz/target/x86_64-unknown-linux-gnu/release/TARGET fuzz/artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-15}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(record_decode canonical_json guard_inputs http_request)
host="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTC_WRAPPER="$PWD/rustc-sancov.sh"
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
cargo build --release --target "$host" $(printf -- '--bin %s ' "${targets[@]}")
[ "$seconds" -gt 0 ] || exit 0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== fuzzing $t for ${seconds}s"
  "target/$host/release/$t" "corpus/$t" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
    -timeout=10 -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 | grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|==[0-9]+== ERROR|SUMMARY)|panicked' || true
  if compgen -G "artifacts/$t/*" >/dev/null; then
    echo "fuzz target $t found a failing input:"; ls "artifacts/$t"; exit 1
  fi
done
