using Graft.Transfer;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Tests.Transfer;

/// <summary>Transfer across every layer kind the issue names, checked on the modules' outputs.</summary>
public class LayerKindsTests
{
    [Fact]
    public void Depthwise_FewerChannels_KeepsTheFirstChannelsFilters()
    {
        manual_seed(21);
        var source = nn.Conv2d(8, 8, 3, groups: 8);
        var target = nn.Conv2d(4, 4, 3, groups: 4);
        Graft.Transfer.WeightTransfer.Modules(source, target);
        using var x = randn(1, 8, 7, 7);
        TensorAssert.Close(source.forward(x).narrow(1, 0, 4), target.forward(x.narrow(1, 0, 4)), 1e-6);
    }

    [Fact]
    public void GroupedConv_DeclaredGroups_KeepFirstChannelsOfEachGroup()
    {
        // groups=2 on both sides; each group keeps its first 2 of 4 filters, and the target sees the same inputs.
        manual_seed(22);
        var source = nn.Conv2d(4, 8, 3, groups: 2);
        var target = nn.Conv2d(4, 4, 3, groups: 2);
        var policy = TransferPolicy.Default with { Rules = [new TensorRule("weight") { Layout = Layout.Conv(2, groups: 2) }] };
        Graft.Transfer.WeightTransfer.Modules(source, target, policy);
        using var x = randn(1, 4, 6, 6);
        using var y = source.forward(x);
        using var idx = tensor(new long[] { 0, 1, 4, 5 });
        TensorAssert.Close(y.index_select(1, idx), target.forward(x), 1e-6);
    }

    [Fact]
    public void Conv1d_And_Conv3d_KernelGrowthWithMatchingPadding_KeepOutputs()
    {
        manual_seed(23);
        var s1 = nn.Conv1d(2, 3, 3, padding: 1);
        var t1 = nn.Conv1d(2, 3, 5, padding: 2);
        Graft.Transfer.WeightTransfer.Modules(s1, t1);
        using var x1 = randn(2, 2, 9);
        TensorAssert.Close(s1.forward(x1), t1.forward(x1), 1e-6);

        var s3 = nn.Conv3d(2, 3, 3, padding: 1);
        var t3 = nn.Conv3d(2, 3, 5, padding: 2);
        Graft.Transfer.WeightTransfer.Modules(s3, t3);
        using var x3 = randn(new long[] { 1, 2, 5, 5, 5 });
        TensorAssert.Close(s3.forward(x3), t3.forward(x3), 1e-5);
    }

    [Fact]
    public void ConvTranspose2d_DeclaredLayout_TruncatesOutputChannelsOnAxisOne()
    {
        manual_seed(24);
        var source = nn.ConvTranspose2d(4, 6, 2, stride: 2);
        var target = nn.ConvTranspose2d(4, 3, 2, stride: 2);
        var policy = TransferPolicy.Default with { Rules = [new TensorRule("weight") { Layout = Layout.ConvTranspose(2) }] };
        var report = Graft.Transfer.WeightTransfer.Modules(source, target, policy);
        Assert.Equal("ConvTranspose2d", report.Targets.Single(t => t.Name == "weight").Layout);
        using var x = randn(1, 4, 3, 3);
        TensorAssert.Close(source.forward(x).narrow(1, 0, 3), target.forward(x), 1e-6);
    }

    [Fact]
    public void Linear_WiderInputsAndFewerOutputs_KeepsTheFunctionOnOldInputs()
    {
        manual_seed(25);
        var source = nn.Linear(6, 4);
        var target = nn.Linear(9, 3);
        var policy = TransferPolicy.Default with { Head = HeadRule.KeepFirst };
        Graft.Transfer.WeightTransfer.Modules(source, target, policy);
        using var x = randn(5, 6);
        using var extra = randn(5, 3) * 10;
        TensorAssert.Close(source.forward(x).narrow(1, 0, 3), target.forward(cat([x, extra], 1)), 1e-5);
    }
}
