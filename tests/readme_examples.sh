#!/usr/bin/env bash
# Runs the README's example command chains as written, so that a README whose example breaks, or
# whose quoted figures drift, fails CI. Each chain is the fenced block after a line
#   <!-- readme-test: NAME -->
# in README.md. The only substitutions: `build/normad` is the binary under test, `scripts/` the
# source tree's, `--pretrained` becomes `--seed 0` (no network in CI), and $TRAIN_DIR / $TEST_DIR are
# small generated image folders. Checks:
#   table:  eval prints the AUROC the README quotes for the GEMM engine `normad --version` reports
#           (within 0.01 for other CPUs and thread counts) and the share of normal test rows flagged
#           (within 1.5 points): native with its AVX-512 tile (6 x 64): "the chain prints AUROC X"
#           and "flags X% of the N benign"; Eigen: "Eigen: AUROC X, flags Y%"; OpenBLAS with the
#           kernel set its figures were measured with (Cooperlake): "OpenBLAS: AUROC X, flags Y%";
#           with OpenBLAS's other kernel sets, or native's narrower tiles, the chain must run and
#           print an AUROC, which is not compared (no quoted figure);
#   images: every test image gets a finite score and a prediction, and the threshold's rule is printed.
# Usage: tests/readme_examples.sh NORMAD_BIN SOURCE_DIR [table|images]...  (ctest runs one name each)
set -euo pipefail
bin=$1
src=$2
shift 2
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(table images)
python=${NORMAD_PYTHON:-/usr/bin/python3}
# The chains call scripts that need scikit-learn, torch, torchvision and PIL: without them this is
# a skipped test (exit 77, ctest's SKIP_RETURN_CODE), except under CI=true, where it fails.
if ! "$python" -c "import sklearn, torch, torchvision, PIL" 2>/dev/null; then
  echo "SKIPPED: $python lacks scikit-learn, torch, torchvision or PIL"
  [ "${CI:-}" = "true" ] && exit 1
  exit 77
fi

# The fenced block after the marker line, with the substitutions above.
block() {
  awk -v name="$1" '
    $0 ~ "<!-- readme-test: " name " -->" { armed = 1; next }
    armed && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }
  ' "$src/README.md" |
    sed -e "s#build/normad#$bin#g" -e "s#/usr/bin/python3 scripts/#$python $src/scripts/#g" -e "s#--pretrained#--seed 0#g"
}

fail() {
  echo "readme_examples: $*" >&2
  exit 1
}

run_table() {
  local cmds out quoted got
  cmds=$(block table)
  [ -n "$cmds" ] || fail "README.md has no '<!-- readme-test: table -->' block"
  echo "$cmds"
  out=$(bash -euo pipefail -c "$cmds" 2>&1) || { echo "$out"; fail "the table chain failed"; }
  echo "$out" | grep -v '^train ' | tail -n 20
  # the engine behind the products decides which of the README's figures apply
  local engine desc
  desc=$("$bin" --version | sed -n 's/.*CPU GEMM \([^;]*\);.*/\1/p')
  engine=${desc%% *}
  echo "readme_examples: CPU GEMM engine ${desc:-unknown}"
  if { [ "$engine" = openblas ] && ! [[ "$desc" =~ \(Cooperlake\) ]]; } ||
     { [ "$engine" = native ] && ! [[ "$desc" =~ "6 x 64 tile" ]]; }; then
    got=$(echo "$out" | awk '/^AUROC/ {print $2}' | tail -n 1)
    [ -n "$got" ] || fail "eval printed no AUROC"
    echo "readme_examples: table chain ran (AUROC $got); the README quotes no figures for $desc"
    return 0
  fi
  if [ "$engine" = openblas ] || [ "$engine" = eigen ]; then
    local label=OpenBLAS
    [ "$engine" = eigen ] && label=Eigen
    quoted=$(grep -o "$label: AUROC [0-9.]*" "$src/README.md" | head -n 1 | awk '{print $3}')
    [ -n "$quoted" ] || fail "README.md quotes no '$label: AUROC X'"
  else
    quoted=$(grep -o 'the chain prints AUROC [0-9.]*' "$src/README.md" | head -n 1 | awk '{print $5}')
    [ -n "$quoted" ] || fail "README.md quotes no 'the chain prints AUROC X'"
  fi
  got=$(echo "$out" | awk '/^AUROC/ {print $2}' | tail -n 1)
  [ -n "$got" ] || fail "eval printed no AUROC"
  awk -v q="$quoted" -v g="$got" 'BEGIN { d = q - g; if (d < 0) d = -d; exit !(d <= 0.01) }' ||
    fail "eval printed AUROC $got, the README quotes $quoted"
  # The share of benign test rows flagged at the model's threshold: "flags X% of the" in the README
  # (within 1.5 points: two rows of 179 on another CPU).
  local qfpr gfpr
  if [ "$engine" = openblas ] || [ "$engine" = eigen ]; then
    qfpr=$(grep -o "$label: AUROC [0-9.]*,[[:space:]]*flags [0-9.]*%" "$src/README.md" | head -n 1 | awk '{print $NF}' | tr -d '%')
  else
    qfpr=$(grep -o 'flags [0-9.]*% of the [0-9]* benign' "$src/README.md" | head -n 1 | awk '{print $2}' | tr -d '%')
  fi
  [ -n "$qfpr" ] || fail "README.md quotes no 'flags X% of the N benign' rows"
  gfpr=$(echo "$out" | sed -n 's/^at the model.s threshold: \([0-9.]*\)% of normal rows flagged.*/\1/p')
  [ -n "$gfpr" ] || fail "eval printed no false-positive rate"
  awk -v q="$qfpr" -v g="$gfpr" 'BEGIN { d = q - g; if (d < 0) d = -d; exit !(d <= 1.5) }' ||
    fail "eval flagged $gfpr% of the normal rows, the README quotes $qfpr%"
  echo "readme_examples: table chain OK (AUROC $got, README $quoted; normal rows flagged $gfpr%, README $qfpr%)"
}

run_images() {
  local cmds out n
  cmds=$(block images)
  [ -n "$cmds" ] || fail "README.md has no '<!-- readme-test: images -->' block"
  echo "$cmds"
  # Smooth random textures: 16 training images, 6 test images (3 normal, 3 with a bright square).
  "$python" - "$PWD/train" "$PWD/test" <<'EOF'
import os, sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
train, test = sys.argv[1], sys.argv[2]
os.makedirs(train, exist_ok=True); os.makedirs(test, exist_ok=True)
def texture():
    base = rng.normal(128, 20, (8, 8, 3))
    img = np.kron(base, np.ones((12, 12, 1))) + rng.normal(0, 8, (96, 96, 3))
    return img
for i in range(16):
    Image.fromarray(np.clip(texture(), 0, 255).astype(np.uint8)).save(f"{train}/{i:03d}.png")
for i in range(6):
    img = texture()
    if i >= 3: img[30:66, 30:66] = 250
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(f"{test}/{i:03d}.png")
EOF
  out=$(TRAIN_DIR="$PWD/train" TEST_DIR="$PWD/test" bash -euo pipefail -c "$cmds" 2>&1) ||
    { echo "$out"; fail "the images chain failed"; }
  echo "$out" | tail -n 20
  [ -f scores.csv ] || fail "the images chain wrote no scores.csv"
  n=$(tail -n +2 scores.csv | wc -l)
  [ "$n" -eq 6 ] || fail "scores.csv has $n rows for 6 test images"
  head -n 1 scores.csv | grep -q '^name,score,prediction$' || fail "scores.csv header is $(head -n 1 scores.csv)"
  tail -n +2 scores.csv | awk -F, '$2 !~ /^[-+0-9.eE]+$/ { exit 1 }' || fail "a non-numeric score in scores.csv"
  echo "$out" | grep -qi "threshold" || fail "mvg fit printed no threshold rule"
  echo "readme_examples: images chain OK"
}

for name in "${names[@]}"; do
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT  # also when a check fails (the weights file is large)
  (cd "$work" && "run_$name")
  rm -rf "$work"
done
