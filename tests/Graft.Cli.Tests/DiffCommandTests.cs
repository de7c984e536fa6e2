using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Cli.Tests;

public sealed class DiffCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    // A and B share conv1 (same), conv2 (shape differs), bn (dtype differs: B is float64); A alone has fc, B alone has head.
    private (string A, string B) SeedCase()
    {
        manual_seed(1);
        var a = nn.Sequential(("conv1", nn.Conv2d(3, 8, 3)), ("conv2", nn.Conv2d(8, 16, 3)), ("bn", nn.BatchNorm2d(16)), ("fc", nn.Linear(16, 10)));
        var b = nn.Sequential(("conv1", nn.Conv2d(3, 8, 3)), ("conv2", nn.Conv2d(8, 24, 3)), ("bn", nn.BatchNorm2d(16)), ("head", nn.Linear(24, 5)));
        ((nn.Module)b[2]).to(float64);
        return (_h.Save(a, "a.safetensors"), _h.Save(b, "b.safetensors"));
    }

    [Fact]
    public void Diff_Table_ShowsEveryCategoryGroupedByLayer()
    {
        var (a, b) = SeedCase();
        var (code, stdout, stderr) = _h.Run("diff", a, b);
        Assert.True(code == 0, stderr);
        var lines = stdout.Split('\n');
        // The layer that is the same is counted, not listed (--all lists it).
        Assert.DoesNotContain(lines, l => l.Contains("conv1"));
        Assert.Contains("1 layer with the same names, shapes and dtypes (2 tensors; --all lists them).", stdout);
        Assert.Contains(lines, l => l.Contains("conv2") && l.Contains("weight") && l.Contains("(16, 8, 3, 3) F32") && l.Contains("(24, 8, 3, 3) F32") && l.Contains("shape differs"));
        Assert.Contains(lines, l => l.Contains("running_mean") && l.Contains("F64") && l.Contains("dtype differs"));
        Assert.Contains(lines, l => l.Contains("fc") && l.Contains("only in A"));
        Assert.Contains(lines, l => l.Contains("head") && l.Contains("only in B"));
        Assert.Contains("2 only in A, 2 only in B, 2 with another shape", stdout);
    }

    [Fact]
    public void Diff_Json_CountsAndKindsPerTensor()
    {
        var (a, b) = SeedCase();
        var (code, stdout, stderr) = _h.Run("diff", a, b, "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.True(root.GetProperty("differs").GetBoolean());
        var counts = root.GetProperty("counts");
        Assert.Equal(2, counts.GetProperty("onlyInA").GetInt32());
        Assert.Equal(2, counts.GetProperty("onlyInB").GetInt32());
        Assert.Equal(2, counts.GetProperty("shapeDiffers").GetInt32());
        Assert.Equal(4, counts.GetProperty("dTypeDiffers").GetInt32()); // bn weight, bias, running_mean, running_var; num_batches_tracked stays int64
        Assert.Equal(3, counts.GetProperty("same").GetInt32()); // conv1 weight and bias, bn num_batches_tracked
        var layers = root.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal(["conv1", "conv2", "bn", "fc", "head"], layers.Select(l => l.GetProperty("layer").GetString()));
        Assert.True(layers[0].GetProperty("same").GetBoolean());
        var w2 = layers[1].GetProperty("tensors")[0];
        Assert.Equal("shape-differs", w2.GetProperty("kind").GetString());
        Assert.Equal([24L, 8, 3, 3], w2.GetProperty("b").GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        var fc = layers[3].GetProperty("tensors")[0];
        Assert.Equal("only-in-a", fc.GetProperty("kind").GetString());
        Assert.False(fc.TryGetProperty("b", out _));
    }

    [Fact]
    public void Diff_ExitCode_OneWhenDifferentZeroWhenSame()
    {
        var (a, b) = SeedCase();
        Assert.Equal(1, _h.Run("diff", a, b, "--exit-code").Code);
        Assert.Equal(0, _h.Run("diff", a, b).Code);
        var (code, stdout, _) = _h.Run("diff", a, a, "--exit-code");
        Assert.Equal(0, code);
        Assert.Contains("no differences", stdout);
        Assert.DoesNotContain("same", stdout); // identical files: no table of "same" rows
    }

    [Fact]
    public void Diff_MissingFile_Exit3()
    {
        var (a, _) = SeedCase();
        var (code, _, stderr) = _h.Run("diff", a, _h.PathOf("nope.safetensors"));
        Assert.Equal(3, code);
        Assert.Contains("nope.safetensors", stderr);
    }
}
