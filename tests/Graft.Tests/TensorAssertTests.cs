using Xunit.Sdk;
using static TorchSharp.torch;

namespace Graft.Tests;

/// <summary>The numeric helpers must fail on NaN and infinity: a test that passes on NaN cannot fail.</summary>
public sealed class TensorAssertTests
{
    public static TheoryData<float> NonFinite => new() { float.NaN, float.PositiveInfinity, float.NegativeInfinity };

    [Theory]
    [MemberData(nameof(NonFinite))]
    public void Close_ActualNotFinite_Fails(float bad)
    {
        using var expected = tensor(new float[] { 1, 2, 3 });
        using var actual = tensor(new float[] { 1, bad, 3 });
        Assert.Throws<FailException>(() => TensorAssert.Close(expected, actual, atol: 1e9, rtol: 1e9));
    }

    [Theory]
    [MemberData(nameof(NonFinite))]
    public void Close_ExpectedNotFinite_Fails(float bad)
    {
        using var expected = tensor(new float[] { bad, 2, 3 });
        using var actual = tensor(new float[] { bad, 2, 3 });
        Assert.Throws<FailException>(() => TensorAssert.Close(expected, actual));
    }

    [Fact]
    public void Close_WithinTolerance_Passes_AndBeyond_Fails()
    {
        using var expected = tensor(new double[] { 1, 2, 3 });
        TensorAssert.Close(expected, tensor(new double[] { 1, 2 + 1e-7, 3 }));
        Assert.Throws<FailException>(() => TensorAssert.Close(expected, tensor(new double[] { 1, 2.1, 3 })));
    }

    [Theory]
    [MemberData(nameof(NonFinite))]
    public void MaxAbsDiff_NotFinite_Fails(float bad)
    {
        using var a = tensor(new float[] { 0, bad });
        using var b = tensor(new float[] { 0, 0 });
        Assert.Throws<FailException>(() => TensorAssert.MaxAbsDiff(a, b));
        Assert.Throws<FailException>(() => TensorAssert.MaxAbsDiff(b, a));
    }

    [Fact]
    public void Equal_ActualNaN_Fails()
    {
        Assert.Throws<FailException>(() => TensorAssert.Equal([1, float.NaN], tensor(new float[] { 1, float.NaN })));
    }

    [Fact]
    public void LinkTestKitAssertClose_NaN_Fails()
    {
        Assert.Throws<FailException>(() => Linked.LinkTestKit.AssertClose(zeros(3), full(3, float.NaN)));
    }
}
