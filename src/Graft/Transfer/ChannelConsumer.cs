using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>
/// A layer that reads a group's channels on its input axis: of a transfer's channel group, of a growth's width group.
/// After a flatten, each channel owns <see cref="BlockSize"/> consecutive input features (H·W of the producer's
/// output), so the decision is expanded into blocks before it is applied.
/// </summary>
/// <param name="Layer">The consumer layer (its weight is <c>Layer.weight</c>).</param>
/// <param name="BlockSize">Input features per channel: 1 for a convolution or a Linear on channels, H·W after a flatten.</param>
public sealed record ChannelConsumer(string Layer, long BlockSize = 1)
{
    /// <summary>A consumer reading the channels directly (a convolution) or through global pooling.</summary>
    public static implicit operator ChannelConsumer(string layer) => new(layer);

    /// <summary>Named alternative to the implicit conversion from a layer name.</summary>
    public static ChannelConsumer FromString(string layer) => new(layer);

    /// <inheritdoc/>
    public override string ToString() => BlockSize == 1 ? Layer : FormattableString.Invariant($"{Layer}×{BlockSize}");
}
