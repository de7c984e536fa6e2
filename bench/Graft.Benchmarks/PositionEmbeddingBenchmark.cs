using BenchmarkDotNet.Attributes;
using Graft.Numerics;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Benchmarks;

/// <summary>
/// Resampling a ViT-L/16 position embedding (1, 1 + 24·24, 1024) from 224- to 384-pixel images (14×14 → 24×24,
/// bicubic, antialiased, as timm) and back, next to a plain copy of the same tensor (the peer in the same run); and the
/// numerics guard's self-check once libtorch is warm. Issue 13's target: the resampling within 10 ms.
/// </summary>
[Config(typeof(InProcessConfig))]
public class PositionEmbeddingBenchmark
{
    private Tensor _vitL224 = null!;
    private Tensor _vitL384 = null!;
    private WeightTransform _grow = null!;
    private WeightTransform _shrink = null!;

    [GlobalSetup]
    public void Setup()
    {
        manual_seed(0);
        _vitL224 = randn(1, 1 + (14 * 14), 1024) * 0.02;
        _vitL384 = randn(1, 1 + (24 * 24), 1024) * 0.02;
        _grow = PositionEmbedding.Resample(new PatchGrid(14, 14), new PatchGrid(24, 24));
        _shrink = PositionEmbedding.Resample(new PatchGrid(24, 24), new PatchGrid(14, 14));
    }

    [Benchmark(Baseline = true)]
    public void Copy()
    {
        using var c = _vitL384.clone();
    }

    [Benchmark]
    public void Grow224To384()
    {
        using var noGrad = no_grad();
        using var y = _grow.Apply(_vitL224);
    }

    [Benchmark]
    public void Shrink384To224()
    {
        using var noGrad = no_grad();
        using var y = _shrink.Apply(_vitL384);
    }

    [Benchmark]
    public NumericsCheckResult NumericsSelfCheckWarm() => NumericsCheck.Run();
}
