using System.Globalization;
using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Transformers;

/// <summary>
/// One part of a fused projection: rows <see cref="Start"/> … <see cref="Start"/> + <see cref="Count"/> − 1 of axis 0.
/// Phi-3's <c>qkv_proj</c> holds q, k and v as consecutive row blocks and <c>gate_up_proj</c> gate and up, so an unfused
/// target's <c>q_proj</c> is the first block of its source's <c>qkv_proj</c>: pure data movement, shown in the plan as
/// <c>split</c>.
/// </summary>
public sealed class SplitRows : WeightTransform
{
    private readonly string _part;

    /// <summary>Creates the transform.</summary>
    /// <param name="part">The part taken, for a person (<c>q</c>, <c>up</c> …).</param>
    /// <param name="start">Its first row.</param>
    /// <param name="count">Its rows.</param>
    /// <param name="rows">The rows of the fused input, checked against every input.</param>
    public SplitRows(string part, long start, long count, long rows)
    {
        ArgumentException.ThrowIfNullOrEmpty(part);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start + count, rows);
        (_part, Start, Count, Rows) = (part, start, count, rows);
    }

    /// <summary>The first row taken.</summary>
    public long Start { get; }

    /// <summary>Rows taken.</summary>
    public long Count { get; }

    /// <summary>Rows of the fused input.</summary>
    public long Rows { get; }

    /// <inheritdoc/>
    public override string Op => "split";

    /// <inheritdoc/>
    public override string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"the {_part} part of the fused rows: rows {Start}–{Start + Count - 1} of {Rows}");

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Rank == 0 || input[0] != Rows)
        {
            throw new ArgumentException($"{Op}: input shape {input} does not have the {Rows} fused rows this part is taken from.");
        }
        return input.With(0, Count);
    }

    /// <inheritdoc/>
    protected override Tensor ApplyCore(Tensor input) => input.narrow(0, Start, Count);

    /// <summary>Rows <see cref="Start"/> … on the streaming path: a gather along axis 0, no scale.</summary>
    internal override AxisGather? AsGather(Shape input)
    {
        OutputShape(input);
        var index = new long[Count];
        for (long r = 0; r < Count; r++)
        {
            index[r] = Start + r;
        }
        return new AxisGather(0, index);
    }

    /// <summary>A slice of contiguous rows: bit-exact data movement.</summary>
    public override bool HasTwin => true;

    /// <inheritdoc/>
    protected override T[] ApplyTwinCore<T>(ReadOnlySpan<T> input, Shape shape)
    {
        long row = shape.ElementCount / shape[0];
        return input.Slice(checked((int)(Start * row)), checked((int)(Count * row))).ToArray();
    }
}
