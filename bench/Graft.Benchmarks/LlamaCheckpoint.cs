using System.Globalization;
using Graft.Checkpoints;
using Graft.Checkpoints.Sharded;

namespace Graft.Benchmarks;

/// <summary>
/// Writes a synthetic Llama-family checkpoint with a real 7B model's layer shapes (hidden 4096, 32 heads of 128, 8 KV
/// heads, intermediate 14336, vocabulary 32000: Mistral-7B's) and as many layers as asked, bf16, sharded, with its
/// <c>config.json</c>: the scale case of issue 25, without a download. Bytes are generated while the writer consumes
/// them (a shared block of bf16 noise), so a multi-gigabyte checkpoint is written in a few megabytes of memory.
/// </summary>
public static class LlamaCheckpoint
{
    /// <summary>Writes <c>config.json</c> and <c>model.safetensors.index.json</c> with its shards into <paramref name="folder"/>; returns the tensor bytes.</summary>
    public static long Write(string folder, int layers, int hidden = 4096, int heads = 32, int kvHeads = 8, int intermediate = 14336, int vocab = 32000,
        long maxShardBytes = 2_000_000_000)
    {
        Directory.CreateDirectory(folder);
        const int headDim = 128;
        File.WriteAllText(Path.Combine(folder, "config.json"), string.Create(CultureInfo.InvariantCulture,
            $$"""{"architectures":["MistralForCausalLM"],"model_type":"mistral","hidden_size":{{hidden}},"num_attention_heads":{{heads}},"num_key_value_heads":{{kvHeads}},"head_dim":{{headDim}},"intermediate_size":{{intermediate}},"num_hidden_layers":{{layers}},"vocab_size":{{vocab}},"tie_word_embeddings":false,"rms_norm_eps":1e-05,"rope_theta":10000.0,"torch_dtype":"bfloat16"}"""));
        var noise = new ushort[1 << 20];
        var rng = new Random(layers * 7 + hidden);
        for (int i = 0; i < noise.Length; i++)
        {
            // bf16 is the top half of a float32.
            noise[i] = (ushort)(BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() - 0.5) * 0.04f) >> 16);
        }
        var payloads = new List<TensorPayload>();
        void Add(string name, params long[] shape) => payloads.Add(new NoisePayload(name, new Shape(shape), noise, payloads.Count));
        Add("model.embed_tokens.weight", vocab, hidden);
        for (int l = 0; l < layers; l++)
        {
            var p = $"model.layers.{l}.";
            Add(p + "input_layernorm.weight", hidden);
            Add(p + "self_attn.q_proj.weight", heads * headDim, hidden);
            Add(p + "self_attn.k_proj.weight", kvHeads * headDim, hidden);
            Add(p + "self_attn.v_proj.weight", kvHeads * headDim, hidden);
            Add(p + "self_attn.o_proj.weight", hidden, heads * headDim);
            Add(p + "post_attention_layernorm.weight", hidden);
            Add(p + "mlp.gate_proj.weight", intermediate, hidden);
            Add(p + "mlp.up_proj.weight", intermediate, hidden);
            Add(p + "mlp.down_proj.weight", hidden, intermediate);
        }
        Add("model.norm.weight", hidden);
        Add("lm_head.weight", vocab, hidden);
        ShardedSafetensorsWriter.Write(Path.Combine(folder, "model" + ShardedSafetensorsWriter.IndexSuffix), payloads, null, maxShardBytes);
        return payloads.Sum(p => p.ByteLength);
    }

    private sealed class NoisePayload(string name, Shape shape, ushort[] noise, int index) : TensorPayload(name, DType.BF16, shape)
    {
        public override void WriteTo(Stream destination)
        {
            var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(noise.AsSpan());
            long remaining = ByteLength;
            int start = (int)(index * 7919L % noise.Length) * sizeof(ushort);
            while (remaining > 0)
            {
                int n = (int)Math.Min(remaining, bytes.Length - start);
                destination.Write(bytes.Slice(start, n));
                remaining -= n;
                start = 0;
            }
        }
    }
}
