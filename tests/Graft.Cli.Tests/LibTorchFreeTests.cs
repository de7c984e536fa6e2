using Graft.Checkpoints;
using Graft.TestSupport;

namespace Graft.Cli.Tests;

/// <summary>
/// Commands that only move bytes must not load libtorch (hundreds of megabytes mapped, a large part of start-up): the
/// real command runs in a child process with the dynamic loader's <c>LD_DEBUG=files</c> trace, which names every
/// shared library the process opens. Nor must a transfer whose computations all have managed twins. A transfer that
/// resizes a kernel (no twin) is the control: it must load it.
/// </summary>
public sealed class LibTorchFreeTests : IDisposable
{
    private const string LdDebug = "uses the glibc dynamic loader's LD_DEBUG=files trace to see which libraries load";

    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private (string Source, string Template, string Pt) MakeInputs()
    {
        static TensorPayload F32(string name, params long[] shape)
        {
            var s = new Shape(shape);
            return TensorPayload.FromBytes(name, DType.F32, s, new byte[s.ElementCount * 4]);
        }
        var src = _h.PathOf("src.safetensors");
        var tpl = _h.PathOf("tpl.safetensors");
        var pt = _h.PathOf("src.pt");
        CheckpointFile.Write(src, [F32("stem.weight", 8, 3, 3, 3), F32("stem.bias", 8), F32("head.weight", 10, 8)]);
        CheckpointFile.Write(tpl, [F32("stem.weight", 8, 1, 3, 3), F32("stem.bias", 8), F32("head.weight", 10, 8)]);
        CheckpointFile.Write(pt, [F32("stem.weight", 8, 3, 3, 3), F32("stem.bias", 8), F32("head.weight", 10, 8)]);
        return (src, tpl, pt);
    }

    /// <summary>Runs the CLI in a child process under LD_DEBUG=files; returns its exit code and the loader's lines naming libtorch_cpu.</summary>
    private static (int Code, int LibTorchLines, string Err) Run(params string[] args)
    {
        var (code, _, stderr) = CliHarness.RunProcess(new Dictionary<string, string> { ["LD_DEBUG"] = "files" }, args);
        var lines = stderr.Split('\n').Count(l => l.Contains("libtorch_cpu", StringComparison.Ordinal));
        return (code, lines, stderr.Length > 2000 ? stderr[^2000..] : stderr);
    }

    [LinuxOnlyFact(LdDebug)]
    public void Inspect_Convert_Diff_CopyOnlyTransfer_DoNotLoadLibTorch()
    {
        var (src, tpl, pt) = MakeInputs();
        string[][] commands =
        [
            ["inspect", src],
            ["inspect", pt],
            ["convert", pt, _h.PathOf("converted.safetensors")],
            ["diff", src, pt],
            ["transfer", src, "--into", src, "--out", _h.PathOf("copied.safetensors")],
        ];
        foreach (var args in commands)
        {
            var (code, libtorch, err) = Run(args);
            Assert.True(code == 0, $"graft {string.Join(' ', args)} exited {code}: {err}");
            Assert.True(libtorch == 0, $"graft {string.Join(' ', args)} loaded libtorch_cpu ({libtorch} loader lines)");
        }
    }

    /// <summary>
    /// Job B of issue 15 in small: a ResNet-like checkpoint into a 1-channel stem and a 10-class head. The only computed
    /// tensor is the stem's 3→1 input sum, which has a managed twin, so libtorch stays unloaded; the head keeps the
    /// template's init. The stem must equal what the libtorch path computes (the TorchSharp transform, run here) bit for bit.
    /// </summary>
    [LinuxOnlyFact(LdDebug)]
    public void Transfer_StemSumAndNewHead_LoadsNoLibTorch_AndMatchesTheLibTorchPath()
    {
        var random = new Random(15);
        TensorPayload F32(string name, params long[] shape)
        {
            var s = new Shape(shape);
            var values = Enumerable.Range(0, (int)s.ElementCount).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            return TensorPayload.FromBytes(name, DType.F32, s, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        }
        TensorPayload[] Net(long inputs, long classes) =>
        [
            F32("conv1.weight", 16, inputs, 7, 7), F32("bn1.weight", 16), F32("bn1.bias", 16), F32("bn1.running_mean", 16), F32("bn1.running_var", 16),
            F32("layer1.0.conv1.weight", 16, 16, 3, 3), F32("layer1.0.bn1.weight", 16), F32("layer1.0.bn1.bias", 16),
            F32("fc.weight", classes, 16), F32("fc.bias", classes),
        ];
        var src = _h.PathOf("resnet.pt");
        var tpl = _h.PathOf("resnet-1ch-10.safetensors");
        var output = _h.PathOf("out.safetensors");
        CheckpointFile.Write(src, Net(3, 1000));
        CheckpointFile.Write(tpl, Net(1, 10));

        var (code, libtorch, err) = Run("transfer", src, "--into", tpl, "--out", output);
        Assert.True(code == 0, err);
        Assert.True(libtorch == 0, $"a transfer whose only computation is a stem sum loaded libtorch_cpu ({libtorch} loader lines)");

        using var source = CheckpointFile.Open(src);
        using var template = CheckpointFile.Open(tpl);
        using var result = CheckpointFile.Open(output);
        byte[] Bytes(ICheckpointReader r, string name)
        {
            Assert.True(r.TryGetTensor(name, out var info), name);
            var bytes = new byte[info!.ByteLength];
            r.ReadBytes(info, bytes);
            return bytes;
        }
        using var scope = TorchSharp.torch.NewDisposeScope();
        var stem = Graft.TensorBridge.Read(source, source.Tensors.Single(t => t.Name == "conv1.weight"));
        var expected = Graft.TensorBridge.ToBytes(Graft.Transforms.InChannels.Sum(Layout.Conv(2), 3, 1).Apply(stem));
        Assert.Equal(expected, Bytes(result, "conv1.weight"));
        Assert.Equal(Bytes(template, "fc.weight"), Bytes(result, "fc.weight"));
        Assert.Equal(Bytes(source, "layer1.0.conv1.weight"), Bytes(result, "layer1.0.conv1.weight"));
    }

    [LinuxOnlyFact(LdDebug)]
    public void Transfer_ThatResizesAKernel_LoadsLibTorch()
    {
        var (src, _, _) = MakeInputs();
        var tpl = _h.PathOf("tpl5x5.safetensors");
        CheckpointFile.Write(tpl, [TensorPayload.FromBytes("stem.weight", DType.F32, new Shape(8, 3, 5, 5), new byte[8 * 3 * 5 * 5 * 4])]);
        var (code, libtorch, err) = Run("transfer", src, "--into", tpl, "--out", _h.PathOf("adapted.safetensors"), "--kernel", "bilinear");
        Assert.True(code == 0, err);
        Assert.True(libtorch > 0, "the control transfer resizes a kernel (no managed twin) and should have loaded libtorch_cpu; is LD_DEBUG honoured here?");
    }
}
