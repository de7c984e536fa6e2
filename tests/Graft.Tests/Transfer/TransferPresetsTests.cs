using Graft.Transfer;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Tests.Transfer;

public class TransferPresetsTests
{
    [Fact]
    public void Get_KnownNames_ReturnThePresetsAndUnknownNamesListThem()
    {
        Assert.Same(TransferPresets.TimmLoadPretrained, TransferPresets.Get("timm"));
        Assert.Same(TransferPresets.KeepFunction, TransferPresets.Get("Keep_Function"));
        var ex = Assert.Throws<Graft.Checkpoints.InvalidInputException>(() => TransferPresets.Get("nope"));
        Assert.Contains("keep-function", ex.Message);
    }

    private static Sequential Net(int inputs, int classes) =>
        nn.Sequential(("conv1", nn.Conv2d(inputs, 4, 3)), ("r", nn.ReLU()), ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(4, classes)));

    [Fact]
    public void Timm_GrayscaleStemAndNewHead_SumsTheStemDropsTheHeadAndPassesStrict()
    {
        var source = Net(3, 10);
        var target = Net(1, 5);
        var report = Graft.Transfer.WeightTransfer.Modules(source, target, TransferPresets.TimmLoadPretrained);
        TensorAssert.Close(((Conv2d)source[0]).weight!.sum(1, keepdim: true), ((Conv2d)target[0]).weight!, 1e-6);
        Assert.Equal(TargetStatus.Kept, report.Targets.Single(t => t.Name == "fc.weight").Status);
    }

    [Fact]
    public void Timm_OtherMismatch_IsRefusedLikeStrictLoading()
    {
        var source = nn.Sequential(("conv1", nn.Conv2d(3, 4, 3)), ("conv2", nn.Conv2d(4, 4, 3)));
        var target = nn.Sequential(("conv1", nn.Conv2d(3, 4, 3)), ("conv2", nn.Conv2d(4, 6, 3)));
        Assert.Throws<TransferStrictException>(() => Graft.Transfer.WeightTransfer.Modules(source, target, TransferPresets.TimmLoadPretrained));
    }

    [Fact]
    public void KeepFunction_WiderStemAndMiddleAndMoreClasses_KeepsTheOldOutputs()
    {
        manual_seed(31);
        var source = nn.Sequential(("conv1", nn.Conv2d(3, 4, 3, padding: 1)), ("bn", nn.BatchNorm2d(4)), ("r", nn.ReLU()),
            ("conv2", nn.Conv2d(4, 4, 3, padding: 1)), ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(4, 3)));
        var target = nn.Sequential(("conv1", nn.Conv2d(4, 7, 3, padding: 1)), ("bn", nn.BatchNorm2d(7)), ("r", nn.ReLU()),
            ("conv2", nn.Conv2d(7, 4, 5, padding: 2)), ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(4, 5)));
        // Random BatchNorms on both sides (running_var positive), different: the copy and the new channels' values count.
        Growth.GrowthModels.RandomiseNorms(source, 32);
        Growth.GrowthModels.RandomiseNorms(target, 33);
        using var templateFc = ((Linear)target[6]).weight!.detach().clone();
        var templateBn = target.state_dict().Where(kv => kv.Key.StartsWith("bn.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        Graft.Transfer.WeightTransfer.Modules(source, target, TransferPresets.KeepFunction);
        var s = source.state_dict();
        var t = target.state_dict();
        foreach (var member in new[] { "weight", "bias", "running_mean", "running_var" })
        {
            var name = $"bn.{member}";
            TensorAssert.Close(s[name], t[name].narrow(0, 0, 4), 0, 0);
            // New channels keep the target's own init (trainable); they stay invisible because conv2's new inputs are zero.
            TensorAssert.Close(templateBn[name].narrow(0, 4, 3), t[name].narrow(0, 4, 3), 0, 0);
        }
        Assert.True(t["conv2.weight"].narrow(1, 4, 3).eq(0).all().item<bool>());
        source.eval();
        target.eval();
        using var x = randn(2, 3, 6, 6);
        using var extra = cat([x, randn(2, 1, 6, 6)], 1);
        using var y = target.forward(extra);
        TensorAssert.Close(source.forward(x), y.narrow(1, 0, 3), 1e-5);
        // The two new classes start from the target's own init (trainable), not from zeros.
        TensorAssert.Close(templateFc.narrow(0, 3, 2), ((Linear)target[6]).weight!.narrow(0, 3, 2), 0, 0);
    }
}
