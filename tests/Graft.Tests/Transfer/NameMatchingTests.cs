using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Tests.Transfer;

/// <summary>Name matching on tensor descriptions alone: each kind of match, conflicts, and structural guesses.</summary>
public class NameMatchingTests
{
    private static TensorInfo T(string name, params long[] shape)
    {
        var s = new Shape(shape);
        return new TensorInfo(name, DType.F32, s, s.ElementCount * 4);
    }

    private static TargetPlan Get(TransferPlan plan, string name) => plan.Targets.Single(t => t.Target.Name == name);

    [Fact]
    public void Plan_ExactAndWrapperPrefixes_AreMatchedAndReported()
    {
        TensorInfo[] source = [T("module.model.conv.weight", 4, 3, 3, 3), T("fc.weight", 2, 4)];
        TensorInfo[] template = [T("conv.weight", 4, 3, 3, 3), T("fc.weight", 2, 4)];
        var plan = TransferPlanner.Plan(source, template, TransferPolicy.Default);
        Assert.Equal(MatchKind.Prefix, Get(plan, "conv.weight").Match!.Kind);
        Assert.Equal("module.model.conv.weight", Get(plan, "conv.weight").Source!.Name);
        Assert.Equal(MatchKind.Exact, Get(plan, "fc.weight").Match!.Kind);
        Assert.Empty(plan.UnusedSources);
    }

    [Fact]
    public void Plan_TwoSourcesStrippingToOneName_PairNeitherByPrefix()
    {
        // module.fc.weight and model.fc.weight both strip to fc.weight: a guess between them would be a coin toss.
        TensorInfo[] source = [T("module.fc.weight", 2, 4), T("model.fc.weight", 2, 4)];
        TensorInfo[] template = [T("fc.weight", 2, 4)];
        var plan = TransferPlanner.Plan(source, template, TransferPolicy.Default);
        Assert.Null(Get(plan, "fc.weight").Match);
        Assert.Equal(TargetStatus.Kept, Get(plan, "fc.weight").Status);
        Assert.Equal(2, plan.UnusedSources.Count);
    }

    [Fact]
    public void Plan_ExactNameWins_AndTheAmbiguityItLeavesStillBlocksPrefixPairs()
    {
        // fc.weight pairs exactly. module.fc.weight also strips to fc.weight, so that stripped name is ambiguous among
        // the sources: _orig_mod.fc.weight (stripping to fc.weight too) must not take module.fc.weight by prefix.
        TensorInfo[] source = [T("fc.weight", 2, 4), T("module.fc.weight", 2, 4)];
        TensorInfo[] template = [T("fc.weight", 2, 4), T("_orig_mod.fc.weight", 2, 4)];
        var plan = TransferPlanner.Plan(source, template, TransferPolicy.Default);
        Assert.Equal(MatchKind.Exact, Get(plan, "fc.weight").Match!.Kind);
        Assert.Null(Get(plan, "_orig_mod.fc.weight").Match);
        Assert.Equal(["module.fc.weight"], plan.UnusedSources.Select(s => s.Name));
    }

    [Fact]
    public void Plan_RenamedSource_IsNotPairedAgainByNameOrPrefix()
    {
        // The rule sends features.0.weight to stem.weight; the template's own features.0.weight must not take it too.
        TensorInfo[] source = [T("features.0.weight", 4, 3, 3, 3)];
        TensorInfo[] template = [T("stem.weight", 4, 3, 3, 3), T("features.0.weight", 4, 3, 3, 3)];
        var plan = TransferPlanner.Plan(source, template, TransferPolicy.Default with { Renames = [new RenameRule(@"^features\.0\.", "stem.")] });
        Assert.Equal(MatchKind.Rename, Get(plan, "stem.weight").Match!.Kind);
        Assert.Null(Get(plan, "features.0.weight").Match);
        Assert.Equal(TargetStatus.Kept, Get(plan, "features.0.weight").Status);
    }

    [Fact]
    public void Plan_RenameRule_PairsRenamedLayers()
    {
        TensorInfo[] source = [T("features.0.weight", 4, 3, 3, 3), T("features.0.bias", 4)];
        TensorInfo[] template = [T("stem.weight", 4, 3, 3, 3), T("stem.bias", 4)];
        var plan = TransferPlanner.Plan(source, template, TransferPolicy.Default with { Renames = [new RenameRule(@"^features\.0\.", "stem.")] });
        Assert.All(plan.Targets, t => Assert.Equal(MatchKind.Rename, t.Match!.Kind));
        Assert.Equal(TargetStatus.Copied, Get(plan, "stem.bias").Status);
    }

    [Fact]
    public void Plan_RenameRulesMappingTwoSourcesToOneTarget_FailNamingBoth()
    {
        TensorInfo[] source = [T("a.weight", 2, 2), T("b.weight", 2, 2)];
        TensorInfo[] template = [T("c.weight", 2, 2)];
        var policy = TransferPolicy.Default with { Renames = [new RenameRule(@"^a\.", "c."), new RenameRule(@"^b\.", "c.")] };
        var ex = Assert.Throws<TransferPlanException>(() => TransferPlanner.Plan(source, template, policy));
        Assert.Contains("'a.weight'", ex.Message);
        Assert.Contains("'b.weight'", ex.Message);
        Assert.Contains("'c.weight'", ex.Message);
    }

    [Fact]
    public void Plan_RenameRuleProducingAMissingName_FailsNamingTheTensor()
    {
        var policy = TransferPolicy.Default with { Renames = [RenameRule.Parse(@"^a\.=x.")] };
        var ex = Assert.Throws<TransferPlanException>(() => TransferPlanner.Plan([T("a.weight", 2, 2)], [T("c.weight", 2, 2)], policy));
        Assert.Contains("'a.weight'", ex.Message);
        Assert.Contains("'x.weight'", ex.Message);
    }

    private static readonly TensorInfo[] RenamedSource =
    [
        T("enc.c1.weight", 8, 3, 3, 3), T("enc.c1.bias", 8), T("enc.n1.weight", 8), T("enc.n1.bias", 8), T("enc.n1.running_mean", 8),
        T("enc.n1.running_var", 8), T("enc.c2.weight", 4, 8, 3, 3), T("enc.c2.bias", 4),
    ];

    private static readonly TensorInfo[] RenamedTemplate =
    [
        T("conv1.weight", 8, 3, 3, 3), T("conv1.bias", 8), T("bn1.weight", 8), T("bn1.bias", 8), T("bn1.running_mean", 8),
        T("bn1.running_var", 8), T("conv2.weight", 4, 8, 3, 3), T("conv2.bias", 4),
    ];

    [Fact]
    public void Plan_StructuralOff_LeavesRenamedArchitectureUnmatched()
    {
        var plan = TransferPlanner.Plan(RenamedSource, RenamedTemplate, TransferPolicy.Default);
        Assert.All(plan.Targets, t => Assert.Null(t.Match));
        Assert.Equal(RenamedSource.Length, plan.UnusedSources.Count);
    }

    [Fact]
    public void Plan_Structural_GuessesByOrderAndRoleAndReportsEachGuess()
    {
        var plan = TransferPlanner.Plan(RenamedSource, RenamedTemplate, TransferPolicy.Default with { StructuralMatching = true });
        Assert.All(plan.Targets, t => Assert.Equal(MatchKind.Structural, t.Match!.Kind));
        Assert.Equal("enc.c1.weight", Get(plan, "conv1.weight").Source!.Name);
        Assert.Equal("enc.n1.running_var", Get(plan, "bn1.running_var").Source!.Name);
        Assert.Equal("enc.c2.bias", Get(plan, "conv2.bias").Source!.Name);
        Assert.Contains(plan.Notes, n => n.Contains("conv2.weight ← enc.c2.weight", StringComparison.Ordinal));
    }

    [Fact]
    public void Plan_StructuralGuessRefusedByRule_StaysUnmatchedWithoutShiftingOthers()
    {
        var policy = TransferPolicy.Default with { StructuralMatching = true, Rules = [new TensorRule("conv1.*") { Structural = false }] };
        var plan = TransferPlanner.Plan(RenamedSource, RenamedTemplate, policy);
        Assert.Null(Get(plan, "conv1.weight").Match);
        Assert.Null(Get(plan, "conv1.bias").Source);
        Assert.Equal("enc.c2.weight", Get(plan, "conv2.weight").Source!.Name);
        Assert.Contains(plan.UnusedSources, s => s.Name == "enc.c1.weight");
    }

    [Fact]
    public void Plan_Structural_NeverPairsDifferentRoles()
    {
        // A weight-only conv must not take a conv with a bias; a Linear must not take a conv.
        TensorInfo[] source = [T("a.weight", 4, 3, 3, 3), T("a.bias", 4), T("b.weight", 4, 4)];
        TensorInfo[] template = [T("x.weight", 4, 3, 3, 3), T("y.weight", 4, 4, 3, 3)];
        var plan = TransferPlanner.Plan(source, template, TransferPolicy.Default with { StructuralMatching = true });
        Assert.All(plan.Targets, t => Assert.Null(t.Match));
    }
}
