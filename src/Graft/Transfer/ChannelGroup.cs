using Graft.Checkpoints;

namespace Graft.Transfer;

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
