#!/usr/bin/env bash
# The cost of the FashionMnistTransfer sample's two steps against PyTorch doing the same, in one run:
#  1. transfer: ML.NET's ImageNet ResNet-18 (ONNX) into a 1-channel, 10-class torchvision ResNet [2, 2, 2, 3] with
#     `graft transfer` (from files, graph matching, stem summed); PyTorch has no reader for this ONNX file's weights,
#     so its peer is the load a PyTorch user does with Graft's output: torch.load + load_state_dict (a floor, not a rival).
#  2. one epoch of fine-tuning: N = 1,000 Fashion-MNIST images at 64×64, batch 32, Adam lr 3e-4, BatchNorm frozen
#     (the sample's recipe), TorchSharp (the sample, Release) against PyTorch with the same network, recipe and threads.
# Medians of 3 (transfer) and of epochs 2-4 (the first warms up); wall times, same machine, same run.
# Usage: bench/compare/fashion-mnist-vs-torch.sh      (PYTHON=/path/to/python3 with torch and torchvision to override)
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${PYTHON:-/usr/bin/python3}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
. bench/compare/lib.sh
need_torch "$python"
build_graft
dotnet build -c Release samples/FashionMnistTransfer -o "$work/sample" -v q -nologo >/dev/null
onnx="$work/sample/ResNet18.onnx"
threads=$(nproc)

cat > "$work/net.py" <<'PY'
import torch, torchvision
from torchvision.models.resnet import ResNet, BasicBlock
def gray_resnet():
    m = ResNet(BasicBlock, [2, 2, 2, 3], num_classes=10)
    m.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    return m
PY
PYTHONPATH="$work" "$python" -c "import torch, net; torch.save(net.gray_resnet().state_dict(), '$work/tpl.pt')"

# 1. transfer
for i in 1 2 3; do
  run_job transfer graft "$work/cli/graft" transfer "$onnx" --into "$work/tpl.pt" --out "$work/out/gray.pt"
done
graft transfer "$onnx" --into "$work/tpl.pt" --out "$work/gray.pt" >/dev/null
cat > "$work/load.py" <<'PY'
import sys, time, torch, net
torch.set_num_threads(int(sys.argv[2]))
m = net.gray_resnet()
times = []
for _ in range(4):
    t = time.perf_counter(); m.load_state_dict(torch.load(sys.argv[1], map_location="cpu")); times.append(time.perf_counter() - t)
print(sorted(times[1:])[1])
PY
torch_load=$(PYTHONPATH="$work" "$python" "$work/load.py" "$work/gray.pt" "$threads")

# 2. one epoch
cat > "$work/epoch.py" <<'PY'
import gzip, sys, time, numpy as np, torch, net
torch.set_num_threads(int(sys.argv[3]))
torch.manual_seed(1)
data = sys.argv[2]
x = np.frombuffer(gzip.open(f"{data}/train-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
y = np.frombuffer(gzip.open(f"{data}/train-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
idx = np.concatenate([np.where(y == c)[0][:100] for c in range(10)])
images = torch.nn.functional.interpolate(torch.tensor(x[idx], dtype=torch.float32) - 114, size=(64, 64), mode="bilinear", align_corners=False)
labels = torch.tensor(y[idx], dtype=torch.long)
m = net.gray_resnet(); m.load_state_dict(torch.load(sys.argv[1], map_location="cpu"))
opt = torch.optim.Adam(m.parameters(), lr=3e-4)
times = []
for epoch in range(4):
    m.train()
    for b in m.modules():
        if isinstance(b, torch.nn.BatchNorm2d): b.eval()
    t = time.perf_counter()
    for batch in torch.randperm(len(labels)).split(32):
        opt.zero_grad(); torch.nn.functional.cross_entropy(m(images[batch]), labels[batch]).backward(); opt.step()
    times.append(time.perf_counter() - t)
print(sorted(times[1:])[1])  # the median of epochs 2-4 (the first warms up)
PY
torch_epoch=$(PYTHONPATH="$work" "$python" "$work/epoch.py" "$work/gray.pt" /usr/share/datasets/fashion-mnist "$threads")
dotnet "$work/sample/FashionMnistTransfer.dll" --n 1000 --seeds 1 --epochs 4 --warmup 0 --arms transferred --test-per-class 10 --json > "$work/sample.json"
sharp_epoch=$("$python" -c "import json,sys; r=json.load(open('$work/sample.json'))['runs'][0]; print(r['epochSeconds'])")
sharp_transfer=$("$python" -c "import json,sys; r=json.load(open('$work/sample.json'))['runs'][0]; print(r['transferSeconds'])")

echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $threads threads on both sides"
echo
echo "| step | Graft / TorchSharp | PyTorch | ratio |"
echo "|---|--:|--:|--:|"
printf '| transfer ResNet18.onnx → gray [2,2,2,3] (graft transfer, files) vs torch.load + load_state_dict of its output | %s s | %.3f s | %.1f× |\n' \
  "$(job_time transfer graft)" "$torch_load" "$("$python" -c "print($(job_time transfer graft) / $torch_load)")"
printf '| the same transfer into a live module (WeightTransfer.IntoModule, in the sample) | %.3f s | | |\n' "$sharp_transfer"
printf '| one epoch, N = 1,000, 64×64, batch 32, Adam, BN frozen | %.2f s | %.2f s | %.2f× |\n' \
  "$sharp_epoch" "$torch_epoch" "$("$python" -c "print($sharp_epoch / $torch_epoch)")"
