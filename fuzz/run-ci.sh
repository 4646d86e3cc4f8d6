#!/usr/bin/env bash
# The fuzz step of CI (.ci/run calls it; README "Run the tests"): builds every target with
# libFuzzer on the stable toolchain and runs each for a fixed time, failing on any crash, hang,
# stack overflow or oversized allocation. Usage: fuzz/run-ci.sh [SECONDS_PER_TARGET] (default 45).
#
# cargo-fuzz is not needed: on stable, libfuzzer-sys links libFuzzer and these are the
# sanitizer-coverage flags `cargo fuzz build --sanitizer none` passes to rustc. --target keeps
# them off build scripts and proc macros, as cargo fuzz does.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-45}
targets=(tar_tree pe_uki manifest_json kargs_toml cmdline)
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
  --cfg fuzzing -Cdebug-assertions -Coverflow-checks"

start=$(date +%s)
cargo build --locked --release --target "$triple" --bins
echo "fuzz: build took $(($(date +%s) - start)) s"

# Two targets at a time (CI has two cores). A target's new inputs go to corpus/<target>
# (not committed); the committed seeds and regressions are read from testdata/fuzz/<target>.
run_one() {
  local t=$1
  mkdir -p "corpus/$t" "artifacts/$t"
  if "target/$triple/release/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="artifacts/$t/" "corpus/$t" "../testdata/fuzz/$t" \
      >"artifacts/$t.log" 2>&1; then
    echo "fuzz: $t: no crash in ${seconds} s ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "artifacts/$t.log" | grep -o '[0-9]*$') runs)"
  else
    echo "fuzz: $t FAILED; its log:"
    tail -n 60 "artifacts/$t.log"
    echo "fuzz: reproducer(s) in fuzz/artifacts/$t/: copy to testdata/fuzz/$t/ once fixed"
    return 1
  fi
}

status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  pids=()
  for t in "${targets[@]:i:2}"; do
    run_one "$t" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do
    wait "$p" || status=1
  done
done
echo "fuzz: total $(($(date +%s) - start)) s"
exit $status
