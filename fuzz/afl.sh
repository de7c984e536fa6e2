#!/usr/bin/env bash
# A local AFL++ campaign against one checkpoint reader, through SharpFuzz instrumentation.
#   fuzz/afl.sh FORMAT [SECONDS]      FORMAT: safetensors | pytorch | any name `Graft.Fuzz targets` lists
# Needs: apt-get install afl++   and   dotnet tool install --global SharpFuzz.CommandLine --version 2.3.0
# Findings land in fuzz/findings/FORMAT/ (crashes/, hangs/); replay one with
#   dotnet run --project fuzz/Graft.Fuzz -c Release -- run FORMAT fuzz/findings/FORMAT/default/crashes/id:...
# (not with fuzz/out: the instrumented build crashes outside afl-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
format="${1:?usage: fuzz/afl.sh FORMAT [SECONDS]}"
seconds="${2:-600}"
command -v afl-fuzz >/dev/null || { echo "afl-fuzz not found: apt-get install afl++" >&2; exit 1; }
sharpfuzz="$(command -v sharpfuzz || echo "$HOME/.dotnet/tools/sharpfuzz")"
[ -x "$sharpfuzz" ] || { echo "sharpfuzz not found: dotnet tool install --global SharpFuzz.CommandLine --version 2.3.0" >&2; exit 1; }

out=fuzz/out
rm -rf "$out"
dotnet publish fuzz/Graft.Fuzz -c Release -o "$out" --nologo -v quiet
rm -rf "fuzz/corpus"
dotnet "$out/Graft.Fuzz.dll" seeds fuzz/corpus   # before instrumenting: instrumented code runs only under afl-fuzz
# Instrument only the readers' assembly: coverage of the code under test, not of the BCL or the harness.
"$sharpfuzz" "$out/Graft.Checkpoints.dll"

export AFL_SKIP_BIN_CHECK=1                      # the target is `dotnet`, instrumented by SharpFuzz, not by afl-cc
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI="${AFL_NO_UI:-1}"
mkdir -p "fuzz/findings/$format"
afl-fuzz -V "$seconds" -t 10000 -m none -i "fuzz/corpus/$format" -o "fuzz/findings/$format" -- dotnet "$out/Graft.Fuzz.dll" afl "$format"
ls "fuzz/findings/$format/default/crashes" "fuzz/findings/$format/default/hangs" 2>/dev/null || true
