using Graft.Growth;
using Graft.Transforms;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Graft.Tests.Growth;

public class InflateTests(ITestOutputHelper output)
{
    private static Sequential Image2d() => nn.Sequential(
        ("c1", nn.Conv2d(3, 4, 3, padding: 1, dtype: ScalarType.Float64)),
        ("bn1", nn.BatchNorm2d(4, dtype: ScalarType.Float64)),
        ("r1", nn.ReLU()),
        ("c2", nn.Conv2d(4, 5, 3, stride: 2, padding: 1, dtype: ScalarType.Float64)),
        ("bn2", nn.BatchNorm2d(5, dtype: ScalarType.Float64)),
        ("r2", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flat", nn.Flatten()),
        ("fc", nn.Linear(5, 3, dtype: ScalarType.Float64)));

    private static Sequential Inflated(Sequential net, long time, InflateMode mode)
    {
        var m = net.named_children().ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);
        return nn.Sequential(
            ("c1", Inflate.Conv2d((Conv2d)m["c1"], time, mode)),
            ("bn1", Inflate.BatchNorm2d((BatchNorm2d)m["bn1"])),
            ("r1", nn.ReLU()),
            ("c2", Inflate.Conv2d((Conv2d)m["c2"], time, mode)),
            ("bn2", Inflate.BatchNorm2d((BatchNorm2d)m["bn2"])),
            ("r2", nn.ReLU()),
            ("pool", nn.AdaptiveAvgPool3d(1)),
            ("flat", nn.Flatten()),
            ("fc", m["fc"]));
    }

    [Theory]
    [InlineData(InflateMode.Repeat)]
    [InlineData(InflateMode.CenterSlice)]
    public void Network_OnIdenticalFrames_GivesTheImageResponse(InflateMode mode)
    {
        manual_seed(61);
        var net2d = Image2d();
        GrowthModels.RandomiseNorms(net2d, 62);
        var net3d = Inflated(net2d, 3, mode);
        using var g = new Generator(63);
        var d = Verify.Compare(net2d, net3d, _ =>
        {
            var x = randn(new long[] { 2, 3, 6, 6 }, dtype: ScalarType.Float64, generator: g);
            return (x, Inflate.IdenticalFrames(x, 5));
        }, 4);
        output.WriteLine(mode.ToString());
        GrowthModels.AssertWithin(d, GrowthModels.Float64Exact, output);
    }

    [Fact]
    public void Conv2d_Repeat_DividesByTimeAndKeepsSpatialSettings()
    {
        var conv = nn.Conv2d(2, 3, (3, 5), stride: (2, 1), padding: (1, 2), dtype: ScalarType.Float64);
        var c3 = Inflate.Conv2d(conv, 4);
        Assert.Equal([3L, 2, 4, 3, 5], c3.weight.shape);
        Assert.Equal([1L, 2, 1], c3.stride);
        Assert.Equal([0L, 1, 2], c3.padding!);
        TensorAssert.Close(conv.weight, c3.weight.sum(2), 1e-15, 1e-12);
        TensorAssert.Close(conv.bias!, c3.bias!, 0, 0);
    }

    [Fact]
    public void Conv2d_CenterSlice_IsFrameByFrameOnAnyClip()
    {
        manual_seed(64);
        var conv = nn.Conv2d(2, 3, 3, padding: 1, dtype: ScalarType.Float64);
        var c3 = Inflate.Conv2d(conv, 3, InflateMode.CenterSlice);
        Assert.Equal([1L, 1, 1], c3.padding!);
        using var clip = randn(new long[] { 1, 2, 4, 5, 5 }, dtype: ScalarType.Float64);
        using var y = c3.forward(clip);
        for (int t = 0; t < 4; t++)
        {
            TensorAssert.Close(conv.forward(clip.select(2, t)), y.select(2, t), 1e-12, 1e-12);
        }
    }

    [Fact]
    public void BatchNorm2d_CopiesStatisticsAndSettings()
    {
        var bn = nn.BatchNorm2d(3, eps: 1e-3, momentum: 0.3, dtype: ScalarType.Float64);
        GrowthModels.RandomiseNorms(bn, 65);
        bn.eval();
        var bn3 = Inflate.BatchNorm2d(bn);
        Assert.Equal(1e-3, bn3.eps);
        Assert.Equal(0.3, bn3.momentum);
        Assert.False(bn3.training);
        TensorAssert.Close(bn.running_var!, bn3.running_var!, 0, 0);
        using var x = randn(new long[] { 2, 3, 4, 4 }, dtype: ScalarType.Float64);
        TensorAssert.Close(bn.forward(x), bn3.forward(x.unsqueeze(2)).squeeze(2), 1e-14, 1e-12);
    }
}

public class PatchEmbeddingTests(ITestOutputHelper output)
{
    /// <summary>Resizes every p×p patch of an image to q×q separately (the FlexiViT setting): (N, C, n·p, n·p) → (N, C, n·q, n·q).</summary>
    private static Tensor ResizePatches(Tensor x, long p, long q)
    {
        long n = x.shape[0], c = x.shape[1], rows = x.shape[2] / p, cols = x.shape[3] / p;
        var patches = x.reshape(n, c, rows, p, cols, p).permute(0, 2, 4, 1, 3, 5).reshape(n * rows * cols, c, p, p);
        var resized = nn.functional.interpolate(patches, size: [q, q], mode: InterpolationMode.Bilinear, align_corners: false);
        return resized.reshape(n, rows, cols, c, q, q).permute(0, 3, 1, 4, 2, 5).reshape(n, c, rows * q, cols * q);
    }

    [Fact]
    public void Resize_Growing_GivesResizedPatchesTheOldEmbeddings()
    {
        manual_seed(71);
        var embed = nn.Conv2d(3, 6, 4, stride: 4, dtype: ScalarType.Float64);
        var bigger = PatchEmbedding.Resize(embed, 6);
        Assert.Equal([6L, 6], bigger.stride);
        using var g = new Generator(72);
        var d = Verify.Compare(embed, bigger, _ =>
        {
            var x = randn(new long[] { 2, 3, 8, 8 }, dtype: ScalarType.Float64, generator: g);
            return (x, ResizePatches(x, 4, 6));
        }, 3);
        // A pseudo-inverse (float64 SVD) rather than exact arithmetic: measured 3e-15, bound 1e-12.
        GrowthModels.AssertWithin(d, 1e-12, output);
    }

    [Fact]
    public void Resize_NotAPatchEmbedding_IsRefused()
    {
        var conv = nn.Conv2d(3, 6, 3, padding: 1);
        Assert.Throws<ArgumentException>(() => PatchEmbedding.Resize(conv, 6));
    }
}

public class VerifyTests
{
    [Fact]
    public void Compare_DifferentNetworks_ReportsTheDifferenceAndRestoresModes()
    {
        var a = nn.Sequential(("l", nn.Linear(3, 2, dtype: ScalarType.Float64)), ("d", nn.Dropout(0.5)));
        var b = nn.Sequential(("l", nn.Linear(3, 2, dtype: ScalarType.Float64)), ("d", nn.Dropout(0.5)));
        a.train();
        b.eval();
        var m = a.named_children().Single(c => c.name == "d").module;
        using (no_grad())
        {
            b.get_parameter("l.weight")!.copy_(a.get_parameter("l.weight")!);
            b.get_parameter("l.bias")!.copy_(a.get_parameter("l.bias")! + 1);
        }
        var d = Verify.Compare(a, b, GrowthModels.Inputs(81, 4, 3), 2);
        Assert.Equal(1.0, d.MaxAbsolute, 12);   // dropout off in eval mode, bias differs by exactly 1
        Assert.Equal(2, d.Inputs);
        Assert.True(a.training);
        Assert.True(m.training);
        Assert.False(b.training);
    }

    [Fact]
    public void Compare_OutputShapesDiffer_Throws()
    {
        var a = nn.Linear(3, 2, dtype: ScalarType.Float64);
        var b = nn.Linear(3, 4, dtype: ScalarType.Float64);
        var ex = Assert.Throws<ArgumentException>(() => Verify.Compare(a, b, GrowthModels.Inputs(82, 1, 3), 1));
        Assert.Contains("(1, 4)", ex.Message);
    }
}
