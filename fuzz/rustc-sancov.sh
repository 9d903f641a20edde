#!/usr/bin/env bash
# rustc wrapper for fuzz/run.sh: adds libFuzzer's coverage instrumentation to idem's own crates, the fuzz targets
# and the two parsers idem's inputs go through (serde_json, postcard). Coverage of wasmtime or axum would only add
# noise to the search (and minutes to the build); build scripts and proc macros must not be instrumented at all.
rustc="$1"
shift
crate=""
target=""
prev=""
for arg in "$@"; do
  [ "$prev" = "--crate-name" ] && crate="$arg"
  [ "$arg" = "--target" ] && target=yes
  prev="$arg"
done
# Host units (build scripts, proc macros and their dependencies, serde_json among them) come without --target:
# instrumented, a proc macro could not be loaded.
[ -n "$target" ] || exec "$rustc" "$@"
case "$crate" in
  idem_component | idem_host | idem_cli | serde_json | postcard | record_decode | canonical_json | guard_inputs | http_request)
    exec "$rustc" "$@" -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
      -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
      -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing ;;
  *) exec "$rustc" "$@" ;;
esac
