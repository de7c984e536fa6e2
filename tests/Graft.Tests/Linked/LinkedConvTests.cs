using Graft.Demo;
using Graft.Linked;
using Graft.Transforms;
using TorchSharp;
using TorchSharp.Modules;
using static Graft.Tests.Linked.LinkTestKit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Graft.Tests.Linked;

public class LinkedConvTests
{
    [Fact]
    public void Conv2d_SquareOfSource_MatchesFunctionalConvWithSquaredWeightAndSharedBias()
    {
        // The forum answer's LinkedConv: same hyperparameters, weight squared, bias shared.
        manual_seed(1);
        using var source = nn.Conv2d(3, 3, 3, padding: 1);
        using var linked = Link.Conv2d(source, weight: ElementWise.Square);
        using var x = randn(2, 3, 6, 6);

        using var expected = F.conv2d(x, source.weight.square(), source.bias, padding: [1, 1]);
        using var actual = linked.forward(x);

        AssertClose(expected, actual);
        Assert.Equal(LinkedBiasKind.Shared, linked.Bias.Kind);
        Assert.Empty(linked.parameters());
    }

    [Fact]
    public void Conv2d_QuestionNetwork_HasOnlyConv1ParametersAndMapsChannels16To64()
    {
        // The question's net with conv_2 = 32→64 derived from conv_1 = 16→32 (the 300×300 run is in LinkedDemoTests).
        manual_seed(2);
        using var net = new LinkedDemo.SquaredConvNet();
        using var x = randn(1, 16, 10, 10);

        using var y = net.forward(x);

        Assert.Equal(new long[] { 1, 64, 10, 10 }, y.shape);
        Assert.Equal(16 * 32 * 9 + 32, ParameterCount(net));
        Assert.Equal(4_640, ParameterCount(net));
        Assert.Equal(new[] { "conv_1.bias", "conv_1.weight" }, net.named_parameters().Select(p => p.name).Order(StringComparer.Ordinal));
        Assert.Equal(new[] { "conv_1.bias", "conv_1.weight" }, net.state_dict().Keys.Order(StringComparer.Ordinal));
        Assert.Equal(new long[] { 64, 32, 3, 3 }, net.conv_2.WeightShape.ToArray());
        // The values too: conv_2 runs on conv_1's output with the derived weight and bias (whose own values the next
        // test checks against the hand-computed square), nothing else.
        using var h = nn.functional.conv2d(x, net.conv_1.weight, net.conv_1.bias, padding: [1, 1]);
        using var expected = nn.functional.conv2d(h, net.conv_2.DerivedWeight(), net.conv_2.DerivedBias(), padding: [1, 1]);
        AssertClose(expected, y);
    }

    [Fact]
    public void Conv2d_QuestionNetwork_DerivedWeightIsRescaledCopiedSquare()
    {
        manual_seed(3);
        using var net = new LinkedDemo.SquaredConvNet();
        using var w = net.conv_1.weight.detach();

        using var derived = net.conv_2.DerivedWeight().detach();

        // Output j copies conv_1's output j mod 32; input i repeats conv_1's input i mod 16, scaled by 16/32; then squared.
        foreach (var (o, i) in new[] { (0L, 0L), (40L, 20L), (63L, 31L) })
        {
            var expected = (w[o % 32, i % 16] * 0.5).square();
            AssertClose(expected, derived[o, i], 1e-7);
        }
        using var bias = net.conv_2.DerivedBias()!.detach();
        AssertClose(net.conv_1.bias![TensorIndex.Slice(0, 32)].detach(), bias[TensorIndex.Slice(32, 64)], 0);
    }

    [Fact]
    public void ConvTranspose2d_FromConv2d_IsTiedDecoderUsingTheEncoderWeight()
    {
        manual_seed(4);
        using var encoder = nn.Conv2d(3, 5, 3, stride: 2, padding: 1);
        using var decoder = Link.ConvTranspose2d(encoder, bias: LinkedBias.None, hyperparameters: new ConvHyperparameters { OutputPadding = [1, 1] });
        using var x = randn(2, 3, 8, 8);

        using var code = encoder.forward(x);
        using var y = decoder.forward(code);

        Assert.Equal(new long[] { 2, 5, 4, 4 }, code.shape);
        Assert.Equal(new long[] { 2, 3, 8, 8 }, y.shape);
        Assert.Equal(5, decoder.InChannels);
        Assert.Equal(3, decoder.OutChannels);
        Assert.Equal(new long[] { 2, 2 }, decoder.Stride);
        using var expected = F.conv_transpose2d(code, encoder.weight, null, [2, 2], [1, 1], [1, 1], [1, 1], 1);
        AssertClose(expected, y);
        // The weight is the encoder's tensor itself, not a copy.
        Assert.Equal(encoder.weight.Handle, decoder.DerivedWeight().Handle);
    }

    public static TheoryData<bool, int> Kinds => new()
    {
        { false, 1 }, { false, 2 }, { false, 3 }, { true, 1 }, { true, 2 }, { true, 3 },
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void ConvKinds_LinkWithFunction_MatchesStockModuleHoldingTheDerivedTensors(bool transposed, int dims)
    {
        manual_seed(5);
        using var source = Stock(transposed, dims);
        using var reference = Stock(transposed, dims);
        using (no_grad())
        {
            reference.weight.copy_(source.weight * 2 - 0.1);
            reference.bias!.copy_(source.bias!.exp());
        }
        Func<Tensor, Tensor> f = w => w * 2 - 0.1;
        var bias = LinkedBias.Derived(function: b => b.exp());
        using LinkedConv linked = (transposed, dims) switch
        {
            (false, 1) => Link.Conv1d(source, weightFunction: f, bias: bias),
            (false, 2) => Link.Conv2d(source, weightFunction: f, bias: bias),
            (false, _) => Link.Conv3d(source, weightFunction: f, bias: bias),
            (true, 1) => Link.ConvTranspose1d(source, weightFunction: f, bias: bias),
            (true, 2) => Link.ConvTranspose2d(source, weightFunction: f, bias: bias),
            (true, _) => Link.ConvTranspose3d(source, weightFunction: f, bias: bias),
        };
        using var x = randn([2, 4, .. Enumerable.Repeat(7L, dims)], dtype: ScalarType.Float64);

        AssertClose(reference.forward(x), linked.forward(x));
        Assert.Equal(transposed, linked.Transposed);
        Assert.Equal(dims, linked.SpatialDims);
    }

    [Fact]
    public void Conv2d_DefaultHyperparameters_FollowSourceStrideDilationGroupsAndPaddingMode()
    {
        manual_seed(6);
        using var source = nn.Conv2d(4, 6, 3, stride: 2, padding: 2, dilation: 2, padding_mode: PaddingModes.Reflect, groups: 2);
        using var linked = Link.Conv2d(source);
        using var x = randn(1, 4, 9, 9);

        AssertClose(source.forward(x), linked.forward(x), 0);
        Assert.Equal(PaddingModes.Reflect, linked.PaddingMode);
        Assert.Equal(2, linked.Groups);
        Assert.Equal(new long[] { 2, 2 }, linked.Dilation);
    }

    [Fact]
    public void Conv2d_PaddingSameSource_FollowsSource()
    {
        manual_seed(7);
        using var source = nn.Conv2d(2, 2, 3, Padding.Same, padding_mode: PaddingModes.Circular);
        using var linked = Link.Conv2d(source);
        using var x = randn(1, 2, 5, 6);

        AssertClose(source.forward(x), linked.forward(x), 0);
        Assert.Equal(Padding.Same, linked.PaddingType);
    }

    [Fact]
    public void Conv2d_ExplicitHyperparameters_OverrideSource()
    {
        manual_seed(8);
        using var source = nn.Conv2d(2, 4, 3, padding: 1);
        using var linked = Link.Conv2d(source, hyperparameters: new ConvHyperparameters { Stride = [2, 1], Padding = [0, 2], Dilation = [1, 2] });
        using var x = randn(1, 2, 9, 9);

        using var expected = F.conv2d(x, source.weight, source.bias, [2, 1], [0, 2], [1, 2]);
        AssertClose(expected, linked.forward(x), 0);
    }

    [Fact]
    public void Conv2d_KernelFitTransform_UsesLargerKernelWithExplicitSize()
    {
        manual_seed(9);
        using var source = nn.Conv2d(2, 3, 3, padding: 1);
        var layout = Layout.Conv(2);
        using var linked = Link.Conv2d(source, weight: Kernel.CenterFit(layout, [5, 5]), kernelSize: [5, 5],
            hyperparameters: new ConvHyperparameters { Padding = [2, 2] });
        using var x = randn(1, 2, 6, 6);

        // A centred zero-padded kernel with the padding grown by the same amount computes the same output.
        AssertClose(source.forward(x), linked.forward(x));
        Assert.Equal(new long[] { 3, 2, 5, 5 }, linked.WeightShape.ToArray());
    }

    [Fact]
    public void Linear_TiedTranspose_UsesSourceWeightTransposed()
    {
        manual_seed(10);
        using var encoder = nn.Linear(6, 4);
        using var decoder = Link.Linear(encoder, weightFunction: w => w.t(), bias: LinkedBias.None, inFeatures: 4, outFeatures: 6);
        using var x = randn(3, 4);

        using var expected = F.linear(x, encoder.weight.t());
        AssertClose(expected, decoder.forward(x), 0);
        Assert.Equal(4, decoder.InFeatures);
        Assert.Equal(6, decoder.OutFeatures);
    }

    [Fact]
    public void Linear_SquareWithSharedBias_MatchesFunctional()
    {
        manual_seed(11);
        using var source = nn.Linear(5, 3);
        using var linked = Link.Linear(source, weight: ElementWise.Square);
        using var x = randn(2, 5);

        AssertClose(F.linear(x, source.weight.square(), source.bias), linked.forward(x));
    }

    [Fact]
    public void Conv2d_ChainedLink_ReadsThroughTheLinkedSource()
    {
        manual_seed(12);
        using var source = nn.Conv2d(2, 2, 1);
        using var squared = Link.Conv2d(source, weight: ElementWise.Square);
        using var fourth = Link.Conv2d(squared, weight: ElementWise.Square, bias: LinkedBias.None);
        using var x = randn(1, 2, 3, 3);

        AssertClose(F.conv2d(x, source.weight.pow(4)), fourth.forward(x));
        Assert.Equal(new nn.Module[] { squared, source }, fourth.SourceChain);
    }

    [Fact]
    public void Like_StockTemplate_TakesItsShapeAndHyperparameters()
    {
        // The question's network as written: conv_2 declared as a stock Conv2d(32→64), then replaced by a link.
        manual_seed(13);
        using var conv1 = nn.Conv2d(16, 32, 3, padding: 1);
        using var declared = nn.Conv2d(32, 64, 3, padding: 1);
        var layout = Layout.Conv(2);
        using var conv2 = Link.Like(declared, conv1,
            weight: InChannels.RepeatRescale(layout, 16, 32).Then(OutChannels.Apply(layout, ChannelMap.Cyclic(32, 64), ChannelFill.Zeros)),
            weightFunction: w => w.square(),
            bias: LinkedBias.Derived(OutChannels.Apply(Layout.Vector, ChannelMap.Cyclic(32, 64), ChannelFill.Zeros)));
        using var x = randn(1, 16, 5, 5);

        using var y = conv2.forward(conv1.forward(x));

        Assert.Equal(new long[] { 1, 64, 5, 5 }, y.shape);
        Assert.Equal(new long[] { 1, 1 }, conv2.Padding);
    }

    private static Convolution Stock(bool transposed, int dims) => (transposed, dims) switch
    {
        (false, 1) => nn.Conv1d(4, 6, 3, stride: 2, padding: 1, groups: 2, dtype: ScalarType.Float64),
        (false, 2) => nn.Conv2d(4, 6, 3, stride: 2, padding: 1, dilation: 2, groups: 2, dtype: ScalarType.Float64),
        (false, _) => nn.Conv3d(4, 6, 3, stride: 1, padding: 1, padding_mode: PaddingModes.Replicate, dtype: ScalarType.Float64),
        (true, 1) => nn.ConvTranspose1d(4, 6, 3, stride: 2, padding: 1, output_padding: 1, groups: 2, dtype: ScalarType.Float64),
        (true, 2) => nn.ConvTranspose2d(4, 6, 3, stride: 2, padding: 1, output_padding: 1, dtype: ScalarType.Float64),
        (true, _) => nn.ConvTranspose3d(4, 6, 3, stride: 2, padding: 0, dilation: 2, dtype: ScalarType.Float64),
    };
}
