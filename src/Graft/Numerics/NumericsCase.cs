using System.Text.Json.Serialization;

namespace Graft.Numerics;

/// <summary>One self-check case: how far libtorch's float32 results are from a float64 reference, relative to the reference's largest magnitude.</summary>
/// <param name="Name">Short name (<c>conv2d</c>, <c>conv2d-strided-grouped</c>, <c>conv-transpose2d</c>).</param>
/// <param name="Description">Shapes and hyperparameters, for a bug report.</param>
/// <param name="Forward">Relative error of the output.</param>
/// <param name="InputGradient">Relative error of the gradient with respect to the input.</param>
/// <param name="WeightGradient">Relative error of the gradient with respect to the weight.</param>
public sealed record NumericsCase(string Name, string Description,
    [property: JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)] double Forward,
    [property: JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)] double InputGradient,
    [property: JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)] double WeightGradient)
{
    /// <summary>The largest of the three errors; NaN when any is NaN (a kernel that returned NaN).</summary>
    [JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)]
    public double Worst => double.IsNaN(Forward) || double.IsNaN(InputGradient) || double.IsNaN(WeightGradient)
        ? double.NaN
        : Math.Max(Forward, Math.Max(InputGradient, WeightGradient));

    /// <summary>True when every error is a number at most <paramref name="tolerance"/> (NaN and infinity fail).</summary>
    public bool Within(double tolerance) => Forward <= tolerance && InputGradient <= tolerance && WeightGradient <= tolerance;

    /// <summary>Which of forward, input gradient and weight gradient failed, e.g. <c>forward 0.33, input gradient NaN</c>.</summary>
    public string Failures(double tolerance)
    {
        var parts = new List<string>(3);
        if (!(Forward <= tolerance))
        {
            parts.Add($"forward {NumericsCheck.Format(Forward)}");
        }
        if (!(InputGradient <= tolerance))
        {
            parts.Add($"input gradient {NumericsCheck.Format(InputGradient)}");
        }
        if (!(WeightGradient <= tolerance))
        {
            parts.Add($"weight gradient {NumericsCheck.Format(WeightGradient)}");
        }
        return string.Join(", ", parts);
    }
}
