using Graft.Growth;
using Graft.Transforms;
using Graft.Transfer;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Graft.Tests.Growth;

public class Net2WiderTests(ITestOutputHelper output)
{
    private static readonly WidthGroup[] PlainGroups =
    [
        WidthGroup.Of("c1", "bn1", "c2"),
        WidthGroup.Of("c2", "bn2", "fc"),   // fc reads the channels through global pooling: blocks of 1
    ];

    private static readonly WidthGroup[] ResNetGroups =
    [
        // The residual stream: every layer added into it shares one map.
        new(["c0", "c2", "c4"], ["bn0", "bn2", "bn4"], ["c1", "c3", "fc"]),
        WidthGroup.Of("c1", "bn1", "c2"),
        WidthGroup.Of("c3", "bn3", "c4"),
    ];

    private static readonly WidthGroup[] FlattenGroups = [WidthGroup.Of("c1", "bn1", new ChannelConsumer("fc", BlockSize: 16))];

    private OutputDifference Check(nn.Module<Tensor, Tensor> source, nn.Module<Tensor, Tensor> target, long seed, params long[] inputShape)
    {
        var d = Verify.Compare(source, target, GrowthModels.Inputs(seed, inputShape), 4);
        output.WriteLine($"max |diff| = {d.MaxAbsolute:g3}, max relative = {d.MaxRelative:g3}");
        return d;
    }

    /// <summary>Net2WiderNet and zero-outgoing growth are exact: float64 outputs agree to <see cref="GrowthModels.Float64Exact"/>.</summary>
    private void CheckExact(nn.Module<Tensor, Tensor> source, nn.Module<Tensor, Tensor> target, long seed, params long[] inputShape)
    {
        Assert.All(target.parameters(), p => Assert.Equal(ScalarType.Float64, p.dtype));
        GrowthModels.AssertWithin(Verify.Compare(source, target, GrowthModels.Inputs(seed, inputShape), 4), GrowthModels.Float64Exact, output);
    }

    [Theory]
    [InlineData(WidenMethod.Net2Wider)]
    [InlineData(WidenMethod.ZeroOutgoing)]
    public void Widen_PlainChainWithBatchNorm_KeepsOutputs(WidenMethod method)
    {
        manual_seed(1);
        var source = GrowthModels.PlainChain(4, 6);
        GrowthModels.RandomiseNorms(source, 2);
        var target = GrowthModels.PlainChain(7, 11);
        var plan = Net2Wider.Apply(source, target, PlainGroups, new WidenOptions { Method = method, Seed = 3 });
        Assert.True(plan.Exact);
        CheckExact(source, target, 4, 2, 3, 6, 6);
    }

    [Theory]
    [InlineData(WidenMethod.Net2Wider)]
    [InlineData(WidenMethod.ZeroOutgoing)]
    public void Widen_ResidualNetwork_SharedMapKeepsOutputs(WidenMethod method)
    {
        manual_seed(5);
        var source = new TinyResNet(4, 3);
        GrowthModels.RandomiseNorms(source, 6);
        var target = new TinyResNet(9, 5);
        Net2Wider.Apply(source, target, ResNetGroups, new WidenOptions { Method = method, Seed = 7 });
        CheckExact(source, target, 8, 2, 3, 5, 5);
    }

    [Theory]
    [InlineData(WidenMethod.Net2Wider)]
    [InlineData(WidenMethod.ZeroOutgoing)]
    public void Widen_ConvFlattenLinear_ChannelsOwnBlocksOfFeatures(WidenMethod method)
    {
        manual_seed(9);
        var source = GrowthModels.FlattenHead(3);
        GrowthModels.RandomiseNorms(source, 10);
        var target = GrowthModels.FlattenHead(8);
        Net2Wider.Apply(source, target, FlattenGroups, new WidenOptions { Method = method, Seed = 11 });
        CheckExact(source, target, 12, 3, 2, 4, 4);
    }

    [Theory]
    [InlineData(WidenMethod.Net2Wider)]
    [InlineData(WidenMethod.ZeroOutgoing)]
    public void Widen_ThroughADepthwiseConvolution_KeepsOutputs(WidenMethod method)
    {
        // The depthwise convolution acts on each channel alone, like a BatchNorm: it follows the map on its out axis
        // (one filter per channel, copied with its channel, never divided) and its groups grow with the width.
        manual_seed(6);
        var source = GrowthModels.DepthwiseBlock(4, 6);
        GrowthModels.RandomiseNorms(source, 7);
        var target = GrowthModels.DepthwiseBlock(7, 9);
        WidthGroup[] groups =
        [
            new(["c1"], Channelwise: ["bn1", "dw", "bn2"], Consumers: ["pw"]),
            WidthGroup.Of("pw", "bn3", "fc"),
        ];
        var plan = Net2Wider.Apply(source, target, groups, new WidenOptions { Method = method, Seed = 8 });
        Assert.True(plan.Exact);
        CheckExact(source, target, 9, 2, 3, 6, 6);
    }

    [Fact]
    public void Widen_LinearProducer_KeepsOutputs()
    {
        manual_seed(25);
        static TorchSharp.Modules.Sequential Mlp(long hidden) => nn.Sequential(
            ("l1", nn.Linear(5, hidden, dtype: ScalarType.Float64)), ("r", nn.ReLU()), ("l2", nn.Linear(hidden, 3, dtype: ScalarType.Float64)));
        var source = Mlp(7);
        var target = Mlp(12);
        Net2Wider.Apply(source, target, [WidthGroup.Of("l1", null, "l2")], new WidenOptions { Seed = 26 });
        CheckExact(source, target, 27, 4, 5);
    }

    [Fact]
    public void Widen_ResidualBranchesWithSeparateMaps_ChangeTheFunction()
    {
        // Why residual producers share one group: with their own random maps the added channels no longer line up.
        manual_seed(13);
        var source = new TinyResNet(4, 3);
        GrowthModels.RandomiseNorms(source, 14);
        var target = new TinyResNet(9, 3);
        WidthGroup[] wrong =
        [
            new(["c0"], ["bn0"], ["c1"]),
            new(["c2"], ["bn2"], ["c3"]),
            new(["c4"], ["bn4"], ["fc"]),
        ];
        var plan = Net2Wider.Apply(source, target, wrong, new WidenOptions { Seed = 15 });
        Assert.NotEqual(plan.Maps[0].Map, plan.Maps[1].Map);
        var d = Check(source, target, 16, 2, 3, 5, 5);
        Assert.True(double.IsFinite(d.MaxRelative), $"the difference is not finite: {d}");   // NaN must not count as "different"
        Assert.True(d.MaxRelative > 1e-3, $"max relative difference {d.MaxRelative:g6}: the function did not change");
    }

    [Fact]
    public void Widen_WithNoise_ReportsBrokenExactnessAndStaysClose()
    {
        manual_seed(17);
        var source = GrowthModels.PlainChain(4, 6);
        GrowthModels.RandomiseNorms(source, 18);
        var target = GrowthModels.PlainChain(8, 12);
        var plan = Net2Wider.Apply(source, target, PlainGroups, new WidenOptions { Noise = 0.01, Seed = 19 });
        Assert.False(plan.Exact);
        Assert.Contains(plan.Notes, n => n.Contains("breaks exactness", StringComparison.Ordinal));
        Assert.Contains(plan.Steps, s => s.Name == "c1.weight" && s.Transform.Introduces == Introduced.Random);
        var d = Check(source, target, 20, 2, 3, 6, 6);
        Assert.InRange(d.MaxRelative, 1e-9, 0.1);
    }

    [Fact]
    public void Plan_Net2Wider_ReplicatesProducerAndDividesConsumer()
    {
        manual_seed(21);
        var source = GrowthModels.PlainChain(2, 3);
        var target = GrowthModels.PlainChain(5, 3);
        var plan = Net2Wider.Apply(source, target, [WidthGroup.Of("c1", "bn1", "c2")], new WidenOptions { Seed = 1 });
        var map = plan.Maps.Single().Map;
        Assert.Equal([0L, 1], map.Indices.Take(2));
        var counts = map.ReplicaCounts();
        using var idx = tensor(map.ToArray());
        TensorAssert.Close(source.get_parameter("c1.weight")!.index_select(0, idx), target.get_parameter("c1.weight")!, 0, 0);
        TensorAssert.Close(source.get_buffer("bn1.running_var")!.index_select(0, idx), target.get_buffer("bn1.running_var")!, 0, 0);
        for (int j = 0; j < 5; j++)
        {
            using var expected = source.get_parameter("c2.weight")!.select(1, map.Indices[j]) / counts[j];
            TensorAssert.Close(expected, target.get_parameter("c2.weight")!.select(1, j), 1e-15, 1e-12);
        }
        Assert.Equal("in.replicate+in.divide-replicas", plan.Steps.Single(s => s.Name == "c2.weight").Transform.Op);
        Assert.Equal("out.net2wider", plan.Steps.Single(s => s.Name == "c1.bias").Transform.Op);
        Assert.Same(WeightTransform.Identity, plan.Steps.Single(s => s.Name == "fc.weight").Transform);
    }

    [Fact]
    public void Plan_ZeroOutgoing_NewUnitsHaveZeroOutgoingWeightsAndTemplateIncoming()
    {
        manual_seed(23);
        var source = GrowthModels.PlainChain(2, 3);
        var target = GrowthModels.PlainChain(4, 3);
        using var templateW = target.get_parameter("c1.weight")!.detach().clone();
        Net2Wider.Apply(source, target, [WidthGroup.Of("c1", "bn1", "c2")], new WidenOptions { Method = WidenMethod.ZeroOutgoing });
        TensorAssert.Close(source.get_parameter("c1.weight")!, target.get_parameter("c1.weight")!.narrow(0, 0, 2), 0, 0);
        TensorAssert.Close(templateW.narrow(0, 2, 2), target.get_parameter("c1.weight")!.narrow(0, 2, 2), 0, 0);
        Assert.Equal(0.0, target.get_parameter("c2.weight")!.narrow(1, 2, 2).abs().max().item<double>());
    }

    [Fact]
    public void Plan_ZeroOutgoingKaiming_IsDeterministicForASeed()
    {
        var source = GrowthModels.PlainChain(2, 3);
        var a = GrowthModels.PlainChain(6, 3);
        var b = GrowthModels.PlainChain(6, 3);
        var options = new WidenOptions { Method = WidenMethod.ZeroOutgoing, NewUnits = NewUnitInit.KaimingNormal, Seed = 4 };
        Net2Wider.Apply(source, a, [WidthGroup.Of("c1", "bn1", "c2")], options);
        Net2Wider.Apply(source, b, [WidthGroup.Of("c1", "bn1", "c2")], options);
        TensorAssert.Close(a.get_parameter("c1.weight")!, b.get_parameter("c1.weight")!, 0, 0);
        TensorAssert.Close(zeros(4, dtype: ScalarType.Float64), a.get_parameter("c1.bias")!.narrow(0, 2, 4), 0, 0);
    }

    [Fact]
    public void Plan_LayerMissingFromGroups_NamesTheTensor()
    {
        var source = GrowthModels.PlainChain(2, 3);
        var target = GrowthModels.PlainChain(4, 3);
        var ex = Assert.Throws<ArgumentException>(() => Net2Wider.Plan(source, target, [WidthGroup.Of("c1", "bn1")]));
        Assert.Contains("c2.weight", ex.Message);
        Assert.Contains("width group", ex.Message);
    }

    [Fact]
    public void Plan_GroupMembersOfDifferentWidths_AreRefused()
    {
        var source = GrowthModels.PlainChain(2, 3);
        var target = GrowthModels.PlainChain(4, 5);
        var ex = Assert.Throws<ArgumentException>(() => Net2Wider.Plan(source, target, [new WidthGroup(["c1", "c2"], [], [])]));
        Assert.Contains("share one width", ex.Message);
    }

    [Fact]
    public void Plan_LayerInTwoGroups_IsRefused()
    {
        var source = GrowthModels.PlainChain(2, 3);
        var target = GrowthModels.PlainChain(4, 3);
        var ex = Assert.Throws<ArgumentException>(() => Net2Wider.Plan(source, target, [WidthGroup.Of("c1", "bn1", "c2"), WidthGroup.Of("c1", null, "c2")]));
        Assert.Contains("more than one width group", ex.Message);
    }

    [Fact]
    public void Widen_ThenTrain_LossDecreases()
    {
        // A few SGD steps on a synthetic task after Net2WiderNet with symmetry-breaking noise: the grown network learns.
        manual_seed(31);
        var source = GrowthModels.PlainChain(3, 4, ScalarType.Float32);
        var target = GrowthModels.PlainChain(6, 8, ScalarType.Float32);
        Net2Wider.Apply(source, target, PlainGroups, new WidenOptions { Noise = 0.01, Seed = 32 });
        using var g = new Generator(33);
        using var x = randn(new long[] { 32, 3, 6, 6 }, generator: g);
        using var y = randn(new long[] { 32, 5 }, generator: g);
        target.train();
        var optimizer = optim.SGD(target.parameters(), 0.05);
        var losses = new List<float>();
        for (int step = 0; step < 30; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(target.forward(x), y);
            loss.backward();
            optimizer.step();
            losses.Add(loss.item<float>());
        }
        output.WriteLine($"loss {losses[0]:g4} → {losses[^1]:g4}");
        Assert.True(losses[^1] < 0.9 * losses[0], $"loss went {losses[0]} → {losses[^1]}");
    }
}
