using Graft.Linked;
using Graft.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Tests.Linked;

public class LinkedValidationTests
{
    [Fact]
    public void Conv2d_FunctionReturnsWrongShape_ThrowsNamingBothShapes()
    {
        using var source = nn.Conv2d(4, 8, 3);

        var e = Assert.Throws<ArgumentException>(() => Link.Conv2d(source, weightFunction: w => w[.., ..2]));

        Assert.Contains("(8, 2, 3, 3)", e.Message);
        Assert.Contains("(8, 4, 3, 3)", e.Message);
    }

    [Fact]
    public void Conv2d_DeclaredChannelsDifferFromTransformOutput_ThrowsNamingBothShapes()
    {
        // conv_2 declared 32→64 but the function keeps conv_1's 16→32 shape.
        using var source = nn.Conv2d(16, 32, 3, padding: 1);

        var e = Assert.Throws<ArgumentException>(() => Link.Conv2d(source, weight: ElementWise.Square, bias: LinkedBias.None, inChannels: 32, outChannels: 64));

        Assert.Contains("(32, 16, 3, 3)", e.Message);
        Assert.Contains("(64, 32, 3, 3)", e.Message);
    }

    [Fact]
    public void Conv2d_FunctionChangesDtype_Throws()
    {
        using var source = nn.Conv2d(2, 2, 3);

        var e = Assert.Throws<ArgumentException>(() => Link.Conv2d(source, weightFunction: w => w.to(ScalarType.Float64)));

        Assert.Contains("Float64", e.Message);
        Assert.Contains("Float32", e.Message);
    }

    [Fact]
    public void Conv2d_TransformRejectsSourceShape_ThrowsBeforeRunning()
    {
        using var source = nn.Conv2d(4, 8, 3);
        var wrong = InChannels.RepeatRescale(Layout.Conv(2), 3, 6); // expects 3 inputs, the source has 4

        var e = Assert.Throws<ArgumentException>(() => Link.Conv2d(source, weight: wrong, inChannels: 6));

        Assert.Contains("(8, 4, 3, 3)", e.Message);
        Assert.Contains("in.repeat-rescale", e.Message);
    }

    [Fact]
    public void Conv2d_FunctionThrows_WrapsWithSourceShape()
    {
        using var source = nn.Conv2d(2, 2, 3);

        var e = Assert.Throws<ArgumentException>(() => Link.Conv2d(source, weightFunction: w => w.reshape(7, -1)));

        Assert.Contains("(2, 2, 3, 3)", e.Message);
        Assert.Contains("dry run", e.Message);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Conv2d_BiasAskedFromSourceWithoutBias_Throws(bool shared)
    {
        using var source = nn.Conv2d(2, 2, 3, bias: false);
        var bias = shared ? LinkedBias.Shared : LinkedBias.Derived(function: b => b * 2);

        var e = Assert.Throws<ArgumentException>(() => Link.Conv2d(source, bias: bias));

        Assert.Contains("no bias", e.Message);
    }

    [Fact]
    public void Conv2d_SourceWithoutBiasByDefault_HasNoBias()
    {
        using var source = nn.Conv2d(2, 2, 3, bias: false);

        using var linked = Link.Conv2d(source);

        Assert.False(linked.HasBias);
        Assert.Null(linked.DerivedBias());
    }

    [Fact]
    public void Conv2d_SharedBiasOfWrongSize_ThrowsSuggestingDerived()
    {
        using var source = nn.Conv2d(16, 32, 3);
        var layout = Layout.Conv(2);

        var e = Assert.Throws<ArgumentException>(() => Link.Conv2d(source,
            weight: OutChannels.Apply(layout, ChannelMap.Cyclic(32, 64), ChannelFill.Zeros), outChannels: 64));

        Assert.Contains("(32)", e.Message);
        Assert.Contains("(64)", e.Message);
        Assert.Contains("LinkedBias.Derived", e.Message);
    }

    [Fact]
    public void Conv2d_RefusedLink_LeavesSourceUntouched()
    {
        using var source = nn.Conv2d(2, 2, 3);
        using var before = source.weight.detach().clone();

        Assert.Throws<ArgumentException>(() => Link.Conv2d(source, weightFunction: w => w.t()));

        Assert.Null(source.weight.grad);
        Assert.True(before.allclose(source.weight.detach(), rtol: 0, atol: 0));
    }

    [Fact]
    public void Relink_ToItself_Throws()
    {
        using var source = nn.Conv2d(2, 2, 3);
        using var linked = Link.Conv2d(source, weight: ElementWise.Square);

        var e = Assert.Throws<ArgumentException>(() => linked.Relink(linked));

        Assert.Contains("its own source", e.Message);
        Assert.Same(source, linked.Source);
    }

    [Fact]
    public void Relink_IntoCycle_Throws()
    {
        using var source = nn.Conv2d(2, 2, 3);
        using var a = Link.Conv2d(source, weight: ElementWise.Square);
        using var b = Link.Conv2d(a, weight: ElementWise.Square);

        var e = Assert.Throws<ArgumentException>(() => a.Relink(b));

        Assert.Contains("cycle", e.Message);
        Assert.Same(source, a.Source);
    }

    [Fact]
    public void Relink_OtherSourceOfSameShape_FollowsIt()
    {
        using var first = nn.Conv2d(2, 2, 3);
        using var second = nn.Conv2d(2, 2, 3);
        using var linked = Link.Conv2d(first);

        linked.Relink(second);

        Assert.Same(second, linked.Source);
        Assert.Equal(second.weight.Handle, linked.DerivedWeight().Handle);
    }

    [Fact]
    public void Relink_SourceOfOtherShape_ThrowsAndKeepsTheOldSource()
    {
        using var first = nn.Conv2d(2, 2, 3);
        using var other = nn.Conv2d(2, 4, 3);
        using var linked = Link.Conv2d(first);

        Assert.Throws<ArgumentException>(() => linked.Relink(other));

        Assert.Same(first, linked.Source);
    }

    [Fact]
    public void Like_TemplateIsTheSource_Throws()
    {
        using var conv = nn.Conv2d(2, 2, 3);

        var e = Assert.Throws<ArgumentException>(() => Link.Like(conv, conv, weight: ElementWise.Square));

        Assert.Contains("itself", e.Message);
    }

    [Fact]
    public void Conv2d_SourceOfOtherKind_Throws()
    {
        using var conv1d = nn.Conv1d(2, 2, 3);
        using var linear = nn.Linear(2, 2);

        Assert.Contains("2-d convolution", Assert.Throws<ArgumentException>(() => Link.Conv2d(conv1d)).Message);
        Assert.Contains("Linear", Assert.Throws<ArgumentException>(() => Link.Conv2d(linear)).Message);
    }

    [Fact]
    public void ConvTranspose2d_FromSamePaddingSource_ThrowsAskingForPadding()
    {
        using var source = nn.Conv2d(2, 2, 3, Padding.Same);

        var e = Assert.Throws<ArgumentException>(() => Link.ConvTranspose2d(source));

        Assert.Contains("same", e.Message);
    }

    [Fact]
    public void Conv2d_GroupsNotDividingChannels_Throws()
    {
        using var source = nn.Conv2d(4, 6, 3);

        Assert.Throws<ArgumentException>(() => Link.Conv2d(source, hyperparameters: new ConvHyperparameters { Groups = 4 }));
    }

    [Fact]
    public void Conv2d_HyperparameterOfWrongLength_Throws()
    {
        using var source = nn.Conv2d(2, 2, 3);

        var e = Assert.Throws<ArgumentException>(() => Link.Conv2d(source, hyperparameters: new ConvHyperparameters { Stride = [1, 1, 1] }));

        Assert.Contains("stride", e.Message);
    }

    [Fact]
    public void Linear_FromConvolutionWithoutFeatureCounts_Throws()
    {
        using var source = nn.Conv2d(2, 2, 1);

        Assert.Throws<ArgumentException>(() => Link.Linear(source, weightFunction: w => w.flatten(1)));
    }

    [Fact]
    public void Linear_FromConvolutionWithFeatureCounts_Works()
    {
        // A 1×1 convolution's weight flattened is a Linear weight: the link is not limited to one family.
        manual_seed(40);
        using var source = nn.Conv2d(3, 2, 1);
        using var linked = Link.Linear(source, weightFunction: w => w.flatten(1), inFeatures: 3, outFeatures: 2);
        using var x = randn(4, 3);

        using var y = linked.forward(x);

        Assert.Equal(new long[] { 4, 2 }, y.shape);
        // y = x · Wᵀ + b with W the (2, 3, 1, 1) kernel read as (2, 3) and the convolution's own bias, in float64 here.
        var w = source.weight.detach().to(ScalarType.Float64).data<double>().ToArray();
        var b = source.bias!.detach().to(ScalarType.Float64).data<double>().ToArray();
        var xs = x.to(ScalarType.Float64).data<double>().ToArray();
        var ys = y.detach().to(ScalarType.Float64).data<double>().ToArray();
        for (int r = 0; r < 4; r++)
        {
            for (int o = 0; o < 2; o++)
            {
                double expected = b[o] + xs[r * 3] * w[o * 3] + xs[r * 3 + 1] * w[o * 3 + 1] + xs[r * 3 + 2] * w[o * 3 + 2];
                Assert.True(Math.Abs(ys[r * 2 + o] - expected) <= 1e-6 * Math.Max(1, Math.Abs(expected)), $"y[{r},{o}] = {ys[r * 2 + o]}, expected {expected}");
            }
        }
    }
}
