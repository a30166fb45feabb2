#!/usr/bin/env bash
# The one prepared device check of the CUDA backend (issue 13), for the lent GPU machine. From here:
#   scripts/device_bundle.sh fetch && scripts/device_bundle.sh fetch-data     (once, ~50 MB, ignored by git)
#   device run: command "bash scripts/device_run.sh", carry [".device_deps/debs", ".device_deps/data"],
#               timeout_s 590
# Stages (all by default, or name some: bash scripts/device_run.sh build tests), each under its own
# time limit so one slow stage cannot eat the others' (the whole budget is 15 device minutes):
#   build     unpack the dependencies, configure (Release, sm_90), build normad, normad_tests, normad_bench
#   tests     every CUDA test and the op harness on the GPU against the reference backend
#             ([cuda], [backend_ops]; the [cuda_body] host tests too)
#   sanitize  compute-sanitizer --tool memcheck over the CUDA kernel tests
#   bench     bench/compare_torch_cuda.py: every cuda/ case beside PyTorch + cuDNN, and the targets
#   zeroshot  FMNIST-ZS fold A, 300 iterations, --device cuda and --device cpu: AUROCs within 0.005
# Everything lands in $OUT (at most 8 files come back): log.txt (stage times and exit codes, the
# GPU), tests.txt, sanitizer.txt, bench.txt, bench.json, zeroshot.txt. Commit the figures to
# bench/results/ with the date, the device and this command.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${OUT:-$root/device_out}
mkdir -p "$out"
log=$out/log.txt
build=$root/build-gpu
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(build tests sanitize bench zeroshot)

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

libdir=$(scripts/device_bundle.sh libdir)
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
tests_bin=$build/normad_tests

for s in "${stages[@]}"; do
  case $s in
    build)
      # shellcheck disable=SC2016
      stage build 300 "$out/build.txt" '
        scripts/device_bundle.sh unpack > /dev/null &&
        gen=$(command -v ninja > /dev/null && echo "-G Ninja") &&
        cmake -S . -B '"$build"' $gen -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNORMAD_CUDA=ON \
          $(scripts/device_bundle.sh flags) &&
        cmake --build '"$build"' -j "$(nproc)" --target normad normad_tests normad_bench' ||
        { tail -30 "$out/build.txt" >> "$log"; exit 1; }
      ;;
    tests)
      stage tests 240 "$out/tests.txt" "'$tests_bin' '[cuda],[backend_ops],[cuda_body],[cuda_detect]' --durations yes" ||
        tail -40 "$out/tests.txt" >> "$log"
      grep -E "^(backend ops|backend grads|All tests|test cases)" "$out/tests.txt" >> "$log"
      ;;
    sanitize)
      # memcheck slows kernels 10-100x: the [cuda] cases only (small shapes), not the benchmarks
      stage sanitize 180 "$out/sanitizer.txt" \
        "compute-sanitizer --tool memcheck --leak-check full --error-exitcode 3 '$tests_bin' '[cuda]'" ||
        tail -20 "$out/sanitizer.txt" >> "$log"
      grep -E "ERROR SUMMARY|All tests|test cases" "$out/sanitizer.txt" >> "$log"
      ;;
    bench)
      stage bench 300 "$out/bench.txt" \
        "python3 bench/compare_torch_cuda.py --bench '$build/normad_bench' --json '$out/bench.json'" ||
        tail -20 "$out/bench.txt" >> "$log"
      grep -E "^(target|device-to-device)" "$out/bench.txt" >> "$log"
      ;;
    zeroshot)
      data=$root/.device_deps/prefix/usr/share/datasets/fashion-mnist
      if [ ! -d "$data" ]; then
        echo "stage zeroshot: skipped (no Fashion-MNIST: run scripts/device_bundle.sh fetch-data and carry it)" | tee -a "$log"
        continue
      fi
      stage zeroshot 240 "$out/zeroshot.txt" "
        for d in cuda cpu; do
          '$build/normad' zeroshot --data fmnist --data-dir '$data' --fold A --iters 300 --recipe paper --device \$d \
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
