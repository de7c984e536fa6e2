#!/usr/bin/env bash
# Load speed, same machine, same run, files warm in the page cache, load only (process start and imports excluded),
# median of N repetitions after a warm-up:
#   (a) PyTorch torch.load of a ~102 MB ResNet-50-shaped .pt (real PyTorch, /usr/bin/python3)
#   (b) Graft: CheckpointFile.Open + TensorBridge.Read of every tensor into TorchSharp tensors, from the .pt
#   (c) the same from the safetensors file (written by `graft convert`)
#   (d) the floor: reading the safetensors file into one buffer (C#), and `cat FILE > /dev/null`
# Usage: bench/compare/load-vs-torch.sh [repetitions]      (PYTHON=/path/to/python3 with torch to override)
set -euo pipefail
cd "$(dirname "$0")/../.."
reps="${1:-7}"
python="${PYTHON:-/usr/bin/python3}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
. bench/compare/lib.sh
need_torch "$python"
build_graft

# A state dict of float32 tensors with torchvision ResNet-50's names and shapes (25.6 M parameters), written by torch.save.
"$python" - "$work/resnet50.pt" <<'PY'
import sys, torch
torch.manual_seed(0)
sd = {}
def bn(p, c):
    sd[p + ".weight"] = torch.rand(c); sd[p + ".bias"] = torch.randn(c)
    sd[p + ".running_mean"] = torch.randn(c); sd[p + ".running_var"] = torch.rand(c)
    sd[p + ".num_batches_tracked"] = torch.tensor(0, dtype=torch.int64)
sd["conv1.weight"] = torch.randn(64, 3, 7, 7); bn("bn1", 64)
inplanes = 64
for l, (blocks, w) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512])):
    for b in range(blocks):
        p = f"layer{l + 1}.{b}"
        sd[p + ".conv1.weight"] = torch.randn(w, inplanes, 1, 1); bn(p + ".bn1", w)
        sd[p + ".conv2.weight"] = torch.randn(w, w, 3, 3); bn(p + ".bn2", w)
        sd[p + ".conv3.weight"] = torch.randn(w * 4, w, 1, 1); bn(p + ".bn3", w * 4)
        if b == 0:
            sd[p + ".downsample.0.weight"] = torch.randn(w * 4, inplanes, 1, 1); bn(p + ".downsample.1", w * 4)
        inplanes = w * 4
sd["fc.weight"] = torch.randn(1000, 2048); sd["fc.bias"] = torch.randn(1000)
torch.save(sd, sys.argv[1])
PY
"$work/cli/graft" convert "$work/resnet50.pt" "$work/resnet50.safetensors" >/dev/null

torch_ms=$("$python" - "$work/resnet50.pt" "$reps" <<'PY'
import statistics, sys, time, torch
path, reps = sys.argv[1], int(sys.argv[2])
torch.load(path, map_location="cpu")  # warm-up
times = []
for _ in range(reps):
    t = time.perf_counter(); sd = torch.load(path, map_location="cpu"); times.append((time.perf_counter() - t) * 1000); del sd
print(f"{statistics.median(times):.1f}")
PY
)
ms() { sed -n 's/^median_ms=//p'; }
graft_pt=$(dotnet "$work/bench/Graft.Benchmarks.dll" load "$work/resnet50.pt" "$reps" | ms)
graft_st=$(dotnet "$work/bench/Graft.Benchmarks.dll" load "$work/resnet50.safetensors" "$reps" | ms)
read_st=$(dotnet "$work/bench/Graft.Benchmarks.dll" read "$work/resnet50.safetensors" "$reps" | ms)
cat_ms=$("$python" - "$work/resnet50.safetensors" "$reps" <<'PY'
import statistics, subprocess, sys, time
path, reps = sys.argv[1], int(sys.argv[2])
times = []
for i in range(reps + 1):
    t = time.perf_counter(); subprocess.run(f"cat '{path}' > /dev/null", shell=True, check=True); d = (time.perf_counter() - t) * 1000
    if i: times.append(d)
print(f"{statistics.median(times):.1f}")
PY
)
size=$(stat -c %s "$work/resnet50.pt")
torch_version=$("$python" -c 'import torch; print(torch.__version__)')
echo "checkpoint: ResNet-50 shapes, float32, $((size / 1000000)) MB (.pt); $reps repetitions after a warm-up, medians, page cache warm; $(nproc) cores"
printf '%-44s %9s ms\n' "(a) torch.load .pt (PyTorch $torch_version)" "$torch_ms" \
  "(b) Graft .pt -> TorchSharp tensors" "$graft_pt" \
  "(c) Graft safetensors -> TorchSharp tensors" "$graft_st" \
  "(d) read safetensors file into a buffer (C#)" "$read_st" \
  "    cat safetensors > /dev/null (incl. fork)" "$cat_ms"
awk -v a="$graft_pt" -v b="$torch_ms" -v c="$graft_st" -v d="$read_st" 'BEGIN {
  printf "Graft .pt / torch.load:            %.2fx  (target <= 1.00)\n", a / b
  printf "Graft safetensors / plain read:    %.2fx  (target <= 2.00)\n", c / d }'
