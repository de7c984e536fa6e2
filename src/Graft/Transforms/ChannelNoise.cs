using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft.Transforms;

/// <summary>
/// Adds Gaussian noise to chosen slices along one axis, with a standard deviation relative to the input's own: the
/// symmetry breaking Net2WiderNet suggests for replicated units, which otherwise receive identical gradients. The
/// network's function is no longer kept exactly, which <see cref="Introduces"/> reports.
/// </summary>
public sealed class ChannelNoise : WeightTransform
{
    private readonly long[] _positions;

    /// <summary>
    /// Noise on slices <paramref name="positions"/> of <paramref name="axis"/>, std = <paramref name="relativeStd"/> ×
    /// std of the whole input (so it scales with the layer). Deterministic for a seed.
    /// </summary>
    public ChannelNoise(int axis, IEnumerable<long> positions, double relativeStd, long seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(axis);
        ArgumentNullException.ThrowIfNull(positions);
        ArgumentOutOfRangeException.ThrowIfNegative(relativeStd);
        if (!double.IsFinite(relativeStd))
        {
            throw new ArgumentOutOfRangeException(nameof(relativeStd), "The noise level must be finite.");
        }
        Axis = axis;
        _positions = positions.ToArray();
        RelativeStd = relativeStd;
        Seed = seed;
    }

    /// <summary>The axis whose slices get noise.</summary>
    public int Axis { get; }

    /// <summary>The slices that get noise.</summary>
    public IReadOnlyList<long> Positions => _positions;

    /// <summary>Noise std as a fraction of the input's std.</summary>
    public double RelativeStd { get; }

    /// <summary>Seed of the noise.</summary>
    public long Seed { get; }

    /// <inheritdoc/>
    public override string Op => "noise";

    /// <inheritdoc/>
    public override Introduced Introduces => _positions.Length > 0 && RelativeStd > 0 ? Introduced.Random : Introduced.Nothing;

    /// <inheritdoc/>
    public override string Describe() =>
        FormattableString.Invariant($"add Gaussian noise (std {RelativeStd:g4} × the weight's std, seed {Seed}) to {_positions.Length} slices of axis {Axis}; the function is no longer kept exactly");

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (Axis >= input.Rank)
        {
            throw new ArgumentException($"{Op}: input shape {input} has no axis {Axis}.");
        }
        if (_positions.Any(p => p < 0 || p >= input[Axis]))
        {
            throw new ArgumentException($"{Op}: input shape {input} has {input[Axis]} slices on axis {Axis}; noise positions reach outside.");
        }
        return input;
    }

    /// <inheritdoc/>
    protected override Tensor ApplyCore(Tensor input)
    {
        if (Introduces == Introduced.Nothing)
        {
            return input.alias();
        }
        using var scope = NewDisposeScope();
        var std = input.numel() > 1 ? input.detach().to(ScalarType.Float64).std().item<double>() : 0.0;
        var sliceShape = new Shape(input.shape).With(Axis, _positions.Length).ToArray();
        using var gen = new Generator(unchecked((ulong)Seed));
        var draw = randn(sliceShape, dtype: ScalarType.Float64, generator: gen) * (RelativeStd * std);
        var mask = zeros(new Shape(input.shape).ToArray(), dtype: ScalarType.Float64);
        var idx = tensor(_positions);
        mask = mask.index_add(Axis, idx, draw, 1.0);
        return (input + mask.to(input.dtype, input.device)).MoveToOuterDisposeScope();
    }
}
