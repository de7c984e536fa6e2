#!/usr/bin/env bash
# Graft next to PyTorch and cp, same machine, same run, same files. Whole commands: process start, imports and (for
# PyTorch) `import torch` included. Wall time and peak memory (max RSS) from /usr/bin/time, medians over the runs.
#   job 1  ResNet-50 shapes, 102 MB float32: 3-channel stem -> 1 channel (sum over inputs), 1000-class head -> 5 (new)
#          graft transfer SRC.safetensors --into TEMPLATE.safetensors --out OUT.safetensors
#          PyTorch, as timm adapts pretrained weights: torch.load, conv1 summed over input channels, classifier replaced
#          by a fresh nn.Linear(2048, 5), torch.save
#   job 2  ~512 MB checkpoint (5 ResNet-50s) copied through: graft convert A.safetensors B.safetensors;
#          PyTorch torch.save(torch.load(A.pt), B.pt)
#   job 3  ~4.1 GB sharded checkpoint (40 ResNet-50s, 1 GB shards) copied through:
#          graft convert model.safetensors.index.json OUT/model.safetensors.index.json (default 5 GB shard size);
#          PyTorch loads and saves the same tensors shard by shard from .pt shards (Debian 12 packages no safetensors
#          for Python, and torch cannot read safetensors by itself). Skipped when less than 20 GB are free.
# The floor is `cp` (`cp -r` for the shards). Graft's writes are atomic and fsync'd; cp's and torch.save's are not, so
# the `cp + sync` row gives the floor of a durable copy too.
# Usage: bench/compare/graft-vs-torch.sh [runs]     (PYTHON=/path/to/python3 with torch; GRAFT_BENCH_DIR=parent of the temp folder)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-3}"
python="${PYTHON:-/usr/bin/python3}"
work="$(mktemp -d -p "${GRAFT_BENCH_DIR:-${TMPDIR:-/tmp}}")"; trap 'rm -rf "$work"' EXIT
. bench/compare/lib.sh
need_torch "$python"
build_graft

write_torch_scripts

echo "== making inputs in $work"
bench make-resnet50 "$work/r50.safetensors" 3 1000 >/dev/null
bench make-resnet50 "$work/r50-1ch-5cls.safetensors" 1 5 >/dev/null
graft convert "$work/r50.safetensors" "$work/r50.pt" >/dev/null
bench make-stacked "$work/big.safetensors" 5 >/dev/null
graft convert "$work/big.safetensors" "$work/big.pt" >/dev/null
free_gb=$(df --output=avail -B1G "$work" | tail -n 1 | tr -d ' ')
sharded=0
if [ "$free_gb" -ge 20 ]; then
  sharded=1
  mkdir -p "$work/shards" "$work/shards-pt"
  bench make-stacked "$work/shards/model.safetensors.index.json" 40 1000 >/dev/null
  for s in "$work"/shards/*.safetensors; do graft convert "$s" "$work/shards-pt/$(basename "$s" .safetensors).pt" >/dev/null; done
else
  echo "job 3 (4 GB sharded) skipped: $free_gb GB free in $work, 20 GB needed"
fi
sync

for i in $(seq "$runs"); do
  echo "== run $i of $runs"
  run_job 1 cp      cp "$work/r50.safetensors" "$work/out/r50.safetensors"
  run_job 1 graft   "$work/cli/graft" transfer "$work/r50.safetensors" --into "$work/r50-1ch-5cls.safetensors" --out "$work/out/r50.safetensors"
  run_job 1 pytorch "$python" "$work/adapt.py" "$work/r50.pt" "$work/out/r50.pt" 5
  run_job 2 cp      cp "$work/big.safetensors" "$work/out/big.safetensors"
  run_job 2 cpsync  sh -c 'cp "$1" "$2" && sync "$2"' sh "$work/big.safetensors" "$work/out/big.safetensors"
  run_job 2 graft   "$work/cli/graft" convert "$work/big.safetensors" "$work/out/big.safetensors"
  run_job 2 pytorch "$python" "$work/torch_copy.py" "$work/big.pt" "$work/out/big.pt"
  if [ "$sharded" = 1 ]; then
    run_job 3 cp      cp -r "$work/shards" "$work/out/shards"
    run_job 3 graft   "$work/cli/graft" convert "$work/shards/model.safetensors.index.json" "$work/out/model.safetensors.index.json"
    run_job 3 pytorch "$python" "$work/torch_copy.py" "$work/shards-pt" "$work/out/shards-pt"
  fi
done

mb() { du -sm --apparent-size "$1" | cut -f1; }  # MiB
echo
echo "$(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), .NET $(dotnet --version)," \
  "PyTorch $("$python" -c 'import torch; print(torch.__version__)'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $runs runs, medians"
printf '%-42s %-8s %8s %9s %9s %9s %9s\n' job tool "time s" "peak MiB" "time/cp" "torch/gr" "gr/torch"
row() { # JOB LABEL TOOL
  local tt mm; tt=$(job_time "$1" "$3"); mm=$(job_peak "$1" "$3")
  awk -v label="$2" -v tool="$3" -v tt="$tt" -v mm="$mm" -v cp="$(job_time "$1" cp)" -v pt="$(job_time "$1" pytorch)" -v pm="$(job_peak "$1" pytorch)" 'BEGIN {
    r1 = sprintf("%.1fx", tt / (cp > 0.005 ? cp : 0.005))
    r2 = tool == "graft" ? sprintf("%.1fx", pt / tt) : ""; r3 = tool == "graft" ? sprintf("%.2fx", mm / pm) : ""
    printf "%-42s %-8s %8.2f %9d %9s %9s %9s\n", label, tool, tt, mm, r1, r2, r3 }'
}
j1="1 ResNet-50 $(mb "$work/r50.safetensors") MiB, 1-ch stem, 5-cls head"
j2="2 copy-through $(mb "$work/big.safetensors") MiB"
for tool in cp graft pytorch; do row 1 "$j1" "$tool"; j1=""; done
for tool in cp cpsync graft pytorch; do row 2 "$j2" "$tool"; j2=""; done
if [ "$sharded" = 1 ]; then
  j3="3 sharded copy-through $(mb "$work/shards") MiB ($(ls "$work"/shards/*.safetensors | wc -l) shards)"
  for tool in cp graft pytorch; do row 3 "$j3" "$tool"; j3=""; done
fi
echo "(time/cp: wall time over cp's; torch/gr: PyTorch's time over Graft's, how many times faster; gr/torch: Graft's peak memory over PyTorch's)"
echo
echo "targets:"
verdict() { awk -v v="$1" -v lim="$2" -v op="$3" 'BEGIN { ok = op == "<=" ? v <= lim : v >= lim; printf "%s", ok ? "met" : "MISSED" }'; }
for j in 1 2 3; do
  [ -e "$work/$j.graft" ] || continue
  speed=$(awk -v a="$(job_time "$j" pytorch)" -v b="$(job_time "$j" graft)" 'BEGIN { printf "%.2f", a / b }')
  mem=$(awk -v a="$(job_peak "$j" graft)" -v b="$(job_peak "$j" pytorch)" 'BEGIN { printf "%.3f", a / b }')
  echo "  job $j: >= 4x faster than PyTorch: ${speed}x $(verdict "$speed" 4 ">="); <= 1/4 of its peak memory: ${mem} $(verdict "$mem" 0.25 "<=")"
done
r2=$(awk -v a="$(job_time 2 graft)" -v b="$(job_time 2 cp)" 'BEGIN { printf "%.2f", a / b }')
echo "  job 2: <= 2x the cp floor: ${r2}x $(verdict "$r2" 2 "<=")"
if [ "$sharded" = 1 ]; then
  echo "  job 3: peak <= 512 MB: $(job_peak 3 graft) MB $(verdict "$(job_peak 3 graft)" 512 "<=")"
fi
