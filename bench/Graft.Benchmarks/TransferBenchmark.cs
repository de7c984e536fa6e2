using BenchmarkDotNet.Attributes;
using Graft.Transfer;

namespace Graft.Benchmarks;

/// <summary>
/// <c>graft transfer</c>'s library call on a ResNet-50-sized checkpoint (~102 MB) into a 1-channel stem and a 5-class
/// head, next to a plain copy of the same file measured in the same run (the physical floor).
/// </summary>
[MemoryDiagnoser]
[Config(typeof(InProcessConfig))]
public class TransferBenchmark
{
    private string _dir = "";
    private string _source = "";
    private string _template = "";
    private string _output = "";

    [GlobalSetup]
    public void Setup()
    {
        _dir = Path.Combine(Path.GetTempPath(), "graft-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_dir);
        _source = Path.Combine(_dir, "resnet50.safetensors");
        _template = Path.Combine(_dir, "resnet50-gray-5.safetensors");
        _output = Path.Combine(_dir, "out.safetensors");
        ResNet50Checkpoint.Write(_source);
        ResNet50Checkpoint.Write(_template, inputs: 1, classes: 5, seed: 2);
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_dir, recursive: true);

    [Benchmark(Baseline = true, Description = "cp (File.Copy of the source)")]
    public void FileCopy() => File.Copy(_source, _output, overwrite: true);

    [Benchmark(Description = "graft transfer (1-channel stem, 5-class head)")]
    public TransferReport GraftTransfer() => Graft.Transfer.WeightTransfer.Files(_source, _template, _output);
}
