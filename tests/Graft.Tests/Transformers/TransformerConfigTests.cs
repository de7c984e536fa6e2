using Graft.Checkpoints;
using Graft.Checkpoints.Transformers;

namespace Graft.Tests.Transformers;

public sealed class TransformerConfigTests : IDisposable
{
    private readonly DecoderFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Config(string json)
    {
        var path = Path.Combine(_dir.Root, "config.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void Read_LlamaDefaults_KvHeadsAndHeadDimFromHeads()
    {
        var c = TransformerConfig.Read(Config("""{"model_type":"mistral","hidden_size":64,"num_attention_heads":8,"intermediate_size":128,"num_hidden_layers":2,"vocab_size":10,"head_dim":null}"""))!;
        Assert.Equal((8, 8, 10000.0, false, 0), (c.KvHeads, c.HeadDim, c.RopeTheta, c.TieWordEmbeddings, c.Experts));
    }

    [Fact]
    public void FindBeside_TinyMixtral_ReadsExperts()
    {
        var path = _dir.Write("m", new TinySpec(Experts: 4, TopK: 2, Layers: 1, Vocab: 10), 1);
        var c = TransformerConfig.FindBeside(path)!;
        Assert.Equal(("mixtral", 4, 2, 8), (c.ModelType, c.Experts, c.ExpertsPerToken, c.KvHeads));
    }

    [Fact]
    public void Read_OtherCausalFamily_RefusedNamingFileTypeAndArchitectures()
    {
        var path = Config("""{"model_type":"gpt2","architectures":["GPT2LMHeadModel","GPT2ForCausalLM"],"n_embd":64}""");
        var e = Assert.Throws<CheckpointFormatException>(() => TransformerConfig.Read(path));
        Assert.Equal(CheckpointErrorKind.Unsupported, e.Kind);
        Assert.Contains(path, e.Message);
        Assert.Contains("model_type 'gpt2'", e.Message);
        Assert.Contains("GPT2ForCausalLM", e.Message);
    }

    [Fact]
    public void Read_NotADecoder_IsNull() =>
        Assert.Null(TransformerConfig.Read(Config("""{"model_type":"vit","architectures":["ViTForImageClassification"],"hidden_size":768}""")));

    [Fact]
    public void Read_NotJson_Refused() =>
        Assert.Equal(CheckpointErrorKind.HeaderNotJson, Assert.Throws<CheckpointFormatException>(() => TransformerConfig.Read(Config("{ not json"))).Kind);

    [Fact]
    public void Read_HeadsNotAMultipleOfKvHeads_Refused()
    {
        var e = Assert.Throws<CheckpointFormatException>(() => TransformerConfig.Read(Config(
            """{"model_type":"llama","hidden_size":64,"num_attention_heads":8,"num_key_value_heads":3,"intermediate_size":128,"num_hidden_layers":2,"vocab_size":10}""")));
        Assert.Contains("num_key_value_heads 3", e.Message);
    }
}
