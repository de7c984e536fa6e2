using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Graft.Checkpoints;

namespace Graft.Tests.Transformers;

/// <summary>A tensor as the float64 reference reads it: row-major values and a shape.</summary>
internal sealed record Tensor64(long[] Shape, double[] Data)
{
    public double this[long i, long j] => Data[i * Shape[1] + j];
}

/// <summary>
/// The architecture of a tiny Llama/Mixtral-style decoder written by the tests: Hugging Face names and
/// <c>config.json</c> keys, random seeded float32 weights. Head size 8 throughout.
/// </summary>
internal sealed record TinySpec(int Hidden = 64, int Heads = 8, int KvHeads = 8, int Intermediate = 128, int Layers = 4, int Vocab = 1000,
    bool Tied = false, int Experts = 0, int TopK = 0, bool QkvBias = false, bool Fused = false)
{
    public const int HeadDim = 8;
    public const double Eps = 1e-5;
    public const double Theta = 10000.0;

    public string ModelType => Experts > 0 ? "mixtral" : QkvBias ? "qwen2" : Fused ? "phi3" : "llama";

    /// <summary>Writes <c>config.json</c> and <c>model.safetensors</c> (weights drawn from <paramref name="seed"/>) into <paramref name="folder"/>.</summary>
    public string Write(string folder, int seed)
    {
        Directory.CreateDirectory(folder);
        var config = new Dictionary<string, object>
        {
            ["architectures"] = new[] { ModelType switch { "mixtral" => "MixtralForCausalLM", "qwen2" => "Qwen2ForCausalLM", "phi3" => "Phi3ForCausalLM", _ => "LlamaForCausalLM" } },
            ["model_type"] = ModelType,
            ["hidden_size"] = Hidden,
            ["num_attention_heads"] = Heads,
            ["num_key_value_heads"] = KvHeads,
            ["head_dim"] = HeadDim,
            ["intermediate_size"] = Intermediate,
            ["num_hidden_layers"] = Layers,
            ["vocab_size"] = Vocab,
            ["tie_word_embeddings"] = Tied,
            ["rms_norm_eps"] = Eps,
            ["rope_theta"] = Theta,
            ["hidden_act"] = "silu",
            ["torch_dtype"] = "float32",
        };
        if (Experts > 0)
        {
            config["num_local_experts"] = Experts;
            config["num_experts_per_tok"] = TopK;
        }
        File.WriteAllText(Path.Combine(folder, "config.json"), JsonSerializer.Serialize(config));
        var rng = new Random(seed);
        var payloads = new List<TensorPayload>();
        void Add(string name, bool norm, params long[] shape)
        {
            long n = shape.Aggregate(1L, (a, b) => a * b);
            // Linear weights uniform ±√(3/fan_in) (unit variance per output), norm scales 1 ± 0.2, biases ±0.1: activations
            // of order one through every layer, so a wrong head, row or scale shows in the logits.
            double bound = norm ? 0.2 : shape.Length == 2 ? Math.Sqrt(3.0 / shape[1]) : 0.1;
            var values = new float[n];
            for (long i = 0; i < n; i++)
            {
                values[i] = (float)((norm ? 1 : 0) + bound * (2 * rng.NextDouble() - 1));
            }
            payloads.Add(TensorPayload.FromBytes(name, DType.F32, new Shape(shape), MemoryMarshal.AsBytes(values.AsSpan()).ToArray()));
        }
        Add("model.embed_tokens.weight", false, Vocab, Hidden);
        for (int l = 0; l < Layers; l++)
        {
            var p = $"model.layers.{l}.";
            Add(p + "input_layernorm.weight", true, Hidden);
            if (Fused)
            {
                // Phi-3: rows [q; k; v] in one tensor, drawn with the same bound as the unfused ones.
                Add(p + "self_attn.qkv_proj.weight", false, (Heads + 2 * KvHeads) * HeadDim, Hidden);
            }
            else
            {
                Add(p + "self_attn.q_proj.weight", false, Heads * HeadDim, Hidden);
                Add(p + "self_attn.k_proj.weight", false, KvHeads * HeadDim, Hidden);
                Add(p + "self_attn.v_proj.weight", false, KvHeads * HeadDim, Hidden);
            }
            if (QkvBias)
            {
                Add(p + "self_attn.q_proj.bias", false, Heads * HeadDim);
                Add(p + "self_attn.k_proj.bias", false, KvHeads * HeadDim);
                Add(p + "self_attn.v_proj.bias", false, KvHeads * HeadDim);
            }
            Add(p + "self_attn.o_proj.weight", false, Hidden, Heads * HeadDim);
            Add(p + "post_attention_layernorm.weight", true, Hidden);
            if (Experts > 0)
            {
                Add(p + "block_sparse_moe.gate.weight", false, Experts, Hidden);
                for (int e = 0; e < Experts; e++)
                {
                    Add(p + $"block_sparse_moe.experts.{e}.w1.weight", false, Intermediate, Hidden);
                    Add(p + $"block_sparse_moe.experts.{e}.w2.weight", false, Hidden, Intermediate);
                    Add(p + $"block_sparse_moe.experts.{e}.w3.weight", false, Intermediate, Hidden);
                }
            }
            else if (Fused)
            {
                Add(p + "mlp.gate_up_proj.weight", false, 2 * Intermediate, Hidden);
                Add(p + "mlp.down_proj.weight", false, Hidden, Intermediate);
            }
            else
            {
                Add(p + "mlp.gate_proj.weight", false, Intermediate, Hidden);
                Add(p + "mlp.up_proj.weight", false, Intermediate, Hidden);
                Add(p + "mlp.down_proj.weight", false, Hidden, Intermediate);
            }
        }
        Add("model.norm.weight", true, Hidden);
        if (!Tied)
        {
            Add("lm_head.weight", false, Vocab, Hidden);
        }
        var path = Path.Combine(folder, "model.safetensors");
        CheckpointFile.Write(path, payloads);
        return path;
    }

    /// <summary>Every tensor of a checkpoint, as float64.</summary>
    public static Dictionary<string, Tensor64> Load(string path)
    {
        using var reader = CheckpointFile.Open(path);
        var result = new Dictionary<string, Tensor64>(StringComparer.Ordinal);
        foreach (var t in reader.Tensors)
        {
            Assert.Equal(DType.F32, t.DType);
            var bytes = new byte[t.ByteLength];
            reader.ReadBytes(t, bytes);
            var floats = MemoryMarshal.Cast<byte, float>(bytes);
            var data = new double[floats.Length];
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = floats[i];
            }
            result[t.Name] = new Tensor64(t.Shape.ToArray(), data);
        }
        return result;
    }

    /// <summary>
    /// The weights as the reference decoder reads them: Phi-3's fused <c>qkv_proj</c> (rows [q; k; v]) and
    /// <c>gate_up_proj</c> (rows [gate; up], as Phi-3's <c>chunk(2)</c>) cut into the unfused tensors, from this spec's
    /// head counts and sizes, independently of Graft.
    /// </summary>
    public Dictionary<string, Tensor64> Unfuse(Dictionary<string, Tensor64> w)
    {
        var result = new Dictionary<string, Tensor64>(w, StringComparer.Ordinal);
        Tensor64 Rows(Tensor64 t, long start, long count)
        {
            long cols = t.Shape[1];
            return new Tensor64([count, cols], t.Data.AsSpan((int)(start * cols), (int)(count * cols)).ToArray());
        }
        for (int l = 0; l < Layers; l++)
        {
            var p = $"model.layers.{l}.";
            if (result.Remove(p + "self_attn.qkv_proj.weight", out var qkv))
            {
                Assert.Equal((Heads + 2L * KvHeads) * HeadDim, qkv.Shape[0]);
                result[p + "self_attn.q_proj.weight"] = Rows(qkv, 0, Heads * HeadDim);
                result[p + "self_attn.k_proj.weight"] = Rows(qkv, Heads * HeadDim, KvHeads * HeadDim);
                result[p + "self_attn.v_proj.weight"] = Rows(qkv, (Heads + KvHeads) * HeadDim, KvHeads * HeadDim);
            }
            if (result.Remove(p + "mlp.gate_up_proj.weight", out var gateUp))
            {
                Assert.Equal(2L * Intermediate, gateUp.Shape[0]);
                result[p + "mlp.gate_proj.weight"] = Rows(gateUp, 0, Intermediate);
                result[p + "mlp.up_proj.weight"] = Rows(gateUp, Intermediate, Intermediate);
            }
        }
        return result;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"hidden {Hidden}, {Heads}/{KvHeads} heads, intermediate {Intermediate}, {Layers} layers, vocabulary {Vocab}{(Tied ? ", tied" : "")}{(Experts > 0 ? $", {Experts} experts top-{TopK}" : "")}");
}
