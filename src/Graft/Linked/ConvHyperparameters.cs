using TorchSharp;

namespace Graft.Linked;

/// <summary>
/// Explicit convolution hyperparameters for a linked convolution. Every property left null is taken from the source
/// convolution, so the common case (same stride, padding and dilation as the layer it is linked to) needs nothing.
/// </summary>
/// <remarks>
/// Arrays have one entry per spatial dimension. A transposed convolution always uses zero padding mode (as in
/// TorchSharp and PyTorch) and cannot take <see cref="TorchSharp.Padding.Same"/>.
/// </remarks>
public sealed record ConvHyperparameters
{
    /// <summary>Stride per spatial dimension.</summary>
    public IReadOnlyList<long>? Stride { get; init; }

    /// <summary>Explicit padding per spatial dimension (clears a source's <c>same</c>/<c>valid</c> padding type).</summary>
    public IReadOnlyList<long>? Padding { get; init; }

    /// <summary>Padding by rule (<c>same</c> or <c>valid</c>) instead of explicit sizes; not for transposed convolutions.</summary>
    public Padding? PaddingType { get; init; }

    /// <summary>Dilation per spatial dimension.</summary>
    public IReadOnlyList<long>? Dilation { get; init; }

    /// <summary>Number of groups.</summary>
    public long? Groups { get; init; }

    /// <summary>How the input is padded: zeros, reflect, replicate or circular (not for transposed convolutions).</summary>
    public PaddingModes? PaddingMode { get; init; }

    /// <summary>Extra size added to one side of a transposed convolution's output, per spatial dimension.</summary>
    public IReadOnlyList<long>? OutputPadding { get; init; }
}
