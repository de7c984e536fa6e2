using Graft.Checkpoints;
using Graft.Checkpoints.Transformers;
using Graft.Growth;
using Graft.Transfer;
using Graft.Transformers;
using static TorchSharp.torch;

namespace Graft.Tests.Transformers;

/// <summary>
/// The product's own logits check (<see cref="LogitCheck"/>, TorchSharp float64) held to the tests' float64
/// <see cref="ReferenceDecoder"/>: the same logits to 1e-12 on every tiny family, the same measured change on exact,
/// broken and non-exact transfers, and a transfer that breaks its claim fails with nothing written.
/// </summary>
public sealed class LogitCheckTests : IDisposable
{
    private readonly DecoderFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private static Func<string, Tensor?> Loader(Dictionary<string, Tensor64> w) => name =>
        w.TryGetValue(name, out var t) ? tensor(t.Data, t.Shape, dtype: ScalarType.Float64) : null;

    public static TheoryData<string> Families => ["gqa", "qwen2", "mixtral", "tied"];

    private static TinySpec Spec(string family) => family switch
    {
        "gqa" => new(KvHeads: 2, Layers: 2, Vocab: 97),
        "qwen2" => new(KvHeads: 4, Layers: 2, Vocab: 97, QkvBias: true),
        "mixtral" => new(KvHeads: 2, Layers: 2, Vocab: 97, Experts: 4, TopK: 2),
        _ => new(KvHeads: 1, Layers: 2, Vocab: 97, Tied: true),
    };

    /// <summary>The product's forward pass gives the reference decoder's logits to 1e-12 of the largest.</summary>
    [Theory]
    [MemberData(nameof(Families))]
    public void DecoderForward_AgreesWithReferenceDecoder_To1e12(string family)
    {
        var spec = Spec(family);
        var path = _dir.Write(family, spec, seed: 41);
        var config = TransformerConfig.FindBeside(path)!;
        var w = TinySpec.Load(path);
        foreach (var tokens in LogitCheck.TokenSequences(spec.Vocab).Take(2))
        {
            var expected = ReferenceDecoder.Logits(w, spec.Heads, spec.KvHeads, spec.Layers, spec.TopK, spec.Tied, tokens.Select(t => (int)t).ToArray());
            using var actual = DecoderForward.Logits(config, Loader(w), tokens);
            Assert.Equal([tokens.Length, (long)spec.Vocab], actual.shape);
            var a = actual.data<double>().ToArray();
            double scale = expected.SelectMany(r => r).Max(Math.Abs);
            Assert.True(scale > 1e-3, $"degenerate logits ({scale})");
            for (int t = 0; t < tokens.Length; t++)
            {
                for (int j = 0; j < spec.Vocab; j++)
                {
                    double e = expected[t][j], x = a[t * spec.Vocab + j];
                    Assert.True(double.IsFinite(x) && Math.Abs(e - x) <= 1e-12 * scale, $"{family} logit [{t}, {j}]: {x} vs the reference {e}");
                }
            }
        }
    }

    /// <summary>Phi-3's fused qkv_proj ([q; k; v] rows) and gate_up_proj ([gate; up]) are read as their row blocks: the unfused model's logits.</summary>
    [Fact]
    public void DecoderForward_FusedProjections_ReadAsRowBlocks()
    {
        var spec = Spec("gqa");
        var path = _dir.Write("fused", spec, seed: 43);
        var config = TransformerConfig.FindBeside(path)!;
        var w = TinySpec.Load(path);
        var fused = new Dictionary<string, Tensor64>(w);
        for (int l = 0; l < spec.Layers; l++)
        {
            var p = $"model.layers.{l}.";
            Tensor64 Stack(params string[] parts)
            {
                var ts = parts.Select(x => fused[p + x]).ToArray();
                foreach (var x in parts)
                {
                    fused.Remove(p + x);
                }
                return new Tensor64([ts.Sum(t => t.Shape[0]), ts[0].Shape[1]], ts.SelectMany(t => t.Data).ToArray());
            }
            fused[p + "self_attn.qkv_proj.weight"] = Stack("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight");
            fused[p + "mlp.gate_up_proj.weight"] = Stack("mlp.gate_proj.weight", "mlp.up_proj.weight");
        }
        var tokens = LogitCheck.TokenSequences(spec.Vocab)[0];
        var expected = ReferenceDecoder.Logits(w, spec.Heads, spec.KvHeads, spec.Layers, 0, false, tokens.Select(t => (int)t).ToArray());
        using var actual = DecoderForward.Logits(config, Loader(fused), tokens);
        var a = actual.data<double>().ToArray();
        double scale = expected.SelectMany(r => r).Max(Math.Abs);
        for (int t = 0; t < tokens.Length; t++)
        {
            for (int j = 0; j < spec.Vocab; j++)
            {
                Assert.True(double.IsFinite(a[t * spec.Vocab + j]) && Math.Abs(expected[t][j] - a[t * spec.Vocab + j]) <= 1e-12 * scale, $"logit [{t}, {j}]");
            }
        }
    }

    /// <summary>The relative change the reference decoder measures between two checkpoints on the check's own token sequences.</summary>
    private static double ReferenceRelativeChange(string source, TinySpec before, string output, TinySpec to)
    {
        double worst = 0, scale = 0;
        int vocab = Math.Min(before.Vocab, to.Vocab);
        foreach (var tokens in LogitCheck.TokenSequences(vocab))
        {
            var t = tokens.Select(x => (int)x).ToArray();
            var a = DecoderFolder.Logits(source, before, t);
            var b = DecoderFolder.Logits(output, to, t);
            for (int i = 0; i < t.Length; i++)
            {
                for (int j = 0; j < vocab; j++)
                {
                    worst = Math.Max(worst, Math.Abs(a[i][j] - b[i][j]));
                    scale = Math.Max(scale, Math.Abs(a[i][j]));
                }
            }
        }
        return worst / scale;
    }

    /// <summary>An exact transfer (GQA → MHA, wider, deeper, more experts) is measured by default and within float32 roundoff.</summary>
    [Fact]
    public void Transfer_Exact_MeasuredByDefault_AgreesWithReference()
    {
        var before = new TinySpec(KvHeads: 2, Layers: 2, Vocab: 97, Experts: 4, TopK: 2);
        var to = before with { Hidden = 128, Heads = 16, KvHeads = 16, Intermediate = 256, Layers = 3, Experts = 8, TopK = 4 };
        var src = _dir.Write("src", before, 51);
        var tpl = _dir.Write("tpl", to, 52);
        var (output, report) = _dir.Transfer(src, tpl, preserve: true);
        var l = report.Logits!;
        Assert.True(l.Measured && l.Claimed && l.Passed, l.Describe());
        Assert.Equal(LogitCheck.Sequences, l.Sequences);
        Assert.Equal(64 * DecoderFolder.Float32Roundoff, l.Tolerance);
        Assert.True(l.MaxAbsLogit > 1e-3 && double.IsFinite(l.Relative) && l.Relative <= l.Tolerance, l.Describe());
        double reference = ReferenceRelativeChange(src, before, output, to);
        Assert.True(Math.Abs(l.Relative - reference) <= 1e-12, $"the check measures {l.Relative:g6}, the reference decoder {reference:g6}");
    }

    /// <summary>
    /// A deliberately broken transfer (one o_proj written doubled, by the test seam) that the plan still calls exact: the
    /// check fails it, naming the measured change, and nothing is written.
    /// </summary>
    [Fact]
    public void Transfer_InjectedWrongTensor_FailsNothingWritten()
    {
        var before = new TinySpec(KvHeads: 2, Layers: 2, Vocab: 97);
        var to = before with { KvHeads = 8 };
        var src = _dir.Write("src", before, 61);
        var tpl = _dir.Write("tpl", to, 62);
        const string broken = "model.layers.1.self_attn.o_proj.weight";
        LogitCheck.InjectForTests.Value = p => p.Name != broken ? p : Doubled(p);
        try
        {
            var e = Assert.Throws<TransferStrictException>(() => _dir.Transfer(src, tpl, preserve: true));
            Assert.Contains("the logits check", e.Message, StringComparison.Ordinal);
            Assert.Contains(e.Violations, v => v.Contains("NOT kept", StringComparison.Ordinal));
            Assert.False(File.Exists(Path.Combine(_dir.Root, "out", "model.safetensors")));
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(_dir.Root, "out"), "*.tmp"));
        }
        finally
        {
            LogitCheck.InjectForTests.Value = null;
        }
        // The same broken output, written by hand, measured by the public entry point: the change is the reference decoder's.
        var (good, _) = _dir.Transfer(src, tpl, preserve: true, name: "good");
        var bad = Path.Combine(_dir.Root, "bad", "model.safetensors");
        Directory.CreateDirectory(Path.GetDirectoryName(bad)!);
        File.Copy(Path.Combine(_dir.Root, "tpl", "config.json"), Path.Combine(_dir.Root, "bad", "config.json"));
        using (var reader = CheckpointFile.Open(good))
        {
            CheckpointFile.Write(bad, reader.Tensors.Select(t => t.Name == broken ? Doubled(TensorPayload.FromCheckpoint(reader, t)) : TensorPayload.FromCheckpoint(reader, t)).ToList());
        }
        using var s = CheckpointFile.Open(src);
        using var o = CheckpointFile.Open(bad);
        var result = LogitCheck.Measure(s, TransformerConfig.FindBeside(src)!, o, TransformerConfig.FindBeside(bad)!);
        Assert.False(result.Passed, result.Describe());
        double reference = ReferenceRelativeChange(src, before, bad, to);
        Assert.True(reference > 1e-3, $"the injected tensor must change the logits ({reference})");
        Assert.True(Math.Abs(result.Relative - reference) <= 1e-12 * Math.Max(1, reference), $"the check measures {result.Relative:g6}, the reference decoder {reference:g6}");
    }

    private static TensorPayload Doubled(TensorPayload p)
    {
        using var ms = new MemoryStream();
        p.WriteTo(ms);
        var floats = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(ms.ToArray().AsSpan()).ToArray();
        for (int i = 0; i < floats.Length; i++)
        {
            floats[i] *= 2;
        }
        return TensorPayload.FromBytes(p.Name, p.DType, p.Shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(floats.AsSpan()).ToArray());
    }

    /// <summary>MHA → GQA (group means) does not claim the function: not measured by default; measured on request, reported, not failed.</summary>
    [Fact]
    public void Transfer_NotExact_AutoSkipsSayingWhy_AlwaysMeasuresWithoutFailing()
    {
        var before = new TinySpec(Layers: 2, Vocab: 97);
        var to = before with { KvHeads = 2 };
        var src = _dir.Write("src", before, 71);
        var tpl = _dir.Write("tpl", to, 72);
        var (_, auto) = _dir.Transfer(src, tpl, preserve: false);
        Assert.False(auto.Logits!.Measured);
        Assert.Contains("does not claim", auto.Logits.NotMeasuredReason, StringComparison.Ordinal);
        var outPath = Path.Combine(_dir.Root, "always.safetensors");
        var always = WeightTransfer.Files(src, tpl, outPath, logitCheck: LogitCheckMode.Always);
        Assert.True(always.Logits!.Measured && !always.Logits.Claimed && always.Logits.Passed);
        double reference = ReferenceRelativeChange(src, before, outPath, to);
        Assert.True(reference > 1e-3 && Math.Abs(always.Logits.Relative - reference) <= 1e-12 * reference, $"{always.Logits.Relative:g6} vs the reference {reference:g6}");
        var never = WeightTransfer.Files(src, tpl, outPath, logitCheck: LogitCheckMode.Never);
        Assert.Contains("never", never.Logits!.NotMeasuredReason, StringComparison.Ordinal);
    }

    /// <summary>Models over the size bound are not measured by default, and the reason says so; Always ignores the bound.</summary>
    [Fact]
    public void Prepare_ModelLargerThanBound_NotMeasuredSayingSo()
    {
        var before = new TinySpec(KvHeads: 2, Layers: 2, Vocab: 97);
        var src = _dir.Write("src", before, 81);
        var tpl = _dir.Write("tpl", before with { KvHeads = 8 }, 82);
        using var s = CheckpointFile.Open(src);
        using var t = CheckpointFile.Open(tpl);
        var plan = WeightTransfer.Plan(s, t, TransferPresets.KeepFunction);
        Assert.Empty(PreserveFunction.Problems(plan));
        long parameters = t.Tensors.Sum(x => x.Shape.ElementCount);
        Assert.Contains("model larger than", LogitCheck.Prepare(plan, s, LogitCheckMode.Auto, maxParameters: parameters - 1)!.NotMeasuredReason, StringComparison.Ordinal);
        Assert.Null(LogitCheck.Prepare(plan, s, LogitCheckMode.Auto, maxParameters: parameters)!.NotMeasuredReason);
        Assert.Null(LogitCheck.Prepare(plan, s, LogitCheckMode.Always, maxParameters: 1)!.NotMeasuredReason);
    }
}
