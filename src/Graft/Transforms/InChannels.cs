using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft.Transforms;

/// <summary>
/// Input-channel adaptations, on the in axis of a Conv/ConvTranspose/Linear weight (the in/groups axis for grouped
/// convolutions). Each keeps a stated promise, tested numerically.
/// </summary>
public static class InChannels
{
    /// <summary>
    /// Target input j is the sum of source inputs i with i mod n = j (for n = 1, the sum of all): a network fed the
    /// folded image (channel j = the common value of the source channels it gathers) sees the same response.
    /// timm's rule for a 1-channel stem.
    /// </summary>
    /// <remarks>
    /// The managed twin (<see cref="WeightTransform.HasTwin"/>) adds the gathered inputs in index order in the work dtype
    /// (a fused multiply-add per term for <see cref="Mean"/>). libtorch computes the same sums as a matrix product whose
    /// summation order is its BLAS's, so the two may differ by rounding: by at most 2n·u·Σ|wᵢxᵢ| for n gathered inputs
    /// (u = 2⁻²⁴ in float32, 2⁻⁵³ in float64), that is 2n units of rounding of the sum of the terms' magnitudes.
    /// On the stems the default policy folds (3 or 4 inputs into 1) they agree bit for bit in the property test.
    /// </remarks>
    public static WeightTransform Sum(Layout layout, long sourceCount, long targetCount) => new Fold(InAxis(layout), sourceCount, targetCount, mean: false);

    /// <summary>Like <see cref="Sum"/> but averaging: keeps the weight scale instead of the response scale.</summary>
    public static WeightTransform Mean(Layout layout, long sourceCount, long targetCount) => new Fold(InAxis(layout), sourceCount, targetCount, mean: true);

    /// <summary>
    /// Repeats the source inputs cyclically up to the target count and multiplies by source/target, so that feeding
    /// the target layer the source input repeated (target a multiple of source) gives the source layer's output.
    /// For any source count, not only 3.
    /// </summary>
    public static WeightTransform RepeatRescale(Layout layout, long sourceCount, long targetCount) => new Repeat(InAxis(layout), sourceCount, targetCount);

    /// <summary>Keeps the first target inputs (the remaining inputs are ignored by the new layer).</summary>
    public static WeightTransform Truncate(Layout layout, long sourceCount, long targetCount)
    {
        if (targetCount > sourceCount)
        {
            throw new ArgumentException($"Truncating inputs needs a smaller target; got {sourceCount}→{targetCount}.");
        }
        return new SelectChannels(InAxis(layout), ChannelMap.First(sourceCount, targetCount), ChannelFill.Zeros, "in", "in.truncate");
    }

    /// <summary>
    /// Keeps the source inputs and gives new inputs zero weights: the layer ignores the extra inputs, so its
    /// output is unchanged whatever they carry (function-preserving).
    /// </summary>
    public static WeightTransform ZeroExtend(Layout layout, long sourceCount, long targetCount)
    {
        if (targetCount < sourceCount)
        {
            throw new ArgumentException($"Zero-extending inputs needs a larger target; got {sourceCount}→{targetCount}.");
        }
        return new SelectChannels(InAxis(layout), ChannelMap.First(sourceCount, targetCount), ChannelFill.Zeros, "in", "in.zero-extend");
    }

    /// <summary>
    /// Inputs follow the previous layer's output decision: same indices, new inputs get zero weights so the old
    /// function is kept. For an interior layer after a width change.
    /// </summary>
    public static WeightTransform Follow(Layout layout, ChannelMap previousOut) =>
        new SelectChannels(InAxis(layout), previousOut, ChannelFill.Zeros, "in", "in.follow");

    /// <summary>
    /// Net2WiderNet's consumer side: inputs follow the producer's replicating map (<paramref name="producerOut"/>, already
    /// expanded to H·W blocks across a flatten), then each input slice is divided by the number of replicas of its
    /// source channel, so the replicas together contribute exactly what the original channel did.
    /// </summary>
    public static WeightTransform Net2Wider(Layout layout, ChannelMap producerOut)
    {
        ArgumentNullException.ThrowIfNull(producerOut);
        CheckUngrouped(layout, "Net2WiderNet");
        return Chain.Of(new SelectChannels(InAxis(layout), producerOut, ChannelFill.Zeros, "in", "in.replicate"), DivideByReplicas(layout, producerOut));
    }

    /// <summary>
    /// Divides input slice j by |g⁻¹(g(j))| of <paramref name="map"/> (new inputs are left alone). Acts on a weight that
    /// already has the target's input count; separate from the selection so a caller can combine it with any other
    /// way of producing the replicated inputs.
    /// </summary>
    public static WeightTransform DivideByReplicas(Layout layout, ChannelMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        CheckUngrouped(layout, "Dividing by replica counts");
        return new ScaleSlices(InAxis(layout), map.ReplicaCounts().Select(c => 1.0 / c).ToArray(), "in.divide-replicas",
            $"divide each of the {map.TargetCount} input channels by its replica count");
    }

    private static void CheckUngrouped(Layout layout, string what)
    {
        ArgumentNullException.ThrowIfNull(layout);
        if (layout.Groups != 1)
        {
            throw new NotSupportedException($"{what} on a grouped convolution ({layout}) is not supported.");
        }
    }

    private static int InAxis(Layout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        if (layout.InAxis < 0)
        {
            throw new ArgumentException($"A {layout} tensor has no input channels.", nameof(layout));
        }
        return layout.InAxis;
    }

    private static void CheckInput(string op, Shape input, int axis, long sourceCount)
    {
        if (axis >= input.Rank || input[axis] != sourceCount)
        {
            throw new ArgumentException($"{op}: input shape {input} does not have {sourceCount} channels on axis {axis}.");
        }
    }

    private sealed class Fold : WeightTransform
    {
        private readonly int _axis;
        private readonly long _source;
        private readonly long _target;
        private readonly bool _mean;

        public Fold(int axis, long source, long target, bool mean)
        {
            if (target < 1 || target > source)
            {
                throw new ArgumentException($"{(mean ? "Mean" : "Sum")} of inputs folds to between 1 and {source} channels; asked for {target}.");
            }
            (_axis, _source, _target, _mean) = (axis, source, target, mean);
        }

        public override string Op => _mean ? "in.mean" : "in.sum";

        public override string Describe() => _target == 1
            ? $"{(_mean ? "average" : "sum")} the {_source} input channels into 1 (axis {_axis})"
            : $"{(_mean ? "average" : "sum")} input channels i into i mod {_target}, {_source}→{_target} (axis {_axis})";

        public override Shape OutputShape(Shape input)
        {
            CheckInput(Op, input, _axis, _source);
            return input.With(_axis, _target);
        }

        protected override Tensor ApplyCore(Tensor input)
        {
            // M[j, i] = 1 (or 1/count) where i mod target = j; out = M applied along the axis.
            var m = new double[_target * _source];
            var counts = new long[_target];
            for (long i = 0; i < _source; i++)
            {
                counts[i % _target]++;
            }
            for (long i = 0; i < _source; i++)
            {
                long j = i % _target;
                m[j * _source + i] = _mean ? 1.0 / counts[j] : 1.0;
            }
            using var matrix = tensor(m, [_target, _source], dtype: ScalarType.Float64, device: input.device);
            using var mt = matrix.to(input.dtype).t();
            var moved = input.movedim([_axis], [-1]);
            return moved.matmul(mt).movedim([-1], [_axis]);
        }

        public override bool HasTwin => true;

        protected override T[] ApplyTwinCore<T>(ReadOnlySpan<T> input, Shape shape)
        {
            var (outer, size, inner) = Twins.Around(shape, _axis);
            int target = (int)_target;
            var output = new T[Twins.Length(shape.With(_axis, _target))];
            for (int j = 0; j < target; j++)
            {
                // The weight libtorch multiplies by: 1/count rounded to the work dtype, as matrix.to(input.dtype).
                int count = (size - j + target - 1) / target;
                T w = T.CreateTruncating(1.0 / count);
                for (int o = 0; o < outer; o++)
                {
                    var acc = output.AsSpan((o * target + j) * inner, inner);
                    for (int i = j; i < size; i += target)
                    {
                        var x = input.Slice((o * size + i) * inner, inner);
                        if (i == j)
                        {
                            if (_mean)
                            {
                                TensorPrimitives.Multiply(x, w, acc);
                            }
                            else
                            {
                                x.CopyTo(acc);
                            }
                        }
                        else if (_mean)
                        {
                            TensorPrimitives.FusedMultiplyAdd(x, w, acc, acc);
                        }
                        else
                        {
                            TensorPrimitives.Add(acc, x, acc);
                        }
                    }
                }
            }
            return output;
        }
    }

    private sealed class Repeat : WeightTransform
    {
        private readonly int _axis;
        private readonly long _source;
        private readonly long _target;

        public Repeat(int axis, long source, long target)
        {
            if (source < 1 || target < source)
            {
                throw new ArgumentException($"Repeat-and-rescale grows the inputs; got {source}→{target}. Use sum, mean or truncate to shrink.");
            }
            (_axis, _source, _target) = (axis, source, target);
        }

        public double Scale => (double)_source / _target;

        public override string Op => "in.repeat-rescale";

        public override string Describe() =>
            FormattableString.Invariant($"repeat the {_source} input channels cyclically to {_target} and scale by {_source}/{_target} = {Scale:0.####} (axis {_axis})");

        public override Shape OutputShape(Shape input)
        {
            CheckInput(Op, input, _axis, _source);
            return input.With(_axis, _target);
        }

        protected override Tensor ApplyCore(Tensor input)
        {
            var idx = new long[_target];
            for (long j = 0; j < _target; j++)
            {
                idx[j] = j % _source;
            }
            using var it = tensor(idx, device: input.device);
            return input.index_select(_axis, it) * Scale;
        }

        public override bool HasTwin => true;

        protected override T[] ApplyTwinCore<T>(ReadOnlySpan<T> input, Shape shape)
        {
            var (outer, size, inner) = Twins.Around(shape, _axis);
            int target = (int)_target;
            // libtorch multiplies by the scalar converted to the tensor's dtype.
            T scale = T.CreateTruncating(Scale);
            var output = new T[Twins.Length(shape.With(_axis, _target))];
            for (int o = 0; o < outer; o++)
            {
                for (int j = 0; j < target; j++)
                {
                    TensorPrimitives.Multiply(input.Slice((o * size + j % size) * inner, inner), scale, output.AsSpan((o * target + j) * inner, inner));
                }
            }
            return output;
        }
    }
}
