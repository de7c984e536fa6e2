using Graft.Transfer;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Tests.Transfer;

/// <summary>
/// The proof: with largest-norm truncation and traced dependencies, the transferred network computes exactly what the
/// source computes with the same channels removed by hand (float64, eval mode).
/// </summary>
public class ChannelGroupTests
{
    private static readonly TransferPolicy L2 = TransferPolicy.Default with { OutShrink = OutShrinkRule.LargestL2 };

    /// <summary>The k channels with the largest summed squared weights, in order; computed here, independently of Graft.</summary>
    private static long[] TopL2(int k, params Tensor[] weights)
    {
        var total = weights.Select(w => w.detach().square().flatten(1).sum(1)).Aggregate((a, b) => a + b);
        var values = total.data<double>().ToArray();
        return Enumerable.Range(0, values.Length).OrderByDescending(i => values[i]).ThenBy(i => i).Take(k).Order().Select(i => (long)i).ToArray();
    }

    private static Tensor Pick(Tensor t, int axis, long[] idx)
    {
        using var i = tensor(idx);
        return t.detach().index_select(axis, i);
    }

    private static void Set(Tensor dest, Tensor value)
    {
        using var g = no_grad();
        dest.copy_(value);
    }

    private static void Randomise(BatchNorm2d bn, int c)
    {
        using var g = no_grad();
        bn.weight!.copy_(rand(c, dtype: ScalarType.Float64) + 0.5);
        bn.bias!.copy_(randn(c, dtype: ScalarType.Float64));
        bn.running_mean!.copy_(randn(c, dtype: ScalarType.Float64));
        bn.running_var!.copy_(rand(c, dtype: ScalarType.Float64) + 0.5);
    }

    private static Sequential Chain(int mid) => nn.Sequential(("c1", nn.Conv2d(3, mid, 3, padding: 1)), ("bn", nn.BatchNorm2d(mid)), ("r", nn.ReLU()),
        ("c2", nn.Conv2d(mid, 4, 3, padding: 1)));

    [Fact]
    public void Modules_ConvBnReluConv_LargestNormMatchesChannelsRemovedByHand()
    {
        manual_seed(21);
        var source = Chain(8).to(ScalarType.Float64);
        Randomise((BatchNorm2d)source[1], 8);
        var target = Chain(5).to(ScalarType.Float64);
        var report = Graft.Transfer.WeightTransfer.Modules(source, target, L2, [2, 3, 6, 6]);

        var sc1 = (Conv2d)source[0];
        var sbn = (BatchNorm2d)source[1];
        var sc2 = (Conv2d)source[3];
        var keep = TopL2(5, sc1.weight!);
        Assert.NotEqual([0L, 1, 2, 3, 4], keep);
        var expected = Chain(5).to(ScalarType.Float64);
        var (ec1, ebn, ec2) = ((Conv2d)expected[0], (BatchNorm2d)expected[1], (Conv2d)expected[3]);
        Set(ec1.weight!, Pick(sc1.weight!, 0, keep));
        Set(ec1.bias!, Pick(sc1.bias!, 0, keep));
        Set(ebn.weight!, Pick(sbn.weight!, 0, keep));
        Set(ebn.bias!, Pick(sbn.bias!, 0, keep));
        Set(ebn.running_mean!, Pick(sbn.running_mean!, 0, keep));
        Set(ebn.running_var!, Pick(sbn.running_var!, 0, keep));
        Set(ec2.weight!, Pick(sc2.weight!, 1, keep));
        Set(ec2.bias!, sc2.bias!.detach());

        target.eval();
        expected.eval();
        using var x = randn([3, 3, 6, 6], dtype: ScalarType.Float64);
        TensorAssert.Close(expected.forward(x), target.forward(x), 1e-6, 0);
        Assert.Equal(keep, report.Targets.Single(t => t.Name == "bn.running_var").ChannelIndices!);
        Assert.Contains(report.Groups, g => g.Key == "c1+bn" && g.Consumers.SequenceEqual(["c2"]) && g.Origin == ChannelGroupOrigin.Traced);
        Assert.Contains("follow", report.Targets.Single(t => t.Name == "c2.weight").Reason);
    }

    private sealed class Residual : nn.Module<Tensor, Tensor>
    {
        private readonly Conv2d a;
        private readonly Conv2d b;
        private readonly Conv2d c;

        public Residual(int width) : base("residual")
        {
            a = nn.Conv2d(3, width, 3, padding: 1);
            b = nn.Conv2d(3, width, 1);
            c = nn.Conv2d(width, 2, 3, padding: 1);
            RegisterComponents();
        }

        public Conv2d A => a;
        public Conv2d B => b;
        public Conv2d C => c;

        public override Tensor forward(Tensor input) => c.call(nn.functional.relu(a.call(input) + b.call(input)));
    }

    [Fact]
    public void Modules_ResidualAdd_BranchesShareOneDecisionAndMatchChannelsRemovedByHand()
    {
        manual_seed(22);
        var source = new Residual(8).to(ScalarType.Float64);
        var target = new Residual(3).to(ScalarType.Float64);
        var report = Graft.Transfer.WeightTransfer.Modules(source, target, L2, [2, 3, 5, 5]);

        var keep = TopL2(3, source.A.weight!, source.B.weight!);
        var expected = new Residual(3).to(ScalarType.Float64);
        Set(expected.A.weight!, Pick(source.A.weight!, 0, keep));
        Set(expected.A.bias!, Pick(source.A.bias!, 0, keep));
        Set(expected.B.weight!, Pick(source.B.weight!, 0, keep));
        Set(expected.B.bias!, Pick(source.B.bias!, 0, keep));
        Set(expected.C.weight!, Pick(source.C.weight!, 1, keep));
        Set(expected.C.bias!, source.C.bias!.detach());

        using var x = randn([2, 3, 5, 5], dtype: ScalarType.Float64);
        TensorAssert.Close(expected.forward(x), target.forward(x), 1e-6, 0);
        Assert.Equal(keep, report.Targets.Single(t => t.Name == "a.weight").ChannelIndices!);
        Assert.Equal(keep, report.Targets.Single(t => t.Name == "b.weight").ChannelIndices!);
        Assert.Contains(report.Groups, g => g.Producers.Order().SequenceEqual(["a", "b"]) && g.Consumers.SequenceEqual(["c"]));
    }

    private static Sequential Head(int width) => nn.Sequential(("conv", nn.Conv2d(2, width, 3)), ("r", nn.ReLU()), ("flat", nn.Flatten()),
        ("fc", nn.Linear(width * 4, 3)));

    [Fact]
    public void Modules_ConvFlattenLinear_LinearFollowsInBlocksOfHW()
    {
        manual_seed(23);
        var source = Head(6).to(ScalarType.Float64);
        var target = Head(4).to(ScalarType.Float64);
        var report = Graft.Transfer.WeightTransfer.Modules(source, target, L2, [1, 2, 4, 4]);

        var sconv = (Conv2d)source[0];
        var sfc = (Linear)source[3];
        var keep = TopL2(4, sconv.weight!);
        var features = keep.SelectMany(c => Enumerable.Range(0, 4).Select(b => c * 4 + b)).ToArray();
        var expected = Head(4).to(ScalarType.Float64);
        Set(((Conv2d)expected[0]).weight!, Pick(sconv.weight!, 0, keep));
        Set(((Conv2d)expected[0]).bias!, Pick(sconv.bias!, 0, keep));
        Set(((Linear)expected[3]).weight!, Pick(sfc.weight!, 1, features));
        Set(((Linear)expected[3]).bias!, sfc.bias!.detach());

        using var x = randn([3, 2, 4, 4], dtype: ScalarType.Float64);
        TensorAssert.Close(expected.forward(x), target.forward(x), 1e-6, 0);
        Assert.Contains(report.Groups, g => g.Key == "conv" && g.Consumers.SequenceEqual(["fc×4"]));
    }

    [Fact]
    public void Modules_NoInputShape_FallsBackToFirstNAndSaysWhy()
    {
        manual_seed(24);
        var source = Chain(8);
        var target = Chain(5);
        var report = Graft.Transfer.WeightTransfer.Modules(source, target, L2);
        var c1 = report.Targets.Single(t => t.Name == "c1.weight");
        Assert.Contains("first-n used", c1.Reason);
        Assert.Contains("no dependency information", c1.Reason);
        Assert.Null(c1.ChannelIndices);
        Assert.Contains(report.Notes, n => n.StartsWith("c1:", StringComparison.Ordinal) && n.Contains("first-n used", StringComparison.Ordinal));
        TensorAssert.Close(((Conv2d)source[0]).weight!.narrow(0, 0, 5), ((Conv2d)target[0]).weight!, 0, 0);
    }

    private sealed class Concat : nn.Module<Tensor, Tensor>
    {
        private readonly Conv2d a;
        private readonly Conv2d b;
        private readonly Conv2d c;

        public Concat(int width) : base("concat")
        {
            a = nn.Conv2d(3, width, 1);
            b = nn.Conv2d(3, width, 1);
            c = nn.Conv2d(2 * width, 2, 1);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input) => c.call(cat([a.call(input), b.call(input)], 1));
    }

    [Fact]
    public void Modules_UntraceableConcat_FallsBackToFirstNWithTheTracersReason()
    {
        manual_seed(25);
        var report = Graft.Transfer.WeightTransfer.Modules(new Concat(6), new Concat(4), L2, [1, 3, 4, 4]);
        var a = report.Targets.Single(t => t.Name == "a.weight");
        Assert.Contains("first-n used", a.Reason);
        Assert.Contains("untraced input", a.Reason);
        Assert.Null(a.ChannelIndices);
    }

    [Fact]
    public void Modules_DeclaredGroupDisagreesWithTrace_FailsAndWritesNothing()
    {
        var source = Chain(8);
        var target = Chain(5);
        using var before = ((Conv2d)target[0]).weight!.detach().clone();
        var policy = L2 with { Groups = [ChannelGroup.Parse("c1->c2")] }; // forgets the BatchNorm the trace sees
        var ex = Assert.Throws<TransferPlanException>(() => Graft.Transfer.WeightTransfer.Modules(source, target, policy, [1, 3, 4, 4]));
        Assert.Contains("disagree", ex.Message);
        Assert.Contains("c1", ex.Message);
        TensorAssert.Close(before, ((Conv2d)target[0]).weight!, 0, 0);
    }

    [Fact]
    public void Modules_DeclaredGroupWithoutTrace_IsUsed()
    {
        manual_seed(26);
        var source = Chain(8);
        var target = Chain(5);
        var report = Graft.Transfer.WeightTransfer.Modules(source, target, L2 with { Groups = [ChannelGroup.Parse("c1,bn->c2")] });
        var keep = TopL2(5, ((Conv2d)source[0]).weight!.to(ScalarType.Float64));
        Assert.Equal(keep, report.Targets.Single(t => t.Name == "c1.weight").ChannelIndices!);
        TensorAssert.Close(Pick(((Conv2d)source[3]).weight!, 1, keep), ((Conv2d)target[3]).weight!, 0, 0);
        Assert.Contains(report.Groups, g => g.Origin == ChannelGroupOrigin.Declared);
    }

    [Fact]
    public void Plan_GroupWhoseProducersDisagreeOnCounts_FailsNamingThem()
    {
        var source = new Residual(8);
        var target = new Residual(3);
        var policy = L2 with { Groups = [new ChannelGroup(["a", "c"], [])] };
        var ex = Assert.Throws<TransferPlanException>(() => Graft.Transfer.WeightTransfer.Modules(source, target, policy));
        Assert.Contains("a 8→3", ex.Message);
        Assert.Contains("c 2→2", ex.Message);
    }
}
