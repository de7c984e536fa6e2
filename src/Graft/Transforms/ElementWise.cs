using Graft.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Transforms;

/// <summary>Element-wise functions, for linked layers (the seed question's square) and scaling.</summary>
public static class ElementWise
{
    /// <summary>The element-wise square.</summary>
    public static WeightTransform Square { get; } = Map(t => t.square(), "square", "square every element");

    /// <summary>Multiplies every element by a constant.</summary>
    public static WeightTransform Scale(double factor) =>
        Map(t => t * factor, "scale", FormattableString.Invariant($"multiply by {factor}"));

    /// <summary>
    /// Any shape-preserving differentiable function. The function must not change the shape (checked at apply time;
    /// use a custom <see cref="WeightTransform"/> for shape-changing functions).
    /// </summary>
    public static WeightTransform Map(Func<Tensor, Tensor> function, string name, string? description = null) =>
        new MapTransform(function, name, description ?? name);

    private sealed class MapTransform(Func<Tensor, Tensor> function, string name, string description) : WeightTransform
    {
        public override string Op => "map." + name;

        public override string Describe() => description;

        public override Shape OutputShape(Shape input) => input;

        protected override Tensor ApplyCore(Tensor input) => function(input);
    }
}
