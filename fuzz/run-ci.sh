#!/usr/bin/env bash
# The fuzz step of CI (.ci/run calls it; README "Run the tests"): builds every target with
# libFuzzer on the stable toolchain and runs each for a fixed time, failing on any crash, hang,
# stack overflow or oversized allocation. Usage: fuzz/run-ci.sh [SECONDS] (default 60): the
# targets run in two lanes of that length, one per core: tar_tree (the largest attack surface,
# and the slowest per input) alone, the other four one after another with shares of it.
#
# cargo-fuzz is not needed: on stable, libfuzzer-sys links libFuzzer and these are the
# sanitizer-coverage flags `cargo fuzz build --sanitizer none` passes to rustc. --target keeps
# them off build scripts and proc macros, as cargo fuzz does.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-60}
lane_a=("tar_tree:100")
lane_b=("pe_uki:45" "cmdline:20" "manifest_json:20" "kargs_toml:15")
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

# A target's new inputs go to corpus/<target> (not committed); the committed seeds and
# regressions are read from testdata/fuzz/<target>.
run_one() {
  local t=$1 secs=$2
  mkdir -p "corpus/$t" "artifacts/$t"
  if "target/$triple/release/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="artifacts/$t/" "corpus/$t" "../testdata/fuzz/$t" \
      >"artifacts/$t.log" 2>&1; then
    echo "fuzz: $t: no crash in ${secs} s ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "artifacts/$t.log" | grep -o '[0-9]*$') runs)"
  else
    echo "fuzz: $t FAILED; its log:"
    tail -n 60 "artifacts/$t.log"
    echo "fuzz: reproducer(s) in fuzz/artifacts/$t/: copy to testdata/fuzz/$t/ once fixed"
    return 1
  fi
}

run_lane() {
  local status=0 entry
  for entry in "$@"; do
    run_one "${entry%%:*}" $((seconds * ${entry##*:} / 100)) || status=1
  done
  return $status
}

run_lane "${lane_a[@]}" &
a=$!
run_lane "${lane_b[@]}" &
b=$!
status=0
wait $a || status=1
wait $b || status=1
echo "fuzz: total $(($(date +%s) - start)) s"
exit $status
