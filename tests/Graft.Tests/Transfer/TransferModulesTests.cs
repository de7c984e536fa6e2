using Graft.Transfer;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Tests.Transfer;

public class TransferModulesTests
{
    [Fact]
    public void Modules_LargestL2_BiasFollowsAndIndicesAreReported()
    {
        manual_seed(11);
        var source = nn.Conv2d(2, 6, 3);
        var target = nn.Conv2d(2, 3, 3);
        using (no_grad())
        {
            // Make channels 1, 3 and 4 the strongest.
            var scale = tensor(new float[] { 0.1f, 5, 0.1f, 4, 3, 0.1f }).reshape(6, 1, 1, 1);
            source.weight!.mul_(scale);
        }
        var report = Graft.Transfer.WeightTransfer.Modules(source, target, TransferPolicy.Default with { OutShrink = OutShrinkRule.LargestL2 });
        var w = report.Targets.Single(t => t.Name == "weight");
        Assert.Equal([1L, 3, 4], w.ChannelIndices!);
        using var idx = tensor(new long[] { 1, 3, 4 });
        TensorAssert.Close(source.weight!.index_select(0, idx), target.weight!, 0, 0);
        TensorAssert.Close(source.bias!.index_select(0, idx), target.bias!, 0, 0);
        Assert.Equal([1L, 3, 4], report.Targets.Single(t => t.Name == "bias").ChannelIndices!);
    }

    [Fact]
    public void Modules_Strict_RefusesBeforeTouchingTheTarget()
    {
        var source = nn.Conv2d(3, 8, 3);
        var target = nn.Conv2d(3, 16, 3);
        using var before = target.weight!.detach().clone();
        var ex = Assert.Throws<TransferStrictException>(() => Graft.Transfer.WeightTransfer.Modules(source, target, TransferPolicy.Default with { Strict = true }));
        Assert.Contains("weight", ex.Message);
        TensorAssert.Close(before, target.weight!, 0, 0);
    }

    [Fact]
    public void Modules_DTypeDiffers_CastsAndReports()
    {
        var source = nn.Linear(4, 2).to(ScalarType.Float64);
        var target = nn.Linear(4, 2);
        var report = Graft.Transfer.WeightTransfer.Modules(source, target);
        Assert.All(report.Targets, t => Assert.Equal(TargetStatus.Cast, t.Status));
        TensorAssert.Close(source.weight!, target.weight!, 1e-7);
    }

    [Fact]
    public void Modules_NewChannelsKaiming_DrawsDeterministicallyForASeed()
    {
        var source = nn.Conv2d(3, 4, 3);
        var a = nn.Conv2d(3, 64, 3);
        var b = nn.Conv2d(3, 64, 3);
        var policy = TransferPolicy.Default with { NewChannels = NewChannelRule.KaimingNormal, Seed = 9 };
        Graft.Transfer.WeightTransfer.Modules(source, a, policy);
        Graft.Transfer.WeightTransfer.Modules(source, b, policy);
        TensorAssert.Close(a.weight!, b.weight!, 0, 0);
        TensorAssert.Close(zeros(60), a.bias!.narrow(0, 4, 60), 0, 0);
        double expected = Math.Sqrt(2.0 / (64 * 9));
        Assert.InRange(a.weight!.narrow(0, 4, 60).std().item<float>(), expected * 0.9, expected * 1.1);
    }

    [Fact]
    public void Modules_ConvToBatchNormToConv_WiderNetworkKeepsTheFunctionOnOldChannels()
    {
        // Widen the middle of conv → BN → ReLU → conv with zeros for new out channels: new channels are silent after
        // BN only if BN's new channels are zero too, which the Zeros rule does (scale and shift zero, variance 1).
        // Both BatchNorms are random (running_var positive) and differ, so a copy that skipped BatchNorm, or filled its
        // new channels from the template, would fail.
        manual_seed(13);
        var source = nn.Sequential(("c1", nn.Conv2d(2, 4, 3, padding: 1)), ("bn", nn.BatchNorm2d(4)), ("r", nn.ReLU()), ("c2", nn.Conv2d(4, 3, 3, padding: 1)));
        var target = nn.Sequential(("c1", nn.Conv2d(2, 7, 3, padding: 1)), ("bn", nn.BatchNorm2d(7)), ("r", nn.ReLU()), ("c2", nn.Conv2d(7, 3, 3, padding: 1)));
        Growth.GrowthModels.RandomiseNorms(source, 14);
        Growth.GrowthModels.RandomiseNorms(target, 15);
        var report = Graft.Transfer.WeightTransfer.Modules(source, target, TransferPolicy.Default with { NewChannels = NewChannelRule.Zeros });
        var s = source.state_dict();
        var t = target.state_dict();
        foreach (var (member, fresh) in new[] { ("weight", 0.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0) })
        {
            TensorAssert.Close(s[$"bn.{member}"], t[$"bn.{member}"].narrow(0, 0, 4), 0, 0);
            TensorAssert.Close(full(3, fresh), t[$"bn.{member}"].narrow(0, 4, 3), 0, 0);
        }
        source.eval();
        target.eval();
        using var x = randn(2, 2, 6, 6);
        TensorAssert.Close(source.forward(x), target.forward(x), 1e-5);
        // c2 reads only 4 inputs in the source but is not the first convolution: an interior layer, not a stem.
        Assert.Contains("zero weights", report.Targets.Single(t => t.Name == "c2.weight").Reason);
    }
}
