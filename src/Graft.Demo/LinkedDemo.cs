using System.Globalization;
using Graft.Linked;
using Graft.Transforms;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Demo;

/// <summary>What <see cref="LinkedDemo.Run"/> measured, for the CLI to render and tests to check.</summary>
/// <param name="ParameterCount">Elements in the model's <c>parameters()</c>: conv_1's alone.</param>
/// <param name="StateDictKeys">The model's state-dict keys: conv_1's alone.</param>
/// <param name="OutputShape">Shape of the model's output.</param>
/// <param name="WeightGradNorm">L2 norm of the gradient that reached conv_1's weight.</param>
/// <param name="BiasGradNorm">L2 norm of the gradient that reached conv_1's bias.</param>
public sealed record LinkedDemoResult(long ParameterCount, IReadOnlyList<string> StateDictKeys, IReadOnlyList<long> OutputShape, double WeightGradNorm, double BiasGradNorm);

/// <summary>
/// The network of the question this feature answers, built with Graft: conv_1 = Conv2d(16→32, k3, pad 1) and
/// conv_2 derived from it with 32 inputs and 64 outputs (inputs repeated and rescaled, outputs copied, then squared;
/// the bias copied), so the model has conv_1's 4,640 parameters only.
/// </summary>
public static class LinkedDemo
{
    /// <summary>
    /// Builds the network, runs a (1, 16, <paramref name="size"/>, <paramref name="size"/>) input forward and backward,
    /// and writes the parameter count, output shape and the gradient that reached conv_1 to <paramref name="output"/>.
    /// </summary>
    public static LinkedDemoResult Run(TextWriter output, int size = 300, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        using var scope = NewDisposeScope();
        manual_seed(seed);
        using var net = new SquaredConvNet();
        var x = randn(1, 16, size, size);
        var y = net.forward(x);
        y.sum().backward();

        var count = net.parameters().Sum(p => p.numel());
        var keys = net.state_dict().Keys.Order(StringComparer.Ordinal).ToArray();
        var gw = net.conv_1.weight.grad!.norm().item<float>();
        var gb = net.conv_1.bias!.grad!.norm().item<float>();
        var result = new LinkedDemoResult(count, keys, y.shape, gw, gb);

        var inv = CultureInfo.InvariantCulture;
        output.WriteLine("Linked layers: conv_2's weight is a live function of conv_1's (the question's network).");
        output.WriteLine($"  conv_1: Conv2d(16→32, k3, pad 1)");
        output.WriteLine($"  conv_2: {net.conv_2}");
        output.WriteLine(string.Format(inv, "  parameters: {0:N0} (= 16·32·9 + 32, conv_1's only); state_dict: {1}", count, string.Join(", ", keys)));
        output.WriteLine($"  input {new Graft.Checkpoints.Shape(x.shape)} → output {new Graft.Checkpoints.Shape(y.shape)}");
        output.WriteLine(string.Format(inv, "  gradient reaching conv_1: |∂L/∂weight| = {0:G6}, |∂L/∂bias| = {1:G6} (L = sum of outputs)", gw, gb));
        return result;
    }

    /// <summary>The question's Net, with conv_2 linked to conv_1.</summary>
    internal sealed class SquaredConvNet : nn.Module<Tensor, Tensor>
    {
#pragma warning disable IDE1006 // The question's names become the state-dict keys (conv_1.weight, conv_1.bias).
        public readonly Conv2d conv_1;
        public readonly LinkedConv conv_2;
#pragma warning restore IDE1006

        public SquaredConvNet() : base(nameof(SquaredConvNet))
        {
            conv_1 = nn.Conv2d(16, 32, 3, padding: 1);
            var layout = Layout.Conv(2);
            conv_2 = Link.Conv2d(
                conv_1,
                weight: InChannels.RepeatRescale(layout, 16, 32)
                    .Then(OutChannels.Apply(layout, ChannelMap.Cyclic(32, 64), ChannelFill.Zeros))
                    .Then(ElementWise.Square),
                bias: LinkedBias.Derived(OutChannels.Apply(Layout.Vector, ChannelMap.Cyclic(32, 64), ChannelFill.Zeros)),
                inChannels: 32,
                outChannels: 64);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input) => conv_2.forward(conv_1.forward(input));
    }
}
