using System.Text.Json;
using Graft.Checkpoints;
using Graft.Numerics;
using Graft.TestSupport;
using SkiaSharp;

namespace Graft.Cli.Tests;

/// <summary>
/// The numerics guard end to end, in child processes (the guard runs once per process): a failing self-check injected on
/// purpose takes the workaround path on any machine; one that cannot be cured makes commands that compute refuse with
/// exit 6 and one line; <c>graft doctor</c> reports the decision.
/// </summary>
public sealed class NumericsCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    /// <summary>The guard's variables, and a cache folder of the test's own, so that nothing the guard remembers leaks between tests.</summary>
    private Dictionary<string, string> Env(string fault, string mode = "auto") =>
        new() { [NumericsGuard.FaultVariable] = fault, [NumericsGuard.ModeVariable] = mode, ["XDG_CACHE_HOME"] = _h.PathOf("cache") };

    [Fact]
    public void Demo_FirstCheckFails_WorkaroundAppliedSaidOnceAndDemoVerifies()
    {
        var (code, stdout, stderr) = CliHarness.RunProcess(Env("first"), "demo", "--quick");
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("verified.", stdout);
        var notices = stderr.Split('\n').Where(l => l.StartsWith("graft: ", StringComparison.Ordinal)).ToList();
        var notice = Assert.Single(notices);
        Assert.Contains("mkldnn is turned off", notice, StringComparison.Ordinal);
        Assert.Contains("[fault injected]", notice, StringComparison.Ordinal);
        Assert.DoesNotContain("NNPACK", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Demo_CheckCannotBeCured_Exit6OneLineNothingWritten()
    {
        var dir = _h.PathOf("demo-out");
        var (code, stdout, stderr) = CliHarness.RunProcess(Env("always"), "demo", "--quick", "--out", dir);
        Assert.True(code == 6, $"exit {code}: {stdout}{stderr}");
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("graft: libtorch's CPU convolutions give wrong results", line, StringComparison.Ordinal);
        Assert.Contains("Refusing to compute", line, StringComparison.Ordinal);
        Assert.Empty(stdout);
        Assert.Empty(Directory.GetFileSystemEntries(dir));
    }

    [Fact]
    public void Transfer_ThatComputes_CheckCannotBeCured_Exit6AndNoOutput()
    {
        static TensorPayload F32(string name, params long[] shape) =>
            TensorPayload.FromBytes(name, DType.F32, new Shape(shape), new byte[new Shape(shape).ElementCount * 4]);
        var src = _h.PathOf("src.safetensors");
        var tpl = _h.PathOf("tpl.safetensors");
        CheckpointFile.Write(src, [F32("stem.weight", 8, 3, 3, 3), F32("stem.bias", 8)]);
        CheckpointFile.Write(tpl, [F32("stem.weight", 8, 3, 5, 5), F32("stem.bias", 8)]);
        // A bilinear kernel resize has no managed twin: it computes on libtorch's kernels.
        var (code, _, stderr) = CliHarness.RunProcess(Env("always"), "transfer", src, "--into", tpl, "--out", _h.PathOf("out.safetensors"), "--kernel", "bilinear");
        Assert.True(code == 6, stderr);
        Assert.Equal(["src.safetensors", "tpl.safetensors"], _h.Files());

        // A transfer that only copies never computes, so it needs no trustworthy kernels; nor does one whose computations
        // all run on managed twins (a stem's input sum).
        (code, _, stderr) = CliHarness.RunProcess(Env("always"), "transfer", src, "--into", src, "--out", _h.PathOf("copy.safetensors"));
        Assert.True(code == 0, stderr);
        var stem1 = _h.PathOf("stem1.safetensors");
        CheckpointFile.Write(stem1, [F32("stem.weight", 8, 1, 3, 3), F32("stem.bias", 8)]);
        (code, _, stderr) = CliHarness.RunProcess(Env("always"), "transfer", src, "--into", stem1, "--out", _h.PathOf("summed.safetensors"));
        Assert.True(code == 0, stderr);
    }

    [Fact]
    public void Demo_GuardModeInvalid_Exit2NamingTheVariable()
    {
        var (code, _, stderr) = CliHarness.RunProcess(Env("none", mode: "sometimes"), "demo", "--quick");
        Assert.Equal(2, code);
        Assert.Contains(NumericsGuard.ModeVariable, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Doctor_Json_ReportsTheGuardsDecision()
    {
        var (code, stdout, stderr) = CliHarness.RunProcess(Env("first"), "doctor", "--json");
        Assert.True(code == 0, stdout + stderr);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.Equal("0.107.0", root.GetProperty("torchSharp").GetString());
        Assert.True(root.GetProperty("libTorch").GetProperty("loaded").GetBoolean());
        Assert.False(root.GetProperty("libTorch").GetProperty("mkldnnAfter").GetBoolean());
        var guard = root.GetProperty("guard");
        Assert.Equal("mkldnn-disabled", guard.GetProperty("action").GetString());
        Assert.True(guard.GetProperty("trusted").GetBoolean());
        Assert.True(guard.GetProperty("firstCheck").GetProperty("faultInjected").GetBoolean());
        Assert.Equal(3, guard.GetProperty("finalCheck").GetProperty("cases").GetArrayLength());
        Assert.True(root.GetProperty("healthy").GetBoolean());
        Assert.False(string.IsNullOrEmpty(root.GetProperty("cpu").GetProperty("model").GetString()));
    }

    [LinuxOnlyFact("the guard caps oneDNN through glibc setenv")]
    public void Doctor_Remembered_CapsOneDnnAtAvx2()
    {
        // The child must start without a cap of its own, whatever this process has (CI's second pass sets
        // DNNL_MAX_CPU_ISA=AVX2): an empty value removes the variable from the child's environment.
        var env = Env("none");
        env["DNNL_MAX_CPU_ISA"] = "";
        var (code, stdout, stderr) = CliHarness.RunProcess(env, "doctor", "--json");
        Assert.True(code == 0, stdout + stderr);
        string memory;
        using (var doc = JsonDocument.Parse(stdout))
        {
            memory = doc.RootElement.GetProperty("memoryFile").GetString()!;
        }
        Assert.StartsWith(_h.PathOf("cache"), memory, StringComparison.Ordinal);
        // What an earlier process leaves after a genuine failure: the next process caps oneDNN and keeps it on.
        Directory.CreateDirectory(Path.GetDirectoryName(memory)!);
        File.WriteAllText(memory, "test");
        (code, stdout, stderr) = CliHarness.RunProcess(env, "doctor", "--json");
        Assert.True(code == 0, stdout + stderr);
        using var again = JsonDocument.Parse(stdout);
        var root = again.RootElement;
        Assert.True(root.GetProperty("remembered").GetBoolean());
        Assert.Equal("AVX2", root.GetProperty("libTorch").GetProperty("oneDnnIsaCap").GetString());
        Assert.True(root.GetProperty("libTorch").GetProperty("mkldnnAfter").GetBoolean());
        Assert.Equal("isa-capped", root.GetProperty("guard").GetProperty("action").GetString());
        Assert.True(root.GetProperty("guard").GetProperty("trusted").GetBoolean());
    }

    [Fact]
    public void Doctor_Text_CheckCannotBeCured_Exit6AndSaysSo()
    {
        var (code, stdout, _) = CliHarness.RunProcess(Env("always"), "doctor");
        Assert.Equal(6, code);
        Assert.Contains("RESULTS NOT TRUSTED", stdout, StringComparison.Ordinal);
        Assert.Contains("FAIL conv2d", stdout, StringComparison.Ordinal);
        Assert.Contains("NOT HEALTHY", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Doctor_GuardForcedOn_MkldnnOff()
    {
        var (code, stdout, stderr) = CliHarness.RunProcess(Env("none", mode: "on"), "doctor");
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("action mkldnn-disabled-by-request", stdout, StringComparison.Ordinal);
        Assert.Contains("off now", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Plot_NonFinitePoints_LeftOutAndNamedInTheLegend()
    {
        var diverged = new Plot.Series("from scratch", SKColors.Orange, [1.4, 0.9, double.NaN, double.PositiveInfinity, double.NaN]);
        var fine = new Plot.Series("transferred", SKColors.Blue, [1.5, 0.6, 0.4, 0.3, 0.2]);
        using var chart = Plot.Lines("loss", "epoch", [fine, diverged]);
        Assert.Equal((520, 360), (chart.Width, chart.Height));
        Assert.Equal("from scratch (3 not finite, left out)", Plot.LegendName(diverged));
        Assert.Equal("transferred", Plot.LegendName(fine));
        using var empty = Plot.Lines("loss", "epoch", [new Plot.Series("all NaN", SKColors.Red, [double.NaN, double.NaN])]);
        Assert.Equal(520, empty.Width);
    }
}
