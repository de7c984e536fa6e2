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
