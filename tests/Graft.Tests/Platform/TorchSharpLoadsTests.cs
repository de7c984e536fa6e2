using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Tests.Platform;

/// <summary>
/// Proves that TorchSharp's native library loads on this machine with no manual step (on Debian 12 this depends on
/// the build's compatibility step, build/Graft.TorchSharpCompat.targets) and that it computes correctly.
/// </summary>
public class TorchSharpLoadsTests
{
    [Fact]
    public void Conv2d_Forward_MatchesHandComputedValue()
    {
        // A 1→1 channel 2×2 convolution over a 3×3 input, checked against sums done by hand.
        using var x = tensor(new float[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 }).reshape(1, 1, 3, 3);
        using var w = tensor(new float[] { 1, 0, 0, -1 }).reshape(1, 1, 2, 2);
        using var b = tensor(new float[] { 0.5f });
        using var y = nn.functional.conv2d(x, w, b);
        Assert.Equal(new long[] { 1, 1, 2, 2 }, y.shape);
        // top-left: 1 - 5 + 0.5; every window gives a - (a + 4) + 0.5 = -3.5
        Assert.All(y.data<float>().ToArray(), v => Assert.Equal(-3.5f, v));
    }

    [Fact]
    public void Autograd_Square_GivesTwiceTheInput()
    {
        using var x = tensor(new float[] { 1.5f, -2f, 3f }, requires_grad: true);
        using var loss = (x * x).sum();
        loss.backward();
        Assert.Equal(new[] { 3f, -4f, 6f }, x.grad!.data<float>().ToArray());
    }
}
