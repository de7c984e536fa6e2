using System.Numerics;
using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft.Transforms;

/// <summary>What a transform puts into its output besides values derived from its input.</summary>
public enum Introduced
{
    /// <summary>Every output value is a function of the input.</summary>
    Nothing,
    /// <summary>Some output values are zeros (function-preserving where the design says so, e.g. new inputs).</summary>
    Zeros,
    /// <summary>Some output values come from the target's own initialisation (the template).</summary>
    Template,
    /// <summary>Some or all output values are freshly drawn at random.</summary>
    Random,
    /// <summary>Some output values are constants other than zero (identity BatchNorm statistics, for example).</summary>
    Constants,
}

/// <summary>
/// A differentiable function from a source weight tensor to a target weight tensor, with a known input and output
/// shape. Transfer evaluates it once under no-grad; a linked layer evaluates it at every forward pass so gradients
/// reach the source; growth picks transforms that keep the network's function. One vocabulary for all three.
/// </summary>
/// <remarks>
/// Implementations are immutable and stateless across calls, compute in the input's dtype (callers that want
/// float32 arithmetic, as transfer does, convert first), and never modify their input in place.
/// </remarks>
public abstract class WeightTransform
{
    /// <summary>Stable machine-readable name used in reports and JSON, for example <c>in.repeat-rescale</c>.</summary>
    public abstract string Op { get; }

    /// <summary>One line for a person: what this transform does with which sizes.</summary>
    public abstract string Describe();

    /// <summary>What the output holds besides values derived from the input.</summary>
    public virtual Introduced Introduces => Introduced.Nothing;

    /// <summary>
    /// The shape <see cref="Apply"/> returns for an input of <paramref name="input"/>; throws
    /// <see cref="ArgumentException"/> naming both shapes when the input is not one this transform accepts.
    /// Lets a whole plan be checked before any data moves.
    /// </summary>
    public abstract Shape OutputShape(Shape input);

    /// <summary>Computes the target tensor. Differentiable with respect to <paramref name="input"/>.</summary>
    public Tensor Apply(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var expected = OutputShape(new Shape(input.shape));
        var output = ApplyCore(input);
        if (!expected.SequenceEqual(output.shape))
        {
            throw new InvalidOperationException($"{Op} promised shape {expected} for input {new Shape(input.shape)} but produced {new Shape(output.shape)}.");
        }
        return output;
    }

    /// <summary>The computation proper; the shape has been checked against <see cref="OutputShape"/>.</summary>
    protected abstract Tensor ApplyCore(Tensor input);

    /// <summary>
    /// True when this transform carries a managed twin: the same function computed on spans with
    /// System.Numerics.Tensors, without libtorch, for the file-to-file path where no gradient is needed. A transfer whose
    /// computed tensors all have twins never loads libtorch. <see cref="Apply"/> stays the definition; a property test
    /// holds each twin to it (bit-exact for data movement, scaling and casts; channel sums within the bound stated on
    /// <see cref="InChannels.Sum"/>).
    /// </summary>
    public virtual bool HasTwin => false;

    /// <summary>
    /// The twin of <see cref="Apply"/>: the row-major <paramref name="input"/> of <paramref name="shape"/> in, the
    /// row-major output of <see cref="OutputShape"/> out, computed in <typeparamref name="T"/> (float or double, the
    /// dtypes transfer computes in).
    /// </summary>
    /// <exception cref="NotSupportedException">The transform has no twin (<see cref="HasTwin"/> is false).</exception>
    public T[] ApplyTwin<T>(ReadOnlySpan<T> input, Shape shape) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (!HasTwin)
        {
            throw new NotSupportedException($"{Op} has no managed twin; it runs on libtorch.");
        }
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
        {
            throw new NotSupportedException($"Twins compute in float32 or float64, not {typeof(T).Name}.");
        }
        if (input.Length != shape.ElementCount)
        {
            throw new ArgumentException($"{Op}: {input.Length} values do not fill shape {shape}.", nameof(input));
        }
        var expected = OutputShape(shape);
        var output = ApplyTwinCore(input, shape);
        if (output.Length != expected.ElementCount)
        {
            throw new InvalidOperationException($"{Op}'s twin produced {output.Length} values for shape {expected}.");
        }
        return output;
    }

    /// <summary>The twin's computation proper; the input's length and shape have been checked.</summary>
    protected virtual T[] ApplyTwinCore<T>(ReadOnlySpan<T> input, Shape shape) where T : unmanaged, IFloatingPointIeee754<T> =>
        throw new NotSupportedException($"{Op} has no managed twin.");

    /// <summary>
    /// This transform as pure data movement on an input of <paramref name="input"/> (an index map along one axis and a
    /// uniform factor), or null when it is not one. Lets the executor compose a chain of such steps into one gather and
    /// stream the output in the stored dtype (<see cref="GatherChain"/>); the value of every element must be exactly
    /// what <see cref="ApplyTwin{T}"/> gives.
    /// </summary>
    internal virtual AxisGather? AsGather(Shape input) => null;

    /// <summary>This transform followed by <paramref name="next"/>.</summary>
    public WeightTransform Then(WeightTransform next) => Chain.Of(this, next);

    /// <inheritdoc/>
    public override string ToString() => Describe();

    /// <summary>The transform that returns its input unchanged.</summary>
    public static WeightTransform Identity { get; } = new IdentityTransform();

    private sealed class IdentityTransform : WeightTransform
    {
        public override string Op => "identity";

        public override string Describe() => "identity";

        public override Shape OutputShape(Shape input) => input;

        protected override Tensor ApplyCore(Tensor input) => input.alias();

        public override bool HasTwin => true;

        protected override T[] ApplyTwinCore<T>(ReadOnlySpan<T> input, Shape shape) => input.ToArray();
    }
}

/// <summary>Transforms applied one after the other; the unit a plan records for one tensor.</summary>
public sealed class Chain : WeightTransform
{
    private Chain(IReadOnlyList<WeightTransform> steps) => Steps = steps;

    /// <summary>The steps in order (never nested chains, never identities).</summary>
    public IReadOnlyList<WeightTransform> Steps { get; }

    /// <summary>The steps of any transform: a chain's steps, nothing for the identity, else the transform itself.</summary>
    public static IReadOnlyList<WeightTransform> StepsOf(WeightTransform transform)
    {
        ArgumentNullException.ThrowIfNull(transform);
        return transform is Chain c ? c.Steps : ReferenceEquals(transform, Identity) ? [] : [transform];
    }

    /// <summary>Composes transforms, flattening nested chains and dropping identities.</summary>
    public static WeightTransform Of(params IEnumerable<WeightTransform> steps)
    {
        var flat = new List<WeightTransform>();
        foreach (var s in steps)
        {
            ArgumentNullException.ThrowIfNull(s);
            if (s is Chain c)
            {
                flat.AddRange(c.Steps);
            }
            else if (!ReferenceEquals(s, Identity))
            {
                flat.Add(s);
            }
        }
        return flat.Count switch
        {
            0 => Identity,
            1 => flat[0],
            _ => new Chain(flat),
        };
    }

    /// <inheritdoc/>
    public override string Op => string.Join("+", Steps.Select(s => s.Op));

    /// <inheritdoc/>
    public override Introduced Introduces => Steps.Select(s => s.Introduces).DefaultIfEmpty(Introduced.Nothing).Max();

    /// <inheritdoc/>
    public override string Describe() => string.Join("; then ", Steps.Select(s => s.Describe()));

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        var s = input;
        foreach (var step in Steps)
        {
            s = step.OutputShape(s);
        }
        return s;
    }

    /// <inheritdoc/>
    protected override Tensor ApplyCore(Tensor input)
    {
        var t = input;
        foreach (var step in Steps)
        {
            t = step.Apply(t);
        }
        return t;
    }

    /// <summary>True when every step has a twin.</summary>
    public override bool HasTwin => Steps.All(s => s.HasTwin);

    /// <inheritdoc/>
    protected override T[] ApplyTwinCore<T>(ReadOnlySpan<T> input, Shape shape)
    {
        T[]? values = null;
        foreach (var step in Steps)
        {
            values = step.ApplyTwin<T>(values ?? input, shape);
            shape = step.OutputShape(shape);
        }
        return values ?? input.ToArray();
    }
}
