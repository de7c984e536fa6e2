using Graft.Checkpoints.PyTorch;
using Graft.TestSupport;

namespace Graft.Checkpoints.Tests.PyTorch;

[CollectionDefinition(nameof(ResidentMemory), DisableParallelization = true)]
public sealed class ResidentMemory
{
}

/// <summary>
/// Copying a PyTorch checkpoint's tensors must not make the file resident: a 512 MiB <c>.pt</c> converted to
/// safetensors once peaked at about the file's size (its bytes were copied through a memory mapping). The resident set
/// of this process is sampled while it converts; alone in its collection, so no other test's allocations count.
/// </summary>
[Collection(nameof(ResidentMemory))]
public sealed class PyTorchStreamingTests
{
    private const int Tensors = 8;
    private const long TensorBytes = 64L << 20;

    /// <summary>A large tensor whose bytes are made as they are written (a pattern that depends on tensor and offset).</summary>
    private sealed class PatternPayload(string name, int seed) : TensorPayload(name, DType.F32, new Shape(TensorBytes / 4))
    {
        public override void WriteTo(Stream destination)
        {
            var chunk = new byte[1 << 20];
            for (long done = 0; done < TensorBytes; done += chunk.Length)
            {
                Fill(chunk, seed, done);
                destination.Write(chunk);
            }
        }

        public static void Fill(Span<byte> chunk, int seed, long offset)
        {
            for (int i = 0; i < chunk.Length; i += 8)
            {
                BitConverter.TryWriteBytes(chunk[i..], (offset + i) * 31 + seed);
            }
        }
    }

    private static long ResidentBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
        }
        throw new InvalidOperationException("no VmRSS in /proc/self/status");
    }

    [LinuxOnlyFact("reads the resident set from /proc/self/status")]
    public void Convert_HalfGigabytePt_ResidentSetStaysFlat()
    {
        using var dir = new TempDir();
        var pt = Path.Combine(dir.Path, "big.pt");
        var st = Path.Combine(dir.Path, "big.safetensors");
        PyTorchWriter.Write(pt, Enumerable.Range(0, Tensors).Select(i => (TensorPayload)new PatternPayload($"layer{i}.weight", i)));
        Assert.True(new FileInfo(pt).Length > Tensors * TensorBytes);

        GC.Collect();
        long baseline = ResidentBytes(), peak = baseline;
        using var reader = CheckpointFile.Open(pt);
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                peak = Math.Max(peak, ResidentBytes());
                Thread.Sleep(2);
            }
        });
        CheckpointFile.Write(st, reader.Tensors.Select(t => TensorPayload.FromCheckpoint(reader, t)));
        stop.Cancel();
        sampler.Wait();
        peak = Math.Max(peak, ResidentBytes());

        long grew = peak - baseline;
        Assert.True(grew < 96L << 20, $"converting a {Tensors * TensorBytes >> 20} MiB .pt grew the resident set by {grew >> 20} MiB");

        // And the bytes are the ones written, spot-checked at the start and end of every tensor.
        using var output = CheckpointFile.Open(st);
        var expected = new byte[1 << 20];
        foreach (var t in output.Tensors)
        {
            int seed = int.Parse(t.Name["layer".Length..t.Name.IndexOf('.', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture);
            var all = new byte[t.ByteLength];
            output.ReadBytes(t, all);
            foreach (long at in new[] { 0L, TensorBytes - expected.Length })
            {
                PatternPayload.Fill(expected, seed, at);
                Assert.True(all.AsSpan((int)at, expected.Length).SequenceEqual(expected), $"{t.Name} differs near byte {at}");
            }
        }
    }
}
