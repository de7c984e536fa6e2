using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft.Transforms;

/// <summary>
/// Multiplies slice j along one axis by factor j. The rescaling half of Net2WiderNet's consumer rule, kept apart so that
/// the factors show in a report and the transform stays differentiable (a linked layer can share replicated inputs).
/// </summary>
public sealed class ScaleSlices : WeightTransform
{
    private readonly double[] _factors;
    private readonly string _op;
    private readonly string _description;

    /// <summary>Creates the transform; <paramref name="op"/> and <paramref name="description"/> name it in reports.</summary>
    public ScaleSlices(int axis, IReadOnlyList<double> factors, string op = "scale-slices", string? description = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(axis);
        ArgumentNullException.ThrowIfNull(factors);
        ArgumentException.ThrowIfNullOrEmpty(op);
        Axis = axis;
        _factors = factors.ToArray();
        _op = op;
        _description = description ?? $"scale each of the {_factors.Length} slices of axis {axis} by its own factor";
    }

    /// <summary>The axis whose slices are scaled.</summary>
    public int Axis { get; }

    /// <summary>One factor per slice.</summary>
    public IReadOnlyList<double> Factors => _factors;

    /// <inheritdoc/>
    public override string Op => _op;

    /// <inheritdoc/>
    public override string Describe() => $"{_description} (axis {Axis})";

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (Axis >= input.Rank || input[Axis] != _factors.Length)
        {
            throw new ArgumentException($"{Op}: input shape {input} does not have {_factors.Length} slices on axis {Axis}.");
        }
        return input;
    }

    /// <inheritdoc/>
    protected override Tensor ApplyCore(Tensor input)
    {
        var shape = Enumerable.Repeat(1L, (int)input.dim()).ToArray();
        shape[Axis] = _factors.Length;
        using var f = tensor(_factors, dtype: ScalarType.Float64, device: input.device);
        using var scale = f.to(input.dtype).reshape(shape);
        return input * scale;
    }
}
