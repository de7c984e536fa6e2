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
        using var templateFc = ((Linear)target[6]).weight!.detach().clone();
        Graft.Transfer.WeightTransfer.Modules(source, target, TransferPresets.KeepFunction);
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
