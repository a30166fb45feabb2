#!/usr/bin/env bash
# The installable package (issue 16): installs normad from BUILD into a temporary prefix, builds
# examples/embed against it twice — with CMake's find_package(normad CONFIG) and with pkg-config —
# and checks that both programs flag the same rows as `normad score` with the same model.
#   tests/install_embed.sh BUILD SOURCE
# Exit 0 when all agree; 1 with a message otherwise; 77 (skipped) without pkg-config.
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "install_embed: $*" >&2; exit 1; }
command -v pkg-config > /dev/null || { echo "install_embed: SKIPPED: no pkg-config (apt install pkg-config)"; exit 77; }

cmake --install "$build" --prefix "$work/prefix" > "$work/install.log" || { cat "$work/install.log"; fail "cmake --install failed"; }
for f in lib/libnormad.a include/normad/normad/normad.h lib/cmake/normad/normadConfig.cmake lib/pkgconfig/normad.pc bin/normad; do
  [ -e "$work/prefix/$f" ] || fail "the install lacks $f"
done
normad="$work/prefix/bin/normad"

# A table: 3 columns, 60 normal rows around 0 and 10 anomalies around 4 (awk's seeded rand).
awk 'BEGIN { srand(7); print "a,b,c,label";
  for (i = 0; i < 70; i++) { s = i < 60 ? 0 : 4; l = i < 60 ? "normal" : "anomaly";
    printf "%.4f,%.4f,%.4f,%s\n", s + rand() - 0.5, s + rand() - 0.5, s + rand() - 0.5, l } }' > "$work/data.csv"
"$normad" train --model dsvdd --data "$work/data.csv" --label label --normal normal --epochs 5 --widths 8,4 \
  --threads 2 --out "$work/model.safetensors" > /dev/null
summary=$("$normad" score --model "$work/model.safetensors" --data "$work/data.csv" --threads 2 --out "$work/scores.csv")
want=$(echo "$summary" | sed -n 's/^scored \([0-9]*\) rows, \([0-9]*\) above.*/\2 of \1/p')
[ -n "$want" ] || fail "could not read normad score's summary: $summary"
want_rows=$(awk -F, 'NR > 1 && $3 == 1 { printf "row %d\n", $1 }' "$work/scores.csv")

check() {  # $1: the program, $2: how it was built
  local out rows
  out=$("$1" "$work/model.safetensors" "$work/data.csv") || fail "$2: the example failed: $out"
  echo "$out" | grep -q "^dsvdd: $want rows above the threshold" || fail "$2: printed '$(echo "$out" | tail -1)', normad score flagged $want"
  rows=$(echo "$out" | sed -n 's/^\(row [0-9]*\):.*/\1/p')
  [ "$rows" = "$want_rows" ] || fail "$2: flagged other rows than normad score"
  echo "install_embed: $2: $(echo "$out" | tail -1)"
}

# 1. CMake: find_package(normad CONFIG) from the prefix only.
cmake -S "$src/examples/embed" -B "$work/embed-cmake" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release \
  > "$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; fail "configuring examples/embed with find_package(normad) failed"; }
cmake --build "$work/embed-cmake" -j 2 > "$work/build.log" 2>&1 || { cat "$work/build.log"; fail "building examples/embed failed"; }
check "$work/embed-cmake/embed" "find_package(normad)"

# 2. pkg-config, without CMake.
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs normad) || fail "pkg-config knows no normad in $PKG_CONFIG_PATH"
# shellcheck disable=SC2086
g++ -O2 "$src/examples/embed/main.cpp" $flags -o "$work/embed-pc" 2> "$work/pc.log" || { cat "$work/pc.log"; fail "g++ with pkg-config's flags failed"; }
check "$work/embed-pc" "pkg-config normad"
