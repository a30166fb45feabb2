#!/usr/bin/env bash
# Runs libFuzzer targets (built by `make fuzz` in BUILD with NORMAD_FUZZ=ON) for SECONDS each, one
# after the other, and prints a table: target, executions, seconds, executions/s, corpus size, result.
#   bash scripts/fuzz.sh BUILD SECONDS TARGET...
# Each target starts from the committed seeds (tests/fuzz/corpus/<target>) and its earlier findings
# (BUILD/fuzz-corpus/<target>, where new inputs go; kept between runs). A crash, leak, sanitizer
# report or timeout (30 s on one input) stops that target and leaves the input in
# BUILD/crashes/<target>/; the script then exits 1. Copy such an input to
# tests/fuzz/regressions/<target>/ once fixed: the <target>_replay test runs it in every `make test`.
# Logs: BUILD/fuzz-logs/<target>.log. The pixel, inflate and rss limits are in the targets and
# below; libFuzzer's -max_len is its default (the largest seed).
set -uo pipefail
build=$1 seconds=$2
shift 2
status=0
rows=()
for t in "$@"; do
  mkdir -p "$build/fuzz-corpus/$t" "$build/crashes/$t" "$build/fuzz-logs"
  log="$build/fuzz-logs/$t.log"
  # detect_leaks: libFuzzer's own leak check after inputs that grew the heap (ASan's LeakSanitizer).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  TMPDIR=${TMPDIR:-/tmp} \
    "$build/$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$build/crashes/$t/" "$build/fuzz-corpus/$t" "tests/fuzz/corpus/$t" > "$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1)
  corpus=$(ls "$build/fuzz-corpus/$t" | wc -l)
  result=clean
  if [ "$rc" -ne 0 ]; then result="FAILED (rc $rc, see $log)"; status=1; fi
  rows+=("$(printf '%-20s %12s %8s %10s %8s  %s' "$t" "${execs:-?}" "${secs:-?}" \
    "$([ -n "${execs:-}" ] && [ -n "${secs:-}" ] && [ "$secs" -gt 0 ] && echo $((execs / secs)) || echo '?')" "$corpus" "$result")")
  echo "${rows[-1]}"
done
echo
printf '%-20s %12s %8s %10s %8s  %s\n' target executions seconds execs/s corpus result
printf '%s\n' "${rows[@]}"
exit $status
