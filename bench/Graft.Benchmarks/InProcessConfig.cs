using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Graft.Benchmarks;

/// <summary>
/// Every Graft benchmark runs in process: BenchmarkDotNet's generated child project does not get the TorchSharp
/// compatibility step of build/, so on Debian 12 its libLibTorchSharp.so would not load; this process was built with it.
/// </summary>
public sealed class InProcessConfig : ManualConfig
{
    /// <summary>One launch, 3 warm-ups, 30 measured iterations; median and minimum shown beside the mean.</summary>
    public InProcessConfig() => AddJob(Job.Default
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithStrategy(RunStrategy.Throughput)
            .WithLaunchCount(1)
            .WithWarmupCount(3)
            .WithIterationCount(30))
        .AddColumn(StatisticColumn.Median, StatisticColumn.Min);
}
