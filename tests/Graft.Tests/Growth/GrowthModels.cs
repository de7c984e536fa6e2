using Graft.Growth;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Tests.Growth;

/// <summary>Small networks the growth tests widen, deepen and inflate; float64 where exactness is claimed.</summary>
internal static class GrowthModels
{
    /// <summary>conv → BN → ReLU → conv → BN → ReLU → global pool → Linear, with hidden widths a and b.</summary>
    public static Sequential PlainChain(long a, long b, ScalarType dtype = ScalarType.Float64) => nn.Sequential(
        ("c1", nn.Conv2d(3, a, 3, padding: 1, dtype: dtype)),
        ("bn1", nn.BatchNorm2d(a, dtype: dtype)),
        ("r1", nn.ReLU()),
        ("c2", nn.Conv2d(a, b, 3, padding: 1, dtype: dtype)),
        ("bn2", nn.BatchNorm2d(b, dtype: dtype)),
        ("r2", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flat", nn.Flatten()),
        ("fc", nn.Linear(b, 5, dtype: dtype)));

    /// <summary>conv → BN → ReLU → flatten → Linear on 4×4 inputs: each channel owns 16 consecutive features.</summary>
    public static Sequential FlattenHead(long channels, ScalarType dtype = ScalarType.Float64) => nn.Sequential(
        ("c1", nn.Conv2d(2, channels, 3, padding: 1, dtype: dtype)),
        ("bn1", nn.BatchNorm2d(channels, dtype: dtype)),
        ("r1", nn.ReLU()),
        ("flat", nn.Flatten()),
        ("fc", nn.Linear(channels * 16, 4, dtype: dtype)));

    /// <summary>
    /// A MobileNet block: conv → BN → ReLU → depthwise conv (groups = channels) → BN → ReLU → pointwise conv → BN → ReLU
    /// → global pool → Linear, with hidden widths a (through the depthwise conv) and b.
    /// </summary>
    public static Sequential DepthwiseBlock(long a, long b, ScalarType dtype = ScalarType.Float64) => nn.Sequential(
        ("c1", nn.Conv2d(3, a, 3, padding: 1, dtype: dtype)),
        ("bn1", nn.BatchNorm2d(a, dtype: dtype)),
        ("r1", nn.ReLU()),
        ("dw", nn.Conv2d(a, a, 3, padding: 1, groups: a, dtype: dtype)),
        ("bn2", nn.BatchNorm2d(a, dtype: dtype)),
        ("r2", nn.ReLU()),
        ("pw", nn.Conv2d(a, b, 1, dtype: dtype)),
        ("bn3", nn.BatchNorm2d(b, dtype: dtype)),
        ("r3", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flat", nn.Flatten()),
        ("fc", nn.Linear(b, 5, dtype: dtype)));

    /// <summary>Gives every BatchNorm non-trivial affine parameters and running statistics, so eval mode really normalises.</summary>
    public static void RandomiseNorms(nn.Module module, long seed)
    {
        using var g = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var m in module.modules().OfType<NormBase>())
        {
            var n = m.num_features;
            var dtype = m.weight.dtype;
            m.weight.copy_(rand(new[] { n }, dtype: dtype, generator: g) + 0.5);
            m.bias!.copy_(randn(new[] { n }, dtype: dtype, generator: g) * 0.2);
            m.running_mean!.copy_(randn(new[] { n }, dtype: dtype, generator: g) * 0.2);
            m.running_var!.copy_(rand(new[] { n }, dtype: dtype, generator: g) + 0.5);
        }
    }

    /// <summary>
    /// The bound a float64 growth whose math is exact must meet, relative to the output's largest magnitude: a few
    /// hundred float64 roundings (measured ≤ 5e-16), and five orders below what a float32 round trip anywhere in the
    /// growth leaves (about 1e-7).
    /// </summary>
    public const double Float64Exact = 1e-13;

    /// <summary>
    /// Asserts that <paramref name="d"/> is finite (NaN and infinity fail) and that the largest relative difference is at
    /// most <paramref name="bound"/>; logs both numbers.
    /// </summary>
    public static void AssertWithin(OutputDifference d, double bound, Xunit.Abstractions.ITestOutputHelper? output = null)
    {
        output?.WriteLine($"max |diff| = {d.MaxAbsolute:g3}, max relative = {d.MaxRelative:g3} (bound {bound:g3})");
        Assert.True(d.Inputs > 0, "nothing was compared");
        Assert.True(double.IsFinite(d.MaxAbsolute) && double.IsFinite(d.MaxRelative), $"the difference is not finite: {d}");
        Assert.True(d.MaxRelative <= bound, $"max relative difference {d.MaxRelative:g6} exceeds {bound:g3} (max |diff| {d.MaxAbsolute:g6})");
    }

    /// <summary>Asserts that the outputs are equal bit for bit (and finite).</summary>
    public static void AssertBitExact(OutputDifference d, Xunit.Abstractions.ITestOutputHelper? output = null)
    {
        output?.WriteLine($"max |diff| = {d.MaxAbsolute:g3}, max relative = {d.MaxRelative:g3} (bit-exact asked)");
        Assert.True(d.Inputs > 0, "nothing was compared");
        Assert.True(d.MaxAbsolute == 0, $"outputs differ: max |diff| = {d.MaxAbsolute:g6} (NaN if not finite)");
    }

    public static Func<int, Tensor> Inputs(long seed, params long[] shape)
    {
        var g = new Generator((ulong)seed);
        return _ => randn(shape, dtype: ScalarType.Float64, generator: g);
    }
}

/// <summary>
/// A residual network: stem conv → BN → ReLU, two residual blocks (conv → BN → ReLU → conv → BN, added to the input,
/// then ReLU), global pool, Linear. The stem and the blocks' second convolutions share one width (the residual stream).
/// </summary>
internal sealed class TinyResNet : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d c0, c1, c2, c3, c4;
    private readonly BatchNorm2d bn0, bn1, bn2, bn3, bn4;
    private readonly Linear fc;

    public TinyResNet(long stream, long inner, ScalarType dtype = ScalarType.Float64) : base(nameof(TinyResNet))
    {
        c0 = nn.Conv2d(3, stream, 3, padding: 1, dtype: dtype);
        bn0 = nn.BatchNorm2d(stream, dtype: dtype);
        c1 = nn.Conv2d(stream, inner, 3, padding: 1, dtype: dtype);
        bn1 = nn.BatchNorm2d(inner, dtype: dtype);
        c2 = nn.Conv2d(inner, stream, 3, padding: 1, dtype: dtype);
        bn2 = nn.BatchNorm2d(stream, dtype: dtype);
        c3 = nn.Conv2d(stream, inner, 1, dtype: dtype);
        bn3 = nn.BatchNorm2d(inner, dtype: dtype);
        c4 = nn.Conv2d(inner, stream, 3, padding: 1, dtype: dtype);
        bn4 = nn.BatchNorm2d(stream, dtype: dtype);
        fc = nn.Linear(stream, 5, dtype: dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = nn.functional.relu(bn0.forward(c0.forward(input)));
        var y = bn2.forward(c2.forward(nn.functional.relu(bn1.forward(c1.forward(x)))));
        x = nn.functional.relu(x + y);
        y = bn4.forward(c4.forward(nn.functional.relu(bn3.forward(c3.forward(x)))));
        x = nn.functional.relu(x + y);
        return fc.forward(x.mean([2, 3])).MoveToOuterDisposeScope();
    }
}
