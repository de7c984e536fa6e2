using Graft.Transfer;
using Graft.Transformers;

namespace Graft.Tests.Transformers;

/// <summary>Blocks placed by a <see cref="LayerMap"/> (issue 25: SOLAR slicing and identity blocks by rule), checked with the reference decoder.</summary>
public sealed class LayerPlacementTests : IDisposable
{
    private readonly DecoderFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly TinySpec Base = new(Vocab: 300);

    private static TransformerOptions Map(string text) => new() { Layers = LayerMap.Parse(text) };

    /// <summary>SOLAR-style 4 → 6 ("0-2,1-3"): each target block is an exact copy of its source block; the function changes, so --preserve-function refuses.</summary>
    [Fact]
    public void Solar_0to2_1to3_CopiesBlocks_PlanNamesSources_PreserveFunctionRefuses()
    {
        var to = Base with { Layers = 6 };
        var src = _dir.Write("src", Base, 31);
        var tpl = _dir.Write("tpl", to, 32);
        var (output, report) = _dir.Transfer(src, tpl, preserve: false, options: Map("0-2,1-3"));
        var (s, o) = (TinySpec.Load(src), TinySpec.Load(output));
        int[] expected = [0, 1, 2, 1, 2, 3];
        for (int l = 0; l < 6; l++)
        {
            foreach (var member in new[] { "self_attn.q_proj.weight", "self_attn.o_proj.weight", "mlp.down_proj.weight", "input_layernorm.weight" })
            {
                Assert.Equal(s[$"model.layers.{expected[l]}.{member}"].Data, o[$"model.layers.{l}.{member}"].Data);
            }
        }
        Assert.Contains("(from layer 1)", report.Targets.Single(t => t.Name == "model.layers.3.self_attn.o_proj.weight").Reason);
        Assert.Contains(report.Notes, n => n.Contains("target 0–2 ← source 0–2; 3–5 ← source 1–3", StringComparison.Ordinal));
        // Really another function: the duplicated blocks move the logits.
        var tokens = DecoderFolder.Tokens(Base.Vocab);
        Assert.True(DecoderFolder.MaxRelativeChange(DecoderFolder.Logits(src, Base, tokens), DecoderFolder.Logits(output, to, tokens)) > 1e-2);
        var e = Assert.Throws<TransferStrictException>(() => _dir.Transfer(src, tpl, preserve: true, name: "refused", options: Map("0-2,1-3")));
        Assert.Contains(e.Violations, v => v.Contains("applied more than once", StringComparison.Ordinal) && v.Contains("SOLAR", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(_dir.Root, "refused", "model.safetensors")));
    }

    /// <summary>Identity blocks placed by hand ("0,0=id,1-3,3=id"): logits equal; the new blocks are copies with zeroed outputs.</summary>
    [Fact]
    public void IdentityBlocksByRule_PreserveFunction_LogitsEqual()
    {
        var to = Base with { Layers = 6 };
        var src = _dir.Write("src", Base, 31);
        var tpl = _dir.Write("tpl", to, 32);
        var (output, _) = _dir.Transfer(src, tpl, preserve: true, options: Map("0,0=id,1-3,3=id"));
        var tokens = DecoderFolder.Tokens(Base.Vocab);
        DecoderFolder.AssertLogitsEqual(DecoderFolder.Logits(src, Base, tokens), DecoderFolder.Logits(output, to, tokens));
        var (s, o) = (TinySpec.Load(src), TinySpec.Load(output));
        foreach (var (target, source) in new[] { (1, 0), (5, 3) })
        {
            Assert.All(o[$"model.layers.{target}.self_attn.o_proj.weight"].Data, v => Assert.Equal(0.0, v));
            Assert.All(o[$"model.layers.{target}.mlp.down_proj.weight"].Data, v => Assert.Equal(0.0, v));
            Assert.Equal(s[$"model.layers.{source}.mlp.gate_proj.weight"].Data, o[$"model.layers.{target}.mlp.gate_proj.weight"].Data);
        }
        Assert.Equal(s["model.layers.1.self_attn.o_proj.weight"].Data, o["model.layers.2.self_attn.o_proj.weight"].Data);
    }

    [Fact]
    public void Map_WrongBlockCount_PlanRefusedNamingCounts()
    {
        var src = _dir.Write("src", Base, 31);
        var tpl = _dir.Write("tpl", Base with { Layers = 6 }, 32);
        var e = Assert.Throws<TransferPlanException>(() => _dir.Transfer(src, tpl, preserve: false, options: Map("0-3")));
        Assert.Contains("gives 4 blocks", e.Message);
        Assert.Contains("num_hidden_layers 6", e.Message);
    }

    [Fact]
    public void Map_SourceBlockOutOfRange_PlanRefusedNamingToken()
    {
        var src = _dir.Write("src", Base, 31);
        var tpl = _dir.Write("tpl", Base with { Layers = 6 }, 32);
        var e = Assert.Throws<TransferPlanException>(() => _dir.Transfer(src, tpl, preserve: false, options: Map("0-3,3-4")));
        Assert.Contains("token '3-4' names source block 4", e.Message);
    }
}
