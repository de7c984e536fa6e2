using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Growth;

/// <summary>One target tensor of a growth: where it comes from and the transform that makes it.</summary>
/// <param name="Name">State-dict name (the same in source and target).</param>
/// <param name="SourceShape">Shape in the source.</param>
/// <param name="TargetShape">Shape in the target.</param>
/// <param name="Transform">The transform from source to target tensor (identity when unchanged).</param>
public sealed record GrowthStep(string Name, Shape SourceShape, Shape TargetShape, WeightTransform Transform);

/// <summary>The channel decision made for one width group.</summary>
/// <param name="Group">The group.</param>
/// <param name="Map">Target channel → source channel (-1 for a new channel).</param>
public sealed record GroupMap(WidthGroup Group, ChannelMap Map);

/// <summary>
/// A planned growth: one <see cref="WeightTransform"/> per target tensor, checked against both shapes before any data
/// moves. Because each tensor is an ordinary transform, the same plan can be evaluated once (growth), or its transforms
/// reused for a transfer or inside a linked layer.
/// </summary>
public sealed class GrowthPlan
{
    internal GrowthPlan(IReadOnlyList<GrowthStep> steps, IReadOnlyList<GroupMap> maps, bool exact, IReadOnlyList<string> notes)
    {
        Steps = steps;
        Maps = maps;
        Exact = exact;
        Notes = notes;
    }

    /// <summary>One step per target tensor, in the target's state-dict order.</summary>
    public IReadOnlyList<GrowthStep> Steps { get; }

    /// <summary>The channel map chosen for each width group.</summary>
    public IReadOnlyList<GroupMap> Maps { get; }

    /// <summary>
    /// True when the grown network computes exactly what the source did (in eval mode, up to rounding); false when
    /// the plan adds symmetry-breaking noise. <see cref="Notes"/> says why.
    /// </summary>
    public bool Exact { get; }

    /// <summary>Sentences for a report: what was decided and what it means for exactness.</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>
    /// Computes every target tensor from the source state (under no-grad, in the source's dtype); nothing is written.
    /// The caller owns the returned tensors.
    /// </summary>
    public Dictionary<string, Tensor> Evaluate(IReadOnlyDictionary<string, Tensor> source)
    {
        ArgumentNullException.ThrowIfNull(source);
        using var noGrad = no_grad();
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var step in Steps)
        {
            if (!source.TryGetValue(step.Name, out var s))
            {
                throw new ArgumentException($"The source has no tensor '{step.Name}'.", nameof(source));
            }
            result[step.Name] = step.Transform.Apply(s.detach()).detach().clone();
        }
        return result;
    }

    /// <summary>
    /// Evaluates the plan on <paramref name="source"/>'s state and copies the result into <paramref name="target"/>'s
    /// tensors in place (cast to the target's dtype). Everything is computed before anything is written, so template
    /// values the plan reads from the target are still the target's own.
    /// </summary>
    public void ApplyTo(nn.Module source, nn.Module target)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        var computed = Evaluate(source.state_dict());
        var dest = target.state_dict();
        using var noGrad = no_grad();
        foreach (var (name, value) in computed)
        {
            using (value)
            {
                if (!dest.TryGetValue(name, out var d))
                {
                    throw new ArgumentException($"The target module has no tensor '{name}'.", nameof(target));
                }
                d.copy_(value.to(d.dtype, d.device));
            }
        }
    }
}
