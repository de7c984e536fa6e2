using Graft.Growth;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Graft.Tests.Growth;

public class Net2DeeperTests(ITestOutputHelper output)
{
    [Fact]
    public void IdentityConvAndBatchNorm_InsertedAfterReLU_KeepOutputs()
    {
        manual_seed(41);
        var source = GrowthModels.PlainChain(4, 6);
        GrowthModels.RandomiseNorms(source, 42);
        var m = source.named_children().ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);
        // conv → BN → ReLU → [identity conv → identity BN → ReLU] → conv …
        var target = nn.Sequential(
            ("c1", m["c1"]), ("bn1", m["bn1"]), ("r1", m["r1"]),
            ("new_conv", Net2Deeper.IdentityConv2d(4, 3, dtype: ScalarType.Float64)),
            ("new_bn", Net2Deeper.IdentityBatchNorm2d(4, dtype: ScalarType.Float64)),
            ("new_relu", nn.ReLU()),
            ("c2", m["c2"]), ("bn2", m["bn2"]), ("r2", m["r2"]), ("pool", m["pool"]), ("flat", m["flat"]), ("fc", m["fc"]));
        // README: identity layers are bit-exact (measured: a 1 in the centre and zeros elsewhere; BatchNorm mean 0, var 1, weight √(1 + eps)).
        GrowthModels.AssertBitExact(Verify.Compare(source, target, GrowthModels.Inputs(43, 2, 3, 6, 6), 4), output);
    }

    [Fact]
    public void IdentityLinear_InsertedAfterReLU_KeepsOutputs()
    {
        manual_seed(44);
        var source = nn.Sequential(("l1", nn.Linear(5, 7, dtype: ScalarType.Float64)), ("r", nn.ReLU()), ("l2", nn.Linear(7, 3, dtype: ScalarType.Float64)));
        var m = source.named_children().ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);
        var target = nn.Sequential(("l1", m["l1"]), ("r", m["r"]), ("id", Net2Deeper.IdentityLinear(7, dtype: ScalarType.Float64)), ("r2", nn.ReLU()), ("l2", m["l2"]));
        var d = Verify.Compare(source, target, GrowthModels.Inputs(45, 4, 5), 3);
        output.WriteLine($"max |diff| = {d.MaxAbsolute:g3}, max relative = {d.MaxRelative:g3}");
        Assert.Equal(0, d.MaxAbsolute);
    }

    [Fact]
    public void IdentityConv2d_EvenKernel_IsRefused()
    {
        var ex = Assert.Throws<ArgumentException>(() => Net2Deeper.IdentityConv2d(3, 2));
        Assert.Contains("odd", ex.Message);
    }

    [Fact]
    public void IdentityBatchNorm2d_InTrainingMode_IsNotTheIdentity()
    {
        // The promise is for eval mode: in training mode a BatchNorm normalises with the batch's statistics.
        var bn = Net2Deeper.IdentityBatchNorm2d(2, dtype: ScalarType.Float64);
        using var x = randn(new long[] { 4, 2, 3, 3 }, dtype: ScalarType.Float64) * 3 + 1;
        bn.eval();
        TensorAssert.Close(x, bn.forward(x), 1e-12, 1e-12);
        bn.train();
        Assert.True(TensorAssert.MaxAbsDiff(x, bn.forward(x)) > 0.1);
    }
}

public class EnlargeTests(ITestOutputHelper output)
{
    [Fact]
    public void Conv2d_InPlainChain_KeepsOutputs()
    {
        manual_seed(51);
        var source = GrowthModels.PlainChain(4, 6);
        GrowthModels.RandomiseNorms(source, 52);
        var m = source.named_children().ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);
        var c1 = Enlarge.Conv2d((Conv2d)m["c1"], 5);
        var c2 = Enlarge.Conv2d((Conv2d)m["c2"], 7);
        Assert.Equal([2L, 2], c1.padding!);
        Assert.Equal([3L, 3], c2.padding!);
        var target = nn.Sequential(("c1", c1), ("bn1", m["bn1"]), ("r1", m["r1"]), ("c2", c2),
            ("bn2", m["bn2"]), ("r2", m["r2"]), ("pool", m["pool"]), ("flat", m["flat"]), ("fc", m["fc"]));
        // README: kernel enlargement is bit-exact (the added taps are zeros and meet only padding or real pixels times 0).
        GrowthModels.AssertBitExact(Verify.Compare(source, target, GrowthModels.Inputs(53, 2, 3, 7, 7), 4), output);
    }

    [Theory]
    [InlineData(2L, 1L, PaddingModes.Zeros)]
    [InlineData(1L, 2L, PaddingModes.Zeros)]
    [InlineData(1L, 1L, PaddingModes.Reflect)]
    [InlineData(2L, 1L, PaddingModes.Replicate)]
    public void Conv2d_StrideDilationAndPaddingModes_KeepOutputs(long stride, long dilation, PaddingModes mode)
    {
        manual_seed(54);
        var conv = nn.Conv2d(2, 3, 3, stride: stride, padding: dilation, dilation: dilation, padding_mode: mode, dtype: ScalarType.Float64);
        var bigger = Enlarge.Conv2d(conv, (5, 7));
        Assert.Equal([dilation * 2, dilation * 3], bigger.padding!);
        var d = Verify.Compare(conv, bigger, GrowthModels.Inputs(55, 2, 2, 9, 10), 3);
        if (stride == 1)
        {
            GrowthModels.AssertBitExact(d, output);
        }
        else
        {
            // Strided, libtorch's float64 kernel sums the larger kernel's products in another order: measured 6e-17
            // absolute (1 ulp), not bit-exact.
            GrowthModels.AssertWithin(d, GrowthModels.Float64Exact, output);
        }
    }

    [Fact]
    public void Padding_OddGrowth_IsRefused()
    {
        Assert.Equal([3L, 1], Enlarge.Padding([1, 1], [3, 3], [7, 3]));
        var ex = Assert.Throws<ArgumentException>(() => Enlarge.Padding([1, 1], [3, 3], [4, 3]));
        Assert.Contains("even", ex.Message);
    }
}
