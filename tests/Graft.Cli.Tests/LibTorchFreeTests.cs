using Graft.Checkpoints;
using Graft.TestSupport;

namespace Graft.Cli.Tests;

/// <summary>
/// Commands that only move bytes must not load libtorch (hundreds of megabytes mapped, a large part of start-up): the
/// real command runs in a child process with the dynamic loader's <c>LD_DEBUG=files</c> trace, which names every
/// shared library the process opens. A transfer that has to compute a tensor is the control: it must load it.
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

    [LinuxOnlyFact(LdDebug)]
    public void Transfer_ThatAdaptsATensor_LoadsLibTorch()
    {
        var (src, tpl, _) = MakeInputs();
        var (code, libtorch, err) = Run("transfer", src, "--into", tpl, "--out", _h.PathOf("adapted.safetensors"));
        Assert.True(code == 0, err);
        Assert.True(libtorch > 0, "the control transfer sums the stem's input channels and should have loaded libtorch_cpu; is LD_DEBUG honoured here?");
    }
}
