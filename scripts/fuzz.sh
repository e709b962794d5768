#!/usr/bin/env bash
# Runs every Go fuzz target of the repository (the main module and each
# plugin module under plugins/), one after another, each for FUZZTIME.
# `go test -fuzz` takes one target per run, so the targets are discovered
# with `go test -list '^Fuzz'` per module and run one by one.
#
#   FUZZTIME=60s scripts/fuzz.sh            # what `make fuzz` does
#   FUZZTIME=300x scripts/fuzz.sh           # what `make test` does
#   FUZZ_MATCH=Statsd scripts/fuzz.sh       # only targets/packages matching
#
# A failing input is written by Go to the package's testdata/fuzz/FuzzX/
# directory; commit it with the fix, so that `go test` replays it from then
# on. Exit status 1 when any target failed; a summary (target, executions,
# new interesting inputs, result) is printed at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
# Minimizing each new interesting input (not only failures) can take up to
# a minute per input by default, during which nothing else runs; a few
# executions are enough for a short run.
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-20x}
FUZZ_MATCH=${FUZZ_MATCH:-}
# Each run gets a test timeout of FUZZTIME plus 5 minutes (10 minutes for
# a count such as FUZZTIME=300x): Go's fuzzing engine detects no hang, so an
# input that loops for ever (or the engine itself stuck stopping a worker)
# ends in a goroutine dump and a failure instead of a stuck build.
case "$FUZZTIME" in
  *x) timeout_s=600 ;;
  *h) timeout_s=$(( ${FUZZTIME%h} * 3600 + 300 )) ;;
  *m) timeout_s=$(( ${FUZZTIME%m} * 60 + 300 )) ;;
  *s) timeout_s=$(( ${FUZZTIME%s} + 300 )) ;;
  *) echo "fuzz: FUZZTIME must be like 60s, 10m, 1h or 500x" >&2; exit 2 ;;
esac
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-${timeout_s}s}

modules=(.)
for m in plugins/*/go.mod; do
  [ -f "$m" ] && modules+=("$(dirname "$m")")
done

summary=()
failed=0
for mod in "${modules[@]}"; do
  # Only packages with a fuzz target are listed (listing builds each test
  # binary): the directories of the module's test files that declare one,
  # outside nested modules. "FuzzX" lines, then "ok  <package> <time>"
  # closes the package's list.
  dirs=$(cd "$mod" && grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v '^./plugins/' | xargs -r -n1 dirname | sort -u | sed 's|^\./||; s|^|./|')
  [ -z "$dirs" ] && continue
  # shellcheck disable=SC2086
  list=$(cd "$mod" && $GO test -list '^Fuzz' $dirs 2>&1) || { echo "$list" >&2; echo "fuzz: listing $mod failed" >&2; exit 1; }
  targets=()
  while read -r first second _; do
    case "$first" in
      Fuzz*) targets+=("$first") ;;
      ok)
        for t in "${targets[@]}"; do
          if [ -n "$FUZZ_MATCH" ] && ! [[ "$second/$t" =~ $FUZZ_MATCH ]]; then continue; fi
          echo "== $t ($second) for $FUZZTIME"
          start=$(date +%s)
          out=$(cd "$mod" && $GO test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" -timeout "$FUZZ_TIMEOUT" "$second" 2>&1)
          rc=$?
          last=$(grep -E 'execs: [0-9]+' <<<"$out" | tail -1)
          execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
          interesting=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
          if [ -z "$execs" ]; then
            # FUZZTIME ended while replaying the corpus (the seeds, testdata
            # and the inputs cached from earlier runs) before fuzzing.
            execs="0(baseline:$(grep -oE 'baseline coverage: [0-9]+/[0-9]+' <<<"$out" | tail -1 | cut -d' ' -f3))"
          fi
          result=ok
          if [ $rc -ne 0 ]; then
            result=FAIL
            failed=1
            echo "$out"
          fi
          line=$(printf '%-22s %-52s execs %-16s new-interesting %-5s %4ss %s' "$t" "$second" "${execs:-0}" "${interesting:-0}" "$(( $(date +%s) - start ))" "$result")
          echo "$line"
          summary+=("$line")
        done
        targets=()
        ;;
    esac
  done <<<"$list"
done

echo
echo "== fuzz summary (FUZZTIME=$FUZZTIME)"
printf '%s\n' "${summary[@]}"
if [ ${#summary[@]} -eq 0 ]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi
exit $failed
