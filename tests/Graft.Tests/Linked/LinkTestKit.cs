using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Tests.Linked;

/// <summary>A model holding a source layer and a layer linked to it, registered under the question's names.</summary>
internal sealed class TwoLayerNet : nn.Module<Tensor, Tensor>
{
    public TwoLayerNet(nn.Module<Tensor, Tensor> first, nn.Module<Tensor, Tensor> second) : base(nameof(TwoLayerNet))
    {
        First = first;
        Second = second;
        register_module("conv_1", first);
        register_module("conv_2", second);
    }

    public nn.Module<Tensor, Tensor> First { get; }

    public nn.Module<Tensor, Tensor> Second { get; }

    public override Tensor forward(Tensor input) => Second.forward(First.forward(input));
}

internal static class LinkTestKit
{
    public static long ParameterCount(nn.Module m) => m.parameters().Sum(p => p.numel());

    /// <summary>Largest absolute difference at most <paramref name="tolerance"/> (the project's TensorAssert, absolute only).</summary>
    public static void AssertClose(Tensor expected, Tensor actual, double tolerance = 1e-5) =>
        TensorAssert.Close(expected, actual, atol: tolerance, rtol: 0);

    /// <summary>
    /// Compares the autograd gradient of <paramref name="loss"/> with respect to <paramref name="parameter"/> with
    /// central finite differences on every element (float64, so h = 1e-6 leaves ~1e-9 error).
    /// </summary>
    public static void AssertGradientMatchesFiniteDifferences(Func<Tensor> loss, Tensor parameter, double h = 1e-6, double tolerance = 1e-6)
    {
        Assert.Equal(ScalarType.Float64, parameter.dtype);
        parameter.grad = null;
        using (var l = loss())
        {
            l.backward();
        }
        var analytic = parameter.grad!.detach().clone().reshape(-1).data<double>().ToArray();
        var numeric = new double[analytic.Length];
        using (no_grad())
        {
            var flat = parameter.view(-1);
            for (int i = 0; i < numeric.Length; i++)
            {
                var element = flat[i];
                var original = element.item<double>();
                element.fill_(original + h);
                var plus = loss().item<double>();
                element.fill_(original - h);
                var minus = loss().item<double>();
                element.fill_(original);
                numeric[i] = (plus - minus) / (2 * h);
            }
        }
        var scale = Math.Max(1, numeric.Max(Math.Abs));
        for (int i = 0; i < numeric.Length; i++)
        {
            Assert.True(Math.Abs(numeric[i] - analytic[i]) <= tolerance * scale,
                $"element {i}: autograd {analytic[i]}, finite differences {numeric[i]}");
        }
        Assert.Contains(analytic, g => g != 0);
    }
}
