using System.Numerics;
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

    /// <summary>True when the fill has a managed twin (<see cref="MakeTwin"/>): constants and the template's values, not random draws.</summary>
    internal virtual bool HasTwin => false;

    /// <summary>The twin of <see cref="Make"/>: the same values, row-major, in the work dtype.</summary>
    internal virtual T[] MakeTwin<T>(Shape fullShape, int axis, long[] newPositions) where T : unmanaged, IFloatingPointIeee754<T> =>
        throw new NotSupportedException($"The {Name} fill has no managed twin.");

    /// <summary>
    /// New channels keep the values of the target's own init, given as row-major work values (float or double) of the
    /// full target shape: the template fill of the libtorch-free path. Same name and values as <see cref="FromTemplate"/>.
    /// </summary>
    internal static ChannelFill FromTemplateValues<T>(T[] values, Shape shape) where T : unmanaged, IFloatingPointIeee754<T> =>
        new TemplateValuesFill<T>(values, shape);

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

        internal override bool HasTwin => true;

        internal override T[] MakeTwin<T>(Shape fullShape, int axis, long[] newPositions)
        {
            var values = new T[Graft.Transforms.Twins.Length(SliceShape(fullShape, axis, newPositions.Length))];
            // libtorch's full() converts the value to the dtype first.
            Array.Fill(values, T.CreateTruncating(value));
            return values;
        }
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

    private sealed class TemplateValuesFill<TValue>(TValue[] values, Shape shape) : ChannelFill where TValue : unmanaged, IFloatingPointIeee754<TValue>
    {
        public override string Name => TemplateName;

        public override Introduced Introduces => Introduced.Template;

        internal override Tensor Make(Shape fullShape, int axis, long[] newPositions, ScalarType dtype, Device device)
        {
            using var all = values switch
            {
                float[] f => tensor(f, shape.ToArray()),
                double[] d => tensor(d, shape.ToArray()),
                _ => throw new NotSupportedException($"A template of {typeof(TValue).Name} values."),
            };
            return new TemplateFill(all).Make(fullShape, axis, newPositions, dtype, device);
        }

        internal override bool HasTwin => true;

        internal override T[] MakeTwin<T>(Shape fullShape, int axis, long[] newPositions)
        {
            if (!fullShape.Equals(shape))
            {
                throw new ArgumentException($"Template init has shape {shape}, but the target is {fullShape}.");
            }
            if (values is not T[] same)
            {
                throw new NotSupportedException($"A template of {typeof(TValue).Name} values cannot fill a {typeof(T).Name} tensor.");
            }
            var (outer, size, inner) = Graft.Transforms.Twins.Around(shape, axis);
            var result = new T[Graft.Transforms.Twins.Length(SliceShape(fullShape, axis, newPositions.Length))];
            for (int o = 0; o < outer; o++)
            {
                for (int k = 0; k < newPositions.Length; k++)
                {
                    same.AsSpan((o * size + (int)newPositions[k]) * inner, inner).CopyTo(result.AsSpan((o * newPositions.Length + k) * inner, inner));
                }
            }
            return result;
        }
    }
}
