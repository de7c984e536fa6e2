namespace Graft.Tests.Transformers;

/// <summary>
/// The float64 reference decoder checked by facts it must obey, independent of Graft's transforms and of Python: one
/// hand-computed layer, repeat_kv, causality, routing of identical experts (<see cref="PythonDecoderTests"/> also holds
/// it to a PyTorch forward pass where torch is installed).
/// </summary>
public sealed class ReferenceDecoderTests
{
    private static Tensor64 T(long rows, long cols, params double[] data) => new([rows, cols], data);

    /// <summary>
    /// One token, hidden 2, one head of size 2, one layer, vocabulary 2, worked by hand: at position 0 RoPE is the
    /// identity and attention returns v, so logits = W_lm · n(x + W_o W_v n(x)) ⊕ MLP.
    /// </summary>
    [Fact]
    public void Logits_OneTokenOneLayer_MatchHandComputation()
    {
        var w = new Dictionary<string, Tensor64>
        {
            ["model.embed_tokens.weight"] = T(2, 2, 3, 4, 1, 0),
            ["model.layers.0.input_layernorm.weight"] = new([2], [1, 2]),
            ["model.layers.0.self_attn.q_proj.weight"] = T(2, 2, 1, 0, 0, 1),
            ["model.layers.0.self_attn.k_proj.weight"] = T(2, 2, 1, 0, 0, 1),
            ["model.layers.0.self_attn.v_proj.weight"] = T(2, 2, 0, 1, 1, 0),
            ["model.layers.0.self_attn.o_proj.weight"] = T(2, 2, 1, 0, 0, 1),
            ["model.layers.0.post_attention_layernorm.weight"] = new([2], [1, 1]),
            ["model.layers.0.mlp.gate_proj.weight"] = T(1, 2, 1, 0),
            ["model.layers.0.mlp.up_proj.weight"] = T(1, 2, 0, 1),
            ["model.layers.0.mlp.down_proj.weight"] = T(2, 1, 1, -1),
            ["model.norm.weight"] = new([2], [1, 1]),
            ["lm_head.weight"] = T(2, 2, 1, 0, 1, 1),
        };
        double eps = 0;
        var logits = ReferenceDecoder.Logits(w, heads: 1, kvHeads: 1, layers: 1, topK: 0, tied: false, tokens: [0], headDim: 2, eps: eps);

        // By hand: x = (3, 4); rms = √12.5; n = (3, 8)/√12.5; v = (n1, n0) = (8, 3)/√12.5; x1 = x + v.
        double r = Math.Sqrt(12.5);
        double[] x1 = [3 + 8 / r, 4 + 3 / r];
        double r2 = Math.Sqrt((x1[0] * x1[0] + x1[1] * x1[1]) / 2);
        double[] n2 = [x1[0] / r2, x1[1] / r2];
        double h = n2[0] / (1 + Math.Exp(-n2[0])) * n2[1];
        double[] x2 = [x1[0] + h, x1[1] - h];
        double r3 = Math.Sqrt((x2[0] * x2[0] + x2[1] * x2[1]) / 2);
        double[] expected = [x2[0] / r3, (x2[0] + x2[1]) / r3];
        Assert.Equal(expected[0], logits[0][0], 12);
        Assert.Equal(expected[1], logits[0][1], 12);
    }

    /// <summary>A GQA model equals the MHA model whose K/V heads are its heads repeated (HF's repeat_kv), and not another.</summary>
    [Fact]
    public void Logits_GqaEqualsMhaWithRepeatedKvHeads()
    {
        using var dir = new DecoderFolder();
        var spec = new TinySpec(KvHeads: 2, Layers: 2, Vocab: 50);
        var w = TinySpec.Load(dir.Write("gqa", spec, 1));
        var mha = new Dictionary<string, Tensor64>(w);
        var wrongOrder = new Dictionary<string, Tensor64>(w);
        int hd = TinySpec.HeadDim, hidden = spec.Hidden;
        foreach (var name in w.Keys.Where(n => n.EndsWith("k_proj.weight", StringComparison.Ordinal) || n.EndsWith("v_proj.weight", StringComparison.Ordinal)))
        {
            var src = w[name];
            var repeated = new double[8 * hd * hidden];
            var cyclic = new double[8 * hd * hidden];
            for (int head = 0; head < 8; head++)
            {
                Array.Copy(src.Data, head / 4 * hd * hidden, repeated, head * hd * hidden, hd * hidden);
                Array.Copy(src.Data, head % 2 * hd * hidden, cyclic, head * hd * hidden, hd * hidden);
            }
            mha[name] = new Tensor64([8 * hd, hidden], repeated);
            wrongOrder[name] = new Tensor64([8 * hd, hidden], cyclic);
        }
        var tokens = DecoderFolder.Tokens(50);
        var gqa = ReferenceDecoder.Logits(w, 8, 2, 2, 0, false, tokens);
        DecoderFolder.AssertLogitsEqual(gqa, ReferenceDecoder.Logits(mha, 8, 8, 2, 0, false, tokens));
        Assert.True(DecoderFolder.MaxRelativeChange(gqa, ReferenceDecoder.Logits(wrongOrder, 8, 8, 2, 0, false, tokens)) > 1e-3,
            "head h must read K/V head h // 4, not h % 2");
    }

    /// <summary>Causal attention with RoPE: a token's logits do not depend on later tokens, and do depend on earlier ones.</summary>
    [Fact]
    public void Logits_AreCausal()
    {
        using var dir = new DecoderFolder();
        var spec = new TinySpec(KvHeads: 2, Layers: 2, Vocab: 50);
        var path = dir.Write("m", spec, 2);
        var a = DecoderFolder.Logits(path, spec, [1, 2, 3, 4]);
        var b = DecoderFolder.Logits(path, spec, [1, 2, 3, 9]);
        var c = DecoderFolder.Logits(path, spec, [7, 2, 3, 4]);
        DecoderFolder.AssertLogitsEqual(a[..3], b[..3]);
        Assert.True(DecoderFolder.MaxRelativeChange(a[3..], b[3..]) > 1e-3);
        Assert.True(DecoderFolder.MaxRelativeChange(a[1..2], c[1..2]) > 1e-3);
    }

    /// <summary>Top-k weights renormalised: a mixture of identical experts computes the dense MLP whatever the router.</summary>
    [Fact]
    public void Experts_IdenticalExperts_EqualDenseMlp()
    {
        var rng = new Random(3);
        Tensor64 R(long r, long c) => new([r, c], Enumerable.Range(0, (int)(r * c)).Select(_ => rng.NextDouble() * 2 - 1).ToArray());
        var (gate, up, down, router) = (R(6, 4), R(6, 4), R(4, 6), R(3, 4));
        var w = new Dictionary<string, Tensor64>();
        for (int e = 0; e < 3; e++)
        {
            (w[$"p.block_sparse_moe.experts.{e}.w1.weight"], w[$"p.block_sparse_moe.experts.{e}.w3.weight"], w[$"p.block_sparse_moe.experts.{e}.w2.weight"]) = (gate, up, down);
        }
        double[] x = [0.5, -1, 2, 0.25];
        var dense = ReferenceDecoder.Mlp(gate, up, down, x);
        var moe = ReferenceDecoder.Experts(w, "p.", router, 2, x);
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(dense[i], moe[i], 12);
        }
    }
}
