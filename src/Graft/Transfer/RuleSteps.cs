using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>
/// The one mapping from each policy rule to the transform it plans and to the words a person reads about it. The
/// planner, the report and the command line all go through here, so a rule cannot mean one thing in a plan and
/// another on disk.
/// </summary>
internal static class RuleSteps
{
    /// <summary>The input-channel transform of <paramref name="rule"/> (never <see cref="InChannelRule.Auto"/>; the planner resolves it first).</summary>
    public static WeightTransform In(InChannelRule rule, Layout layout, long sourceCount, long targetCount) => rule switch
    {
        InChannelRule.Sum => InChannels.Sum(layout, sourceCount, targetCount),
        InChannelRule.Mean => InChannels.Mean(layout, sourceCount, targetCount),
        InChannelRule.RepeatRescale => InChannels.RepeatRescale(layout, sourceCount, targetCount),
        InChannelRule.Truncate => InChannels.Truncate(layout, sourceCount, targetCount),
        InChannelRule.ZeroExtend => InChannels.ZeroExtend(layout, sourceCount, targetCount),
        _ => throw new ArgumentOutOfRangeException(nameof(rule), rule, "Auto is resolved by the planner before a step is made."),
    };

    /// <summary>The kernel transform of <paramref name="rule"/> (never <see cref="KernelRule.Reinit"/>: that is a status).</summary>
    public static WeightTransform Kernel(KernelRule rule, Layout layout, IReadOnlyList<long> targetSize) => rule switch
    {
        KernelRule.Fit => Transforms.Kernel.CenterFit(layout, targetSize),
        KernelRule.Bilinear => Transforms.Kernel.Resize(layout, targetSize, KernelResize.Bilinear),
        KernelRule.Bicubic => Transforms.Kernel.Resize(layout, targetSize, KernelResize.Bicubic),
        KernelRule.PIResize => Transforms.Kernel.PIResize(layout, targetSize),
        _ => throw new ArgumentOutOfRangeException(nameof(rule), rule, "Reinit is a status, not a kernel step."),
    };

    /// <summary>The name of an in-channel rule in plan reasons.</summary>
    public static string Name(InChannelRule rule) => rule switch
    {
        InChannelRule.RepeatRescale => "repeat-rescale",
        InChannelRule.ZeroExtend => "zero-extend",
        _ => rule.ToString().ToLowerInvariant(),
    };

    /// <summary>The name of a kernel rule in plan reasons.</summary>
    public static string Name(KernelRule rule) => rule switch
    {
        KernelRule.Fit => "centred zero-pad/crop",
        KernelRule.PIResize => "pi-resize",
        _ => rule.ToString().ToLowerInvariant(),
    };

    /// <summary>Which channels a shrink rule keeps, for plan reasons (<c>keep …</c>).</summary>
    public static string Name(OutShrinkRule rule) => rule switch
    {
        OutShrinkRule.First => "the first",
        OutShrinkRule.LargestL1 => "the largest by L1 norm",
        _ => "the largest by L2 norm",
    };

    /// <summary>Where new channels come from, for plan reasons (<c>new channels from …</c>).</summary>
    public static string Name(NewChannelRule rule) => rule switch
    {
        NewChannelRule.Template => "the template's init",
        NewChannelRule.Zeros => "zeros",
        NewChannelRule.KaimingNormal => "Kaiming-normal (fan_out, relu)",
        _ => "copies of source channels",
    };

    /// <summary>An out decision in a few words: <c>keep the first</c> or <c>new channels from zeros</c>.</summary>
    public static string Describe(OutDecision decision) => decision.TargetCount < decision.SourceCount
        ? "keep " + Name(decision.Shrink)
        : "new channels from " + Name(decision.NewChannels);
}
