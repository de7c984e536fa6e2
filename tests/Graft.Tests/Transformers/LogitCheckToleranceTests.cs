using Graft.Checkpoints;
using Graft.Transfer;
using Graft.Transformers;
using Graft.Transforms;

namespace Graft.Tests.Transformers;

/// <summary>
/// The logits check's tolerance follows what the transfer rounds, not the checkpoints' dtype: copies, zeros and halvings
/// are exact in bfloat16 too, so a bfloat16 model widened ×2 is held to float32's 64 unit roundoffs (3.8e-6 of the
/// largest logit) and an o_proj off by 1/64 fails; a ×3 widening divides by 3, which rounds in bfloat16, and is held to
/// bfloat16's (0.25). Before, every bfloat16 transfer was held to 0.25, which the same wrong o_proj passed.
/// </summary>
public sealed class LogitCheckToleranceTests : IDisposable
{
    private const double Float32Tolerance = 64.0 / (1 << 24);
    private const double BFloat16Tolerance = 64.0 / (1 << 8);

    private readonly DecoderFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly TinySpec Small = new(Layers: 2, Vocab: 97);

    /// <summary>A tiny decoder written as by <see cref="TinySpec"/>, its tensors stored in bfloat16 (rounded from float32).</summary>
    private string BFloat16(string name, TinySpec spec, int seed)
    {
        var f32 = _dir.Write(name + "-f32", spec, seed);
        var folder = Path.Combine(_dir.Root, name);
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(Path.GetDirectoryName(f32)!, "config.json"), Path.Combine(folder, "config.json"));
        var path = Path.Combine(folder, "model.safetensors");
        using var reader = CheckpointFile.Open(f32);
        CheckpointFile.Write(path, reader.Tensors.Select(t =>
        {
            var bytes = new byte[t.ByteLength];
            reader.ReadBytes(t, bytes);
            return TensorPayload.FromBytes(t.Name, DType.BF16, t.Shape, Twins.Encode<float>(Twins.Decode<float>(bytes, DType.F32), DType.BF16));
        }).ToList());
        return path;
    }

    private static TensorPayload Scaled(TensorPayload p, float factor)
    {
        using var ms = new MemoryStream();
        p.WriteTo(ms);
        var values = Twins.Decode<float>(ms.ToArray(), p.DType);
        for (int i = 0; i < values.Length; i++)
        {
            values[i] *= factor;
        }
        return TensorPayload.FromBytes(p.Name, p.DType, p.Shape, Twins.Encode<float>(values, p.DType));
    }

    [Fact]
    public void BFloat16_WidenedByTwo_HeldToFloat32Tolerance_AndPasses()
    {
        var to = Small with { Hidden = 128, Heads = 16, KvHeads = 16, Intermediate = 256 };
        var src = BFloat16("src", Small, 71);
        var tpl = BFloat16("tpl", to, 72);
        var (_, report) = _dir.Transfer(src, tpl, preserve: true);
        var l = report.Logits!;
        Assert.True(l.Measured && l.Claimed && l.Passed, l.Describe());
        Assert.Equal(Float32Tolerance, l.Tolerance);
        Assert.True(l.MaxAbsLogit > 1e-3 && l.Relative <= 1e-12, $"copies and halvings are exact in bfloat16: {l.Describe()}");
    }

    [Fact]
    public void BFloat16_WidenedByThree_DividesByThree_HeldToBFloat16Tolerance()
    {
        var to = Small with { Hidden = 192, Heads = 24, KvHeads = 24, Intermediate = 384 };
        var src = BFloat16("src", Small, 73);
        var tpl = BFloat16("tpl", to, 74);
        var (_, report) = _dir.Transfer(src, tpl, preserve: true);
        var l = report.Logits!;
        Assert.True(l.Measured && l.Claimed && l.Passed, l.Describe());
        Assert.Equal(BFloat16Tolerance, l.Tolerance);
        // Dividing by 3 in bfloat16 rounds: a measurable change, far inside bfloat16's tolerance.
        Assert.InRange(l.Relative, 1e-6, 0.05);
    }

    [Fact]
    public void BFloat16_WidenedByTwo_OProjOffBySixtyFourth_Fails()
    {
        var to = Small with { Hidden = 128, Heads = 16, KvHeads = 16, Intermediate = 256 };
        var src = BFloat16("src", Small, 75);
        var tpl = BFloat16("tpl", to, 76);
        const string broken = "model.layers.1.self_attn.o_proj.weight";
        LogitCheck.InjectForTests.Value = p => p.Name != broken ? p : Scaled(p, 1 + 1f / 64);
        try
        {
            var e = Assert.Throws<TransferStrictException>(() => _dir.Transfer(src, tpl, preserve: true));
            var line = Assert.Single(e.Violations, v => v.Contains("NOT kept", StringComparison.Ordinal));
            // The change is well under bfloat16's 0.25, which let it pass before.
            var relative = double.Parse(System.Text.RegularExpressions.Regex.Match(line, @"= ([0-9.e+-]+) of the largest").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(relative, Float32Tolerance * 2, BFloat16Tolerance / 10);
            Assert.False(File.Exists(Path.Combine(_dir.Root, "out", "model.safetensors")));
        }
        finally
        {
            LogitCheck.InjectForTests.Value = null;
        }
    }
}
