# Helpers shared by the bench/compare/*.sh scripts (sourced, not run). They expect $work to name the run's temp folder.

# Builds the CLI as the installed tool is (the platform's ReadyToRun publish, run through its apphost: $work/cli/graft)
# and the benchmark tool into $work/bench.
build_graft() {
  local rid="linux-$(uname -m | sed 's/x86_64/x64/; s/aarch64/arm64/')"
  dotnet publish -c Release src/Graft.Cli -r "$rid" --self-contained false -p:PublishReadyToRun=true -o "$work/cli" -v q -nologo >/dev/null
  ln -sf Graft.Cli "$work/cli/graft"
  dotnet build -c Release bench/Graft.Benchmarks -o "$work/bench" -v q -nologo >/dev/null
}

# measure CMD ARGS...: runs the command (output discarded) and prints "seconds maxrss_kb" (/usr/bin/time %e %M).
# A failing command fails the script: a benchmark of an error is no benchmark.
measure() {
  if ! /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>"$work/err"; then
    echo "failed: $*" >&2; cat "$work/err" >&2; return 1
  fi
  tail -n 1 "$work/t"
}

# median: the median of the numbers on stdin, one a line.
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# need_torch PYTHON: fails with the install hint unless PYTHON can import torch.
need_torch() {
  "$1" -c 'import torch' 2>/dev/null || { echo "$1 cannot import torch (sudo tests/fixtures/install-python-torch.sh)" >&2; exit 1; }
}

# write_torch_scripts: the PyTorch peers, into $work: adapt.py SRC DST CLASSES (as timm adapts pretrained weights:
# torch.load, conv1 summed over its inputs, a fresh nn.Linear(2048, CLASSES) head, torch.save) and torch_copy.py SRC DST
# (torch.save(torch.load(SRC)); a folder shard by shard, one in memory at a time).
write_torch_scripts() {
  cat > "$work/adapt.py" <<'PY'
import sys, torch
sd = torch.load(sys.argv[1], map_location="cpu")
w = sd["conv1.weight"]
sd["conv1.weight"] = w.float().sum(dim=1, keepdim=True).to(w.dtype)  # timm adapt_input_conv, in_chans=1
head = torch.nn.Linear(2048, int(sys.argv[3]))  # timm drops a classifier of another class count; the new model's own init stays
sd["fc.weight"], sd["fc.bias"] = head.weight.detach(), head.bias.detach()
torch.save(sd, sys.argv[2])
PY
  cat > "$work/torch_copy.py" <<'PY'
import os, sys, torch
src, dst = sys.argv[1], sys.argv[2]
if os.path.isdir(src):  # shard by shard, one in memory at a time
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        sd = torch.load(os.path.join(src, name), map_location="cpu"); torch.save(sd, os.path.join(dst, name)); del sd
else:
    torch.save(torch.load(src, map_location="cpu"), dst)
PY
}

# The built tools of build_graft, by name.
graft() { "$work/cli/graft" "$@"; }
bench() { dotnet "$work/bench/Graft.Benchmarks.dll" "$@"; }

# run_job JOB TOOL CMD...: one measurement, appended to $work/JOB.TOOL; $work/out is emptied first and removed after.
run_job() {
  local job="$1" tool="$2"; shift 2
  rm -rf "$work/out"; mkdir -p "$work/out"; sync
  measure "$@" >> "$work/$job.$tool"
  rm -rf "$work/out"
}

# job_time JOB TOOL / job_peak JOB TOOL: the median wall time (s) and peak memory (MiB) of run_job's measurements.
job_time() { cut -d' ' -f1 "$work/$1.$2" | median; }
job_peak() { echo $(( $(cut -d' ' -f2 "$work/$1.$2" | median) / 1024 )); }
