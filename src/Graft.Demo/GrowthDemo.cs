using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

using Graft.Growth;

namespace Graft.Demo;

/// <summary>What <see cref="GrowthDemo.Run"/> measured.</summary>
/// <param name="Widened">Small network vs the Net2Wider-widened one, on random images.</param>
/// <param name="Deepened">Small network vs the same with identity Conv2d + BatchNorm2d inserted after a ReLU.</param>
/// <param name="InflatedMaxAbsolute">Largest |difference| between the stem on images and its I3D inflation on clips of identical frames.</param>
public sealed record GrowthDemoResult(OutputDifference Widened, OutputDifference Deepened, double InflatedMaxAbsolute)
{
    /// <summary>True when every grown network computes what the small one did (float32 tolerances; NaN fails).</summary>
    public bool Verified => Failures.Count == 0;

    /// <summary>Each growth whose network does not compute what the small one did, with its measured difference.</summary>
    public IReadOnlyList<string> Failures
    {
        get
        {
            var failed = new List<string>(3);
            if (!Widened.Within(1e-5))
            {
                failed.Add($"wider: relative difference {Widened.MaxRelative:0.###e+0} > 1e-5");
            }
            if (!Deepened.Within(1e-5))
            {
                failed.Add($"deeper: relative difference {Deepened.MaxRelative:0.###e+0} > 1e-5");
            }
            if (!(InflatedMaxAbsolute < 1e-4))
            {
                failed.Add($"3-D: max |difference| {InflatedMaxAbsolute:0.###e+0} ≥ 1e-4");
            }
            return failed;
        }
    }
}

/// <summary>
/// Grows a small conv → BN → ReLU → conv → BN → ReLU → pool → fc network three ways and checks that it still computes
/// the same function: wider (Net2WiderNet: 16→24 and 32→48 channels, the head following through the pool), deeper (an
/// identity convolution and BatchNorm after a ReLU) and 3-D (the stem inflated to 3×3×3 on clips of identical frames).
/// </summary>
public static class GrowthDemo
{
    /// <summary>Runs the three growths and prints the measured differences to <paramref name="output"/>.</summary>
    public static GrowthDemoResult Run(TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        using var scope = NewDisposeScope();
        manual_seed(11);
        var small = SmallCnn.Create(3, 16, 3, 32, 10);
        var wide = SmallCnn.Create(3, 24, 3, 48, 10);
        SmallCnn.RandomizeBatchNormStatistics(small);
        var plan = Net2Wider.Apply(small, wide, [WidthGroup.Of("conv1", "bn1", "conv2"), WidthGroup.Of("conv2", "bn2", "fc")], new WidenOptions { Seed = 1 });
        var images = Enumerable.Range(0, 3).Select(i => randn(4, 3, 16, 16)).ToArray();
        var widened = Verify.Compare(small, wide, i => images[i], images.Length);

        var deeper = nn.Sequential(
            ("conv1", At(small, 0)), ("bn1", At(small, 1)), ("relu1", At(small, 2)),
            ("identity", Net2Deeper.IdentityConv2d(16)), ("identity_bn", Net2Deeper.IdentityBatchNorm2d(16)), ("relu_new", nn.ReLU()),
            ("conv2", At(small, 3)), ("bn2", At(small, 4)), ("relu2", At(small, 5)), ("pool", At(small, 6)), ("flatten", At(small, 7)), ("fc", At(small, 8)));
        var deepened = Verify.Compare(small, deeper, i => images[i], images.Length);

        var stem = (Conv2d)small[0];
        var stem3d = Inflate.Conv2d(stem, time: 3);
        double inflated;
        using (no_grad())
        {
            var clip = Inflate.IdenticalFrames(images[0], 3);
            inflated = (stem3d.forward(clip).squeeze(2) - stem.forward(images[0])).abs().max().item<float>();
        }

        var result = new GrowthDemoResult(widened, deepened, inflated);
        string F(double v) => v.ToString("0.###e+0", CultureInfo.InvariantCulture);
        output.WriteLine("Growth: the same function in a bigger network (eval mode, random images).");
        output.WriteLine($"  wider   (Net2WiderNet, conv1 16→24, conv2 32→48, fc follows through the pool): max |diff| {F(widened.MaxAbsolute)}, relative {F(widened.MaxRelative)}{(plan.Exact ? "" : " (not exact: " + string.Join("; ", plan.Notes) + ")")}");
        output.WriteLine($"  deeper  (identity conv 3×3 + BatchNorm after relu1):                           max |diff| {F(deepened.MaxAbsolute)}, relative {F(deepened.MaxRelative)}");
        output.WriteLine($"  3-D     (stem inflated to 3×3×3, clips of 3 identical frames):                 max |diff| {F(inflated)}");
        output.WriteLine(result.Verified ? "  verified." : "  GROWTH VERIFICATION FAILED.");
        return result;
    }

    private static nn.Module<Tensor, Tensor> At(Sequential net, int i) => (nn.Module<Tensor, Tensor>)net[i];
}
