using Graft.Linked;
using Graft.Transforms;
using TorchSharp;
using static Graft.Tests.Linked.LinkTestKit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Graft.Tests.Linked;

public class LinkedGradientTests
{
    [Fact]
    public void Conv2d_SquareFloat64_GradientMatchesFiniteDifferences()
    {
        // conv_2(conv_1(x)) with conv_2 = square of conv_1 and the bias shared: gradients reach conv_1 by both paths.
        manual_seed(20);
        using var conv1 = nn.Conv2d(2, 2, 3, padding: 1, dtype: ScalarType.Float64);
        using var conv2 = Link.Conv2d(conv1, weight: ElementWise.Square);
        using var net = new TwoLayerNet(conv1, conv2);
        using var x = randn(1, 2, 4, 4, dtype: ScalarType.Float64);
        using var r = randn(1, 2, 4, 4, dtype: ScalarType.Float64);
        Tensor Loss() => (net.forward(x) * r).sum();

        AssertGradientMatchesFiniteDifferences(Loss, conv1.weight);
        AssertGradientMatchesFiniteDifferences(Loss, conv1.bias!);
    }

    [Fact]
    public void Conv2d_ShapeChangingTransformFloat64_GradientMatchesFiniteDifferences()
    {
        // conv_1: 2→3; conv_2: 3→5 derived by repeating conv_1's 2 inputs to 3 (rescaled), copying its 3 outputs to 5,
        // then squaring; the bias is copied to 5 and passed through tanh.
        manual_seed(21);
        var layout = Layout.Conv(2);
        using var conv1 = nn.Conv2d(2, 3, 3, padding: 1, dtype: ScalarType.Float64);
        using var conv2 = Link.Conv2d(conv1,
            weight: InChannels.RepeatRescale(layout, 2, 3).Then(OutChannels.Apply(layout, ChannelMap.Cyclic(3, 5), ChannelFill.Zeros)),
            weightFunction: w => w.square(),
            bias: LinkedBias.Derived(OutChannels.Apply(Layout.Vector, ChannelMap.Cyclic(3, 5), ChannelFill.Zeros), b => b.tanh()),
            inChannels: 3, outChannels: 5);
        using var net = new TwoLayerNet(conv1, conv2);
        using var x = randn(1, 2, 4, 4, dtype: ScalarType.Float64);
        using var r = randn(1, 5, 4, 4, dtype: ScalarType.Float64);
        Tensor Loss() => (net.forward(x) * r).sum();

        AssertGradientMatchesFiniteDifferences(Loss, conv1.weight);
        AssertGradientMatchesFiniteDifferences(Loss, conv1.bias!);
    }

    [Fact]
    public void ConvTranspose2d_TiedFloat64_GradientMatchesFiniteDifferences()
    {
        manual_seed(22);
        using var encoder = nn.Conv2d(2, 3, 3, stride: 2, padding: 1, dtype: ScalarType.Float64);
        using var decoder = Link.ConvTranspose2d(encoder, bias: LinkedBias.None);
        using var net = new TwoLayerNet(encoder, decoder);
        using var x = randn(1, 2, 5, 5, dtype: ScalarType.Float64);
        Tensor Loss() => (net.forward(x) - x).square().sum();

        AssertGradientMatchesFiniteDifferences(Loss, encoder.weight);
    }

    [Fact]
    public void OptimizerStep_OnSourceParameters_ChangesDerivedOutput()
    {
        manual_seed(23);
        using var conv1 = nn.Conv2d(2, 2, 3, padding: 1);
        using var conv2 = Link.Conv2d(conv1, weight: ElementWise.Square);
        using var net = new TwoLayerNet(conv1, conv2);
        using var x = randn(1, 2, 5, 5);
        using var before = conv2.forward(x).detach();
        using var optimizer = optim.SGD(net.parameters(), 0.1);

        optimizer.zero_grad();
        net.forward(x).square().mean().backward();
        optimizer.step();

        using var after = conv2.forward(x).detach();
        Assert.True((after - before).abs().max().item<float>() > 1e-4, "the derived layer did not follow the step");
        AssertClose(F.conv2d(x, conv1.weight.square(), conv1.bias, padding: [1, 1]).detach(), after);
        Assert.Equal(2, net.parameters().Count());
    }
}
