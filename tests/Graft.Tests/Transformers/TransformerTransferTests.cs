using Graft.Growth;
using Graft.Transfer;

namespace Graft.Tests.Transformers;

/// <summary>
/// Issue 25's "Done when", on tiny Llama/Mixtral-style checkpoints written by the tests (<c>config.json</c> +
/// <c>model.safetensors</c>), checked with the float64 <see cref="ReferenceDecoder"/>: the logits before (source) and
/// after (the transferred checkpoint) agree within float32 roundoff where the function is kept.
/// </summary>
public sealed class TransformerTransferTests : IDisposable
{
    private readonly DecoderFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly TinySpec Base = new();

    private (string Source, string Output, TransferReport Report) Run(TinySpec from, TinySpec to, bool preserve)
    {
        var src = _dir.Write("src", from, seed: 11);
        var tpl = _dir.Write("tpl", to, seed: 12);
        var (output, report) = _dir.Transfer(src, tpl, preserve);
        return (src, output, report);
    }

    private void AssertKeepsLogits(TinySpec from, TinySpec to)
    {
        var (src, output, _) = Run(from, to, preserve: true);
        var tokens = DecoderFolder.Tokens(from.Vocab);
        DecoderFolder.AssertLogitsEqual(DecoderFolder.Logits(src, from, tokens), DecoderFolder.Logits(output, to, tokens));
    }

    [Fact]
    public void MhaToGqa_KvHeadsAreGroupMeans_AndPreserveFunctionRefuses()
    {
        var to = Base with { KvHeads = 2 };
        var (src, output, report) = Run(Base, to, preserve: false);
        var s = TinySpec.Load(src);
        var o = TinySpec.Load(output);
        int hd = TinySpec.HeadDim, hidden = Base.Hidden;
        foreach (var name in new[] { "model.layers.0.self_attn.k_proj.weight", "model.layers.3.self_attn.v_proj.weight" })
        {
            var (a, b) = (s[name], o[name]);
            Assert.Equal([2L * hd, hidden], b.Shape);
            double scale = a.Data.Max(Math.Abs);
            for (int g = 0; g < 2; g++)
            {
                for (int r = 0; r < hd; r++)
                {
                    for (int c = 0; c < hidden; c++)
                    {
                        double mean = Enumerable.Range(g * 4, 4).Average(h => a[h * hd + r, c]);
                        double actual = b[g * hd + r, c];
                        Assert.True(double.IsFinite(actual) && Math.Abs(actual - mean) <= 4 * DecoderFolder.Float32Roundoff * scale,
                            $"{name} [{g * hd + r}, {c}]: {actual} is not the group mean {mean}");
                    }
                }
            }
        }
        var k = report.Targets.Single(t => t.Name == "model.layers.0.self_attn.k_proj.weight");
        Assert.Contains(k.Steps, step => step.Op == "heads.group-mean");
        // The plan says it is not exact, and --preserve-function refuses it.
        var e = Assert.Throws<TransferStrictException>(() => _dir.Transfer(src, Path.Combine(_dir.Root, "tpl", "model.safetensors"), preserve: true, name: "refused"));
        Assert.Contains(e.Violations, v => v.Contains("group means", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(_dir.Root, "refused", "model.safetensors")));
    }

    [Fact]
    public void GqaToMha_PreserveFunction_LogitsEqual()
    {
        var gqa = Base with { KvHeads = 2 };
        AssertKeepsLogits(gqa, Base);
        var (_, _, report) = Run(gqa, Base, preserve: true);
        Assert.Contains(report.Targets.Single(t => t.Name == "model.layers.1.self_attn.v_proj.weight").Steps, s => s.Op == "heads.repeat");
    }

    [Fact]
    public void GqaToMha_WithQwen2Biases_PreserveFunction_LogitsEqual() =>
        AssertKeepsLogits(Base with { KvHeads = 2, QkvBias = true, Layers = 2 }, Base with { QkvBias = true, Layers = 2 });

    [Fact]
    public void Width_Hidden64To128_Heads8To16_Intermediate128To256_PreserveFunction_LogitsEqual()
    {
        var to = Base with { Hidden = 128, Heads = 16, KvHeads = 16, Intermediate = 256 };
        AssertKeepsLogits(Base, to);
    }

    [Fact]
    public void Width_WithGqa_PreserveFunction_LogitsEqual() =>
        AssertKeepsLogits(Base with { KvHeads = 2 }, Base with { Hidden = 128, Heads = 16, KvHeads = 4, Intermediate = 256 });

    /// <summary>More query heads at the same hidden size: copies, o_proj's columns divided by the count; K/V heads follow.</summary>
    [Fact]
    public void QueryHeads_8To16_KvHeads8To16_PreserveFunction_LogitsEqual() =>
        AssertKeepsLogits(Base with { Layers = 2 }, Base with { Layers = 2, Heads = 16, KvHeads = 16 });

    /// <summary>Fewer query heads: the first kept, o_proj keeps their columns (consistent shapes); refused under --preserve-function.</summary>
    [Fact]
    public void QueryHeads_8To4_PlainKeepsFirstHeadsAndOProjColumns_PreserveFunctionRefuses()
    {
        var small = Base with { Layers = 2 };
        var (src, output, _) = Run(small, small with { Heads = 4, KvHeads = 4 }, preserve: false);
        var (s, o) = (TinySpec.Load(src)["model.layers.1.self_attn.o_proj.weight"], TinySpec.Load(output)["model.layers.1.self_attn.o_proj.weight"]);
        Assert.Equal([64L, 32], o.Shape);
        for (int r = 0; r < 64; r++)
        {
            Assert.Equal(s.Data.AsSpan(r * 64, 32).ToArray(), o.Data.AsSpan(r * 32, 32).ToArray());
        }
        var e = Assert.Throws<TransferStrictException>(() => _dir.Transfer(src, Path.Combine(_dir.Root, "tpl", "model.safetensors"), preserve: true, name: "refused"));
        Assert.Contains(e.Violations, v => v.Contains("query heads 8→4: only the first 4 heads kept", StringComparison.Ordinal));
    }

    [Fact]
    public void Width_TiedEmbeddings_RefusedUnderPreserveFunction()
    {
        var e = Assert.Throws<TransferStrictException>(() => Run(Base with { Tied = true }, Base with { Tied = true, Hidden = 128, Heads = 16, KvHeads = 16 }, preserve: true));
        Assert.Contains(e.Violations, v => v.Contains("tied embeddings", StringComparison.Ordinal));
    }

    /// <summary>Without config.json the same widening is planned by names: zero-padding, which --preserve-function refuses (RMSNorm).</summary>
    [Fact]
    public void Width_WithoutConfig_ZeroPaddingRefusedUnderPreserveFunction()
    {
        var src = _dir.Write("src", Base, 11);
        var tpl = _dir.Write("tpl", Base with { Hidden = 128, Heads = 16, KvHeads = 16, Intermediate = 256 }, 12);
        File.Delete(Path.Combine(_dir.Root, "src", "config.json"));
        File.Delete(Path.Combine(_dir.Root, "tpl", "config.json"));
        var e = Assert.Throws<TransferStrictException>(() => WeightTransfer.Files(src, tpl, Path.Combine(_dir.Root, "o.safetensors"), TransferPresets.KeepFunction,
            refuse: PreserveFunction.Problems));
        Assert.Contains(e.Violations, v => v.Contains("RMSNorm", StringComparison.Ordinal));
    }

    [Fact]
    public void Depth_4To6Layers_PreserveFunction_LogitsEqual_NewBlocksZeroOutputsNonZeroInputs()
    {
        var to = Base with { Layers = 6 };
        AssertKeepsLogits(Base, to);
        var o = TinySpec.Load(Path.Combine(_dir.Root, "out", "model.safetensors"));
        // Spread evenly after the existing blocks: new blocks at 2 (a copy of 1) and 5 (a copy of 3).
        foreach (int layer in new[] { 2, 5 })
        {
            var p = $"model.layers.{layer}.";
            Assert.All(o[p + "self_attn.o_proj.weight"].Data, v => Assert.Equal(0.0, v));
            Assert.All(o[p + "mlp.down_proj.weight"].Data, v => Assert.Equal(0.0, v));
            foreach (var input in new[] { "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight" })
            {
                Assert.Contains(o[p + input].Data, v => v != 0);
                Assert.Equal(o[$"model.layers.{layer - 1}.{input}"].Data, o[p + input].Data);
            }
        }
        foreach (int layer in new[] { 0, 1, 3, 4 })
        {
            Assert.Contains(o[$"model.layers.{layer}.self_attn.o_proj.weight"].Data, v => v != 0);
        }
    }

    [Fact]
    public void DenseToMoe_FourExpertsTop2_PreserveFunction_LogitsEqual()
    {
        var to = Base with { Experts = 4, TopK = 2 };
        AssertKeepsLogits(Base, to);
        var o = TinySpec.Load(Path.Combine(_dir.Root, "out", "model.safetensors"));
        var t = TinySpec.Load(Path.Combine(_dir.Root, "tpl", "model.safetensors"));
        // The router keeps the template's (random) init: the routing differs per token, and the output is still the dense one.
        Assert.Equal(t["model.layers.0.block_sparse_moe.gate.weight"].Data, o["model.layers.0.block_sparse_moe.gate.weight"].Data);
    }

    /// <summary>A Mixtral widened ×2: every expert HyperCloned, the router's columns divided by 2 so its logits (and routing) stay.</summary>
    [Fact]
    public void MoeWidth_Mixtral4ExpertsTop2_Hidden64To128_PreserveFunction_LogitsEqual()
    {
        var moe = Base with { Experts = 4, TopK = 2, Layers = 2, KvHeads = 2 };
        AssertKeepsLogits(moe, moe with { Hidden = 128, Heads = 16, KvHeads = 4, Intermediate = 256 });
    }

    [Fact]
    public void Vocabulary_1000To1100_Default_OldLogitsEqual_NewRowsTheMean()
    {
        var to = Base with { Vocab = 1100 };
        var (src, output, _) = Run(Base, to, preserve: false);
        var tokens = DecoderFolder.Tokens(1000);
        DecoderFolder.AssertLogitsEqual(DecoderFolder.Logits(src, Base, tokens), DecoderFolder.Logits(output, to, tokens), columns: 1000);
        AssertNewRowsAreMean(TinySpec.Load(src), TinySpec.Load(output), "model.embed_tokens.weight");
        AssertNewRowsAreMean(TinySpec.Load(src), TinySpec.Load(output), "lm_head.weight");
    }

    [Fact]
    public void Vocabulary_TiedEmbeddings_StayTied_OldLogitsEqual()
    {
        var small = Base with { Tied = true, Layers = 2 };
        var to = small with { Vocab = 1100 };
        var (src, output, _) = Run(small, to, preserve: true);
        var o = TinySpec.Load(output);
        Assert.False(o.ContainsKey("lm_head.weight"));
        var tokens = DecoderFolder.Tokens(1000);
        DecoderFolder.AssertLogitsEqual(DecoderFolder.Logits(src, small, tokens), DecoderFolder.Logits(output, to, tokens), columns: 1000);
        AssertNewRowsAreMean(TinySpec.Load(src), o, "model.embed_tokens.weight");
    }

    private static void AssertNewRowsAreMean(Dictionary<string, Tensor64> s, Dictionary<string, Tensor64> o, string name)
    {
        var (a, b) = (s[name], o[name]);
        int hidden = (int)a.Shape[1];
        Assert.Equal([1100L, hidden], b.Shape);
        Assert.Equal(a.Data, b.Data.AsSpan(0, a.Data.Length).ToArray());
        double scale = a.Data.Max(Math.Abs);
        for (int c = 0; c < hidden; c++)
        {
            double mean = Enumerable.Range(0, 1000).Average(r => a[r, c]);
            for (int r = 1000; r < 1100; r++)
            {
                Assert.True(double.IsFinite(b[r, c]) && Math.Abs(b[r, c] - mean) <= 16 * DecoderFolder.Float32Roundoff * scale, $"{name} [{r}, {c}]: {b[r, c]} is not the mean {mean}");
            }
        }
    }
}
