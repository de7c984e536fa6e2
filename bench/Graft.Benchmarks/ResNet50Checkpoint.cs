using Graft.Checkpoints;

namespace Graft.Benchmarks;

/// <summary>
/// Writes a synthetic checkpoint with ResNet-50's tensor names and shapes (25.6 M parameters, ~102 MB of float32),
/// filled with seeded random values: the size and structure of the checkpoints users bring, without a download.
/// </summary>
public static class ResNet50Checkpoint
{
    /// <summary>The state-dict layout of torchvision's ResNet-50 with <paramref name="inputs"/> image channels and <paramref name="classes"/> classes.</summary>
    public static List<(string Name, DType DType, Shape Shape)> Layout(int inputs = 3, int classes = 1000)
    {
        var list = new List<(string, DType, Shape)>();
        void Bn(string p, long c)
        {
            list.Add(($"{p}.weight", DType.F32, new Shape(c)));
            list.Add(($"{p}.bias", DType.F32, new Shape(c)));
            list.Add(($"{p}.running_mean", DType.F32, new Shape(c)));
            list.Add(($"{p}.running_var", DType.F32, new Shape(c)));
            list.Add(($"{p}.num_batches_tracked", DType.I64, Shape.Scalar));
        }
        list.Add(("conv1.weight", DType.F32, new Shape(64, inputs, 7, 7)));
        Bn("bn1", 64);
        long inplanes = 64;
        int[] blocks = [3, 4, 6, 3];
        long[] planes = [64, 128, 256, 512];
        for (int l = 0; l < 4; l++)
        {
            for (int b = 0; b < blocks[l]; b++)
            {
                var p = $"layer{l + 1}.{b}";
                long w = planes[l];
                list.Add(($"{p}.conv1.weight", DType.F32, new Shape(w, inplanes, 1, 1)));
                Bn($"{p}.bn1", w);
                list.Add(($"{p}.conv2.weight", DType.F32, new Shape(w, w, 3, 3)));
                Bn($"{p}.bn2", w);
                list.Add(($"{p}.conv3.weight", DType.F32, new Shape(w * 4, w, 1, 1)));
                Bn($"{p}.bn3", w * 4);
                if (b == 0)
                {
                    list.Add(($"{p}.downsample.0.weight", DType.F32, new Shape(w * 4, inplanes, 1, 1)));
                    Bn($"{p}.downsample.1", w * 4);
                }
                inplanes = w * 4;
            }
        }
        list.Add(("fc.weight", DType.F32, new Shape(classes, 2048)));
        list.Add(("fc.bias", DType.F32, new Shape(classes)));
        return list;
    }

    /// <summary>Writes the checkpoint to <paramref name="path"/> (safetensors or .pt by extension).</summary>
    public static void Write(string path, int inputs = 3, int classes = 1000, int seed = 1)
    {
        var rng = new Random(seed);
        var payloads = Layout(inputs, classes).Select(t =>
        {
            var bytes = new byte[t.Shape.ElementCount * t.DType.ElementSize()];
            if (t.DType == DType.F32)
            {
                var floats = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes.AsSpan());
                for (int i = 0; i < floats.Length; i++)
                {
                    floats[i] = (float)(rng.NextDouble() - 0.5) * 0.1f;
                }
            }
            return TensorPayload.FromBytes(t.Name, t.DType, t.Shape, bytes);
        });
        CheckpointFile.Write(path, payloads);
    }
}
