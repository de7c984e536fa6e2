using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft.Transforms;

/// <summary>How to rank channels when keeping the n most important ones.</summary>
public enum ChannelNorm
{
    /// <summary>Sum of absolute values of the channel's weights.</summary>
    L1,
    /// <summary>Euclidean norm of the channel's weights.</summary>
    L2,
}

/// <summary>How a <see cref="ChannelMap"/> was made; drives its op and description in reports.</summary>
public enum ChannelMapKind
{
    /// <summary>The first channels (per group), new ones at the end: <c>first</c>.</summary>
    First,
    /// <summary>Target channel j is source channel j mod n: <c>cyclic</c>.</summary>
    Cyclic,
    /// <summary>Net2WiderNet's random replication: <c>net2wider</c>.</summary>
    Net2Wider,
    /// <summary>Indices given by the caller: <c>explicit</c>.</summary>
    Explicit,
    /// <summary>The channels with the largest L1 norm: <c>largest-l1</c>.</summary>
    LargestL1,
    /// <summary>The channels with the largest L2 norm: <c>largest-l2</c>.</summary>
    LargestL2,
}

/// <summary>
/// A channel decision: for each target channel, the source channel it comes from, or -1 for a new channel.
/// Made once for a layer's output axis and applied with the same indices to everything that belongs to those
/// channels: the weight's out axis, the bias, the following BatchNorm's vectors, the next layer's in axis.
/// </summary>
public sealed class ChannelMap : IEquatable<ChannelMap>
{
    private readonly long[] _indices;

    private ChannelMap(long sourceCount, long[] indices, ChannelMapKind kind)
    {
        SourceCount = sourceCount;
        _indices = indices;
        Kind = kind;
    }

    /// <summary>Number of source channels.</summary>
    public long SourceCount { get; }

    /// <summary>For each target channel, its source channel or -1.</summary>
    public IReadOnlyList<long> Indices => _indices;

    /// <summary>Number of target channels.</summary>
    public long TargetCount => _indices.Length;

    /// <summary>How the map was made.</summary>
    public ChannelMapKind Kind { get; }

    /// <summary>How the map was made, in the words of reports (<c>first</c>, <c>largest-l2</c>, <c>cyclic</c>, <c>explicit</c>).</summary>
    public string How => Name(Kind);

    /// <summary>The report word for a kind: its kebab-case name (<c>largest-l2</c>).</summary>
    public static string Name(ChannelMapKind kind) => kind switch
    {
        ChannelMapKind.First => "first",
        ChannelMapKind.Cyclic => "cyclic",
        ChannelMapKind.Net2Wider => "net2wider",
        ChannelMapKind.Explicit => "explicit",
        ChannelMapKind.LargestL1 => "largest-l1",
        _ => "largest-l2",
    };

    /// <summary>Number of target channels with no source.</summary>
    public long NewCount => _indices.Count(i => i < 0);

    /// <summary>True when target channel j is source channel j for every j and the counts agree.</summary>
    public bool IsIdentity => TargetCount == SourceCount && _indices.Select((s, j) => s == j).All(x => x);

    /// <summary>A copy of the indices.</summary>
    public long[] ToArray() => (long[])_indices.Clone();

    /// <summary>
    /// Keeps the first channels (in each of <paramref name="groups"/> groups, for grouped convolutions) and, when the
    /// target is larger, adds new channels at the end (of each group). The default decision.
    /// </summary>
    public static ChannelMap First(long sourceCount, long targetCount, int groups = 1)
    {
        CheckCounts(sourceCount, targetCount, groups);
        long sg = sourceCount / groups, tg = targetCount / groups;
        var idx = new long[targetCount];
        for (long g = 0; g < groups; g++)
        {
            for (long j = 0; j < tg; j++)
            {
                idx[g * tg + j] = j < sg ? g * sg + j : -1;
            }
        }
        return new ChannelMap(sourceCount, idx, ChannelMapKind.First);
    }

    /// <summary>
    /// Target channel j is source channel j mod n: new channels are copies of existing ones. Note that copies change
    /// a network's function unless the consumers' input weights are divided as Net2WiderNet does.
    /// </summary>
    public static ChannelMap Cyclic(long sourceCount, long targetCount)
    {
        CheckCounts(sourceCount, targetCount, 1);
        if (sourceCount == 0 && targetCount > 0)
        {
            throw new ArgumentException("Cannot copy channels from an empty source.");
        }
        var idx = new long[targetCount];
        for (long j = 0; j < targetCount; j++)
        {
            idx[j] = j % sourceCount;
        }
        return new ChannelMap(sourceCount, idx, ChannelMapKind.Cyclic);
    }

    /// <summary>
    /// Net2WiderNet's random mapping: g(j) = j for the first <paramref name="sourceCount"/> channels, and each further
    /// channel a copy of a source channel drawn uniformly (deterministic for a seed). Consumers must divide their inputs
    /// by <see cref="ReplicaCounts"/> (see <see cref="InChannels.Net2Wider"/>) for the network to keep its function.
    /// </summary>
    public static ChannelMap Net2Wider(long sourceCount, long targetCount, long seed)
    {
        CheckCounts(sourceCount, targetCount, 1);
        if (targetCount < sourceCount)
        {
            throw new ArgumentException($"Net2WiderNet only widens; got {sourceCount}→{targetCount}.");
        }
        if (sourceCount == 0 && targetCount > 0)
        {
            throw new ArgumentException("Cannot replicate channels of an empty source.");
        }
        var idx = new long[targetCount];
        for (long j = 0; j < sourceCount; j++)
        {
            idx[j] = j;
        }
        if (targetCount > sourceCount)
        {
            using var gen = new Generator(unchecked((ulong)seed));
            using var draw = randint(sourceCount, [targetCount - sourceCount], dtype: ScalarType.Int64, generator: gen);
            draw.data<long>().ToArray().CopyTo(idx, sourceCount);
        }
        return new ChannelMap(sourceCount, idx, ChannelMapKind.Net2Wider);
    }

    /// <summary>
    /// For each target channel, how many target channels share its source channel (|g⁻¹(g(j))|), or 1 for a new
    /// channel. The divisor Net2WiderNet applies to the next layer's inputs so that replicas sum to the original.
    /// </summary>
    public long[] ReplicaCounts()
    {
        var perSource = new long[SourceCount];
        foreach (var i in _indices)
        {
            if (i >= 0)
            {
                perSource[i]++;
            }
        }
        return _indices.Select(i => i >= 0 ? perSource[i] : 1).ToArray();
    }

    /// <summary>An explicit map; every index must be -1 or a valid source channel, and no source channel used twice.</summary>
    public static ChannelMap FromIndices(long sourceCount, IEnumerable<long> indices, bool allowRepeats = false)
    {
        ArgumentNullException.ThrowIfNull(indices);
        var idx = indices.ToArray();
        var seen = new HashSet<long>();
        foreach (var i in idx)
        {
            if (i < -1 || i >= sourceCount)
            {
                throw new ArgumentOutOfRangeException(nameof(indices), $"Channel index {i} is outside 0..{sourceCount - 1} (and is not -1 for a new channel).");
            }
            if (i >= 0 && !seen.Add(i) && !allowRepeats)
            {
                throw new ArgumentException($"Source channel {i} is used twice.", nameof(indices));
            }
        }
        return new ChannelMap(sourceCount, idx, ChannelMapKind.Explicit);
    }

    /// <summary>
    /// Keeps the <paramref name="targetCount"/> output channels of <paramref name="weight"/> with the largest norm,
    /// in their original order (so a "first n" network and this one differ only in which channels survive).
    /// Only for shrinking; ties go to the lower index.
    /// </summary>
    public static ChannelMap LargestNorm(Tensor weight, Layout layout, long targetCount, ChannelNorm norm) =>
        LargestNorm([(weight, layout)], targetCount, norm);

    /// <summary>
    /// One decision for weights that share their output channels (producers joined by a residual add): a channel's
    /// score is the sum of its scores in every weight (L1: absolute values; L2: squares), so the group keeps the
    /// channels that matter most overall. Same order and tie rules as the single-weight form.
    /// </summary>
    public static ChannelMap LargestNorm(IReadOnlyList<(Tensor Weight, Layout Layout)> weights, long targetCount, ChannelNorm norm)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.Count == 0)
        {
            throw new ArgumentException("Largest-norm selection needs at least one weight.", nameof(weights));
        }
        double[]? total = null;
        long source = 0;
        foreach (var (weight, layout) in weights)
        {
            ArgumentNullException.ThrowIfNull(weight);
            ArgumentNullException.ThrowIfNull(layout);
            var shape = new Shape(weight.shape);
            layout.Check(shape, "largest-norm selection");
            if (layout.Groups != 1)
            {
                throw new NotSupportedException("Largest-norm selection on grouped convolutions is not supported; use first-n.");
            }
            int axis = layout.OutAxis;
            if (total is not null && shape[axis] != source)
            {
                throw new ArgumentException($"Weights sharing a decision must have the same number of output channels; got {source} and {shape[axis]}.", nameof(weights));
            }
            source = shape[axis];
            using var scope = NewDisposeScope();
            var w = weight.detach().to(ScalarType.Float64).movedim([axis], [0]).reshape(source, -1);
            var scores = norm == ChannelNorm.L1 ? w.abs().sum(1) : w.square().sum(1);
            var values = scores.data<double>().ToArray();
            total ??= new double[source];
            for (int i = 0; i < values.Length; i++)
            {
                total[i] += values[i];
            }
        }
        if (targetCount > source || targetCount < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(targetCount), $"Largest-norm keeps at most the {source} existing channels; asked for {targetCount}.");
        }
        var keep = Enumerable.Range(0, (int)source)
            .OrderByDescending(i => total![i]).ThenBy(i => i)
            .Take((int)targetCount)
            .Order()
            .Select(i => (long)i)
            .ToArray();
        return new ChannelMap(source, keep, norm == ChannelNorm.L1 ? ChannelMapKind.LargestL1 : ChannelMapKind.LargestL2);
    }

    /// <summary>
    /// The same decision on a flattened axis where each channel owns <paramref name="blockSize"/> consecutive
    /// features (a conv → flatten → Linear boundary: block = H·W).
    /// </summary>
    public ChannelMap ExpandBlocks(long blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        var idx = new long[checked(TargetCount * blockSize)];
        for (long j = 0; j < TargetCount; j++)
        {
            for (long b = 0; b < blockSize; b++)
            {
                idx[j * blockSize + b] = _indices[j] < 0 ? -1 : _indices[j] * blockSize + b;
            }
        }
        return new ChannelMap(SourceCount * blockSize, idx, Kind);
    }

    /// <inheritdoc/>
    public bool Equals(ChannelMap? other) => other is not null && other.SourceCount == SourceCount && other._indices.AsSpan().SequenceEqual(_indices);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as ChannelMap);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(SourceCount, _indices.Length, _indices.Length > 0 ? _indices[0] : 0);

    /// <inheritdoc/>
    public override string ToString() => $"{How} {SourceCount}→{TargetCount}" + (NewCount > 0 ? $" ({NewCount} new)" : "");

    private static void CheckCounts(long sourceCount, long targetCount, int groups)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sourceCount);
        ArgumentOutOfRangeException.ThrowIfNegative(targetCount);
        ArgumentOutOfRangeException.ThrowIfLessThan(groups, 1);
        if (sourceCount % groups != 0 || targetCount % groups != 0)
        {
            throw new ArgumentException($"Channel counts {sourceCount} and {targetCount} must both be multiples of groups={groups}.");
        }
    }
}
