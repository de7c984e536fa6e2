using static TorchSharp.torch;

namespace Graft.Tests;

/// <summary>Numeric assertions on TorchSharp tensors with messages that show where they differ.</summary>
internal static class TensorAssert
{
    public static void Close(Tensor expected, Tensor actual, double atol = 1e-6, double rtol = 1e-5)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var e = expected.detach().to(ScalarType.Float64);
        using var a = actual.detach().to(ScalarType.Float64);
        using var diff = (e - a).abs();
        using var tol = e.abs() * rtol + atol;
        using var bad = diff.gt(tol);
        if (bad.any().item<bool>())
        {
            var maxDiff = diff.max().item<double>();
            Assert.Fail($"Tensors differ: max |diff| = {maxDiff:g6} (atol {atol}, rtol {rtol}); {bad.sum().item<long>()} of {diff.numel()} elements out of tolerance.");
        }
    }

    public static void Equal(float[] expected, Tensor actual) =>
        Assert.Equal(expected, actual.detach().contiguous().to(ScalarType.Float32).data<float>().ToArray());

    /// <summary>Largest absolute difference, for assertions that state a bound.</summary>
    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var d = (a.detach().to(ScalarType.Float64) - b.detach().to(ScalarType.Float64)).abs().max();
        return d.item<double>();
    }
}
