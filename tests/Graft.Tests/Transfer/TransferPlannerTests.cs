using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Tests.Transfer;

/// <summary>Planning works on names, dtypes and shapes alone; these tests need no tensor data.</summary>
public class TransferPlannerTests
{
    private static TensorInfo T(string name, params long[] shape) => T(name, DType.F32, shape);

    private static TensorInfo T(string name, DType dtype, params long[] shape)
    {
        var s = new Shape(shape);
        return new TensorInfo(name, dtype, s, s.ElementCount * dtype.ElementSize());
    }

    private static TargetPlan Get(TransferPlan plan, string name) => plan.Targets.Single(t => t.Target.Name == name);

    private static readonly TensorInfo[] ResNetLikeSource =
    [
        T("conv1.weight", 64, 3, 7, 7), T("bn1.weight", 64), T("bn1.bias", 64), T("bn1.running_mean", 64), T("bn1.running_var", 64),
        T("bn1.num_batches_tracked", DType.I64), T("fc.weight", 1000, 64), T("fc.bias", 1000),
    ];

    [Fact]
    public void Plan_GrayscaleStemAndNewHead_FollowsTheDefaultTable()
    {
        TensorInfo[] template =
        [
            T("conv1.weight", 64, 1, 7, 7), T("bn1.weight", 64), T("bn1.bias", 64), T("bn1.running_mean", 64), T("bn1.running_var", 64),
            T("bn1.num_batches_tracked", DType.I64), T("fc.weight", 5, 64), T("fc.bias", 5),
        ];
        var plan = TransferPlanner.Plan(ResNetLikeSource, template, TransferPolicy.Default);
        var stem = Get(plan, "conv1.weight");
        Assert.Equal(TargetStatus.Adapted, stem.Status);
        Assert.Equal(InChannelRule.Sum, stem.In!.Rule);
        Assert.True(stem.Complete);
        Assert.Equal(TargetStatus.Copied, Get(plan, "bn1.running_var").Status);
        Assert.Equal(TargetStatus.Copied, Get(plan, "bn1.num_batches_tracked").Status);
        Assert.Equal(TargetStatus.Kept, Get(plan, "fc.weight").Status);
        Assert.Contains("classifier head", Get(plan, "fc.weight").Reason);
        Assert.Equal(TargetStatus.Kept, Get(plan, "fc.bias").Status);
        Assert.Equal(["fc.weight", "fc.bias"], plan.UnusedSources.Select(s => s.Name));
        Assert.Equal(4, plan.StrictViolations.Count); // two kept targets, two unused sources
    }

    [Fact]
    public void Plan_HeadKeepFirst_TreatsHeadAsOutChannelChange()
    {
        TensorInfo[] template = [T("fc.weight", 5, 64), T("fc.bias", 5)];
        var plan = TransferPlanner.Plan(ResNetLikeSource, template, TransferPolicy.Default with { Head = HeadRule.KeepFirst });
        Assert.Equal(TargetStatus.Adapted, Get(plan, "fc.weight").Status);
        Assert.Equal(5, Get(plan, "fc.bias").Out!.TargetCount);
    }

    [Fact]
    public void Plan_InteriorLayerWiderInputs_ZeroExtendsToKeepTheFunction()
    {
        var plan = TransferPlanner.Plan([T("conv2.weight", 32, 16, 3, 3)], [T("conv2.weight", 32, 24, 3, 3)], TransferPolicy.Default);
        Assert.Equal(InChannelRule.ZeroExtend, Get(plan, "conv2.weight").In!.Rule);
        Assert.True(Get(plan, "conv2.weight").Complete);
    }

    [Fact]
    public void Plan_StemToMoreChannels_RepeatsAndRescales()
    {
        var plan = TransferPlanner.Plan([T("stem.weight", 8, 3, 3, 3)], [T("stem.weight", 8, 13, 3, 3)], TransferPolicy.Default);
        var p = Get(plan, "stem.weight");
        Assert.Equal(InChannelRule.RepeatRescale, p.In!.Rule);
        Assert.Contains("3/13", p.Reason);
    }

    [Fact]
    public void Plan_WiderOutChannels_BiasAndBatchNormFollowWithTemplateInit()
    {
        TensorInfo[] src = [T("c.weight", 16, 3, 3, 3), T("c.bias", 16), T("bn.weight", 16), T("bn.running_var", 16)];
        TensorInfo[] tpl = [T("c.weight", 24, 3, 3, 3), T("c.bias", 24), T("bn.weight", 24), T("bn.running_var", 24)];
        var plan = TransferPlanner.Plan(src, tpl, TransferPolicy.Default);
        Assert.All(plan.Targets, t => Assert.Equal(TargetStatus.Adapted, t.Status));
        Assert.All(plan.Targets, t => Assert.False(t.Complete));
        Assert.Contains("follows c.weight", Get(plan, "c.bias").Reason);
        Assert.Equal(NewChannelRule.Template, Get(plan, "bn.running_var").Out!.NewChannels);
    }

    [Fact]
    public void Plan_NewChannelsCopies_CountsAsComplete()
    {
        var plan = TransferPlanner.Plan([T("c.weight", 4, 3, 3, 3)], [T("c.weight", 6, 3, 3, 3)], TransferPolicy.Default with { NewChannels = NewChannelRule.Copies });
        Assert.True(Get(plan, "c.weight").Complete);
    }

    [Fact]
    public void Plan_RankMismatch_KeepsTemplateAndSaysWhy()
    {
        var plan = TransferPlanner.Plan([T("x.weight", 4, 3, 3, 3)], [T("x.weight", 4, 27)], TransferPolicy.Default);
        var p = Get(plan, "x.weight");
        Assert.Equal(TargetStatus.Kept, p.Status);
        Assert.Contains("rank differs", p.Reason);
        Assert.Null(p.Source);
        Assert.Single(plan.UnusedSources);
    }

    [Fact]
    public void Plan_DTypeOnly_IsACastAndAStrictViolation()
    {
        var plan = TransferPlanner.Plan([T("w", DType.F16, 3)], [T("w", DType.F32, 3)], TransferPolicy.Default);
        Assert.Equal(TargetStatus.Cast, Get(plan, "w").Status);
        Assert.Single(plan.StrictViolations);
    }

    [Fact]
    public void Plan_ModulePrefixes_AreStrippedForMatching()
    {
        var plan = TransferPlanner.Plan([T("module.conv.weight", 4, 3, 3, 3), T("_orig_mod.fc.bias", 2)],
            [T("conv.weight", 4, 3, 3, 3), T("fc.bias", 2)], TransferPolicy.Default);
        Assert.Equal("module.conv.weight", Get(plan, "conv.weight").Source!.Name);
        Assert.Equal("_orig_mod.fc.bias", Get(plan, "fc.bias").Source!.Name);
        Assert.Empty(plan.UnusedSources);
    }

    [Fact]
    public void Plan_RuleWithWrongDirection_IsRefusedNamingTheTensor()
    {
        var policy = TransferPolicy.Default with { Rules = [new TensorRule("conv*") { InChannels = InChannelRule.Sum }] };
        var ex = Assert.Throws<TransferPlanException>(() =>
            TransferPlanner.Plan([T("conv1.weight", 4, 3, 3, 3)], [T("conv1.weight", 4, 6, 3, 3)], policy));
        Assert.Contains("conv1.weight", ex.Message);
        Assert.Contains("3 inputs to 6", ex.Message);
    }

    [Fact]
    public void Plan_RulesByGlob_OverrideThePolicyAndLaterRulesWin()
    {
        var policy = TransferPolicy.Default with
        {
            Rules = [new TensorRule("layer*.weight") { Kernel = KernelRule.PIResize }, new TensorRule("layer2.*") { Kernel = KernelRule.Bicubic }, new TensorRule("skip.*") { Skip = true }],
        };
        TensorInfo[] src = [T("layer1.weight", 4, 4, 3, 3), T("layer2.weight", 4, 4, 3, 3), T("skip.weight", 4, 4, 3, 3), T("skip.bias", 4)];
        TensorInfo[] tpl = [T("layer1.weight", 4, 4, 5, 5), T("layer2.weight", 4, 4, 5, 5), T("skip.weight", 4, 4, 3, 3), T("skip.bias", 4)];
        var plan = TransferPlanner.Plan(src, tpl, policy);
        Assert.Equal(KernelRule.PIResize, Get(plan, "layer1.weight").Kernel!.Rule);
        Assert.Equal(KernelRule.Bicubic, Get(plan, "layer2.weight").Kernel!.Rule);
        Assert.Equal(TargetStatus.Kept, Get(plan, "skip.weight").Status);
        Assert.Equal(TargetStatus.Kept, Get(plan, "skip.bias").Status);
    }

    [Fact]
    public void Plan_LayoutRule_DeclaresTransposedConvolution()
    {
        // (in, out, k, k): out channels are axis 1 for a ConvTranspose2d.
        var policy = TransferPolicy.Default with { Rules = [new TensorRule("up.*") { Layout = Layout.ConvTranspose(2) }] };
        var plan = TransferPlanner.Plan([T("up.weight", 8, 4, 2, 2), T("up.bias", 4)], [T("up.weight", 8, 6, 2, 2), T("up.bias", 6)], policy);
        Assert.Equal(4, Get(plan, "up.weight").Out!.SourceCount);
        Assert.Equal(6, Get(plan, "up.bias").Out!.TargetCount);
        Assert.Null(Get(plan, "up.weight").In);
    }

    [Fact]
    public void Plan_MissingSource_KeptWithReason()
    {
        var plan = TransferPlanner.Plan([], [T("new.weight", 2, 2)], TransferPolicy.Default);
        Assert.Equal("no source tensor of this name", Get(plan, "new.weight").Reason);
    }
}
