using System.Text.Json;

namespace Graft.Checkpoints.Transformers;

/// <summary>
/// The architecture of a Llama-family decoder (Llama, Mistral, Qwen2, Mixtral; Phi-3, the Llama computation with fused
/// <c>qkv_proj</c> and <c>gate_up_proj</c>) as its Hugging Face <c>config.json</c>
/// states it: the numbers that give every tensor its role and head structure, which names and shapes alone cannot
/// (a (512, 64) <c>k_proj</c> is 8 heads of 64 or 2 heads of 256 only by the config's word).
/// </summary>
/// <remarks>
/// It lives in Graft.Checkpoints because it is a fact about files read without libtorch: <c>graft inspect</c> and the
/// planner can both read it at once on a checkpoint of any size. Defaults are Hugging Face's: <c>num_key_value_heads</c>
/// absent means as many as the attention heads, <c>head_dim</c> absent means hidden / heads, <c>rope_theta</c> absent
/// 10,000, <c>tie_word_embeddings</c> absent false (the Llama default).
/// </remarks>
/// <param name="Path">The <c>config.json</c> read.</param>
/// <param name="ModelType">Its <c>model_type</c> (<c>llama</c>, <c>mistral</c>, <c>qwen2</c>, <c>mixtral</c>, <c>phi3</c>).</param>
/// <param name="HiddenSize"><c>hidden_size</c>.</param>
/// <param name="Heads"><c>num_attention_heads</c>.</param>
/// <param name="KvHeads"><c>num_key_value_heads</c>.</param>
/// <param name="HeadDim"><c>head_dim</c>.</param>
/// <param name="IntermediateSize"><c>intermediate_size</c>.</param>
/// <param name="Layers"><c>num_hidden_layers</c>.</param>
/// <param name="VocabSize"><c>vocab_size</c>.</param>
/// <param name="TieWordEmbeddings"><c>tie_word_embeddings</c>: the output head is the embedding table.</param>
/// <param name="RmsNormEps"><c>rms_norm_eps</c>.</param>
/// <param name="RopeTheta"><c>rope_theta</c>.</param>
/// <param name="Experts"><c>num_local_experts</c> (Mixtral), 0 for a dense model.</param>
/// <param name="ExpertsPerToken"><c>num_experts_per_tok</c> (Mixtral), 0 for a dense model.</param>
public sealed record TransformerConfig(string Path, string ModelType, int HiddenSize, int Heads, int KvHeads, int HeadDim, int IntermediateSize,
    int Layers, int VocabSize, bool TieWordEmbeddings, double RmsNormEps, double RopeTheta, int Experts, int ExpertsPerToken)
{
    /// <summary>The <c>model_type</c> values read by role: the Llama family, whose tensors share one naming and one computation.</summary>
    public static IReadOnlyList<string> UnderstoodModelTypes { get; } = ["llama", "mistral", "qwen2", "mixtral", "phi3"];

    /// <summary>True for a mixture of experts (Mixtral names).</summary>
    public bool IsMixtureOfExperts => Experts > 0;

    /// <summary>Query heads per key/value head (1 for multi-head attention, <see cref="Heads"/> for multi-query).</summary>
    public int HeadsPerKvHead => Heads / KvHeads;

    /// <summary>
    /// The <c>config.json</c> in the folder of <paramref name="checkpointPath"/> (a file, or the index of a sharded
    /// checkpoint), or null when there is none or it describes no causal language model (a vision transformer's, say:
    /// those are planned by names as before).
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file is not JSON, a number is missing or inconsistent (heads that do
    /// not divide, a head size that does not fit), or it describes a causal language model of a family Graft does not
    /// read by role (<see cref="UnderstoodModelTypes"/>): the message names the file, the <c>model_type</c> and the
    /// <c>architectures</c>.</exception>
    public static TransformerConfig? FindBeside(string checkpointPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkpointPath);
        var folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(checkpointPath));
        var path = folder is null ? null : System.IO.Path.Combine(folder, "config.json");
        return path is not null && File.Exists(path) ? Read(path) : null;
    }

    /// <summary>Reads <paramref name="path"/>; null when it describes no causal language model (see <see cref="FindBeside"/>).</summary>
    /// <exception cref="CheckpointFormatException">As <see cref="FindBeside"/>.</exception>
    public static TransformerConfig? Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var info = new FileInfo(path);
        if (info.Length > 1 << 20)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.HeaderTooLarge, path, null, $"a config.json of {info.Length} bytes (more than 1 MiB) is not a model configuration.");
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.HeaderNotJson, path, null, $"not JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.InvalidHeader, path, null, "a model configuration is a JSON object.");
            }
            return FromJson(path, doc.RootElement);
        }
    }

    private static TransformerConfig? FromJson(string path, JsonElement root)
    {
        var modelType = root.TryGetProperty("model_type", out var mt) && mt.ValueKind == JsonValueKind.String ? mt.GetString()! : "";
        var architectures = root.TryGetProperty("architectures", out var a) && a.ValueKind == JsonValueKind.Array
            ? a.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()!).ToList()
            : [];
        bool causal = architectures.Any(x => x.EndsWith("ForCausalLM", StringComparison.Ordinal));
        if (!UnderstoodModelTypes.Contains(modelType))
        {
            if (!causal)
            {
                return null;
            }
            throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null,
                $"model_type '{modelType}' (architectures {string.Join(", ", architectures)}) is a causal language model of a family Graft does not read by role; " +
                $"understood: {string.Join(", ", UnderstoodModelTypes)}. Move config.json away to plan by names alone.");
        }
        int hidden = Positive(path, root, "hidden_size");
        int heads = Positive(path, root, "num_attention_heads");
        int kv = OptionalInt(path, root, "num_key_value_heads") ?? heads;
        int headDim = OptionalInt(path, root, "head_dim") ?? (hidden % heads == 0 ? hidden / heads
            : throw Bad(path, $"hidden_size {hidden} is not a multiple of num_attention_heads {heads}, and head_dim is not given."));
        if (kv <= 0 || heads % kv != 0)
        {
            throw Bad(path, $"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}.");
        }
        if (headDim <= 0 || headDim % 2 != 0)
        {
            throw Bad(path, $"head_dim {headDim} must be positive and even (rotary embeddings rotate pairs).");
        }
        int experts = OptionalInt(path, root, "num_local_experts") ?? 0;
        int perToken = OptionalInt(path, root, "num_experts_per_tok") ?? 0;
        if (modelType == "mixtral" && (experts <= 0 || perToken <= 0 || perToken > experts))
        {
            throw Bad(path, $"a Mixtral configuration needs num_local_experts > 0 and 0 < num_experts_per_tok ≤ experts (got {experts}, {perToken}).");
        }
        if (modelType == "phi3" && OptionalDouble(path, root, "partial_rotary_factor") is { } partial && partial != 1.0)
        {
            // Phi-3 is the Llama computation with fused qkv_proj and gate_up_proj, except where it rotates only part of
            // each head; that is not read.
            throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null,
                FormattableString.Invariant($"partial_rotary_factor {partial}: rotary embeddings on part of each head are not read by role; only 1 (every dimension rotated) is."));
        }
        if (modelType != "mixtral")
        {
            (experts, perToken) = (0, 0);
        }
        return new TransformerConfig(path, modelType, hidden, heads, kv, headDim, Positive(path, root, "intermediate_size"),
            Positive(path, root, "num_hidden_layers"), Positive(path, root, "vocab_size"),
            root.TryGetProperty("tie_word_embeddings", out var tie) && tie.ValueKind == JsonValueKind.True,
            OptionalDouble(path, root, "rms_norm_eps") ?? 1e-6, OptionalDouble(path, root, "rope_theta") ?? 10000.0, experts, perToken);
    }

    private static CheckpointFormatException Bad(string path, string detail) => new(CheckpointErrorKind.Inconsistent, path, null, detail);

    private static int Positive(string path, JsonElement root, string key) =>
        OptionalInt(path, root, key) is { } v && v > 0 ? v : throw Bad(path, $"'{key}' must be a positive whole number.");

    private static int? OptionalInt(string path, JsonElement root, string key)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) && i >= 0 ? i
            : throw Bad(path, $"'{key}' is {v.GetRawText()}, not a whole number.");
    }

    private static double? OptionalDouble(string path, JsonElement root, string key)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) && double.IsFinite(d) && d > 0 ? d
            : throw Bad(path, $"'{key}' is {v.GetRawText()}, not a positive number.");
    }

    /// <summary>One line for plans: the numbers that decide the tensors' shapes.</summary>
    public string Describe() => FormattableString.Invariant(
        $"{ModelType}: hidden {HiddenSize}, {Heads} heads × {HeadDim}, {KvHeads} KV heads, intermediate {IntermediateSize}, {Layers} layers, vocabulary {VocabSize}")
        + (TieWordEmbeddings ? ", tied embeddings" : "") + (IsMixtureOfExperts ? FormattableString.Invariant($", {Experts} experts top-{ExpertsPerToken}") : "");
}
