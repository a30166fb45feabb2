#!/usr/bin/env bash
# Mutation check: applies each one-line mutation of tests/mutations.txt to a scratch copy of the
# working tree, rebuilds incrementally, runs the whole ctest suite, and prints which mutations the
# suite killed (some test failed) and which survived. Every listed mutation must be killed.
# The first run configures and builds the scratch copy (minutes); each mutation then rebuilds only
# what it touched. The source tree is never modified. Tests that already fail without any mutation
# (a README figure another machine measured, say) are listed first and do not count: a mutation is
# killed only by a test that passed on the unmutated build.
# Usage: scripts/mutate.sh [NAME_REGEX]   (an extended regex on the names, e.g. 'issue 1[56]'; env
# MUTATE_DIR, default /tmp/normad_mutate; JOBS)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=${MUTATE_DIR:-/tmp/normad_mutate}
jobs=${JOBS:-$(nproc)}
only=${1:-}
python=/usr/bin/python3

mkdir -p "$scratch/src"
# Tracked and untracked-but-not-ignored files: what CI would build. Files whose contents changed
# are copied with the current time as their mtime (--no-times): with the source's older mtime an
# object built from the previous contents after that edit would look up to date, and the edit
# (a new test, say) would silently not be in the build the mutations run against.
(cd "$root" && git ls-files -co --exclude-standard -z) |
  rsync -a --no-times --from0 --files-from=- --checksum "$root/" "$scratch/src/"
cmake -S "$scratch/src" -B "$scratch/build" -DCMAKE_BUILD_TYPE=Release > "$scratch/configure.log"
cmake --build "$scratch/build" -j "$jobs" > "$scratch/build.log" 2>&1 || { tail -20 "$scratch/build.log"; exit 1; }

# The failing tests of a ctest log, sorted: every " NUM - NAME (why)" line after ctest's "The
# following tests FAILED:" (why: Failed, Not Run, SEGFAULT, Timeout, Subprocess aborted, ...).
failures() {
  sed -n '/^The following tests FAILED:/,$p' "$1" | grep -E '^[[:space:]]+[0-9]+ - .* \([^)]*\)$' |
    sed 's/^[[:space:]]*//' | sort || true
}
# mutations_apply is left out: a mutated line no longer reads as its entry, which it would flag (a
# false kill every time)
(cd "$scratch/build" && ctest -j "$jobs" -E '^mutations_apply$' > "$scratch/baseline.log" 2>&1) || true
baseline=$(failures "$scratch/baseline.log")
[ -z "$baseline" ] || printf "mutate: failing before any mutation (not counted):\n%s\n" "$baseline" >&2
# name<TAB>file<TAB>from<TAB>to, one line per mutation.
"$python" "$root/scripts/mutations.py" list "$root/tests/mutations.txt" > "$scratch/list.tsv"

killed=0; survived=0; errors=0; report=""
while IFS=$'\t' read -r name file from to; do
  [ -n "$only" ] && ! [[ "$name" =~ $only ]] && continue
  target="$scratch/src/$file"
  cp "$target" "$target.orig"
  if ! FROM="$from" TO="$to" "$python" - "$target" <<'PY'
import os, sys
p = sys.argv[1]; s = open(p).read(); a = os.environ["FROM"]; b = os.environ["TO"]
if s.count(a) != 1: sys.exit(f"mutate: '{a}' occurs {s.count(a)} times in {p}")
open(p, "w").write(s.replace(a, b))
PY
  then mv "$target.orig" "$target"; errors=$((errors + 1)); report+="ERROR     $name (text not found once)\n"; continue; fi
  if ! cmake --build "$scratch/build" -j "$jobs" > "$scratch/build.log" 2>&1 < /dev/null; then
    verdict="KILLED    (does not compile)"
  else
    (cd "$scratch/build" && ctest -j "$jobs" -E '^mutations_apply$' > "$scratch/ctest.log" 2>&1 < /dev/null) || true  # no test may eat the list
    red=$(comm -13 <(echo "$baseline") <(failures "$scratch/ctest.log") | grep -c . || true)
    grep -q "tests passed" "$scratch/ctest.log" || red=1  # ctest itself did not finish
    [ "$red" -gt 0 ] && verdict="KILLED    ($red tests red)" || verdict="SURVIVED"
  fi
  mv "$target.orig" "$target"
  touch "$target"
  [[ "$verdict" == SURVIVED* ]] && survived=$((survived + 1)) || killed=$((killed + 1))
  report+="$verdict  $name\n"
  echo "mutate: $verdict  $name" >&2
done < "$scratch/list.tsv"
cmake --build "$scratch/build" -j "$jobs" > "$scratch/build.log" 2>&1  # back to the unmutated build
printf "%b" "$report"
echo "mutate: $killed killed, $survived survived, $errors not applied (their text moved: update tests/mutations.txt)"
[ "$survived" -eq 0 ] && [ "$errors" -eq 0 ]
