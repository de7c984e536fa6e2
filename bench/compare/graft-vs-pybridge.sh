#!/usr/bin/env bash
# Graft against TorchSharp.PyBridge 1.4.4 on the same files: what each loads into a TorchVision ResNet-50, what each
# refuses (and how), how fast (both tools interleaved in one process: a warm-up load each, then N rounds alternating
# the order, a full GC before every load, the model built before the clock; medians) and peak memory (one load in its
# own process, /usr/bin/time %M; process start, libtorch and the model included).
#   Graft:    Transfer.IntoModule(file, model)              (adapts what differs, reports every tensor)
#   PyBridge: model.load_py(file) / model.load_safetensors(file)   (strict: names and shapes must match)
# Files: a torch.save'd ResNet-50 state dict (real PyTorch), its safetensors copy (graft convert), the same into a
# 10-class model (shapes differ at the head), tests/fixtures' hostile pickle (os.system), a truncated .pt and a
# safetensors header declaring 1 TB.
# Usage: bench/compare/graft-vs-pybridge.sh [rounds]   (default 9)     (PYTHON=/path/to/python3 with torch to override)
set -euo pipefail
cd "$(dirname "$0")/../.."
reps="${1:-9}"
python="${PYTHON:-/usr/bin/python3}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
. bench/compare/lib.sh
need_torch "$python"
dotnet publish -c Release src/Graft.Cli -o "$work/cli" -v q -nologo >/dev/null
dotnet build -c Release bench/compare/PyBridgeCompare -o "$work/cmp" -v q -nologo >/dev/null

"$python" - "$work/resnet50.pt" <<'PY'
import sys, torch, torchvision
torch.manual_seed(0)
torch.save(torchvision.models.resnet50(weights=None).state_dict(), sys.argv[1])
PY
dotnet "$work/cli/Graft.Cli.dll" convert "$work/resnet50.pt" "$work/resnet50.safetensors" >/dev/null
head -c $(( $(stat -c %s "$work/resnet50.pt") / 2 )) "$work/resnet50.pt" > "$work/truncated.pt"
"$python" - "$work/huge-header.safetensors" <<'PY'
import struct, sys
open(sys.argv[1], "wb").write(struct.pack("<Q", 1 << 40) + b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')
PY
marker=/tmp/graft-hostile-os-system-marker
rm -f "$marker"

run() {  # run TOOL FILE CLASSES REPS -> "result | peak MiB"
  local line peak
  line=$(dotnet "$work/cmp/PyBridgeCompare.dll" "$1" "$2" "$3" "$4" 2>"$work/err") || line="crashed (exit $?): $(tail -n 1 "$work/err")"
  if /usr/bin/time -f "%M" -o "$work/t" dotnet "$work/cmp/PyBridgeCompare.dll" "$1" "$2" "$3" 1 >/dev/null 2>&1; then
    peak=$(( $(tail -n 1 "$work/t") / 1024 ))
  else
    peak="-"
  fi
  printf '%s | %s' "$line" "$peak"
}

echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); page cache warm; TorchVision ResNet-50 (25.6 M parameters)"
echo
echo "Same shapes, both tools interleaved in one process ($reps rounds after a warm-up, GC before each load; medians):"
echo
echo "| file | Graft ms | PyBridge ms | Graft / PyBridge |"
echo "|---|--:|--:|--:|"
for file in resnet50.pt resnet50.safetensors; do
  read -r _ g _ p _ r <<<"$(dotnet "$work/cmp/PyBridgeCompare.dll" interleaved "$work/$file" 1000 "$reps")"
  echo "| $file | $g | $p | $r |"
done
echo
echo "Each file and tool alone (median of $reps after a warm-up; peak RSS of one load in its own process):"
echo
echo "| file | into | tool | result (ms, median) | peak MiB |"
echo "|---|---|---|---|--:|"
for case in "resnet50.pt:1000" "resnet50.safetensors:1000" "resnet50.pt:10" "resnet50.safetensors:10"; do
  file="${case%%:*}"; classes="${case##*:}"
  for tool in graft pybridge; do
    echo "| $file | $classes classes | $tool | $(run "$tool" "$work/$file" "$classes" "$reps") |"
  done
done
for file in "$PWD/tests/fixtures/pytorch/hostile/os_system.pt" "$work/truncated.pt" "$work/huge-header.safetensors"; do
  for tool in graft pybridge; do
    echo "| $(basename "$file") | 1000 classes | $tool | $(run "$tool" "$file" 1000 1) |"
    if [ -e "$marker" ]; then echo "| | | $tool | **ran the payload: $marker exists** | |"; rm -f "$marker"; fi
  done
done
