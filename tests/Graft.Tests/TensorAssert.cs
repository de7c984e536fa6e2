using static TorchSharp.torch;

namespace Graft.Tests;

/// <summary>
/// Numeric assertions on TorchSharp tensors with messages that show where they differ. Every helper fails on NaN and
/// infinity in either tensor: a kernel that returns NaN must never pass a comparison (NaN &gt; tol is false, so a
/// check written as "no element exceeds the tolerance" would pass it).
/// </summary>
internal static class TensorAssert
{
    public static void Close(Tensor expected, Tensor actual, double atol = 1e-6, double rtol = 1e-5)
    {
        Assert.Equal(expected.shape, actual.shape);
        AllFinite(expected, "expected");
        AllFinite(actual, "actual");
        using var e = expected.detach().to(ScalarType.Float64);
        using var a = actual.detach().to(ScalarType.Float64);
        using var diff = (e - a).abs();
        using var tol = e.abs() * rtol + atol;
        // Written as "every element within", not "no element beyond", so that a NaN could not slip through either way.
        using var good = diff.le(tol);
        if (!good.all().item<bool>())
        {
            var maxDiff = diff.max().item<double>();
            Assert.Fail($"Tensors differ: max |diff| = {maxDiff:g6} (atol {atol}, rtol {rtol}); {diff.numel() - good.sum().item<long>()} of {diff.numel()} elements out of tolerance.");
        }
    }

    public static void Equal(float[] expected, Tensor actual)
    {
        AllFinite(actual, "actual");
        Assert.Equal(expected, actual.detach().contiguous().to(ScalarType.Float32).data<float>().ToArray());
    }

    /// <summary>Largest absolute difference, for assertions that state a bound. Fails when either tensor holds NaN or infinity.</summary>
    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        AllFinite(a, "first");
        AllFinite(b, "second");
        using var d = (a.detach().to(ScalarType.Float64) - b.detach().to(ScalarType.Float64)).abs().max();
        return d.item<double>();
    }

    /// <summary>Fails, saying how many, when <paramref name="t"/> holds NaN or infinity (integer tensors always pass).</summary>
    public static void AllFinite(Tensor t, string what = "tensor")
    {
        if (!t.is_floating_point() || t.numel() == 0)
        {
            return;
        }
        using var finite = t.detach().isfinite();
        if (!finite.all().item<bool>())
        {
            using var nan = t.detach().isnan();
            Assert.Fail($"The {what} tensor is not finite: {nan.sum().item<long>()} NaN and {t.numel() - finite.sum().item<long>() - nan.sum().item<long>()} infinite of {t.numel()} elements.");
        }
    }
}
