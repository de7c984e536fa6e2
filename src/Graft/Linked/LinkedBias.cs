using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Linked;

/// <summary>What a linked layer uses as its bias.</summary>
public enum LinkedBiasKind
{
    /// <summary>The source's bias tensor itself: one parameter, used by both layers.</summary>
    Shared,
    /// <summary>A differentiable function of the source's bias (for example copies when the output count grows).</summary>
    Derived,
    /// <summary>No bias.</summary>
    None,
}

/// <summary>
/// The bias choice of a linked layer. A linked layer owns no parameters, so its bias can only be the source's bias,
/// a function of it, or absent; a bias of its own would be a parameter the model did not ask for.
/// </summary>
public sealed class LinkedBias
{
    private LinkedBias(LinkedBiasKind kind, WeightTransform? transform, Func<Tensor, Tensor>? function)
    {
        Kind = kind;
        Transform = transform;
        Function = function;
    }

    /// <summary>Which of the three choices this is.</summary>
    public LinkedBiasKind Kind { get; }

    /// <summary>For <see cref="LinkedBiasKind.Derived"/>: the Graft transform applied first, or null.</summary>
    public WeightTransform? Transform { get; }

    /// <summary>For <see cref="LinkedBiasKind.Derived"/>: the function applied after the transform, or null.</summary>
    public Func<Tensor, Tensor>? Function { get; }

    /// <summary>
    /// Use the source's bias as is. Refused at construction when the source has no bias or when its size is not the
    /// linked layer's output count.
    /// </summary>
    public static LinkedBias Shared { get; } = new(LinkedBiasKind.Shared, null, null);

    /// <summary>The linked layer has no bias.</summary>
    public static LinkedBias None { get; } = new(LinkedBiasKind.None, null, null);

    /// <summary>
    /// The bias is <paramref name="function"/>(<paramref name="transform"/>(source bias)), recomputed at every forward
    /// pass so gradients reach the source's bias. Either may be null (both null is the same as <see cref="Shared"/>
    /// but still recomputed). The function must be differentiable and must not modify its input in place.
    /// </summary>
    public static LinkedBias Derived(WeightTransform? transform = null, Func<Tensor, Tensor>? function = null) =>
        new(LinkedBiasKind.Derived, transform, function);

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        LinkedBiasKind.Derived => "derived: " + LinkFunction.Describe(Transform, Function),
        _ => Kind.ToString().ToLowerInvariant(),
    };
}
