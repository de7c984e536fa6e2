using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Linked;

/// <summary>
/// The module a linked layer reads its weight and bias from: a stock TorchSharp convolution or Linear, or another
/// linked layer (links chain). Converts implicitly from those types, so factories are typed without one overload per
/// source kind.
/// </summary>
public sealed class LinkSource
{
    private LinkSource(nn.Module module) => Module = module;

    /// <summary>The source module (held by the linked layer, never registered as its submodule).</summary>
    public nn.Module Module { get; }

    /// <summary>A convolution (Conv1d/2d/3d or ConvTranspose1d/2d/3d) as a source.</summary>
    public static LinkSource FromConvolution(Convolution convolution)
    {
        ArgumentNullException.ThrowIfNull(convolution);
        return new(convolution);
    }

    /// <summary>A Linear layer as a source.</summary>
    public static LinkSource FromLinear(Linear linear)
    {
        ArgumentNullException.ThrowIfNull(linear);
        return new(linear);
    }

    /// <summary>Another linked layer as a source: its derived weight and bias are this link's input.</summary>
    public static LinkSource FromLinked(LinkedLayer linked)
    {
        ArgumentNullException.ThrowIfNull(linked);
        return new(linked);
    }

    /// <summary>Same as <see cref="FromConvolution"/>.</summary>
    public static implicit operator LinkSource(Convolution convolution) => FromConvolution(convolution);

    /// <summary>Same as <see cref="FromLinear"/>.</summary>
    public static implicit operator LinkSource(Linear linear) => FromLinear(linear);

    /// <summary>Same as <see cref="FromLinked"/>.</summary>
    public static implicit operator LinkSource(LinkedLayer linked) => FromLinked(linked);

    /// <summary>The source's current weight. Read through the module at every call: <c>.to()</c> may replace Parameter objects.</summary>
    internal static Tensor Weight(nn.Module module) => module switch
    {
        Convolution c => c.weight,
        Linear l => l.weight,
        LinkedLayer k => k.DerivedWeight(),
        _ => throw new ArgumentException($"{module.GetType().Name} cannot be a link source."),
    };

    /// <summary>The source's current bias, or null.</summary>
    internal static Tensor? Bias(nn.Module module) => module switch
    {
        Convolution c => c.bias,
        Linear l => l.bias,
        LinkedLayer k => k.DerivedBias(),
        _ => throw new ArgumentException($"{module.GetType().Name} cannot be a link source."),
    };

    /// <summary>True when the source has a bias.</summary>
    internal static bool HasBias(nn.Module module) => module switch
    {
        Convolution c => c.bias is not null,
        Linear l => l.bias is not null,
        LinkedLayer k => k.HasBias,
        _ => false,
    };

    /// <summary>A short name for messages: <c>Conv2d</c>, <c>Linear</c>, <c>linked Conv2d</c>.</summary>
    internal static string Describe(nn.Module module) => module switch
    {
        LinkedLayer k => "linked " + k.LayerName,
        _ => module.GetType().Name,
    };
}
