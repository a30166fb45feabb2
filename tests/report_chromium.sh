#!/usr/bin/env bash
# Renders normad's HTML reports in a real browser (Debian's headless Chromium) and checks that each
# page drew: the DOM Chromium built holds the plots (SVG elements with their curves, bars, dots) and
# images, and the screenshot is not blank (a share of non-white pixels, the plot colours present).
# Pages: an eval report (normad eval --report, on a generated table), the zero-shot report of the
# committed FMNIST-ZS results (normad report), and an mvg eval report of generated images with a
# heat map. Where Chromium is missing or cannot start this is a skipped test (exit 77) that says
# why; under CI=true (scripts/deps.sh installs it) that is a failure.
# Usage: tests/report_chromium.sh NORMAD_BIN SOURCE_DIR [SCREENSHOT_DIR]
#   SCREENSHOT_DIR: also keep the screenshots there (docs/ holds the ones the README shows).
set -euo pipefail
bin=$1
src=$2
keep=${3:-}
[ -z "$keep" ] || keep=$(cd "$keep" && pwd)  # the script works in a temporary directory
python=${NORMAD_PYTHON:-/usr/bin/python3}

skip() {
  echo "SKIPPED: $*"
  [ "${CI:-}" = "true" ] && exit 1
  exit 77
}
fail() {
  echo "report_chromium: $*" >&2
  exit 1
}

browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || skip "no chromium on PATH (Debian package chromium; scripts/deps.sh installs it)"
"$python" -c "import PIL, numpy" 2>/dev/null || skip "$python lacks PIL or numpy (python3-pil, python3-numpy) to read the screenshots"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# Chromium keeps its profile here, not in $HOME; as root it needs --no-sandbox.
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/profile"
       --no-first-run --disable-extensions)
if ! timeout 60 "$browser" "${flags[@]}" --dump-dom "data:text/html,<p>ok</p>" >probe.html 2>probe.log ||
    ! grep -q "<p>ok</p>" probe.html; then
  tail -n 5 probe.log
  skip "chromium ($browser) cannot start headless here"
fi

# ---- the pages ----
# eval: 200 rows, anomalies scoring higher on average, predictions at a threshold of 0.6.
awk 'BEGIN { srand(3); print "index,score,prediction" > "scores.csv"; print "id,label" > "labels.csv";
  for (i = 0; i < 200; i++) { y = (i % 4 == 0); s = sprintf("%.6f", rand() * 0.6 + 0.35 * y) + 0;
    printf "%d,%.6f,%d\n", i, s, (s > 0.6) > "scores.csv"; printf "%d,%d\n", i, y > "labels.csv" } }'
"$bin" eval --scores scores.csv --labels labels.csv --json eval.json --report eval.html >eval.log ||
  { cat eval.log; fail "normad eval --report failed"; }
# zeroshot: the committed FMNIST-ZS results (seed 0, both folds, per-batch AUROCs)
"$bin" report "$src/bench/results/2026-11-24_fmnist_zs_seed0.json" --out zeroshot.html >zs.log ||
  { cat zs.log; fail "normad report on the FMNIST-ZS results failed"; }
# mvg eval: a results document over generated images, one of them with a heat map
"$python" - "$work" <<'EOF'
import json, os, sys
import numpy as np
from PIL import Image
work = sys.argv[1]
rng = np.random.default_rng(0)
doc = {"kind": "mvg-eval", "backbone": "resnet18", "categories": {}}
for cat in ("bottle", "screw"):
    items, scores, labels = [], [], []
    for i in range(6):
        img = rng.normal(120, 25, (64, 64, 3))
        anomalous = i >= 3
        if anomalous: img[20:40, 24:44] = 250
        path = os.path.join(work, f"{cat}{i}.png")
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        item = {"path": path, "name": ("broken/" if anomalous else "good/") + f"{i:03d}.png",
                "score": float(i + rng.random()), "label": int(anomalous)}
        if i == 5:
            m = np.zeros((8, 8)); m[2:5, 3:6] = 1.0
            item["map"] = {"height": 8, "width": 8, "values": m.ravel().tolist()}
        items.append(item)
    doc["categories"][cat] = {"auroc": 1.0, "train": 20, "test": 6, "items": items}
doc["mean"], doc["sem"] = 1.0, 0.0
json.dump(doc, open(os.path.join(work, "mvg.json"), "w"))
EOF
"$bin" report mvg.json --out mvg.html >mvg.log || { cat mvg.log; fail "normad report on an mvg eval document failed"; }

# ---- each page in Chromium: the DOM it built, and a screenshot ----
check_page() {
  local name=$1 min_svg=$2 pattern=$3
  timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$work/$name.html" >"$name.dom" 2>"$name.err" ||
    { tail -n 5 "$name.err"; fail "$name: chromium --dump-dom failed"; }
  local svgs
  svgs=$({ grep -o '<svg class="plot' "$name.dom" || true; } | wc -l)
  [ "$svgs" -ge "$min_svg" ] || fail "$name: Chromium's DOM has $svgs plots, expected at least $min_svg"
  grep -q "$pattern" "$name.dom" || fail "$name: Chromium's DOM has no '$pattern'"
  timeout 120 "$browser" "${flags[@]}" --window-size=1400,1800 --screenshot="$work/$name.png" "file://$work/$name.html" \
    >"$name.shot" 2>&1 || { tail -n 5 "$name.shot"; fail "$name: chromium --screenshot failed"; }
  [ -s "$name.png" ] || fail "$name: no screenshot written"
  # Not blank: at least 2% of the pixels are not white, the plots' blue is there, and what each
  # page must show: eval the anomalies' half-transparent red bars, mvg the red borders of anomalous
  # images and the heat map's blue over the one image that has a map (so the PNGs decoded).
  "$python" - "$work/$name.png" "$name" <<'EOF' || fail "$name: the screenshot does not show the page"
import sys
from PIL import Image
img = Image.open(sys.argv[1]).convert("RGB")
px = list(img.getdata())
inked = sum(1 for r, g, b in px if r < 235 or g < 235 or b < 235) / len(px)
def near(c, tol=60):
    return sum(1 for p in px if all(abs(p[i] - c[i]) <= tol for i in range(3)))
name = sys.argv[2]
blue = near((31, 119, 180))
bars = near((234, 147, 147), 25)    # #d62728 at half opacity over white
border = near((214, 39, 40), 30)
heat = near((60, 60, 188), 40)      # grey ~120 half under pure blue
print(f"{name}: {img.size[0]}x{img.size[1]}, {100 * inked:.1f}% inked, blue {blue}, red bars {bars}, "
      f"red borders {border}, heat-map blue {heat} px")
need = {"eval": bars > 500, "zeroshot": True, "mvg": border > 1000 and heat > 1000}[name]
ok = inked > 0.02 and blue > 200 and need
sys.exit(0 if ok else 1)
EOF
  [ -z "$keep" ] || cp "$work/$name.png" "$keep/report_$name.png"
  echo "report_chromium: $name OK ($svgs plots)"
}
check_page eval 3 '<line class="threshold"'
check_page zeroshot 1 '<circle class="dot"'
check_page mvg 2 'src="data:image/png;base64,'
images=$({ grep -o '<img ' mvg.dom || true; } | wc -l)
[ "$images" -eq 12 ] || fail "mvg: Chromium's DOM has $images images, expected 12"
echo "report_chromium: all pages rendered"
