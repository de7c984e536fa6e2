#!/usr/bin/env bash
# Issue 15's two jobs from PyTorch files, Graft next to PyTorch and the durable-copy floor, same machine, same run:
#   job A  ~512 MB .pt (5 ResNet-50s) copied through to safetensors: graft convert BIG.pt OUT.safetensors;
#          PyTorch torch.save(torch.load(BIG.pt)); floor: cp + sync of the file (Graft's writes are fsync'd).
#   job B  ResNet-50 .pt -> 1-channel stem (sum over inputs), 10-class head (new):
#          graft transfer R50.pt --into TEMPLATE.safetensors --out OUT.safetensors;
#          PyTorch as timm: torch.load, conv1 summed over its inputs, a fresh nn.Linear(2048, 10), torch.save.
# Whole commands (process start, imports), wall time and peak RSS from /usr/bin/time, medians over the runs.
# Usage: bench/compare/pt-jobs.sh [runs]     (PYTHON=/path/to/python3 with torch)
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
bench make-resnet50 "$work/tpl.safetensors" 1 10 >/dev/null
graft convert "$work/r50.safetensors" "$work/r50.pt" >/dev/null
bench make-stacked "$work/big.safetensors" 5 >/dev/null
graft convert "$work/big.safetensors" "$work/big.pt" >/dev/null
rm -f "$work/big.safetensors"
sync
for i in $(seq "$runs"); do
  echo "== run $i of $runs"
  run_job A cpsync  sh -c 'cp "$1" "$2" && sync "$2"' sh "$work/big.pt" "$work/out/big.pt"
  run_job A graft   "$work/cli/graft" convert "$work/big.pt" "$work/out/big.safetensors"
  run_job A pytorch "$python" "$work/torch_copy.py" "$work/big.pt" "$work/out/big.pt"
  run_job B graft   "$work/cli/graft" transfer "$work/r50.pt" --into "$work/tpl.safetensors" --out "$work/out/r50.safetensors"
  run_job B pytorch "$python" "$work/adapt.py" "$work/r50.pt" "$work/out/r50.pt" 10
done
echo
echo "$(nproc) cores, $(. /etc/os-release; echo "$PRETTY_NAME"), .NET $(dotnet --version), PyTorch $("$python" -c 'import torch; print(torch.__version__)');" \
  "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $runs runs, medians; big.pt $(du -m --apparent-size "$work/big.pt" | cut -f1) MiB"
for job in A B; do
  for tool in cpsync graft pytorch; do
    [ -e "$work/$job.$tool" ] || continue
    printf '%s %-8s %7.2f s %6d MiB\n' "$job" "$tool" "$(job_time $job $tool)" "$(job_peak $job $tool)"
  done
done
awk -v g="$(job_time A graft)" -v c="$(job_time A cpsync)" -v p="$(job_time A pytorch)" -v gm="$(job_peak A graft)" -v pm="$(job_peak A pytorch)" 'BEGIN {
  printf "job A: %.2fx cp+sync (target <= 1.5), %.1fx faster than PyTorch (>= 4), peak %.2f of PyTorch'"'"'s (<= 0.25)\n", g/c, p/g, gm/pm }'
awk -v g="$(job_time B graft)" -v p="$(job_time B pytorch)" -v gm="$(job_peak B graft)" -v pm="$(job_peak B pytorch)" 'BEGIN {
  printf "job B: %.1fx faster than PyTorch (>= 4), peak %.2f of PyTorch'"'"'s (<= 0.25)\n", p/g, gm/pm }'
