#!/usr/bin/env bash
# Checks .ci/trx.py's guards on hand-made TRX files: bash .ci/test-trx.sh (prints one line per case, exits 1 on a miss).
set -uo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
misses=0

# trx FILE DLL RESULT... : RESULT is outcome:name[:reason]
trx() {
  local file=$1 dll=$2; shift 2
  {
    echo '<?xml version="1.0" encoding="utf-8"?>'
    echo '<TestRun id="1" name="x" xmlns="http://microsoft.com/schemas/VisualStudio/TeamTest/2010"><Results>'
    for r in "$@"; do
      IFS=: read -r outcome name reason <<<"$r"
      echo "<UnitTestResult testName=\"$name\" outcome=\"$outcome\">"
      if [ -n "$reason" ]; then echo "<Output><StdOut>$reason</StdOut></Output>"; fi
      echo '</UnitTestResult>'
    done
    echo '</Results><TestDefinitions>'
    for r in "$@"; do
      IFS=: read -r _ name _ <<<"$r"
      echo "<UnitTest name=\"$name\" storage=\"/x/bin/$dll\"/>"
    done
    echo '</TestDefinitions>'
    echo '<ResultSummary outcome="Completed"><Counters total="0" executed="0" passed="0" failed="0"/></ResultSummary></TestRun>'
  } >"$file"
}

# expect NAME RC TOTALS -- trx.py arguments
expect() {
  local name=$1 want_rc=$2 want_totals=$3; shift 4
  out=$(python3 .ci/trx.py "$@" 2>"$tmp/err"); rc=$?
  totals=$(printf '%s\n' "$out" | tail -n 1)
  if [ "$rc" -eq "$want_rc" ] && [ "$totals" = "$want_totals" ]; then
    echo "ok   $name (exit $rc, totals '$totals')"
  else
    echo "MISS $name: exit $rc (want $want_rc), totals '$totals' (want '$want_totals')"; cat "$tmp/err"; misses=$((misses + 1))
  fi
}

cuda="CUDA is not available here"
mkdir -p "$tmp/good" "$tmp/empty-project" "$tmp/missing" "$tmp/bad-skip" "$tmp/none" "$tmp/rerun" "$tmp/all-empty" "$tmp/failed"
trx "$tmp/good/a.trx" A.Tests.dll Passed:a1 Passed:a2 "NotExecuted:a3:$cuda (no GPU)"
trx "$tmp/good/b.trx" B.Tests.dll Passed:b1 Passed:b2 Passed:b3
trx "$tmp/good/c.trx" C.Tests.dll Passed:c1
expect "three projects, one CUDA skip" 0 "6 0 1" -- --projects 3 --allow-skip "$cuda" "$tmp/good"

cp "$tmp/good/a.trx" "$tmp/good/b.trx" "$tmp/empty-project/"
trx "$tmp/empty-project/c.trx" C.Tests.dll
expect "a project that discovered no tests" 1 "5 0 1" -- --projects 3 --allow-skip "$cuda" "$tmp/empty-project"

cp "$tmp/good/a.trx" "$tmp/good/b.trx" "$tmp/missing/"
expect "a project that wrote no TRX" 1 "5 0 1" -- --projects 3 --allow-skip "$cuda" "$tmp/missing"

cp "$tmp/good/b.trx" "$tmp/good/c.trx" "$tmp/bad-skip/"
trx "$tmp/bad-skip/a.trx" A.Tests.dll Passed:a1 "NotExecuted:a2:No Python with torch" "NotExecuted:a3:$cuda"
expect "a skip other than CUDA" 1 "5 0 2" -- --projects 3 --allow-skip "$cuda" "$tmp/bad-skip"

trx "$tmp/bad-skip/d.trx" D.Tests.dll "NotExecuted:d1"
expect "a skip with no reason, four files for three projects" 1 "5 0 3" -- --projects 3 --allow-skip "$cuda" "$tmp/bad-skip"

expect "no TRX at all (build failed)" 1 "0 0 0" -- --projects 3 "$tmp/none"

cp "$tmp/good/b.trx" "$tmp/good/c.trx" "$tmp/failed/"
trx "$tmp/failed/a.trx" A.Tests.dll Passed:a1 Failed:a2 Error:a3
expect "failures are counted, exit left to dotnet test" 0 "5 2 0" -- --projects 3 "$tmp/failed"

# A filtered rerun: a project with nothing matching the filter writes an empty TRX; fine while another ran tests.
cp "$tmp/good/b.trx" "$tmp/rerun/"
trx "$tmp/rerun/c.trx" C.Tests.dll
expect "rerun: one project filtered out" 0 "3 0 0" -- --allow-skip "$cuda" "$tmp/rerun"

trx "$tmp/all-empty/b.trx" B.Tests.dll
trx "$tmp/all-empty/c.trx" C.Tests.dll
expect "rerun: nothing ran" 1 "0 0 0" -- --allow-skip "$cuda" "$tmp/all-empty"

echo "$misses misses"
[ "$misses" -eq 0 ]
