#!/usr/bin/env bash
# The one prepared device check of the CUDA backend (issue 13), for the lent GPU machine. From here:
#   scripts/device_bundle.sh fetch && scripts/device_bundle.sh fetch-data     (once, ~50 MB, ignored by git)
#   device run 1: command "bash scripts/device_run.sh build tests bench", timeout_s 560,
#                 carry [".device_deps/debs", ".device_deps/data"]
#   device run 2 (at once, while the machine is warm; the build stays): "bash scripts/device_run.sh
#                 zeroshot sanitize", timeout_s 280, same carry
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
# Everything lands in $OUT (at most 8 files come back): log.txt (stage times and exit codes, the
# GPU), build.txt.gz, tests.txt, bench.txt, bench.json, zeroshot.txt, sanitizer.txt. Commit the figures to
# bench/results/ with the date, the device and this command.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${OUT:-$root/device_out}
mkdir -p "$out"
log=$out/log.txt
build=$root/build-gpu
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(build tests bench zeroshot sanitize)

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
  git -C "$root" log --oneline -1 2>/dev/null || true
} >> "$log"

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
      ;;
    sanitize)
      # memcheck slows kernels 10-100x: the [cuda] cases only (small shapes), not the benchmarks
      stage sanitize 120 "$out/sanitizer.txt" \
        "NORMAD_CUDA_NO_CACHE=1 $with_libs compute-sanitizer --tool memcheck --leak-check full --error-exitcode 3 \
           $build/normad_tests '[cuda]'" ||
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
      cat "$out/compare.txt" >> "$out/bench.txt" && rm -f "$out/compare.txt" "$out/normad_bench.json"
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
    *)
      echo "device_run: unknown stage '$s' (build tests sanitize bench zeroshot)" | tee -a "$log"
      exit 2
      ;;
  esac
done
rm -f "$out/build.txt.gz"
gzip -f "$out/build.txt" 2>/dev/null || true
echo "done: $(ls "$out" | tr '\n' ' ')" >> "$log"
