#!/usr/bin/env bash
# Side by side, same machine, same run: wall time and peak memory (max RSS) of `graft transfer` on a ResNet-50-sized
# checkpoint (~102 MB) into a 1-channel stem and a 5-class head, next to `cp` of the same file.
# Process start is included for graft (it is a whole command). Usage: bench/compare/transfer-vs-cp.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-5}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
. bench/compare/lib.sh
build_graft
dotnet "$work/bench/Graft.Benchmarks.dll" make-resnet50 "$work/src.safetensors" 3 1000
dotnet "$work/bench/Graft.Benchmarks.dll" make-resnet50 "$work/tpl.safetensors" 1 5
: > "$work/cp"; : > "$work/graft"
for i in $(seq "$runs"); do
  rm -f "$work/copy.safetensors" "$work/out.safetensors"; sync
  measure cp "$work/src.safetensors" "$work/copy.safetensors" >> "$work/cp"
  measure "$work/cli/graft" transfer "$work/src.safetensors" --into "$work/tpl.safetensors" --out "$work/out.safetensors" >> "$work/graft"
done
cp_t=$(cut -d' ' -f1 "$work/cp" | median); cp_m=$(cut -d' ' -f2 "$work/cp" | median)
g_t=$(cut -d' ' -f1 "$work/graft" | median); g_m=$(cut -d' ' -f2 "$work/graft" | median)
size=$(stat -c %s "$work/src.safetensors")
echo "checkpoint: $((size / 1000000)) MB, $runs runs, medians"
printf '%-16s %8s s %8s MB peak RSS\n' cp "$cp_t" "$((cp_m / 1024))" "graft transfer" "$g_t" "$((g_m / 1024))"
awk -v a="$g_t" -v b="$cp_t" -v c="$g_m" -v d="$cp_m" 'BEGIN { printf "ratio graft/cp: time %.1fx, peak memory %.1fx\n", a / (b > 0.005 ? b : 0.005), c / d }'
