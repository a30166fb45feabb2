#!/usr/bin/env bash
# The one prepared device check of the CUDA backend (issue 13), for the lent GPU machine. From here:
#   scripts/device_bundle.sh fetch && scripts/device_bundle.sh fetch-data     (once, ~50 MB, ignored by git)
#   device run: command "bash scripts/device_run.sh build tests bench sanitize zeroshot", timeout_s 600,
#               carry [".device_deps/debs", ".device_deps/data"] (on an H200, 2026-12-04: 326 s; the
#               limits below add up to 760 s, so if a stage runs long, split the stages over two calls
#               while the machine is warm; the build stays)
# (one call may run 10 minutes; the stage limits below add up to about 13 of the 15 device minutes,
# the machine's start included). Stages, each under its own time limit so one slow stage cannot eat
# the others':
#   build     unpack the dependencies, configure (Release, sm_90), build normad, normad_tests, normad_bench
#   tests     every CUDA test and the op harness on the GPU against the reference backend
#             ([cuda], [backend_ops]; the [cuda_body] host tests too)
#   bench     normad_bench's cuda/ cases (figures kept even if what follows fails), then
#             bench/compare_torch_cuda.py beside PyTorch + cuDNN, and the issue's targets
#   zeroshot  FMNIST-ZS fold A, 300 iterations, --device cuda and --device cpu: AUROCs within 0.005
#   sanitize  compute-sanitizer --tool memcheck over the CUDA kernel tests, the caching pool off
#             (NORMAD_CUDA_NO_CACHE=1: an overrun into a reused block would be invisible)
# Everything lands in $OUT (at most 8 files come back): log.txt (the machine, each stage's time and
# exit code, the summary lines), build.txt.gz, tests.txt, bench.txt, bench.json, normad_bench.json,
# zeroshot.txt, sanitizer.txt. Commit the figures to bench/results/ with the date, the device and
# the commands. On your own GPU machine (Debian packages installed): OUT=dir bash
# scripts/device_run.sh build tests bench ... works the same (docs/cuda.md).
# The tests run with NORMAD_REQUIRE_GPU=1: a CUDA test that finds no GPU FAILS here instead of
# skipping, so a run on a machine whose GPU is not visible cannot read as a pass.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd) || exit 1
cd "$root" || exit 1
usage="usage: bash scripts/device_run.sh STAGE... (stages: build tests bench zeroshot sanitize; one call may
run 10 minutes: build tests bench in one, zeroshot sanitize in the next)"
stages=("$@")
[ ${#stages[@]} -gt 0 ] || { echo "$usage" >&2; exit 2; }
for s in "${stages[@]}"; do
  case $s in
    build | tests | bench | zeroshot | sanitize) ;;
    *) echo "device_run: unknown stage '$s'; $usage" >&2; exit 2 ;;
  esac
done
out=${OUT:-$root/device_out}
mkdir -p "$out"
log=$out/log.txt
build=$root/build-gpu
export NORMAD_REQUIRE_GPU=1

# Runs stage $1 with a time limit of $2 seconds, output to $3; records its time and exit code.
stage() {
  local name=$1 limit=$2 file=$3
  shift 3
  local t0=$SECONDS
  timeout "$limit" bash -c "$*" > "$file" 2>&1
  local rc=$?
  echo "stage $name: rc=$rc ($((SECONDS - t0)) s, limit $limit s) -> $(basename "$file")" | tee -a "$log"
  return $rc
}

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  nvcc --version | tail -1
  python3 -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())" 2>&1
  uname -r  # gVisor reports 4.4.0: compute-sanitizer refuses the device there (docs/cuda.md)
  grep PRETTY_NAME /etc/os-release 2>&1
  ldd --version 2>&1 | head -1
  c++ --version 2>&1 | head -1
  git -C "$root" log --oneline -1 2>/dev/null || true
} >> "$log"
# every stage after build needs its programs
if [[ " ${stages[*]} " != *" build "* ]] && [ ! -x "$build/normad_tests" ]; then
  echo "device_run: no $build/normad_tests: run the build stage first (this machine may have been given back)" |
    tee -a "$log"
  exit 1
fi

# The bundle's libraries (oneTBB, benchmark, libcrypto) for normad's programs only: PyTorch keeps the
# machine's own.
libdir=$(scripts/device_bundle.sh libdir)
with_libs="env LD_LIBRARY_PATH=$libdir"
tests_bin="$with_libs $build/normad_tests"

for s in "${stages[@]}"; do
  case $s in
    build)
      # shellcheck disable=SC2016
      stage build 200 "$out/build.txt" '
        scripts/device_bundle.sh unpack > /dev/null &&
        gen=$(command -v ninja > /dev/null && echo "-G Ninja" || true) &&
        cmake -S . -B '"$build"' $gen -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNORMAD_CUDA=ON \
          $(scripts/device_bundle.sh flags) &&
        cmake --build '"$build"' -j "$(nproc)" --target normad normad_tests normad_bench' ||
        { tail -30 "$out/build.txt" >> "$log"; exit 1; }
      ;;
    tests)
      stage tests 100 "$out/tests.txt" "$tests_bin '[cuda],[backend_ops],[cuda_body],[cuda_detect]' --durations yes" ||
        tail -40 "$out/tests.txt" >> "$log"
      grep -E "^(backend ops|backend grads|All tests|test cases)" "$out/tests.txt" >> "$log"
      echo "tests: $(grep -c 'SKIPPED:' "$out/tests.txt") SKIPPED lines (must be 0 on a GPU)" | tee -a "$log"
      ;;
    sanitize)
      # memcheck slows kernels 10-100x: the [cuda] cases and the op harness (small shapes), not the
      # benchmarks.
      # Not the [oom] case (memcheck counts the failed 1 PiB cudaMalloc it provokes as an error), and
      # no --leak-check: the cuBLAS handle, created once and kept for the process's life
      # (cuda/device.cpp), holds cuBLAS's workspace, which memcheck reports as 3 leaks (64 MiB) at
      # exit (first H200 run, 2026-12-04); normad's own device memory is counted by its allocator,
      # and the [cuda] tests check that it returns to where it was.
      sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
      if [ -z "$sanitizer" ]; then
        echo "stage sanitize: skipped: no compute-sanitizer on PATH or in /usr/local/cuda/bin" | tee -a "$log"
        continue
      fi
      stage sanitize 120 "$out/sanitizer.txt" \
        "NORMAD_CUDA_NO_CACHE=1 $with_libs $sanitizer --tool memcheck --error-exitcode 3 \
           $build/normad_tests '[cuda]~[oom],[backend_ops]'" ||
        tail -20 "$out/sanitizer.txt" >> "$log"
      grep -E "ERROR SUMMARY|All tests|test cases" "$out/sanitizer.txt" >> "$log"
      ;;
    bench)
      stage bench-normad 150 "$out/bench.txt" \
        "$with_libs $build/normad_bench --benchmark_filter=^cuda/ --benchmark_counters_tabular=true \
           --benchmark_out='$out/normad_bench.json' --benchmark_out_format=json" ||
        tail -20 "$out/bench.txt" >> "$log"
      stage bench-torch 70 "$out/compare.txt" \
        "python3 bench/compare_torch_cuda.py --normad-json '$out/normad_bench.json' --json '$out/bench.json'" ||
        tail -20 "$out/compare.txt" >> "$log"
      cat "$out/compare.txt" >> "$out/bench.txt" && rm -f "$out/compare.txt"
      grep -E "^(target|device-to-device)" "$out/bench.txt" >> "$log"
      ;;
    zeroshot)
      data=$root/.device_deps/prefix/usr/share/datasets/fashion-mnist
      if [ ! -d "$data" ]; then
        echo "stage zeroshot: skipped (no Fashion-MNIST: run scripts/device_bundle.sh fetch-data and carry it)" | tee -a "$log"
        continue
      fi
      stage zeroshot 120 "$out/zeroshot.txt" "
        for d in cuda cpu; do
          $with_libs '$build/normad' zeroshot --data fmnist --data-dir '$data' --fold A --iters 300 --recipe paper --device \$d \
            --json '$out/zs_'\$d'.json' || exit 1
        done
        python3 - '$out/zs_cuda.json' '$out/zs_cpu.json' <<'PY'
import json, sys
g, c = (json.load(open(p)) for p in sys.argv[1:3])
worst = max(abs(a['acr'] - b['acr']) for a, b in zip(g['ratios'], c['ratios']))
print('FMNIST-ZS fold A 300 iters: |AUROC cuda - cpu| max over ratios', round(worst, 4), 'within 0.005' if worst <= 0.005 else 'NOT within 0.005')
PY" || tail -20 "$out/zeroshot.txt" >> "$log"
      grep -E "AUROC cuda|s per iteration" "$out/zeroshot.txt" >> "$log"
      rm -f "$out"/zs_*.json
      ;;
  esac
done
rm -f "$out/build.txt.gz"
gzip -f "$out/build.txt" 2>/dev/null || true
echo "done: $(ls "$out" | tr '\n' ' ')" >> "$log"
