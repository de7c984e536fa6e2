using Graft.Linked;
using TorchSharp;
using static Graft.Tests.Linked.LinkTestKit;
using static TorchSharp.torch;

namespace Graft.Tests.Linked;

public class LinkedCacheTests
{
    [Fact]
    public void Cached_LayerUsedTwice_ComputesTheWeightOnce()
    {
        using var source = nn.Conv2d(2, 2, 3, padding: 1);
        var calls = 0;
        using var linked = Link.Conv2d(source, weightFunction: w => { calls++; return w.square(); });
        using var x = randn(1, 2, 4, 4);
        calls = 0;

        using (var cache = Link.Cached())
        {
            linked.forward(linked.forward(x));
            Assert.Equal(1, calls);
            Assert.Equal(1, cache.Count);
        }
        linked.forward(linked.forward(x));

        Assert.Equal(3, calls);
    }

    [Fact]
    public void Cached_Backward_GradientsEqualUncached()
    {
        manual_seed(50);
        using var source = nn.Conv2d(2, 2, 3, padding: 1);
        using var linked = Link.Conv2d(source, weightFunction: w => w.square(), bias: LinkedBias.Derived(function: b => b * 3));
        using var x = randn(1, 2, 4, 4);

        linked.forward(linked.forward(x)).sum().backward();
        using var uncached = source.weight.grad!.clone();
        using var uncachedBias = source.bias!.grad!.clone();
        source.zero_grad();
        using (Link.Cached())
        {
            linked.forward(linked.forward(x)).sum().backward();
        }

        AssertClose(uncached, source.weight.grad!, 1e-6);
        AssertClose(uncachedBias, source.bias!.grad!, 1e-6);
    }

    [Fact]
    public void Cached_AfterTheScope_SeesParameterUpdates()
    {
        using var source = nn.Conv2d(2, 2, 1);
        using var linked = Link.Conv2d(source, weightFunction: w => w * 2);

        using (Link.Cached())
        {
            using var inside = linked.DerivedWeight().detach().clone();
            using (no_grad())
            {
                source.weight.add_(1);
            }
            // Inside the scope the value is frozen, as with PyTorch's parametrize.cached().
            AssertClose(inside, linked.DerivedWeight().detach(), 0);
        }

        AssertClose((source.weight * 2).detach(), linked.DerivedWeight().detach(), 0);
    }

    [Fact]
    public void Cached_IdentityFunction_DoesNotDisposeTheSourceParameter()
    {
        using var source = nn.Conv2d(2, 2, 1);
        using var linked = Link.Conv2d(source, weightFunction: w => w);
        using var x = randn(1, 2, 3, 3);

        using (Link.Cached())
        {
            linked.forward(x);
        }

        Assert.False(source.weight.IsInvalid);
        using var y = source.forward(x);
        Assert.Equal(new long[] { 1, 2, 3, 3 }, y.shape);
    }

    [Fact]
    public void Cached_InsideCallerDisposeScope_KeepsTheCachedWeightAlive()
    {
        using var source = nn.Conv2d(2, 2, 1);
        using var linked = Link.Conv2d(source, weightFunction: w => w * 2);
        using var x = randn(1, 2, 3, 3);

        using (Link.Cached())
        {
            using (NewDisposeScope())
            {
                linked.forward(x);
            }
            using var y = linked.forward(x);
            Assert.Equal(new long[] { 1, 2, 3, 3 }, y.shape);
        }
    }
}
