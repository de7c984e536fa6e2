using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Transformers;

/// <summary>
/// HyperCloning's symmetric noise (Samragh et al. 2024): a widened linear layer reads k equal copies of each input, so
/// its k column blocks can carry noise that sums to zero, +N on one copy and −N on its twin (for k &gt; 2, independent
/// draws on the first k − 1 copies and minus their sum on the last). The layer's output is unchanged (to rounding:
/// each weight is rounded once more), but the copies are no longer identical, so they stop receiving identical
/// gradients. Each output row draws its own noise.
/// </summary>
public sealed class CancellingNoise : WeightTransform
{
    /// <summary>Creates the transform.</summary>
    /// <param name="axis">The input axis the copies lie along (1 for a linear weight's columns).</param>
    /// <param name="period">Elements per copy along the axis: copy m of element c sits at c + m·period.</param>
    /// <param name="copies">Copies along the axis (at least 2).</param>
    /// <param name="relativeStd">Noise std as a fraction of the weight's own std (positive, finite).</param>
    /// <param name="seed">Seed of the draws.</param>
    public CancellingNoise(int axis, long period, int copies, double relativeStd, long seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(axis);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(period);
        ArgumentOutOfRangeException.ThrowIfLessThan(copies, 2);
        if (!double.IsFinite(relativeStd) || relativeStd <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(relativeStd), relativeStd, "The noise level must be positive and finite.");
        }
        (Axis, Period, Copies, RelativeStd, Seed) = (axis, period, copies, relativeStd, seed);
    }

    /// <summary>The axis the copies lie along.</summary>
    public int Axis { get; }

    /// <summary>Elements per copy along <see cref="Axis"/>.</summary>
    public long Period { get; }

    /// <summary>Copies along <see cref="Axis"/>.</summary>
    public int Copies { get; }

    /// <summary>Noise std as a fraction of the weight's std.</summary>
    public double RelativeStd { get; }

    /// <summary>Seed of the draws.</summary>
    public long Seed { get; }

    /// <inheritdoc/>
    public override string Op => "noise.cancelling";

    /// <inheritdoc/>
    public override Introduced Introduces => Introduced.Random;

    /// <inheritdoc/>
    public override string Describe() => FormattableString.Invariant(
        $"symmetric noise (std {RelativeStd:g4} × the weight's std, seed {Seed}): {(Copies == 2 ? "+N on the first copy of each input, −N on its twin" : $"independent N on the first {Copies - 1} copies of each input, minus their sum on the last")} (axis {Axis}); the sum over the copies is unchanged, so the function is kept to rounding, but the copies are no longer exact");

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (Axis >= input.Rank || input[Axis] != Period * Copies)
        {
            throw new ArgumentException($"{Op}: input shape {input} does not have {Copies} copies of {Period} on axis {Axis}.");
        }
        return input;
    }

    /// <inheritdoc/>
    protected override Tensor ApplyCore(Tensor input)
    {
        using var scope = NewDisposeScope();
        double std = input.numel() > 1 ? input.detach().to(ScalarType.Float64).std().item<double>() : 0.0;
        var partShape = new Shape(input.shape).With(Axis, Period).ToArray();
        using var gen = new Generator(unchecked((ulong)Seed));
        var parts = new List<Tensor>(Copies);
        var sum = zeros(partShape, dtype: ScalarType.Float64);
        for (int m = 0; m < Copies - 1; m++)
        {
            var n = randn(partShape, dtype: ScalarType.Float64, generator: gen) * (RelativeStd * std);
            parts.Add(n);
            sum = sum + n;
        }
        parts.Add(-sum);
        var noise = cat(parts, Axis).to(input.dtype, input.device);
        return (input + noise).MoveToOuterDisposeScope();
    }
}
