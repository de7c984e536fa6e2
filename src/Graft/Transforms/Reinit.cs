using Graft.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Transforms;

/// <summary>Transforms that start a tensor afresh instead of deriving it from the source.</summary>
public static class Reinit
{
    /// <summary>
    /// Kaiming-normal (fan_out, ReLU) of the given target shape, the seed text's "reinitialise" option. Deterministic
    /// for a seed; the output does not depend on the input (and carries no gradient to it).
    /// </summary>
    public static WeightTransform KaimingNormal(Shape targetShape, long seed) => new Kaiming(targetShape, seed);

    /// <summary>
    /// PyTorch's (and TorchSharp's) default init of a Linear weight: kaiming_uniform with a = √5, that is
    /// U(−1/√fan_in, 1/√fan_in) with fan_in the product of every axis but the first. What a freshly built classifier
    /// head holds; Kaiming fan-out on a 1000×512 head would draw values 18 times larger. Deterministic for a seed.
    /// </summary>
    public static WeightTransform LinearDefault(Shape targetShape, long seed) => new LinearUniform(targetShape, seed);

    /// <summary>
    /// The identity weight of <paramref name="targetShape"/> for a layer of <paramref name="layout"/>: channel c maps to
    /// channel c with 1 at the kernel centre (odd kernels). Net2DeeperNet's new layer, which computes what was there
    /// before it when it follows a ReLU. Ignores its input (there is no source layer).
    /// </summary>
    public static WeightTransform Identity(Layout layout, Shape targetShape)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(targetShape);
        layout.Check(targetShape, "identity weight");
        if (layout.Kind is not (LayerKind.Conv or LayerKind.Linear))
        {
            throw new ArgumentException($"An identity weight is defined for Conv and Linear layers, not {layout}.", nameof(layout));
        }
        long outs = targetShape[0], ins = targetShape[1];
        bool depthwise = layout.Groups > 1 && ins == 1 && outs == layout.Groups;
        if (layout.Groups > 1 && !depthwise)
        {
            throw new NotSupportedException($"An identity weight for {layout} is only defined for depthwise convolutions.");
        }
        if (!depthwise && outs != ins)
        {
            throw new ArgumentException($"An identity weight needs as many outputs as inputs; got {targetShape}.", nameof(targetShape));
        }
        foreach (var a in layout.KernelAxes)
        {
            if (targetShape[a] % 2 == 0)
            {
                throw new ArgumentException($"An identity kernel needs odd sizes to have a centre; got {targetShape}.", nameof(targetShape));
            }
        }
        return new IdentityWeight(layout, targetShape, depthwise);
    }

    /// <summary>A constant tensor of <paramref name="targetShape"/> (identity BatchNorm statistics, zero biases). Ignores its input.</summary>
    public static WeightTransform Constant(Shape targetShape, double value)
    {
        ArgumentNullException.ThrowIfNull(targetShape);
        return new ConstantWeight(targetShape, value);
    }

    private sealed class IdentityWeight(Layout layout, Shape target, bool depthwise) : WeightTransform
    {
        public override string Op => "reinit.identity";

        public override Introduced Introduces => Introduced.Constants;

        public override string Describe() => $"identity {layout} weight {target}: 1 at the kernel centre from channel c to channel c";

        public override Shape OutputShape(Shape input) => target;

        protected override Tensor ApplyCore(Tensor input)
        {
            // Row-major flat position of (c, c or 0, centre…) for every channel c.
            var dims = target.ToArray();
            var values = new double[target.ElementCount];
            for (long c = 0; c < dims[0]; c++)
            {
                long[] at = [c, depthwise ? 0 : c, .. layout.KernelAxes.Select(a => dims[a] / 2)];
                long flat = 0;
                for (int i = 0; i < dims.Length; i++)
                {
                    flat = flat * dims[i] + at[i];
                }
                values[flat] = 1;
            }
            return tensor(values, dims, dtype: ScalarType.Float64).to(input.dtype, input.device);
        }
    }

    private sealed class ConstantWeight(Shape target, double value) : WeightTransform
    {
        public override string Op => "reinit.constant";

        public override Introduced Introduces => value == 0 ? Introduced.Zeros : Introduced.Constants;

        public override string Describe() => FormattableString.Invariant($"constant {value} of shape {target}");

        public override Shape OutputShape(Shape input) => target;

        protected override Tensor ApplyCore(Tensor input) => full(target.ToArray(), value, dtype: input.dtype, device: input.device);
    }

    private sealed class LinearUniform(Shape target, long seed) : WeightTransform
    {
        private double Bound => 1.0 / Math.Sqrt(Math.Max(1, target.ElementCount / Math.Max(1, target[0])));

        public override string Op => "reinit.linear-default";

        public override Introduced Introduces => Introduced.Random;

        public override string Describe() => FormattableString.Invariant($"reinitialise {target} as PyTorch initialises a Linear layer (uniform ±{Bound:0.####} = 1/√fan_in, seed {seed})");

        public override Shape OutputShape(Shape input) => target;

        protected override Tensor ApplyCore(Tensor input) =>
            SeededDraw(seed, input, gen => (rand(target.ToArray(), dtype: ScalarType.Float64, generator: gen) * 2 - 1) * Bound);
    }

    private sealed class Kaiming(Shape target, long seed) : WeightTransform
    {
        public override string Op => "reinit.kaiming-normal";

        public override Introduced Introduces => Introduced.Random;

        public override string Describe() => FormattableString.Invariant($"reinitialise {target} with Kaiming-normal (fan_out, relu, std {ChannelFill.KaimingStd(target):0.####}, seed {seed})");

        public override Shape OutputShape(Shape input) => target;

        protected override Tensor ApplyCore(Tensor input) =>
            SeededDraw(seed, input, gen => randn(target.ToArray(), dtype: ScalarType.Float64, generator: gen) * ChannelFill.KaimingStd(target));
    }

    /// <summary>
    /// A re-initialisation's values: drawn in float64 from a generator seeded with <paramref name="seed"/> (the same
    /// seed gives the same values whatever the target's dtype), then cast to the input's dtype and device.
    /// </summary>
    private static Tensor SeededDraw(long seed, Tensor input, Func<Generator, Tensor> draw)
    {
        using var gen = new Generator((ulong)seed);
        using var values = draw(gen);
        return values.to(input.dtype, input.device);
    }
}
