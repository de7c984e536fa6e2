using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>
/// The planner's per-role stage: one layer at a time, the layer's weight (conv, linear, head) decides its in, kernel and
/// out steps, and the layer's other tensors follow by role (a bias or BatchNorm vector takes the weight's out decision;
/// positions go to <see cref="PositionPlanner"/>). Every entry leaves through <see cref="CheckedChain"/>.
/// </summary>
internal sealed class LayerPlanner(PlanningContext context, ChannelGroupDecisions groups)
{
    private readonly PositionPlanner _positions = new(context);

    private TransferPolicy Policy => context.Policy;

    /// <summary>The plans of one layer's members, in the members' order (the weight is planned first: the others follow it).</summary>
    public TargetPlan[] PlanLayer(string layer, List<TensorInfo> members)
    {
        // A layer's decision comes from a weight with channel axes; a rank-1 "weight" (BatchNorm, LayerNorm scale)
        // is one of the layer's vectors.
        int w = members.FindIndex(m => context.RoleOf(m.Name).IsLayerWeight());
        var weight = w >= 0 ? members[w] : null;
        var rules = context.RulesFor(weight?.Name ?? members[0].Name);
        var result = new TargetPlan[members.Count];
        TargetPlan? weightPlan = null;
        if (weight is not null)
        {
            weightPlan = result[w] = PlanWeight(layer, weight, rules);
        }
        for (int i = 0; i < members.Count; i++)
        {
            if (i != w)
            {
                result[i] = PlanMember(layer, members[i], weight, weightPlan);
            }
        }
        return result;
    }

    private TargetPlan Base(string layer, TensorInfo target, TensorInfo? source, Layout layout) =>
        new()
        {
            Target = target, Source = source, Status = TargetStatus.Kept, Reason = "", Layout = layout, Layer = layer,
            Match = context.MatchOf(target.Name), Role = context.RoleOf(target.Name),
        };

    private TargetPlan PlanWeight(string layer, TensorInfo target, TensorRule rules)
    {
        var source = context.FindSource(target.Name);
        var layout = rules.Layout ?? Layout.DefaultForRank(target.Shape.Rank);
        var basePlan = Base(layer, target, source, layout);

        if (source is null)
        {
            return basePlan with { Cause = TargetCause.NoSource, Reason = "no source tensor of this name" };
        }
        if (rules.Skip == true)
        {
            return CheckedChain.Refused(basePlan, TargetCause.Skipped, "skipped by a rule; the template's init is kept");
        }
        if (rules.Reinit == true && target.Shape.Rank >= 2 && target.DType.IsFloatingPoint())
        {
            return Reinitialised(basePlan, layout.Kind == LayerKind.Linear
                ? "reinitialised by a rule as PyTorch initialises a Linear layer (uniform ±1/√fan_in); the bias keeps the template's init"
                : "reinitialised by a rule: Kaiming-normal (fan_out, relu); the bias keeps the template's init");
        }
        if (target.Shape == source.Shape)
        {
            return SameShape(basePlan, source, target);
        }
        if (target.Shape.Rank != source.Shape.Rank)
        {
            return CheckedChain.Refused(basePlan, TargetCause.Incompatible, $"rank differs (source {source.Shape}, target {target.Shape}); nothing carried over");
        }
        if (!layout.HasChannels || layout.Kind == LayerKind.Scalar)
        {
            return CheckedChain.Refused(basePlan, TargetCause.Incompatible, $"shapes differ (source {source.Shape}, target {target.Shape}) and a {layout} tensor has no channel roles");
        }
        if (CheckedChain.RefuseUncomputable(basePlan, source, target) is { } uncomputable)
        {
            return uncomputable;
        }
        layout.Check(target.Shape, target.Name);

        long srcOut = source.Shape[layout.OutAxis], tgtOut = target.Shape[layout.OutAxis];
        bool isHead = layout.Kind == LayerKind.Linear && srcOut != tgtOut
            && (context.IsHead(target.Name) || basePlan.Role == TensorRole.HeadWeight || rules.Head is not null);
        basePlan = basePlan with { Head = isHead };
        if (isHead && (rules.Head ?? Policy.Head) == HeadRule.Template)
        {
            return CheckedChain.Refused(basePlan, TargetCause.NewHead, $"classifier head with another class count ({srcOut}→{tgtOut}); the target's own init is kept") with { NewHead = true };
        }

        bool patchEmbedding = NameConventions.IsPatchEmbedding(layer);
        var kernelRule = rules.Kernel ?? (patchEmbedding ? KernelRule.PIResize : Policy.Kernel);
        bool kernelDiffers = layout.KernelAxes.Any(a => source.Shape[a] != target.Shape[a]);
        if (kernelDiffers && kernelRule == KernelRule.Reinit)
        {
            return Reinitialised(basePlan, $"kernel {Kernel(source.Shape, layout)}→{Kernel(target.Shape, layout)} with rule reinit: Kaiming-normal (fan_out, relu); the bias keeps the template's init");
        }

        var reasons = new List<string>();
        var inStep = PlanIn(layer, target, source, layout, rules, reasons);
        var kernelStep = kernelDiffers ? PlanKernel(target, source, layout, kernelRule, reasons) : null;
        if (kernelDiffers && rules.Kernel is null && patchEmbedding)
        {
            reasons[^1] += " (a patch embedding: PI-resized by default, as timm)";
        }
        var decision = PlanOut(layer, target, source, layout, rules, reasons);
        // Zeros on new inputs and around a padded kernel are part of the carried-over function; only new out
        // channels from the template, zeros or random are values the source did not provide.
        bool complete = decision is null || decision.TargetCount <= decision.SourceCount || decision.NewChannels == NewChannelRule.Copies;
        var plan = basePlan with
        {
            Status = TargetStatus.Adapted,
            Cause = TargetCause.Transferred,
            Reason = string.Join("; ", reasons),
            In = inStep,
            Kernel = kernelStep,
            Out = decision,
            Complete = complete,
        };
        return CheckedChain.Attach(plan, () =>
        [
            inStep is null ? WeightTransform.Identity
                : inStep.Follows is { } followed ? new PlannedChannels(layout, inputs: true, followed, inStep.BlockSize, ChannelFill.Zeros)
                : RuleSteps.In(inStep.Rule, layout, inStep.SourceCount, inStep.TargetCount),
            kernelStep is null ? WeightTransform.Identity : RuleSteps.Kernel(kernelStep.Rule, layout, kernelStep.TargetSize),
            decision is null ? WeightTransform.Identity : new PlannedChannels(layout, inputs: false, decision, 1, FillFor(plan, layout, decision.NewChannels)),
        ]);
    }

    /// <summary>The in decision: follow the group feeding the layer, or the in-channel rule.</summary>
    private InStep? PlanIn(string layer, TensorInfo target, TensorInfo source, Layout layout, TensorRule rules, List<string> reasons)
    {
        long srcIn = source.Shape[layout.InAxis], tgtIn = target.Shape[layout.InAxis];
        if (srcIn == tgtIn)
        {
            return null;
        }
        if (groups.FeedingDecision(layer) is { Decision: { } followed } feeding)
        {
            long block = feeding.Consumer.BlockSize;
            if (followed.SourceCount * block != srcIn || followed.TargetCount * block != tgtIn)
            {
                throw new TransferPlanException($"Channel group {followed.DependencyGroup} disagrees with {target.Name}: the group has {followed.SourceCount}→{followed.TargetCount} channels" +
                    (block == 1 ? "" : $" × block {block}") + $", but the layer reads {srcIn}→{tgtIn} inputs.");
            }
            reasons.Add($"inputs {srcIn}→{tgtIn}: follow the out decision of {followed.DependencyGroup} ({(tgtIn < srcIn ? "keep " + RuleSteps.Name(followed.Shrink) : "new inputs get zero weights")})"
                + (block == 1 ? "" : $", in blocks of {block} features per channel"));
            return new InStep(tgtIn < srcIn ? InChannelRule.Truncate : InChannelRule.ZeroExtend, srcIn, tgtIn) { Follows = followed, BlockSize = block };
        }
        var rule = ResolveIn(rules.InChannels ?? Policy.InChannels, layout, srcIn, tgtIn, target.Name, out var why);
        reasons.Add(why);
        return new InStep(rule, srcIn, tgtIn);
    }

    /// <summary>The kernel decision (a rule other than reinit, which is a status).</summary>
    private static KernelStep PlanKernel(TensorInfo target, TensorInfo source, Layout layout, KernelRule rule, List<string> reasons)
    {
        reasons.Add($"kernel {Kernel(source.Shape, layout)}→{Kernel(target.Shape, layout)} by {RuleSteps.Name(rule)}");
        return new KernelStep(rule, layout.KernelAxes.Select(a => target.Shape[a]).ToArray());
    }

    /// <summary>The out decision: the one shared by the layer's group, or the layer's own.</summary>
    private OutDecision? PlanOut(string layer, TensorInfo target, TensorInfo source, Layout layout, TensorRule rules, List<string> reasons)
    {
        long srcOut = source.Shape[layout.OutAxis], tgtOut = target.Shape[layout.OutAxis];
        if (srcOut == tgtOut)
        {
            return null;
        }
        if (groups.ProducedDecision(layer) is { } shared)
        {
            if (shared.SourceCount != srcOut || shared.TargetCount != tgtOut)
            {
                throw new TransferPlanException($"Channel group {shared.DependencyGroup} disagrees with {target.Name}: the group has {shared.SourceCount}→{shared.TargetCount} channels, the layer {srcOut}→{tgtOut}.");
            }
            reasons.Add(tgtOut < srcOut
                ? $"out channels {srcOut}→{tgtOut}: keep {RuleSteps.Name(shared.Shrink)}, shared by group {shared.DependencyGroup}"
                : $"out channels {srcOut}→{tgtOut}: new channels from {RuleSteps.Name(shared.NewChannels)} (group {shared.DependencyGroup})");
            return shared;
        }
        var shrink = rules.OutShrink ?? Policy.OutShrink;
        if (shrink != OutShrinkRule.First && tgtOut < srcOut && groups.WhyUnsafe(layer, target, tgtOut) is { } unsafeWhy)
        {
            context.Notes.AddFirstNFallback(layer, $"out-shrink {PolicyWords.Word(shrink)}", unsafeWhy);
            reasons.Add($"largest-norm asked but first-n used: {unsafeWhy}");
            shrink = OutShrinkRule.First;
        }
        var fresh = rules.NewChannels ?? Policy.NewChannels;
        int convGroups = layout.Kind == LayerKind.Conv ? layout.Groups : 1;
        if (shrink != OutShrinkRule.First && tgtOut < srcOut && convGroups != 1)
        {
            throw new TransferPlanException($"{target.Name}: largest-norm selection is not supported on grouped convolutions (groups={convGroups}); use first.");
        }
        var decision = new OutDecision(layer, tgtOut < srcOut ? shrink : OutShrinkRule.First, fresh, srcOut, tgtOut, convGroups)
        {
            NormSources = tgtOut < srcOut && shrink != OutShrinkRule.First ? [new NormWeight(source.Name, layout)] : [],
        };
        reasons.Add($"out channels {srcOut}→{tgtOut}: {RuleSteps.Describe(decision)}");
        return decision;
    }

    /// <summary>A tensor of the layer other than its weight, planned by its role.</summary>
    private TargetPlan PlanMember(string layer, TensorInfo target, TensorInfo? weight, TargetPlan? weightPlan)
    {
        var source = context.FindSource(target.Name);
        var basePlan = Base(layer, target, source, Layout.DefaultForRank(target.Shape.Rank));
        var role = basePlan.Role;
        var rules = context.RulesFor(target.Name);
        if (source is null)
        {
            return basePlan with { Cause = TargetCause.NoSource, Reason = "no source tensor of this name" };
        }
        // The layer's weight was not carried over (skipped, reinitialised, a new head, impossible): its vectors keep
        // the template's values too unless they fit as they are.
        if (weightPlan?.Head == true)
        {
            basePlan = basePlan with { Head = true };
        }
        var layerCause = weightPlan?.Cause is { } c && c is not (TargetCause.Transferred or TargetCause.NoSource) ? c : (TargetCause?)null;
        if (layerCause == TargetCause.NewHead)
        {
            basePlan = basePlan with { NewHead = true };
        }
        if (rules.Skip == true || (layerCause is not null && (target.Shape != source.Shape || role.IsBias())))
        {
            return CheckedChain.Refused(basePlan, layerCause is null ? TargetCause.Skipped : TargetCause.LayerNotTransferred,
                $"kept from the template: its layer's weight was not transferred ({LayerPhrase(layerCause)})");
        }
        if (target.Shape == source.Shape)
        {
            return SameShape(basePlan, source, target);
        }
        if (role.IsPosition())
        {
            return _positions.Plan(basePlan, role, target, source, rules);
        }
        // A norm's scale follows the layer only when the layer has no weight of its own with channel axes.
        bool channelRole = role.IsChannelVector() && (weight is null || role is not (TensorRole.NormScale or TensorRole.ChannelScale));
        if (target.Shape.Rank != 1 || source.Shape.Rank != 1 || !channelRole)
        {
            return CheckedChain.Refused(basePlan, TargetCause.Incompatible, $"shapes differ (source {source.Shape}, target {target.Shape}) and the tensor has no channel role");
        }
        if (CheckedChain.RefuseUncomputable(basePlan, source, target) is { } uncomputable)
        {
            return uncomputable;
        }
        // A vector follows its layer's decision; a layer without a weight of its own (a BatchNorm or LayerNorm whose
        // weight is itself a vector) decides first-n, which matches the default decision of the layer feeding it.
        var decision = weightPlan?.Out;
        var own = decision ?? (weight is null ? groups.ProducedDecision(layer) : null);
        string why;
        if (own is not null && decision is null && (own.SourceCount != source.Shape[0] || own.TargetCount != target.Shape[0]))
        {
            throw new TransferPlanException($"Channel group {own.DependencyGroup} disagrees with {target.Name}: the group has {own.SourceCount}→{own.TargetCount} channels, the tensor {source.Shape[0]}→{target.Shape[0]}.");
        }
        if (own is not null && decision is null)
        {
            why = $"follows group {own.DependencyGroup}: {RuleSteps.Describe(own)}";
        }
        else if (own is not null && own.SourceCount == source.Shape[0] && own.TargetCount == target.Shape[0])
        {
            why = $"follows {layer}.weight: {RuleSteps.Describe(own)}";
        }
        else
        {
            var vrules = weight is null ? rules : context.RulesFor(weight.Name);
            var fresh = vrules.NewChannels ?? Policy.NewChannels;
            own = new OutDecision(layer, OutShrinkRule.First, fresh, source.Shape[0], target.Shape[0], 1);
            why = target.Shape[0] < source.Shape[0]
                ? $"channels {source.Shape[0]}→{target.Shape[0]}: keep the first (consistent with a first-n producer)"
                : $"channels {source.Shape[0]}→{target.Shape[0]}: new channels from {RuleSteps.Name(fresh)}";
        }
        bool complete = own.TargetCount <= own.SourceCount || own.NewChannels == NewChannelRule.Copies;
        var plan = basePlan with { Status = TargetStatus.Adapted, Cause = TargetCause.Transferred, Layout = Layout.Vector, Out = own, Reason = why, Complete = complete };
        return CheckedChain.Attach(plan, () => [new PlannedChannels(Layout.Vector, inputs: false, own, 1, FillFor(plan, Layout.Vector, own.NewChannels))]);
    }

    private InChannelRule ResolveIn(InChannelRule rule, Layout layout, long src, long tgt, string name, out string why)
    {
        // A stem is the network's first convolution reading few channels (an image); a narrow interior layer is not.
        bool stem = layout.Kind == LayerKind.Conv && src <= Policy.StemMaxInputs && name == context.FirstConv;
        if (rule == InChannelRule.Auto)
        {
            (rule, why) = (stem, tgt) switch
            {
                (true, 1) => (InChannelRule.Sum, $"stem inputs {src}→1: sum over the source inputs"),
                (true, _) when tgt > src && Policy.StemGrow == InChannelRule.ZeroExtend => (InChannelRule.ZeroExtend, $"stem inputs {src}→{tgt}: new inputs get zero weights (the old function is kept)"),
                (true, _) when tgt > src => (InChannelRule.RepeatRescale, FormattableString.Invariant($"stem inputs {src}→{tgt}: repeat cyclically and scale by {src}/{tgt}")),
                (true, _) => (InChannelRule.Truncate, $"stem inputs {src}→{tgt}: keep the first {tgt}"),
                (false, _) when tgt > src => (InChannelRule.ZeroExtend, $"inputs {src}→{tgt}: new inputs get zero weights (the old function is kept)"),
                _ => (InChannelRule.Truncate, $"inputs {src}→{tgt}: keep the first {tgt} (follows a first-n producer)"),
            };
            return rule;
        }
        bool ok = rule switch
        {
            InChannelRule.Sum or InChannelRule.Mean or InChannelRule.Truncate => tgt < src,
            InChannelRule.RepeatRescale or InChannelRule.ZeroExtend => tgt > src,
            _ => false,
        };
        if (!ok)
        {
            throw new TransferPlanException($"{name}: in-channel rule {RuleSteps.Name(rule)} cannot take {src} inputs to {tgt} " +
                "(sum, mean and truncate shrink; repeat-rescale and zero-extend grow).");
        }
        why = $"inputs {src}→{tgt}: {RuleSteps.Name(rule)} (by rule)";
        return rule;
    }

    private static string Kernel(Shape s, Layout l) => string.Join("×", l.KernelAxes.Select(a => s[a]));

    private static string LayerPhrase(TargetCause? cause) => cause switch
    {
        null or TargetCause.Skipped => "skipped by a rule",
        TargetCause.Reinitialized => "weight reinitialised",
        TargetCause.NewHead => "classifier head kept from the template",
        _ => "weight not transferred",
    };

    private static TargetPlan SameShape(TargetPlan basePlan, TensorInfo source, TensorInfo target)
    {
        if (source.DType == target.DType)
        {
            // Bytes move as they are: any dtype, TorchSharp or not.
            return basePlan with { Status = TargetStatus.Copied, Cause = TargetCause.Transferred, Reason = "same shape and dtype", Complete = true };
        }
        if (!CheckedChain.Computable(source.DType) || !CheckedChain.Computable(target.DType))
        {
            var which = CheckedChain.Computable(source.DType) ? target.DType : source.DType;
            return CheckedChain.Refused(basePlan, TargetCause.NotComputable, $"same shape; dtype {source.DType}→{target.DType} cannot be cast: TorchSharp cannot hold {which}");
        }
        return basePlan with { Status = TargetStatus.Cast, Cause = TargetCause.Transferred, Reason = $"same shape; dtype {source.DType}→{target.DType}", Complete = true };
    }

    private TargetPlan Reinitialised(TargetPlan basePlan, string reason)
    {
        var target = basePlan.Target;
        if (!CheckedChain.Computable(target.DType))
        {
            return CheckedChain.Refused(basePlan, TargetCause.NotComputable, $"reinitialising needs a dtype TorchSharp can hold; {target.DType} is not one");
        }
        var plan = basePlan with { Source = null, Status = TargetStatus.Reinitialized, Cause = TargetCause.Reinitialized, Reason = reason };
        // The layer kind's own init: a Linear layer as PyTorch builds one, a convolution Kaiming-normal (fan_out, relu) as torchvision's CNNs.
        return CheckedChain.Attach(plan, () => [basePlan.Layout.Kind == LayerKind.Linear
            ? Reinit.LinearDefault(target.Shape, context.SeedFor(target.Name))
            : Reinit.KaimingNormal(target.Shape, context.SeedFor(target.Name))]);
    }

    /// <summary>How the new out channels of <paramref name="plan"/>'s target are filled; null for the template's init (read when the transfer runs).</summary>
    private ChannelFill? FillFor(TargetPlan plan, Layout layout, NewChannelRule rule)
    {
        bool vector = layout.Kind == LayerKind.Vector;
        return rule switch
        {
            NewChannelRule.Template => null,
            NewChannelRule.Copies => ChannelFill.Zeros, // copies leave no new channel; the fill is never used
            NewChannelRule.Zeros => vector && plan.Role == TensorRole.NormVar ? ChannelFill.Constant(1) : ChannelFill.Zeros,
            // Kaiming for weights; vectors start as a fresh layer would: BatchNorm scale and variance 1, the rest 0.
            _ => !vector ? ChannelFill.KaimingNormal(context.SeedFor(plan.Target.Name))
                : plan.Role.StartsAtOne() ? ChannelFill.Constant(1) : ChannelFill.Zeros,
        };
    }
}
