using Graft.Checkpoints;
using Graft.Checkpoints.Transformers;

namespace Graft.Tests.Transformers;

/// <summary>Phi-3 is read by role (the Llama computation with fused projections) only where every head dimension is rotated.</summary>
public sealed class Phi3ConfigTests : IDisposable
{
    private readonly DecoderFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private const string Phi3 = """{"model_type":"phi3","architectures":["Phi3ForCausalLM"],"hidden_size":64,"num_attention_heads":8,"intermediate_size":128,"num_hidden_layers":2,"vocab_size":10""";

    private string Config(string json)
    {
        var path = Path.Combine(_dir.Root, "config.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void Read_Phi3_Understood() =>
        Assert.Equal("phi3", TransformerConfig.Read(Config(Phi3 + ""","partial_rotary_factor":1.0}"""))!.ModelType);

    [Fact]
    public void Read_Phi3PartialRotary_RefusedNamingIt()
    {
        var path = Config(Phi3 + ""","partial_rotary_factor":0.75}""");
        var e = Assert.Throws<CheckpointFormatException>(() => TransformerConfig.Read(path));
        Assert.Equal(CheckpointErrorKind.Unsupported, e.Kind);
        Assert.Contains("partial_rotary_factor 0.75", e.Message);
        Assert.Contains(path, e.Message);
    }
}
