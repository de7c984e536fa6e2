#!/usr/bin/env bash
# Checks .ci/run's totals and guards without building anything: .ci/run runs in a scratch copy of the repository's
# skeleton (three test projects, stub packaging and install scripts) with a fake `dotnet` first on PATH that writes the
# TRX files a scenario asks for. Usage: bash .ci/test-run.sh (one line per scenario; exits 1 on a miss).
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
misses=0

repo="$tmp/repo"
mkdir -p "$repo/.ci" "$repo/tests/A.Tests" "$repo/tests/B.Tests" "$repo/tests/C.Tests" "$repo/tests/packaging" "$repo/tests/fixtures" "$tmp/bin"
cp "$here/.ci/run" "$here/.ci/trx.py" "$here/.ci/test-trx.sh" "$repo/.ci/"
touch "$repo/tests/A.Tests/A.Tests.csproj" "$repo/tests/B.Tests/B.Tests.csproj" "$repo/tests/C.Tests/C.Tests.csproj"
printf '#!/bin/sh\necho "packaging stub"\n[ "${FAKE_PACKAGING:-ok}" = ok ]\n' >"$repo/tests/packaging/test-tool-install.sh"
printf '#!/bin/sh\necho "install stub"\n[ "${FAKE_INSTALL:-ok}" = ok ]\n' >"$repo/tests/fixtures/install-python-torch.sh"

# The fake dotnet: `dotnet test [--filter F] --results-directory DIR …` writes what $FAKE_SCENARIO says.
cat >"$tmp/bin/dotnet" <<'EOF'
#!/usr/bin/env bash
[ "$1" = test ] || exit 0
dir=""; rerun=0
while [ $# -gt 0 ]; do
  case "$1" in --results-directory) dir=$2; shift ;; --filter) rerun=1 ;; esac
  shift
done
mkdir -p "$dir"
trx() {  # trx FILE DLL outcome:name[:reason]...
  local file=$1 dll=$2; shift 2
  {
    echo '<TestRun xmlns="http://microsoft.com/schemas/VisualStudio/TeamTest/2010"><Results>'
    for r in "$@"; do
      IFS=: read -r outcome name reason <<<"$r"
      echo "<UnitTestResult testName=\"$name\" outcome=\"$outcome\"><Output><StdOut>$reason</StdOut></Output></UnitTestResult>"
    done
    echo '</Results><TestDefinitions>'
    for r in "$@"; do IFS=: read -r _ name _ <<<"$r"; echo "<UnitTest name=\"$name\" storage=\"/b/$dll\"/>"; done
    echo '</TestDefinitions></TestRun>'
  } >"$file"
}
cuda="NotExecuted:a3:CUDA is not available here (no GPU)"
case "$FAKE_SCENARIO:$rerun" in
  build-fails:*) echo "error CS1002" >&2; exit 1 ;;
  rerun-fails:1)
    trx "$dir/b.trx" B.Tests.dll Passed:b1
    if [ -n "${GRAFT_NUMERICS_GUARD:-}" ]; then trx "$dir/c.trx" C.Tests.dll Failed:c1; exit 1; fi
    trx "$dir/c.trx" C.Tests.dll Passed:c1; exit 0 ;;
  *:1) trx "$dir/a.trx" A.Tests.dll; trx "$dir/b.trx" B.Tests.dll Passed:b1; trx "$dir/c.trx" C.Tests.dll Passed:c1; exit 0 ;;
esac
trx "$dir/b.trx" B.Tests.dll Passed:b1 Passed:b2 Passed:b3
case "$FAKE_SCENARIO" in
  empty-project) trx "$dir/a.trx" A.Tests.dll Passed:a1 Passed:a2 "$cuda"; trx "$dir/c.trx" C.Tests.dll ;;
  bad-skip) trx "$dir/a.trx" A.Tests.dll Passed:a1 "NotExecuted:a2:No Python with torch" "$cuda"; trx "$dir/c.trx" C.Tests.dll Passed:c1 ;;
  test-fails) trx "$dir/a.trx" A.Tests.dll Passed:a1 Failed:a2 "$cuda"; trx "$dir/c.trx" C.Tests.dll Passed:c1; exit 1 ;;
  *) trx "$dir/a.trx" A.Tests.dll Passed:a1 Passed:a2 "$cuda"; trx "$dir/c.trx" C.Tests.dll Passed:c1 ;;
esac
exit 0
EOF
chmod +x "$tmp/bin/dotnet"

# scenario NAME RC "LAST LINE" [VAR=VALUE...]
scenario() {
  local name=$1 want_rc=$2 want_last=$3; shift 3
  out=$(cd "$tmp" && env PATH="$tmp/bin:$PATH" FAKE_SCENARIO="$name" "$@" bash "$repo/.ci/run" 2>&1); rc=$?
  last=$(printf '%s\n' "$out" | tail -n 1)
  if [ "$rc" -eq "$want_rc" ] && [ "$last" = "$want_last" ]; then
    echo "ok   $name: exit $rc, '$last'"
  else
    echo "MISS $name: exit $rc (want $want_rc), last line '$last' (want '$want_last')"; printf '%s\n' "$out" | tail -n 25; misses=$((misses + 1))
  fi
  printf '%s\n' "$out" >"$tmp/$name.out"
}

# Each distinct test once: A 2 passed + 1 skipped, B 3, C 1, packaging 1; the reruns' 2 passes each are not added.
scenario good 0 "7 passed, 0 failed, 1 skipped"
grep -q '^reruns (not in the totals): DNNL_MAX_CPU_ISA=AVX2: 2 passed, 0 failed, 0 skipped; GRAFT_NUMERICS_GUARD=on: 2 passed' "$tmp/good.out" \
  && echo "ok   good: reruns reported on their own line" || { echo "MISS good: no reruns line"; misses=$((misses + 1)); }
grep -q 'SKIP a3: CUDA is not available here' "$tmp/good.out" \
  && echo "ok   good: the skip is listed with its reason" || { echo "MISS good: skip not listed"; misses=$((misses + 1)); }
scenario rerun-fails 1 "7 passed, 0 failed, 1 skipped"
scenario test-fails 1 "6 passed, 1 failed, 1 skipped"
scenario empty-project 1 "6 passed, 0 failed, 1 skipped"
scenario bad-skip 1 "6 passed, 0 failed, 2 skipped"
scenario build-fails 1 "1 passed, 0 failed, 0 skipped"
grep -q 'CI: no test ran' "$tmp/build-fails.out" \
  && echo "ok   build-fails: 'no test ran' although the packaging test passed" || { echo "MISS build-fails: no 'no test ran'"; misses=$((misses + 1)); }
scenario packaging-fails 1 "6 passed, 1 failed, 1 skipped" FAKE_PACKAGING=fail
# The reference implementations: a missing torch/onnx that cannot be installed fails CI (python3 here is not Debian's:
# /usr/bin/python3 is asked, so this scenario runs only where it lacks them; elsewhere the install is not attempted).
if ! /usr/bin/python3 -c "import torch, torchvision, onnx" >/dev/null 2>&1; then
  scenario install-fails 1 "7 passed, 0 failed, 1 skipped" FAKE_INSTALL=fail
fi

echo "$misses misses"
[ "$misses" -eq 0 ]
