#!/usr/bin/env bash
# Runs the same normad commands with two builds and compares every output byte for byte: the
# refactor check of the device-layer issue ("FMNIST-ZS and the one-class results stay
# bit-identical"). JSON outputs are compared without their timing, memory and device fields.
# Usage: scripts/bitwise_compare.sh BIN_BEFORE BIN_AFTER [WORKDIR]
# Exit status 0 when every output is identical.
set -euo pipefail
bin_a=$(realpath "$1")
bin_b=$(realpath "$2")
work=${3:-$(mktemp -d)}
src=$(cd "$(dirname "$0")/.." && pwd)
python=${NORMAD_PYTHON:-/usr/bin/python3}
mkdir -p "$work"
cd "$work"
[ -f bc/train.csv ] || "$python" "$src/scripts/export_breast_cancer.py" bc > /dev/null
[ -f digits.csv ] || "$python" "$src/scripts/export_sklearn_table.py" digits digits.csv > /dev/null
# Backbones with seeded weights (offline), and 12 smooth random textures to fit and score.
for b in resnet18 efficientnet_b0; do
  [ -f $b.safetensors ] || "$python" "$src/scripts/export_torchvision.py" $b $b.safetensors --seed 0 > /dev/null
done
[ -d images ] || "$python" - images <<'PY'
import os, sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
os.makedirs(sys.argv[1])
for i in range(12):
    img = np.kron(rng.normal(128, 20, (8, 8, 3)), np.ones((12, 12, 1))) + rng.normal(0, 8, (96, 96, 3))
    if i >= 9: img[30:66, 30:66] = 250
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(f"{sys.argv[1]}/{i:03d}.png")
PY

# Each command is run once per build in its own folder ("a" or "b"); $BIN is the build's binary.
commands=(
  '$BIN train --model ntl --data ../bc/train.csv --label diagnosis --normal benign --out ntl.safetensors --json ntl_train.json'
  '$BIN score --model ntl.safetensors --data ../bc/test.csv --out ntl_scores.csv'
  '$BIN train --model dsvdd --data ../bc/train.csv --label diagnosis --normal benign --out dsvdd.safetensors --json dsvdd_train.json'
  '$BIN score --model dsvdd.safetensors --data ../bc/test.csv --out dsvdd_scores.csv'
  '$BIN train --model acr-ntl --data ../digits.csv --label class --train-classes 0,1,2,3,4,5,6 --iters 30 --out acr.safetensors --json acr_train.json'
  '$BIN score --model acr.safetensors --data ../digits.csv --out acr_scores.csv'
  '$BIN train --model acr-dsvdd --data ../digits.csv --label class --train-classes 0,1,2,3,4,5,6 --iters 30 --out acr_dsvdd.safetensors'
  '$BIN score --model acr_dsvdd.safetensors --data ../digits.csv --out acr_dsvdd_scores.csv'
  '$BIN zeroshot --csv ../digits.csv --label class --train-classes 0,1,2,3,4,5,6 --test-classes 7,8,9 --model ntl --iters 20 --json zs_csv_ntl.json'
  '$BIN zeroshot --data fmnist --fold A --iters 20 --recipe paper --seed 3 --json zs_paper.json'
  '$BIN zeroshot --data fmnist --fold B --iters 10 --recipe few-class --seed 1 --json zs_fewclass.json'
  '$BIN oneclass --classes 0 --epochs 1 --ae-epochs 1 --json oneclass.json'
  '$BIN features --backbone efficientnet_b0 --weights ../efficientnet_b0.safetensors --images ../images --out feats_b0.csv'
  '$BIN mvg fit --features feats_b0.csv --out mvg_b0.safetensors --calibration 0.25'
  '$BIN mvg score --model mvg_b0.safetensors --images ../images --out mvg_b0_scores.csv'
  '$BIN mvg fit --backbone resnet18 --weights ../resnet18.safetensors --images ../images --out mvg_r18.safetensors --calibration 0.25'
  '$BIN mvg score --model mvg_r18.safetensors --images ../images --out mvg_r18_scores.csv'
)
for side in a b; do
  rm -rf "$side" && mkdir "$side"
  BIN=$([ $side = a ] && echo "$bin_a" || echo "$bin_b")
  for c in "${commands[@]}"; do
    cmd=${c//\$BIN/$BIN}
    echo "[$side] ${c}" >&2
    (cd "$side" && eval "$cmd" > /dev/null 2>> log.txt) || { echo "FAILED ($side): $c" >&2; tail -5 "$side/log.txt" >&2; exit 1; }
  done
done

status=0
for f in $(cd a && ls); do
  [ "$f" = log.txt ] && continue
  if [[ $f == *.json ]]; then
    same=$("$python" - "a/$f" "b/$f" <<'PY'
import json, sys
drop = {"secs_per_iter", "seconds", "memory", "secs", "device", "tf32"}  # timing and run metadata
def clean(v):
    if isinstance(v, dict): return {k: clean(x) for k, x in v.items() if k not in drop}
    if isinstance(v, list): return [clean(x) for x in v]
    return v
a, b = (clean(json.load(open(p))) for p in sys.argv[1:])
print("identical" if a == b else "DIFFERENT")
PY
)
  else
    same=$(cmp -s "a/$f" "b/$f" && echo identical || echo DIFFERENT)
  fi
  printf '%-28s %s\n' "$f" "$same"
  [ "$same" = identical ] || status=1
done
exit $status
