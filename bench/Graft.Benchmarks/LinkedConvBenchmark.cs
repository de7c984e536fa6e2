using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Graft.Linked;
using Graft.Transforms;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Benchmarks;

/// <summary>
/// The cost of a link: forward and backward of a Conv2d whose weight is the element-wise square of another Conv2d's
/// weight, against a plain Conv2d of the same shape (batch 8, 64→64 channels, 56×56, kernel 3, padding 1). The
/// extra work is one square of a 64·64·9 weight and its backward, against a convolution of ~0.9 GMAC each way.
/// </summary>
/// <remarks>
/// Single-threaded (see Setup); runs in process (see <see cref="InProcessConfig"/>).
/// </remarks>
[Config(typeof(InProcessConfig))]
public class LinkedConvBenchmark
{
    private Conv2d _plain = null!;
    private Conv2d _source = null!;
    private LinkedConv _linked = null!;
    private Tensor _input = null!;

    [GlobalSetup]
    public void Setup()
    {
        // One intra-op thread: the figure is an overhead ratio, and a single thread keeps it stable on a shared machine.
        set_num_threads(1);
        manual_seed(0);
        _plain = nn.Conv2d(64, 64, 3, padding: 1);
        _source = nn.Conv2d(64, 64, 3, padding: 1);
        _linked = Link.Conv2d(_source, weight: ElementWise.Square);
        _input = randn(8, 64, 56, 56);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _linked.Dispose();
        _source.Dispose();
        _plain.Dispose();
        _input.Dispose();
    }

    [Benchmark(Baseline = true)]
    public void PlainConv2d_ForwardBackward()
    {
        using var scope = NewDisposeScope();
        _plain.zero_grad();
        _plain.forward(_input).sum().backward();
    }

    /// <summary>The forum answer by hand: the functional convolution with the squared weight, no module.</summary>
    [Benchmark]
    public void FunctionalConv2dSquare_ForwardBackward()
    {
        using var scope = NewDisposeScope();
        _source.zero_grad();
        nn.functional.conv2d(_input, _source.weight.square(), _source.bias, padding: [1, 1]).sum().backward();
    }

    [Benchmark]
    public void LinkedConv2dSquare_ForwardBackward()
    {
        using var scope = NewDisposeScope();
        _source.zero_grad();
        _linked.forward(_input).sum().backward();
    }
}
