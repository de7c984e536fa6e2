using System.Globalization;

namespace Graft.Transformers;

/// <summary>
/// What <see cref="LogitCheck"/> measured: the source's and the output's logits on the same seeded token sequences
/// (float64, <see cref="DecoderForward"/>), compared over the tokens both vocabularies have; or why it was not measured.
/// </summary>
public sealed record LogitCheckResult
{
    /// <summary>True when the logits were computed and compared.</summary>
    public required bool Measured { get; init; }

    /// <summary>Why not, when <see cref="Measured"/> is false (a model too large, the plan changes the function, <c>never</c>).</summary>
    public string? NotMeasuredReason { get; init; }

    /// <summary>True when the plan claims the function is kept: then a difference over <see cref="Tolerance"/> fails the transfer.</summary>
    public bool Claimed { get; init; }

    /// <summary>Token sequences compared (seeded, the same for both models).</summary>
    public int Sequences { get; init; }

    /// <summary>Tokens per sequence.</summary>
    public int TokensPerSequence { get; init; }

    /// <summary>The largest |output logit − source logit|, over every position and every token of both vocabularies.</summary>
    public double MaxAbsDifference { get; init; }

    /// <summary>The largest |source logit| over the same entries: the scale of <see cref="Relative"/>.</summary>
    public double MaxAbsLogit { get; init; }

    /// <summary><see cref="MaxAbsDifference"/> / <see cref="MaxAbsLogit"/>.</summary>
    public double Relative { get; init; }

    /// <summary>The most <see cref="Relative"/> may be where the function is claimed: 64 unit roundoffs of the coarsest dtype in which the transfer rounds a value (at least float32's); for <c>LogitCheck.Measure</c> on two files, of either checkpoint's coarsest floating dtype.</summary>
    public double Tolerance { get; init; }

    /// <summary>True when measured and within <see cref="Tolerance"/> (or not claimed); false when measured and over it.</summary>
    public bool Passed => !Measured || !Claimed || Relative <= Tolerance;

    /// <summary>One line for people (the report's text form).</summary>
    public string Describe() => Measured
        ? string.Create(CultureInfo.InvariantCulture,
            $"measured on {Sequences} sequences of {TokensPerSequence} tokens: largest |Δlogit| {MaxAbsDifference:g3} = {Relative:g3} of the largest |logit| {MaxAbsLogit:g3}") +
          (!Claimed ? " (the plan does not claim the function is kept)"
            : Relative <= Tolerance ? string.Create(CultureInfo.InvariantCulture, $", within the tolerance {Tolerance:g3}: the function is kept")
            : string.Create(CultureInfo.InvariantCulture, $", over the tolerance {Tolerance:g3}: the function is NOT kept"))
        : $"not measured: {NotMeasuredReason}";
}
