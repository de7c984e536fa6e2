using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>
/// A layer that reads a group's channels on its input axis. After a flatten, each channel owns
/// <see cref="BlockSize"/> consecutive input features (H·W of the producer's output), so the decision is expanded
/// into blocks before it is applied.
/// </summary>
/// <param name="Layer">The consumer layer (its weight is <c>Layer.weight</c>).</param>
/// <param name="BlockSize">Input features per channel: 1 for a convolution or a Linear on channels, H·W after a flatten.</param>
public sealed record ChannelConsumer(string Layer, long BlockSize = 1)
{
    /// <inheritdoc/>
    public override string ToString() => BlockSize == 1 ? Layer : FormattableString.Invariant($"{Layer}×{BlockSize}");
}

/// <summary>
/// Channels that must be chosen together (Torch-Pruning's dependency group, Net2WiderNet's shared mapping). Every
/// producer's out axis takes one decision: a convolution or Linear weight (its norm contributes to a largest-norm
/// ranking), and any per-channel layer carrying the same channels (a BatchNorm's vectors, which simply follow).
/// Producers joined by a residual add sit in one group. Every consumer's in axis follows the decision.
/// </summary>
/// <param name="Producers">Layers whose outputs are these channels (convolutions, linears, BatchNorms).</param>
/// <param name="Consumers">Layers whose inputs are these channels.</param>
public sealed record ChannelGroup(IReadOnlyList<string> Producers, IReadOnlyList<ChannelConsumer> Consumers)
{
    /// <summary>A stable key naming the group in reports: its producers joined by <c>+</c>.</summary>
    public string Key => string.Join("+", Producers);

    /// <summary>
    /// Parses the CLI spelling <c>PRODUCER[,PRODUCER…]-&gt;CONSUMER[×BLOCK][,CONSUMER…]</c>, for example
    /// <c>layer1.conv,layer1.bn,layer2.conv-&gt;head×16</c> (<c>x</c> may stand for <c>×</c>).
    /// </summary>
    /// <exception cref="InvalidInputException">The text has no producer or no single <c>-&gt;</c>.</exception>
    public static ChannelGroup Parse(string text)
    {
        ArgumentException.ThrowIfNullOrEmpty(text);
        var parts = text.Split("->", StringSplitOptions.TrimEntries);
        if (parts.Length != 2 || parts[0].Length == 0)
        {
            throw new InvalidInputException($"Channel group '{text}' must read PRODUCER[,PRODUCER…]->CONSUMER[xBLOCK][,CONSUMER…].");
        }
        var producers = parts[0].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var consumers = parts[1].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(c =>
        {
            int x = c.LastIndexOfAny(['×', 'x']);
            if (x > 0 && long.TryParse(c[(x + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var block) && block >= 1)
            {
                return new ChannelConsumer(c[..x], block);
            }
            return new ChannelConsumer(c);
        }).ToList();
        return new ChannelGroup(producers, consumers);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Key} -> {string.Join(",", Consumers)}";
}

/// <summary>
/// What is known about channel dependencies in a target network: the groups, and the layers whose dependencies are
/// unknown (with the reason), which fall back to first-n so that nothing inconsistent is produced silently.
/// </summary>
/// <param name="Groups">Known groups.</param>
/// <param name="Unknown">Layers (producers) whose channels reach something that could not be traced, with why.</param>
/// <param name="Origin">Where the groups came from, for the report.</param>
public sealed record ChannelGroups(IReadOnlyList<ChannelGroup> Groups, IReadOnlyDictionary<string, string> Unknown, ChannelGroupOrigin Origin)
{
    /// <summary>No dependency information at all.</summary>
    public static ChannelGroups None { get; } = new([], new Dictionary<string, string>(), ChannelGroupOrigin.None);

    /// <summary>Groups declared by a user (CLI <c>--group</c>, or code).</summary>
    public static ChannelGroups Declared(IEnumerable<ChannelGroup> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        return new ChannelGroups(groups.ToList(), new Dictionary<string, string>(), ChannelGroupOrigin.Declared);
    }
}
