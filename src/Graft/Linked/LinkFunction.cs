using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Linked;

/// <summary>A Graft transform followed by a free function; either may be absent (then the tensor passes unchanged).</summary>
internal sealed class LinkFunction(WeightTransform? transform, Func<Tensor, Tensor>? function)
{
    public WeightTransform? Transform { get; } = transform;

    public Func<Tensor, Tensor>? Function { get; } = function;

    public Tensor Apply(Tensor source)
    {
        var t = Transform is null ? source : Transform.Apply(source);
        return Function is null ? t : Function(t);
    }

    public override string ToString() => Describe(Transform, Function);

    public static string Describe(WeightTransform? transform, Func<Tensor, Tensor>? function) => (transform, function) switch
    {
        (null, null) => "identity",
        (not null, null) => transform.Describe(),
        (null, not null) => "a function",
        _ => transform!.Describe() + "; then a function",
    };
}
