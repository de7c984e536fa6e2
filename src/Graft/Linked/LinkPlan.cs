using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft.Linked;

/// <summary>
/// A link that passed every check: built before the module so a refused link leaves no half-built module behind
/// (a TorchSharp module owns a native handle from its first line).
/// </summary>
internal sealed record LinkPlan(nn.Module Source, LinkFunction Weight, LinkedBias Bias, Shape WeightShape)
{
    /// <summary>
    /// Checks a link with one dry run of the functions on the source's current tensors (no gradient recorded, every
    /// temporary freed): the derived weight and bias must have the expected shapes and the source weight's dtype and
    /// device, and a bias can only be shared or derived when the source has one.
    /// </summary>
    public static LinkPlan Check(string layer, nn.Module source, LinkFunction weight, LinkedBias bias, Shape expectedWeight, Shape expectedBias, Action<nn.Module>? extraCheck = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        extraCheck?.Invoke(source);
        var what = $"Linked {layer} from {LinkSource.Describe(source)}";
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();

        var sourceWeight = LinkSource.Weight(source);
        var sourceShape = new Shape(sourceWeight.shape);
        if (weight.Transform is { } transform)
        {
            try
            {
                transform.OutputShape(sourceShape);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"{what}: the weight transform ({transform.Op}) does not accept the source weight {sourceShape}: {e.Message}", nameof(weight), e);
            }
        }
        var derived = DryRun(what, "weight", weight, sourceWeight);
        CheckResult(what, "weight", derived, expectedWeight, sourceWeight, sourceShape);

        var hasBias = LinkSource.HasBias(source);
        switch (bias.Kind)
        {
            case LinkedBiasKind.Shared:
            case LinkedBiasKind.Derived:
                if (!hasBias)
                {
                    throw new ArgumentException($"{what}: a {bias.Kind.ToString().ToLowerInvariant()} bias was asked for, but the source has no bias. Use LinkedBias.None.", nameof(bias));
                }
                var sourceBias = LinkSource.Bias(source)!;
                var b = bias.Kind == LinkedBiasKind.Shared ? sourceBias : DryRun(what, "bias", new LinkFunction(bias.Transform, bias.Function), sourceBias);
                if (bias.Kind == LinkedBiasKind.Shared && !expectedBias.SequenceEqual(b.shape))
                {
                    throw new ArgumentException($"{what}: the source bias has shape {new Shape(b.shape)}, but this layer needs a bias of shape {expectedBias}. Use LinkedBias.Derived(...) to adapt it, or LinkedBias.None.", nameof(bias));
                }
                CheckResult(what, "bias", b, expectedBias, sourceWeight, new Shape(sourceBias.shape));
                break;
            case LinkedBiasKind.None:
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(bias));
        }
        return new LinkPlan(source, weight, bias, expectedWeight);
    }

    private static Tensor DryRun(string what, string role, LinkFunction function, Tensor input)
    {
        try
        {
            return function.Apply(input);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ArgumentException($"{what}: the {role} function failed on the source {role} {new Shape(input.shape)} in a dry run: {e.Message}", role, e);
        }
    }

    private static void CheckResult(string what, string role, Tensor derived, Shape expected, Tensor sourceWeight, Shape sourceShape)
    {
        var shape = new Shape(derived.shape);
        if (shape != expected)
        {
            throw new ArgumentException($"{what}: the derived {role} has shape {shape} (from the source {role} {sourceShape}), but this layer needs {expected}.", role);
        }
        if (derived.dtype != sourceWeight.dtype)
        {
            throw new ArgumentException($"{what}: the derived {role} {shape} has dtype {derived.dtype}, but the source weight is {sourceWeight.dtype}; the function must keep the dtype.", role);
        }
        if (derived.device.type != sourceWeight.device.type || derived.device.index != sourceWeight.device.index)
        {
            throw new ArgumentException($"{what}: the derived {role} is on {derived.device}, but the source weight is on {sourceWeight.device}.", role);
        }
    }
}
