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

/// <summary>How the new channels of a widened layer start.</summary>
public enum WidenMethod
{
    /// <summary>
    /// Net2WiderNet: new channels copy randomly chosen existing ones and the consumers divide each copy's inputs by the
    /// number of copies, so the sum is unchanged. New units start useful but symmetric (see <see cref="WidenOptions.Noise"/>).
    /// </summary>
    Net2Wider,
    /// <summary>
    /// New channels get fresh incoming weights and zero outgoing weights: they start silent, the old channels are
    /// untouched, and training brings them in (their outgoing weights receive gradient at once).
    /// </summary>
    ZeroOutgoing,
}

/// <summary>Where the incoming weights of new channels come from under <see cref="WidenMethod.ZeroOutgoing"/>.</summary>
public enum NewUnitInit
{
    /// <summary>The target module's own initialisation (BatchNorm vectors always come from it).</summary>
    Template,
    /// <summary>Kaiming-normal (fan_out, ReLU), deterministic for <see cref="WidenOptions.Seed"/>; new biases zero.</summary>
    KaimingNormal,
}

/// <summary>Options of a widening.</summary>
public sealed record WidenOptions
{
    /// <summary>The default: Net2WiderNet without noise (exact).</summary>
    public static WidenOptions Default { get; } = new();

    /// <summary>How new channels start.</summary>
    public WidenMethod Method { get; init; } = WidenMethod.Net2Wider;

    /// <summary>
    /// Net2WiderNet only: std of Gaussian noise added to the copied out-filters, relative to each weight's std. Breaks
    /// the symmetry between a channel and its copies; the plan then reports that the function is no longer kept exactly.
    /// </summary>
    public double Noise { get; init; }

    /// <summary>Seed of the random mapping, the noise and Kaiming draws.</summary>
    public long Seed { get; init; }

    /// <summary>Incoming weights of new channels under <see cref="WidenMethod.ZeroOutgoing"/>.</summary>
    public NewUnitInit NewUnits { get; init; } = NewUnitInit.Template;
}
