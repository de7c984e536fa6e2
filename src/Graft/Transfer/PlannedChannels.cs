using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Transfer;

/// <summary>
/// A channel selection planned from counts: its shape, op and description are known when the plan is made, so the
/// plan can be checked and shown before any data moves. What needs tensor values is bound when the transfer runs
/// (<see cref="Bind"/>): the map of a largest-norm decision (it ranks the source's channels) and a fill from the
/// template's own init. A largest-norm selection is this step with its map filled in by the planned, recorded decision.
/// </summary>
public sealed class PlannedChannels : WeightTransform
{
    private readonly WeightTransform _twin;

    internal PlannedChannels(Layout layout, bool inputs, OutDecision decision, long blockSize, ChannelFill? fill)
    {
        Layout = layout;
        Inputs = inputs;
        Decision = decision;
        BlockSize = blockSize;
        Fill = fill;
        // The same factory the bound step uses, on a map of the same counts: its checks (axis roles, grouped transposed
        // convolutions) and its shape rule hold at plan time.
        _twin = Make(ChannelMap.First(decision.SourceCount * blockSize, decision.TargetCount * blockSize, inputs ? 1 : decision.Groups), ChannelFill.Zeros);
    }

    /// <summary>The layout of the tensor the selection applies to.</summary>
    public Layout Layout { get; }

    /// <summary>True for the in axis (inputs following a producer's decision), false for the out axis.</summary>
    public bool Inputs { get; }

    /// <summary>The planned decision whose channel map this step applies.</summary>
    public OutDecision Decision { get; }

    /// <summary>Features per channel on the axis (H·W after a flatten; 1 otherwise).</summary>
    public long BlockSize { get; }

    /// <summary>How new channels are filled, or null for the template's own init (read when the step is bound).</summary>
    public ChannelFill? Fill { get; }

    /// <inheritdoc/>
    public override string Op => SelectChannels.OpOf(Inputs ? "in.follow" : null, Inputs ? "in" : "out", Decision.MapKind,
        Decision.SourceCount == Decision.TargetCount, NewCount);

    /// <inheritdoc/>
    public override Introduced Introduces => NewCount > 0 ? Fill?.Introduces ?? Introduced.Template : Introduced.Nothing;

    /// <inheritdoc/>
    public override string Describe() => SelectChannels.DescribeOf(Inputs ? "in" : "out", Decision.MapKind, Decision.SourceCount * BlockSize,
        Decision.TargetCount * BlockSize, NewCount, Fill?.Name ?? ChannelFill.TemplateName, Inputs ? Layout.InAxis : Layout.OutAxis);

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input) => _twin.OutputShape(input);

    /// <summary>
    /// True when the bound step will have a managed twin: its map needs no ranking of the source's values (first-n or
    /// cyclic), and new channels, if any, are constants or the template's init rather than a random draw.
    /// </summary>
    public override bool HasTwin => Decision.MapKind is ChannelMapKind.First or ChannelMapKind.Cyclic && (NewCount == 0 || (Fill?.HasTwin ?? true));

    /// <summary>
    /// The step that runs: <paramref name="map"/> (the decision's map, as measured) applied with this step's fill, or
    /// with <paramref name="templateFill"/> when the fill is the template's init.
    /// </summary>
    /// <exception cref="ArgumentException">The map is not one of this decision (other counts or another kind).</exception>
    public WeightTransform Bind(ChannelMap map, Func<ChannelFill> templateFill)
    {
        ArgumentNullException.ThrowIfNull(map);
        ArgumentNullException.ThrowIfNull(templateFill);
        if (map.SourceCount != Decision.SourceCount || map.TargetCount != Decision.TargetCount || map.Kind != Decision.MapKind)
        {
            throw new ArgumentException($"The {map} map is not the planned {ChannelMap.Name(Decision.MapKind)} {Decision.SourceCount}→{Decision.TargetCount} decision of {Decision.Layer}.", nameof(map));
        }
        return Make(BlockSize == 1 ? map : map.ExpandBlocks(BlockSize), Fill ?? (NewCount > 0 ? templateFill() : ChannelFill.Zeros));
    }

    /// <summary>A planned step has no map yet: it runs once bound (<see cref="Bind"/>).</summary>
    protected override Tensor ApplyCore(Tensor input) =>
        throw new InvalidOperationException($"{Op}: a planned channel selection runs once its map is bound (PlannedChannels.Bind).");

    private long NewCount => Decision.MapKind == ChannelMapKind.First ? Math.Max(0, Decision.TargetCount - Decision.SourceCount) * BlockSize : 0;

    private WeightTransform Make(ChannelMap map, ChannelFill fill) => Inputs ? InChannels.Follow(Layout, map) : OutChannels.Apply(Layout, map, fill);
}
