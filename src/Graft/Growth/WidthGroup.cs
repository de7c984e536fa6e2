using Graft.Transfer;

namespace Graft.Growth;

/// <summary>
/// Layers that share one channel axis and so must share one channel decision: the producers (Conv/Linear layers whose
/// outputs are the channels; several when a residual addition joins them), the normalisations applied to those
/// channels and other layers that act on each channel alone (depthwise convolutions), and the consumers that read them. Net2WiderNet is only function-preserving when every member of the group
/// follows the same map; the group is how a caller says which layers those are, since a state dict alone cannot tell.
/// </summary>
/// <param name="Producers">State-dict prefixes of the producing layers (weight and optional bias).</param>
/// <param name="Channelwise">State-dict prefixes of layers that act on each of these channels alone: BatchNorm, and
/// depthwise convolutions (groups = channels, weight <c>(C, 1, k…)</c>), whose groups grow with the width. They follow
/// the map on their out axis (a copied channel keeps its filter and statistics) and are never divided.</param>
/// <param name="Consumers">Layers reading these channels.</param>
public sealed record WidthGroup(IReadOnlyList<string> Producers, IReadOnlyList<string> Channelwise, IReadOnlyList<ChannelConsumer> Consumers)
{
    /// <summary>A group of one producer, optionally a norm, and its consumers: the common case.</summary>
    public static WidthGroup Of(string producer, string? norm, params ChannelConsumer[] consumers) =>
        new([producer], norm is null ? [] : [norm], consumers);

    /// <inheritdoc/>
    public override string ToString() =>
        $"[{string.Join(", ", Producers)}] → [{string.Join(", ", Channelwise)}] → [{string.Join(", ", Consumers.Select(c => c.BlockSize == 1 ? c.Layer : $"{c.Layer} (blocks of {c.BlockSize})"))}]";
}
