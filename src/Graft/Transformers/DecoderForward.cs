using Graft.Checkpoints.Transformers;
using static TorchSharp.torch;

namespace Graft.Transformers;

/// <summary>
/// A Llama/Mistral/Qwen2/Mixtral forward pass in TorchSharp, float64 on the CPU, for <see cref="LogitCheck"/>: RMSNorm,
/// rotary embeddings (<c>rotate_half</c>, inv_freq = θ^(−2i/d)), grouped-query attention (<c>repeat_kv</c>: query
/// head h reads K/V head h // (heads / kv)) with a causal mask, a SwiGLU MLP, Mixtral routing (softmax over experts,
/// top-k, renormalised), Qwen2's q/k/v biases, Phi-3's fused <c>qkv_proj</c> and <c>gate_up_proj</c> (read as their
/// row blocks), tied embeddings. Only what the config and the tensors say: nothing is
/// trained, batched or cached; it computes the logits of one short sequence so the function can be compared.
/// </summary>
internal static class DecoderForward
{
    /// <summary>The logits (tokens × vocabulary) of <paramref name="tokens"/>; <paramref name="weight"/> gives a tensor by name (float64) or null.</summary>
    /// <exception cref="ArgumentException">A tensor the config needs is missing.</exception>
    public static Tensor Logits(TransformerConfig c, Func<string, Tensor?> weight, long[] tokens)
    {
        using var scope = NewDisposeScope();
        Tensor W(string name) => weight(name) ?? throw new ArgumentException($"the forward pass needs tensor '{name}', which the checkpoint does not have.");
        // A projection stored alone, or as its rows of a fused one (Phi-3: qkv_proj rows [q; k; v], gate_up_proj rows [gate; up]).
        Tensor? Part(string name, string fused, long start, long rows, bool optional = false) =>
            weight(name) ?? weight(fused)?.narrow(0, start, rows) ?? (optional ? null : W(name));
        int n = tokens.Length, d = c.HeadDim;
        using var ids = tensor(tokens, dtype: ScalarType.Int64);
        var embed = W("model.embed_tokens.weight");
        var x = embed.index_select(0, ids);
        var mask = full(n, n, double.NegativeInfinity, dtype: ScalarType.Float64).triu(1);
        var (cos, sin) = Rotary(n, d, c.RopeTheta);
        for (int l = 0; l < c.Layers; l++)
        {
            var p = $"model.layers.{l}.";
            var h = RmsNorm(x, W(p + "input_layernorm.weight"), c.RmsNormEps);
            long qRows = (long)c.Heads * d, kvRows = (long)c.KvHeads * d;
            var q = Linear(h, Part(p + "self_attn.q_proj.weight", p + "self_attn.qkv_proj.weight", 0, qRows)!, Part(p + "self_attn.q_proj.bias", p + "self_attn.qkv_proj.bias", 0, qRows, optional: true));
            var k = Linear(h, Part(p + "self_attn.k_proj.weight", p + "self_attn.qkv_proj.weight", qRows, kvRows)!, Part(p + "self_attn.k_proj.bias", p + "self_attn.qkv_proj.bias", qRows, kvRows, optional: true));
            var v = Linear(h, Part(p + "self_attn.v_proj.weight", p + "self_attn.qkv_proj.weight", qRows + kvRows, kvRows)!, Part(p + "self_attn.v_proj.bias", p + "self_attn.qkv_proj.bias", qRows + kvRows, kvRows, optional: true));
            q = Rope(q.view(n, c.Heads, d).transpose(0, 1), cos, sin);
            k = Rope(k.view(n, c.KvHeads, d).transpose(0, 1), cos, sin).repeat_interleave(c.HeadsPerKvHead, 0);
            v = v.view(n, c.KvHeads, d).transpose(0, 1).repeat_interleave(c.HeadsPerKvHead, 0);
            var scores = q.matmul(k.transpose(1, 2)) / Math.Sqrt(d) + mask;
            var attn = scores.softmax(-1).matmul(v).transpose(0, 1).reshape(n, (long)c.Heads * d);
            x = x + Linear(attn, W(p + "self_attn.o_proj.weight"), null);
            h = RmsNorm(x, W(p + "post_attention_layernorm.weight"), c.RmsNormEps);
            x = x + (c.IsMixtureOfExperts ? Experts(c, p, W, h)
                : Mlp(h, Part(p + "mlp.gate_proj.weight", p + "mlp.gate_up_proj.weight", 0, c.IntermediateSize)!,
                    Part(p + "mlp.up_proj.weight", p + "mlp.gate_up_proj.weight", c.IntermediateSize, c.IntermediateSize)!, W(p + "mlp.down_proj.weight")));
        }
        var head = c.TieWordEmbeddings ? embed : W("lm_head.weight");
        return Linear(RmsNorm(x, W("model.norm.weight"), c.RmsNormEps), head, null).MoveToOuterDisposeScope();
    }

    private static Tensor RmsNorm(Tensor x, Tensor w, double eps) => x * (x.square().mean([-1L], keepdim: true) + eps).rsqrt() * w;

    private static Tensor Linear(Tensor x, Tensor w, Tensor? b) => b is null ? x.matmul(w.t()) : x.matmul(w.t()) + b;

    private static Tensor Mlp(Tensor x, Tensor gate, Tensor up, Tensor down) =>
        Linear(nn.functional.silu(Linear(x, gate, null)) * Linear(x, up, null), down, null);

    /// <summary>cos and sin of position × inv_freq, each half repeated (Hugging Face's <c>cat(freqs, freqs)</c>): (tokens, head_dim).</summary>
    private static (Tensor Cos, Tensor Sin) Rotary(int n, int d, double theta)
    {
        var invFreq = 1.0 / pow(theta, arange(0, d, 2, dtype: ScalarType.Float64) / d);
        var freqs = outer(arange(n, dtype: ScalarType.Float64), invFreq);
        var emb = cat([freqs, freqs], -1);
        return (emb.cos(), emb.sin());
    }

    /// <summary>x·cos + rotate_half(x)·sin, rotate_half(x) = (−x₂, x₁) for x = (x₁, x₂) halves of each head.</summary>
    private static Tensor Rope(Tensor x, Tensor cos, Tensor sin)
    {
        var halves = x.chunk(2, -1);
        return x * cos + cat([-halves[1], halves[0]], -1) * sin;
    }

    /// <summary>Mixtral: softmax over the router's logits, the top k per token, renormalised; each expert's MLP weighted by its share.</summary>
    private static Tensor Experts(TransformerConfig c, string p, Func<string, Tensor> w, Tensor x)
    {
        var probs = Linear(x, w(p + "block_sparse_moe.gate.weight"), null).softmax(-1);
        var (top, chosen) = probs.topk(c.ExpertsPerToken, -1);
        top = top / top.sum([-1L], keepdim: true);
        var share = zeros_like(probs).scatter_add(1, chosen, top);
        var y = zeros_like(x);
        for (int e = 0; e < c.Experts; e++)
        {
            var pe = $"{p}block_sparse_moe.experts.{e}.";
            y = y + share[.., e..(e + 1)] * Mlp(x, w(pe + "w1.weight"), w(pe + "w3.weight"), w(pe + "w2.weight"));
        }
        return y;
    }
}
