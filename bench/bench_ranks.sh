#!/bin/bash
# 1 vs 2 MPI ranks on one machine, each rank one thread (issue 18; docs/distributed.md):
#   - an ACR meta-training iteration: FMNIST-ZS fold A, the Omniglot net, 32 tasks x 30 rows, the
#     paper's recipe (normad zeroshot prints seconds per iteration and, on 2 ranks, the bytes
#     all-reduced per iteration and rank 0's time in the all-reduce);
#   - a Gaussian-AD fit on images: wide_resnet50_2 levels 2,3 (512 + 1024 pooled features),
#     N generated 256 x 256 PNGs, seeded random weights (scripts/export_torchvision.py --seed 0);
#     each rank extracts its share, the moment sums (8 (p^2 + 2p + 2) bytes per level) are
#     all-reduced once.
# Scaling efficiency = t(1 rank) / (R t(R ranks)). One process with 2 threads is printed beside
# them: on one machine threads share the work without copying gradients; ranks are for machines.
# Each figure is the median of RUNS runs. Needs mpiexec (openmpi-bin), /usr/bin/python3 with numpy,
# PIL and torch (the images and weights).
# Usage: bench/bench_ranks.sh BUILD_DIR [RUNS=3] [IMAGES=64]
set -euo pipefail
build=${1:?usage: bench/bench_ranks.sh BUILD_DIR [RUNS] [IMAGES]}
runs=${2:-3}
images=${3:-64}
here=$(cd "$(dirname "$0")/.." && pwd)
normad=$(cd "$build" && pwd)/normad
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi() { local np=$1; shift; mpiexec -np "$np" --oversubscribe --allow-run-as-root "$@"; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "# bench/bench_ranks.sh $build $runs $images — $(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# normad $(git -C "$here" rev-parse --short HEAD), $("$normad" --version), $(mpiexec --version | head -1)"

# ---- ACR meta-training iteration (FMNIST-ZS fold A, paper recipe, 30 iterations) ----
zs="zeroshot --fold A --iters 30 --recipe paper --ratios 0.1 --batch-normals 50"
per_iter() { grep -m1 "s per iteration" | awk '{print $3}'; }
declare -A zs_t
for setup in "1 rank" "2 ranks" "1 process, 2 threads"; do
  for r in $(seq "$runs"); do
    case $setup in
      "1 rank") "$normad" $zs --threads 1 > "$work/zs.txt" 2>&1 ;;
      "2 ranks") mpi 2 "$normad" $zs --threads 1 > "$work/zs.txt" 2>&1 ;;
      *) "$normad" $zs --threads 2 > "$work/zs.txt" 2>&1 ;;
    esac
    per_iter < "$work/zs.txt" >> "$work/zs_$r.$setup"
    [ "$setup" = "2 ranks" ] && grep -m1 "all-reduced" "$work/zs.txt" | sed 's/^fold A: 2 ranks, //' > "$work/zs_reduce.txt"
  done
  zs_t[$setup]=$(cat "$work"/zs_*."$setup" | median)
done
echo
echo "ACR-DSVDD meta-training iteration (FMNIST-ZS fold A, Omniglot net, 32 tasks x 30 rows), median of $runs runs:"
printf "  %-22s %8s s/iteration\n" "1 rank (1 thread)" "${zs_t[1 rank]}"
printf "  %-22s %8s s/iteration  speed-up %.2f, scaling efficiency %.0f%%\n" "2 ranks (1 thread each)" "${zs_t[2 ranks]}" \
  "$(echo "${zs_t[1 rank]} / ${zs_t[2 ranks]}" | bc -l)" "$(echo "100 * ${zs_t[1 rank]} / (2 * ${zs_t[2 ranks]})" | bc -l)"
printf "  %-22s %8s s/iteration\n" "1 process, 2 threads" "${zs_t[1 process, 2 threads]}"
echo "  2 ranks: $(cat "$work/zs_reduce.txt")"

# ---- Gaussian-AD fit on images ----
/usr/bin/python3 - "$work/images" "$images" <<'EOF'
import sys, os
import numpy as np
from PIL import Image
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out)
rng = np.random.default_rng(0)
for i in range(n):  # smooth random textures: noise at 1/8 resolution, upsampled
    small = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(small).resize((256, 256), Image.BILINEAR).save(f"{out}/{i:04d}.png")
EOF
OMP_NUM_THREADS=1 /usr/bin/python3 "$here/scripts/export_torchvision.py" wide_resnet50_2 "$work/w.safetensors" --seed 0 > /dev/null
fit="mvg fit --images $work/images --backbone wide_resnet50_2 --weights $work/w.safetensors --levels 2,3 --threads 1 --calibration 0.25 --json $work/fit.json --out $work/m.safetensors"
wall() { /usr/bin/time -f %e "$@" > /dev/null 2> "$work/time.txt" || { cat "$work/time.txt"; exit 1; }; tail -1 "$work/time.txt"; }
declare -A fit_t
for setup in "1 rank" "2 ranks" "1 process, 2 threads"; do
  for r in $(seq "$runs"); do
    case $setup in
      "1 rank") wall "$normad" $fit ;;
      "2 ranks") wall mpiexec -np 2 --oversubscribe --allow-run-as-root "$normad" $fit ;;
      *) wall "$normad" ${fit/--threads 1/--threads 2} ;;
    esac >> "$work/fit_$r.$setup"
  done
  fit_t[$setup]=$(cat "$work"/fit_*."$setup" | median)
done
bytes=$(/usr/bin/python3 -c "import json; d = json.load(open('$work/fit.json'))['dims']; print(sum(8 * (p * p + 2 * p + 2) for p in d))")
echo
echo "Gaussian-AD fit, $images images 256 x 256, wide_resnet50_2 levels 2,3 (75% fitted, 25% scored for the threshold), wall seconds of the whole command, median of $runs runs:"
printf "  %-22s %8s s\n" "1 rank (1 thread)" "${fit_t[1 rank]}"
printf "  %-22s %8s s  speed-up %.2f, scaling efficiency %.0f%%\n" "2 ranks (1 thread each)" "${fit_t[2 ranks]}" \
  "$(echo "${fit_t[1 rank]} / ${fit_t[2 ranks]}" | bc -l)" "$(echo "100 * ${fit_t[1 rank]} / (2 * ${fit_t[2 ranks]})" | bc -l)"
printf "  %-22s %8s s\n" "1 process, 2 threads" "${fit_t[1 process, 2 threads]}"
echo "  2 ranks: the moment sums all-reduced once: $bytes bytes ($(echo "$bytes / 1000000" | bc -l | xargs printf %.1f) MB), the held-out scores all-gathered"
