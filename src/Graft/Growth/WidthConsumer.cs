namespace Graft.Growth;

/// <summary>
/// A layer that reads a width group's channels on its input axis. <see cref="BlockSize"/> is 1 when it reads them
/// directly or through global pooling, and H·W when it reads them through a flatten (each channel then owns H·W
/// consecutive features).
/// </summary>
/// <param name="Layer">The layer's state-dict prefix, for example <c>fc</c> or <c>layer1.0.conv1</c>.</param>
/// <param name="BlockSize">Consecutive input features per channel.</param>
public sealed record WidthConsumer(string Layer, long BlockSize = 1)
{
    /// <summary>A consumer reading the channels directly (a convolution) or through global pooling.</summary>
    public static implicit operator WidthConsumer(string layer) => new(layer);

    /// <summary>Named alternative to the implicit conversion from a layer name.</summary>
    public static WidthConsumer FromString(string layer) => new(layer);
}
