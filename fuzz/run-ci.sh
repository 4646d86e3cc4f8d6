#!/usr/bin/env bash
# The fuzz step of CI (.ci/run calls it; README "Run the tests"): builds every target with
# libFuzzer on the stable toolchain and runs each, failing on any crash, hang, stack overflow
# or oversized allocation. The targets run in two lanes, one per core: tar_tree (the largest
# attack surface, and the slowest per input) alone, the other five one after another.
#
#   fuzz/run-ci.sh                  the CI gate: a fixed seed, a fixed number of runs per
#                                   target and an empty scratch corpus, so the gate explores
#                                   the same inputs on every machine and a red CI reproduces
#                                   here (a slower machine stops at the time cap: a prefix of
#                                   the same inputs). About a minute per lane here.
#   fuzz/run-ci.sh --explore SECS   exploration: a random seed, SECS per lane, new inputs
#                                   kept in fuzz/corpus/<target> between runs.
#
# cargo-fuzz is not needed: on stable, libfuzzer-sys links libFuzzer and these are the
# sanitizer-coverage flags `cargo fuzz build --sanitizer none` passes to rustc. --target keeps
# them off build scripts and proc macros, as cargo fuzz does.
set -euo pipefail
cd "$(dirname "$0")"

# target:runs:share (share: percent of the lane's time cap, or of SECS when exploring)
lane_a=("tar_tree:300000:100")
lane_b=("pe_uki:300000:35" "cmdline:800000:18" "manifest_json:1500000:17" "kargs_toml:600000:15"
  "erofs_writer:1500:15")
if [[ ${1:-} == --explore ]]; then
  explore=1
  seconds=${2:?usage: fuzz/run-ci.sh --explore SECONDS}
else
  explore=0
  seconds=240 # the cap; the runs above take about a quarter of it here
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
fi
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

# New inputs go to corpus/<target> when exploring, to a scratch directory in the gate (so it
# always starts from the same corpus); the committed seeds and regressions are read from
# testdata/fuzz/<target>.
run_one() {
  local t=$1 runs=$2 secs=$3 corpus limits
  if ((explore)); then
    corpus=corpus/$t
    limits=(-max_total_time="$secs")
  else
    corpus=$scratch/$t
    limits=(-seed=1 -runs="$runs" -max_total_time="$secs")
  fi
  mkdir -p "$corpus" "artifacts/$t"
  if "target/$triple/release/$t" "${limits[@]}" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="artifacts/$t/" "$corpus" "../testdata/fuzz/$t" \
      >"artifacts/$t.log" 2>&1; then
    echo "fuzz: $t: no crash in $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "artifacts/$t.log" | grep -o '[0-9]*$') runs ($((SECONDS - lane_start)) s into its lane)"
  else
    echo "fuzz: $t FAILED; its log:"
    tail -n 60 "artifacts/$t.log"
    echo "fuzz: reproducer(s) in fuzz/artifacts/$t/: copy to testdata/fuzz/$t/ once fixed"
    return 1
  fi
}

run_lane() {
  local status=0 entry t runs share lane_start=$SECONDS
  for entry in "$@"; do
    IFS=: read -r t runs share <<<"$entry"
    run_one "$t" "$runs" $((seconds * share / 100)) || status=1
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
