using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft.Transforms;

/// <summary>
/// Applies a <see cref="ChannelMap"/> along one axis: target position j takes source slice map[j], new positions
/// (-1) are filled by a <see cref="ChannelFill"/>. Out-channel truncation, largest-norm selection, padding, copies,
/// and an interior layer's inputs following its predecessor's decision are all this one transform.
/// </summary>
public sealed class SelectChannels : WeightTransform
{
    private readonly long[] _known;
    private readonly long[] _newPositions;
    private readonly long[] _gatherOrder;
    private readonly string? _op;

    /// <summary>
    /// Creates the transform; <paramref name="role"/> (<c>out</c>, <c>in</c>) and <paramref name="op"/> (a more specific
    /// name such as <c>in.zero-extend</c>) only name it in reports.
    /// </summary>
    public SelectChannels(int axis, ChannelMap map, ChannelFill fill, string role = "out", string? op = null)
    {
        _op = op;
        ArgumentOutOfRangeException.ThrowIfNegative(axis);
        ArgumentNullException.ThrowIfNull(map);
        ArgumentNullException.ThrowIfNull(fill);
        Axis = axis;
        Map = map;
        Fill = fill;
        Role = role;
        var idx = map.ToArray();
        _known = idx.Where(i => i >= 0).ToArray();
        _newPositions = Enumerable.Range(0, idx.Length).Where(j => idx[j] < 0).Select(j => (long)j).ToArray();
        // Known slices come first in the concatenation, new ones after; gather puts each where it belongs.
        _gatherOrder = new long[idx.Length];
        long k = 0, n = _known.Length;
        for (int j = 0; j < idx.Length; j++)
        {
            _gatherOrder[j] = idx[j] >= 0 ? k++ : n++;
        }
    }

    /// <summary>The axis the map applies to.</summary>
    public int Axis { get; }

    /// <summary>The channel decision.</summary>
    public ChannelMap Map { get; }

    /// <summary>How new channels are filled.</summary>
    public ChannelFill Fill { get; }

    /// <summary>The role of the axis (for reports).</summary>
    public string Role { get; }

    /// <inheritdoc/>
    public override string Op => OpOf(_op, Role, Map.Kind, Map.IsIdentity, Map.NewCount);

    /// <inheritdoc/>
    public override Introduced Introduces => Map.NewCount > 0 ? Fill.Introduces : Introduced.Nothing;

    /// <inheritdoc/>
    public override string Describe() => DescribeOf(Role, Map.Kind, Map.SourceCount, Map.TargetCount, Map.NewCount, Fill.Name, Axis);

    /// <summary>
    /// The op of a selection from what it is made of, not from its indices: so a selection planned from counts alone (a
    /// largest-norm ranking not yet computed) is named exactly as the one that runs.
    /// </summary>
    internal static string OpOf(string? op, string role, ChannelMapKind kind, bool identity, long newCount) => op ?? (identity ? "identity" : kind switch
    {
        ChannelMapKind.First => newCount > 0 ? $"{role}.pad" : $"{role}.truncate",
        ChannelMapKind.Cyclic => $"{role}.copies",
        ChannelMapKind.Explicit => $"{role}.select",
        _ => $"{role}.{ChannelMap.Name(kind)}",
    });

    /// <summary>The description of a selection from its counts and fill name (see <see cref="OpOf"/>).</summary>
    internal static string DescribeOf(string role, ChannelMapKind kind, long sourceCount, long targetCount, long newCount, string fillName, int axis)
    {
        var what = kind switch
        {
            ChannelMapKind.First when newCount == 0 => $"keep the first {targetCount} of {sourceCount} {role} channels",
            ChannelMapKind.First => $"keep all {sourceCount} {role} channels, add {newCount} new ({fillName})",
            ChannelMapKind.Cyclic => $"{role} channels {sourceCount}→{targetCount} by cyclic copies",
            _ => $"{ChannelMap.Name(kind)}: keep {targetCount - newCount} of {sourceCount} {role} channels" + (newCount > 0 ? $", add {newCount} new ({fillName})" : ""),
        };
        return what + $" (axis {axis})";
    }

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (Axis >= input.Rank)
        {
            throw new ArgumentException($"{Op}: input shape {input} has no axis {Axis}.");
        }
        if (input[Axis] != Map.SourceCount)
        {
            throw new ArgumentException($"{Op}: input shape {input} has {input[Axis]} channels on axis {Axis}, the channel map expects {Map.SourceCount}.");
        }
        return input.With(Axis, Map.TargetCount);
    }

    /// <inheritdoc/>
    protected override Tensor ApplyCore(Tensor input)
    {
        using var knownIdx = tensor(_known, device: input.device);
        var kept = input.index_select(Axis, knownIdx);
        if (_newPositions.Length == 0)
        {
            return kept;
        }
        var fullShape = new Shape(input.shape).With(Axis, Map.TargetCount);
        var fresh = Fill.Make(fullShape, Axis, _newPositions, input.dtype, input.device);
        var both = cat([kept, fresh], Axis);
        using var order = tensor(_gatherOrder, device: input.device);
        return both.index_select(Axis, order);
    }

    /// <summary>True unless new channels are filled by something only libtorch computes (a random draw).</summary>
    public override bool HasTwin => _newPositions.Length == 0 || Fill.HasTwin;

    /// <inheritdoc/>
    protected override T[] ApplyTwinCore<T>(ReadOnlySpan<T> input, Shape shape)
    {
        var (outer, size, inner) = Twins.Around(shape, Axis);
        var fullShape = shape.With(Axis, Map.TargetCount);
        var fresh = _newPositions.Length == 0 ? [] : Fill.MakeTwin<T>(fullShape, Axis, _newPositions);
        int target = (int)Map.TargetCount, known = _known.Length, added = _newPositions.Length;
        var output = new T[Twins.Length(fullShape)];
        for (int o = 0; o < outer; o++)
        {
            for (int j = 0; j < target; j++)
            {
                // The same gather as the libtorch path: known slices in map order, then the fresh ones.
                int g = (int)_gatherOrder[j];
                var from = g < known
                    ? input.Slice((o * size + (int)_known[g]) * inner, inner)
                    : fresh.AsSpan((o * added + g - known) * inner, inner);
                from.CopyTo(output.AsSpan((o * target + j) * inner, inner));
            }
        }
        return output;
    }
}

/// <summary>Factories for output-channel decisions on a weight of a given layout.</summary>
public static class OutChannels
{
    /// <summary>
    /// Applies <paramref name="map"/> to the out axis of a weight of <paramref name="layout"/>, filling new channels
    /// with <paramref name="fill"/>. For a vector (bias, BatchNorm) the layout is <see cref="Layout.Vector"/>.
    /// </summary>
    public static SelectChannels Apply(Layout layout, ChannelMap map, ChannelFill fill)
    {
        ArgumentNullException.ThrowIfNull(layout);
        if (!layout.HasChannels)
        {
            throw new ArgumentException($"A {layout} tensor has no output channels.", nameof(layout));
        }
        if (layout.Kind == LayerKind.ConvTranspose && layout.Groups > 1)
        {
            throw new NotSupportedException("Changing the output channels of a grouped transposed convolution is not supported.");
        }
        return new SelectChannels(layout.OutAxis, map, fill, "out");
    }

    /// <summary>Keeps the first <paramref name="targetCount"/> output channels (adds new ones at the end when larger).</summary>
    public static SelectChannels KeepFirst(Layout layout, long sourceCount, long targetCount, ChannelFill? fill = null)
    {
        ArgumentNullException.ThrowIfNull(layout);
        int groups = layout.Kind == LayerKind.Conv ? layout.Groups : 1;
        return Apply(layout, ChannelMap.First(sourceCount, targetCount, groups), fill ?? ChannelFill.Zeros);
    }
}
