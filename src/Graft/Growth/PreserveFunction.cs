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
    /// <remarks>The <c>keep-function</c> preset, made strict about inputs: where it would truncate, this refuses.</remarks>
    public static TransferPolicy Policy { get; } = TransferPresets.KeepFunction with { InChannels = InChannelRule.ZeroExtend };

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
        var problems = new List<string>();
        foreach (var t in plan.Targets)
        {
            var name = t.Target.Name;
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
            if (t.Out is { } c && c.TargetCount > c.SourceCount && c.NewChannels == NewChannelRule.Copies)
            {
                problems.Add($"{name}: new channels are copies whose consumers are not rescaled (use Net2Wider for that)");
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
        problems.AddRange(plan.UnusedSources.Select(s => $"{s.Name}: source tensor not used"));
        return problems;
    }
}
