using Graft.Growth;
using Graft.Transfer;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Graft.Tests.Growth;

public class PreserveFunctionTests(ITestOutputHelper output)
{
    [Fact]
    public void Policy_TransferIntoWiderResidualNetwork_KeepsOutputs()
    {
        // No width groups: the transfer planner's per-layer decisions (first n, new inputs zero) already keep the function.
        manual_seed(91);
        var source = new TinyResNet(4, 3);
        GrowthModels.RandomiseNorms(source, 92);
        var target = new TinyResNet(9, 5);
        using var s = StateDictCheckpoint.FromModule(source);
        using var t = StateDictCheckpoint.FromModule(target);
        Assert.Empty(PreserveFunction.Problems(Graft.Transfer.WeightTransfer.Plan(s, t, PreserveFunction.Policy)));
        Graft.Transfer.WeightTransfer.Modules(source, target, PreserveFunction.Policy);
        var d = Verify.Compare(source, target, GrowthModels.Inputs(93, 2, 3, 5, 5), 4);
        // A float64 source transfers in float64 (new inputs zero, first channels copied): exact, not float32-close.
        Assert.All(target.parameters(), p => Assert.Equal(ScalarType.Float64, p.dtype));
        GrowthModels.AssertWithin(d, GrowthModels.Float64Exact, output);
    }

    [Fact]
    public void Problems_ShrinkAndOddKernelGrowth_AreListed()
    {
        var source = nn.Sequential(("c1", nn.Conv2d(3, 8, 3)), ("c2", nn.Conv2d(8, 4, 3)));
        var target = nn.Sequential(("c1", nn.Conv2d(3, 6, 3)), ("c2", nn.Conv2d(6, 4, 4)));
        using var s = StateDictCheckpoint.FromModule(source);
        using var t = StateDictCheckpoint.FromModule(target);
        var plan = Graft.Transfer.WeightTransfer.Plan(s, t, PreserveFunction.Policy with { InChannels = InChannelRule.Auto });
        var problems = PreserveFunction.Problems(plan);
        Assert.Contains(problems, p => p.StartsWith("c1.weight: out channels shrink 8→6", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("c2.weight: inputs 8→6", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("c2.weight: kernel 3×3→4×4", StringComparison.Ordinal));
    }

    [Fact]
    public void Policy_InputsShrink_IsPlannedAndRefusedWithTheReason()
    {
        // Planned as keep-function plans it (first inputs kept), then refused by Problems: a refusal that names the
        // shrink, never an error about a zero-extend rule the user did not give.
        var source = nn.Sequential(("c1", nn.Conv2d(3, 8, 3)), ("c2", nn.Conv2d(8, 4, 3)));
        var target = nn.Sequential(("c1", nn.Conv2d(3, 6, 3)), ("c2", nn.Conv2d(6, 4, 3)));
        using var s = StateDictCheckpoint.FromModule(source);
        using var t = StateDictCheckpoint.FromModule(target);
        var plan = Graft.Transfer.WeightTransfer.Plan(s, t, PreserveFunction.Policy);
        Assert.Contains(PreserveFunction.Problems(plan), p => p.StartsWith("c2.weight: inputs 8→6 by truncate", StringComparison.Ordinal));
        var e = Assert.Throws<TransferStrictException>(() => PreserveFunction.EnsureKept(plan));
        Assert.StartsWith("--preserve-function: the source's function cannot be kept", e.Message, StringComparison.Ordinal);
    }
}
