#!/usr/bin/env bash
# Packaging test: what a user gets from `dotnet pack`, used the way a user would on a fresh machine.
#   1. dotnet pack the library packages (Graft.Checkpoints, Graft) and the `graft` tool (Graft.Cli) into a temp folder,
#      under a version no cache can already hold (so nothing stale is picked up);
#   2. install the tool from that folder into a temp tool path and run `graft inspect` on a fixture and
#      `graft demo --quick` (which computes with TorchSharp, so libtorch must load on this system);
#   3. build and run a tiny console project that references the Graft package from that folder and picks its own
#      libtorch (TorchSharp-cpu, as an application does: Graft itself depends on the managed TorchSharp only), and
#      computes with TorchSharp: proves that the buildTransitive compatibility step (Debian 12 / Ubuntu 22.04) reaches
#      consumers whatever backend they chose.
# Packages resolve into a private folder; the machine's NuGet cache is only a read-only fallback for third-party
# packages (TorchSharp …), so the test neither downloads them again nor leaves anything of Graft behind.
# Exit 0 when every step passed. Usage: tests/packaging/test-tool-install.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
shared_cache="$(dotnet nuget locals global-packages --list | sed 's/^global-packages: //')"
base="$(dotnet msbuild src/Graft -getProperty:Version)"
version="$base-pkgtest.$(date +%Y%m%d%H%M%S)"
fail() { echo "packaging test FAILED: $*" >&2; exit 1; }

echo "== dotnet pack ($version)"
for p in src/Graft.Checkpoints src/Graft src/Graft.Cli; do
  dotnet pack "$p" -c Release -o "$tmp/nupkg" -p:Version="$version" -v q -nologo >/dev/null || fail "dotnet pack $p"
done
# The tool is one small pointer package (Graft.Cli) plus one package per platform with that platform's libtorch.
rid="linux-$(uname -m | sed 's/x86_64/x64/; s/aarch64/arm64/')"
for pkg in Graft.Checkpoints Graft Graft.Cli Graft.Cli.linux-x64 Graft.Cli.win-x64 Graft.Cli.osx-arm64; do
  f="$tmp/nupkg/$pkg.$version.nupkg"
  [ -f "$f" ] || fail "$f was not produced"
  echo "   $(basename "$f"): $(( $(stat -c %s "$f") / 1000000 )) MB"
done
# List first, then search: under pipefail, `unzip -l … | grep -q` fails at random when grep exits on the first match
# and unzip dies of SIGPIPE writing the rest (that race failed CI once).
listing="$(unzip -l "$tmp/nupkg/Graft.$version.nupkg")" || fail "cannot list Graft.$version.nupkg"
grep -q "buildTransitive/Graft.targets" <<<"$listing" || fail "the Graft package lacks buildTransitive/Graft.targets"
# A library lets the application choose its libtorch: Graft depends on the managed TorchSharp, never on a bundle.
nuspec="$(unzip -p "$tmp/nupkg/Graft.$version.nupkg" Graft.nuspec)" || fail "cannot read Graft.nuspec"
grep -q 'id="TorchSharp"' <<<"$nuspec" || fail "the Graft package does not depend on TorchSharp"
if grep -q 'id="TorchSharp-\|id="libtorch' <<<"$nuspec"; then fail "the Graft package depends on a libtorch bundle"; fi
echo "   Graft depends on TorchSharp $(sed -n 's/.*id="TorchSharp" version="\([^"]*\)".*/\1/p' <<<"$nuspec" | head -n 1), no libtorch bundle"

cat > "$tmp/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="graft-local" value="$tmp/nupkg" />
  </packageSources>
  <config>
    <add key="globalPackagesFolder" value="$tmp/packages" />
  </config>
  <fallbackPackageFolders>
    <add key="shared" value="$shared_cache" />
  </fallbackPackageFolders>
</configuration>
XML

echo "== dotnet tool install Graft.Cli"
(cd "$tmp" && dotnet tool install --tool-path "$tmp/tools" --add-source "$tmp/nupkg" --configfile "$tmp/nuget.config" Graft.Cli --version "$version") \
  || fail "dotnet tool install"
installed="$(find "$tmp/tools/.store" -name Graft.Cli.dll -path "*/$rid/*" | head -n 1)"
[ -n "$installed" ] || fail "the installed tool has no $rid/Graft.Cli.dll (did install pick the platform package?)"
# A ReadyToRun image carries a managed native header (the CLI header's flags lack ILONLY = 0x1): the tool starts precompiled.
python3 - "$installed" <<'PY' || fail "the installed Graft.Cli.dll is not ReadyToRun"
import struct, sys
d = open(sys.argv[1], "rb").read()
pe = struct.unpack_from("<I", d, 0x3C)[0]
magic = struct.unpack_from("<H", d, pe + 24)[0]
dirs = pe + 24 + (96 if magic == 0x10B else 112)
cli_rva = struct.unpack_from("<I", d, dirs + 14 * 8)[0]
nsec = struct.unpack_from("<H", d, pe + 6)[0]
sec = pe + 24 + struct.unpack_from("<H", d, pe + 20)[0]
for i in range(nsec):
    va, size, raw = struct.unpack_from("<III", d, sec + i * 40 + 12)
    if va <= cli_rva < va + max(size, 1):
        flags = struct.unpack_from("<I", d, cli_rva - va + raw + 16)[0]
        sys.exit(0 if flags & 1 == 0 else 1)
sys.exit(1)
PY
echo "   installed $rid package, ReadyToRun: $(realpath --relative-to="$tmp" "$installed")"
echo "== graft inspect"
"$tmp/tools/graft" inspect tests/fixtures/pytorch/tinycnn.pth >/dev/null || fail "graft inspect (exit $?)"
echo "== graft demo --quick"
"$tmp/tools/graft" demo --quick >"$tmp/demo.log" 2>&1 || { tail -n 20 "$tmp/demo.log" >&2; fail "graft demo --quick"; }
tail -n 3 "$tmp/demo.log"

echo "== a console project referencing the Graft package and TorchSharp-cpu"
torchsharp_version="$(sed -n 's/.*PackageVersion Include="TorchSharp-cpu" Version="\([^"]*\)".*/\1/p' Directory.Packages.props)"
[ -n "$torchsharp_version" ] || fail "no TorchSharp-cpu version in Directory.Packages.props"
mkdir -p "$tmp/consumer"
cp "$tmp/nuget.config" "$tmp/consumer/nuget.config"
cat > "$tmp/consumer/consumer.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <ImplicitUsings>enable</ImplicitUsings>
    <Nullable>enable</Nullable>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="Graft" Version="$version" />
    <!-- The application's choice of libtorch; a GPU app would name a TorchSharp-cuda-* bundle here instead. -->
    <PackageReference Include="TorchSharp-cpu" Version="$torchsharp_version" />
  </ItemGroup>
</Project>
XML
cat > "$tmp/consumer/Program.cs" <<'CS'
using Graft;
using Graft.Checkpoints;
using static TorchSharp.torch;

// A checkpoint read by Graft, and arithmetic by the libtorch the application chose: both halves must work.
using var reader = CheckpointFile.Open(args[0]);
using var w = TensorBridge.Read(reader, reader.Tensors[0]);
using var x = ones(2, 3) * 2;
float sum = x.sum().item<float>();
// A 3×3 all-ones kernel over a 4×4 all-ones image, no padding: every output is 9 (libtorch's convolution kernels ran).
using var conv = nn.functional.conv2d(ones(1, 1, 4, 4), ones(1, 1, 3, 3));
float convSum = conv.sum().item<float>();
Console.WriteLine($"{reader.Tensors.Count} tensors; first {reader.Tensors[0].Name} {w.shape.Length}-d; sum {sum}; conv {convSum}");
return sum == 12f && convSum == 36f ? 0 : 1;
CS
(cd "$tmp/consumer" && dotnet build -c Release -o "$tmp/consumer/out" -v q -nologo >"$tmp/consumer.log" 2>&1) \
  || { tail -n 30 "$tmp/consumer.log" >&2; fail "the consumer project did not build"; }
[ -f "$tmp/consumer/out/runtimes/$rid/native/libtorch_cpu.so" ] || [ -f "$tmp/consumer/out/libtorch_cpu.so" ] \
  || fail "the consumer's output has no libtorch_cpu.so from its TorchSharp-cpu reference"
dotnet "$tmp/consumer/out/consumer.dll" "$PWD/tests/fixtures/pytorch/tinycnn.pth" || fail "the consumer project failed to run (exit $?)"

echo "packaging test passed in $((SECONDS - start)) s"
