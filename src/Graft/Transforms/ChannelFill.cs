using Graft.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Transforms;

/// <summary>Where the values of new channels (target channels with no source) come from.</summary>
public abstract class ChannelFill
{
    private protected ChannelFill()
    {
    }

    /// <summary>Short name for reports.</summary>
    public abstract string Name { get; }

    /// <summary>What this fill introduces.</summary>
    public abstract Introduced Introduces { get; }

    /// <summary>
    /// Makes the values for target positions <paramref name="newPositions"/> along <paramref name="axis"/> of a
    /// tensor whose full (target) shape is <paramref name="fullShape"/>.
    /// </summary>
    internal abstract Tensor Make(Shape fullShape, int axis, long[] newPositions, ScalarType dtype, Device device);

    /// <summary>New channels are zero.</summary>
    public static ChannelFill Zeros { get; } = new ConstantFill(0, "zeros", Introduced.Zeros);

    /// <summary>New channels hold a constant (for example 1 for a BatchNorm running variance).</summary>
    public static ChannelFill Constant(double value) => value == 0 ? Zeros : new ConstantFill(value, FormattableString.Invariant($"constant({value})"), Introduced.Constants);

    /// <summary>
    /// New channels are drawn from a normal distribution with std √(2 / fan_out), the Kaiming-normal rule for ReLU
    /// in fan_out mode (fan_out = size(0) × receptive field, as PyTorch computes it). Deterministic for a seed.
    /// </summary>
    public static ChannelFill KaimingNormal(long seed) => new KaimingFill(seed);

    /// <summary>The <see cref="Name"/> of a fill from the template's init (also for one planned before the template is read).</summary>
    internal const string TemplateName = "template";

    /// <summary>New channels keep the values of <paramref name="template"/> (the target's own init), a tensor of the full target shape.</summary>
    public static ChannelFill FromTemplate(Tensor template) => new TemplateFill(template);

    /// <summary>Standard deviation of Kaiming-normal (fan_out, ReLU) for a weight of <paramref name="shape"/>.</summary>
    public static double KaimingStd(Shape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Rank < 2)
        {
            throw new ArgumentException($"Kaiming initialisation needs a weight of rank ≥ 2; got {shape}.");
        }
        long receptive = 1;
        for (int i = 2; i < shape.Rank; i++)
        {
            receptive *= shape[i];
        }
        long fanOut = shape[0] * receptive;
        return fanOut == 0 ? 0 : Math.Sqrt(2.0 / fanOut);
    }

    private static long[] SliceShape(Shape full, int axis, int count) => full.With(axis, count).ToArray();

    private sealed class ConstantFill(double value, string name, Introduced introduces) : ChannelFill
    {
        public override string Name => name;

        public override Introduced Introduces => introduces;

        internal override Tensor Make(Shape fullShape, int axis, long[] newPositions, ScalarType dtype, Device device) =>
            full(SliceShape(fullShape, axis, newPositions.Length), value, dtype: dtype, device: device);
    }

    private sealed class KaimingFill(long seed) : ChannelFill
    {
        public override string Name => FormattableString.Invariant($"kaiming-normal(fan_out, relu, seed={seed})");

        public override Introduced Introduces => Introduced.Random;

        internal override Tensor Make(Shape fullShape, int axis, long[] newPositions, ScalarType dtype, Device device)
        {
            if (fullShape.Rank < 2)
            {
                // A vector (bias) that follows a Kaiming-filled weight starts at zero, as PyTorch's reset does not apply here.
                return zeros(SliceShape(fullShape, axis, newPositions.Length), dtype: dtype, device: device);
            }
            using var gen = new Generator((ulong)seed);
            var std = KaimingStd(fullShape);
            var draw = randn(SliceShape(fullShape, axis, newPositions.Length), dtype: ScalarType.Float64, generator: gen) * std;
            return draw.to(dtype, device);
        }
    }

    private sealed class TemplateFill(Tensor template) : ChannelFill
    {
        public override string Name => TemplateName;

        public override Introduced Introduces => Introduced.Template;

        internal override Tensor Make(Shape fullShape, int axis, long[] newPositions, ScalarType dtype, Device device)
        {
            if (!fullShape.SequenceEqual(template.shape))
            {
                throw new ArgumentException($"Template init has shape {new Shape(template.shape)}, but the target is {fullShape}.");
            }
            using var idx = tensor(newPositions, device: template.device);
            return template.detach().index_select(axis, idx).to(dtype, device);
        }
    }
}
