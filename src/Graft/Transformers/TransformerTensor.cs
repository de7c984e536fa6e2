using System.Globalization;
using System.Text.RegularExpressions;

namespace Graft.Transformers;

/// <summary>
/// A tensor of a Llama-family decoder: its role, where it sits, and whether it is a bias (Qwen2's q/k/v). Phi-3's fused
/// <c>qkv_proj</c> and <c>gate_up_proj</c> are roles of their own, whose parts are the unfused roles' row blocks.
/// </summary>
/// <param name="Role">The role.</param>
/// <param name="Layer">The decoder layer, or -1 outside the layers.</param>
/// <param name="Expert">The expert, or -1.</param>
/// <param name="Bias">True for a bias, false for a weight.</param>
public readonly record struct TransformerTensor(TransformerRole Role, int Layer, int Expert, bool Bias)
{
    private static readonly Regex LayerName = new(
        @"^model\.layers\.(?<l>0|[1-9][0-9]{0,5})\.(?:(?<p>self_attn\.(?:q|k|v|o|qkv)_proj|mlp\.(?:gate|up|down|gate_up)_proj|input_layernorm|post_attention_layernorm|block_sparse_moe\.gate)\.(?<m>weight|bias)|block_sparse_moe\.experts\.(?<e>0|[1-9][0-9]{0,4})\.(?<w>w1|w2|w3)\.weight|(?<rot>self_attn\.rotary_emb\.inv_freq))$",
        RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture, TimeSpan.FromSeconds(1));

    /// <summary>The role of a Hugging Face tensor name, or null for a name the Llama family does not have.</summary>
    public static TransformerTensor? Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        switch (name)
        {
            case "model.embed_tokens.weight": return new(TransformerRole.Embedding, -1, -1, false);
            case "model.norm.weight": return new(TransformerRole.FinalNorm, -1, -1, false);
            case "lm_head.weight": return new(TransformerRole.LmHead, -1, -1, false);
        }
        var m = LayerName.Match(name);
        if (!m.Success)
        {
            return null;
        }
        int layer = int.Parse(m.Groups["l"].Value, CultureInfo.InvariantCulture);
        if (m.Groups["rot"].Success)
        {
            return new(TransformerRole.RotaryFrequencies, layer, -1, false);
        }
        if (m.Groups["e"].Success)
        {
            var role = m.Groups["w"].Value switch { "w1" => TransformerRole.ExpertGate, "w3" => TransformerRole.ExpertUp, _ => TransformerRole.ExpertDown };
            return new(role, layer, int.Parse(m.Groups["e"].Value, CultureInfo.InvariantCulture), false);
        }
        bool bias = m.Groups["m"].Value == "bias";
        var r = m.Groups["p"].Value switch
        {
            "self_attn.q_proj" => TransformerRole.Query,
            "self_attn.k_proj" => TransformerRole.Key,
            "self_attn.v_proj" => TransformerRole.Value,
            "self_attn.o_proj" => TransformerRole.Output,
            "mlp.gate_proj" => TransformerRole.Gate,
            "mlp.up_proj" => TransformerRole.Up,
            "mlp.down_proj" => TransformerRole.Down,
            "self_attn.qkv_proj" => TransformerRole.FusedQkv,
            "mlp.gate_up_proj" => TransformerRole.FusedGateUp,
            "input_layernorm" => TransformerRole.InputNorm,
            "post_attention_layernorm" => TransformerRole.PostAttentionNorm,
            _ => TransformerRole.Router,
        };
        return new(r, layer, -1, bias);
    }

    /// <summary>The Hugging Face name of this tensor: the one place the Llama family's names are spelled.</summary>
    public string Name
    {
        get
        {
            string member = Bias ? "bias" : "weight";
            string p = $"model.layers.{Layer.ToString(CultureInfo.InvariantCulture)}.";
            string e = Expert.ToString(CultureInfo.InvariantCulture);
            return Role switch
            {
                TransformerRole.Embedding => "model.embed_tokens.weight",
                TransformerRole.FinalNorm => "model.norm.weight",
                TransformerRole.LmHead => "lm_head.weight",
                TransformerRole.Query => p + "self_attn.q_proj." + member,
                TransformerRole.Key => p + "self_attn.k_proj." + member,
                TransformerRole.Value => p + "self_attn.v_proj." + member,
                TransformerRole.Output => p + "self_attn.o_proj." + member,
                TransformerRole.Gate => p + "mlp.gate_proj." + member,
                TransformerRole.Up => p + "mlp.up_proj." + member,
                TransformerRole.Down => p + "mlp.down_proj." + member,
                TransformerRole.FusedQkv => p + "self_attn.qkv_proj." + member,
                TransformerRole.FusedGateUp => p + "mlp.gate_up_proj." + member,
                TransformerRole.InputNorm => p + "input_layernorm." + member,
                TransformerRole.PostAttentionNorm => p + "post_attention_layernorm." + member,
                TransformerRole.Router => p + "block_sparse_moe.gate." + member,
                TransformerRole.ExpertGate => p + $"block_sparse_moe.experts.{e}.w1.weight",
                TransformerRole.ExpertUp => p + $"block_sparse_moe.experts.{e}.w3.weight",
                TransformerRole.ExpertDown => p + $"block_sparse_moe.experts.{e}.w2.weight",
                _ => p + "self_attn.rotary_emb.inv_freq",
            };
        }
    }

    /// <summary>This tensor's counterpart in another layer (and expert).</summary>
    public TransformerTensor At(int layer, int expert = -1) => this with { Layer = layer, Expert = expert };
}
