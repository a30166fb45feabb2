#!/bin/bash
# The full comparison of issue 14's "done when": bench/compare_torch.py, compare_backbones.py and
# compare_sklearn.py at 1 and 2 threads, RUNS times each, interleaved (run 1 of every script and
# thread count, then run 2, ...: a slow minute of this shared machine lands on different cases),
# every raw output appended to one file, then each case's median (bench/median_of_runs.py).
# Takes ~40 minutes per run on the 2-core development machine; keep the machine otherwise idle.
# Usage: bench/compare_all.sh [RUNS (3)] [BENCH (build/normad_bench)] [OUT (bench/results/<date>_compare_all_cpu-<N>core.txt)]
# SCRIPTS="compare_torch compare_backbones" in the environment runs only those (default: all three).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
bench=${2:-build/normad_bench}
cores=$(nproc)
out=${3:-bench/results/$(date -u +%F)_compare_all_cpu-${cores}core.txt}
[ -x "$bench" ] || { echo "compare_all: no benchmark binary at $bench (make build first)" >&2; exit 1; }
threads_list="1"; [ "$cores" -ge 2 ] && threads_list="1 2"
scripts=${SCRIPTS:-compare_torch compare_backbones compare_sklearn}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
: > "$out.err"
{
  echo "date:    $(date -u '+%F %H:%MZ')"
  echo "device:  $(lscpu | sed -n 's/^Model name: *//p' | head -1) (family $(lscpu | sed -n 's/^CPU family: *//p' | head -1), model $(lscpu | sed -n 's/^Model: *//p' | head -1)), $cores cores, $(free -g | awk '/Mem:/ {print $2}') GB"
  dirty=$(git status --porcelain -- . ':!bench/results' | head -1)
  echo "build:   commit $(git rev-parse --short HEAD)${dirty:+ (uncommitted changes)}, $bench"
  echo "command: ${SCRIPTS:+SCRIPTS=\"$SCRIPTS\" }bench/compare_all.sh $runs $bench"
} > "$tmp"
for run in $(seq 1 "$runs"); do
  for t in $threads_list; do
    for script in $scripts; do
      echo "== $script threads $t run $run $(date -u +%H:%MZ)" >> "$tmp"
      # a failing script is recorded and the rest still run; its stderr (each set-up's timings,
      # tracebacks) goes to OUT.err
      python3 "bench/$script.py" --threads "$t" --bench "$bench" >> "$tmp" 2>> "$out.err" ||
        echo "== $script threads $t run $run FAILED (rc $?, see $out.err)" >> "$tmp"
    done
  done
done
python3 bench/median_of_runs.py "$tmp" >> "$tmp"
cp "$tmp" "$out"
echo "compare_all: wrote $out"
