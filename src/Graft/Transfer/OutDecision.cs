using System.Text.Json;
using System.Text.Json.Serialization;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>A source weight whose channel norms take part in a largest-norm ranking.</summary>
/// <param name="Name">Source tensor name.</param>
/// <param name="Layout">Its layout.</param>
public sealed record NormWeight(string Name, Layout Layout);

/// <summary>
/// The out-channel decision of one layer: every tensor of the layer (weight, bias, BatchNorm vectors) applies the same
/// map to its out axis.
/// </summary>
/// <param name="Layer">The layer (name prefix) the decision belongs to.</param>
/// <param name="Shrink">How to choose survivors when shrinking.</param>
/// <param name="NewChannels">How to fill new channels.</param>
/// <param name="SourceCount">Source out-axis size.</param>
/// <param name="TargetCount">Target out-axis size.</param>
/// <param name="Groups">Groups for grouped convolutions (first-n per group).</param>
public sealed record OutDecision(string Layer, OutShrinkRule Shrink, NewChannelRule NewChannels, long SourceCount, long TargetCount, int Groups)
{
    /// <summary>
    /// The channel dependency group sharing this decision (its key), or null for a decision of one layer. Producers
    /// joined by a residual add must choose the same channels, so the group is what is cached and ranked. (Not
    /// <see cref="Groups"/>, a grouped convolution's group count.)
    /// </summary>
    [JsonPropertyName("group")]
    public string? DependencyGroup { get; init; }

    /// <summary>
    /// For a largest-norm decision: the source weights whose channel scores rank the channels, summed (one for a
    /// single layer, every producer for a group joined by residual adds).
    /// </summary>
    public IReadOnlyList<NormWeight> NormSources { get; init; } = [];

    /// <summary>
    /// How the decision's channel map is made: cyclic copies when growing by copies, a largest-norm ranking when
    /// shrinking by norm (the one kind whose indices need the source's values), else the first channels.
    /// </summary>
    [JsonIgnore]
    public ChannelMapKind MapKind =>
        TargetCount > SourceCount && NewChannels == NewChannelRule.Copies ? ChannelMapKind.Cyclic
        : Shrink != OutShrinkRule.First && NormSources.Count > 0 ? (Shrink == OutShrinkRule.LargestL1 ? ChannelMapKind.LargestL1 : ChannelMapKind.LargestL2)
        : ChannelMapKind.First;
}
