using Graft.Transfer;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Tests.Transfer;

/// <summary>
/// The three cases of the seed write-up (shared/seeds/000_…), done right and checked numerically on real convolutions.
/// </summary>
public class SeedCasesTests
{
    private static Tensor Image(long channels, long seed)
    {
        using var g = new Generator((ulong)seed);
        return randn(new long[] { 2, channels, 9, 9 }, generator: g);
    }

    [Fact]
    public void Case1_TruncateOutputChannels_SlicesOutAxisAndBiasFollows()
    {
        manual_seed(1);
        var source = nn.Conv2d(3, 64, 3);
        var target = nn.Conv2d(3, 32, 3);
        var report = Graft.Transfer.WeightTransfer.Modules(source, target);

        // Weight (32, 3, 3, 3): the first 32 filters, whole kernels (the seed's [..., :32] would have kept the kernel
        // width and failed on a 3-wide kernel).
        Assert.Equal(new long[] { 32, 3, 3, 3 }, target.weight!.shape);
        TensorAssert.Close(source.weight!.narrow(0, 0, 32), target.weight, 0, 0);
        TensorAssert.Close(source.bias!.narrow(0, 0, 32), target.bias!, 0, 0);
        // The target computes exactly the first 32 feature maps of the source.
        using var x = Image(3, 2);
        TensorAssert.Close(source.forward(x).narrow(1, 0, 32), target.forward(x), 1e-6);

        var w = report.Targets.Single(t => t.Name == "weight");
        Assert.Equal(TargetStatus.Adapted, w.Status);
        Assert.Equal("out.truncate", Assert.Single(w.Steps).Op);
        Assert.Equal(TargetStatus.Adapted, report.Targets.Single(t => t.Name == "bias").Status);
    }

    [Fact]
    public void Case2_RepeatInputChannels_SixChannelLayerOnTwiceTheImageGivesSourceOutput()
    {
        manual_seed(3);
        var source = nn.Conv2d(3, 32, 3);
        var target = nn.Conv2d(6, 32, 3);
        var report = Graft.Transfer.WeightTransfer.Modules(source, target);

        using var x = Image(3, 4);
        using var twice = cat([x, x], 1);
        TensorAssert.Close(source.forward(x), target.forward(twice), 1e-5, 1e-5);
        var w = report.Targets.Single(t => t.Name == "weight");
        Assert.Equal("in.repeat-rescale", Assert.Single(w.Steps).Op);
        Assert.Contains("stem", w.Reason);
        Assert.Equal(TargetStatus.Copied, report.Targets.Single(t => t.Name == "bias").Status);
        Assert.True(report.Summary.Complete);
    }

    [Fact]
    public void Case3_DefaultAdapt_KernelPadInputRepeatOutputPadWithTemplateInit()
    {
        manual_seed(5);
        var source = nn.Conv2d(3, 32, 3, padding: 1);
        var target = nn.Conv2d(6, 64, 5, padding: 2);
        using var templateWeight = target.weight!.detach().clone();
        using var templateBias = target.bias!.detach().clone();
        var report = Graft.Transfer.WeightTransfer.Modules(source, target);

        var w = report.Targets.Single(t => t.Name == "weight");
        Assert.Equal(TargetStatus.Adapted, w.Status);
        Assert.Equal(["in.repeat-rescale", "kernel.fit", "out.pad"], w.Steps.Select(s => s.Op));
        Assert.False(w.Complete); // 32 channels come from the template's init
        Assert.False(report.Summary.Complete);

        // The first 32 output maps reproduce the source exactly (kernel centred with matching padding, inputs repeated).
        using var x = Image(3, 6);
        using var twice = cat([x, x], 1);
        TensorAssert.Close(source.forward(x), target.forward(twice).narrow(1, 0, 32), 1e-5, 1e-5);
        // The other 32 keep the target's own init, weight and bias.
        TensorAssert.Close(templateWeight.narrow(0, 32, 32), target.weight!.narrow(0, 32, 32), 0, 0);
        TensorAssert.Close(templateBias.narrow(0, 32, 32), target.bias!.narrow(0, 32, 32), 0, 0);
        TensorAssert.Close(source.bias!, target.bias!.narrow(0, 0, 32), 0, 0);
    }

    [Fact]
    public void Case3_ReinitOnRequest_KaimingNormalFanOutAndBiasFromTemplate()
    {
        manual_seed(7);
        var source = nn.Conv2d(3, 32, 3);
        var target = nn.Conv2d(6, 64, 5);
        using var templateBias = target.bias!.detach().clone();
        var policy = TransferPolicy.Default with { Kernel = KernelRule.Reinit, Seed = 42 };
        var report = Graft.Transfer.WeightTransfer.Modules(source, target, policy);

        var w = report.Targets.Single(t => t.Name == "weight");
        Assert.Equal(TargetStatus.Reinitialized, w.Status);
        double expected = Math.Sqrt(2.0 / (64 * 25));
        Assert.InRange(target.weight!.std().item<float>(), expected * 0.93, expected * 1.07);
        Assert.InRange(target.weight.mean().item<float>(), -expected * 0.1, expected * 0.1);
        Assert.Equal(TargetStatus.Kept, report.Targets.Single(t => t.Name == "bias").Status);
        TensorAssert.Close(templateBias, target.bias!, 0, 0);
    }
}
