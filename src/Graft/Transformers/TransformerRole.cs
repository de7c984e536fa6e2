namespace Graft.Transformers;

/// <summary>
/// What a tensor of a Llama-family decoder is (DESIGN.md, "Knowing what a tensor is"): assigned once from its Hugging
/// Face name, with the head structure from <c>config.json</c>, and used by <see cref="TransformerPlanner"/> instead of
/// name literals.
/// </summary>
public enum TransformerRole
{
    /// <summary><c>model.embed_tokens</c>: (vocabulary, hidden).</summary>
    Embedding,
    /// <summary><c>self_attn.q_proj</c>: (heads × head_dim, hidden), head-major rows.</summary>
    Query,
    /// <summary><c>self_attn.k_proj</c>: (KV heads × head_dim, hidden).</summary>
    Key,
    /// <summary><c>self_attn.v_proj</c>: (KV heads × head_dim, hidden).</summary>
    Value,
    /// <summary><c>self_attn.o_proj</c>: (hidden, heads × head_dim).</summary>
    Output,
    /// <summary><c>mlp.gate_proj</c>: (intermediate, hidden).</summary>
    Gate,
    /// <summary><c>mlp.up_proj</c>: (intermediate, hidden).</summary>
    Up,
    /// <summary><c>mlp.down_proj</c>: (hidden, intermediate).</summary>
    Down,
    /// <summary><c>input_layernorm</c>: an RMSNorm scale (hidden).</summary>
    InputNorm,
    /// <summary><c>post_attention_layernorm</c>: an RMSNorm scale (hidden).</summary>
    PostAttentionNorm,
    /// <summary><c>model.norm</c>: the final RMSNorm scale (hidden).</summary>
    FinalNorm,
    /// <summary><c>lm_head</c>: (vocabulary, hidden); absent when the embeddings are tied.</summary>
    LmHead,
    /// <summary><c>block_sparse_moe.gate</c>: the router, (experts, hidden).</summary>
    Router,
    /// <summary><c>block_sparse_moe.experts.{e}.w1</c>: an expert's gate projection (intermediate, hidden).</summary>
    ExpertGate,
    /// <summary><c>block_sparse_moe.experts.{e}.w3</c>: an expert's up projection (intermediate, hidden).</summary>
    ExpertUp,
    /// <summary><c>block_sparse_moe.experts.{e}.w2</c>: an expert's down projection (hidden, intermediate).</summary>
    ExpertDown,
    /// <summary><c>self_attn.rotary_emb.inv_freq</c>: a buffer older checkpoints store; the model computes it from the config.</summary>
    RotaryFrequencies,
    /// <summary><c>self_attn.qkv_proj</c> (Phi-3): q, k and v fused, rows [q (heads × head_dim); k (KV heads × head_dim); v (KV heads × head_dim)].</summary>
    FusedQkv,
    /// <summary><c>mlp.gate_up_proj</c> (Phi-3): gate and up fused, rows [gate (intermediate); up (intermediate)].</summary>
    FusedGateUp,
}
