using CsCheck;
using Graft.Checkpoints;
using Graft.Transforms;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Graft.Tests.Transforms;

public class WideningTransformTests
{
    [Fact]
    public void Net2WiderMap_KeepsSourcePrefixAndIsDeterministic()
    {
        var a = ChannelMap.Net2Wider(3, 8, seed: 5);
        var b = ChannelMap.Net2Wider(3, 8, seed: 5);
        Assert.Equal(a, b);
        Assert.Equal([0L, 1, 2], a.Indices.Take(3));
        Assert.All(a.Indices, i => Assert.InRange(i, 0, 2));
        Assert.Equal("out.net2wider", OutChannels.Apply(Layout.Vector, a, ChannelFill.Zeros).Op);
        Assert.Throws<ArgumentException>(() => ChannelMap.Net2Wider(4, 3, 0));
    }

    [Fact]
    public void ReplicaCounts_CountSharersOfEachSource()
    {
        var m = ChannelMap.FromIndices(3, [0, 1, 2, 0, 0, 2, -1], allowRepeats: true);
        Assert.Equal([3L, 1, 2, 3, 3, 2, 1], m.ReplicaCounts());
        // Across a flatten each feature of a channel's block shares its channel's count.
        Assert.Equal([2L, 2, 1, 1, 2, 2], ChannelMap.FromIndices(2, [0, 1, 0], allowRepeats: true).ExpandBlocks(2).ReplicaCounts());
    }

    [Fact]
    public void InNet2Wider_HandComputed_SelectsAndDivides()
    {
        var map = ChannelMap.FromIndices(2, [0, 1, 1, 1], allowRepeats: true);
        using var w = tensor(new float[] { 6, 9 }).reshape(1, 2);
        using var y = InChannels.Net2Wider(Layout.Linear, map).Apply(w);
        TensorAssert.Equal([6, 3, 3, 3], y);
    }

    [Fact]
    public void InNet2Wider_ReplicatedInputs_KeepConvOutputs()
    {
        // Property: feeding the consumer the producer's replicated channels gives the old response.
        Gen.Select(Gen.Int[1, 4], Gen.Int[0, 5], Gen.Int[0, 1000])
            .Sample((n, extra, seed) =>
            {
                using var scope = NewDisposeScope();
                using var g = new Generator((ulong)seed);
                var map = ChannelMap.Net2Wider(n, n + extra, seed);
                var w = randn(new long[] { 3, n, 3, 3 }, dtype: ScalarType.Float64, generator: g);
                var x = randn(new long[] { 1, n, 5, 5 }, dtype: ScalarType.Float64, generator: g);
                using var idx = tensor(map.ToArray());
                var w2 = InChannels.Net2Wider(Layout.Conv(2), map).Apply(w);
                TensorAssert.Close(F.conv2d(x, w), F.conv2d(x.index_select(1, idx), w2), 1e-12, 1e-12);
            }, iter: 25);
    }

    [Fact]
    public void InNet2Wider_GradientReachesSourceOncePerInput()
    {
        using var w = ones(new long[] { 1, 2 }, requires_grad: true);
        var map = ChannelMap.FromIndices(2, [0, 1, 0], allowRepeats: true);
        using var y = InChannels.Net2Wider(Layout.Linear, map).Apply(w);
        y.sum().backward();
        // Input 0 appears twice at 1/2, input 1 once at 1.
        TensorAssert.Equal([1, 1], w.grad!);
    }

    [Fact]
    public void InNet2Wider_GroupedConv_IsNotSupported()
    {
        Assert.Throws<NotSupportedException>(() => InChannels.Net2Wider(Layout.Conv(2, groups: 2), ChannelMap.Cyclic(2, 4)));
    }

    [Fact]
    public void ChannelNoise_TouchesOnlyItsPositionsAndIsDeterministic()
    {
        using var w = randn(6, 3, 3, 3);
        var t = new ChannelNoise(0, [4, 5], 0.1, seed: 2);
        using var a = t.Apply(w);
        using var b = t.Apply(w);
        TensorAssert.Close(a, b, 0, 0);
        TensorAssert.Close(w.narrow(0, 0, 4), a.narrow(0, 0, 4), 0, 0);
        Assert.True(TensorAssert.MaxAbsDiff(w.narrow(0, 4, 2), a.narrow(0, 4, 2)) > 0);
        Assert.Equal(Introduced.Random, t.Introduces);
        Assert.Throws<ArgumentException>(() => t.OutputShape(new Shape(4, 3, 3, 3)));
    }
}

public class InflateTransformTests
{
    [Fact]
    public void Inflate_Repeat_SumsBackToTheKernel()
    {
        using var w = randn(4, 3, 3, 3, dtype: ScalarType.Float64);
        var t = Kernel.Inflate(Layout.Conv(2), 5);
        Assert.Equal(new Shape(4, 3, 5, 3, 3), t.OutputShape(new Shape(4, 3, 3, 3)));
        using var y = t.Apply(w);
        TensorAssert.Close(w, y.sum(2), 1e-15, 1e-12);
        TensorAssert.Close(y.select(2, 0), y.select(2, 4), 0, 0);
    }

    [Fact]
    public void Inflate_CenterSlice_ZerosAroundTheKernel()
    {
        using var w = randn(2, 2, 3, 3);
        var t = Kernel.Inflate(Layout.Conv(2), 4, InflateMode.CenterSlice);
        using var y = t.Apply(w);
        Assert.Equal([2L, 2, 4, 3, 3], y.shape);
        TensorAssert.Close(w, y.select(2, 1), 0, 0);     // centre of 4 is index ⌊3/2⌋ = 1, as CenterFit places it
        Assert.Equal(0f, y.select(2, 0).abs().sum().item<float>());
        Assert.Equal(Introduced.Zeros, t.Introduces);
    }

    [Fact]
    public void Inflate_Conv1dIntoConv2d_AddsTheFirstKernelAxis()
    {
        Assert.Equal(new Shape(2, 3, 3, 5), Kernel.Inflate(Layout.Conv(1), 3).OutputShape(new Shape(2, 3, 5)));
        Assert.Throws<ArgumentException>(() => Kernel.Inflate(Layout.Conv(3), 3));
        Assert.Throws<ArgumentException>(() => Kernel.Inflate(Layout.Linear, 3));
    }
}

public class IdentityWeightTests
{
    [Fact]
    public void Identity_Conv_IsOneAtTheCentreOfTheDiagonal()
    {
        using var y = Reinit.Identity(Layout.Conv(2), new Shape(3, 3, 3, 3)).Apply(zeros(1));
        using var x = randn(1, 3, 5, 5);
        TensorAssert.Close(x, F.conv2d(x, y, padding: [1, 1]), 0, 0);
        Assert.Equal(3f, y.sum().item<float>());
    }

    [Fact]
    public void Identity_DepthwiseAndLinear()
    {
        using var dw = Reinit.Identity(Layout.Conv(2, groups: 4), new Shape(4, 1, 3, 3)).Apply(zeros(1));
        using var x = randn(1, 4, 5, 5);
        TensorAssert.Close(x, F.conv2d(x, dw, padding: [1, 1], groups: 4), 0, 0);
        using var lin = Reinit.Identity(Layout.Linear, new Shape(3, 3)).Apply(zeros(1));
        TensorAssert.Close(eye(3), lin, 0, 0);
    }

    [Fact]
    public void Identity_EvenKernelOrNonSquare_IsRefused()
    {
        Assert.Throws<ArgumentException>(() => Reinit.Identity(Layout.Conv(2), new Shape(3, 3, 2, 2)));
        Assert.Throws<ArgumentException>(() => Reinit.Identity(Layout.Linear, new Shape(3, 4)));
    }
}
