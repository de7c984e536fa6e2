using Graft.Transfer;

namespace Graft.Growth;

/// <summary>
/// Function-preserving growth through the ordinary transfer path (files or modules, any architecture with the same
/// layer names): new channels keep the target's own initialisation and every layer reading them gives them zero
/// weights, so they start silent (the zero-outgoing alternative to Net2WiderNet, with no width groups to declare).
/// </summary>
public static class PreserveFunction
{
    /// <summary>
    /// The transfer policy that keeps the function when the target is wider, has larger kernels (with padding grown to
    /// match, see <see cref="Enlarge.Padding"/>) or reads more input channels: out channels keep the first n and new ones
    /// start from the target's init; every in-channel change zero-extends (a shrink is refused by the planner); kernels
    /// are centred in zeros. What it cannot keep is listed by <see cref="Problems"/>.
    /// </summary>
    /// <remarks>
    /// The <c>keep-function</c> preset (grown inputs zero-extended, a grown stem too); what it would fold, truncate or cut
    /// (a stem read by fewer inputs, a narrower layer, a head with another class count) is planned as that preset plans
    /// it and then refused by <see cref="Problems"/> with the reason, never by a rule the user did not give.
    /// </remarks>
    public static TransferPolicy Policy { get; } = TransferPresets.KeepFunction;

    /// <summary>
    /// Reasons, one line per tensor, why <paramref name="plan"/> cannot keep the source network's function: channels or
    /// kernels that shrink, kernels grown unevenly or by resampling, inputs folded or repeated, copies without
    /// rescaling, tensors the target has but the source does not, and source tensors left unused. Empty when every
    /// decision keeps the function, which still assumes the target's paddings match its kernels; check with
    /// <see cref="Verify.Compare(TorchSharp.torch.nn.Module{TorchSharp.torch.Tensor, TorchSharp.torch.Tensor}, TorchSharp.torch.nn.Module{TorchSharp.torch.Tensor, TorchSharp.torch.Tensor}, Func{int, TorchSharp.torch.Tensor}, int)"/>.
    /// </summary>
    public static IReadOnlyList<string> Problems(TransferPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (plan.Transformer is { } byRole)
        {
            // A decoder planned by role: its planner worked out what each decision keeps (copies divided by their count,
            // repeated K/V heads, identity blocks, upcycled experts) and what it does not.
            return byRole.FunctionProblems;
        }
        var problems = new List<string>();
        foreach (var t in plan.Targets)
        {
            var name = t.Target.Name;
            if (t.Head)
            {
                // One line per head (its weight), not per member: a new head is one decision.
                if (t.Target.Shape.Rank >= 2)
                {
                    problems.Add($"{name}: a classifier head with another class count ({ClassCounts(t)}): the source's logits cannot be kept");
                }
                continue;
            }
            if (t.Cause == TargetCause.TemplateBuffer)
            {
                continue;
            }
            if (t.Status is TargetStatus.Kept or TargetStatus.Reinitialized)
            {
                problems.Add(t.Cause == TargetCause.NoSource
                    ? $"{name}: not in the source; the function changes unless this new layer is an identity (see Net2Deeper)"
                    : $"{name}: not carried over ({t.Reason})");
                continue;
            }
            if (t.Out is { } o && o.TargetCount < o.SourceCount)
            {
                problems.Add($"{name}: out channels shrink {o.SourceCount}→{o.TargetCount}");
            }
            if (t.In is { } i && i.Rule != InChannelRule.ZeroExtend)
            {
                problems.Add($"{name}: inputs {i.SourceCount}→{i.TargetCount} by {RuleSteps.Name(i.Rule)}");
            }
            if (t.Kernel is { } k && t.Source is not null)
            {
                var axes = t.Layout.KernelAxes;
                var from = axes.Select(a => t.Source.Shape[a]).ToArray();
                bool evenGrowth = axes.Select((a, j) => k.TargetSize[j] - from[j]).All(d => d >= 0 && d % 2 == 0);
                if (k.Rule != KernelRule.Fit || !evenGrowth)
                {
                    problems.Add($"{name}: kernel {string.Join("×", from)}→{string.Join("×", k.TargetSize)} by {RuleSteps.Name(k.Rule)}" +
                        (k.Rule == KernelRule.Fit ? " (only growth by an even amount per axis keeps the function)" : ""));
                }
            }
        }
        // Growth that zero-padding cannot keep: copies nothing rescales, LayerNorm/RMSNorm and attention widened.
        problems.AddRange(TransferAccount.GrowthProblems(plan.Targets, kernels: false));
        var headSources = plan.Targets.Where(t => t.Head && t.Match is not null).Select(t => t.Match!.Source).ToHashSet(StringComparer.Ordinal);
        problems.AddRange(plan.UnusedSources.Where(s => !headSources.Contains(s.Name)).Select(s => $"{s.Name}: source tensor not used"));
        return problems;
    }

    /// <summary>
    /// Refuses <paramref name="plan"/> when it cannot keep the source's function, naming every reason
    /// (<see cref="Problems"/>); what <c>graft plan</c> and <c>graft transfer</c> run under <c>--preserve-function</c>.
    /// </summary>
    /// <exception cref="TransferStrictException">The plan cannot keep the function.</exception>
    public static void EnsureKept(TransferPlan plan)
    {
        if (Problems(plan) is { Count: > 0 } problems)
        {
            throw new TransferStrictException(problems, $"--preserve-function: the source's function cannot be kept ({problems.Count} reason{(problems.Count == 1 ? "" : "s")})");
        }
    }

    private static string ClassCounts(TargetPlan t) =>
        t.Match is null ? "another class count" : t.Source is { } s ? $"{s.Shape[t.Layout.OutAxis]}→{t.Target.Shape[t.Layout.OutAxis]} classes"
        : $"{t.Target.Shape[t.Layout.OutAxis]} classes";
}
