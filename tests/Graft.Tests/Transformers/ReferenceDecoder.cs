namespace Graft.Tests.Transformers;

/// <summary>
/// A Llama/Mistral/Qwen2/Mixtral forward pass in float64, written from the Hugging Face modelling code's definitions and
/// independent of Graft: RMSNorm (x / √(mean x² + ε) · w), rotary embeddings with <c>rotate_half</c> (inv_freq =
/// θ^(−2i/d)), grouped-query attention with <c>repeat_kv</c> (query head h reads K/V head h // (heads / kv)), causal
/// softmax scaled by 1/√d, a SwiGLU MLP (down(silu(gate x) · up x)), Mixtral routing (softmax over experts, top-k,
/// renormalised), tied embeddings. Shapes come from the tensors and the head size, counts from the config numbers.
/// </summary>
internal static class ReferenceDecoder
{
    /// <summary>The logits (tokens × vocabulary) for <paramref name="tokens"/>.</summary>
    public static double[][] Logits(IReadOnlyDictionary<string, Tensor64> w, int heads, int kvHeads, int layers, int topK, bool tied, int[] tokens,
        int headDim = TinySpec.HeadDim, double eps = TinySpec.Eps, double theta = TinySpec.Theta)
    {
        var embed = w["model.embed_tokens.weight"];
        int hidden = (int)embed.Shape[1];
        var x = tokens.Select(t => embed.Data.AsSpan((int)(t * hidden), hidden).ToArray()).ToArray();
        for (int l = 0; l < layers; l++)
        {
            var p = $"model.layers.{l}.";
            var xn = x.Select(v => RmsNorm(v, w[p + "input_layernorm.weight"].Data, eps)).ToArray();
            var q = xn.Select(v => Linear(w[p + "self_attn.q_proj.weight"], v, w.GetValueOrDefault(p + "self_attn.q_proj.bias"))).ToArray();
            var k = xn.Select(v => Linear(w[p + "self_attn.k_proj.weight"], v, w.GetValueOrDefault(p + "self_attn.k_proj.bias"))).ToArray();
            var v_ = xn.Select(v => Linear(w[p + "self_attn.v_proj.weight"], v, w.GetValueOrDefault(p + "self_attn.v_proj.bias"))).ToArray();
            for (int t = 0; t < tokens.Length; t++)
            {
                Rope(q[t], heads, headDim, t, theta);
                Rope(k[t], kvHeads, headDim, t, theta);
            }
            var attn = Attention(q, k, v_, heads, kvHeads, headDim);
            for (int t = 0; t < tokens.Length; t++)
            {
                Add(x[t], Linear(w[p + "self_attn.o_proj.weight"], attn[t], null));
            }
            var xn2 = x.Select(v => RmsNorm(v, w[p + "post_attention_layernorm.weight"].Data, eps)).ToArray();
            for (int t = 0; t < tokens.Length; t++)
            {
                Add(x[t], w.TryGetValue(p + "block_sparse_moe.gate.weight", out var router)
                    ? Experts(w, p, router, topK, xn2[t])
                    : Mlp(w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"], w[p + "mlp.down_proj.weight"], xn2[t]));
            }
        }
        var head = tied ? embed : w["lm_head.weight"];
        return x.Select(v => Linear(head, RmsNorm(v, w["model.norm.weight"].Data, eps), null)).ToArray();
    }

    public static double[] RmsNorm(double[] x, double[] weight, double eps)
    {
        double ms = x.Sum(v => v * v) / x.Length;
        double r = 1.0 / Math.Sqrt(ms + eps);
        return x.Select((v, i) => v * r * weight[i]).ToArray();
    }

    /// <summary>y = W x + b for W (out, in).</summary>
    public static double[] Linear(Tensor64 weight, double[] x, Tensor64? bias)
    {
        int rows = (int)weight.Shape[0], cols = (int)weight.Shape[1];
        Assert.Equal(cols, x.Length);
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = bias?.Data[r] ?? 0;
            for (int c = 0; c < cols; c++)
            {
                s += weight.Data[r * cols + c] * x[c];
            }
            y[r] = s;
        }
        return y;
    }

    /// <summary>Hugging Face's rotary embedding of every head at <paramref name="position"/>: x·cos + rotate_half(x)·sin.</summary>
    public static void Rope(double[] x, int heads, int headDim, int position, double theta)
    {
        Assert.Equal(heads * headDim, x.Length);
        int half = headDim / 2;
        for (int h = 0; h < heads; h++)
        {
            int o = h * headDim;
            for (int i = 0; i < half; i++)
            {
                double angle = position * Math.Pow(theta, -2.0 * i / headDim);
                double c = Math.Cos(angle), s = Math.Sin(angle);
                double a = x[o + i], b = x[o + i + half];
                x[o + i] = a * c - b * s;
                x[o + i + half] = b * c + a * s;
            }
        }
    }

    /// <summary>Causal attention; query head h reads K/V head h // (heads / kvHeads), as <c>repeat_kv</c>.</summary>
    public static double[][] Attention(double[][] q, double[][] k, double[][] v, int heads, int kvHeads, int headDim)
    {
        int n = q.Length, group = heads / kvHeads;
        var output = new double[n][];
        double scale = 1.0 / Math.Sqrt(headDim);
        for (int t = 0; t < n; t++)
        {
            output[t] = new double[heads * headDim];
            for (int h = 0; h < heads; h++)
            {
                int g = h / group;
                var scores = new double[t + 1];
                for (int u = 0; u <= t; u++)
                {
                    double s = 0;
                    for (int d = 0; d < headDim; d++)
                    {
                        s += q[t][h * headDim + d] * k[u][g * headDim + d];
                    }
                    scores[u] = s * scale;
                }
                var p = Softmax(scores);
                for (int u = 0; u <= t; u++)
                {
                    for (int d = 0; d < headDim; d++)
                    {
                        output[t][h * headDim + d] += p[u] * v[u][g * headDim + d];
                    }
                }
            }
        }
        return output;
    }

    public static double[] Softmax(double[] z)
    {
        double max = z.Max();
        var e = z.Select(v => Math.Exp(v - max)).ToArray();
        double sum = e.Sum();
        return e.Select(v => v / sum).ToArray();
    }

    public static double Silu(double x) => x / (1 + Math.Exp(-x));

    public static double[] Mlp(Tensor64 gate, Tensor64 up, Tensor64 down, double[] x)
    {
        var g = Linear(gate, x, null);
        var u = Linear(up, x, null);
        return Linear(down, g.Select((v, i) => Silu(v) * u[i]).ToArray(), null);
    }

    /// <summary>Mixtral: softmax over the router's logits, the top k experts, their weights renormalised to sum 1.</summary>
    public static double[] Experts(IReadOnlyDictionary<string, Tensor64> w, string prefix, Tensor64 router, int topK, double[] x)
    {
        var probs = Softmax(Linear(router, x, null));
        var top = probs.Select((p, e) => (p, e)).OrderByDescending(z => z.p).ThenBy(z => z.e).Take(topK).ToArray();
        double total = top.Sum(z => z.p);
        var y = new double[x.Length];
        foreach (var (p, e) in top)
        {
            var pe = $"{prefix}block_sparse_moe.experts.{e}.";
            Add(y, Mlp(w[pe + "w1.weight"], w[pe + "w3.weight"], w[pe + "w2.weight"], x).Select(v => v * p / total).ToArray());
        }
        return y;
    }

    private static void Add(double[] into, double[] y)
    {
        for (int i = 0; i < into.Length; i++)
        {
            into[i] += y[i];
        }
    }
}
