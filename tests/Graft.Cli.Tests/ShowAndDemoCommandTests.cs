using System.Buffers.Binary;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Cli.Tests;

public sealed class ShowCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    /// <summary>Width and height from a PNG's IHDR chunk, after checking the signature.</summary>
    internal static (int Width, int Height) PngSize(string path)
    {
        var b = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, b[..8]);
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(b, 12, 4));
        return (BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(20)));
    }

    [Fact]
    public void Show_RgbConv_WritesPngWithTheGridInside()
    {
        manual_seed(5);
        var path = _h.Save(nn.Sequential(("conv1", nn.Conv2d(3, 16, 3))), "m.safetensors");
        var png = _h.PathOf("grid.png");
        var (code, stdout, stderr) = _h.Run("show", path, "--tensor", "conv1.weight", "--out", png, "--scale", "10");
        Assert.True(code == 0, stderr);
        Assert.Contains("RGB", stdout);
        var (w, h) = PngSize(png);
        // 16 filters: 4×4 tiles of 30 px with 3 px gaps = 4·33 + 3 = 135 px, plus the panel's margins, title and caption.
        Assert.InRange(w, 135 + 32, 1000);
        Assert.InRange(h, 135 + 32, 135 + 32 + 60);
        Assert.Equal(["grid.png", "m.safetensors"], _h.Files());
    }

    [Fact]
    public void Show_Compare_TwoPanelsAtTheSameScale()
    {
        manual_seed(5);
        var a = _h.Save(nn.Sequential(("conv1", nn.Conv2d(3, 4, 3))), "a.safetensors");
        var b = _h.Save(nn.Sequential(("stem", nn.Conv2d(1, 4, 5))), "b.safetensors");
        var single = _h.PathOf("one.png");
        var pair = _h.PathOf("two.png");
        Assert.Equal(0, _h.Run("show", b, "--tensor", "stem.weight", "--out", single, "--scale", "8").Code);
        var (code, _, stderr) = _h.Run("show", a, "--tensor", "conv1.weight", "--compare", b, "--compare-tensor", "stem.weight", "--out", pair, "--scale", "8");
        Assert.True(code == 0, stderr);
        var (w1, h1) = PngSize(single);
        var (w2, h2) = PngSize(pair);
        Assert.True(w2 > w1 + (2 * 27), $"{w2} should hold two panels (one alone is {w1})");
        Assert.Equal(h1, h2); // 2×2 tiles of 5×5·8 px on both sides: the taller panel sets the height
    }

    [Fact]
    public void Show_NotAConvTensor_Exit2AndNothingWritten()
    {
        var path = _h.Save(nn.Linear(4, 2), "lin.safetensors");
        var png = _h.PathOf("grid.png");
        var (code, _, stderr) = _h.Run("show", path, "--tensor", "weight", "--out", png);
        Assert.Equal(2, code);
        Assert.Contains("not a convolution weight", stderr);
        Assert.Equal(["lin.safetensors"], _h.Files());
    }

    [Fact]
    public void Show_UnknownTensor_Exit2ListsConvWeights()
    {
        var path = _h.Save(nn.Sequential(("conv1", nn.Conv2d(3, 4, 3))), "m.safetensors");
        var (code, _, stderr) = _h.Run("show", path, "--tensor", "conv9.weight", "--out", _h.PathOf("g.png"));
        Assert.Equal(2, code);
        Assert.Contains("conv1.weight", stderr);
        Assert.Equal(["m.safetensors"], _h.Files());
    }

    private string Zeros(string name, params long[] shape)
    {
        var path = _h.PathOf(name);
        var s = new Graft.Checkpoints.Shape(shape);
        Graft.Checkpoints.CheckpointFile.Write(path, [Graft.Checkpoints.TensorPayload.FromBytes("w", Graft.Checkpoints.DType.F32, s, new byte[s.ElementCount * 4])]);
        return path;
    }

    [Fact]
    public void Show_LongKernelAtScale256_Exit2NotAnOverflow()
    {
        var path = Zeros("long.safetensors", 1, 1, 1, 16384);
        var (code, _, stderr) = _h.Run("show", path, "--tensor", "w", "--out", _h.PathOf("g.png"), "--scale", "256");
        Assert.Equal(2, code);
        Assert.Contains("pass a smaller --scale", stderr);
        Assert.Equal(["long.safetensors"], _h.Files());
    }

    [Fact]
    public void Show_ManyFilters_DefaultImageStaysWithinTheBudget()
    {
        // 312 KB of weights: 78,000 one-element filters drew 7035×7077 pixels (1 GB resident) before the budget.
        var path = Zeros("many.safetensors", 78_000, 1, 1, 1);
        var (code, _, stderr) = _h.Run("show", path, "--tensor", "w", "--out", _h.PathOf("g.png"));
        Assert.True(code == 0, stderr);
        var (w, h) = PngSize(_h.PathOf("g.png"));
        Assert.True((long)w * h <= Graft.Cli.Visual.FilterGrid.DefaultPixels * 3 / 2, $"{w}×{h}");
    }

    [Fact]
    public void Show_TooManyFiltersToDrawAtAll_Exit2()
    {
        var path = Zeros("huge.safetensors", 4_000_000, 1, 1, 2);
        var (code, _, stderr) = _h.Run("show", path, "--tensor", "w", "--out", _h.PathOf("g.png"));
        Assert.Equal(2, code);
        Assert.Contains("too many filters", stderr);
    }
}

public sealed class DemoTrainingTests
{
    [Fact]
    public void Demo_Quick_PrintsTheTableAndWritesThePlot()
    {
        using var h = new CliHarness();
        var (code, stdout, stderr) = h.Run("demo", "--out", h.Dir, "--quick");
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("verified.", stdout);
        Assert.Contains("mean ± sample std over 2 seeds", stdout);
        Assert.Matches(@"seed 2 of 2: fine-tuned both networks", stdout);
        Assert.Matches(@"after 3 epochs: transferred [\d.]+ ± [\d.]+ %, from scratch [\d.]+ ± [\d.]+ %; same-seed gap [+-]?[\d.]+ ± [\d.]+ points, the transferred network ahead on [0-2] of 2 seeds", stdout);
        Assert.Matches(@"so (on these images transfer pays|this run does not show that transfer pays)", stdout);
        var (w, hgt) = ShowCommandTests.PngSize(h.PathOf("learning-curves.png"));
        Assert.Equal((1040, 360), (w, hgt));
        ShowCommandTests.PngSize(h.PathOf("filters.png"));
        Assert.True(File.Exists(h.PathOf("pretrained.safetensors")));
        Assert.DoesNotContain(h.Files(), f => f.EndsWith(".tmp", StringComparison.Ordinal));
    }
}
