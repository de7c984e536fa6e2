#!/usr/bin/env bash
# Issue 25's scale case: a synthetic checkpoint with a real 7B model's layer shapes (hidden 4096, 32 heads, 8 KV heads,
# intermediate 14336, vocabulary 32000; bf16, sharded, config.json beside it), grown by `graft transfer
# --preserve-function`, next to the copy floor: `cp` of the output's shards, then `sync`.
# Cases: depth (LAYERS → LAYERS+2 identity blocks) and width ×2 (HyperCloning: hidden 8192, 64 heads, 16 KV heads,
# intermediate 28672; the output is ~4x the source). Wall time and peak memory (max RSS); medians of RUNS runs.
# Usage: bench/compare/llm-grow-vs-cp.sh [layers=4] [runs=1] [cases="depth width"]. Needs the source and twice the output free on
# disk (layers=4: depth ~9 GB, width ~19 GB): the templates are hollowed (their headers kept, their data a hole), because
# every tensor of both cases comes from the source and graft never reads a template's values here.
set -euo pipefail
cd "$(dirname "$0")/../.."
layers="${1:-4}"; runs="${2:-1}"; cases="${3:-depth width}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
. bench/compare/lib.sh
build_graft
dotnet "$work/bench/Graft.Benchmarks.dll" make-llama "$work/src" "$layers"
for c in $cases; do
  case "$c" in
    depth) dotnet "$work/bench/Graft.Benchmarks.dll" make-llama "$work/tpl-$c" "$((layers + 2))" ;;
    width) dotnet "$work/bench/Graft.Benchmarks.dll" make-llama "$work/tpl-$c" "$layers" 8192 64 16 28672 ;;
    *) echo "unknown case $c" >&2; exit 2 ;;
  esac
  python3 - "$work/tpl-$c"/*.safetensors <<'PY'
import os, struct, sys
for path in sys.argv[1:]:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = f.read(n)
    with open(path + ".hollow", "wb") as f:
        f.write(struct.pack("<Q", n) + head)
        f.truncate(size)
    os.replace(path + ".hollow", path)
PY
  : > "$work/cp-$c"; : > "$work/graft-$c"
  for i in $(seq "$runs"); do
    rm -rf "$work/out-$c" "$work/floor"; mkdir -p "$work/out-$c"; sync
    measure sh -c "'$work/cli/graft' transfer '$work/src/model.safetensors.index.json' --into '$work/tpl-$c/model.safetensors.index.json' --out '$work/out-$c/model.safetensors.index.json' --preserve-function && sync" >> "$work/graft-$c"
    bytes=$(du -cb "$work"/out-"$c"/*.safetensors | tail -n 1 | cut -f1)
    # The floor: copying the output's shards (the same bytes, from the page cache as graft reads its source) and syncing.
    mkdir -p "$work/floor"; sync
    measure sh -c "cp '$work'/out-$c/*.safetensors '$work/floor/' && sync" >> "$work/cp-$c"
    rm -rf "$work/floor"
  done
  g_t=$(cut -d' ' -f1 "$work/graft-$c" | median); g_m=$(cut -d' ' -f2 "$work/graft-$c" | median)
  cp_t=$(cut -d' ' -f1 "$work/cp-$c" | median)
  echo "$c: output $((bytes / 1000000)) MB; graft transfer --preserve-function ${g_t} s, peak RSS $((g_m / 1024)) MB; cp + sync of the same size ${cp_t} s"
  awk -v a="$g_t" -v b="$cp_t" 'BEGIN { printf "  ratio graft/floor: %.1fx\n", a / (b > 0.005 ? b : 0.005) }'
  rm -rf "$work/out-$c" "$work/tpl-$c"
done
