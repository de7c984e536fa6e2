using System.Globalization;
using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Transformers;

/// <summary>
/// Rebuilds one axis of a weight from blocks of the source's axis: output block i is the mean of the source blocks
/// <c>Sources[i]</c> (one block: a copy), and the whole result is multiplied by <see cref="Scale"/>. A block is an
/// attention head (head_dim rows), a token's row, or one channel. The transformer transforms are all this one shape of
/// computation, told apart by their name in the plan: repeated K/V heads (GQA → MHA), group means (MHA → GQA, Ainslie et
/// al. 2023), HyperCloning's tiled copies divided by their count, the first n kept, new vocabulary rows from the mean
/// of the old ones.
/// </summary>
public sealed class BlockMap : WeightTransform
{
    private readonly int[][] _sources;
    private readonly string _op;
    private readonly string _what;

    /// <summary>Creates the transform.</summary>
    /// <param name="op">Its name in plans and reports (<c>heads.repeat</c>, <c>heads.group-mean</c>, <c>tile</c> …).</param>
    /// <param name="what">What it does, for a person.</param>
    /// <param name="axis">The axis rebuilt.</param>
    /// <param name="blockSize">Elements per block along the axis.</param>
    /// <param name="sourceBlocks">Blocks the input has along the axis.</param>
    /// <param name="sources">For each output block, the source blocks averaged into it (at least one).</param>
    /// <param name="scale">A factor applied to every output value (1/copies for HyperCloning's inputs).</param>
    public BlockMap(string op, string what, int axis, long blockSize, long sourceBlocks, IReadOnlyList<int[]> sources, double scale = 1.0)
    {
        ArgumentException.ThrowIfNullOrEmpty(op);
        ArgumentException.ThrowIfNullOrEmpty(what);
        ArgumentOutOfRangeException.ThrowIfNegative(axis);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sourceBlocks);
        ArgumentNullException.ThrowIfNull(sources);
        if (sources.Count == 0 || sources.Any(s => s is null || s.Length == 0 || s.Any(b => b < 0 || b >= sourceBlocks)))
        {
            throw new ArgumentException($"{op}: every output block needs one or more source blocks in [0, {sourceBlocks}).", nameof(sources));
        }
        if (!double.IsFinite(scale) || scale == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "The scale must be finite and non-zero.");
        }
        (_op, _what, Axis, BlockSize, SourceBlocks, _sources, Scale) = (op, what, axis, blockSize, sourceBlocks, sources.Select(s => s.ToArray()).ToArray(), scale);
    }

    /// <summary>The axis rebuilt.</summary>
    public int Axis { get; }

    /// <summary>Elements per block.</summary>
    public long BlockSize { get; }

    /// <summary>Blocks of the input along <see cref="Axis"/>.</summary>
    public long SourceBlocks { get; }

    /// <summary>Blocks of the output along <see cref="Axis"/>.</summary>
    public long TargetBlocks => _sources.Length;

    /// <summary>Factor applied to every output value.</summary>
    public double Scale { get; }

    /// <summary>For each output block, the source blocks averaged into it.</summary>
    public IReadOnlyList<IReadOnlyList<int>> Sources => _sources;

    /// <summary>True when every output block is a copy of one source block (no mean): pure data movement and a scale.</summary>
    public bool CopiesOnly => _sources.All(s => s.Length == 1);

    /// <inheritdoc/>
    public override string Op => _op;

    /// <inheritdoc/>
    public override string Describe() => _what + (Scale == 1 ? "" : string.Create(CultureInfo.InvariantCulture, $", ×{Scale:g6}")) + $" (axis {Axis})";

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (Axis >= input.Rank || input[Axis] != SourceBlocks * BlockSize)
        {
            throw new ArgumentException($"{Op}: input shape {input} does not have {SourceBlocks} blocks of {BlockSize} on axis {Axis}.");
        }
        var dims = input.ToArray();
        dims[Axis] = TargetBlocks * BlockSize;
        return new Shape(dims);
    }

    /// <summary>
    /// The source blocks of each output (<paramref name="index"/>, into the candidates) and the distinct groups averaged
    /// (<paramref name="means"/>, computed once each however many outputs share them).
    /// </summary>
    private void Candidates(out long[] index, out List<int[]> means)
    {
        means = [];
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        index = new long[_sources.Length];
        for (int i = 0; i < _sources.Length; i++)
        {
            var s = _sources[i];
            if (s.Length == 1)
            {
                index[i] = s[0];
                continue;
            }
            var key = string.Join(",", s);
            if (!seen.TryGetValue(key, out int m))
            {
                m = seen[key] = means.Count;
                means.Add(s);
            }
            index[i] = SourceBlocks + m;
        }
    }

    /// <inheritdoc/>
    protected override Tensor ApplyCore(Tensor input)
    {
        var shape = input.shape;
        long pre = shape.Take(Axis).Aggregate(1L, (a, b) => a * b);
        long post = shape.Skip(Axis + 1).Aggregate(1L, (a, b) => a * b);
        var blocks = input.reshape(pre, SourceBlocks, BlockSize * post);
        Candidates(out var index, out var means);
        var candidates = blocks;
        if (means.Count > 0)
        {
            var parts = new List<Tensor> { blocks };
            foreach (var m in means)
            {
                using var idx = tensor(m.Select(b => (long)b).ToArray(), dtype: ScalarType.Int64, device: input.device);
                parts.Add(blocks.index_select(1, idx).mean([1L], keepdim: true));
            }
            candidates = cat(parts, 1);
        }
        using var select = tensor(index, dtype: ScalarType.Int64, device: input.device);
        var dims = (long[])shape.Clone();
        dims[Axis] = TargetBlocks * BlockSize;
        var output = candidates.index_select(1, select).reshape(dims);
        return Scale == 1 ? output : output * Scale;
    }

    /// <summary>Copies and a scale are data movement: output row j along the axis reads row Sources[j / BlockSize][0]·BlockSize + j % BlockSize.</summary>
    internal override AxisGather? AsGather(Shape input)
    {
        if (!CopiesOnly)
        {
            return null;
        }
        OutputShape(input);
        var index = new long[TargetBlocks * BlockSize];
        for (int i = 0; i < _sources.Length; i++)
        {
            for (long r = 0; r < BlockSize; r++)
            {
                index[i * BlockSize + r] = _sources[i][0] * BlockSize + r;
            }
        }
        return new AxisGather(Axis, index, Scale);
    }

    /// <summary>Copies and a scale have a managed twin (bit-exact: the same moves and one multiplication); means do not.</summary>
    public override bool HasTwin => CopiesOnly;

    /// <inheritdoc/>
    protected override T[] ApplyTwinCore<T>(ReadOnlySpan<T> input, Shape shape)
    {
        long pre = 1, post = 1;
        for (int d = 0; d < Axis; d++)
        {
            pre *= shape[d];
        }
        for (int d = Axis + 1; d < shape.Rank; d++)
        {
            post *= shape[d];
        }
        long chunk = BlockSize * post;
        var output = new T[checked(pre * TargetBlocks * chunk)];
        // The scale as libtorch applies it to a tensor of T: the double rounded to T once, then one multiplication.
        var scale = T.CreateChecked(Scale);
        for (long p = 0; p < pre; p++)
        {
            for (int i = 0; i < _sources.Length; i++)
            {
                var from = input.Slice(checked((int)((p * SourceBlocks + _sources[i][0]) * chunk)), (int)chunk);
                var to = output.AsSpan(checked((int)((p * TargetBlocks + i) * chunk)), (int)chunk);
                if (Scale == 1)
                {
                    from.CopyTo(to);
                }
                else
                {
                    for (int j = 0; j < to.Length; j++)
                    {
                        to[j] = from[j] * scale;
                    }
                }
            }
        }
        return output;
    }
}
