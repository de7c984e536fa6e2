using System.Diagnostics;
using System.Globalization;
using Graft.Checkpoints;

namespace Graft.Benchmarks;

/// <summary>
/// Wall-clock load timings for bench/compare/load-vs-torch.sh: the same file, warm in the page cache, loaded several
/// times in one process after a warm-up, reporting the median. Not a BenchmarkDotNet benchmark: the script compares it
/// with <c>torch.load</c> in another process, so both sides time only the load itself, the same way.
/// </summary>
public static class LoadBenchmark
{
    /// <summary>
    /// Opens the checkpoint with <see cref="CheckpointFile"/> and creates a TorchSharp tensor for every tensor through
    /// <see cref="TensorBridge.Read"/> (bytes read straight into the tensor's memory). Returns the median in milliseconds.
    /// </summary>
    public static double Load(string path, int repetitions)
    {
        return Median(repetitions, () =>
        {
            long bytes = 0;
            using var reader = CheckpointFile.Open(path);
            var tensors = new List<TorchSharp.torch.Tensor>(reader.Tensors.Count);
            foreach (var t in reader.Tensors)
            {
                tensors.Add(TensorBridge.Read(reader, t));
                bytes += t.ByteLength;
            }
            return (bytes, tensors);
        });
    }

    /// <summary>The floor: reads the whole file into one preallocated buffer. Returns the median in milliseconds.</summary>
    public static double ReadFile(string path, int repetitions)
    {
        var buffer = new byte[new FileInfo(path).Length];
        return Median(repetitions, () =>
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            fs.ReadExactly(buffer);
            return (buffer.LongLength, new List<TorchSharp.torch.Tensor>());
        });
    }

    private static double Median(int repetitions, Func<(long Bytes, List<TorchSharp.torch.Tensor> Keep)> run)
    {
        var times = new List<double>();
        for (var i = -1; i < repetitions; i++) // i = -1: warm-up (JIT, page cache, libtorch allocator)
        {
            var watch = Stopwatch.StartNew();
            var (_, keep) = run();
            watch.Stop();
            foreach (var t in keep)
            {
                t.Dispose();
            }
            if (i >= 0)
            {
                times.Add(watch.Elapsed.TotalMilliseconds);
            }
        }
        times.Sort();
        return times[times.Count / 2];
    }

    /// <summary>Runs a mode from the command line and prints <c>median_ms=…</c>.</summary>
    public static int Run(string mode, string path, int repetitions)
    {
        var ms = mode == "load" ? Load(path, repetitions) : ReadFile(path, repetitions);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median_ms={ms:0.0}"));
        return 0;
    }
}
