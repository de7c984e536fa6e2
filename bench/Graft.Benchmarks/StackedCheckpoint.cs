using Graft.Checkpoints;
using Graft.Checkpoints.Sharded;

namespace Graft.Benchmarks;

/// <summary>
/// Writes a large synthetic checkpoint by streaming: <c>copies</c> ResNet-50 layouts one after another (names prefixed
/// <c>m0.</c>, <c>m1.</c> …, ~102 MB each), whose bytes are generated while the writer consumes them, so a 4 GB
/// checkpoint is written with a few megabytes of memory. A path ending in <c>.safetensors.index.json</c> gives a sharded
/// safetensors checkpoint (shards of at most <c>maxShardBytes</c>); any other path, the format of its extension.
/// </summary>
public static class StackedCheckpoint
{
    /// <summary>Writes the checkpoint; returns the number of tensor bytes.</summary>
    public static long Write(string path, int copies, long maxShardBytes)
    {
        var layout = ResNet50Checkpoint.Layout();
        var noise = new float[1 << 20];
        var rng = new Random(copies);
        for (int i = 0; i < noise.Length; i++)
        {
            noise[i] = (float)(rng.NextDouble() - 0.5) * 0.1f;
        }
        var payloads = new List<TensorPayload>();
        int k = 0;
        for (int c = 0; c < copies; c++)
        {
            foreach (var (name, dtype, shape) in layout)
            {
                payloads.Add(new GeneratedPayload($"m{c}.{name}", dtype, shape, noise, k++));
            }
        }
        if (path.EndsWith(ShardedSafetensorsWriter.IndexSuffix, StringComparison.Ordinal))
        {
            ShardedSafetensorsWriter.Write(path, payloads, null, maxShardBytes);
        }
        else
        {
            CheckpointFile.Write(path, payloads);
        }
        return payloads.Sum(p => p.ByteLength);
    }

    /// <summary>Bytes produced on the fly from a shared block of noise, starting at an offset that depends on the tensor.</summary>
    private sealed class GeneratedPayload(string name, DType dtype, Shape shape, float[] noise, int index) : TensorPayload(name, dtype, shape)
    {
        public override void WriteTo(Stream destination)
        {
            var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(noise.AsSpan());
            if (DType != DType.F32)
            {
                Span<byte> zeros = stackalloc byte[8];
                zeros.Clear();
                for (long left = ByteLength; left > 0; left -= Math.Min(left, 8))
                {
                    destination.Write(zeros[..(int)Math.Min(left, 8)]);
                }
                return;
            }
            long remaining = ByteLength;
            int start = (int)((index * 7919L % noise.Length) * sizeof(float));
            while (remaining > 0)
            {
                int n = (int)Math.Min(remaining, bytes.Length - start);
                destination.Write(bytes.Slice(start, n));
                remaining -= n;
                start = 0;
            }
        }
    }
}
